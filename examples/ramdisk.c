/* SPDX-License-Identifier: MIT */
/*
 * vhu-ramdisk: a virtio-blk RAM disk served from the application's own
 * event loop. The device is application-driven (VHU_EXEC_APP): vhu
 * starts no thread; this program accepts the front-end, watches vhu's one
 * event fd beside its own (the listening socket, a signalfd) with epoll,
 * and calls vhu_backend_dispatch() when vhu has something to do. The
 * device's handler runs right here, on the only thread of the process.
 *
 *   usage: vhu-ramdisk SOCKET [SIZE_MIB [QUEUES]]
 *   then:  vhu verify SOCKET   or   vhu guest SOCKET
 *
 * An example, so it keeps to IN, OUT, FLUSH and GET_ID; devices/blk/ is
 * the real block device.
 */
#include <endian.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "vhu/backend.h"
#include "vhu/virtio.h"
#include "vhu/virtio_blk.h"
#include "vhu/vu_socket.h"

#define SEG_MAX 128

struct ramdisk {
	uint8_t *data;
	uint64_t bytes;
	struct vhu_blk_config cfg;	/* little-endian, as the driver reads it */
};

/* Copy between a flat buffer and bytes [off, off + len) of an iovec array. */
static void iov_copy(const struct iovec *iov, unsigned n, uint64_t off, void *buf, uint64_t len, bool to_iov)
{
	for (unsigned i = 0; i < n && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		uint64_t c = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + off, buf, c);
		else
			memcpy(buf, (uint8_t *)iov[i].iov_base + off, c);
		buf = (uint8_t *)buf + c;
		len -= c;
		off = 0;
	}
}

/* One request: header in the readable part, status the last writable byte.
 * Returns the bytes written into the request (the used length). */
static uint32_t serve(struct ramdisk *d, const struct vhu_vq_elem *e, const struct iovec *iov)
{
	struct { uint32_t type, reserved; uint64_t sector; } hdr;
	const struct iovec *in = iov + e->out_num;
	if (e->out_len < sizeof(hdr) || e->in_len < 1)
		return 0;	/* nowhere to put a status: return it unanswered */
	iov_copy(iov, e->out_num, 0, &hdr, sizeof(hdr), false);
	uint64_t off = le64toh(hdr.sector) * VHU_BLK_SECTOR_SIZE, in_data = e->in_len - 1;
	uint64_t out_data = e->out_len - sizeof(hdr);
	uint8_t status = VHU_BLK_S_OK;
	uint32_t used = 1;
	switch (le32toh(hdr.type)) {
	case VHU_BLK_T_IN:
		if (in_data % VHU_BLK_SECTOR_SIZE || off > d->bytes || in_data > d->bytes - off) {
			status = VHU_BLK_S_IOERR;
			break;
		}
		iov_copy(in, e->in_num, 0, d->data + off, in_data, true);
		used = (uint32_t)e->in_len;
		break;
	case VHU_BLK_T_OUT:
		if (out_data % VHU_BLK_SECTOR_SIZE || off > d->bytes || out_data > d->bytes - off) {
			status = VHU_BLK_S_IOERR;
			break;
		}
		iov_copy(iov, e->out_num, sizeof(hdr), d->data + off, out_data, false);
		break;
	case VHU_BLK_T_FLUSH:
		break;	/* RAM is as durable as it gets */
	case VHU_BLK_T_GET_ID: {
		char id[VHU_BLK_ID_BYTES] = "vhu-ramdisk";
		uint64_t n = in_data < sizeof(id) ? in_data : sizeof(id);
		iov_copy(in, e->in_num, 0, id, n, true);
		used = (uint32_t)e->in_len;
		break;
	}
	default:
		status = VHU_BLK_S_UNSUPP;
	}
	iov_copy(in, e->in_num, e->in_len - 1, &status, 1, true);
	return used;
}

static void handle(struct vhu_device *dev, struct vhu_queue *q, unsigned events)
{
	struct ramdisk *d = vhu_device_priv(dev);
	struct iovec iov[SEG_MAX + 2];
	struct vhu_vq_elem e;
	int r;
	(void)events;
	while ((r = vhu_queue_pop(q, &e, iov, SEG_MAX + 2)) != 0) {
		if (r < 0) {
			if (vhu_dev_vq_broken(vhu_queue_vq(q)))
				break;
			vhu_queue_push(q, &e, 0);	/* a bad buffer: back with nothing written */
			continue;
		}
		vhu_queue_push(q, &e, serve(d, &e, iov));
	}
	vhu_queue_notify(q);
}

static int get_config(struct vhu_device *dev, uint8_t *buf, uint32_t off, uint32_t len)
{
	struct ramdisk *d = vhu_device_priv(dev);
	if (off > sizeof(d->cfg) || len > sizeof(d->cfg) - off)
		return -EINVAL;
	memcpy(buf, (uint8_t *)&d->cfg + off, len);
	return 0;
}

static const struct vhu_device_ops ramdisk_ops = { .handle = handle, .get_config = get_config };

static void log_stderr(void *opaque, enum vhu_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	(void)opaque;
	fprintf(stderr, "vhu-ramdisk: %s: %s\n", names[level], msg);
}

static int watch(int ep, int fd, int op)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	return epoll_ctl(ep, op, fd, &ev);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: vhu-ramdisk SOCKET [SIZE_MIB [QUEUES]]\n");
		return 2;
	}
	long mib = argc > 2 ? strtol(argv[2], NULL, 10) : 64, queues = argc > 3 ? strtol(argv[3], NULL, 10) : 2;
	if (mib < 1 || mib > 4096 || queues < 1 || queues > 16) {
		fprintf(stderr, "vhu-ramdisk: SIZE_MIB is 1 to 4096, QUEUES 1 to 16\n");
		return 2;
	}
	struct ramdisk d = { .bytes = (uint64_t)mib << 20 };
	d.data = calloc(1, d.bytes);
	d.cfg.capacity = htole64(d.bytes / VHU_BLK_SECTOR_SIZE);
	d.cfg.seg_max = htole32(SEG_MAX);
	d.cfg.num_queues = htole16((uint16_t)queues);
	struct vhu_device_config cfg = {
		.ops = &ramdisk_ops, .priv = &d, .num_queues = (uint16_t)queues, .max_queue_size = 1024,
		.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) |
			    VHU_BIT(VHU_F_INDIRECT_DESC) | VHU_BIT(VHU_BLK_F_SEG_MAX) | VHU_BIT(VHU_BLK_F_FLUSH) |
			    VHU_BIT(VHU_BLK_F_MQ),
		.config_size = sizeof(d.cfg), .log = log_stderr, .log_level = VHU_LOG_INFO,
		.exec = VHU_EXEC_APP,
	};
	struct vhu_device *dev = d.data ? vhu_device_new(&cfg) : NULL;
	struct vhu_backend_config bcfg = { .device = dev, .protocol_features = VHU_BACKEND_PROTOCOL_FEATURES };
	struct vhu_backend *be = dev ? vhu_backend_new(&bcfg) : NULL;
	int listen_fd = be ? vhu_user_listen(argv[1]) : -1;
	if (listen_fd < 0) {
		fprintf(stderr, "vhu-ramdisk: cannot start on %s: %s\n", argv[1], strerror(be ? -listen_fd : errno));
		return 1;
	}
	/* SIGTERM and SIGINT as events of the loop, not handlers */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int vhu_fd = vhu_backend_event_fd(be);
	if (sig_fd < 0 || ep < 0 || watch(ep, listen_fd, EPOLL_CTL_ADD) || watch(ep, sig_fd, EPOLL_CTL_ADD) ||
	    watch(ep, vhu_fd, EPOLL_CTL_ADD)) {
		perror("vhu-ramdisk: epoll");
		return 1;
	}
	fprintf(stderr, "vhu-ramdisk: %ld MiB, %ld queue(s) on %s, served from one thread\n", mib, queues, argv[1]);
	for (bool running = true, attached = false; running;) {
		struct epoll_event evs[4];
		int n = epoll_wait(ep, evs, 4, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == sig_fd) {
				running = false;
			} else if (fd == listen_fd && !attached) {
				int c = vhu_user_accept(listen_fd, 0);
				if (c >= 0 && vhu_backend_attach(be, c) == 0) {
					attached = true;
					watch(ep, listen_fd, EPOLL_CTL_DEL);	/* one front-end at a time */
				} else if (c >= 0) {
					close(c);
				}
			} else if (fd == vhu_fd && vhu_backend_dispatch(be) == -ECONNRESET) {
				attached = false;	/* the device was reset: take the next front-end */
				watch(ep, listen_fd, EPOLL_CTL_ADD);
			}
		}
	}
	vhu_backend_free(be);
	vhu_device_free(dev);
	close(listen_fd);
	unlink(argv[1]);
	free(d.data);
	return 0;
}
