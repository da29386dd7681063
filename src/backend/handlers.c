/* SPDX-License-Identifier: MIT */
/*
 * Back-end message handlers and the table that dispatches to them: one row
 * per front-end request. vhu_user_check_shape() has already checked size,
 * fds and protocol features; the row says whether the request may come
 * before SET_OWNER and what must be paused around it (the queue the message
 * names, or every queue, drained); the handler checks the meaning (indices,
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

#define PROTOCOL_FEATURES_BIT (1ull << VHU_USER_F_PROTOCOL_FEATURES)
#define LOG_ALL_BIT (1ull << VHU_USER_F_LOG_ALL)

static bool log_offered(const struct vhu_backend *be)
{
	return be->cfg.protocol_features >> VHU_USER_PROTOCOL_F_LOG_SHMFD & 1;
}

static uint64_t offered_features(const struct vhu_backend *be)
{
	uint64_t f = be->dev->cfg.features;
	if (be->cfg.protocol_features)
		f |= PROTOCOL_FEATURES_BIT;
	/* the dirty log reaches a back-end only as a shared fd */
	if (log_offered(be))
		f |= LOG_ALL_BIT;
	return f;
}

/* The device gets the VIRTIO features; VHOST_USER_F_PROTOCOL_FEATURES and
 * VHOST_F_LOG_ALL are this transport's. LOG_ALL comes and goes while the
 * rings run (a migration starting, ending or failing); every queue is
 * paused and drained around it. */
static int set_features(struct vhu_backend *be, uint64_t f)
{
	uint64_t extra = f & ~offered_features(be);

	if (extra) {
		be_err(be, "SET_FEATURES: 0x%llx was not offered", (unsigned long long)extra);
		return -EINVAL;
	}
	bool iommu = f >> VHU_F_ACCESS_PLATFORM & 1;
	/* a miss is asked on the back-end channel, and QEMU wants REPLY_ACK
	 * to know an update arrived ("IOMMU support") */
	if (iommu && (!be_pf(be, VHU_USER_PROTOCOL_F_BACKEND_REQ) || !be_pf(be, VHU_USER_PROTOCOL_F_REPLY_ACK))) {
		be_err(be, "SET_FEATURES: ACCESS_PLATFORM needs BACKEND_REQ and REPLY_ACK negotiated first");
		return -EINVAL;
	}
	/* the rings translate as they started: through the IOTLB or not */
	for (unsigned i = 0; iommu != be->iommu && i < be->nq; i++)
		if (dq_started(&be->dev->q[i]) || be->vr[i].ring_wait) {
			be_err(be, "SET_FEATURES: ACCESS_PLATFORM %s while queue %u runs", iommu ? "set" : "cleared", i);
			return -EBUSY;
		}
	int r = dev_set_features(be->dev, f & ~(PROTOCOL_FEATURES_BIT | LOG_ALL_BIT));
	if (r == -EBUSY)
		return r;	/* nothing changed */
	be->features = f;
	if (iommu != be->iommu) {
		be->iommu = iommu;
		be_iotlb_reset(be);
		be_info(be, "IOMMU %s: ring and buffer addresses are %s", iommu ? "on" : "off",
			iommu ? "I/O virtual addresses, through the IOTLB" : "the front-end's own");
	}
	bool log_all = f & LOG_ALL_BIT;
	if (log_all != be->log_all) {
		be->log_all = log_all;
		be_info(be, "dirty logging of buffer writes %s%s", log_all ? "on" : "off",
			log_all && !be->log.map ? " (from when the log arrives)" : "");
		be_log_all_rings(be);
	}
	return r;
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
	for (unsigned i = 0; i < be->nq; i++) {
		int r = be_ring_remap(be, &be->dev->q[i]);
		if (r < 0) {
			dq_remap(&be->dev->q[i], NULL);
			dq_fail(&be->dev->q[i], "its ring is no longer in guest memory", r);
		}
	}
}

/* ---- the handlers, in the order of the spec's "Front-end message types" --
 * Each gets the queue its row names (paused) or NULL. */

/* Every handler has the row's signature; each uses what it needs of it. */
#define HANDLER(name)                                                                              \
	static int name(struct vhu_backend *be __attribute__((unused)),                             \
			struct vhu_queue *q __attribute__((unused)),                               \
			struct vhu_user_msg *m __attribute__((unused)), struct reply *rep __attribute__((unused)))

HANDLER(get_features)
{
	reply_u64(rep, offered_features(be));
	return 0;
}

HANDLER(set_features_msg)
{
	return set_features(be, m->payload.u64);
}

HANDLER(iotlb_msg)
{
	(void)rep;
	return be_iotlb_msg(be, &m->payload.iotlb);
}

HANDLER(set_owner)
{
	if (be->owner)
		return -EBUSY;
	be->owner = true;
	return 0;
}

HANDLER(reset_owner)
{
	/* deprecated: "ignore ... or use it to disable all rings" */
	for (unsigned i = 0; i < be->nq; i++) {
		dq_stop(&be->dev->q[i], &be->vr[i].base);
		dq_set_enabled(&be->dev->q[i], false);
	}
	return 0;
}

/* A new table from SET_MEM_TABLE swapped in with every queue paused and
 * drained, so no worker ever sees a half-built table and no request in
 * flight outlives the mapping it uses. */
HANDLER(set_mem_table)
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
	/* postcopy: the pages not yet arrived must fault, not read as zeroes */
	if (be->postcopy.listening && (r = be_postcopy_register(be, &fresh)) < 0) {
		vhu_mem_clear(&fresh);
		return r;
	}
	vhu_mem_move(&old, &be->mem);
	vhu_mem_move(&be->mem, &fresh);
	remap_rings(be);
	vhu_mem_clear(&old);
	if (be->postcopy.listening)
		be_postcopy_reply_table(be, m, rep);
	be_dbg(be, "memory table: %u regions", t->nregions);
	return 0;
}

HANDLER(get_max_mem_slots)
{
	reply_u64(rep, VHU_USER_MAX_MEM_SLOTS);
	return 0;
}

HANDLER(add_mem_reg)
{
	int fd = m->fds[0], r;

	m->fds[0] = -1;
	const struct vhu_user_mem_region *g = &m->payload.mem_reg.region;
	r = vhu_mem_add(&be->mem, g, fd);
	for (unsigned i = 0; !r && i < be->mem.n; i++)
		if (be->mem.r[i].gpa == g->guest_phys_addr) {
			report_if_shrinkable(be, &be->mem.r[i]);
			struct vhu_mem one = { &be->mem.r[i], 1 };
			if (be->postcopy.listening && (r = be_postcopy_register(be, &one)) < 0)
				vhu_mem_remove(&be->mem, g->guest_phys_addr, g->userspace_addr, g->memory_size);
		}
	if (!r)
		remap_rings(be);
	if (r)
		be_err(be, "ADD_MEM_REG refused: %s", strerror(-r));
	else if (be->postcopy.listening)
		be_postcopy_reply_table(be, m, rep);
	return r;
}

HANDLER(rem_mem_reg)
{
	const struct vhu_user_mem_region *g = &m->payload.mem_reg.region;
	/* "If a file descriptor is passed, the back-end MUST close it without
	 * using it otherwise": the caller closes every fd left in m. */
	int r = vhu_mem_remove(&be->mem, g->guest_phys_addr, g->userspace_addr, g->memory_size);
	if (!r)
		remap_rings(be);
	else
		be_err(be, "REM_MEM_REG: no region gpa 0x%llx size 0x%llx", (unsigned long long)g->guest_phys_addr,
		       (unsigned long long)g->memory_size);
	return r;
}

static bool split_size_ok(const struct vhu_backend *be, uint32_t num)
{
	return vhu_has_feature(be->features, VHU_F_RING_PACKED) || (num & (num - 1)) == 0;
}

/* The ring's vhost-user state (its queue is paused). */
#define VR(q) (&be->vr[vhu_queue_index(q)])

HANDLER(set_vring_num)
{
	uint32_t num = m->payload.state.num, max = be->dev->cfg.max_queue_size;
	if (num == 0 || num > max || num > VHU_VRING_MAX_SIZE || !split_size_ok(be, num)) {
		be_err(be, "queue %u: size %u refused (max %u)", vhu_queue_index(q), num, max);
		return -EINVAL;
	}
	if (dq_started(q))
		return -EBUSY;
	VR(q)->num = num;
	return 0;
}

HANDLER(set_vring_addr)
{
	const struct vhu_user_vring_addr *a = &m->payload.addr;
	int r = 0;

	if (a->flags & ~(1u << VHU_USER_VRING_F_LOG)) {
		be_err(be, "queue %u: unknown vring flags 0x%x", a->index, a->flags);
		return -EINVAL;
	}
	if ((a->flags & (1u << VHU_USER_VRING_F_LOG)) && !be_pf(be, VHU_USER_PROTOCOL_F_LOG_SHMFD)) {
		/* without LOG_SHMFD no log can ever arrive */
		be_err(be, "queue %u: dirty logging asked for without LOG_SHMFD", a->index);
		return -ENOTSUP;
	}
	struct be_vring asked = *VR(q);
	asked.addr = *a;
	if ((r = be_ring_log_check(be, &asked, a->index)) < 0)
		return r;
	struct vhu_user_vring_addr old = VR(q)->addr;
	VR(q)->addr = *a;
	VR(q)->addr_set = true;
	if ((r = be_ring_remap(be, q)) < 0) {
		/* a running ring keeps the addresses it had */
		be_err(be, "queue %u: new ring addresses outside guest memory; kept the old ones", a->index);
		VR(q)->addr = old;
		if (be_ring_remap(be, q) < 0) {
			dq_remap(q, NULL);
			dq_fail(q, "its ring cannot be mapped again", -EFAULT);
		}
	}
	return r;
}

HANDLER(set_vring_base)
{
	struct vhu_vq_pos pos;
	bool packed = vhu_has_feature(be->features, VHU_F_RING_PACKED);
	if (vhu_vq_pos_decode(m->payload.state.num, packed, packed ? (uint16_t)VR(q)->num : 0, &pos) < 0) {
		be_err(be, "queue %u: vring base 0x%x out of range", vhu_queue_index(q), m->payload.state.num);
		return -EINVAL;
	}
	if (dq_started(q))
		return -EBUSY;
	VR(q)->base = pos;
	return 0;
}

HANDLER(get_vring_base)
{
	/* stops the ring ("Ring states") */
	struct vhu_user_vring_state s = m->payload.state;
	dq_stop(q, &VR(q)->base);
	be_doorbell_ring_stopped(be, q);
	VR(q)->ring_wait = false;	/* a ring waiting for the IOTLB: no update starts it now */
	s.num = vhu_vq_pos_encode(&VR(q)->base, vhu_has_feature(be->features, VHU_F_RING_PACKED));
	rep->has_body = true;
	rep->msg.hdr.size = sizeof(s);
	rep->msg.payload.state = s;
	return 0;
}

/* SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR: an eventfd, or none (NOFD). */
HANDLER(set_vring_fd)
{
	uint64_t v = m->payload.u64;
	int fd = -1;

	if (v & ~(uint64_t)(VHU_USER_VRING_IDX_MASK | VHU_USER_VRING_NOFD_MASK)) {
		be_err(be, "vring fd message: reserved bits set in 0x%llx", (unsigned long long)v);
		return -EINVAL;
	}
	if (!(v & VHU_USER_VRING_NOFD_MASK)) {
		fd = m->fds[0];
		m->fds[0] = -1;
		m->nfds = 0;
	}
	switch (m->hdr.request) {
	case VHU_USER_SET_VRING_KICK:
		/* no fd: the ring is polled */
		dq_set_kick_fd(q, fd);
		/* "Ring states": the ring starts with its kick */
		return be_ring_start(be, q);
	case VHU_USER_SET_VRING_CALL:
		dq_set_call_fd(q, fd);
		return 0;
	default:
		dq_set_err_fd(q, fd);
		return 0;
	}
}

HANDLER(get_protocol_features)
{
	reply_u64(rep, be->cfg.protocol_features);
	return 0;
}

HANDLER(set_protocol_features_msg)
{
	return set_protocol_features(be, m->payload.u64);
}

HANDLER(get_queue_num)
{
	reply_u64(rep, be->nq);
	return 0;
}

HANDLER(set_vring_enable)
{
	uint32_t on = m->payload.state.num;
	if (!be_pf_negotiated_base(be) || on > 1) {
		be_err(be, "SET_VRING_ENABLE %u refused", on);
		return -EINVAL;
	}
	dq_set_enabled(q, on);
	return 0;
}

HANDLER(set_backend_req_fd)
{
	pthread_mutex_lock(&be->backend_lock);
	if (be->backend_fd >= 0)
		close(be->backend_fd);
	be->backend_fd = m->fds[0];
	m->fds[0] = -1;
	/* answers owed on the old channel never come */
	unsigned lost = be->db_pending;
	be->db_pending = 0;
	pthread_mutex_unlock(&be->backend_lock);
	for (unsigned i = 0; lost && i < be->nq; i++)
		dq_doorbell_settled(&be->dev->q[i], false);
	return 0;
}

HANDLER(set_vring_endian)
{
	/* vhu serves VIRTIO 1.x little-endian rings only */
	uint32_t big = m->payload.state.num;
	return big == 0 ? 0 : big == 1 ? -ENOTSUP : -EINVAL;
}

HANDLER(get_config)
{
	const struct vhu_user_config *c = &m->payload.config;

	rep->has_body = true;
	rep->msg.payload.config = *c;
	/* "payload size MUST match the front-end's request"; an error is a
	 * reply with zero payload */
	rep->msg.hdr.size = 0;
	if (c->size > VHU_USER_MAX_CONFIG_SIZE || m->hdr.size != VHU_USER_CONFIG_HDR_SIZE + c->size ||
	    dev_get_config(be->dev, rep->msg.payload.config.region, c->offset, c->size) < 0) {
		be_err(be, "GET_CONFIG offset %u size %u refused", c->offset, c->size);
		return 0;
	}
	rep->msg.hdr.size = m->hdr.size;
	return 0;
}

HANDLER(set_config)
{
	const struct vhu_user_config *c = &m->payload.config;

	_Static_assert(VHU_USER_CONFIG_FLAG_WRITABLE == VHU_CONFIG_WRITE_DRIVER &&
		       VHU_USER_CONFIG_FLAG_MIGRATION == VHU_CONFIG_WRITE_MIGRATION, "set_config flags");
	if (c->size > VHU_USER_MAX_CONFIG_SIZE || m->hdr.size != VHU_USER_CONFIG_HDR_SIZE + c->size)
		return -EINVAL;
	return dev_set_config(be->dev, c->region, c->offset, c->size, c->flags);
}

HANDLER(vring_kick)
{
	int r = be_ring_start(be, q);
	if (!r)
		dq_wake(q, true);
	return r;
}

/* Every queue paused around it: the RESET_DEVICE and RESET_OWNER rows, be_session_reset. */
static void reset_device(struct vhu_backend *be)
{
	for (unsigned i = 0; i < be->nq; i++)
		be_doorbell_ring_stopped(be, &be->dev->q[i]);
	dev_reset(be->dev);
	for (unsigned i = 0; i < be->nq; i++) {
		struct be_vring *vr = &be->vr[i];
		vr->num = 0;
		vr->addr_set = false;
		memset(&vr->base, 0, sizeof(vr->base));
		atomic_store(&vr->inband_call, false);
		atomic_store(&vr->inband_err, false);
	}
	/* the region lives as long as the device: QEMU frees it on a reset
	 * and makes a new one for the next start */
	be_inflight_unmap(be);
	be_log_unmap(be);
	be_log_close_fd(be);
	be->log_all = false;
	be_postcopy_end(be);
	be->features = 0;
	be_iotlb_reset(be);	/* no ring waits on a mapping, none is kept */
	be->iommu = false;
}

HANDLER(set_log_base)
{
	return be_set_log_base(be, m);
}

HANDLER(set_log_fd)
{
	return be_set_log_fd(be, m);
}

HANDLER(postcopy_advise)
{
	return be_postcopy_advise(be, rep);
}

HANDLER(postcopy_listen)
{
	return be_postcopy_listen(be);
}

HANDLER(postcopy_end)
{
	be_postcopy_end(be);
	be_info(be, "postcopy ended");
	return 0;
}

HANDLER(get_inflight_fd)
{
	return be_get_inflight_fd(be, m, rep);
}

HANDLER(set_inflight_fd)
{
	return be_set_inflight_fd(be, m);
}

HANDLER(reset_device_msg)
{
	reset_device(be);
	return 0;
}

HANDLER(set_status)
{
	if (m->payload.u64 > 0xff)
		return -EINVAL;
	dev_set_status(be->dev, (uint8_t)m->payload.u64);
	return 0;
}

HANDLER(get_status)
{
	reply_u64(rep, vhu_device_status(be->dev));
	return 0;
}

#undef HANDLER

/* ---- the table ------------------------------------------------------------ */

/* Where a request names its queue (it is paused around the handler). */
enum queue_arg { NO_QUEUE, QUEUE_IN_STATE, QUEUE_IN_FILE, QUEUE_IN_ADDR };

struct be_request {
	int (*handle)(struct vhu_backend *be, struct vhu_queue *q, struct vhu_user_msg *m, struct reply *rep);
	bool before_owner;      /* negotiation sends it before SET_OWNER (QEMU's vhost_user_backend_init) */
	bool pause_all;         /* every queue paused and drained around it: memory or device state changes */
	bool pause_undrained;   /* every queue paused, requests in flight left to run (the handler drains if it must) */
	bool memory;            /* the memory table changes: the application's memory hook is called around it */
	enum queue_arg queue;
	bool device;            /* device-specific: the device's request op serves it */
	const char *not_offered;    /* neither: why vhu does not serve it (its feature is never offered) */
};

#define LIB(h, ...) { .handle = h, __VA_ARGS__ }
#define DEVICE { .device = true }
#define NOT(why) { .not_offered = why }

static const struct be_request requests[VHU_USER_REQUEST_MAX] = {
	[VHU_USER_GET_FEATURES] = LIB(get_features, .before_owner = true),
	[VHU_USER_SET_FEATURES] = LIB(set_features_msg, .pause_all = true),
	[VHU_USER_SET_OWNER] = LIB(set_owner, .before_owner = true),
	[VHU_USER_RESET_OWNER] = LIB(reset_owner, .before_owner = true, .pause_all = true),
	[VHU_USER_SET_MEM_TABLE] = LIB(set_mem_table, .pause_all = true, .memory = true),
	[VHU_USER_SET_LOG_BASE] = LIB(set_log_base, .pause_all = true),
	[VHU_USER_SET_LOG_FD] = LIB(set_log_fd),
	[VHU_USER_SET_VRING_NUM] = LIB(set_vring_num, .queue = QUEUE_IN_STATE),
	[VHU_USER_SET_VRING_ADDR] = LIB(set_vring_addr, .queue = QUEUE_IN_ADDR),
	[VHU_USER_SET_VRING_BASE] = LIB(set_vring_base, .queue = QUEUE_IN_STATE),
	[VHU_USER_GET_VRING_BASE] = LIB(get_vring_base, .queue = QUEUE_IN_STATE),
	[VHU_USER_SET_VRING_KICK] = LIB(set_vring_fd, .queue = QUEUE_IN_FILE),
	[VHU_USER_SET_VRING_CALL] = LIB(set_vring_fd, .queue = QUEUE_IN_FILE),
	[VHU_USER_SET_VRING_ERR] = LIB(set_vring_fd, .queue = QUEUE_IN_FILE),
	[VHU_USER_GET_PROTOCOL_FEATURES] = LIB(get_protocol_features, .before_owner = true),
	[VHU_USER_SET_PROTOCOL_FEATURES] = LIB(set_protocol_features_msg, .before_owner = true),
	[VHU_USER_GET_QUEUE_NUM] = LIB(get_queue_num, .before_owner = true),
	[VHU_USER_SET_VRING_ENABLE] = LIB(set_vring_enable, .queue = QUEUE_IN_STATE),
	[VHU_USER_SEND_RARP] = DEVICE,
	[VHU_USER_NET_SET_MTU] = DEVICE,
	[VHU_USER_SET_BACKEND_REQ_FD] = LIB(set_backend_req_fd, .before_owner = true),
	[VHU_USER_IOTLB_MSG] = LIB(iotlb_msg, .pause_undrained = true),
	[VHU_USER_SET_VRING_ENDIAN] = LIB(set_vring_endian, .queue = QUEUE_IN_STATE),
	[VHU_USER_GET_CONFIG] = LIB(get_config),
	[VHU_USER_SET_CONFIG] = LIB(set_config),
	[VHU_USER_CREATE_CRYPTO_SESSION] = DEVICE,
	[VHU_USER_CLOSE_CRYPTO_SESSION] = DEVICE,
	[VHU_USER_POSTCOPY_ADVISE] = LIB(postcopy_advise),
	[VHU_USER_POSTCOPY_LISTEN] = LIB(postcopy_listen),
	[VHU_USER_POSTCOPY_END] = LIB(postcopy_end),
	[VHU_USER_GET_INFLIGHT_FD] = LIB(get_inflight_fd, .pause_all = true),
	[VHU_USER_SET_INFLIGHT_FD] = LIB(set_inflight_fd, .pause_all = true),
	[VHU_USER_GPU_SET_SOCKET] = DEVICE,
	[VHU_USER_RESET_DEVICE] = LIB(reset_device_msg, .pause_all = true),
	[VHU_USER_VRING_KICK] = LIB(vring_kick, .queue = QUEUE_IN_STATE),
	[VHU_USER_GET_MAX_MEM_SLOTS] = LIB(get_max_mem_slots, .before_owner = true),
	[VHU_USER_ADD_MEM_REG] = LIB(add_mem_reg, .pause_all = true, .memory = true),
	[VHU_USER_REM_MEM_REG] = LIB(rem_mem_reg, .pause_all = true, .memory = true),
	[VHU_USER_SET_STATUS] = LIB(set_status),
	[VHU_USER_GET_STATUS] = LIB(get_status, .before_owner = true),
};

#undef LIB
#undef DEVICE
#undef NOT

enum vhu_backend_serves vhu_backend_serves(uint32_t request)
{
	const struct be_request *row = request < VHU_USER_REQUEST_MAX ? &requests[request] : NULL;
	if (!row || (!row->handle && !row->device && !row->not_offered))
		return VHU_SERVES_UNKNOWN;
	return row->handle ? VHU_SERVES_LIBRARY : row->device ? VHU_SERVES_DEVICE : VHU_SERVES_NOT_OFFERED;
}

static struct vhu_queue *queue_of(struct vhu_backend *be, const struct vhu_user_msg *m, enum queue_arg where)
{
	uint32_t index = where == QUEUE_IN_STATE ? m->payload.state.index
		       : where == QUEUE_IN_ADDR ? m->payload.addr.index
		       : (uint32_t)(m->payload.u64 & VHU_USER_VRING_IDX_MASK);
	if (index >= be->nq) {
		be_err(be, "vring index %u out of range (%u queues)", index, be->nq);
		return NULL;
	}
	return &be->dev->q[index];
}

/* A device-specific request, for the device's request op. */
static int device_request(struct vhu_backend *be, struct vhu_user_msg *m, struct reply *rep)
{
	const struct vhu_user_request_info *ri = vhu_user_request_info(m->hdr.request);
	if (!be->cfg.request) {
		be_warn(be, "%s: the device does not serve it", ri->name);
		if (ri->replies)
			reply_u64(rep, 1);
		return -ENOTSUP;
	}
	rep->msg.hdr.size = 0;
	int r = be->cfg.request(be, m, &rep->msg);
	if (rep->msg.hdr.size > sizeof(rep->msg.payload)) {
		be_err(be, "%s: the device's reply of %u bytes is too large", ri->name, rep->msg.hdr.size);
		rep->msg.hdr.size = 0;
		r = -EOVERFLOW;
	}
	rep->has_body = rep->msg.hdr.size > 0;
	return r;
}

int be_handle(struct vhu_backend *be, struct vhu_user_msg *m, struct reply *rep)
{
	uint32_t req = m->hdr.request;
	const struct be_request *row = &requests[req];	/* vhu_user_check_shape knows req */
	const struct vhu_user_request_info *ri = vhu_user_request_info(req);

	if (!be->owner && !row->before_owner) {
		be_err(be, "%s before SET_OWNER", ri->name);
		return -EPERM;
	}
	if (row->device)
		return device_request(be, m, rep);
	if (!row->handle) {
		be_warn(be, "%s is not supported: %s", ri->name, row->not_offered ? row->not_offered : "unknown");
		if (ri->replies)
			reply_u64(rep, 1);
		return -ENOTSUP;
	}
	struct vhu_queue *q = NULL;
	if (row->queue != NO_QUEUE && !(q = queue_of(be, m, row->queue)))
		return -EINVAL;
	if (row->pause_all)
		dev_pause_all(be->dev);
	else if (row->pause_undrained)
		dev_pause_all_undrained(be->dev);
	else if (q)
		dq_pause(q);
	if (row->memory && be->cfg.memory)
		be->cfg.memory(be, true);
	int r = row->handle(be, q, m, rep);
	if (row->memory && be->cfg.memory)
		be->cfg.memory(be, false);
	if (row->pause_all || row->pause_undrained)
		dev_resume_all(be->dev);
	else if (q)
		dq_resume(q);
	return r;
}

void be_session_reset(struct vhu_backend *be)
{
	/* A thread asleep on a page the front-end never placed (postcopy)
	 * holds its queue: unregistering wakes it (the page then reads as
	 * the file has it), so the pause below can take the queue. */
	be_postcopy_end(be);
	/* as the RESET_DEVICE row: every queue paused and drained */
	dev_pause_all(be->dev);
	reset_device(be);
	be_doorbell_reset(be);
	if (be->cfg.memory)
		be->cfg.memory(be, true);
	vhu_mem_clear(&be->mem);
	if (be->cfg.memory)
		be->cfg.memory(be, false);
	dev_resume_all(be->dev);
	pthread_mutex_lock(&be->backend_lock);
	if (be->backend_fd >= 0)
		close(be->backend_fd);
	be->backend_fd = -1;
	pthread_mutex_unlock(&be->backend_lock);
	be->owner = false;
	be->protocol_features = 0;
	be->close_conn = false;
}
