/* SPDX-License-Identifier: MIT */
/*
 * What a doorbell queue costs the back-end while it waits: a store wakes no
 * one, so while the doorbell is live the queue's thread naps and looks
 * (VHU_DOORBELL_NAP_NS); after VHU_DOORBELL_IDLE_NS without work it asks
 * for the doorbell to be withdrawn and sleeps on the kick eventfd. Measured
 * on a running vhu-blk (its pid given) through vhu's front-end: the
 * back-end's CPU time over a few seconds of
 *   sparse  one 4 KiB read every 10 ms (under the idle limit: the doorbell
 *           stays live and the thread naps between reads)
 *   idle    nothing at all (withdrawn after 20 ms: the thread sleeps)
 * and the same with eventfd kicks for comparison, as a share of one CPU.
 *   usage: doorbell_idle SOCK VHU_BLK_PID [SECONDS]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vhu/blk_driver.h"
#include "vhu/frontend.h"
#include "vhu/virtio.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The process's CPU time (user + system, all threads), in seconds. */
static double cpu_s(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	/* after the name: state, then fields 4..13, then utime (14) stime (15) */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int one_read(struct vhu_blk_queue *q, uint64_t addr)
{
	struct vhu_sg sg = { addr, 4096 };
	struct vhu_blk_completion c;
	int r = vhu_blk_submit(q, VHU_BLK_T_IN, 0, &sg, 1, NULL);
	if (r < 0 || (r = vhu_blk_kick(q)) < 0)
		return r;
	while ((r = vhu_blk_complete(q, &c, 1)) == 0)
		if ((r = vhu_blk_wait(q, 5000)) < 0)
			return r;
	return r < 0 ? r : 0;
}

/* The back-end's share of a CPU over secs of the pattern. */
static double measure(struct vhu_fe *fe, struct vhu_blk_queue *q, uint64_t addr, long pid, double secs, bool sparse)
{
	for (int i = 0; i < 50; i++)   /* busy first: the doorbell is offered and live */
		if (one_read(q, addr) < 0)
			return -1;
	double c0 = cpu_s(pid), t0 = now_s();
	while (now_s() - t0 < secs) {
		if (sparse && one_read(q, addr) < 0)
			return -1;
		vhu_fe_serve_backend(fe, 10);   /* 10 ms, the channel served (doorbell messages) */
	}
	return (cpu_s(pid) - c0) / (now_s() - t0);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: doorbell_idle SOCK VHU_BLK_PID [SECONDS]\n");
		return 2;
	}
	long pid = strtol(argv[2], NULL, 10);
	double secs = argc > 3 ? atof(argv[3]) : 3;
	printf("%-9s %-8s %s\n", "kicks", "pattern", "vhu-blk CPU (share of one CPU)");
	for (int db = 0; db < 2; db++) {
		struct vhu_fe *fe;
		struct vhu_fe_config fc = { .path = argv[1], .fd = -1, .timeout_ms = 5000, .doorbells = db };
		if (vhu_fe_connect(&fe, &fc) < 0)
			return 1;
		struct vhu_fe_setup su = {
			.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_F_NOTIFICATION_DATA) |
				    vhu_blk_driver_features(),
			.num_queues = 1, .queue_size = 64, .mem_size = 1 << 20, .notify = VHU_FE_NOTIFY_EVENTFD,
		};
		uint64_t addr;
		struct vhu_blk_queue *q;
		if (vhu_fe_start(fe, &su) < 0 || !vhu_fe_alloc(fe, 4096, 4096, &addr) || !(q = vhu_blk_queue_new(fe, 0)))
			return 1;
		for (int sparse = 1; sparse >= 0; sparse--) {
			double share = measure(fe, q, addr, pid, secs, sparse);
			if (share < 0)
				return 1;
			printf("%-9s %-8s %.3f\n", db ? "doorbell" : "eventfd", sparse ? "sparse" : "idle", share);
		}
		struct vhu_fe_queue_stats st;
		vhu_fe_queue_stats(vhu_fe_queue(fe, 0), &st);
		printf("#   %s: %" PRIu64 " kicks by doorbell, %" PRIu64 " by eventfd, %" PRIu64 " pages mapped\n",
		       db ? "doorbell" : "eventfd", st.kicks_doorbell, st.kicks_eventfd, st.doorbells_mapped);
		vhu_fe_stop(fe);
		vhu_blk_queue_free(q);
		vhu_fe_close(fe);
	}
	return 0;
}
