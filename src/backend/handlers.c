/* SPDX-License-Identifier: MIT */
/*
 * Back-end message handlers. vhu_user_check_shape() has already checked
 * size, fds and protocol features; each handler checks the meaning (indices,
 * sizes, states) before it changes anything, and owns the message's fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "backend_internal.h"

static void reply_u64(struct reply *rep, uint64_t v)
{
	rep->has_body = true;
	rep->msg.hdr.size = 8;
	rep->msg.payload.u64 = v;
}

static struct vhu_bqueue *queue_of(struct vhu_backend *be, uint32_t index)
{
	if (index >= be->cfg.num_queues) {
		be_err(be, "vring index %u out of range (%u queues)", index, be->cfg.num_queues);
		return NULL;
	}
	return &be->q[index];
}

static uint64_t offered_features(const struct vhu_backend *be)
{
	uint64_t f = be->cfg.features;
	if (be->cfg.protocol_features)
		f |= 1ull << VHU_USER_F_PROTOCOL_FEATURES;
	return f;
}

static int set_features(struct vhu_backend *be, uint64_t f)
{
	uint64_t extra = f & ~offered_features(be);

	if (extra) {
		be_err(be, "SET_FEATURES: 0x%llx was not offered", (unsigned long long)extra);
		return -EINVAL;
	}
	for (unsigned i = 0; i < be->cfg.num_queues; i++)
		if (be->q[i].started && ((f ^ be->features) & (VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX)))) {
			be_err(be, "SET_FEATURES: ring format changed while queue %u runs", i);
			return -EBUSY;
		}
	be->features = f;
	if (be->cfg.ops->set_features)
		return be->cfg.ops->set_features(be, f);
	return 0;
}

static int set_protocol_features(struct vhu_backend *be, uint64_t f)
{
	uint64_t offered = be->cfg.protocol_features;

	if (f & ~offered) {
		be_err(be, "SET_PROTOCOL_FEATURES: 0x%llx was not offered",
		       (unsigned long long)(f & ~offered));
		return -EINVAL;
	}
	/* "In-band notifications": negotiated without BACKEND_REQ and
	 * REPLY_ACK it is an error the back-end answers by closing. */
	if ((f >> VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS & 1) &&
	    (!(f >> VHU_USER_PROTOCOL_F_BACKEND_REQ & 1) || !(f >> VHU_USER_PROTOCOL_F_REPLY_ACK & 1))) {
		be_err(be, "INBAND_NOTIFICATIONS without BACKEND_REQ and REPLY_ACK: closing");
		be->close_conn = true;
		return -EINVAL;
	}
	be->protocol_features = f;
	return 0;
}

static void report_if_shrinkable(struct vhu_backend *be, const struct vhu_mem_region *r)
{
	if (r->may_shrink)
		be_info(be, "guest memory at gpa 0x%llx is not sealed against shrinking: a front-end "
			"truncating it would crash this process (SIGBUS)", (unsigned long long)r->gpa);
}

/* The memory table changed under paused queues: every running ring maps
 * its addresses anew, and one whose ring is no longer in guest memory
 * cannot go on; it fails like any broken ring rather than stop silently. */
static void remap_rings(struct vhu_backend *be)
{
	for (unsigned i = 0; i < be->cfg.num_queues; i++) {
		int r = bq_refresh(&be->q[i]);
		if (r < 0)
			bq_fail(&be->q[i], "its ring is no longer in guest memory", r);
	}
}

/* Build a new table from SET_MEM_TABLE, then swap it in with every queue
 * paused and drained, so no worker ever sees a half-built table and no
 * request in flight outlives the mapping it uses. */
static int set_mem_table(struct vhu_backend *be, struct vhu_user_msg *m)
{
	const struct vhu_user_mem_table *t = &m->payload.mem;
	struct vhu_mem fresh, old;
	int r = 0;

	vhu_mem_init(&fresh);
	for (unsigned i = 0; i < t->nregions; i++) {
		int fd = m->fds[i];
		m->fds[i] = -1;           /* vhu_mem_add owns it now */
		if (!r && (r = vhu_mem_add(&fresh, &t->regions[i], fd)) < 0)
			be_err(be, "SET_MEM_TABLE: region %u (gpa 0x%llx size 0x%llx) refused: %s", i,
			       (unsigned long long)t->regions[i].guest_phys_addr,
			       (unsigned long long)t->regions[i].memory_size, strerror(-r));
		else if (r)
			close(fd);
	}
	if (r) {
		vhu_mem_clear(&fresh);
		return r;
	}
	for (unsigned i = 0; i < fresh.n; i++)
		report_if_shrinkable(be, &fresh.r[i]);
	be_pause_all(be);
	vhu_mem_move(&old, &be->mem);
	vhu_mem_move(&be->mem, &fresh);
	remap_rings(be);
	be_resume_all(be);
	vhu_mem_clear(&old);
	be_dbg(be, "memory table: %u regions", t->nregions);
	return 0;
}

static int add_mem_reg(struct vhu_backend *be, struct vhu_user_msg *m)
{
	int fd = m->fds[0], r;

	m->fds[0] = -1;
	be_pause_all(be);
	r = vhu_mem_add(&be->mem, &m->payload.mem_reg.region, fd);
	for (unsigned i = 0; !r && i < be->mem.n; i++)
		if (be->mem.r[i].gpa == m->payload.mem_reg.region.guest_phys_addr)
			report_if_shrinkable(be, &be->mem.r[i]);
	if (!r)
		remap_rings(be);
	be_resume_all(be);
	if (r)
		be_err(be, "ADD_MEM_REG refused: %s", strerror(-r));
	return r;
}

static int rem_mem_reg(struct vhu_backend *be, struct vhu_user_msg *m)
{
	const struct vhu_user_mem_region *g = &m->payload.mem_reg.region;
	int r;

	/* "If a file descriptor is passed, the back-end MUST close it without
	 * using it otherwise": the caller closes every fd left in m. */
	be_pause_all(be);
	r = vhu_mem_remove(&be->mem, g->guest_phys_addr, g->userspace_addr, g->memory_size);
	if (!r)
		remap_rings(be);
	be_resume_all(be);
	if (r)
		be_err(be, "REM_MEM_REG: no region gpa 0x%llx size 0x%llx", (unsigned long long)g->guest_phys_addr,
		       (unsigned long long)g->memory_size);
	return r;
}

static int vring_fd(struct vhu_backend *be, struct vhu_user_msg *m)
{
	uint64_t v = m->payload.u64;
	struct vhu_bqueue *q;
	int fd = -1, r = 0;

	if (v & ~(uint64_t)(VHU_USER_VRING_IDX_MASK | VHU_USER_VRING_NOFD_MASK)) {
		be_err(be, "vring fd message: reserved bits set in 0x%llx", (unsigned long long)v);
		return -EINVAL;
	}
	if (!(q = queue_of(be, v & VHU_USER_VRING_IDX_MASK)))
		return -EINVAL;
	if (!(v & VHU_USER_VRING_NOFD_MASK)) {
		fd = m->fds[0];
		m->fds[0] = -1;
		m->nfds = 0;
	}
	bq_pause(q);
	switch (m->hdr.request) {
	case VHU_USER_SET_VRING_KICK:
		if (q->kick_fd >= 0)
			close(q->kick_fd);
		/* The worker reads the kick fd only when poll says so, but a
		 * front-end may hand the same eventfd to two queues, and the
		 * other worker may empty it first: never block on it. (The flag
		 * is on the file the front-end shares; an eventfd it only writes
		 * is not affected.) */
		if (fd >= 0)
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		q->kick_fd = fd;
		q->kick_poll = fd < 0;
		/* "Ring states": the ring starts with its kick */
		r = bq_start(q);
		break;
	case VHU_USER_SET_VRING_CALL:
		if (q->call_fd >= 0)
			close(q->call_fd);
		q->call_fd = fd;
		break;
	default:
		if (q->err_fd >= 0)
			close(q->err_fd);
		q->err_fd = fd;
		break;
	}
	bq_resume(q);
	return r;
}

static bool split_size_ok(const struct vhu_backend *be, uint32_t num)
{
	return vhu_has_feature(be->features, VHU_F_RING_PACKED) || (num & (num - 1)) == 0;
}

static int vring_state(struct vhu_backend *be, struct vhu_user_msg *m, struct reply *rep)
{
	struct vhu_user_vring_state s = m->payload.state;
	struct vhu_bqueue *q = queue_of(be, s.index);
	int r = 0;

	if (!q)
		return -EINVAL;
	switch (m->hdr.request) {
	case VHU_USER_SET_VRING_NUM:
		if (s.num == 0 || s.num > be->cfg.max_queue_size || s.num > VHU_VRING_MAX_SIZE ||
		    !split_size_ok(be, s.num)) {
			be_err(be, "queue %u: size %u refused (max %u)", s.index, s.num, be->cfg.max_queue_size);
			return -EINVAL;
		}
		bq_pause(q);
		if (q->started)
			r = -EBUSY;
		else
			q->num = s.num;
		bq_resume(q);
		return r;
	case VHU_USER_SET_VRING_BASE: {
		struct vhu_vq_pos pos;
		bool packed = vhu_has_feature(be->features, VHU_F_RING_PACKED);
		if (vhu_vq_pos_decode(s.num, packed, packed ? (uint16_t)q->num : 0, &pos) < 0) {
			be_err(be, "queue %u: vring base 0x%x out of range", s.index, s.num);
			return -EINVAL;
		}
		bq_pause(q);
		if (q->started)
			r = -EBUSY;
		else
			q->base = pos;
		bq_resume(q);
		return r;
	}
	case VHU_USER_GET_VRING_BASE:
		/* stops the ring ("Ring states") */
		bq_pause(q);
		bq_stop(q);
		s.num = vhu_vq_pos_encode(&q->base, q->vq.packed);
		bq_resume(q);
		rep->has_body = true;
		rep->msg.hdr.size = sizeof(s);
		rep->msg.payload.state = s;
		return 0;
	case VHU_USER_SET_VRING_ENABLE:
		if (!be_pf_negotiated_base(be) || s.num > 1) {
			be_err(be, "SET_VRING_ENABLE %u refused", s.num);
			return -EINVAL;
		}
		bq_pause(q);
		q->enabled = s.num;
		if (s.num)
			q->pending_ev |= VHU_QUEUE_EV_KICK;
		bq_resume(q);
		return 0;
	case VHU_USER_SET_VRING_ENDIAN:
		/* vhu serves VIRTIO 1.x little-endian rings only */
		return s.num == 0 ? 0 : s.num == 1 ? -ENOTSUP : -EINVAL;
	case VHU_USER_VRING_KICK:
		bq_pause(q);
		r = bq_start(q);
		bq_resume(q);
		if (!r)
			bq_wake(q, true);
		return r;
	}
	return -ENOSYS;
}

static int set_vring_addr(struct vhu_backend *be, const struct vhu_user_vring_addr *a)
{
	struct vhu_bqueue *q = queue_of(be, a->index);
	int r = 0;

	if (!q)
		return -EINVAL;
	if (a->flags & (1u << VHU_USER_VRING_F_LOG)) {
		be_err(be, "queue %u: dirty logging asked for but not offered", a->index);
		return -ENOTSUP;
	}
	bq_pause(q);
	struct vhu_user_vring_addr old = q->addr;
	q->addr = *a;
	q->addr_set = true;
	if (q->started && (r = bq_refresh(q)) < 0) {
		/* a running ring keeps the addresses it had */
		be_err(be, "queue %u: new ring addresses outside guest memory; kept the old ones", a->index);
		q->addr = old;
		bq_refresh(q);
	}
	bq_resume(q);
	return r;
}

static int get_config(struct vhu_backend *be, const struct vhu_user_msg *m, struct reply *rep)
{
	const struct vhu_user_config *c = &m->payload.config;

	rep->has_body = true;
	rep->msg.payload.config = *c;
	/* "payload size MUST match the front-end's request"; an error is a
	 * reply with zero payload */
	rep->msg.hdr.size = 0;
	if (c->size > VHU_USER_MAX_CONFIG_SIZE || m->hdr.size != VHU_USER_CONFIG_HDR_SIZE + c->size ||
	    c->offset > be->cfg.config_size || c->size > be->cfg.config_size - c->offset ||
	    !be->cfg.ops->get_config) {
		be_err(be, "GET_CONFIG offset %u size %u refused", c->offset, c->size);
		return 0;
	}
	memset(rep->msg.payload.config.region, 0, c->size);
	if (be->cfg.ops->get_config(be, rep->msg.payload.config.region, c->offset, c->size) == 0)
		rep->msg.hdr.size = m->hdr.size;
	return 0;
}

static int set_config(struct vhu_backend *be, const struct vhu_user_msg *m)
{
	const struct vhu_user_config *c = &m->payload.config;

	if (c->size > VHU_USER_MAX_CONFIG_SIZE || m->hdr.size != VHU_USER_CONFIG_HDR_SIZE + c->size ||
	    c->offset > be->cfg.config_size || c->size > be->cfg.config_size - c->offset ||
	    (c->flags != VHU_USER_CONFIG_FLAG_WRITABLE && c->flags != VHU_USER_CONFIG_FLAG_MIGRATION))
		return -EINVAL;
	if (!be->cfg.ops->set_config)
		return -ENOTSUP;
	return be->cfg.ops->set_config(be, c->region, c->offset, c->size, c->flags);
}

static void reset_device(struct vhu_backend *be)
{
	for (unsigned i = 0; i < be->cfg.num_queues; i++) {
		bq_pause(&be->q[i]);
		bq_reset(&be->q[i]);
		bq_resume(&be->q[i]);
	}
	be->features = 0;
	atomic_store(&be->status, 0);
	if (be->cfg.ops->reset)
		be->cfg.ops->reset(be);
}

/* Requests that negotiation needs before SET_OWNER (QEMU sends these
 * first, in vhost_user_backend_init). */
static bool allowed_before_owner(uint32_t req)
{
	switch (req) {
	case VHU_USER_GET_FEATURES:
	case VHU_USER_GET_PROTOCOL_FEATURES:
	case VHU_USER_SET_PROTOCOL_FEATURES:
	case VHU_USER_GET_QUEUE_NUM:
	case VHU_USER_GET_MAX_MEM_SLOTS:
	case VHU_USER_SET_BACKEND_REQ_FD:
	case VHU_USER_SET_OWNER:
	case VHU_USER_GET_STATUS:
	case VHU_USER_RESET_OWNER:
		return true;
	}
	return false;
}

int be_handle(struct vhu_backend *be, struct vhu_user_msg *m, struct reply *rep)
{
	uint32_t req = m->hdr.request;

	if (!be->owner && !allowed_before_owner(req)) {
		be_err(be, "%s before SET_OWNER", vhu_user_request_info(req)->name);
		return -EPERM;
	}
	switch (req) {
	case VHU_USER_GET_FEATURES:
		reply_u64(rep, offered_features(be));
		return 0;
	case VHU_USER_SET_FEATURES:
		return set_features(be, m->payload.u64);
	case VHU_USER_GET_PROTOCOL_FEATURES:
		reply_u64(rep, be->cfg.protocol_features);
		return 0;
	case VHU_USER_SET_PROTOCOL_FEATURES:
		return set_protocol_features(be, m->payload.u64);
	case VHU_USER_SET_OWNER:
		if (be->owner)
			return -EBUSY;
		be->owner = true;
		return 0;
	case VHU_USER_RESET_OWNER:
		/* deprecated: "ignore ... or use it to disable all rings" */
		for (unsigned i = 0; i < be->cfg.num_queues; i++) {
			bq_pause(&be->q[i]);
			bq_stop(&be->q[i]);
			be->q[i].enabled = false;
			bq_resume(&be->q[i]);
		}
		return 0;
	case VHU_USER_SET_MEM_TABLE:
		return set_mem_table(be, m);
	case VHU_USER_GET_MAX_MEM_SLOTS:
		reply_u64(rep, VHU_USER_MAX_MEM_SLOTS);
		return 0;
	case VHU_USER_ADD_MEM_REG:
		return add_mem_reg(be, m);
	case VHU_USER_REM_MEM_REG:
		return rem_mem_reg(be, m);
	case VHU_USER_SET_VRING_NUM:
	case VHU_USER_SET_VRING_BASE:
	case VHU_USER_GET_VRING_BASE:
	case VHU_USER_SET_VRING_ENABLE:
	case VHU_USER_SET_VRING_ENDIAN:
	case VHU_USER_VRING_KICK:
		return vring_state(be, m, rep);
	case VHU_USER_SET_VRING_ADDR:
		return set_vring_addr(be, &m->payload.addr);
	case VHU_USER_SET_VRING_KICK:
	case VHU_USER_SET_VRING_CALL:
	case VHU_USER_SET_VRING_ERR:
		return vring_fd(be, m);
	case VHU_USER_GET_QUEUE_NUM:
		reply_u64(rep, be->cfg.num_queues);
		return 0;
	case VHU_USER_SET_BACKEND_REQ_FD:
		pthread_mutex_lock(&be->backend_lock);
		if (be->backend_fd >= 0)
			close(be->backend_fd);
		be->backend_fd = m->fds[0];
		m->fds[0] = -1;
		pthread_mutex_unlock(&be->backend_lock);
		return 0;
	case VHU_USER_GET_CONFIG:
		return get_config(be, m, rep);
	case VHU_USER_SET_CONFIG:
		return set_config(be, m);
	case VHU_USER_SET_STATUS:
		if (m->payload.u64 > 0xff)
			return -EINVAL;
		/* keep our own NEEDS_RESET until the driver resets (status 0) */
		atomic_store(&be->status, (unsigned)m->payload.u64 |
			     (m->payload.u64 ? atomic_load(&be->status) & VHU_STATUS_DEVICE_NEEDS_RESET : 0));
		return 0;
	case VHU_USER_GET_STATUS:
		reply_u64(rep, atomic_load(&be->status));
		return 0;
	case VHU_USER_RESET_DEVICE:
		reset_device(be);
		return 0;
	default:
		/* not offered: dirty log, IOTLB, inflight, postcopy, host
		 * notifier, crypto, GPU, RARP, MTU */
		be_warn(be, "%s is not supported", vhu_user_request_info(req)->name);
		if (vhu_user_request_info(req)->replies)
			reply_u64(rep, 1);
		return -ENOTSUP;
	}
}

void be_session_reset(struct vhu_backend *be)
{
	reset_device(be);
	be_pause_all(be);
	vhu_mem_clear(&be->mem);
	be_resume_all(be);
	pthread_mutex_lock(&be->backend_lock);
	if (be->backend_fd >= 0)
		close(be->backend_fd);
	be->backend_fd = -1;
	pthread_mutex_unlock(&be->backend_lock);
	be->owner = false;
	be->protocol_features = 0;
	be->close_conn = false;
}
