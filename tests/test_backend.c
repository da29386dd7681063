/* SPDX-License-Identifier: MIT */
/*
 * The back-end library driven by a scripted front-end over a socketpair:
 * every request in a working session (split and packed rings, eventfd and
 * in-band notifications, memory slots, stop and restart, reset), then every
 * malformed field, each answered with an error while the session carries
 * on. The back-end serves a small echo device defined here. Every case
 * checks that no fd leaked once the session is over.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "vhu/backend.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"

#define MEM_SIZE (1u << 20)
#define QSIZE 16
#define ECHO_CONFIG_SIZE 16

/* ---- the echo device: copies what it reads into what it may write ----- */
static uint8_t echo_config[ECHO_CONFIG_SIZE] = "vhu-echo-config";

static void echo_handle(struct vhu_backend *be, struct vhu_bqueue *q, unsigned ev)
{
	struct vhu_vq_elem e;
	struct iovec iov[16];
	int r;
	(void)be;
	(void)ev;
	while ((r = vhu_bqueue_pop(q, &e, iov, 16)) != 0) {
		if (r < 0) {
			if (vhu_dev_vq_broken(vhu_bqueue_vq(q)))
				break;
			vhu_bqueue_push(q, &e, 0);
			continue;
		}
		uint64_t n = e.out_len < e.in_len ? e.out_len : e.in_len;
		unsigned char buf[4096];
		if (n > sizeof(buf))
			n = sizeof(buf);
		uint64_t done = 0;
		for (unsigned i = 0; i < e.out_num && done < n; i++) {
			uint64_t c = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
			memcpy(buf + done, iov[i].iov_base, c);
			done += c;
		}
		done = 0;
		for (unsigned i = e.out_num; i < e.out_num + e.in_num && done < n; i++) {
			uint64_t c = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
			memcpy(iov[i].iov_base, buf + done, c);
			done += c;
		}
		vhu_bqueue_push(q, &e, (uint32_t)n);
	}
	vhu_bqueue_notify(q);
}

static int echo_get_config(struct vhu_backend *be, uint8_t *buf, uint32_t off, uint32_t len)
{
	(void)be;
	memcpy(buf, echo_config + off, len);
	return 0;
}

static int echo_set_config(struct vhu_backend *be, const uint8_t *buf, uint32_t off, uint32_t len, uint32_t flags)
{
	(void)be;
	(void)flags;
	memcpy(echo_config + off, buf, len);
	return 0;
}

static const struct vhu_device_ops echo_ops = {
	.handle = echo_handle, .get_config = echo_get_config, .set_config = echo_set_config,
};

#define ALL_PF ((1ull << VHU_USER_PROTOCOL_F_MQ) | (1ull << VHU_USER_PROTOCOL_F_REPLY_ACK) | \
		(1ull << VHU_USER_PROTOCOL_F_BACKEND_REQ) | (1ull << VHU_USER_PROTOCOL_F_CONFIG) | \
		(1ull << VHU_USER_PROTOCOL_F_RESET_DEVICE) |                          \
		(1ull << VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS) |                  \
		(1ull << VHU_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | (1ull << VHU_USER_PROTOCOL_F_STATUS))
#define DEV_FEATURES (VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) | \
		      VHU_BIT(VHU_F_INDIRECT_DESC))

/* ---- the scripted front-end ------------------------------------------- */
struct fe {
	int sock, backend_sock;
	pthread_t thread;
	struct vhu_backend *be;
	int memfd;
	unsigned char *mem;        /* our view; its address is the "user address" */
	uint64_t features;
	struct vhu_vq_layout layout;
	struct vhu_drv_vq drv;
	int kick, call, err;
	int chan;                  /* our end of the back-end channel, or -1 */
	unsigned inband_calls;     /* VRING_CALLs received and not yet consumed */
};

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void log_stderr(void *o, enum vhu_log_level l, const char *msg)
{
	(void)o;
	fprintf(stderr, "# backend[%d]: %s\n", l, msg);
}

static void *backend_thread(void *arg)
{
	struct fe *f = arg;
	vhu_backend_run_conn(f->be, f->backend_sock);
	return NULL;
}

static void fe_start(struct fe *f, uint16_t nq)
{
	int sv[2];
	memset(f, 0, sizeof(*f));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->sock = sv[0];
	f->backend_sock = sv[1];
	struct vhu_backend_config cfg = {
		.ops = &echo_ops, .num_queues = nq, .max_queue_size = 256, .features = DEV_FEATURES,
		.protocol_features = ALL_PF, .config_size = ECHO_CONFIG_SIZE,
		.log = getenv("VHU_TEST_LOG") ? log_stderr : NULL, .log_level = VHU_LOG_DEBUG,
	};
	f->be = vhu_backend_new(&cfg);
	assert_non_null(f->be);
	assert_int_equal(pthread_create(&f->thread, NULL, backend_thread, f), 0);
	f->memfd = memfd_create("vhu-guest", MFD_CLOEXEC);
	assert_int_equal(ftruncate(f->memfd, MEM_SIZE), 0);
	f->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	assert_true(f->mem != MAP_FAILED);
	f->kick = f->call = f->err = f->chan = -1;
}

/* Serve one message on the back-end channel: count VRING_CALLs, ack. */
static void fe_serve_chan(struct fe *f)
{
	struct vhu_user_msg m;
	assert_int_equal(vhu_user_recv(f->chan, &m, 1000), 0);
	vhu_user_msg_close_fds(&m);
	if (m.hdr.request == VHU_USER_BACKEND_VRING_CALL) {
		assert_int_equal(m.payload.state.index, 0);
		f->inband_calls++;
	}
	if (m.hdr.flags & VHU_USER_NEED_REPLY_MASK) {
		struct vhu_user_msg r;
		memset(&r, 0, sizeof(r));
		r.hdr = (struct vhu_user_hdr){ m.hdr.request, VHU_USER_VERSION | VHU_USER_REPLY_MASK, 8 };
		assert_int_equal(vhu_user_send(f->chan, &r), 0);
	}
}

/* Wait for the reply on the main socket, serving the back-end channel
 * meanwhile, as an in-band front-end must. */
static int fe_recv_reply(struct fe *f, struct vhu_user_msg *r)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = f->sock, .events = POLLIN }, { .fd = f->chan, .events = POLLIN } };
		int n = poll(p, f->chan >= 0 ? 2 : 1, 3000);
		if (n <= 0)
			return -ETIMEDOUT;
		if (f->chan >= 0 && (p[1].revents & POLLIN))
			fe_serve_chan(f);
		if (p[0].revents & (POLLIN | POLLHUP))
			return vhu_user_recv(f->sock, r, 1000);
	}
}

static void fe_stop(struct fe *f)
{
	if (f->sock >= 0)
		close(f->sock);
	pthread_join(f->thread, NULL);
	vhu_backend_free(f->be);
	vhu_drv_vq_destroy(&f->drv);
	munmap(f->mem, MEM_SIZE);
	close(f->memfd);
	if (f->kick >= 0)
		close(f->kick);
	if (f->call >= 0)
		close(f->call);
	if (f->err >= 0)
		close(f->err);
}

/* Send a request; with need_reply (or a request that replies) wait for the
 * answer. Returns the reply's u64 (or 0), and the whole reply in *out. */
static uint64_t fe_req(struct fe *f, uint32_t req, const void *payload, uint32_t size,
		       const int *fds, unsigned nfds, bool need_reply, struct vhu_user_msg *out)
{
	struct vhu_user_msg m, r;
	memset(&m, 0, sizeof(m));
	m.hdr.request = req;
	m.hdr.flags = VHU_USER_VERSION | (need_reply ? VHU_USER_NEED_REPLY_MASK : 0);
	m.hdr.size = size;
	if (size)
		memcpy(&m.payload, payload, size);
	for (unsigned i = 0; i < nfds; i++)
		m.fds[i] = fds[i];
	m.nfds = nfds;
	assert_int_equal(vhu_user_send(f->sock, &m), 0);
	const struct vhu_user_request_info *ri = vhu_user_request_info(req);
	if (!need_reply && !(ri && ri->replies))
		return 0;
	int rc = fe_recv_reply(f, &r);
	if (rc != 0)
		fail_msg("no reply to request %u: %d", req, rc);
	assert_int_equal(r.hdr.request, req);
	assert_true(r.hdr.flags & VHU_USER_REPLY_MASK);
	vhu_user_msg_close_fds(&r);
	if (out)
		*out = r;
	return r.hdr.size >= 8 ? r.payload.u64 : 0;
}

static uint64_t fe_u64(struct fe *f, uint32_t req, uint64_t v, bool ack)
{
	return fe_req(f, req, &v, 8, NULL, 0, ack, NULL);
}

static uint64_t fe_state(struct fe *f, uint32_t req, uint32_t index, uint32_t num, bool ack)
{
	struct vhu_user_vring_state s = { index, num };
	return fe_req(f, req, &s, sizeof(s), NULL, 0, ack, NULL);
}

/* Negotiation as QEMU does it, then SET_OWNER. */
static void fe_negotiate(struct fe *f, uint64_t want, uint64_t pf)
{
	uint64_t feats = fe_req(f, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL);
	assert_true(feats >> VHU_USER_F_PROTOCOL_FEATURES & 1);
	assert_int_equal(fe_req(f, VHU_USER_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, false, NULL), ALL_PF);
	assert_int_equal(fe_u64(f, VHU_USER_SET_PROTOCOL_FEATURES, pf, true), 0);
	assert_int_equal(fe_req(f, VHU_USER_GET_QUEUE_NUM, NULL, 0, NULL, 0, false, NULL), 2);
	assert_int_equal(fe_req(f, VHU_USER_SET_OWNER, NULL, 0, NULL, 0, true, NULL), 0);
	f->features = (want & feats) | (1ull << VHU_USER_F_PROTOCOL_FEATURES);
	assert_int_equal(fe_u64(f, VHU_USER_SET_FEATURES, f->features, true), 0);
}

static void fe_mem_table(struct fe *f)
{
	struct vhu_user_mem_table t = { .nregions = 1 };
	t.regions[0] = (struct vhu_user_mem_region){ 0, MEM_SIZE, (uintptr_t)f->mem, 0 };
	int fd = dup(f->memfd);
	assert_int_equal(fe_req(f, VHU_USER_SET_MEM_TABLE, &t, sizeof(t), &fd, 1, true, NULL), 0);
	close(fd);
}

/* Ring 0 at offset 0 of guest memory; buffers from 64 KiB on. */
static void fe_setup_ring(struct fe *f, bool eventfds)
{
	bool packed = vhu_has_feature(f->features, VHU_F_RING_PACKED);
	vhu_vq_layout(QSIZE, packed, &f->layout);
	memset(f->mem, 0, f->layout.size);
	struct vhu_vq_config c = {
		.num = QSIZE, .index = 0, .features = f->features, .desc = f->mem + f->layout.desc_off,
		.driver_area = f->mem + f->layout.driver_off, .device_area = f->mem + f->layout.device_off,
	};
	assert_int_equal(vhu_drv_vq_init(&f->drv, &c, NULL, 0, 0), 0);
	assert_int_equal(fe_state(f, VHU_USER_SET_VRING_NUM, 0, QSIZE, true), 0);
	assert_int_equal(fe_state(f, VHU_USER_SET_VRING_BASE, 0, packed ? 1u << 15 | 1u << 31 : 0, true), 0);
	struct vhu_user_vring_addr a = {
		.index = 0, .desc_user_addr = (uintptr_t)c.desc, .avail_user_addr = (uintptr_t)c.driver_area,
		.used_user_addr = (uintptr_t)c.device_area,
	};
	assert_int_equal(fe_req(f, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, true, NULL), 0);
	if (eventfds) {
		f->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		f->kick = eventfd(0, EFD_CLOEXEC);
		f->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_int_equal(fe_req(f, VHU_USER_SET_VRING_CALL, &(uint64_t){ 0 }, 8, &f->call, 1, true, NULL), 0);
		assert_int_equal(fe_req(f, VHU_USER_SET_VRING_ERR, &(uint64_t){ 0 }, 8, &f->err, 1, true, NULL), 0);
		assert_int_equal(fe_req(f, VHU_USER_SET_VRING_KICK, &(uint64_t){ 0 }, 8, &f->kick, 1, true, NULL), 0);
	}
	assert_int_equal(fe_state(f, VHU_USER_SET_VRING_ENABLE, 0, 1, true), 0);
}

/* Wait for a used-buffer notification: the call eventfd, or in-band. */
static void fe_wait_call(struct fe *f)
{
	if (f->chan >= 0) {
		while (!f->inband_calls) {
			struct pollfd p = { .fd = f->chan, .events = POLLIN };
			assert_int_equal(poll(&p, 1, 3000), 1);
			fe_serve_chan(f);
		}
		f->inband_calls--;
	} else {
		struct pollfd p = { .fd = f->call, .events = POLLIN };
		assert_int_equal(poll(&p, 1, 3000), 1);
		uint64_t v;
		assert_int_equal(read(f->call, &v, 8), 8);
	}
}

/* One echo round trip through the ring; kick by eventfd or in-band. */
static void fe_echo(struct fe *f, const char *text)
{
	uint64_t out = 64 * 1024, in = 80 * 1024;
	size_t n = strlen(text) + 1;
	memcpy(f->mem + out, text, n);
	memset(f->mem + in, 0, n);
	struct vhu_sg sg[2] = { { out, (uint32_t)n }, { in, (uint32_t)n } };
	int tok;
	assert_int_equal(vhu_drv_vq_add(&f->drv, sg, 1, 1, &tok), 0);
	if (vhu_drv_vq_kick_prepare(&f->drv)) {
		if (f->kick >= 0) {
			uint64_t one = 1;
			assert_int_equal(write(f->kick, &one, 8), 8);
		} else {
			assert_int_equal(fe_state(f, VHU_USER_VRING_KICK, 0, 0, true), 0);
		}
	}
	/* as every driver: re-arm used-buffer notifications and recheck
	 * before sleeping (with EVENT_IDX a stale used_event suppresses) */
	void *t;
	uint32_t len;
	for (int sleeps = 0; vhu_drv_vq_get(&f->drv, &t, &len) != 1;) {
		if (vhu_drv_vq_enable_cb(&f->drv))
			continue;
		if (++sleeps > 5)
			fail_msg("echo '%s': no used buffer after %d notifications", text, sleeps);
		fe_wait_call(f);
	}
	assert_ptr_equal(t, &tok);
	assert_int_equal(len, n);
	assert_string_equal((char *)f->mem + in, text);
}

/* ---- a whole session, every request ------------------------------------ */
static void session(bool packed, bool inband)
{
	int before = count_fds();
	struct fe f;
	int chan[2] = { -1, -1 };

	fe_start(&f, 2);
	fe_negotiate(&f, DEV_FEATURES & (packed ? ~0ull : ~VHU_BIT(VHU_F_RING_PACKED)), ALL_PF);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan), 0);
	assert_int_equal(fe_req(&f, VHU_USER_SET_BACKEND_REQ_FD, NULL, 0, &chan[1], 1, true, NULL), 0);
	close(chan[1]);
	if (inband)
		f.chan = chan[0];
	assert_int_equal(fe_req(&f, VHU_USER_GET_MAX_MEM_SLOTS, NULL, 0, NULL, 0, false, NULL), 509);
	/* config space: read, write, read back */
	struct vhu_user_config c = { .offset = 0, .size = 8 };
	struct vhu_user_msg r;
	fe_req(&f, VHU_USER_GET_CONFIG, &c, 12 + 8, NULL, 0, false, &r);
	assert_int_equal(r.hdr.size, 20);
	assert_memory_equal(r.payload.config.region, "vhu-echo", 8);
	memcpy(c.region, "VHU-", 4);
	c.size = 4;
	assert_int_equal(fe_req(&f, VHU_USER_SET_CONFIG, &c, 12 + 4, NULL, 0, true, NULL), 0);
	c.size = 8;
	fe_req(&f, VHU_USER_GET_CONFIG, &c, 12 + 8, NULL, 0, false, &r);
	assert_memory_equal(r.payload.config.region, "VHU-echo", 8);
	memcpy(echo_config, "vhu-", 4);
	assert_int_equal(fe_u64(&f, VHU_USER_SET_STATUS, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER, true), 0);
	fe_mem_table(&f);
	fe_setup_ring(&f, !inband);
	fe_echo(&f, "hello from the front-end");
	fe_echo(&f, "and again");
	assert_int_equal(fe_u64(&f, VHU_USER_SET_STATUS, 0xf, true), 0);
	assert_int_equal(fe_req(&f, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL), 0xf);
	/* stop: GET_VRING_BASE reports where the ring is */
	struct vhu_user_vring_state s = { 0, 0 };
	fe_req(&f, VHU_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, false, &r);
	struct vhu_vq_pos pos;
	vhu_drv_vq_get_pos(&f.drv, &pos);
	uint32_t expect = packed ? (uint32_t)pos.avail | (uint32_t)pos.avail_wrap << 15 | (uint32_t)pos.used << 16 |
				   (uint32_t)pos.used_wrap << 31
				 : pos.avail;
	assert_int_equal(r.payload.state.num, expect);
	/* a stopped ring takes a new size and base, and restarts */
	assert_int_equal(fe_state(&f, VHU_USER_SET_VRING_NUM, 0, QSIZE, true), 0);
	assert_int_equal(fe_state(&f, VHU_USER_SET_VRING_BASE, 0, r.payload.state.num, true), 0);
	if (inband)
		assert_int_equal(fe_state(&f, VHU_USER_VRING_KICK, 0, 0, true), 0);
	else {
		int k = dup(f.kick);
		assert_int_equal(fe_req(&f, VHU_USER_SET_VRING_KICK, &(uint64_t){ 0 }, 8, &k, 1, true, NULL), 0);
		close(k);
	}
	fe_echo(&f, "after a restart");
	/* memory slots: add a second region, remove it (an fd sent with
	 * REM_MEM_REG is closed unused) */
	int extra = memfd_create("extra", MFD_CLOEXEC);
	assert_int_equal(ftruncate(extra, 65536), 0);
	struct vhu_user_mem_single reg = { 0, { 0x10000000, 65536, 0x500000000000, 0 } };
	assert_int_equal(fe_req(&f, VHU_USER_ADD_MEM_REG, &reg, sizeof(reg), &extra, 1, true, NULL), 0);
	assert_int_equal(fe_req(&f, VHU_USER_REM_MEM_REG, &reg, sizeof(reg), &extra, 1, true, NULL), 0);
	assert_int_not_equal(fe_req(&f, VHU_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0, true, NULL), 0);
	close(extra);
	fe_echo(&f, "memory changed under a running ring");
	/* reset: the ring stops; the device is ready to be set up again */
	assert_int_equal(fe_req(&f, VHU_USER_RESET_DEVICE, NULL, 0, NULL, 0, true, NULL), 0);
	assert_int_equal(fe_req(&f, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL), 0);
	fe_stop(&f);
	close(chan[0]);
	assert_int_equal(count_fds(), before);
}

static void session_split_eventfd(void **s) { (void)s; session(false, false); }
static void session_packed_eventfd(void **s) { (void)s; session(true, false); }
static void session_split_inband(void **s) { (void)s; session(false, true); }
static void session_packed_inband(void **s) { (void)s; session(true, true); }

/* ---- malformed requests: each refused, the session goes on ------------- */
static void malformed(void **state)
{
	(void)state;
	int before = count_fds();
	struct fe f;
	struct vhu_user_msg r;

	fe_start(&f, 2);
	/* before SET_OWNER (REPLY_ACK first, or need_reply means nothing) */
	assert_int_equal(fe_u64(&f, VHU_USER_SET_PROTOCOL_FEATURES, ALL_PF, false), 0);
	assert_int_not_equal(fe_state(&f, VHU_USER_SET_VRING_NUM, 0, QSIZE, true), 0);
	fe_negotiate(&f, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF);
	int e1 = eventfd(0, EFD_CLOEXEC), e2 = eventfd(0, EFD_CLOEXEC);
	int two[2] = { e1, e2 };
	struct {
		const char *name;
		uint32_t req, size;
		uint64_t u64;
		unsigned nfds;
	} cases[] = {
		{ "short payload", VHU_USER_SET_FEATURES, 4, 0, 0 },
		{ "payload where none belongs", VHU_USER_SET_OWNER, 8, 0, 0 },
		{ "two fds for one", VHU_USER_SET_VRING_CALL, 8, 0, 2 },
		{ "fd with the no-fd flag", VHU_USER_SET_VRING_KICK, 8, 0x100, 1 },
		{ "missing fd", VHU_USER_SET_VRING_KICK, 8, 0, 0 },
		{ "vring index out of range", VHU_USER_SET_VRING_CALL, 8, 99, 1 },
		{ "reserved bits in vring fd payload", VHU_USER_SET_VRING_CALL, 8, 0x10000, 1 },
		{ "unknown request", 99, 0, 0, 0 },
		{ "features not offered", VHU_USER_SET_FEATURES, 8, 1ull << 50, 0 },
		{ "protocol features not offered", VHU_USER_SET_PROTOCOL_FEATURES, 8, 1ull << VHU_USER_PROTOCOL_F_PAGEFAULT, 0 },
		{ "dirty log not offered", VHU_USER_SET_LOG_FD, 0, 0, 1 },
		{ "IOTLB not offered", VHU_USER_IOTLB_MSG, 32, 0, 0 },
		{ "inflight not offered", VHU_USER_GET_INFLIGHT_FD, 24, 0, 0 },
		{ "cross-endian not negotiated", VHU_USER_SET_VRING_ENDIAN, 8, 1ull << 32, 0 },
		{ "second SET_OWNER", VHU_USER_SET_OWNER, 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = fe_req(&f, cases[i].req, &cases[i].u64, cases[i].size, two, cases[i].nfds, true, NULL);
		if (v == 0)
			fail_msg("%s: accepted", cases[i].name);
		/* still talking */
		assert_true(fe_req(&f, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL) != 0);
	}
	/* vring state values */
	assert_int_not_equal(fe_state(&f, VHU_USER_SET_VRING_NUM, 5, QSIZE, true), 0);   /* index */
	assert_int_not_equal(fe_state(&f, VHU_USER_SET_VRING_NUM, 0, 0, true), 0);       /* size 0 */
	assert_int_not_equal(fe_state(&f, VHU_USER_SET_VRING_NUM, 0, 12, true), 0);      /* split: 2^n */
	assert_int_not_equal(fe_state(&f, VHU_USER_SET_VRING_NUM, 0, 512, true), 0);     /* over max */
	assert_int_not_equal(fe_state(&f, VHU_USER_SET_VRING_BASE, 0, 0x10000, true), 0);
	assert_int_not_equal(fe_state(&f, VHU_USER_SET_VRING_ENABLE, 0, 2, true), 0);
	/* memory: overlapping regions, fd count against nregions, short fd */
	struct vhu_user_mem_table t = { .nregions = 2 };
	t.regions[0] = (struct vhu_user_mem_region){ 0, 65536, 0x600000000000, 0 };
	t.regions[1] = (struct vhu_user_mem_region){ 32768, 65536, 0x610000000000, 0 };
	int m1 = dup(f.memfd), m2 = dup(f.memfd);
	int mfds[2] = { m1, m2 };
	assert_int_not_equal(fe_req(&f, VHU_USER_SET_MEM_TABLE, &t, sizeof(t), mfds, 2, true, NULL), 0);
	assert_int_not_equal(fe_req(&f, VHU_USER_SET_MEM_TABLE, &t, sizeof(t), mfds, 1, true, NULL), 0);
	t.nregions = 1;
	t.regions[0].memory_size = 4u * MEM_SIZE;   /* the file is shorter */
	assert_int_not_equal(fe_req(&f, VHU_USER_SET_MEM_TABLE, &t, sizeof(t), mfds, 1, true, NULL), 0);
	close(m1);
	close(m2);
	/* ring addresses outside guest memory: the ring cannot start */
	fe_mem_table(&f);
	assert_int_equal(fe_state(&f, VHU_USER_SET_VRING_NUM, 0, QSIZE, true), 0);
	struct vhu_user_vring_addr a = { .index = 0, .desc_user_addr = (uintptr_t)f.mem + MEM_SIZE - 64,
					 .avail_user_addr = (uintptr_t)f.mem, .used_user_addr = (uintptr_t)f.mem + 4096 };
	assert_int_equal(fe_req(&f, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, true, NULL), 0);
	int k = eventfd(0, EFD_CLOEXEC);
	assert_int_not_equal(fe_req(&f, VHU_USER_SET_VRING_KICK, &(uint64_t){ 0 }, 8, &k, 1, true, NULL), 0);
	close(k);
	/* a started ring refuses a new size */
	fe_setup_ring(&f, true);
	assert_int_not_equal(fe_state(&f, VHU_USER_SET_VRING_NUM, 0, 8, true), 0);
	fe_echo(&f, "still serving after all that");
	/* config outside the space: an empty reply; bad flags: refused */
	struct vhu_user_config c = { .offset = 12, .size = 8 };
	fe_req(&f, VHU_USER_GET_CONFIG, &c, 12 + 8, NULL, 0, false, &r);
	assert_int_equal(r.hdr.size, 0);
	c = (struct vhu_user_config){ .offset = 0, .size = 4, .flags = 7 };
	assert_int_not_equal(fe_req(&f, VHU_USER_SET_CONFIG, &c, 12 + 4, NULL, 0, true, NULL), 0);
	close(e1);
	close(e2);
	fe_stop(&f);
	assert_int_equal(count_fds(), before);
}

/* INBAND_NOTIFICATIONS without BACKEND_REQ and REPLY_ACK: the spec has the
 * back-end close the connection. */
static void inband_without_channel_closes(void **state)
{
	(void)state;
	int before = count_fds();
	struct fe f;
	fe_start(&f, 1);
	fe_req(&f, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL);
	uint64_t pf = 1ull << VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS | 1ull << VHU_USER_PROTOCOL_F_REPLY_ACK;
	/* no reply: REPLY_ACK was not agreed, the back-end just closes */
	fe_u64(&f, VHU_USER_SET_PROTOCOL_FEATURES, pf, false);
	struct vhu_user_msg r;
	assert_int_equal(vhu_user_recv(f.sock, &r, 2000), -ECONNRESET);
	fe_stop(&f);
	assert_int_equal(count_fds(), before);
}

/* A driver that breaks its ring: the queue stops, the error fd fires, the
 * status says DEVICE_NEEDS_RESET, and the other requests still work. */
static void broken_ring_needs_reset(void **state)
{
	(void)state;
	int before = count_fds();
	struct fe f;
	fe_start(&f, 2);
	fe_negotiate(&f, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF);
	fe_mem_table(&f);
	fe_setup_ring(&f, true);
	fe_echo(&f, "fine so far");
	/* a head out of range */
	struct vhu_vring_avail *av = (void *)(f.mem + f.layout.driver_off);
	av->ring[av->idx % QSIZE] = 200;
	__atomic_store_n(&av->idx, (uint16_t)(av->idx + 1), __ATOMIC_RELEASE);
	uint64_t one = 1;
	assert_int_equal(write(f.kick, &one, 8), 8);
	struct pollfd p = { .fd = f.err, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 3000), 1);
	uint64_t st = fe_req(&f, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL);
	assert_true(st & VHU_STATUS_DEVICE_NEEDS_RESET);
	assert_true(fe_req(&f, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL) != 0);
	fe_stop(&f);
	assert_int_equal(count_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(session_split_eventfd),
		cmocka_unit_test(session_packed_eventfd),
		cmocka_unit_test(session_split_inband),
		cmocka_unit_test(session_packed_inband),
		cmocka_unit_test(malformed),
		cmocka_unit_test(inband_without_channel_closes),
		cmocka_unit_test(broken_ring_needs_reset),
	};
	return cmocka_run_group_tests_name("backend", tests, NULL, NULL);
}
