/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "minife.h"
#include "vhu/virtio.h"

static size_t mem_size_of(const struct fe *f);
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

uint64_t fe_req(struct fe *f, uint32_t req, const void *payload, uint32_t size,
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

uint64_t fe_u64(struct fe *f, uint32_t req, uint64_t v, bool ack)
{
	return fe_req(f, req, &v, 8, NULL, 0, ack, NULL);
}

uint64_t fe_state(struct fe *f, uint32_t req, uint32_t index, uint32_t num, bool ack)
{
	struct vhu_user_vring_state s = { index, num };
	return fe_req(f, req, &s, sizeof(s), NULL, 0, ack, NULL);
}

uint64_t fe_negotiate(struct fe *f, uint64_t want, uint64_t pf)
{
	uint64_t feats = fe_req(f, VHU_USER_GET_FEATURES, NULL, 0, NULL, 0, false, NULL);
	assert_true(feats >> VHU_USER_F_PROTOCOL_FEATURES & 1);
	uint64_t offered = fe_req(f, VHU_USER_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, false, NULL);
	assert_int_equal(pf & ~offered, 0);
	assert_int_equal(fe_u64(f, VHU_USER_SET_PROTOCOL_FEATURES, pf, true), 0);
	uint64_t nq = fe_req(f, VHU_USER_GET_QUEUE_NUM, NULL, 0, NULL, 0, false, NULL);
	assert_int_equal(fe_req(f, VHU_USER_SET_OWNER, NULL, 0, NULL, 0, true, NULL), 0);
	f->features = (want & feats) | (1ull << VHU_USER_F_PROTOCOL_FEATURES);
	assert_int_equal(fe_u64(f, VHU_USER_SET_FEATURES, f->features, true), 0);
	return nq;
}

void fe_mem_table(struct fe *f)
{
	struct vhu_user_mem_table t = { .nregions = 1 };
	t.regions[0] = (struct vhu_user_mem_region){ 0, mem_size_of(f), (uintptr_t)f->mem, 0 };
	int fd = dup(f->memfd);
	assert_int_equal(fe_req(f, VHU_USER_SET_MEM_TABLE, &t, sizeof(t), &fd, 1, true, NULL), 0);
	close(fd);
}

void fe_setup_ring(struct fe *f, uint16_t qsize, bool eventfds)
{
	bool packed = vhu_has_feature(f->features, VHU_F_RING_PACKED);
	f->qsize = qsize;
	vhu_vq_layout(qsize, packed, &f->layout);
	memset(f->mem, 0, f->layout.size);
	struct vhu_vq_config c = {
		.num = qsize, .index = 0, .features = f->features, .desc = f->mem + f->layout.desc_off,
		.driver_area = f->mem + f->layout.driver_off, .device_area = f->mem + f->layout.device_off,
	};
	assert_int_equal(vhu_drv_vq_init(&f->drv, &c, NULL, 0, 0), 0);
	assert_int_equal(fe_state(f, VHU_USER_SET_VRING_NUM, 0, qsize, true), 0);
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

/* Wait up to timeout_ms for a used-buffer notification (eventfd or
 * in-band); returns quietly either way: callers recheck the ring. */
static void fe_wait_call(struct fe *f, int timeout_ms)
{
	if (f->chan >= 0) {
		if (!f->inband_calls) {
			struct pollfd p = { .fd = f->chan, .events = POLLIN };
			if (poll(&p, 1, timeout_ms) == 1)
				fe_serve_chan(f);
		}
		if (f->inband_calls)
			f->inband_calls--;
	} else {
		struct pollfd p = { .fd = f->call, .events = POLLIN };
		uint64_t v;
		if (poll(&p, 1, timeout_ms) == 1)
			assert_int_equal(read(f->call, &v, 8), 8);
	}
}

void fe_init(struct fe *f, int sock, size_t mem_size)
{
	memset(f, 0, sizeof(*f));
	f->sock = sock;
	f->kick = f->call = f->err = f->chan = -1;
	f->memfd = memfd_create("vhu-guest", MFD_CLOEXEC);
	assert_true(f->memfd >= 0);
	assert_int_equal(ftruncate(f->memfd, (off_t)mem_size), 0);
	f->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	assert_true(f->mem != MAP_FAILED);
}

static size_t mem_size_of(const struct fe *f)
{
	return (size_t)lseek(f->memfd, 0, SEEK_END);
}

void fe_close(struct fe *f)
{
	if (f->sock >= 0)
		close(f->sock);
	vhu_drv_vq_destroy(&f->drv);
	munmap(f->mem, mem_size_of(f));
	close(f->memfd);
	if (f->kick >= 0)
		close(f->kick);
	if (f->call >= 0)
		close(f->call);
	if (f->err >= 0)
		close(f->err);
	f->sock = f->kick = f->call = f->err = -1;
}

void fe_kick(struct fe *f)
{
	if (!vhu_drv_vq_kick_prepare(&f->drv))
		return;
	if (f->kick >= 0) {
		uint64_t one = 1;
		assert_int_equal(write(f->kick, &one, 8), 8);
	} else {
		assert_int_equal(fe_state(f, VHU_USER_VRING_KICK, 0, 0, true), 0);
	}
}

void fe_wait_used(struct fe *f, void **token, uint32_t *len)
{
	/* as every driver: re-arm used-buffer notifications and recheck
	 * before sleeping (with EVENT_IDX a stale used_event suppresses) */
	/* bounded by time, not by a count of notifications: stale and
	 * spurious ones are allowed and may pile up (in-band especially) */
	for (int waited = 0; vhu_drv_vq_get(&f->drv, token, len) != 1;) {
		if (vhu_drv_vq_enable_cb(&f->drv))
			continue;
		if (waited >= 10000)
			fail_msg("no used buffer within %d ms", waited);
		fe_wait_call(f, 100);
		waited += 100;
	}
}
