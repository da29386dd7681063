/* SPDX-License-Identifier: MIT */
/*
 * Doorbells (HOST_NOTIFIER) between vhu's back-end library and
 *   - vhu's front-end library: kicks by one store into the page, with
 *     NOTIFICATION_DATA, split and packed; the doorbell withdrawn after an
 *     idle spell (kicks go by the eventfd) and offered again on the next
 *     kick; a front-end without doorbells never gets one;
 *   - a scripted front-end (tests/minife.c): hostile values stored into the
 *     page (another queue's index, positions ahead of and behind the ring,
 *     the empty marker itself, random words) between real requests: counted,
 *     ignored, the queue goes on; a front-end that refuses the page (as QEMU
 *     without page-per-vq) gets it once and kicks by the eventfd; one that
 *     says yes but never maps it is served all the same; a stopped ring's
 *     doorbell is withdrawn.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_backend.h"
#include "fdcount.h"
#include "minife.h"
#include "served.h"
#include "vhu/backend.h"
#include "vhu/frontend.h"
#include "vhu/virtio.h"

#define QSIZE 64
#define WRITTEN SERVED_WRITTEN
#define HOST_NOTIFIER_PF (1ull << VHU_USER_PROTOCOL_F_HOST_NOTIFIER)


/* What the back-end said at the end of the session about the doorbell. */
static char last_doorbell_line[256];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void watch_log(void *o, enum vhu_log_level l, const char *msg)
{
	(void)o;
	(void)l;
	if (getenv("TEST_LOG"))
		fprintf(stderr, "[be] %s\n", msg);
	pthread_mutex_lock(&log_lock);
	if (strstr(msg, "doorbell:"))
		snprintf(last_doorbell_line, sizeof(last_doorbell_line), "%s", msg);
	pthread_mutex_unlock(&log_lock);
}

struct rig {
	struct vhu_device *dev;
	struct served s;
	pthread_t th;
	int fe_sock, fds_before;
};

static void rig_up(struct rig *g, bool doorbells)
{
	uint64_t features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) |
			    VHU_BIT(VHU_F_NOTIFICATION_DATA);
	int sv[2];
	g->fds_before = count_fds();
	last_doorbell_line[0] = 0;
	struct vhu_device_config dc = {
		.ops = &served_filler, .num_queues = 1, .max_queue_size = 256, .config_size = 8, .features = features,
		.log = watch_log, .log_level = VHU_LOG_DEBUG,
	};
	assert_non_null(g->dev = vhu_device_new(&dc));
	struct vhu_backend_config bc = { .device = g->dev,
					 .protocol_features = VHU_BACKEND_PROTOCOL_FEATURES |
							      (doorbells ? HOST_NOTIFIER_PF : 0) };
	assert_non_null(g->s.be = vhu_backend_new(&bc));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	g->s.sock = sv[1];
	g->fe_sock = sv[0];
	assert_int_equal(pthread_create(&g->th, NULL, served_thread, &g->s), 0);
}

static void rig_down(struct rig *g)
{
	pthread_join(g->th, NULL);
	vhu_backend_free(g->s.be);
	vhu_device_free(g->dev);
	assert_int_equal(count_fds(), g->fds_before);
}

static bool all(const unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* ---- vhu's front-end ---------------------------------------------------- */

struct lib {
	struct vhu_fe *fe;
	struct vhu_fe_queue *q;
	unsigned char *buf;
	uint64_t addr;
};

static void lib_up(struct rig *g, struct lib *l, bool packed, bool doorbells)
{
	struct vhu_fe_config fc = { .fd = g->fe_sock, .timeout_ms = 5000, .doorbells = doorbells };
	assert_int_equal(vhu_fe_connect(&l->fe, &fc), 0);
	struct vhu_fe_setup su = {
		.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_F_NOTIFICATION_DATA) |
			    (packed ? VHU_BIT(VHU_F_RING_PACKED) : 0),
		.num_queues = 1, .queue_size = QSIZE, .mem_size = 1 << 20, .notify = VHU_FE_NOTIFY_EVENTFD,
	};
	assert_int_equal(vhu_fe_start(l->fe, &su), 0);
	assert_int_equal(vhu_has_feature(vhu_fe_features(l->fe), VHU_F_RING_PACKED), packed);
	l->q = vhu_fe_queue(l->fe, 0);
	assert_non_null(l->buf = vhu_fe_alloc(l->fe, 4096, 4096, &l->addr));
}

static void lib_request(struct lib *l, uint32_t len)
{
	struct vhu_drv_vq *vq = vhu_fe_queue_vq(l->q);
	struct vhu_sg sg = { l->addr, len };
	void *tok;
	uint32_t used;
	memset(l->buf, 0, 4096);
	assert_int_equal(vhu_drv_vq_add(vq, &sg, 0, 1, &sg), 0);
	assert_int_equal(vhu_fe_queue_kick(l->q), 0);
	for (;;) {
		int r = vhu_drv_vq_get(vq, &tok, &used);
		assert_true(r >= 0);
		if (r)
			break;
		assert_int_equal(vhu_fe_queue_wait(l->q, 5000), 0);
	}
	assert_int_equal(used, len);
	assert_true(all(l->buf, len, WRITTEN));
	assert_true(all(l->buf + len, 4096 - len, 0));
}

static void kicks_by_doorbell(bool packed)
{
	struct rig g;
	struct lib l;
	struct vhu_fe_queue_stats st;

	rig_up(&g, true);
	lib_up(&g, &l, packed, true);
	assert_true(vhu_fe_protocol_features(l.fe) & HOST_NOTIFIER_PF);
	/* only a doorbell carries notification data: negotiated with one */
	assert_true(vhu_has_feature(vhu_fe_features(l.fe), VHU_F_NOTIFICATION_DATA));
	for (unsigned i = 0; i < 300; i++)
		lib_request(&l, 1 + (i * 37) % 4096);
	vhu_fe_queue_stats(l.q, &st);
	/* the first kick comes by the eventfd and makes the queue busy; the
	 * page follows, and from then on the kicks are stores */
	assert_int_equal(st.doorbells_mapped, 1);
	assert_int_equal(st.doorbells_refused, 0);
	assert_true(st.kicks_eventfd >= 1);
	assert_true(st.kicks_doorbell >= 250);
	vhu_fe_close(l.fe);
	rig_down(&g);
	/* the back-end saw them, and every value agreed with the ring */
	assert_non_null(strstr(last_doorbell_line, " 0 notification values disagreeing"));
}

static void kicks_by_doorbell_split(void **s) { (void)s; kicks_by_doorbell(false); }
static void kicks_by_doorbell_packed(void **s) { (void)s; kicks_by_doorbell(true); }

/* Idle past VHU_DOORBELL_IDLE_NS (20 ms): the back-end withdraws the page,
 * the next kick goes by the eventfd and brings the page back. Withdrawals
 * are at least a second apart (QEMU 7.2 aborts on two within an RCU grace
 * period): idle again sooner, the doorbell stays live. */
static void quiet(struct lib *l, int ms)
{
	for (int k = 0; k < ms / 50; k++)
		vhu_fe_serve_backend(l->fe, 50);   /* the withdrawal comes on the channel */
}

static void withdrawn_when_idle_offered_when_busy(void **state)
{
	(void)state;
	struct rig g;
	struct lib l;
	struct vhu_fe_queue_stats st, before;

	rig_up(&g, true);
	lib_up(&g, &l, false, true);
	for (unsigned i = 0; i < 20; i++)
		lib_request(&l, 512);
	for (unsigned round = 0; round < 2; round++) {
		vhu_fe_queue_stats(l.q, &before);
		quiet(&l, round ? 1100 : 150);
		lib_request(&l, 100);   /* by the eventfd: the page was withdrawn */
		for (unsigned i = 0; i < 20; i++)
			lib_request(&l, 200);
		vhu_fe_queue_stats(l.q, &st);
		/* at least the first by the eventfd (more until the new page is
		 * taken off the channel), then by the page offered again */
		assert_true(st.kicks_eventfd >= before.kicks_eventfd + 1);
		assert_int_equal(st.doorbells_mapped, before.doorbells_mapped + 1);
		assert_true(st.kicks_doorbell >= before.kicks_doorbell + 10);
		/* idle again at once: too soon after that withdrawal, declined */
		vhu_fe_queue_stats(l.q, &before);
		quiet(&l, 150);
		for (unsigned i = 0; i < 10; i++)
			lib_request(&l, 300);
		vhu_fe_queue_stats(l.q, &st);
		assert_int_equal(st.kicks_eventfd, before.kicks_eventfd);
		assert_int_equal(st.doorbells_mapped, before.doorbells_mapped);
		assert_int_equal(st.kicks_doorbell, before.kicks_doorbell + 10);
	}
	vhu_fe_close(l.fe);
	rig_down(&g);
}

static void front_end_without_doorbells(void **state)
{
	(void)state;
	struct rig g;
	struct lib l;
	struct vhu_fe_queue_stats st;

	rig_up(&g, true);
	lib_up(&g, &l, false, false);
	assert_false(vhu_fe_protocol_features(l.fe) & HOST_NOTIFIER_PF);
	assert_false(vhu_has_feature(vhu_fe_features(l.fe), VHU_F_NOTIFICATION_DATA));
	for (unsigned i = 0; i < 50; i++)
		lib_request(&l, 4096);
	vhu_fe_queue_stats(l.q, &st);
	assert_int_equal(st.kicks_doorbell, 0);
	assert_int_equal(st.doorbells_mapped, 0);
	vhu_fe_close(l.fe);
	rig_down(&g);
}

/* ---- a scripted front-end ----------------------------------------------- */

static void mini_up(struct rig *g, struct fe *f, enum fe_doorbell_answer answer, bool notification_data)
{
	int chan[2];
	fe_init(f, g->fe_sock, FE_MEM_SIZE);
	f->doorbell_answer = answer;
	fe_negotiate(f, VHU_BIT(VHU_F_VERSION_1) | (notification_data ? VHU_BIT(VHU_F_NOTIFICATION_DATA) : 0),
		     (1ull << VHU_USER_PROTOCOL_F_REPLY_ACK) | (1ull << VHU_USER_PROTOCOL_F_BACKEND_REQ) |
			     HOST_NOTIFIER_PF);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan), 0);
	assert_int_equal(fe_req(f, VHU_USER_SET_BACKEND_REQ_FD, NULL, 0, &chan[1], 1, true, NULL), 0);
	close(chan[1]);
	f->chan = chan[0];
	fe_mem_table(f);
	fe_setup_ring(f, QSIZE, true);
}

/* One request from the scripted front-end: a writable buffer of 1 KiB. */
static void mini_request(struct fe *f)
{
	uint64_t at = 64 << 10;
	struct vhu_sg sg = { at, 1024 };
	void *t;
	uint32_t len;
	memset(f->mem + at, 0, 1024);
	assert_int_equal(vhu_drv_vq_add(&f->q[0].drv, &sg, 0, 1, &sg), 0);
	fe_kick(f, 0);
	fe_wait_used(f, 0, &t, &len);
	assert_int_equal(len, 1024);
	assert_true(all(f->mem + at, 1024, WRITTEN));
}

static void mini_down(struct rig *g, struct fe *f)
{
	close(f->chan);
	f->chan = -1;
	fe_close(f);
	rig_down(g);
}

static void hostile_doorbell_values(void **state)
{
	(void)state;
	struct rig g;
	struct fe f;
	rig_up(&g, true);
	mini_up(&g, &f, FE_DOORBELL_USE, true);
	mini_request(&f);   /* by the eventfd: busy, the page comes */
	for (int k = 0; k < 20 && !f.q[0].doorbell; k++)
		fe_serve_backend_channel(&f, 50);
	assert_non_null(f.q[0].doorbell);
	uint32_t avail = vhu_drv_vq_notification_data(&f.q[0].drv) >> 16;
	const uint32_t bad[] = {
		5,                                  /* another queue's index, no position */
		0 | (avail + 1000u) << 16,          /* far ahead of the ring */
		0 | (avail + 3u) << 16,             /* a little ahead: more than is there */
		0 | (uint32_t)(uint16_t)(avail - 7) << 16,   /* behind */
		0xffffffffu,                        /* the empty marker itself */
		0x12345678u, 0xdeadbeefu, 0x0000fffeu,
	};
	unsigned seed = 11;
	for (unsigned round = 0; round < 40; round++) {
		/* a bad value alone: nothing to do, nothing broken */
		__atomic_store_n(f.q[0].doorbell, bad[round % (sizeof(bad) / sizeof(bad[0]))] ^
			(round >= 16 ? (uint32_t)rand_r(&seed) : 0u), __ATOMIC_RELEASE);
		usleep(200);
		/* then a real request, kicked by a store of the true value */
		mini_request(&f);
	}
	struct vhu_user_vring_state s = { 0, 0 };
	struct vhu_user_msg r;
	fe_req(&f, VHU_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, false, &r);
	/* the stopped ring's doorbell is withdrawn ("no fd" form) */
	for (int k = 0; k < 20 && !f.q[0].doorbell_gone; k++)
		fe_serve_backend_channel(&f, 50);
	assert_int_equal(f.q[0].doorbell_gone, 1);
	assert_null(f.q[0].doorbell);
	mini_down(&g, &f);
	/* the back-end counted the values that disagreed with the ring and
	 * served every real request */
	assert_non_null(strstr(last_doorbell_line, "doorbell:"));
	assert_null(strstr(last_doorbell_line, " 0 notification values disagreeing"));
}

static void refused_page_is_not_offered_again(void **state)
{
	(void)state;
	struct rig g;
	struct fe f;
	rig_up(&g, true);
	mini_up(&g, &f, FE_DOORBELL_REFUSE, false);
	for (unsigned i = 0; i < 50; i++) {
		mini_request(&f);
		fe_serve_backend_channel(&f, 0);
	}
	fe_serve_backend_channel(&f, 100);
	assert_int_equal(f.q[0].doorbell_msgs, 1);
	assert_null(f.q[0].doorbell);
	mini_down(&g, &f);
}

/* "Yes", and then it kicks by the eventfd all the same: the live doorbell's
 * thread watches the kick fd too. */
static void front_end_that_never_maps_the_page(void **state)
{
	(void)state;
	struct rig g;
	struct fe f;
	rig_up(&g, true);
	mini_up(&g, &f, FE_DOORBELL_IGNORE, false);
	for (unsigned i = 0; i < 100; i++)
		mini_request(&f);
	assert_true(f.q[0].doorbell_msgs >= 1);
	mini_down(&g, &f);
}

/* Without HOST_NOTIFIER offered nothing changes: no page is ever sent. */
static void back_end_without_doorbells(void **state)
{
	(void)state;
	struct rig g;
	struct fe f;
	rig_up(&g, false);
	fe_init(&f, g.fe_sock, FE_MEM_SIZE);
	fe_req(&f, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL);
	uint64_t pf = fe_req(&f, VHU_USER_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, false, NULL);
	assert_false(pf & HOST_NOTIFIER_PF);
	assert_true(pf & (1ull << VHU_USER_PROTOCOL_F_BACKEND_REQ));
	fe_close(&f);
	rig_down(&g);
}

/* ---- vhu's front-end facing a back-end that sends bad doorbells --------- */

static int sealed_page(size_t size, bool seal)
{
	int fd = memfd_create("test-doorbell", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (seal)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	return fd;
}

static int64_t send_area(struct fake *f, struct vhu_fe *fe, uint32_t size, uint64_t u64, uint64_t len,
			 uint64_t offset, int fd)
{
	struct vhu_user_vring_area a = { u64, len, offset };
	return fake_chan_send(f, fe, VHU_USER_BACKEND_VRING_HOST_NOTIFIER_MSG, size, &a, sizeof(a), fd, true);
}

/* A buffer added and kicked: how the kick went shows in the stats. */
static void fe_kick_one(struct vhu_fe *fe, uint64_t addr)
{
	struct vhu_fe_queue *q = vhu_fe_queue(fe, 0);
	struct vhu_sg sg = { addr, 64 };
	assert_int_equal(vhu_drv_vq_add(vhu_fe_queue_vq(q), &sg, 0, 1, &sg), 0);
	assert_int_equal(vhu_fe_queue_kick(q), 0);
}

static void hostile_doorbell_messages(void **state)
{
	(void)state;
	int before = count_fds();
	struct fake f;
	pthread_t th;
	struct vhu_fe *fe;
	struct vhu_fe_queue_stats st;
	const uint32_t full = sizeof(struct vhu_user_vring_area);
	uint64_t addr;

	fake_up(&f, &th, &fe, VHU_FE_IOMMU_OFF, true);
	assert_non_null(vhu_fe_alloc(fe, 4096, 4096, &addr));
	int good = sealed_page(4096, true), unsealed = sealed_page(4096, false), efd = eventfd(0, EFD_CLOEXEC);
	/* each refused (reply 1), none mapped */
	assert_int_equal(send_area(&f, fe, 8, 0, 4096, 0, good), 1);                     /* short */
	assert_int_equal(send_area(&f, fe, full, 3, 4096, 0, good), 1);                  /* no queue 3 */
	assert_int_equal(send_area(&f, fe, full, 1u << 9, 4096, 0, good), 1);            /* reserved bits */
	assert_int_equal(send_area(&f, fe, full, 0, 4096, 0, -1), 1);                    /* no file */
	assert_int_equal(send_area(&f, fe, full, 0, 8192, 0, good), 1);                  /* not a page */
	assert_int_equal(send_area(&f, fe, full, 0, 0, 0, good), 1);
	assert_int_equal(send_area(&f, fe, full, 0, 4096, 100, good), 1);                /* unaligned */
	assert_int_equal(send_area(&f, fe, full, 0, 4096, 4096, good), 1);               /* past the file */
	assert_int_equal(send_area(&f, fe, full, 0, 4096, UINT64_MAX & ~4095ull, good), 1);
	assert_int_equal(send_area(&f, fe, full, 0, 4096, 0, unsealed), 1);              /* could shrink */
	assert_int_equal(send_area(&f, fe, full, 0, 4096, 0, efd), 1);                   /* not a file */
	fe_kick_one(fe, addr);
	vhu_fe_queue_stats(vhu_fe_queue(fe, 0), &st);
	assert_int_equal(st.doorbells_mapped, 0);
	assert_int_equal(st.doorbells_refused, 7);   /* the ones with a file to look at */
	assert_int_equal(st.kicks_eventfd, 1);
	/* a good page: the next kick is a store of the queue index into it */
	assert_int_equal(send_area(&f, fe, full, 0, 4096, 0, good), 0);
	uint32_t *ours = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, good, 0);
	assert_true(ours != MAP_FAILED);
	ours[0] = 0xffffffffu;
	fe_kick_one(fe, addr + 64);
	assert_int_equal(ours[0], 0xffff0000u);   /* 16 bits: queue 0 */
	/* replaced by another page, then withdrawn: back to the eventfd */
	int second = sealed_page(4096, true);
	assert_int_equal(send_area(&f, fe, full, 0, 4096, 0, second), 0);
	assert_int_equal(send_area(&f, fe, full, VHU_USER_VRING_NOFD_MASK, 0, 0, -1), 0);
	ours[0] = 0xffffffffu;
	fe_kick_one(fe, addr + 128);
	assert_int_equal(ours[0], 0xffffffffu);
	vhu_fe_queue_stats(vhu_fe_queue(fe, 0), &st);
	assert_int_equal(st.kicks_doorbell, 1);
	assert_int_equal(st.kicks_eventfd, 2);
	assert_int_equal(st.doorbells_mapped, 2);
	munmap(ours, 4096);
	fake_down(&f, th, fe);

	/* HOST_NOTIFIER not negotiated: refused */
	fake_up(&f, &th, &fe, VHU_FE_IOMMU_OFF, false);
	assert_int_equal(send_area(&f, fe, full, 0, 4096, 0, good), 1);
	fake_down(&f, th, fe);
	close(good);
	close(second);
	close(unsealed);
	close(efd);
	assert_int_equal(count_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kicks_by_doorbell_split),
		cmocka_unit_test(kicks_by_doorbell_packed),
		cmocka_unit_test(withdrawn_when_idle_offered_when_busy),
		cmocka_unit_test(front_end_without_doorbells),
		cmocka_unit_test(hostile_doorbell_values),
		cmocka_unit_test(refused_page_is_not_offered_again),
		cmocka_unit_test(front_end_that_never_maps_the_page),
		cmocka_unit_test(back_end_without_doorbells),
		cmocka_unit_test(hostile_doorbell_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
