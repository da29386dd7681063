/* SPDX-License-Identifier: MIT */
/*
 * Many exports in one process, in the manner of qemu-storage-daemon's
 * --export: each is its own vhost-user device with its own socket, one
 * front-end at a time. Their queues run on the poll group's threads; their
 * control sockets (listening and connected) on the caller's thread, which
 * watches every export's listen fd and back-end event fd in one epoll set.
 * So the process's threads are the poll group plus a constant, however many
 * exports it serves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "blk_export.h"
#include "../../tools/opts.h"
#include "vhu/vu_socket.h"

static int refuse(const char *key, const char *value, const char *why)
{
	char opt[64];
	snprintf(opt, sizeof(opt), "--export %s", key);
	return opt_refuse("vhu-blk", opt, value, why);
}

static int key_number(const char *key, const char *v, long lo, long hi, long *out)
{
	char opt[64];
	snprintf(opt, sizeof(opt), "--export %s", key);
	return opt_number("vhu-blk", opt, v, lo, hi, out);
}

static int set_key(struct blk_export *x, const char *key, const char *v)
{
	long n;

	if (!strcmp(key, "socket") || !strcmp(key, "addr.path")) {
		x->sock = v;
	} else if (!strcmp(key, "file") || !strcmp(key, "blk-file")) {
		x->d.path = v;
	} else if (!strcmp(key, "num-queues")) {
		if (key_number(key, v, 1, 64, &n))
			return 2;
		x->d.num_queues = (uint16_t)n;
	} else if (!strcmp(key, "queue-size")) {
		if (key_number(key, v, 4, VHU_VRING_MAX_SIZE, &n))
			return 2;
		x->d.queue_size = (uint16_t)n;
	} else if (!strcmp(key, "seg-max")) {
		if (key_number(key, v, 1, BLK_MAX_SEG, &n))
			return 2;
		x->d.seg_max = (uint32_t)n;
	} else if (!strcmp(key, "read-only") || !strcmp(key, "writable")) {
		bool on = !strcmp(v, "on");
		if (!on && strcmp(v, "off"))
			return refuse(key, v, "takes on or off");
		x->d.read_only = !strcmp(key, "read-only") ? on : !on;
	} else if (!strcmp(key, "serial")) {
		if (strlen(v) > VHU_BLK_ID_BYTES)
			return refuse(key, v, "at most 20 bytes (VIRTIO_BLK_ID_BYTES)");
		x->d.serial = v;
	} else {
		return refuse(key, v, "unknown key (socket, file, num-queues, queue-size, read-only, serial, seg-max)");
	}
	return 0;
}

int blk_export_parse(char *spec, struct blk_export *x)
{
	char *save = NULL;

	for (char *kv = strtok_r(spec, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq || eq == kv || !eq[1])
			return refuse(kv, NULL, "not key=value");
		*eq = '\0';
		int r = set_key(x, kv, eq + 1);
		if (r)
			return r;
	}
	if (!x->sock || !x->d.path)
		return refuse(!x->sock ? "socket" : "file", NULL, "is needed");
	return 0;
}

/* epoll data: the export's index, and which of its fds */
#define TAG_STOP UINT64_MAX
static uint64_t tag(unsigned i, bool listen) { return (uint64_t)i << 1 | listen; }

static int watch(int epfd, int op, int fd, uint64_t data)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };
	return epoll_ctl(epfd, op, fd, &ev);
}

/* A front-end at the door: attach it, and stop listening until it leaves
 * (one front-end at a time; the next waits in the socket's backlog). */
static void accept_one(int epfd, struct blk_export *x)
{
	int c = vhu_user_accept(x->listen_fd, 0);
	if (c < 0)
		return;
	if (vhu_backend_attach(x->be, c) < 0) {
		close(c);
		return;
	}
	watch(epfd, EPOLL_CTL_DEL, x->listen_fd, 0);
	x->listening = false;
}

int blk_exports_serve(struct blk_export *x, unsigned n, struct vhu_poll_group *pg, int stop_fd)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	if (epfd < 0 || watch(epfd, EPOLL_CTL_ADD, stop_fd, TAG_STOP) < 0) {
		fprintf(stderr, "vhu-blk: epoll: %s\n", strerror(errno));
		return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		if (watch(epfd, EPOLL_CTL_ADD, x[i].listen_fd, tag(i, true)) < 0 ||
		    watch(epfd, EPOLL_CTL_ADD, vhu_backend_event_fd(x[i].be), tag(i, false)) < 0) {
			fprintf(stderr, "vhu-blk: epoll: %s\n", strerror(errno));
			close(epfd);
			return 1;
		}
		x[i].listening = true;
	}
	fprintf(stderr, "vhu-blk: serving %u export(s) on %u poll-group thread(s)\n", n, vhu_poll_group_threads(pg));
	for (;;) {
		struct epoll_event evs[64];
		int k = epoll_wait(epfd, evs, 64, -1);
		if (k < 0 && errno != EINTR)
			break;
		for (int j = 0; j < k; j++) {
			if (evs[j].data.u64 == TAG_STOP) {
				close(epfd);
				return 0;
			}
			unsigned i = (unsigned)(evs[j].data.u64 >> 1);
			if (evs[j].data.u64 & 1) {
				accept_one(epfd, &x[i]);
			} else if (vhu_backend_dispatch(x[i].be) == -ECONNRESET && !x[i].listening) {
				watch(epfd, EPOLL_CTL_ADD, x[i].listen_fd, tag(i, true));
				x[i].listening = true;
			}
		}
	}
	close(epfd);
	return 1;
}
