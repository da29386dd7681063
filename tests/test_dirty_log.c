/* SPDX-License-Identifier: MIT */
/*
 * The back-end's dirty log as a migrating VMM reads it, through vhu's own
 * front-end library (vhu_fe_log_start / vhu_fe_dirty_log): a device writes
 * a random number of bytes into the writable buffers of random chains
 * (random segment counts, sizes and places, readable segments among them),
 * and after every pass the bitmap must hold
 *   - every page of the bytes the device reported written (the used len,
 *     along the writable segments in order), and at least one ring page;
 *   - no page of the buffer pool that the device did not write (a log of
 *     all ones would pass the first check and fail this one).
 * Split and packed rings, with logging switched off and on mid-run and the
 * log taken (read and cleared) between passes as a migration's passes do.
 * Also: the bitmap's own functions (marks, edges, take).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "fdcount.h"
#include "served.h"
#include "vhu/backend.h"
#include "vhu/dirty_log.h"
#include "vhu/frontend.h"
#include "vhu/virtio.h"

#define QSIZE 128
#define POOL (4u << 20)
#define WRITTEN 0xee

/* ---- the bitmap itself ---------------------------------------------------- */

static void bitmap_marks_and_takes(void **state)
{
	(void)state;
	uint8_t bits[16] = { 0 }, out[16];
	struct vhu_dirty_log log = { bits, sizeof(bits) };   /* 128 pages */

	assert_int_equal(vhu_dirty_log_size_for(0), 0);
	assert_int_equal(vhu_dirty_log_size_for(1), 1);
	assert_int_equal(vhu_dirty_log_size_for(8 * 4096), 1);
	assert_int_equal(vhu_dirty_log_size_for(8 * 4096 + 1), 2);
	assert_true(vhu_dirty_log_covers(&log, 0, 128 * 4096));
	assert_false(vhu_dirty_log_covers(&log, 0, 128 * 4096 + 1));
	assert_false(vhu_dirty_log_covers(&log, UINT64_MAX - 10, 20));   /* wraps */
	assert_int_equal(vhu_dirty_log_mark(&log, 4095, 2), 0);          /* pages 0 and 1 */
	assert_true(vhu_dirty_log_test(&log, 0) && vhu_dirty_log_test(&log, 4096));
	assert_false(vhu_dirty_log_test(&log, 8192));
	/* partly outside: what is inside marked, the rest refused */
	assert_int_equal(vhu_dirty_log_mark(&log, 127 * 4096, 8192), -ERANGE);
	assert_true(vhu_dirty_log_test(&log, 127 * 4096));
	assert_int_equal(vhu_dirty_log_take(&log, out), 3);
	assert_int_equal(out[0], 3);
	assert_int_equal(out[15], 0x80);
	assert_int_equal(vhu_dirty_log_take(&log, NULL), 0);

	/* the cache: many writes, one flush, the same bits as direct marks */
	struct vhu_dirty_cache c;
	vhu_dirty_cache_init(&c, &log);
	for (unsigned i = 0; i < 200; i++)
		vhu_dirty_cache_add(&c, (uint64_t)(i * 7 % 120) * 4096 + i, 1);
	vhu_dirty_cache_add(&c, 200 * 4096, 1);   /* outside */
	vhu_dirty_cache_flush(&c);
	assert_int_equal(c.outside, 1);
	for (unsigned i = 0; i < 128; i++) {
		bool want = false;
		for (unsigned k = 0; k < 200; k++)
			want |= k * 7 % 120 == i;
		assert_int_equal(vhu_dirty_log_test(&log, (uint64_t)i * 4096), want);
	}
}

/* ---- the device: writes a random share of each chain's writable part ---- */

static _Thread_local unsigned dev_seed = 7;

static void scribble(struct vhu_device *dev, struct vhu_queue *q, unsigned ev)
{
	(void)dev;
	(void)ev;
	struct vhu_vq_elem e[8];
	struct iovec iov[8 * 16];
	struct vhu_vq_used u[8];
	int n;

	while ((n = vhu_queue_pop_burst(q, e, 8, iov, 8 * 16, 16)) > 0) {
		for (int k = 0; k < n; k++) {
			uint32_t len = e[k].in_len ? (uint32_t)(rand_r(&dev_seed) % (e[k].in_len + 1)) : 0;
			uint32_t left = len;
			for (unsigned i = e[k].out_num; i < (unsigned)e[k].out_num + e[k].in_num && left; i++) {
				size_t part = e[k].iov[i].iov_len < left ? e[k].iov[i].iov_len : left;
				memset(e[k].iov[i].iov_base, WRITTEN, part);
				left -= (uint32_t)part;
			}
			u[k] = (struct vhu_vq_used){ e[k].id, len };
		}
		/* both ways of returning them */
		if (rand_r(&dev_seed) & 1) {
			assert_int_equal(vhu_queue_push_burst(q, u, (unsigned)n), n);
		} else {
			for (int k = 0; k < n; k++)
				assert_int_equal(vhu_queue_push(q, &e[k], u[k].len), 0);
		}
		vhu_queue_notify(q);
	}
}

static const struct vhu_device_ops scribbler = { .handle = scribble, .get_config = zero_config };

/* ---- the front-end's side: chains, and the pages they must mark ---------- */

struct chain {
	struct vhu_sg sg[16];
	unsigned out, in;
};

struct run {
	struct vhu_fe *fe;
	struct vhu_fe_queue *q;
	unsigned char *pool;
	uint64_t pool_gpa;
	unsigned seed;
	uint8_t *want;     /* pages of the pool written since the last take */
	bool used_any;     /* since the last take */
};

static uint64_t rnd(struct run *r, uint64_t n) { return (uint64_t)rand_r(&r->seed) % n; }

/* Random segments, one after another with random gaps, in the pool. */
static void make_chain(struct run *r, struct chain *c, uint64_t *at)
{
	c->out = (unsigned)rnd(r, 3);
	c->in = 1 + (unsigned)rnd(r, 5);
	for (unsigned i = 0; i < c->out + c->in; i++) {
		*at += rnd(r, 9000);
		uint32_t len = 1 + (uint32_t)rnd(r, 12000);
		c->sg[i] = (struct vhu_sg){ r->pool_gpa + *at, len };
		memset(r->pool + *at, 0, len);
		*at += len;
	}
}

/* The device wrote len bytes along the chain's writable segments: check
 * them, and note their pages. */
static void written(struct run *r, const struct chain *c, uint32_t len, bool logging)
{
	uint32_t left = len;
	for (unsigned i = c->out; i < c->out + c->in; i++) {
		uint64_t off = c->sg[i].addr - r->pool_gpa;
		uint32_t part = c->sg[i].len < left ? c->sg[i].len : left;
		for (uint32_t b = 0; b < c->sg[i].len; b++)
			assert_int_equal(r->pool[off + b], b < part ? WRITTEN : 0);
		if (logging && part)
			for (uint64_t p = c->sg[i].addr >> 12; p <= (c->sg[i].addr + part - 1) >> 12; p++)
				r->want[p / 8] |= (uint8_t)(1u << (p % 8));
		left -= part;
	}
}

static void one_pass(struct run *r, bool logging)
{
	struct chain c[16];
	unsigned n = 1 + (unsigned)rnd(r, 16);
	uint64_t at = rnd(r, 4096);
	struct vhu_drv_vq *vq = vhu_fe_queue_vq(r->q);

	for (unsigned k = 0; k < n; k++) {
		make_chain(r, &c[k], &at);
		assert_int_equal(vhu_drv_vq_add(vq, c[k].sg, c[k].out, c[k].in, &c[k]), 0);
	}
	assert_int_equal(vhu_fe_queue_kick(r->q), 0);
	for (unsigned got = 0; got < n;) {
		void *tok;
		uint32_t len;
		int g = vhu_drv_vq_get(vq, &tok, &len);
		assert_true(g >= 0);
		if (g == 0) {
			assert_int_equal(vhu_fe_queue_wait(r->q, 5000), 0);
			continue;
		}
		written(r, tok, len, logging);
		got++;
	}
	r->used_any |= logging;
}

/* The bitmap against what was written since the last look; then clear both. */
static void check_log(struct run *r)
{
	const struct vhu_dirty_log *log = vhu_fe_dirty_log(r->fe);
	assert_non_null(log);
	uint8_t *seen = calloc(1, log->size);
	assert_non_null(seen);
	vhu_dirty_log_take(log, seen);
	uint64_t first = r->pool_gpa >> 12, last = (r->pool_gpa + POOL - 1) >> 12;
	bool ring_page = false;
	for (uint64_t p = 0; p < first; p++)
		ring_page |= seen[p / 8] >> (p % 8) & 1;
	if (r->used_any && !ring_page)
		fail_msg("used entries were published but no ring page is marked");
	for (uint64_t p = first; p <= last; p++) {
		bool want = r->want[p / 8] >> (p % 8) & 1, got = seen[p / 8] >> (p % 8) & 1;
		if (want && !got)
			fail_msg("page %llu was written by the device and is not in the log", (unsigned long long)p);
		if (got && !want)
			fail_msg("page %llu is in the log but the device did not write it", (unsigned long long)p);
	}
	memset(r->want, 0, log->size);
	r->used_any = false;
	free(seen);
}

static void workload(bool packed, unsigned seed)
{
	int before = count_fds(), sv[2];
	uint64_t features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_F_INDIRECT_DESC) |
			    (packed ? VHU_BIT(VHU_F_RING_PACKED) : 0);
	struct vhu_device_config dc = {
		.ops = &scribbler, .num_queues = 1, .max_queue_size = 256, .config_size = 8, .features = features,
	};
	struct vhu_device *dev = vhu_device_new(&dc);
	assert_non_null(dev);
	struct vhu_backend_config bc = { .device = dev, .protocol_features = VHU_BACKEND_PROTOCOL_FEATURES };
	struct served s = { .be = vhu_backend_new(&bc) };
	assert_non_null(s.be);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.sock = sv[1];
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, served_thread, &s), 0);

	struct run r = { .seed = seed };
	struct vhu_fe_config fc = { .fd = sv[0], .timeout_ms = 5000 };
	assert_int_equal(vhu_fe_connect(&r.fe, &fc), 0);
	/* not before the device runs */
	assert_int_equal(vhu_fe_log_start(r.fe), -EINVAL);
	struct vhu_fe_setup su = { .features = features, .num_queues = 1, .queue_size = QSIZE,
				   .mem_size = POOL + 4096, .notify = VHU_FE_NOTIFY_EVENTFD,
				   .indirect_max = seed & 1 ? 16 : 0 };   /* chains in tables, or in the ring */
	assert_int_equal(vhu_fe_start(r.fe, &su), 0);
	assert_int_equal(vhu_has_feature(vhu_fe_features(r.fe), VHU_F_RING_PACKED), packed);
	r.q = vhu_fe_queue(r.fe, 0);
	r.pool = vhu_fe_alloc(r.fe, POOL, 4096, &r.pool_gpa);
	assert_non_null(r.pool);
	assert_null(vhu_fe_dirty_log(r.fe));

	bool logging = false;
	for (unsigned round = 0; round < 6; round++) {
		/* on for a while (passes taken between), then off for a while */
		assert_int_equal(vhu_fe_log_start(r.fe), 0);
		assert_int_equal(vhu_fe_log_start(r.fe), -EALREADY);
		logging = true;
		free(r.want);
		r.want = calloc(1, vhu_fe_dirty_log(r.fe)->size);
		assert_non_null(r.want);
		unsigned passes = 1 + (unsigned)rnd(&r, 4);
		for (unsigned p = 0; p < passes; p++) {
			unsigned bursts = 1 + (unsigned)rnd(&r, 6);
			for (unsigned b = 0; b < bursts; b++)
				one_pass(&r, logging);
			check_log(&r);
		}
		one_pass(&r, logging);
		check_log(&r);
		assert_int_equal(vhu_fe_log_stop(r.fe), 0);
		assert_int_equal(vhu_fe_log_stop(r.fe), -ENOENT);
		logging = false;
		assert_null(vhu_fe_dirty_log(r.fe));
		for (unsigned b = 0; b < 1 + rnd(&r, 4); b++)
			one_pass(&r, logging);
	}
	free(r.want);
	vhu_fe_close(r.fe);
	pthread_join(th, NULL);
	vhu_backend_free(s.be);
	vhu_device_free(dev);
	assert_int_equal(count_fds(), before);
}

static void split_random_workload(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= 3; seed++)
		workload(false, seed);
}

static void packed_random_workload(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= 3; seed++)
		workload(true, seed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bitmap_marks_and_takes),
		cmocka_unit_test(split_random_workload),
		cmocka_unit_test(packed_random_workload),
	};
	return cmocka_run_group_tests_name("dirty_log", tests, NULL, NULL);
}
