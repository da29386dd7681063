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

/* A doorbell page (or its withdrawal) from the back-end; the answer. */
static uint64_t fe_doorbell(struct fe *f, const struct vhu_user_msg *m)
{
	const struct vhu_user_vring_area *a = &m->payload.area;
	unsigned qi = (unsigned)(a->u64 & VHU_USER_VRING_IDX_MASK);
	assert_int_equal(m->hdr.size, sizeof(*a));
	assert_true(qi < FE_MAX_RINGS);
	struct fe_ring *q = &f->q[qi];
	q->doorbell_msgs++;
	if (q->doorbell)
		munmap(q->doorbell, 4096);
	q->doorbell = NULL;
	if (a->u64 & VHU_USER_VRING_NOFD_MASK) {
		q->doorbell_gone++;
		return 0;
	}
	assert_int_equal(m->nfds, 1);
	assert_int_equal(a->size, 4096);
	if (f->doorbell_answer == FE_DOORBELL_REFUSE)
		return 1;
	if (f->doorbell_answer == FE_DOORBELL_USE) {
		q->doorbell = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m->fds[0], (off_t)a->offset);
		assert_true(q->doorbell != MAP_FAILED);
	}
	return 0;
}

static void fe_serve_chan(struct fe *f)
{
	struct vhu_user_msg m;
	uint64_t result = 0;
	assert_int_equal(vhu_user_recv(f->chan, &m, 1000), 0);
	if (m.hdr.request == VHU_USER_BACKEND_VRING_HOST_NOTIFIER_MSG)
		result = fe_doorbell(f, &m);
	vhu_user_msg_close_fds(&m);
	if (m.hdr.request == VHU_USER_BACKEND_VRING_CALL) {
		assert_true(m.payload.state.index < FE_MAX_RINGS);
		f->q[m.payload.state.index].inband_calls++;
	}
	if (m.hdr.flags & VHU_USER_NEED_REPLY_MASK) {
		struct vhu_user_msg r;
		memset(&r, 0, sizeof(r));
		r.hdr = (struct vhu_user_hdr){ m.hdr.request, VHU_USER_VERSION | VHU_USER_REPLY_MASK, 8 };
		r.payload.u64 = result;
		assert_int_equal(vhu_user_send(f->chan, &r), 0);
	}
}

void fe_serve_backend_channel(struct fe *f, int timeout_ms)
{
	struct pollfd p = { .fd = f->chan, .events = POLLIN };
	while (f->chan >= 0 && poll(&p, 1, timeout_ms) == 1) {
		fe_serve_chan(f);
		timeout_ms = 0;
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

/* fuzz_backend's encoding (fuzz/fuzz_backend.c): request, flags, size (LE
 * 16), payload, then a byte with the fd count in bits 0-1 and, for fd i,
 * bit 2+i set if it is an eventfd (else a memfd). */
static bool is_eventfd(int fd)
{
	char link[64], path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	return n > 0 && (link[n] = 0, strstr(link, "eventfd") != NULL);
}

static void seed_record(struct fe *f, const struct vhu_user_msg *m)
{
	if (!f->seed || m->nfds > 3)
		return;
	uint8_t head[4] = { (uint8_t)m->hdr.request, (uint8_t)m->hdr.flags, (uint8_t)m->hdr.size,
			    (uint8_t)(m->hdr.size >> 8) };
	uint8_t fds = (uint8_t)m->nfds;
	for (unsigned i = 0; i < m->nfds; i++)
		fds |= (uint8_t)(is_eventfd(m->fds[i]) << (2 + i));
	fwrite(head, 1, 4, f->seed);
	fwrite(&m->payload, 1, m->hdr.size, f->seed);
	fwrite(&fds, 1, 1, f->seed);
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
	seed_record(f, &m);
	assert_int_equal(vhu_user_send(f->sock, &m), 0);
	const struct vhu_user_request_info *ri = vhu_user_request_info(req);
	if (!need_reply && !(ri && ri->replies))
		return 0;
	int rc = fe_recv_reply(f, &r);
	if (rc != 0)
		fail_msg("no reply to request %u: %d", req, rc);
	assert_int_equal(r.hdr.request, req);
	assert_true(r.hdr.flags & VHU_USER_REPLY_MASK);
	/* fds in a reply (GET_INFLIGHT_FD) are the caller's with *out */
	if (out)
		*out = r;
	else
		vhu_user_msg_close_fds(&r);
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

unsigned char *fe_gpa(struct fe *f, uint64_t gpa)
{
	for (unsigned i = 0; i < f->nregions; i++)
		if (gpa - f->regions[i].gpa < f->regions[i].size)
			return f->mem + f->regions[i].offset + (gpa - f->regions[i].gpa);
	return NULL;
}

void fe_mem_table(struct fe *f)
{
	struct vhu_user_mem_table t = { .nregions = f->nregions };
	int fds[FE_MAX_REGIONS];
	for (unsigned i = 0; i < f->nregions; i++) {
		const struct fe_region *r = &f->regions[i];
		t.regions[i] = (struct vhu_user_mem_region){ r->gpa, r->size, (uintptr_t)f->mem + r->offset,
							     r->offset };
		fds[i] = dup(f->memfd);
	}
	assert_int_equal(fe_req(f, VHU_USER_SET_MEM_TABLE, &t, sizeof(t), fds, f->nregions, true, NULL), 0);
	for (unsigned i = 0; i < f->nregions; i++)
		close(fds[i]);
}

void fe_setup_ring(struct fe *f, uint16_t qsize, bool eventfds)
{
	fe_setup_ring_at(f, 0, 0, qsize, eventfds);
}

void fe_setup_ring_at(struct fe *f, unsigned qi, uint64_t gpa, uint16_t qsize, bool eventfds)
{
	bool packed = vhu_has_feature(f->features, VHU_F_RING_PACKED);
	assert_true(qi < FE_MAX_RINGS);
	struct fe_ring *q = &f->q[qi];
	q->qsize = qsize;
	vhu_vq_layout(qsize, packed, &q->layout);
	q->base = fe_gpa(f, gpa);
	assert_non_null(q->base);
	assert_ptr_equal(fe_gpa(f, gpa + q->layout.size - 1), q->base + q->layout.size - 1);
	memset(q->base, 0, q->layout.size);
	struct vhu_vq_config c = {
		.num = qsize, .index = (uint16_t)qi, .features = f->features, .desc = q->base + q->layout.desc_off,
		.driver_area = q->base + q->layout.driver_off, .device_area = q->base + q->layout.device_off,
	};
	assert_int_equal(vhu_drv_vq_init(&q->drv, &c, NULL, 0, 0), 0);
	assert_int_equal(fe_state(f, VHU_USER_SET_VRING_NUM, qi, qsize, true), 0);
	assert_int_equal(fe_state(f, VHU_USER_SET_VRING_BASE, qi, packed ? 1u << 15 | 1u << 31 : 0, true), 0);
	struct vhu_user_vring_addr a = {
		.index = qi, .desc_user_addr = (uintptr_t)c.desc, .avail_user_addr = (uintptr_t)c.driver_area,
		.used_user_addr = (uintptr_t)c.device_area,
	};
	assert_int_equal(fe_req(f, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, true, NULL), 0);
	if (eventfds) {
		q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		q->kick = eventfd(0, EFD_CLOEXEC);
		q->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		uint64_t idx = qi;
		assert_int_equal(fe_req(f, VHU_USER_SET_VRING_CALL, &idx, 8, &q->call, 1, true, NULL), 0);
		assert_int_equal(fe_req(f, VHU_USER_SET_VRING_ERR, &idx, 8, &q->err, 1, true, NULL), 0);
		assert_int_equal(fe_req(f, VHU_USER_SET_VRING_KICK, &idx, 8, &q->kick, 1, true, NULL), 0);
	}
	assert_int_equal(fe_state(f, VHU_USER_SET_VRING_ENABLE, qi, 1, true), 0);
}

/* Wait up to timeout_ms for a used-buffer notification of ring qi (eventfd
 * or in-band); returns quietly either way: callers recheck the ring. */
static void fe_wait_call(struct fe *f, unsigned qi, int timeout_ms)
{
	struct fe_ring *q = &f->q[qi];
	if (q->inband_calls) {
		q->inband_calls--;
		return;
	}
	/* the call eventfd, and the channel (in-band calls, doorbell pages) */
	struct pollfd p[2] = { { .fd = q->call, .events = POLLIN }, { .fd = f->chan, .events = POLLIN } };
	uint64_t v;
	if (poll(p, 2, timeout_ms) <= 0)
		return;
	if (p[1].revents & POLLIN)
		fe_serve_chan(f);
	if (q->inband_calls)
		q->inband_calls--;
	if (p[0].revents & POLLIN)
		assert_int_equal(read(q->call, &v, 8), 8);
}

void fe_init(struct fe *f, int sock, size_t mem_size)
{
	memset(f, 0, sizeof(*f));
	f->sock = sock;
	f->chan = -1;
	for (unsigned i = 0; i < FE_MAX_RINGS; i++)
		f->q[i].kick = f->q[i].call = f->q[i].err = -1;
	f->memfd = memfd_create("vhu-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(f->memfd >= 0);
	assert_int_equal(ftruncate(f->memfd, (off_t)mem_size), 0);
	f->mem_size = mem_size;
	f->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	assert_true(f->mem != MAP_FAILED);
	f->regions[0] = (struct fe_region){ 0, mem_size, 0 };
	f->nregions = 1;
	const char *dir = getenv("VHU_FUZZ_SEED_DIR");
	if (dir) {
		static unsigned n;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s-%d-%u.bin", dir, program_invocation_short_name, getpid(), n++);
		f->seed = fopen(path, "we");
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void fe_close(struct fe *f)
{
	close_fd(&f->sock);
	for (unsigned i = 0; i < FE_MAX_RINGS; i++) {
		struct fe_ring *q = &f->q[i];
		vhu_drv_vq_destroy(&q->drv);
		close_fd(&q->kick);
		close_fd(&q->call);
		close_fd(&q->err);
		if (q->doorbell)
			munmap(q->doorbell, 4096);
		q->doorbell = NULL;
	}
	munmap(f->mem, f->mem_size);
	f->mem = NULL;
	if (f->seed)
		fclose(f->seed);
	f->seed = NULL;
	close_fd(&f->memfd);
}

void fe_kick(struct fe *f, unsigned qi)
{
	struct fe_ring *q = &f->q[qi];
	if (!vhu_drv_vq_kick_prepare(&q->drv))
		return;
	if (q->doorbell) {
		if (f->features >> VHU_F_NOTIFICATION_DATA & 1)
			__atomic_store_n(q->doorbell, vhu_drv_vq_notification_data(&q->drv), __ATOMIC_RELEASE);
		else
			__atomic_store_n((uint16_t *)q->doorbell, (uint16_t)qi, __ATOMIC_RELEASE);
	} else if (q->kick >= 0) {
		uint64_t one = 1;
		assert_int_equal(write(q->kick, &one, 8), 8);
	} else {
		assert_int_equal(fe_state(f, VHU_USER_VRING_KICK, qi, 0, true), 0);
	}
}

void fe_wait_used(struct fe *f, unsigned qi, void **token, uint32_t *len)
{
	struct fe_ring *q = &f->q[qi];
	/* as every driver: re-arm used-buffer notifications and recheck
	 * before sleeping (with EVENT_IDX a stale used_event suppresses) */
	/* bounded by time, not by a count of notifications: stale and
	 * spurious ones are allowed and may pile up (in-band especially) */
	for (int waited = 0; vhu_drv_vq_get(&q->drv, token, len) != 1;) {
		if (vhu_drv_vq_enable_cb(&q->drv))
			continue;
		if (waited >= 10000)
			fail_msg("ring %u: no used buffer within %d ms", qi, waited);
		fe_wait_call(f, qi, 100);
		waited += 100;
	}
}
