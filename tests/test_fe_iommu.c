/* SPDX-License-Identifier: MIT */
/*
 * vhu's front-end as the device's IOMMU (vhu_fe setup.iommu,
 * vhu_fe_iommu_map / _unmap), against the back-end library:
 *   - the static window: every buffer is reached through the IOTLB, which
 *     the back-end fills by misses the front-end answers;
 *   - dynamic mappings: a buffer unmapped is not reached (its request
 *     waits), mapping it again answers the miss and the request completes;
 *     a read-only mapping refuses the device's write at once;
 *   - the ring itself unmapped under a running queue: the queue stops, and
 *     goes on where it was once the ring is mapped again;
 * and against a back-end that sends what it should not on its channel: bad
 * sizes, types and permissions, misses for nothing, a flood of misses
 * (bounded), misses that want a reply, and IOTLB messages without
 * ACCESS_PLATFORM.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_backend.h"
#include "fdcount.h"
#include "served.h"
#include "vhu/backend.h"
#include "vhu/frontend.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"

#define QSIZE 64
#define WRITTEN SERVED_WRITTEN

/* the device: served.h's filler (every writable byte; a chain it cannot
 * reach is returned empty and counted) */

static void to_stderr(void *o, enum vhu_log_level l, const char *msg)
{
	(void)o;
	if (getenv("TEST_LOG"))
		fprintf(stderr, "[%s %d] %s\n", o ? "fe" : "be", l, msg);
}


struct rig {
	struct vhu_device *dev;
	struct served s;
	pthread_t th;
	struct vhu_fe *fe;
	struct vhu_fe_queue *q;
	int fds_before;
};

static void rig_up(struct rig *g, bool packed, enum vhu_fe_iommu mode)
{
	uint64_t features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_ACCESS_PLATFORM) |
			    (packed ? VHU_BIT(VHU_F_RING_PACKED) : 0);
	int sv[2];

	atomic_store(&served_faults, 0);
	g->fds_before = count_fds();
	struct vhu_device_config dc = {
		.ops = &served_filler, .num_queues = 1, .max_queue_size = 256, .config_size = 8, .features = features,
		.log = to_stderr, .log_level = VHU_LOG_DEBUG,
	};
	assert_non_null(g->dev = vhu_device_new(&dc));
	struct vhu_backend_config bc = { .device = g->dev, .protocol_features = VHU_BACKEND_PROTOCOL_FEATURES };
	assert_non_null(g->s.be = vhu_backend_new(&bc));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	g->s.sock = sv[1];
	assert_int_equal(pthread_create(&g->th, NULL, served_thread, &g->s), 0);
	struct vhu_fe_config fc = { .fd = sv[0], .timeout_ms = 5000, .log = to_stderr, .log_opaque = g,
				    .log_level = VHU_LOG_DEBUG };
	assert_int_equal(vhu_fe_connect(&g->fe, &fc), 0);
	struct vhu_fe_setup su = { .features = features, .num_queues = 1, .queue_size = QSIZE,
				   .mem_size = 1 << 20, .notify = VHU_FE_NOTIFY_EVENTFD, .iommu = mode };
	assert_int_equal(vhu_fe_start(g->fe, &su), 0);
	assert_true(vhu_has_feature(vhu_fe_features(g->fe), VHU_F_ACCESS_PLATFORM));
	assert_int_equal(vhu_fe_iommu_mode(g->fe), mode);
	g->q = vhu_fe_queue(g->fe, 0);
}

static void rig_down(struct rig *g)
{
	vhu_fe_close(g->fe);
	pthread_join(g->th, NULL);
	vhu_backend_free(g->s.be);
	vhu_device_free(g->dev);
	assert_int_equal(count_fds(), g->fds_before);
}

/* A request in the ring: wait for it to come back; its used length, or
 * -ETIMEDOUT if the device did not return it within wait_ms. */
static int64_t finish_request(struct rig *g, int wait_ms)
{
	struct vhu_drv_vq *vq = vhu_fe_queue_vq(g->q);
	void *tok;
	uint32_t used;
	for (;;) {
		int r = vhu_drv_vq_get(vq, &tok, &used);
		assert_true(r >= 0);
		if (r)
			return used;
		r = vhu_fe_queue_wait(g->q, wait_ms);
		if (r == -ETIMEDOUT)
			return r;
		assert_int_equal(r, 0);
	}
}

/* One writable buffer of len at addr, kicked; as finish_request. */
static int64_t one_request(struct rig *g, uint64_t addr, uint32_t len, int wait_ms)
{
	static struct vhu_sg sg;   /* the token: only one request is out at a time */
	sg = (struct vhu_sg){ addr, len };
	assert_int_equal(vhu_drv_vq_add(vhu_fe_queue_vq(g->q), &sg, 0, 1, &sg), 0);
	assert_int_equal(vhu_fe_queue_kick(g->q), 0);
	return finish_request(g, wait_ms);
}

static bool all(const unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* ---- the static window ----------------------------------------------------- */

static void static_window(bool packed)
{
	struct rig g;
	uint64_t addr;
	struct vhu_fe_iommu_stats st;

	rig_up(&g, packed, VHU_FE_IOMMU_STATIC);
	unsigned char *buf = vhu_fe_alloc(g.fe, 3 * 4096, 4096, &addr);
	assert_non_null(buf);
	assert_true(addr >= VHU_FE_IOVA_BASE);   /* the device sees IOVAs */
	for (unsigned i = 0; i < 20; i++) {
		memset(buf, 0, 3 * 4096);
		uint32_t len = 1 + i * 611;
		assert_int_equal(one_request(&g, addr + i * 7, len, 5000), len);
		assert_true(all(buf + i * 7, len, WRITTEN));
	}
	vhu_fe_iommu_stats(g.fe, &st);
	/* one mapping, learnt by the back-end through its misses */
	assert_int_equal(st.mappings, 1);
	assert_true(st.misses >= 1 && st.answered >= 1);
	assert_int_equal(st.unmapped, 0);
	assert_int_equal(atomic_load(&served_faults), 0);
	rig_down(&g);
}

static void static_window_split(void **s) { (void)s; static_window(false); }
static void static_window_packed(void **s) { (void)s; static_window(true); }

/* ---- dynamic mappings --------------------------------------------------- */

static void dynamic_buffers(bool packed)
{
	struct rig g;
	uint64_t addr;
	struct vhu_fe_iommu_stats st;

	rig_up(&g, packed, VHU_FE_IOMMU_DYNAMIC);
	unsigned char *buf = vhu_fe_alloc(g.fe, 8192, 4096, &addr);
	assert_non_null(buf);

	/* the API's own refusals */
	assert_int_equal(vhu_fe_iommu_map(g.fe, addr, 0, VHU_USER_IOTLB_PERM_RW, false), -EINVAL);
	assert_int_equal(vhu_fe_iommu_map(g.fe, addr, 4096, 0, false), -EINVAL);
	assert_int_equal(vhu_fe_iommu_map(g.fe, addr, 4096, 7, false), -EINVAL);
	assert_int_equal(vhu_fe_iommu_map(g.fe, VHU_FE_IOVA_BASE - 4096, 4096, VHU_USER_IOTLB_PERM_RW, false),
			 -EINVAL);
	assert_int_equal(vhu_fe_iommu_map(g.fe, VHU_FE_IOVA_BASE, UINT64_MAX, VHU_USER_IOTLB_PERM_RW, false),
			 -EINVAL);
	assert_int_equal(vhu_fe_iommu_unmap(g.fe, addr, 0), -EINVAL);
	assert_int_equal(vhu_fe_iommu_unmap(g.fe, UINT64_MAX, 2), -EINVAL);
	assert_int_equal(vhu_fe_iommu_unmap(g.fe, addr, 4096), -ENOENT);

	/* mapped lazily: the back-end asks, the front-end answers */
	assert_int_equal(vhu_fe_iommu_map(g.fe, addr, 4096, VHU_USER_IOTLB_PERM_RW, false), 0);
	memset(buf, 0, 8192);
	assert_int_equal(one_request(&g, addr, 4096, 5000), 4096);
	assert_true(all(buf, 4096, WRITTEN));
	vhu_fe_iommu_stats(g.fe, &st);
	assert_true(st.answered >= 2);   /* the ring, and the buffer */
	assert_int_equal(st.unmapped, 0);

	/* unmapped: once unmap returns, the device does not reach it; the
	 * request waits for a mapping (and would fail after the back-end's
	 * bounded wait) */
	assert_int_equal(vhu_fe_iommu_unmap(g.fe, addr, 4096), 0);
	assert_int_equal(vhu_fe_iommu_unmap(g.fe, addr, 4096), -ENOENT);
	memset(buf, 0, 8192);
	assert_int_equal(one_request(&g, addr, 4096, 300), -ETIMEDOUT);
	assert_true(all(buf, 8192, 0));
	vhu_fe_iommu_stats(g.fe, &st);
	assert_true(st.unmapped >= 1);
	/* mapped again, lazily: the unanswered miss makes it a push, and the
	 * waiting request completes */
	uint64_t pushed = st.pushed;
	assert_int_equal(vhu_fe_iommu_map(g.fe, addr, 4096, VHU_USER_IOTLB_PERM_RW, false), 0);
	assert_int_equal(finish_request(&g, 1500), 4096);
	assert_true(all(buf, 4096, WRITTEN));
	vhu_fe_iommu_stats(g.fe, &st);
	assert_int_equal(st.pushed, pushed + 1);

	/* read-only: the device's write is refused at once, nothing written */
	assert_int_equal(vhu_fe_iommu_map(g.fe, addr + 4096, 4096, VHU_USER_IOTLB_PERM_RO, true), 0);
	assert_int_equal(one_request(&g, addr + 4096, 4096, 1500), 0);
	assert_true(all(buf + 4096, 4096, 0));
	assert_int_equal(atomic_load(&served_faults), 1);
	/* a new mapping over it replaces it, write allowed */
	assert_int_equal(vhu_fe_iommu_map(g.fe, addr + 4096, 4096, VHU_USER_IOTLB_PERM_WO, true), 0);
	assert_int_equal(one_request(&g, addr + 4096, 4096, 1500), 4096);
	assert_true(all(buf + 4096, 4096, WRITTEN));
	rig_down(&g);
}

static void dynamic_buffers_split(void **s) { (void)s; dynamic_buffers(false); }
static void dynamic_buffers_packed(void **s) { (void)s; dynamic_buffers(true); }

/* The ring unmapped under a running queue (everything: rings, buffers):
 * nothing is served; once mapped again the queue goes on where it was. */
static void ring_unmapped_under_running_queue(bool packed)
{
	struct rig g;
	uint64_t addr;

	rig_up(&g, packed, VHU_FE_IOMMU_STATIC);
	unsigned char *buf = vhu_fe_alloc(g.fe, 4096, 4096, &addr);
	for (unsigned round = 0; round < 3; round++) {
		memset(buf, 0, 4096);
		assert_int_equal(one_request(&g, addr, 512, 5000), 512);
		assert_true(all(buf, 512, WRITTEN));
		assert_int_equal(vhu_fe_iommu_unmap(g.fe, VHU_FE_IOVA_BASE, 1ull << 40), 0);
		memset(buf, 0, 4096);
		assert_int_equal(one_request(&g, addr, 1024, 300), -ETIMEDOUT);
		assert_true(all(buf, 4096, 0));
		assert_int_equal(vhu_fe_iommu_map(g.fe, VHU_FE_IOVA_BASE, 1 << 20, VHU_USER_IOTLB_PERM_RW, false), 0);
		assert_int_equal(finish_request(&g, 1500), 1024);
		assert_true(all(buf, 1024, WRITTEN));
	}
	assert_int_equal(atomic_load(&served_faults), 0);
	rig_down(&g);
}

static void ring_unmapped_split(void **s) { (void)s; ring_unmapped_under_running_queue(false); }
static void ring_unmapped_packed(void **s) { (void)s; ring_unmapped_under_running_queue(true); }

/* ---- a back-end that misbehaves on its channel (tests/fake_backend.h) -- */

/* A BACKEND_IOTLB_MSG of size bytes from the fake back-end; the reply. */
static int64_t chan_send(struct fake *f, struct vhu_fe *fe, uint32_t size, const struct vhu_user_iotlb *t,
			 bool need_reply)
{
	return fake_chan_send(f, fe, VHU_USER_BACKEND_IOTLB_MSG, size, t, sizeof(*t), -1, need_reply);
}

static void hostile_channel(void **state)
{
	(void)state;
	int before = count_fds();
	struct fake f;
	pthread_t th;
	struct vhu_fe *fe;
	struct vhu_fe_iommu_stats st;
	const uint64_t base = VHU_FE_IOVA_BASE;

	fake_up(&f, &th, &fe, VHU_FE_IOMMU_STATIC, false);
	struct vhu_user_iotlb miss = { .iova = base + 100, .size = 1, .perm = VHU_USER_IOTLB_PERM_RO,
				       .type = VHU_USER_IOTLB_MISS };
	/* a miss for what is mapped: an UPDATE of the mapping, then the reply */
	assert_int_equal(chan_send(&f, fe, sizeof(miss), &miss, true), 0);
	assert_int_equal(fake_iotlb_seen(&f), 1);
	assert_int_equal(f.got[0].type, VHU_USER_IOTLB_UPDATE);
	assert_int_equal(f.got[0].iova, base);
	assert_true(f.got[0].size >= 1 << 20);
	assert_int_equal(f.got[0].perm, VHU_USER_IOTLB_PERM_RW);
	assert_true(f.got[0].uaddr != 0);

	/* each refused (1), none answered with an update */
	struct vhu_user_iotlb bad = miss;
	assert_int_equal(chan_send(&f, fe, 8, &bad, true), 1);             /* short */
	bad.type = VHU_USER_IOTLB_UPDATE;                                  /* the wrong way */
	assert_int_equal(chan_send(&f, fe, sizeof(bad), &bad, true), 1);
	bad.type = VHU_USER_IOTLB_INVALIDATE;
	assert_int_equal(chan_send(&f, fe, sizeof(bad), &bad, true), 1);
	bad.type = 77;
	assert_int_equal(chan_send(&f, fe, sizeof(bad), &bad, true), 1);
	bad = miss;
	bad.perm = 0;
	assert_int_equal(chan_send(&f, fe, sizeof(bad), &bad, true), 1);
	bad.perm = 9;
	assert_int_equal(chan_send(&f, fe, sizeof(bad), &bad, true), 1);
	/* nothing maps it: no answer, and the reply says so */
	bad = miss;
	bad.iova = 0x1000;
	assert_int_equal(chan_send(&f, fe, sizeof(bad), &bad, true), 1);
	bad.iova = UINT64_MAX;
	assert_int_equal(chan_send(&f, fe, sizeof(bad), &bad, true), 1);
	assert_int_equal(fake_iotlb_seen(&f), 1);
	/* an access fault is noted */
	bad = miss;
	bad.type = VHU_USER_IOTLB_ACCESS_FAIL;
	assert_int_equal(chan_send(&f, fe, sizeof(bad), &bad, true), 0);

	/* floods of misses, 100 distinct pages a serve: 64 wait for an
	 * answer, the rest are dropped (the back-end asks again), memory
	 * bounded */
	struct vhu_user_msg m;
	memset(&m, 0, sizeof(m));
	m.hdr = (struct vhu_user_hdr){ VHU_USER_BACKEND_IOTLB_MSG, VHU_USER_VERSION, sizeof(miss) };
	for (unsigned batch = 0; batch < 4; batch++) {
		for (unsigned i = 0; i < 100; i++) {
			m.payload.iotlb = miss;
			m.payload.iotlb.iova = base + (uint64_t)(batch % 2 * 100 + i) * 4096;
			assert_int_equal(vhu_user_send(f.chan, &m), 0);
		}
		vhu_fe_serve_backend(fe, 200);
	}
	vhu_fe_iommu_stats(fe, &st);
	assert_int_equal(st.misses, 1 + 2 + 400);
	assert_int_equal(st.dropped, 4 * 36);
	assert_int_equal(st.answered, 1 + 4 * 64);
	assert_int_equal(st.access_fails, 1);
	assert_int_equal(st.unmapped, 2);
	assert_int_equal(fake_iotlb_seen(&f), 1 + 4 * 64);
	/* the same page asked twice before the answer: answered once */
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(vhu_user_send(f.chan, &m), 0);
	vhu_fe_serve_backend(fe, 200);
	assert_int_equal(fake_iotlb_seen(&f), 2 + 4 * 64);

	/* a miss that arrives while a request of ours waits for its reply is
	 * taken then and answered by the next serve, which must not wait for
	 * more traffic first (it waited its whole timeout: 100 ms a request
	 * with in-band notifications). Here the serve may wait for ever: it
	 * has to return because of the miss. */
	atomic_store(&f.miss_before_reply, true);
	assert_int_equal(vhu_fe_iommu_map(fe, base + (512 << 10), 4096, VHU_USER_IOTLB_PERM_RW, true), 0);
	/* the invalidation of what it replaces in the window, the push; the
	 * miss not answered yet */
	assert_int_equal(fake_iotlb_seen(&f), 4 + 4 * 64);
	alarm(20);
	vhu_fe_serve_backend(fe, -1);
	alarm(0);
	assert_int_equal(fake_iotlb_seen(&f), 5 + 4 * 64);
	fake_down(&f, th, fe);

	/* no IOMMU negotiated: every IOTLB message refused */
	fake_up(&f, &th, &fe, VHU_FE_IOMMU_OFF, false);
	assert_false(vhu_has_feature(vhu_fe_features(fe), VHU_F_ACCESS_PLATFORM));
	assert_int_equal(chan_send(&f, fe, sizeof(miss), &miss, true), 1);
	assert_int_equal(fake_iotlb_seen(&f), 0);
	assert_int_equal(vhu_fe_iommu_map(fe, base, 4096, VHU_USER_IOTLB_PERM_RW, false), -ENOTSUP);
	assert_int_equal(vhu_fe_iommu_unmap(fe, base, 4096), -ENOTSUP);
	fake_down(&f, th, fe);
	assert_int_equal(count_fds(), before);
}

/* The table is the IOMMU's state: bounded, and full means -ENOSPC, never
 * a mapping silently dropped. */
static void mapping_table_is_bounded(void **state)
{
	(void)state;
	struct fake f;
	pthread_t th;
	struct vhu_fe *fe;
	struct vhu_fe_iommu_stats st;

	fake_up(&f, &th, &fe, VHU_FE_IOMMU_DYNAMIC, false);
	/* after the ring, one byte a mapping, upwards (each lands at the end) */
	uint64_t at = VHU_FE_IOVA_BASE + (256 << 10);
	int r = 0;
	unsigned made = 0;
	while ((r = vhu_fe_iommu_map(fe, at + 2 * made, 1, VHU_USER_IOTLB_PERM_RO, false)) == 0)
		made++;
	assert_int_equal(r, -ENOSPC);
	vhu_fe_iommu_stats(fe, &st);
	assert_int_equal(st.mappings, 65535);   /* the ring's and ours */
	assert_int_equal(made, 65534);
	/* unmapping makes room again */
	assert_int_equal(vhu_fe_iommu_unmap(fe, at, 1), 0);
	assert_int_equal(vhu_fe_iommu_map(fe, at, 1, VHU_USER_IOTLB_PERM_RW, false), 0);
	fake_down(&f, th, fe);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(static_window_split),
		cmocka_unit_test(static_window_packed),
		cmocka_unit_test(dynamic_buffers_split),
		cmocka_unit_test(dynamic_buffers_packed),
		cmocka_unit_test(ring_unmapped_split),
		cmocka_unit_test(ring_unmapped_packed),
		cmocka_unit_test(hostile_channel),
		cmocka_unit_test(mapping_table_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
