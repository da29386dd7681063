/* SPDX-License-Identifier: MIT */
/*
 * Scale of the admin transport (issue 17): N managed blk devices created in
 * one vhu-mgmt process, each started through admin commands and verified
 * (blocks written and read back through its own ring, interrupts by the
 * event queue), all destroyed; the daemon's fds and resident memory idle,
 * with every member, and after; creation, verification and destruction
 * rates.
 *   mgmt_scale PATH-TO-vhu-mgmt [N] [THREADS]
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vhu/admin_driver.h"
#include "vhu/blk_driver.h"
#include "vhu/virtio.h"

#define BLOCKS 4

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int fds_of(pid_t pid)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "ls /proc/%d/fd | wc -l", (int)pid);
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (p && fscanf(p, "%d", &n) != 1)
		n = -1;
	if (p)
		pclose(p);
	return n;
}

/* The daemon's own memory: anonymous resident pages (its mapping of the
 * front-end's shared memory, where the members' rings are, is not its). */
static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static pid_t daemon_pid;

static void die(const char *what, int rc)
{
	fprintf(stderr, "mgmt_scale: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	kill(daemon_pid, SIGTERM);
	exit(1);
}

struct ref {
	struct vhu_admin_dev *dev;
};
static void *q_alloc(void *o, size_t size, size_t align, uint64_t *addr)
{
	return vhu_admin_dev_alloc(((struct ref *)o)->dev, size, align, addr);
}
static int q_kick(void *o) { return vhu_admin_dev_kick(((struct ref *)o)->dev, 0); }
static int q_wait(void *o, int ms) { return vhu_admin_dev_wait(((struct ref *)o)->dev, 0, ms); }

/* Start member id, write BLOCKS blocks and read them back, stop: 0 or -1. */
static int verify_one(struct vhu_admin_driver *ad, uint64_t id, uint8_t *buf, uint64_t addr)
{
	struct vhu_admin_dev_setup s = { .features = VHU_BIT(VHU_F_EVENT_IDX), .num_queues = 1, .queue_size = 16 };
	struct ref r;
	int rc = vhu_admin_dev_start(ad, id, &s, &r.dev);
	if (rc < 0)
		die("start a member", rc);
	struct vhu_blk_ring ring = { vhu_admin_dev_vq(r.dev, 0), q_alloc, q_kick, q_wait, &r };
	struct vhu_blk_queue *q = vhu_blk_queue_new_on(&ring);
	int bad = !q;
	for (int pass = 0; pass < 2 && !bad; pass++) {
		for (unsigned b = 0; b < BLOCKS; b++) {
			if (pass == 0)
				memset(buf + 4096 * b, (int)(id * 7 + b), 4096);
			else
				memset(buf + 4096 * b, 0, 4096);
			struct vhu_sg sg = { addr + 4096 * b, 4096 };
			if (vhu_blk_submit(q, pass ? VHU_BLK_T_IN : VHU_BLK_T_OUT, 8 * b, &sg, 1, buf) < 0)
				bad = 1;
		}
		vhu_blk_kick(q);
		for (unsigned got = 0; got < BLOCKS && !bad;) {
			struct vhu_blk_completion c[BLOCKS];
			int n = vhu_blk_complete(q, c, BLOCKS);
			for (int i = 0; i < n; i++)
				bad |= c[i].status != VHU_BLK_S_OK;
			got += n > 0 ? (unsigned)n : 0;
			if (n == 0 && vhu_blk_wait(q, 5000) < 0)
				bad = 1;
		}
	}
	for (unsigned b = 0; b < BLOCKS && !bad; b++)
		for (unsigned i = 0; i < 4096; i++)
			bad |= buf[4096 * b + i] != (uint8_t)(id * 7 + b);
	vhu_blk_queue_free(q);
	vhu_admin_dev_stop(r.dev);
	return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: mgmt_scale PATH-TO-vhu-mgmt [N] [THREADS]\n");
		return 2;
	}
	unsigned n = argc > 2 ? (unsigned)atoi(argv[2]) : 1000;
	const char *threads = argc > 3 ? argv[3] : "1";
	char sock[64], opt_threads[32], opt_max[32];
	snprintf(sock, sizeof(sock), "/tmp/vhu-mgmt-scale.%d.sock", getpid());
	snprintf(opt_threads, sizeof(opt_threads), "--threads=%s", threads);
	snprintf(opt_max, sizeof(opt_max), "--max-members=%u", n);
	unlink(sock);
	pid_t pid = daemon_pid = fork();
	if (pid == 0) {
		execl(argv[1], argv[1], "--socket-path", sock, "--engine=sync", opt_threads, opt_max, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(sock, F_OK); i++)
		usleep(10000);
	signal(SIGPIPE, SIG_IGN);
	struct vhu_fe *fe;
	struct vhu_fe_config fc = { .path = sock, .fd = -1, .timeout_ms = 10000 };
	int rc = vhu_fe_connect(&fe, &fc);
	if (rc < 0)
		die("connect", rc);
	struct vhu_fe_setup st = { .features = vhu_admin_driver_features(), .num_queues = 2, .queue_size = 256,
				   .notify = VHU_FE_NOTIFY_EVENTFD, .mem_size = (size_t)n * 16384 + (1u << 20) };
	struct vhu_admin_driver *ad;
	if ((rc = vhu_fe_start(fe, &st)) < 0 || (rc = vhu_admin_driver_new(&ad, fe)) < 0)
		die("start the management device", rc);
	uint64_t addr;
	uint8_t *buf = vhu_fe_alloc(fe, 4096 * BLOCKS, 4096, &addr);
	uint64_t *ids = calloc(n, sizeof(*ids));
	int fds_idle = fds_of(pid);
	long rss_idle = rss_kib(pid);

	double t0 = now();
	for (unsigned i = 0; i < n; i++) {
		struct vhu_admin_create c = { .device_type = 2, .num_queues = 1, .queue_size_max = 16,
					      .capacity = 2048, .backing = "mem:" };
		if ((rc = vhu_admin_dev_create(ad, &c, &ids[i])) < 0)
			die("create", rc);
	}
	double t_create = now() - t0;
	int fds_full = fds_of(pid);
	long rss_full = rss_kib(pid);
	t0 = now();
	unsigned failed = 0;
	for (unsigned i = 0; i < n; i++)
		failed += verify_one(ad, ids[i], buf, addr) < 0;
	double t_verify = now() - t0;
	long rss_verified = rss_kib(pid);
	t0 = now();
	for (unsigned i = 0; i < n; i++)
		if ((rc = vhu_admin_dev_destroy(ad, ids[i])) < 0)
			die("destroy", rc);
	double t_destroy = now() - t0;
	int fds_after = fds_of(pid);
	long rss_after = rss_kib(pid);
	struct vhu_admin_caps caps;
	vhu_admin_caps_get(ad, &caps);

	printf("members %u, verified %u, failed %u, left %u\n", n, n - failed, failed, caps.members);
	printf("create   %8.0f members/s (%.3f s)\n", n / t_create, t_create);
	printf("verify   %8.0f members/s (%.3f s: start, %u blocks written and read back, reset)\n", n / t_verify,
	       t_verify, BLOCKS);
	printf("destroy  %8.0f members/s (%.3f s)\n", n / t_destroy, t_destroy);
	printf("fds      idle %d, with every member %d, after destroying them %d\n", fds_idle, fds_full, fds_after);
	printf("anon rss idle %ld KiB, with every member %ld KiB (%.1f KiB each), after verifying %ld KiB, "
	       "after destroying %ld KiB\n", rss_idle, rss_full, (double)(rss_full - rss_idle) / n, rss_verified,
	       rss_after);
	vhu_admin_driver_free(ad);
	vhu_fe_stop(fe);
	vhu_fe_close(fe);
	kill(pid, SIGTERM);
	int ws = 0;
	waitpid(pid, &ws, 0);
	free(ids);
	/* the run's own verdict: every member served, nothing left, fds back */
	return failed || caps.members || fds_after != fds_idle || !WIFEXITED(ws) || WEXITSTATUS(ws);
}
