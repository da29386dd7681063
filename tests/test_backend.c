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
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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
#include "vhu/dirty_log.h"
#include "vhu/inflight.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"
#include "minife.h"

#define QSIZE 16
#define ECHO_CONFIG_SIZE 16

/* ---- the echo device: copies what it reads into what it may write ----- */
static uint8_t echo_config[ECHO_CONFIG_SIZE] = "vhu-echo-config";

static void echo_handle(struct vhu_device *dev, struct vhu_queue *q, unsigned ev)
{
	struct vhu_vq_elem e;
	struct iovec iov[16];
	int r;
	(void)dev;
	(void)ev;
	while ((r = vhu_queue_pop(q, &e, iov, 16)) != 0) {
		if (r < 0) {
			if (vhu_dev_vq_broken(vhu_queue_vq(q)))
				break;
			vhu_queue_push(q, &e, 0);
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
		vhu_queue_push(q, &e, (uint32_t)n);
	}
	vhu_queue_notify(q);
}

static int echo_get_config(struct vhu_device *dev, uint8_t *buf, uint32_t off, uint32_t len)
{
	(void)dev;
	memcpy(buf, echo_config + off, len);
	return 0;
}

static int echo_set_config(struct vhu_device *dev, const uint8_t *buf, uint32_t off, uint32_t len, uint32_t flags)
{
	(void)dev;
	(void)flags;
	memcpy(echo_config + off, buf, len);
	return 0;
}

static const struct vhu_device_ops echo_ops = {
	.handle = echo_handle, .get_config = echo_get_config, .set_config = echo_set_config,
};

/* The echo device, but it cannot start a queue (as vhu-blk when io_uring set-up fails). */
static atomic_int failing_stops, failing_handles;
static int failing_queue_start(struct vhu_device *dev, struct vhu_queue *q)
{
	(void)dev;
	(void)q;
	return -ENOMEM;
}
static void failing_queue_stop(struct vhu_device *dev, struct vhu_queue *q)
{
	(void)dev;
	(void)q;
	atomic_fetch_add(&failing_stops, 1);
}
static void failing_handle(struct vhu_device *dev, struct vhu_queue *q, unsigned ev)
{
	atomic_fetch_add(&failing_handles, 1);
	echo_handle(dev, q, ev);
}
static const struct vhu_device_ops failing_start_ops = {
	.handle = failing_handle, .queue_start = failing_queue_start, .queue_stop = failing_queue_stop,
	.get_config = echo_get_config, .set_config = echo_set_config,
};
/* The echo device with a request op: NET_SET_MTU within [68, 9000] is taken. */
static atomic_ullong device_mtu;
static int mtu_request(struct vhu_backend *be, struct vhu_user_msg *m, struct vhu_user_msg *reply)
{
	(void)be;
	(void)reply;
	if (m->hdr.request != VHU_USER_NET_SET_MTU)
		return -ENOTSUP;
	if (m->payload.u64 < 68 || m->payload.u64 > 9000)
		return -EINVAL;
	atomic_store(&device_mtu, m->payload.u64);
	return 0;
}
static const struct vhu_device_ops mtu_ops = {
	.handle = echo_handle, .get_config = echo_get_config, .set_config = echo_set_config,
};
/* The echo device, slow: handle() takes 100 ms, and queue_stop notes if it
 * ever runs while a handle() is still running (it must not: the queue is
 * paused first). */
static atomic_int slow_in_handle, slow_overlaps, slow_stops;
static void slow_handle(struct vhu_device *dev, struct vhu_queue *q, unsigned ev)
{
	atomic_store(&slow_in_handle, 1);
	usleep(100000);
	echo_handle(dev, q, ev);
	atomic_store(&slow_in_handle, 0);
}
static void slow_queue_stop(struct vhu_device *dev, struct vhu_queue *q)
{
	(void)dev;
	(void)q;
	atomic_fetch_add(&slow_stops, 1);
	if (atomic_load(&slow_in_handle))
		atomic_fetch_add(&slow_overlaps, 1);
}
static int slow_queue_start(struct vhu_device *dev, struct vhu_queue *q)
{
	(void)dev;
	(void)q;
	return 0;
}
static const struct vhu_device_ops slow_ops = {
	.handle = slow_handle, .queue_start = slow_queue_start, .queue_stop = slow_queue_stop,
	.get_config = echo_get_config, .set_config = echo_set_config,
};
static const struct vhu_device_ops *session_ops = &echo_ops;	/* what fe_start serves */
static uint64_t session_pf = VHU_BACKEND_PROTOCOL_FEATURES;	/* and the protocol features it offers */
static int (*session_request)(struct vhu_backend *, struct vhu_user_msg *, struct vhu_user_msg *); /* its request op */
static struct vhu_poll_group *session_pg;	/* its queues on a poll group, or a thread each */
static uint64_t session_extra_features;	/* offered beside DEV_FEATURES (ACCESS_PLATFORM) */

/* PAGEFAULT is offered only where the kernel gives a userfaultfd (not
 * under valgrind, for one): postcopy_messages asks for it itself */
#define PAGEFAULT_PF (1ull << VHU_USER_PROTOCOL_F_PAGEFAULT)
#define ALL_PF (VHU_BACKEND_PROTOCOL_FEATURES & ~PAGEFAULT_PF)
#define DEV_FEATURES (VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) | \
		      VHU_BIT(VHU_F_INDIRECT_DESC))

/* ---- the back-end in a thread, the scripted front-end (minife) -------- */
struct bfe {
	struct fe fe;
	int backend_sock;
	pthread_t thread;
	struct vhu_device *dev;
	struct vhu_backend *be;
};

static void log_stderr(void *o, enum vhu_log_level l, const char *msg)
{
	(void)o;
	fprintf(stderr, "# backend[%d]: %s\n", l, msg);
}

static void *backend_thread(void *arg)
{
	struct bfe *b = arg;
	vhu_backend_run_conn(b->be, b->backend_sock);
	return NULL;
}

static void fe_start(struct bfe *b, uint16_t nq)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fe_init(&b->fe, sv[0], FE_MEM_SIZE);
	b->backend_sock = sv[1];
	struct vhu_device_config cfg = {
		.ops = session_ops, .num_queues = nq, .max_queue_size = 256,
		.features = DEV_FEATURES | session_extra_features,
		.config_size = ECHO_CONFIG_SIZE,
		.log = getenv("VHU_TEST_LOG") ? log_stderr : NULL, .log_level = VHU_LOG_DEBUG,
		.exec = session_pg ? VHU_EXEC_POLL_GROUP : VHU_EXEC_THREAD_PER_QUEUE, .poll_group = session_pg,
	};
	b->dev = vhu_device_new(&cfg);
	assert_non_null(b->dev);
	struct vhu_backend_config bcfg = { .device = b->dev, .protocol_features = session_pf, .request = session_request };
	b->be = vhu_backend_new(&bcfg);
	assert_non_null(b->be);
	assert_int_equal(pthread_create(&b->thread, NULL, backend_thread, b), 0);
}

static void fe_stop(struct bfe *b)
{
	close(b->fe.sock);
	b->fe.sock = -1;
	pthread_join(b->thread, NULL);
	vhu_backend_free(b->be);
	vhu_device_free(b->dev);
	fe_close(&b->fe);
}

/* One echo round trip through the ring. */
static void fe_echo(struct fe *f, const char *text)
{
	uint64_t out = 64 * 1024, in = 80 * 1024;
	size_t n = strlen(text) + 1;
	memcpy(f->mem + out, text, n);
	memset(f->mem + in, 0, n);
	struct vhu_sg sg[2] = { { out, (uint32_t)n }, { in, (uint32_t)n } };
	int tok;
	void *t;
	uint32_t len;
	assert_int_equal(vhu_drv_vq_add(&f->q[0].drv, sg, 1, 1, &tok), 0);
	fe_kick(f, 0);
	fe_wait_used(f, 0, &t, &len);
	assert_ptr_equal(t, &tok);
	assert_int_equal(len, n);
	assert_string_equal((char *)f->mem + in, text);
}

/* ---- a whole session, every request ------------------------------------ */
static void session(bool packed, bool inband)
{
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	int chan[2] = { -1, -1 };

	fe_start(&bb, 2);
	fe_negotiate(fp, DEV_FEATURES & (packed ? ~0ull : ~VHU_BIT(VHU_F_RING_PACKED)), ALL_PF);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan), 0);
	assert_int_equal(fe_req(fp, VHU_USER_SET_BACKEND_REQ_FD, NULL, 0, &chan[1], 1, true, NULL), 0);
	close(chan[1]);
	if (inband)
		fp->chan = chan[0];
	assert_int_equal(fe_req(fp, VHU_USER_GET_MAX_MEM_SLOTS, NULL, 0, NULL, 0, false, NULL), 509);
	/* config space: read, write, read back */
	struct vhu_user_config c = { .offset = 0, .size = 8 };
	struct vhu_user_msg r;
	fe_req(fp, VHU_USER_GET_CONFIG, &c, 12 + 8, NULL, 0, false, &r);
	assert_int_equal(r.hdr.size, 20);
	assert_memory_equal(r.payload.config.region, "vhu-echo", 8);
	memcpy(c.region, "VHU-", 4);
	c.size = 4;
	assert_int_equal(fe_req(fp, VHU_USER_SET_CONFIG, &c, 12 + 4, NULL, 0, true, NULL), 0);
	c.size = 8;
	fe_req(fp, VHU_USER_GET_CONFIG, &c, 12 + 8, NULL, 0, false, &r);
	assert_memory_equal(r.payload.config.region, "VHU-echo", 8);
	memcpy(echo_config, "vhu-", 4);
	assert_int_equal(fe_u64(fp, VHU_USER_SET_STATUS, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER, true), 0);
	fe_mem_table(fp);
	fe_setup_ring(fp, QSIZE, !inband);
	fe_echo(fp, "hello from the front-end");
	fe_echo(fp, "and again");
	assert_int_equal(fe_u64(fp, VHU_USER_SET_STATUS, 0xf, true), 0);
	assert_int_equal(fe_req(fp, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL), 0xf);
	/* stop: GET_VRING_BASE reports where the ring is */
	struct vhu_user_vring_state s = { 0, 0 };
	fe_req(fp, VHU_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, false, &r);
	struct vhu_vq_pos pos;
	vhu_drv_vq_get_pos(&fp->q[0].drv, &pos);
	uint32_t expect = packed ? (uint32_t)pos.avail | (uint32_t)pos.avail_wrap << 15 | (uint32_t)pos.used << 16 |
				   (uint32_t)pos.used_wrap << 31
				 : pos.avail;
	assert_int_equal(r.payload.state.num, expect);
	/* a stopped ring takes a new size and base, and restarts */
	assert_int_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 0, QSIZE, true), 0);
	assert_int_equal(fe_state(fp, VHU_USER_SET_VRING_BASE, 0, r.payload.state.num, true), 0);
	if (inband)
		assert_int_equal(fe_state(fp, VHU_USER_VRING_KICK, 0, 0, true), 0);
	else {
		int k = dup(fp->q[0].kick);
		assert_int_equal(fe_req(fp, VHU_USER_SET_VRING_KICK, &(uint64_t){ 0 }, 8, &k, 1, true, NULL), 0);
		close(k);
	}
	fe_echo(fp, "after a restart");
	/* memory slots: add a second region, remove it (an fd sent with
	 * REM_MEM_REG is closed unused) */
	int extra = memfd_create("extra", MFD_CLOEXEC);
	assert_int_equal(ftruncate(extra, 65536), 0);
	struct vhu_user_mem_single reg = { 0, { 0x10000000, 65536, 0x500000000000, 0 } };
	assert_int_equal(fe_req(fp, VHU_USER_ADD_MEM_REG, &reg, sizeof(reg), &extra, 1, true, NULL), 0);
	assert_int_equal(fe_req(fp, VHU_USER_REM_MEM_REG, &reg, sizeof(reg), &extra, 1, true, NULL), 0);
	assert_int_not_equal(fe_req(fp, VHU_USER_REM_MEM_REG, &reg, sizeof(reg), NULL, 0, true, NULL), 0);
	close(extra);
	fe_echo(fp, "memory changed under a running ring");
	/* reset: the ring stops; the device is ready to be set up again */
	assert_int_equal(fe_req(fp, VHU_USER_RESET_DEVICE, NULL, 0, NULL, 0, true, NULL), 0);
	assert_int_equal(fe_req(fp, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL), 0);
	fe_stop(&bb);
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
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	struct vhu_user_msg r;

	fe_start(&bb, 2);
	/* before SET_OWNER (REPLY_ACK first, or need_reply means nothing) */
	assert_int_equal(fe_u64(fp, VHU_USER_SET_PROTOCOL_FEATURES, ALL_PF, false), 0);
	assert_int_not_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 0, QSIZE, true), 0);
	fe_negotiate(fp, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF);
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
		{ "protocol features not offered", VHU_USER_SET_PROTOCOL_FEATURES, 8, 1ull << VHU_USER_PROTOCOL_F_CRYPTO_SESSION, 0 },
		{ "log fd without its fd", VHU_USER_SET_LOG_FD, 0, 0, 0 },
		{ "IOTLB not offered", VHU_USER_IOTLB_MSG, 32, 0, 0 },
		{ "inflight region of no queues", VHU_USER_GET_INFLIGHT_FD, 24, 0, 0 },
		{ "cross-endian not negotiated", VHU_USER_SET_VRING_ENDIAN, 8, 1ull << 32, 0 },
		{ "second SET_OWNER", VHU_USER_SET_OWNER, 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = fe_req(fp, cases[i].req, &cases[i].u64, cases[i].size, two, cases[i].nfds, true, NULL);
		if (v == 0)
			fail_msg("%s: accepted", cases[i].name);
		/* still talking */
		assert_true(fe_req(fp, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL) != 0);
	}
	/* vring state values */
	assert_int_not_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 5, QSIZE, true), 0);   /* index */
	assert_int_not_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 0, 0, true), 0);       /* size 0 */
	assert_int_not_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 0, 12, true), 0);      /* split: 2^n */
	assert_int_not_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 0, 512, true), 0);     /* over max */
	assert_int_not_equal(fe_state(fp, VHU_USER_SET_VRING_BASE, 0, 0x10000, true), 0);
	assert_int_not_equal(fe_state(fp, VHU_USER_SET_VRING_ENABLE, 0, 2, true), 0);
	/* memory: overlapping regions, fd count against nregions, short fd */
	struct vhu_user_mem_table t = { .nregions = 2 };
	t.regions[0] = (struct vhu_user_mem_region){ 0, 65536, 0x600000000000, 0 };
	t.regions[1] = (struct vhu_user_mem_region){ 32768, 65536, 0x610000000000, 0 };
	int m1 = dup(fp->memfd), m2 = dup(fp->memfd);
	int mfds[2] = { m1, m2 };
	assert_int_not_equal(fe_req(fp, VHU_USER_SET_MEM_TABLE, &t, sizeof(t), mfds, 2, true, NULL), 0);
	assert_int_not_equal(fe_req(fp, VHU_USER_SET_MEM_TABLE, &t, sizeof(t), mfds, 1, true, NULL), 0);
	t.nregions = 1;
	t.regions[0].memory_size = 4u * FE_MEM_SIZE;   /* the file is shorter */
	assert_int_not_equal(fe_req(fp, VHU_USER_SET_MEM_TABLE, &t, sizeof(t), mfds, 1, true, NULL), 0);
	close(m1);
	close(m2);
	/* ring addresses outside guest memory: the ring cannot start */
	fe_mem_table(fp);
	assert_int_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 0, QSIZE, true), 0);
	struct vhu_user_vring_addr a = { .index = 0, .desc_user_addr = (uintptr_t)fp->mem + FE_MEM_SIZE - 64,
					 .avail_user_addr = (uintptr_t)fp->mem, .used_user_addr = (uintptr_t)fp->mem + 4096 };
	assert_int_equal(fe_req(fp, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, true, NULL), 0);
	int k = eventfd(0, EFD_CLOEXEC);
	assert_int_not_equal(fe_req(fp, VHU_USER_SET_VRING_KICK, &(uint64_t){ 0 }, 8, &k, 1, true, NULL), 0);
	close(k);
	/* a started ring refuses a new size */
	fe_setup_ring(fp, QSIZE, true);
	assert_int_not_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 0, 8, true), 0);
	fe_echo(fp, "still serving after all that");
	/* config outside the space: an empty reply; bad flags: refused */
	struct vhu_user_config c = { .offset = 12, .size = 8 };
	fe_req(fp, VHU_USER_GET_CONFIG, &c, 12 + 8, NULL, 0, false, &r);
	assert_int_equal(r.hdr.size, 0);
	c = (struct vhu_user_config){ .offset = 0, .size = 4, .flags = 7 };
	assert_int_not_equal(fe_req(fp, VHU_USER_SET_CONFIG, &c, 12 + 4, NULL, 0, true, NULL), 0);
	close(e1);
	close(e2);
	fe_stop(&bb);
	assert_int_equal(count_fds(), before);
}

/* ---- the dirty log: hostile descriptions refused, the process lives ---- */
static int log_memfd(size_t size)
{
	int fd = memfd_create("dirty-log", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* SET_LOG_BASE: the back-end answers it with a u64, 0 or the errno. */
static uint64_t fe_log_base(struct fe *fp, int fd, uint64_t size, uint64_t offset)
{
	struct vhu_user_log l = { size, offset };
	return fe_req(fp, VHU_USER_SET_LOG_BASE, &l, sizeof(l), &fd, fd >= 0, false, NULL);
}

static uint64_t fe_ring_addr(struct fe *fp, uint32_t flags, uint64_t log_gpa)
{
	struct fe_ring *q = &fp->q[0];
	struct vhu_user_vring_addr a = {
		.index = 0, .flags = flags, .desc_user_addr = (uintptr_t)q->base + q->layout.desc_off,
		.avail_user_addr = (uintptr_t)q->base + q->layout.driver_off,
		.used_user_addr = (uintptr_t)q->base + q->layout.device_off, .log_guest_addr = log_gpa,
	};
	return fe_req(fp, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, true, NULL);
}

#define F_LOG (1u << VHU_USER_VRING_F_LOG)

static void dirty_log_hostile(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	const uint64_t need = vhu_dirty_log_size_for(FE_MEM_SIZE);	/* 32 bytes */

	fe_start(&bb, 1);
	fe_negotiate(fp, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF);
	fe_mem_table(fp);
	fe_setup_ring(fp, QSIZE, true);
	int fd = log_memfd(4096), p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	char ro_path[64];
	snprintf(ro_path, sizeof(ro_path), "/proc/self/fd/%d", fd);
	int ro = open(ro_path, O_RDONLY | O_CLOEXEC);	/* the same file, not writable */
	assert_true(ro >= 0);
	struct {
		const char *name;
		int fd;
		uint64_t size, offset, err;
	} cases[] = {
		{ "no fd", -1, need, 0, EINVAL },
		{ "log too small for the memory table", fd, need - 1, 0, ERANGE },
		{ "empty log", fd, 0, 0, EINVAL },
		{ "offset past the end of the file", fd, need, 4096, EINVAL },
		{ "offset and size wrapping", fd, need, UINT64_MAX - 8, EINVAL },
		{ "a pipe", p[0], need, 0, EINVAL },
		{ "a file that cannot be mapped writable", ro, need, 0, EACCES },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = fe_log_base(fp, cases[i].fd, cases[i].size, cases[i].offset);
		if (v != cases[i].err)
			fail_msg("%s: answered %llu, not %llu", cases[i].name, (unsigned long long)v,
				 (unsigned long long)cases[i].err);
		fe_echo(fp, cases[i].name);	/* the ring was not logging: it runs on */
	}
	close(ro);
	close(p[0]);
	close(p[1]);
	/* a good log; rings asking to log outside it, or with flags nobody
	 * defined, are refused and keep their old addresses */
	assert_int_equal(fe_log_base(fp, fd, need, 64), 0);
	uint64_t used_gpa = fp->q[0].base + fp->q[0].layout.device_off - fp->mem;
	assert_int_equal(fe_ring_addr(fp, F_LOG, 1ull << 40), ERANGE);
	assert_int_equal(fe_ring_addr(fp, F_LOG, FE_MEM_SIZE), ERANGE);	/* just past the log */
	assert_int_equal(fe_ring_addr(fp, 1u << 1, used_gpa), EINVAL);
	fe_echo(fp, "refused ring addresses changed nothing");
	/* logging on: the echo's writable buffer and the used ring are marked,
	 * the buffer it only read is not */
	assert_int_equal(fe_ring_addr(fp, F_LOG, used_gpa), 0);
	assert_int_equal(fe_u64(fp, VHU_USER_SET_FEATURES, fp->features | VHU_BIT(VHU_USER_F_LOG_ALL), true), 0);
	uint8_t *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	struct vhu_dirty_log log = { map + 64, need };
	vhu_dirty_log_take(&log, NULL);
	fe_echo(fp, "logged");
	assert_true(vhu_dirty_log_test(&log, 80 * 1024));
	assert_true(vhu_dirty_log_test(&log, used_gpa));
	assert_false(vhu_dirty_log_test(&log, 64 * 1024));
	/* a replacement the memory table does not fit: refused, and the ring
	 * that was logging fails rather than write unlogged */
	assert_int_equal(fe_log_base(fp, fd, need / 2, 0), ERANGE);
	assert_int_equal(vhu_queue_state(vhu_device_queue(bb.dev, 0)), VHU_RING_BROKEN);
	assert_true(vhu_device_status(bb.dev) & VHU_STATUS_DEVICE_NEEDS_RESET);
	assert_true(fe_req(fp, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL) & VHU_BIT(VHU_USER_F_LOG_ALL));
	munmap(map, 4096);
	fe_stop(&bb);

	/* without LOG_SHMFD agreed, no log and no logged ring */
	fe_start(&bb, 1);
	fe_negotiate(fp, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF & ~(1ull << VHU_USER_PROTOCOL_F_LOG_SHMFD));
	fe_mem_table(fp);
	fe_setup_ring(fp, QSIZE, true);
	assert_int_equal(fe_log_base(fp, fd, need, 0), ENOTSUP);
	assert_int_equal(fe_ring_addr(fp, F_LOG, 0), ENOTSUP);
	fe_echo(fp, "no log");
	fe_stop(&bb);
	close(fd);
	assert_int_equal(count_fds(), before);
}

/* ---- postcopy: the messages as QEMU sends them, and out of order ------- */
static void raw_send(struct fe *fp, uint32_t req, const void *payload, uint32_t size, const int *fds, unsigned nfds)
{
	struct vhu_user_msg m = { .hdr = { req, VHU_USER_VERSION, size }, .nfds = nfds };
	memcpy(&m.payload, payload, size);
	for (unsigned i = 0; i < nfds; i++)
		m.fds[i] = fds[i];
	assert_int_equal(vhu_user_send(fp->sock, &m), 0);
}

/* A session with PAGEFAULT negotiated where it is offered, then as QEMU's
 * destination goes: ADVISE (its userfaultfd to *uffd), LISTEN, a table
 * answered with the back-end's own addresses and then acknowledged, each
 * checked; false (the session without PAGEFAULT, ADVISE refused) if the
 * kernel gives the back-end no userfaultfd. */
static bool postcopy_listening(struct bfe *bb, int *uffd)
{
	struct fe *const fp = &bb->fe;
	struct vhu_user_msg r;

	fe_start(bb, 1);
	fe_req(fp, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL);
	bool offered = fe_req(fp, VHU_USER_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, false, NULL) & PAGEFAULT_PF;
	print_message("# PAGEFAULT %s\n", offered ? "offered" : "not offered (no userfaultfd here)");
	fe_negotiate(fp, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF | (offered ? PAGEFAULT_PF : 0));
	if (!offered) {
		assert_int_not_equal(fe_req(fp, VHU_USER_POSTCOPY_ADVISE, NULL, 0, NULL, 0, false, NULL), 0);
		return false;
	}
	/* out of order: listening before an advice is refused */
	assert_int_equal(fe_req(fp, VHU_USER_POSTCOPY_LISTEN, NULL, 0, NULL, 0, true, NULL), EINVAL);
	/* the advice: an empty reply carrying the userfaultfd */
	fe_req(fp, VHU_USER_POSTCOPY_ADVISE, NULL, 0, NULL, 0, false, &r);
	assert_int_equal(r.hdr.request, VHU_USER_POSTCOPY_ADVISE);
	assert_int_equal(r.hdr.size, 0);
	assert_int_equal(r.nfds, 1);
	*uffd = r.fds[0];
	char link[64], target[128] = "";
	snprintf(link, sizeof(link), "/proc/self/fd/%d", *uffd);
	assert_true(readlink(link, target, sizeof(target) - 1) > 0);
	assert_non_null(strstr(target, "userfaultfd"));
	assert_int_equal(fe_req(fp, VHU_USER_POSTCOPY_LISTEN, NULL, 0, NULL, 0, true, NULL), 0);
	/* a table while listening: answered with the back-end's own addresses,
	 * then QEMU's 8-byte acknowledgement, which gets no answer */
	struct vhu_user_mem_table t = { .nregions = 1 };
	t.regions[0] = (struct vhu_user_mem_region){ 0, FE_MEM_SIZE, (uintptr_t)fp->mem, 0 };
	int fd = dup(fp->memfd);
	uint32_t tsize = 8 + sizeof(t.regions[0]);
	raw_send(fp, VHU_USER_SET_MEM_TABLE, &t, tsize, &fd, 1);
	close(fd);
	assert_int_equal(vhu_user_recv(fp->sock, &r, 2000), 0);
	assert_int_equal(r.hdr.request, VHU_USER_SET_MEM_TABLE);
	assert_int_equal(r.hdr.size, tsize);
	assert_int_equal(r.payload.mem.nregions, 1);
	assert_int_equal(r.payload.mem.regions[0].guest_phys_addr, 0);
	assert_int_not_equal(r.payload.mem.regions[0].userspace_addr, (uintptr_t)fp->mem);
	raw_send(fp, VHU_USER_SET_MEM_TABLE, &(uint64_t){ 0 }, 8, NULL, 0);
	fe_setup_ring(fp, QSIZE, true);
	return true;
}

static void postcopy_messages(void **state)
{
	(void)state;
	int before = count_fds(), uffd = -1;
	struct bfe bb;
	struct fe *const fp = &bb.fe;

	if (postcopy_listening(&bb, &uffd)) {
		close(uffd);
		/* the pages are all there: the ring runs on registered memory */
		fe_echo(fp, "served while listening");
		/* an acknowledgement nobody waits for is a table, here an
		 * ill-formed one (one region in 8 bytes): refused, nothing changes */
		raw_send(fp, VHU_USER_SET_MEM_TABLE, &(uint64_t){ 1 }, 8, NULL, 0);
		assert_true(fe_req(fp, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL) != 0);
		fe_echo(fp, "still served");
		/* the end: acknowledged, and again (nothing left to end) */
		assert_int_equal(fe_req(fp, VHU_USER_POSTCOPY_END, NULL, 0, NULL, 0, true, NULL), 0);
		assert_int_equal(fe_req(fp, VHU_USER_POSTCOPY_END, NULL, 0, NULL, 0, true, NULL), 0);
		assert_int_equal(fe_req(fp, VHU_USER_POSTCOPY_LISTEN, NULL, 0, NULL, 0, true, NULL), EINVAL);
		fe_echo(fp, "after postcopy");
	}
	fe_stop(&bb);
	assert_int_equal(count_fds(), before);
}

/* A front-end that advises postcopy and never places a page: the queue
 * thread that touches it sleeps; the disconnect must still end the session
 * (memory unregistered before the queues are paused) and leave nothing. */
static void postcopy_page_never_placed(void **state)
{
	(void)state;
	int before = count_fds(), uffd = -1;
	struct bfe bb;
	struct fe *const fp = &bb.fe;

	if (postcopy_listening(&bb, &uffd)) {
		/* a buffer on a page that is not there; the uffd held, never served */
		uint64_t out = 512 * 1024;
		assert_int_equal(fallocate(fp->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)out, 4096), 0);
		struct vhu_sg sg[2] = { { out, 64 }, { 80 * 1024, 64 } };
		int tok;
		assert_int_equal(vhu_drv_vq_add(&fp->q[0].drv, sg, 1, 1, &tok), 0);
		fe_kick(fp, 0);
		usleep(100000);   /* the queue thread is asleep on the page by now */
	}
	fe_stop(&bb);     /* joins the back-end: hangs if the reset waited for the sleeper */
	if (uffd >= 0)
		close(uffd);
	assert_int_equal(count_fds(), before);
}

/* INBAND_NOTIFICATIONS without BACKEND_REQ and REPLY_ACK: the spec has the
 * back-end close the connection. */
static void inband_without_channel_closes(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	fe_start(&bb, 1);
	fe_req(fp, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL);
	uint64_t pf = 1ull << VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS | 1ull << VHU_USER_PROTOCOL_F_REPLY_ACK;
	/* no reply: REPLY_ACK was not agreed, the back-end just closes */
	fe_u64(fp, VHU_USER_SET_PROTOCOL_FEATURES, pf, false);
	struct vhu_user_msg r;
	assert_int_equal(vhu_user_recv(fp->sock, &r, 2000), -ECONNRESET);
	fe_stop(&bb);
	assert_int_equal(count_fds(), before);
}

/* A session with ring 0 running: negotiated, memory registered, eventfds. */
static void start_session(struct bfe *bb, bool packed)
{
	fe_start(bb, 2);
	fe_negotiate(&bb->fe, DEV_FEATURES & (packed ? ~0ull : ~VHU_BIT(VHU_F_RING_PACKED)), ALL_PF);
	fe_mem_table(&bb->fe);
	fe_setup_ring(&bb->fe, QSIZE, true);
}

/* RESET_DEVICE, then features and ring 0 set up afresh, as a driver does. */
static void reset_and_restart(struct fe *fp)
{
	assert_int_equal(fe_req(fp, VHU_USER_RESET_DEVICE, NULL, 0, NULL, 0, true, NULL), 0);
	assert_int_equal(fe_req(fp, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL), 0);
	close(fp->q[0].kick);
	close(fp->q[0].call);
	close(fp->q[0].err);
	vhu_drv_vq_destroy(&fp->q[0].drv);
	assert_int_equal(fe_u64(fp, VHU_USER_SET_FEATURES, fp->features, true), 0);
	fe_setup_ring(fp, QSIZE, true);
}

/* A driver that breaks its ring: the queue stops, the error fd fires, the
 * status says DEVICE_NEEDS_RESET, and the other requests still work. */
static void broken_ring_needs_reset(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	start_session(&bb, false);
	fe_echo(fp, "fine so far");
	assert_int_equal(vhu_queue_state(vhu_device_queue(bb.dev, 0)), VHU_RING_ENABLED);
	/* a head out of range */
	struct vhu_vring_avail *av = (void *)(fp->mem + fp->q[0].layout.driver_off);
	av->ring[av->idx % QSIZE] = 200;
	__atomic_store_n(&av->idx, (uint16_t)(av->idx + 1), __ATOMIC_RELEASE);
	uint64_t one = 1;
	assert_int_equal(write(fp->q[0].kick, &one, 8), 8);
	struct pollfd p = { .fd = fp->q[0].err, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 3000), 1);
	uint64_t st = fe_req(fp, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL);
	assert_true(st & VHU_STATUS_DEVICE_NEEDS_RESET);
	assert_true(fe_req(fp, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL) != 0);
	fe_stop(&bb);
	assert_int_equal(count_fds(), before);
}

/* GET_INFLIGHT_FD and SET_INFLIGHT_FD: each field out of range refused, the
 * region made sealed and of the spec's size, a ring with no part in the
 * region not started, and a region whose content is bad breaking its ring
 * with DEVICE_NEEDS_RESET while the session goes on. */
static int inflight_get(struct fe *fp, uint16_t nq, uint16_t qsize, struct vhu_user_inflight *out)
{
	struct vhu_user_inflight in = { .num_queues = nq, .queue_size = qsize };
	struct vhu_user_msg r;
	fe_req(fp, VHU_USER_GET_INFLIGHT_FD, &in, sizeof(in), NULL, 0, false, &r);
	if (r.hdr.size != sizeof(in)) {
		assert_int_equal(r.nfds, 0);
		return -1;
	}
	assert_int_equal(r.nfds, 1);
	*out = r.payload.inflight;
	return r.fds[0];
}

static uint64_t inflight_set(struct fe *fp, uint64_t size, uint64_t off, uint16_t nq, uint16_t qsize, int fd)
{
	struct vhu_user_inflight in = { .mmap_size = size, .mmap_offset = off, .num_queues = nq, .queue_size = qsize };
	return fe_req(fp, VHU_USER_SET_INFLIGHT_FD, &in, sizeof(in), &fd, 1, true, NULL);
}

/* QEMU's virtio-mmio offers rings at 1024 whatever vhost-user-blk's
 * queue-size, and sizes the inflight region by queue-size: a ring larger
 * than its part runs untracked (the region untouched), it is not refused.
 * Regression: the microvm guest's ring never started and the guest hung. */
static void inflight_ring_larger_than_its_part(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	struct vhu_user_inflight info;

	fe_start(&bb, 1);
	fe_negotiate(fp, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF);
	fe_mem_table(fp);
	int fd = inflight_get(fp, 1, QSIZE / 2, &info);
	assert_true(fd >= 0);
	assert_int_equal(inflight_set(fp, info.mmap_size, 0, 1, QSIZE / 2, fd), 0);
	fe_setup_ring(fp, QSIZE, true);
	fe_echo(fp, "a ring twice its part");
	fe_echo(fp, "and again");
	unsigned char *region = mmap(NULL, info.mmap_size, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(region != MAP_FAILED);
	for (uint64_t i = 0; i < info.mmap_size; i++)
		assert_int_equal(region[i], 0);   /* never written: untracked */
	munmap(region, info.mmap_size);
	close(fd);
	fe_stop(&bb);
	assert_int_equal(count_fds(), before);
}

static void inflight_messages(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	struct vhu_user_inflight info;

	fe_start(&bb, 2);
	fe_negotiate(fp, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF);
	fe_mem_table(fp);
	assert_int_equal(inflight_get(fp, 3, QSIZE, &info), -1);     /* more queues than the device */
	assert_int_equal(inflight_get(fp, 2, 0, &info), -1);         /* size 0 */
	assert_int_equal(inflight_get(fp, 2, 512, &info), -1);       /* over the device's maximum */
	int fd = inflight_get(fp, 2, QSIZE, &info);
	assert_true(fd >= 0);
	size_t stride = vhu_inflight_queue_size(QSIZE, false);
	assert_int_equal(info.mmap_size, 2 * stride);
	assert_int_equal(info.mmap_offset, 0);
	int seals = fcntl(fd, F_GET_SEALS);
	assert_true((seals & F_SEAL_SHRINK) && (seals & F_SEAL_GROW));
	int small = memfd_create("small", MFD_CLOEXEC);
	assert_int_equal(ftruncate(small, 100), 0);
	assert_int_not_equal(inflight_set(fp, 2 * stride, 0, 2, QSIZE, small), 0);       /* file too short */
	assert_int_not_equal(inflight_set(fp, stride, 0, 2, QSIZE, fd), 0);              /* size too small */
	assert_int_not_equal(inflight_set(fp, 2 * stride, 4096, 2, QSIZE, fd), 0);       /* past the end */
	assert_int_not_equal(inflight_set(fp, 2 * stride, 64, 2, QSIZE, fd), 0);         /* offset unaligned */
	assert_int_not_equal(inflight_set(fp, 2 * stride, 0, 9, QSIZE, fd), 0);          /* queues */
	assert_int_not_equal(inflight_set(fp, 2 * stride, 0, 2, 4096, fd), 0);           /* queue size */
	assert_int_not_equal(inflight_set(fp, ~0ull, 0, 2, QSIZE, fd), 0);               /* size overflow */
	close(small);
	/* a region for queue 0 only: ring 1 has no part and does not start */
	assert_int_equal(inflight_set(fp, stride, 0, 1, QSIZE, fd), 0);
	fe_setup_ring(fp, QSIZE, true);
	fe_echo(fp, "tracked in the region");
	unsigned char *region = mmap(NULL, 2 * stride, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(region != MAP_FAILED);
	struct vhu_inflight_split_queue *q0 = (void *)region;
	assert_int_equal(q0->version, 1);
	assert_int_equal(q0->desc_num, QSIZE);
	assert_int_equal(q0->used_idx, 1);
	assert_int_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 1, QSIZE, true), 0);
	struct vhu_user_vring_addr a = { .index = 1, .desc_user_addr = (uintptr_t)fp->mem + 256 * 1024,
					 .avail_user_addr = (uintptr_t)fp->mem + 260 * 1024,
					 .used_user_addr = (uintptr_t)fp->mem + 264 * 1024 };
	assert_int_equal(fe_req(fp, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, true, NULL), 0);
	int k = eventfd(0, EFD_CLOEXEC);
	assert_int_not_equal(fe_req(fp, VHU_USER_SET_VRING_KICK, &(uint64_t){ 1 }, 8, &k, 1, true, NULL), 0);
	close(k);
	assert_int_equal(vhu_queue_state(vhu_device_queue(bb.dev, 1)), VHU_RING_STOPPED);
	/* a region with a version vhu does not know: ring 0 restarted on it breaks */
	struct vhu_user_vring_state s = { 0, 0 };
	fe_req(fp, VHU_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, false, NULL);
	q0->version = 9;
	assert_int_equal(inflight_set(fp, 2 * stride, 0, 2, QSIZE, fd), 0);
	close(fp->q[0].kick);
	close(fp->q[0].call);
	close(fp->q[0].err);
	vhu_drv_vq_destroy(&fp->q[0].drv);
	fe_setup_ring(fp, QSIZE, true);
	assert_int_equal(vhu_queue_state(vhu_device_queue(bb.dev, 0)), VHU_RING_BROKEN);
	uint64_t st = fe_req(fp, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL);
	assert_true(st & VHU_STATUS_DEVICE_NEEDS_RESET);
	assert_true(fe_req(fp, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL) != 0);
	munmap(region, 2 * stride);
	close(fd);
	fe_stop(&bb);
	assert_int_equal(count_fds(), before);
}

/* A device that cannot start a queue: the ring is broken visibly (err fd,
 * DEVICE_NEEDS_RESET), its buffers are never handed to the device, the
 * device is not asked to stop what it never started, and the session goes on. */
static void failed_queue_start_needs_reset(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	session_ops = &failing_start_ops;
	atomic_store(&failing_stops, 0);
	atomic_store(&failing_handles, 0);
	start_session(&bb, false);
	struct pollfd p = { .fd = fp->q[0].err, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 3000), 1);
	assert_true(fe_req(fp, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL) & VHU_STATUS_DEVICE_NEEDS_RESET);
	/* the device core says the same (the reply above ordered it after the start) */
	assert_int_equal(vhu_queue_state(vhu_device_queue(bb.dev, 0)), VHU_RING_BROKEN);
	assert_true(vhu_device_status(bb.dev) & VHU_STATUS_DEVICE_NEEDS_RESET);
	/* a buffer offered anyway is not served */
	uint64_t out = 64 * 1024;
	struct vhu_sg sg = { out, 16 };
	int tok;
	assert_int_equal(vhu_drv_vq_add(&fp->q[0].drv, &sg, 1, 0, &tok), 0);
	fe_kick(fp, 0);
	usleep(50000);
	assert_int_equal(atomic_load(&failing_handles), 0);
	struct vhu_user_vring_state st = { .index = 0 };
	assert_int_equal(fe_req(fp, VHU_USER_GET_VRING_BASE, &st, sizeof(st), NULL, 0, false, NULL), 0);
	assert_int_equal(vhu_queue_state(vhu_device_queue(bb.dev, 0)), VHU_RING_STOPPED);
	assert_true(fe_req(fp, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL) != 0);
	fe_stop(&bb);
	session_ops = &echo_ops;
	assert_int_equal(atomic_load(&failing_stops), 0);
	assert_int_equal(count_fds(), before);
}

/* One row per request: every request of the protocol's message table is
 * served by the library, by the device, or named as not offered; nothing
 * else is known. (A message added to the protocol table without its row
 * fails here.) */
static void dispatch_table_covers_the_protocol(void **state)
{
	(void)state;
	for (uint32_t r = 0; r < 64; r++) {
		const struct vhu_user_request_info *ri = vhu_user_request_info(r);
		enum vhu_backend_serves s = vhu_backend_serves(r);
		if (ri && ri->name)
			assert_true(s == VHU_SERVES_LIBRARY || s == VHU_SERVES_DEVICE || s == VHU_SERVES_NOT_OFFERED);
		else
			assert_int_equal(s, VHU_SERVES_UNKNOWN);
	}
	assert_int_equal(vhu_backend_serves(VHU_USER_SET_MEM_TABLE), VHU_SERVES_LIBRARY);
	assert_int_equal(vhu_backend_serves(VHU_USER_NET_SET_MTU), VHU_SERVES_DEVICE);
	assert_int_equal(vhu_backend_serves(VHU_USER_SET_LOG_BASE), VHU_SERVES_LIBRARY);
	assert_int_equal(vhu_backend_serves(VHU_USER_POSTCOPY_ADVISE), VHU_SERVES_LIBRARY);
	assert_int_equal(vhu_backend_serves(VHU_USER_IOTLB_MSG), VHU_SERVES_LIBRARY);
}

/* Device-specific requests reach the device's request op, with its
 * protocol feature offered only then; without the op they are refused. */
static void device_request_hook(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	const uint64_t mtu_pf = 1ull << VHU_USER_PROTOCOL_F_NET_MTU;

	/* no request op: NET_MTU is not offered, even though the device asks */
	session_pf = ALL_PF | mtu_pf;
	fe_start(&bb, 1);
	assert_false(fe_req(fp, VHU_USER_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, false, NULL) & mtu_pf);
	fe_stop(&bb);

	session_ops = &mtu_ops;
	session_request = mtu_request;
	atomic_store(&device_mtu, 0);
	fe_start(&bb, 1);
	assert_true(fe_req(fp, VHU_USER_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, false, NULL) & mtu_pf);
	fe_negotiate(fp, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF | mtu_pf);
	assert_int_equal(fe_u64(fp, VHU_USER_NET_SET_MTU, 1500, true), 0);
	assert_int_equal(atomic_load(&device_mtu), 1500);
	/* the device's refusal is the ack's value */
	assert_int_equal(fe_u64(fp, VHU_USER_NET_SET_MTU, 20, true), EINVAL);
	assert_int_equal(atomic_load(&device_mtu), 1500);
	/* a device request it does not serve: refused, the session goes on */
	uint64_t mac = 0x525400123456ull;
	assert_int_not_equal(fe_req(fp, VHU_USER_SEND_RARP, &mac, 8, NULL, 0, true, NULL), 0);
	assert_true(fe_req(fp, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL) != 0);
	fe_stop(&bb);
	session_ops = &echo_ops;
	session_request = NULL;
	session_pf = VHU_BACKEND_PROTOCOL_FEATURES;
	assert_int_equal(count_fds(), before);
}

/* A front-end that hangs up while the device is in handle(): the session
 * reset waits for the queue (pause) before it stops it. Regression: after
 * the dispatch table took the pausing out of the handlers, the reset on
 * disconnect stopped queues under their running workers. */
static void disconnect_while_handling(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	session_ops = &slow_ops;
	atomic_store(&slow_overlaps, 0);
	atomic_store(&slow_stops, 0);
	start_session(&bb, false);
	uint64_t out = 64 * 1024, in = 80 * 1024;
	struct vhu_sg sg[2] = { { out, 8 }, { in, 8 } };
	int tok;
	assert_int_equal(vhu_drv_vq_add(&fp->q[0].drv, sg, 1, 1, &tok), 0);
	fe_kick(fp, 0);
	for (int i = 0; i < 200 && !atomic_load(&slow_in_handle); i++)
		usleep(1000);
	assert_true(atomic_load(&slow_in_handle));
	fe_stop(&bb);	/* hangs up, then joins the back-end's control loop */
	session_ops = &echo_ops;
	assert_int_equal(atomic_load(&slow_stops), 1);
	assert_int_equal(atomic_load(&slow_overlaps), 0);
	assert_int_equal(count_fds(), before);
}

/* ---- application-driven (VHU_EXEC_APP), and the control loop in the application's loop -- */

/* The application's loop, in a thread here because the scripted front-end
 * waits for replies: wait on the one event fd, dispatch. */
struct app_loop {
	struct vhu_backend *be;
	atomic_bool stop;
	atomic_int spins;	/* dispatches that found the event fd readable */
};

static void *app_loop_thread(void *arg)
{
	struct app_loop *a = arg;
	struct pollfd p = { .fd = vhu_backend_event_fd(a->be), .events = POLLIN };
	while (!atomic_load(&a->stop)) {
		if (poll(&p, 1, 20) == 1) {
			atomic_fetch_add(&a->spins, 1);
			if (vhu_backend_dispatch(a->be) == -ECONNRESET)
				break;
		}
	}
	return NULL;
}

/* The application's loop in a thread, a front-end on sock with ring 0 set up. */
static void app_session_begin(struct fe *f, int sock, struct app_loop *a, pthread_t *t)
{
	fe_init(f, sock, FE_MEM_SIZE);
	assert_int_equal(pthread_create(t, NULL, app_loop_thread, a), 0);
	fe_negotiate(f, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF);
	fe_mem_table(f);
	fe_setup_ring(f, QSIZE, true);
}

/* The calls' contract, and an epoll set that goes quiet: after a kick fd is
 * replaced (the new one may get the old one's number) and the session is
 * idle, the event fd is not readable, so an application's loop sleeps. */
static void app_driven_session(void **state)
{
	(void)state;
	int before = count_fds();
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct vhu_device_config cfg = {
		.ops = &echo_ops, .num_queues = 1, .max_queue_size = 256, .features = DEV_FEATURES,
		.config_size = ECHO_CONFIG_SIZE, .exec = VHU_EXEC_APP,
	};
	struct vhu_device *dev = vhu_device_new(&cfg);
	assert_non_null(dev);
	assert_true(vhu_device_event_fd(dev) >= 0);
	struct vhu_backend_config bcfg = { .device = dev, .protocol_features = ALL_PF };
	struct app_loop a = { .be = vhu_backend_new(&bcfg) };
	assert_non_null(a.be);
	assert_null(vhu_backend_new(&bcfg));	/* one transport at a time */
	assert_int_equal(errno, EBUSY);
	assert_true(vhu_backend_event_fd(a.be) >= 0);
	assert_int_equal(vhu_backend_dispatch(a.be), -ENOTCONN);
	assert_int_equal(vhu_backend_run_conn(a.be, sv[1]), -EINVAL);	/* not this model's loop */
	assert_int_equal(vhu_backend_attach(a.be, sv[1]), 0);
	assert_int_equal(vhu_backend_attach(a.be, sv[0]), -EBUSY);
	struct fe f;
	pthread_t t;
	app_session_begin(&f, sv[0], &a, &t);
	fe_echo(&f, "served by the application's thread");
	/* a new kick eventfd: the old one closed first, so the new one takes its number */
	close(f.q[0].kick);
	f.q[0].kick = eventfd(0, EFD_CLOEXEC);
	uint64_t idx = 0;
	assert_int_equal(fe_req(&f, VHU_USER_SET_VRING_KICK, &idx, 8, &f.q[0].kick, 1, true, NULL), 0);
	fe_echo(&f, "kicked through the new eventfd");
	usleep(100000);
	atomic_store(&a.spins, 0);
	usleep(200000);	/* idle: the loop must sleep, not spin */
	assert_int_equal(atomic_load(&a.spins), 0);
	close(f.sock);	/* the front-end goes: dispatch reports it and the loop ends */
	f.sock = -1;
	pthread_join(t, NULL);
	assert_int_equal(vhu_backend_dispatch(a.be), -ENOTCONN);
	vhu_backend_free(a.be);
	vhu_device_free(dev);
	fe_close(&f);
	assert_int_equal(count_fds(), before);
}

/* The control socket in the application's loop while the queues run on
 * vhu's threads (a thread each, or a poll group): what vhu-blk --export
 * does for many devices from one thread. */
static void app_control_loop(struct vhu_poll_group *pg)
{
	int before = count_fds();
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct vhu_device_config cfg = {
		.ops = &echo_ops, .num_queues = 2, .max_queue_size = 256, .features = DEV_FEATURES,
		.config_size = ECHO_CONFIG_SIZE, .exec = pg ? VHU_EXEC_POLL_GROUP : VHU_EXEC_THREAD_PER_QUEUE,
		.poll_group = pg,
	};
	struct vhu_device *dev = vhu_device_new(&cfg);
	assert_non_null(dev);
	assert_int_equal(vhu_device_event_fd(dev), -EINVAL);	/* its queues are not the application's */
	struct vhu_backend_config bcfg = { .device = dev, .protocol_features = ALL_PF };
	struct app_loop a = { .be = vhu_backend_new(&bcfg) };
	assert_non_null(a.be);
	assert_int_equal(vhu_backend_dispatch(a.be), -ENOTCONN);
	assert_int_equal(vhu_backend_attach(a.be, sv[1]), 0);
	assert_int_equal(vhu_backend_run_conn(a.be, sv[0]), -EBUSY);	/* one session at a time */
	struct fe f;
	pthread_t t;
	app_session_begin(&f, sv[0], &a, &t);
	fe_echo(&f, "control from the application, queue on vhu's thread");
	close(f.sock);
	f.sock = -1;
	pthread_join(t, NULL);
	vhu_backend_free(a.be);
	vhu_device_free(dev);
	fe_close(&f);
	assert_int_equal(count_fds(), before);
}

static void app_control_loop_thread_per_queue(void **state)
{
	(void)state;
	app_control_loop(NULL);
}

static void app_control_loop_poll_group(void **state)
{
	(void)state;
	struct vhu_poll_group_config c = { .threads = 2, .poll_ns = 20000 };
	struct vhu_poll_group *pg = vhu_poll_group_new(&c);
	assert_non_null(pg);
	assert_int_equal(vhu_poll_group_threads(pg), 2);
	app_control_loop(pg);
	vhu_poll_group_free(pg);
}

static void *config_change_thread(void *arg)
{
	struct vhu_backend *be = arg;
	return (void *)(intptr_t)vhu_backend_config_changed(be);
}

/* The back-end channel: a device announces a config change (from its own
 * thread), and a broken ring is reported in-band when there is no err fd. */
static void backend_channel_messages(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	int chan[2];

	fe_start(&bb, 2);
	fe_negotiate(fp, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan), 0);
	assert_int_equal(fe_req(fp, VHU_USER_SET_BACKEND_REQ_FD, NULL, 0, &chan[1], 1, true, NULL), 0);
	close(chan[1]);
	/* CONFIG_CHANGE_MSG, acknowledged by us (REPLY_ACK) */
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, config_change_thread, bb.be), 0);
	struct vhu_user_msg m;
	assert_int_equal(vhu_user_recv(chan[0], &m, 3000), 0);
	assert_int_equal(m.hdr.request, VHU_USER_BACKEND_CONFIG_CHANGE_MSG);
	assert_true(m.hdr.flags & VHU_USER_NEED_REPLY_MASK);
	struct vhu_user_msg r;
	memset(&r, 0, sizeof(r));
	r.hdr = (struct vhu_user_hdr){ m.hdr.request, VHU_USER_VERSION | VHU_USER_REPLY_MASK, 8 };
	assert_int_equal(vhu_user_send(chan[0], &r), 0);
	void *ret;
	pthread_join(th, &ret);
	assert_int_equal((intptr_t)ret, 0);
	/* in-band VRING_ERR: no err fd, a ring broken by the driver */
	fe_mem_table(fp);
	fp->chan = chan[0];
	fe_setup_ring(fp, QSIZE, false);
	struct vhu_vring_avail *av = (void *)(fp->mem + fp->q[0].layout.driver_off);
	av->ring[0] = 300;
	__atomic_store_n(&av->idx, (uint16_t)1, __ATOMIC_RELEASE);
	assert_int_equal(fe_state(fp, VHU_USER_VRING_KICK, 0, 0, false), 0);
	do {
		assert_int_equal(vhu_user_recv(chan[0], &m, 3000), 0);
		if (m.hdr.flags & VHU_USER_NEED_REPLY_MASK) {
			r.hdr.request = m.hdr.request;
			assert_int_equal(vhu_user_send(chan[0], &r), 0);
		}
	} while (m.hdr.request != VHU_USER_BACKEND_VRING_ERR);
	assert_int_equal(m.payload.state.index, 0);
	fp->chan = -1;
	fe_stop(&bb);
	close(chan[0]);
	assert_int_equal(count_fds(), before);
}

/* Regression (found by fuzz_backend): one eventfd handed to two queues as
 * their kick fd. Both workers see it readable, one empties it, and the
 * other used to block in read() holding its queue lock, so the next
 * request that needed the lock never got an answer. */
static void shared_kick_fd_does_not_deadlock(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;

	start_session(&bb, false);
	/* queue 1: its own ring, but queue 0's kick eventfd */
	struct vhu_vq_layout l;
	vhu_vq_layout(QSIZE, false, &l);
	unsigned char *r1 = fp->mem + 0x40000;
	assert_int_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 1, QSIZE, true), 0);
	struct vhu_user_vring_addr a = { .index = 1, .desc_user_addr = (uintptr_t)r1,
					 .avail_user_addr = (uintptr_t)r1 + l.driver_off,
					 .used_user_addr = (uintptr_t)r1 + l.device_off };
	assert_int_equal(fe_req(fp, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, true, NULL), 0);
	assert_int_equal(fe_req(fp, VHU_USER_SET_VRING_KICK, &(uint64_t){ 1 }, 8, &fp->q[0].kick, 1, true, NULL), 0);
	assert_int_equal(fe_state(fp, VHU_USER_SET_VRING_ENABLE, 1, 1, true), 0);
	for (int i = 0; i < 3000; i++) {
		uint64_t one = 1;
		assert_int_equal(write(fp->q[0].kick, &one, 8), 8);
		/* each of these takes both queue locks */
		assert_int_equal(fe_u64(fp, VHU_USER_SET_STATUS, 0xf, true), 0);
		if (i % 100 == 0)
			fe_mem_table(fp);
	}
	/* With a shared kick fd either worker may take a kick meant for the
	 * other: that is the front-end's doing. Give queue 0 its own again
	 * and check it still serves. */
	int kick = eventfd(0, EFD_CLOEXEC);
	assert_int_equal(fe_req(fp, VHU_USER_SET_VRING_KICK, &(uint64_t){ 0 }, 8, &kick, 1, true, NULL), 0);
	close(fp->q[0].kick);
	fp->q[0].kick = kick;
	fe_echo(fp, "still serving");
	fe_stop(&bb);
	assert_int_equal(count_fds(), before);
}

/* ---- malicious drivers: a driver corrupting its ring while the back-end runs */

#define CANARY_AT 0x90000u
#define CANARY_LEN 0x10000u

struct mcase {
	const char *name;
	bool packed;
	bool breaks;      /* ring error: queue broken, NEEDS_RESET; else the buffer fails */
	void (*corrupt)(struct fe *f);
};

static struct vhu_vring_desc *sdesc_of(struct fe *f) { return (void *)(f->mem + f->q[0].layout.desc_off); }
static struct vhu_vring_avail *savail_of(struct fe *f) { return (void *)(f->mem + f->q[0].layout.driver_off); }
static struct vhu_vring_packed_desc *pdesc_of(struct fe *f) { return (void *)(f->mem + f->q[0].layout.desc_off); }

/* offer head h in the split avail ring */
static void s_offer(struct fe *f, uint16_t h)
{
	struct vhu_vring_avail *a = savail_of(f);
	a->ring[a->idx % QSIZE] = h;
	__atomic_store_n(&a->idx, (uint16_t)(a->idx + 1), __ATOMIC_RELEASE);
}
/* make packed slot at the driver's next position available with these fields */
static void p_offer(struct fe *f, uint64_t addr, uint32_t len, uint16_t flags)
{
	struct vhu_vq_pos pos;
	vhu_drv_vq_get_pos(&f->q[0].drv, &pos);
	struct vhu_vring_packed_desc *d = &pdesc_of(f)[pos.avail];
	d->addr = addr;
	d->len = len;
	d->id = 0;
	__atomic_store_n(&d->flags, (uint16_t)(flags | (pos.avail_wrap ? VHU_VRING_PACKED_DESC_F_AVAIL
									 : VHU_VRING_PACKED_DESC_F_USED)), __ATOMIC_RELEASE);
}
/* a free split descriptor index, beyond what the driver engine used */
#define FREE_DESC (QSIZE - 2)

static void c_loop(struct fe *f)
{
	struct vhu_vring_desc *d = sdesc_of(f);
	d[FREE_DESC] = (struct vhu_vring_desc){ 64 * 1024, 16, VHU_VRING_DESC_F_NEXT, FREE_DESC + 1 };
	d[FREE_DESC + 1] = (struct vhu_vring_desc){ 64 * 1024, 16, VHU_VRING_DESC_F_NEXT, FREE_DESC };
	s_offer(f, FREE_DESC);
}
static void c_avail_jump(struct fe *f)
{
	struct vhu_vring_avail *a = savail_of(f);
	__atomic_store_n(&a->idx, (uint16_t)(a->idx + QSIZE + 5), __ATOMIC_RELEASE);
}
static void c_head_range(struct fe *f) { s_offer(f, 4000); }
static void c_huge_len(struct fe *f)
{
	sdesc_of(f)[FREE_DESC] = (struct vhu_vring_desc){ 80 * 1024, 0xffffff00u, VHU_VRING_DESC_F_WRITE, 0 };
	s_offer(f, FREE_DESC);
}
static void c_outside(struct fe *f)
{
	sdesc_of(f)[FREE_DESC] = (struct vhu_vring_desc){ 1ull << 40, 64, VHU_VRING_DESC_F_WRITE, 0 };
	s_offer(f, FREE_DESC);
}
static void c_past_end(struct fe *f)   /* starts inside guest memory, ends beyond it */
{
	sdesc_of(f)[FREE_DESC] = (struct vhu_vring_desc){ FE_MEM_SIZE - 32, 64, VHU_VRING_DESC_F_WRITE, 0 };
	s_offer(f, FREE_DESC);
}
static void p_chain_too_long(struct fe *f)
{
	/* every slot NEXT: a chain longer than the ring */
	for (unsigned i = 0; i < QSIZE; i++)
		pdesc_of(f)[i].flags = (uint16_t)((pdesc_of(f)[i].flags & ~VHU_VRING_DESC_F_NEXT) | 0);
	struct vhu_vq_pos pos;
	vhu_drv_vq_get_pos(&f->q[0].drv, &pos);
	for (unsigned k = 0; k < QSIZE; k++) {
		unsigned i = (pos.avail + k) % QSIZE;
		bool wrap = pos.avail_wrap ^ (pos.avail + k >= QSIZE);
		struct vhu_vring_packed_desc *d = &pdesc_of(f)[i];
		d->addr = 64 * 1024;
		d->len = 16;
		__atomic_store_n(&d->flags, (uint16_t)(VHU_VRING_DESC_F_NEXT | (wrap ? VHU_VRING_PACKED_DESC_F_AVAIL
										      : VHU_VRING_PACKED_DESC_F_USED)),
				 __ATOMIC_RELEASE);
	}
}
static void p_outside(struct fe *f) { p_offer(f, 1ull << 41, 64, VHU_VRING_DESC_F_WRITE); }
static void p_huge_len(struct fe *f) { p_offer(f, 80 * 1024, 0xfffff000u, VHU_VRING_DESC_F_WRITE); }

static const struct mcase mcases[] = {
	{ "split: descriptor loop", false, true, c_loop },
	{ "split: avail index jumps past the ring", false, true, c_avail_jump },
	{ "split: head out of range", false, true, c_head_range },
	{ "split: 4 GiB writable buffer", false, false, c_huge_len },
	{ "split: buffer outside guest memory", false, false, c_outside },
	{ "split: buffer running past the end of guest memory", false, false, c_past_end },
	{ "packed: chain longer than the ring", true, true, p_chain_too_long },
	{ "packed: buffer outside guest memory", true, false, p_outside },
	{ "packed: 4 GiB writable buffer", true, false, p_huge_len },
};

static void run_mcase(void **state)
{
	const struct mcase *c = *state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;

	start_session(&bb, c->packed);
	memset(fp->mem + CANARY_AT, 0xcc, CANARY_LEN);
	fe_echo(fp, "before");
	c->corrupt(fp);
	uint64_t one = 1;
	assert_int_equal(write(fp->q[0].kick, &one, 8), 8);
	if (c->breaks) {
		struct pollfd p = { .fd = fp->q[0].err, .events = POLLIN };
		assert_int_equal(poll(&p, 1, 3000), 1);
		assert_true(fe_req(fp, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL) & VHU_STATUS_DEVICE_NEEDS_RESET);
		/* the session still answers, and after a reset the device serves again */
		reset_and_restart(fp);
		fe_echo(fp, "after a reset");
	} else {
		/* the bad buffer comes back with nothing written; the queue goes on */
		/* the "before" echo used one buffer (packed: slots 0 and 1), so
		 * the bad one is the second used entry (packed: at slot 2) */
		struct pollfd p = { .fd = fp->q[0].call, .events = POLLIN };
		struct vhu_vring_used *u = (void *)(fp->mem + fp->q[0].layout.device_off);
		bool returned = false;
		/* up to 10 s, as every other wait here */
		for (int tries = 0; tries < 100 && !returned; tries++) {
			returned = c->packed ? (__atomic_load_n(&pdesc_of(fp)[2].flags, __ATOMIC_ACQUIRE) &
						VHU_VRING_PACKED_DESC_F_USED) != 0
					     : __atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == 2;
			/* drain the call eventfd, or a notification left over from
			 * the echo keeps it readable and this loop never waits */
			if (!returned && poll(&p, 1, 100) == 1) {
				uint64_t v;
				assert_int_equal(read(fp->q[0].call, &v, 8), 8);
			}
		}
		assert_true(returned);
		if (c->packed)
			assert_true(pdesc_of(fp)[2].len == 0 || !(pdesc_of(fp)[2].flags & VHU_VRING_DESC_F_WRITE));
		else
			assert_int_equal(u->ring[1].len, 0);
		assert_false(fe_req(fp, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL) & VHU_STATUS_DEVICE_NEEDS_RESET);
		/* the driver engine does not know of the slot we filled by
		 * hand: a fresh ring, as a driver recovering from its own
		 * mistake would start */
		reset_and_restart(fp);
		fe_echo(fp, "after a bad buffer");
	}
	/* the device never wrote outside the buffers it was given */
	for (unsigned i = 0; i < CANARY_LEN; i++)
		if (fp->mem[CANARY_AT + i] != 0xcc)
			fail_msg("guest memory at 0x%x changed", CANARY_AT + i);
	fe_stop(&bb);
	assert_int_equal(count_fds(), before);
}

/* A running ring told to move outside guest memory: refused, and it keeps
 * serving from where it was. */
static void ring_moved_outside_memory(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	start_session(&bb, false);
	fe_echo(fp, "before");
	struct vhu_user_vring_addr a = { .index = 0, .desc_user_addr = (uintptr_t)fp->mem + FE_MEM_SIZE,
					 .avail_user_addr = (uintptr_t)fp->mem, .used_user_addr = (uintptr_t)fp->mem };
	assert_int_not_equal(fe_req(fp, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, true, NULL), 0);
	fe_echo(fp, "still on the old ring");
	fe_stop(&bb);
	assert_int_equal(count_fds(), before);
}

/* The same sessions with the device's queues on a poll group of two threads. */
static int on_poll_group(void **state)
{
	(void)state;
	struct vhu_poll_group_config c = { .threads = 2, .poll_ns = 20000 };
	session_pg = vhu_poll_group_new(&c);
	return session_pg ? 0 : -1;
}
static int off_poll_group(void **state)
{
	(void)state;
	vhu_poll_group_free(session_pg);
	session_pg = NULL;
	return 0;
}
#define ON_POLL_GROUP(f) { #f "_on_poll_group", f, on_poll_group, off_poll_group, NULL }

/* ---- IOTLB (ACCESS_PLATFORM) -------------------------------------------- */
static uint64_t fe_iotlb(struct fe *f, uint8_t type, uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm)
{
	struct vhu_user_iotlb m = { .iova = iova, .size = size, .uaddr = uaddr, .perm = perm, .type = type };
	return fe_req(f, VHU_USER_IOTLB_MSG, &m, sizeof(m), NULL, 0, true, NULL);
}

/* The MISS the back-end sends on its channel: type, address, access. A
 * request looked at again before its answer came is asked for again: a
 * repeat of the last miss (*last) may come first. */
static void expect_miss(int chan, uint64_t iova, uint8_t perm, uint64_t *last)
{
	struct vhu_user_msg m;
	for (;;) {
		assert_int_equal(vhu_user_recv(chan, &m, 5000), 0);
		assert_int_equal(m.hdr.request, VHU_USER_BACKEND_IOTLB_MSG);
		assert_false(m.hdr.flags & VHU_USER_NEED_REPLY_MASK);	/* see src/backend/iotlb.c */
		assert_int_equal(m.payload.iotlb.type, VHU_USER_IOTLB_MISS);
		if (m.payload.iotlb.iova != *last || iova == *last)
			break;
	}
	assert_int_equal(m.payload.iotlb.iova, iova);
	assert_int_equal(m.payload.iotlb.perm, perm);
	*last = iova;
}

/*
 * A guest behind an IOMMU: IOTLB messages refused until ACCESS_PLATFORM is
 * negotiated, and hostile ones after; rings and buffers at I/O virtual
 * addresses; a buffer the IOTLB lacks is asked for and its request waits,
 * then completes once the update comes; a ring whose mapping is invalidated
 * waits unmapped, and goes on where it stood once mapped again.
 */
static void iotlb_messages(void **state)
{
	(void)state;
	int before = count_fds();
	struct bfe bb;
	struct fe *const fp = &bb.fe;
	session_extra_features = VHU_BIT(VHU_F_ACCESS_PLATFORM);
	fe_start(&bb, 1);
	session_extra_features = 0;
	fe_negotiate(fp, DEV_FEATURES & ~VHU_BIT(VHU_F_RING_PACKED), ALL_PF);
	uint64_t mem = (uintptr_t)fp->mem;
	assert_int_equal(fe_iotlb(fp, VHU_USER_IOTLB_UPDATE, 0x10000, 0x1000, mem + 0x10000, VHU_USER_IOTLB_PERM_RO),
			 EINVAL);	/* not negotiated */
	int chan[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan), 0);
	assert_int_equal(fe_req(fp, VHU_USER_SET_BACKEND_REQ_FD, NULL, 0, &chan[1], 1, true, NULL), 0);
	close(chan[1]);
	fp->features |= VHU_BIT(VHU_F_ACCESS_PLATFORM);
	assert_int_equal(fe_u64(fp, VHU_USER_SET_FEATURES, fp->features, true), 0);
	fe_mem_table(fp);
	struct {
		const char *name;
		uint8_t type, perm;
		uint64_t iova, size, uaddr;
	} bad[] = {
		{ "empty update", VHU_USER_IOTLB_UPDATE, VHU_USER_IOTLB_PERM_RW, 0x10000, 0, mem },
		{ "update wrapping", VHU_USER_IOTLB_UPDATE, VHU_USER_IOTLB_PERM_RW, UINT64_MAX - 0xfff, 0x2000, mem },
		{ "user address wrapping", VHU_USER_IOTLB_UPDATE, VHU_USER_IOTLB_PERM_RW, 0, 0x2000, UINT64_MAX - 0xfff },
		{ "no permission", VHU_USER_IOTLB_UPDATE, 0, 0x10000, 0x1000, mem },
		{ "unknown permission", VHU_USER_IOTLB_UPDATE, 7, 0x10000, 0x1000, mem },
		{ "empty invalidation", VHU_USER_IOTLB_INVALIDATE, 0, 0x10000, 0, 0 },
		{ "a MISS from the front-end", VHU_USER_IOTLB_MISS, VHU_USER_IOTLB_PERM_RO, 0x10000, 1, 0 },
		{ "ACCESS_FAIL from the front-end", VHU_USER_IOTLB_ACCESS_FAIL, VHU_USER_IOTLB_PERM_RO, 0x10000, 1, 0 },
		{ "unknown type", 9, VHU_USER_IOTLB_PERM_RO, 0x10000, 0x1000, mem },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (fe_iotlb(fp, bad[i].type, bad[i].iova, bad[i].size, bad[i].uaddr, bad[i].perm) != EINVAL)
			fail_msg("%s: not refused", bad[i].name);
	/* the rings at IOVA = user address; the echo's buffers at IOVA 64 KiB
	 * (read) and 80 KiB (write), as the descriptors give them */
	assert_int_equal(fe_iotlb(fp, VHU_USER_IOTLB_UPDATE, mem, 0x10000, mem, VHU_USER_IOTLB_PERM_RW), 0);
	assert_int_equal(fe_iotlb(fp, VHU_USER_IOTLB_UPDATE, 0x10000, 0x4000, mem + 0x10000, VHU_USER_IOTLB_PERM_RO), 0);
	fe_setup_ring(fp, QSIZE, true);
	/* the write buffer missing: the request waits, asked for */
	int tok;
	void *t;
	uint32_t len;
	memcpy(fp->mem + 0x10000, "iommu", 6);
	struct vhu_sg sg[2] = { { 0x10000, 6 }, { 0x14000, 6 } };
	assert_int_equal(vhu_drv_vq_add(&fp->q[0].drv, sg, 1, 1, &tok), 0);
	fe_kick(fp, 0);
	uint64_t last = UINT64_MAX;
	expect_miss(chan[0], 0x14000, VHU_USER_IOTLB_PERM_WO, &last);
	assert_int_equal(fe_iotlb(fp, VHU_USER_IOTLB_UPDATE, 0x14000, 0x4000, mem + 0x14000, VHU_USER_IOTLB_PERM_WO), 0);
	fe_wait_used(fp, 0, &t, &len);
	assert_ptr_equal(t, &tok);
	assert_int_equal(len, 6);
	assert_string_equal((char *)fp->mem + 0x14000, "iommu");
	fe_echo(fp, "through the IOTLB");
	/* a read through a write-only mapping is a fault, not a miss: the
	 * request comes back with nothing written */
	struct vhu_sg wrong[2] = { { 0x14000, 6 }, { 0x14100, 6 } };
	assert_int_equal(vhu_drv_vq_add(&fp->q[0].drv, wrong, 1, 1, &tok), 0);
	fe_kick(fp, 0);
	fe_wait_used(fp, 0, &t, &len);
	assert_int_equal(len, 0);
	/* a mapping that never comes (the guest gave an address its IOMMU
	 * does not map, and QEMU answers nothing): after a bounded wait the
	 * request fails and the queue goes on */
	struct vhu_sg never[2] = { { 0x10000, 6 }, { 0x30000, 6 } };
	assert_int_equal(vhu_drv_vq_add(&fp->q[0].drv, never, 1, 1, &tok), 0);
	fe_kick(fp, 0);
	expect_miss(chan[0], 0x30000, VHU_USER_IOTLB_PERM_WO, &last);
	fe_wait_used(fp, 0, &t, &len);
	assert_int_equal(len, 0);
	fe_echo(fp, "after a request that waited in vain");
	/* the rings' mapping invalidated: the ring waits, asking; mapped
	 * again, it goes on where it stood */
	assert_int_equal(fe_iotlb(fp, VHU_USER_IOTLB_INVALIDATE, mem, 0x10000, 0, 0), 0);
	expect_miss(chan[0], (uintptr_t)(fp->q[0].base + fp->q[0].layout.desc_off), VHU_USER_IOTLB_PERM_RO, &last);
	/* while it waits, unmapped: a new memory table unmaps the old memory,
	 * and a kick must not make the worker read the ring it had (a fuzz_backend
	 * find: it did, and faulted) */
	fe_mem_table(fp);
	fe_kick(fp, 0);
	uint64_t one = 1;
	assert_int_equal(write(fp->q[0].kick, &one, 8), 8);
	usleep(50000);
	/* and ACCESS_PLATFORM cannot change under a ring */
	assert_int_equal(fe_u64(fp, VHU_USER_SET_FEATURES, fp->features & ~VHU_BIT(VHU_F_ACCESS_PLATFORM), true), EBUSY);
	assert_int_equal(fe_iotlb(fp, VHU_USER_IOTLB_UPDATE, mem, 0x10000, mem, VHU_USER_IOTLB_PERM_RW), 0);
	fe_echo(fp, "after the rings came back");
	/* a ring stopped while it waited stays stopped when the mapping comes
	 * (it started on the update once: a stopped ring then refuses no new
	 * size, a started one does) */
	assert_int_equal(fe_iotlb(fp, VHU_USER_IOTLB_INVALIDATE, mem, 0x10000, 0, 0), 0);
	expect_miss(chan[0], (uintptr_t)(fp->q[0].base + fp->q[0].layout.desc_off), VHU_USER_IOTLB_PERM_RO, &last);
	struct vhu_user_msg r;
	fe_req(fp, VHU_USER_GET_VRING_BASE, &(struct vhu_user_vring_state){ 0, 0 }, 8, NULL, 0, false, &r);
	assert_int_equal(fe_iotlb(fp, VHU_USER_IOTLB_UPDATE, mem, 0x10000, mem, VHU_USER_IOTLB_PERM_RW), 0);
	assert_int_equal(fe_state(fp, VHU_USER_SET_VRING_NUM, 0, QSIZE, true), 0);
	close(chan[0]);
	fe_stop(&bb);
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
		cmocka_unit_test(inflight_messages),
		cmocka_unit_test(inflight_ring_larger_than_its_part),
		cmocka_unit_test(failed_queue_start_needs_reset),
		cmocka_unit_test(dispatch_table_covers_the_protocol),
		cmocka_unit_test(device_request_hook),
		cmocka_unit_test(disconnect_while_handling),
		cmocka_unit_test(app_driven_session),
		cmocka_unit_test(app_control_loop_thread_per_queue),
		cmocka_unit_test(app_control_loop_poll_group),
		cmocka_unit_test(backend_channel_messages),
		cmocka_unit_test(shared_kick_fd_does_not_deadlock),
		cmocka_unit_test(ring_moved_outside_memory),
		cmocka_unit_test(dirty_log_hostile),
		cmocka_unit_test(iotlb_messages),
		cmocka_unit_test(postcopy_messages),
		cmocka_unit_test(postcopy_page_never_placed),
		ON_POLL_GROUP(session_split_eventfd),
		ON_POLL_GROUP(session_packed_eventfd),
		ON_POLL_GROUP(session_split_inband),
		ON_POLL_GROUP(session_packed_inband),
		ON_POLL_GROUP(broken_ring_needs_reset),
		ON_POLL_GROUP(failed_queue_start_needs_reset),
		ON_POLL_GROUP(disconnect_while_handling),
		ON_POLL_GROUP(shared_kick_fd_does_not_deadlock),
		ON_POLL_GROUP(ring_moved_outside_memory),
	};
	enum { NM = sizeof(mcases) / sizeof(mcases[0]), NT = sizeof(tests) / sizeof(tests[0]) };
	struct CMUnitTest all[NT + NM];
	memcpy(all, tests, sizeof(tests));
	for (unsigned i = 0; i < NM; i++)
		all[NT + i] = (struct CMUnitTest){ .name = mcases[i].name, .test_func = run_mcase,
						   .initial_state = (void *)&mcases[i] };
	return _cmocka_run_group_tests("backend", all, NT + NM, NULL, NULL);
}
