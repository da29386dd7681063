/* SPDX-License-Identifier: MIT */
/*
 * A managed device's commands (vhu/admin_member.h, docs/admin-transport.md
 * sections 4.3 to 6) as transport calls of the device core, made as the
 * vhost-user back-end makes them: a queue paused around a change of it.
 * Every failure is decided before anything changes, so a failed command
 * has no effect.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/status_rules.h"
#include "../device/device_internal.h"
#include "mmu.h"
#include "vhu/admin_member.h"
#include "vhu/virtio.h"

/* vhost-user's own bits, and what this transport cannot give yet */
#define NOT_OFFERED (VHU_BIT(30) | VHU_BIT(26) | VHU_BIT(VHU_F_ACCESS_PLATFORM) | VHU_BIT(VHU_F_ADMIN_VQ))

struct member_queue {
	uint16_t size;
	uint64_t desc, driver, device;
	bool set, enabled;
	atomic_bool interrupts;
};

struct vhu_admin_member {
	struct vhu_admin_member_config cfg;
	struct vhu_device *dev;
	uint16_t nq;
	struct member_queue *q;
	int *kick;                      /* per queue, for the member's life: VQ_NOTIFY writes it */
	uint64_t offered, driver_features;
	uint8_t status;                 /* the driver's bits */
	atomic_uint generation;
	atomic_bool config_interrupts;
	struct admin_mmu mmu;
	struct admin_mmu_queue *qx;     /* per queue: its address space */
	bool mmu_fail;                  /* DEVICE_MMU_FAIL: a ring the MMU no longer maps */
};

struct verdict {
	uint16_t status, qualifier;
};
#define OK ((struct verdict){ VHU_ADMIN_STATUS_OK, VHU_ADMIN_Q_OK })
#define BAD_FIELD ((struct verdict){ VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_FIELD })
#define BUSY ((struct verdict){ VHU_ADMIN_STATUS_EBUSY, VHU_ADMIN_Q_INVALID_FIELD })
#define NO_ROOM ((struct verdict){ VHU_ADMIN_STATUS_ENOSPC, VHU_ADMIN_Q_NORESOURCE })
#define NOTHING ((struct verdict){ VHU_ADMIN_STATUS_ENXIO, VHU_ADMIN_Q_INVALID_FIELD })

static bool zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- the device core's transport calls (serving threads) -------------------------- */

static void tr_call(void *o, struct vhu_queue *q)
{
	struct vhu_admin_member *m = o;
	uint16_t i = vhu_queue_index(q);
	if (atomic_load(&m->q[i].interrupts) && m->cfg.event)
		m->cfg.event(m->cfg.event_opaque, m->cfg.id, VHU_ADMIN_EVENT_USED, i);
}

static void tr_error(void *o, struct vhu_queue *q)
{
	struct vhu_admin_member *m = o;
	if (m->cfg.event)
		m->cfg.event(m->cfg.event_opaque, m->cfg.id, VHU_ADMIN_EVENT_NEEDS_RESET, vhu_queue_index(q));
}

static int tr_config_changed(void *o)
{
	struct vhu_admin_member *m = o;
	atomic_fetch_add(&m->generation, 1);
	if (atomic_load(&m->config_interrupts) && m->cfg.event)
		m->cfg.event(m->cfg.event_opaque, m->cfg.id, VHU_ADMIN_EVENT_CONFIG, 0);
	return 0;
}

/* ---- rings --------------------------------------------------------------------------- */

/* The ring in the management device's memory, or false if a part is not
 * in it. With the MMU on, its parts and every buffer are I/O virtual
 * addresses of the queue's address space (section 7): the device reads the
 * driver's parts and writes its own. */
static bool ring_config(struct vhu_admin_member *m, uint16_t i, struct vhu_vq_config *c)
{
	const struct member_queue *mq = &m->q[i];
	struct dq_ring_gpa g = { mq->size, mq->desc, mq->driver, mq->device };
	uint64_t features = vhu_device_features(m->dev);
	if (!m->mmu.on)
		return dq_ring_map(m->cfg.mem, &g, i, features, c);
	bool ok = dq_ring_map_by(admin_mmu_part, &m->qx[i], &g, i, features, c);
	c->translate = admin_mmu_translate;
	c->translate_opaque = &m->qx[i];
	return ok;
}

static bool any_enabled(const struct vhu_admin_member *m)
{
	for (uint16_t i = 0; i < m->nq; i++)
		if (m->q[i].enabled)
			return true;
	return false;
}

static struct verdict queue_start(struct vhu_admin_member *m, uint16_t i)
{
	struct member_queue *mq = &m->q[i];
	struct vhu_queue *q = &m->dev->q[i];
	struct vhu_vq_config c;
	bool packed = vhu_has_feature(m->driver_features, VHU_F_RING_PACKED);

	if (!(m->status & VHU_STATUS_FEATURES_OK) || (vhu_device_status(m->dev) & VHU_STATUS_DEVICE_NEEDS_RESET))
		return BUSY;
	if (!mq->set || (!packed && (mq->size & (mq->size - 1))) || !ring_config(m, i, &c))
		return BAD_FIELD;
	/* used-buffer notifications come to tr_call */
	int rc = dq_start_local(q, &c, m->kick[i]);
	if (rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM)
		return (struct verdict){ VHU_ADMIN_STATUS_ENOMEM, VHU_ADMIN_Q_NORESOURCE };
	if (rc < 0)
		return BAD_FIELD;   /* the engine refused the ring (its checks are §2.7/§2.8's) */
	mq->enabled = true;
	return OK;
}

static void queue_stop(struct vhu_admin_member *m, uint16_t i)
{
	dq_stop_local(&m->dev->q[i], m->kick[i]);
	m->q[i].enabled = false;
}

void vhu_admin_member_reset(struct vhu_admin_member *m)
{
	for (uint16_t i = 0; i < m->nq; i++) {
		if (m->q[i].enabled)
			queue_stop(m, i);
		m->q[i] = (struct member_queue){ 0 };
	}
	dev_pause_all(m->dev);
	dev_reset(m->dev);
	dev_resume_all(m->dev);
	admin_mmu_reset(&m->mmu);
	for (uint16_t i = 0; i < m->nq; i++)
		m->qx[i].asid = 0;
	m->mmu_fail = false;
	m->driver_features = 0;
	m->status = 0;
	atomic_store(&m->config_interrupts, false);
}

void vhu_admin_member_pause(struct vhu_admin_member *m)
{
	/* each ring let go of while its memory is still there (what the
	 * device returned flushed, its position kept): the memory may be
	 * unmapped before vhu_admin_member_resume is called */
	for (uint16_t i = 0; i < m->nq; i++) {
		if (m->q[i].enabled) {
			dq_pause(&m->dev->q[i]);
			dq_remap(&m->dev->q[i], NULL);
		}
	}
}

int vhu_admin_member_resume(struct vhu_admin_member *m)
{
	int rc = 0;
	for (uint16_t i = 0; i < m->nq; i++) {
		if (!m->q[i].enabled)
			continue;
		struct vhu_queue *q = &m->dev->q[i];
		struct vhu_vq_config c;
		if (!ring_config(m, i, &c)) {
			/* unreachable through the MMU: no ring to report it in */
			m->mmu_fail |= m->mmu.on;
			dq_fail(q, m->mmu.on ? "its ring is no longer mapped by its MMU"
					     : "its ring is no longer in the management device's memory", -EFAULT);
			rc = -EFAULT;
		} else if (dq_remap(q, &c) < 0) {
			dq_fail(q, "its ring could not be mapped again", -EFAULT);
			rc = -EFAULT;
		}
		dq_resume(q);
	}
	return rc;
}

/* ---- commands ------------------------------------------------------------------------ */

struct answer {
	struct verdict v;
	uint8_t result[256];
	uint32_t len;
};

static struct verdict set_status(struct vhu_admin_member *m, const uint8_t *d)
{
	uint8_t v = d[0];
	if (!zero(d + 1, 7) || (v & VHU_STATUS_DEVICE_MMU_FAIL) || (v && vhu_status_write_refused(m->status, v)))
		return BAD_FIELD;
	if (!v) {
		vhu_admin_member_reset(m);   /* complete when the reset is (section 4.3) */
		return OK;
	}
	uint8_t add = v & (uint8_t)~m->status;
	/* FEATURES_OK without VERSION_1, or features the device refuses: left
	 * clear (the driver reads it back, §3.1.1 step 6), and a DRIVER_OK
	 * in the same write with it */
	if ((add & VHU_STATUS_FEATURES_OK) && (!vhu_has_feature(m->driver_features, VHU_F_VERSION_1) ||
					       dev_set_features(m->dev, m->driver_features) < 0))
		v &= (uint8_t)~(VHU_STATUS_FEATURES_OK | VHU_STATUS_DRIVER_OK);
	m->status = v;
	dev_set_status(m->dev, v);
	return OK;
}

static struct verdict config_access(struct vhu_admin_member *m, const struct vhu_admin_req *r, struct answer *a,
				    bool write)
{
	uint32_t off = vhu_admin_le32(r->data), size = vhu_admin_le32(r->data + 4);
	uint32_t space = m->dev->cfg.config_size;
	if (!size || size > 256 || off > space || size > space - off)
		return BAD_FIELD;
	if (write) {
		/* stricter than zero-extension: writing zeros nobody sent is no
		 * one's intent (docs/admin-transport.md 4.3) */
		if (r->data_len < 8 || size > r->data_len - 8)
			return BAD_FIELD;
		return dev_set_config(m->dev, r->data + 8, off, size, VHU_CONFIG_WRITE_DRIVER) < 0 ? BAD_FIELD : OK;
	}
	if (size > r->result_room || dev_get_config(m->dev, a->result, off, size) < 0)
		return BAD_FIELD;
	a->len = size;
	return OK;
}

static struct verdict vq_set(struct vhu_admin_member *m, const uint8_t *d)
{
	uint16_t i = vhu_admin_le16(d), size = vhu_admin_le16(d + 2);
	uint64_t desc = vhu_admin_le64(d + 8), drv = vhu_admin_le64(d + 16), dev = vhu_admin_le64(d + 24);
	if (i >= m->nq || !zero(d + 4, 4))
		return BAD_FIELD;
	if (m->q[i].enabled)
		return BUSY;
	/* §2.7.10.2, §2.8.10.1: descriptors 16, avail/driver area 2 (4 packed), used/device area 4 */
	if (!size || size > m->dev->cfg.max_queue_size || desc % 16 || drv % 2 || dev % 4)
		return BAD_FIELD;
	m->q[i] = (struct member_queue){ .size = size, .desc = desc, .driver = drv, .device = dev, .set = true,
					 .interrupts = atomic_load(&m->q[i].interrupts) };
	return OK;
}

static void vq_get(struct vhu_admin_member *m, uint16_t i, struct answer *a)
{
	const struct member_queue *mq = &m->q[i];
	memset(a->result, 0, 40);
	vhu_admin_put_le(a->result, i, 2);
	vhu_admin_put_le(a->result + 2, m->dev->cfg.max_queue_size, 2);
	vhu_admin_put_le(a->result + 4, mq->size, 2);
	a->result[6] = mq->enabled;
	vhu_admin_put_le(a->result + 8, mq->desc, 8);
	vhu_admin_put_le(a->result + 16, mq->driver, 8);
	vhu_admin_put_le(a->result + 24, mq->device, 8);
	a->len = 40;
}

/* Commands naming a queue: le16 queue, then a byte (enable), reserved to 8. */
static struct verdict queue_command(struct vhu_admin_member *m, const struct vhu_admin_req *r, struct answer *a)
{
	const uint8_t *d = r->data;
	uint16_t i = vhu_admin_le16(d);
	if (i >= m->nq)
		return BAD_FIELD;
	switch (r->opcode) {
	case VHU_ADMIN_CMD_VQ_GET:
		if (!zero(d + 2, 6))
			return BAD_FIELD;
		vq_get(m, i, a);
		return OK;
	case VHU_ADMIN_CMD_VQ_ENABLE_SET:
		if (d[2] > 1 || !zero(d + 3, 5))
			return BAD_FIELD;
		if (!d[2]) {
			if (m->q[i].enabled)
				queue_stop(m, i);
			return OK;
		}
		return m->q[i].enabled ? OK : queue_start(m, i);
	case VHU_ADMIN_CMD_VQ_NOTIFY: {
		if (!zero(d + 2, 2))
			return BAD_FIELD;
		uint64_t one = 1;
		/* a notification is a hint: for a disabled queue it does nothing */
		if (m->q[i].enabled)
			(void)!write(m->kick[i], &one, 8);
		return OK;
	}
	default:   /* VQ_INTERRUPT_SET */
		if (d[2] > 1 || !zero(d + 3, 5))
			return BAD_FIELD;
		atomic_store(&m->q[i].interrupts, d[2]);
		return OK;
	}
}

static struct verdict from_errno(int r)
{
	switch (r) {
	case 0: return OK;
	case -EBUSY: return BUSY;
	case -ENOSPC: return NO_ROOM;
	case -ENOMEM: return (struct verdict){ VHU_ADMIN_STATUS_ENOMEM, VHU_ADMIN_Q_NORESOURCE };
	default: return BAD_FIELD;
	}
}

/* A change of the address spaces under paused queues: every request that
 * used what goes is completed first (MMU_UNMAP's rule), and every ring is
 * looked up again through what stays. */
static struct verdict mmu_change(struct vhu_admin_member *m, const struct vhu_admin_mmu_map *map, uint32_t asid,
				 uint64_t iova, uint64_t size)
{
	int r = 0;
	vhu_admin_member_pause(m);
	if (map)
		r = admin_mmu_map(&m->mmu, map);
	else
		admin_mmu_unmap(&m->mmu, asid, iova, size);
	(void)vhu_admin_member_resume(m);   /* a ring lost is the queue's failure, not the command's */
	return from_errno(r);
}

static struct verdict mmu_command(struct vhu_admin_member *m, const struct vhu_admin_req *r, struct answer *a)
{
	const uint8_t *d = r->data;
	switch (r->opcode) {
	case VHU_ADMIN_CMD_MMU_ENABLE:
		if (d[0] > 1 || !zero(d + 1, 7))
			return BAD_FIELD;
		/* the rings' addresses change meaning: not under a running queue */
		if (any_enabled(m))
			return BUSY;
		m->mmu.on = d[0];
		return OK;
	case VHU_ADMIN_CMD_MMU_ASID_SET: {
		uint16_t i = vhu_admin_le16(d);
		uint32_t asid = vhu_admin_le32(d + 4);
		if (i >= m->nq || !zero(d + 2, 2) || asid >= m->mmu.max_asids)
			return BAD_FIELD;
		if (m->q[i].enabled)
			return BUSY;
		m->qx[i].asid = asid;
		return OK;
	}
	case VHU_ADMIN_CMD_MMU_MAP: {
		struct vhu_admin_mmu_map mp = { vhu_admin_le32(d), vhu_admin_le32(d + 4), vhu_admin_le64(d + 8),
						vhu_admin_le64(d + 16), vhu_admin_le64(d + 24) };
		int rc = admin_mmu_map_check(&m->mmu, &mp);
		return rc < 0 ? from_errno(rc) : mmu_change(m, &mp, 0, 0, 0);
	}
	case VHU_ADMIN_CMD_MMU_UNMAP: {
		uint32_t asid = vhu_admin_le32(d);
		uint64_t iova = vhu_admin_le64(d + 8), size = vhu_admin_le64(d + 16);
		int n = zero(d + 4, 4) ? admin_mmu_unmap_count(&m->mmu, asid, iova, size) : -EINVAL;
		if (n <= 0)
			return n < 0 ? BAD_FIELD : NOTHING;
		return mmu_change(m, NULL, asid, iova, size);
	}
	default: {   /* MMU_ERR_GET */
		struct vhu_admin_mmu_err e = admin_mmu_take_error(&m->mmu);
		memset(a->result, 0, 24);
		vhu_admin_put_le(a->result, e.reason, 4);
		vhu_admin_put_le(a->result + 4, e.queue, 2);
		vhu_admin_put_le(a->result + 8, e.asid, 4);
		vhu_admin_put_le(a->result + 12, e.flags, 4);
		vhu_admin_put_le(a->result + 16, e.iova, 8);
		a->len = 24;
		return OK;
	}
	}
}

static struct verdict dispatch(struct vhu_admin_member *m, const struct vhu_admin_req *r, struct answer *a)
{
	const uint8_t *d = r->data;
	switch (r->opcode) {
	case VHU_ADMIN_CMD_DEV_FEATURES_GET:
		vhu_admin_put_le(a->result, m->offered, 8);
		a->len = 8;
		return OK;
	case VHU_ADMIN_CMD_DRV_FEATURES_SET: {
		uint64_t f = vhu_admin_le64(d);
		if (m->status & VHU_STATUS_FEATURES_OK)
			return BUSY;
		if (f & ~m->offered)
			return BAD_FIELD;
		m->driver_features = f;
		return OK;
	}
	case VHU_ADMIN_CMD_DRV_FEATURES_GET:
		vhu_admin_put_le(a->result, m->driver_features, 8);
		a->len = 8;
		return OK;
	case VHU_ADMIN_CMD_STATUS_SET:
		return set_status(m, d);
	case VHU_ADMIN_CMD_STATUS_GET:
		memset(a->result, 0, 8);
		a->result[0] = m->status | (vhu_device_status(m->dev) & VHU_STATUS_DEVICE_NEEDS_RESET) |
			       (m->mmu_fail ? VHU_STATUS_DEVICE_MMU_FAIL : 0);
		a->len = 8;
		return OK;
	case VHU_ADMIN_CMD_CONFIG_GENERATION_GET:
		vhu_admin_put_le(a->result, atomic_load(&m->generation), 4);
		a->len = 4;
		return OK;
	case VHU_ADMIN_CMD_CONFIG_GET:
	case VHU_ADMIN_CMD_CONFIG_SET:
		return config_access(m, r, a, r->opcode == VHU_ADMIN_CMD_CONFIG_SET);
	case VHU_ADMIN_CMD_VQ_SET:
		return vq_set(m, d);
	case VHU_ADMIN_CMD_VQ_GET:
	case VHU_ADMIN_CMD_VQ_ENABLE_SET:
	case VHU_ADMIN_CMD_VQ_NOTIFY:
	case VHU_ADMIN_CMD_VQ_INTERRUPT_SET:
		return queue_command(m, r, a);
	case VHU_ADMIN_CMD_CONFIG_INTERRUPT_SET:
		if (d[0] > 1 || !zero(d + 1, 7))
			return BAD_FIELD;
		atomic_store(&m->config_interrupts, d[0]);
		return OK;
	case VHU_ADMIN_CMD_MMU_ENABLE:
	case VHU_ADMIN_CMD_MMU_ASID_SET:
	case VHU_ADMIN_CMD_MMU_MAP:
	case VHU_ADMIN_CMD_MMU_UNMAP:
	case VHU_ADMIN_CMD_MMU_ERR_GET:
		return mmu_command(m, r, a);
	}
	return (struct verdict){ VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_OPCODE };
}

bool vhu_admin_member_opcode(uint16_t op)
{
	return (op >= VHU_ADMIN_CMD_DEV_FEATURES_GET && op <= VHU_ADMIN_CMD_CONFIG_SET) ||
	       (op >= VHU_ADMIN_CMD_VQ_SET && op <= VHU_ADMIN_CMD_VQ_ENABLE_SET) ||
	       (op >= VHU_ADMIN_CMD_VQ_NOTIFY && op <= VHU_ADMIN_CMD_CONFIG_INTERRUPT_SET) ||
	       (op >= VHU_ADMIN_CMD_MMU_ENABLE && op <= VHU_ADMIN_CMD_MMU_ERR_GET);
}

uint32_t vhu_admin_member_command(struct vhu_admin_member *m, const struct vhu_admin_req *req,
				  const struct iovec *iov, unsigned out, unsigned in)
{
	struct answer a = { .len = 0 };
	a.v = req->reserved_set ? BAD_FIELD : dispatch(m, req, &a);
	return vhu_admin_give(iov, out, in, a.v.status, a.v.qualifier, a.result, a.len);
}

/* ---- life ---------------------------------------------------------------------------- */

int vhu_admin_member_new(struct vhu_admin_member **out, const struct vhu_admin_member_config *cfg)
{
	int rc;

	if (!cfg->dev || !cfg->mem || !cfg->id || !vhu_has_feature(cfg->dev->cfg.features, VHU_F_VERSION_1))
		return -EINVAL;
	struct vhu_admin_member *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	m->dev = cfg->dev;
	m->nq = vhu_device_num_queues(cfg->dev);
	m->offered = cfg->dev->cfg.features & ~NOT_OFFERED;
	m->q = calloc(m->nq, sizeof(*m->q));
	m->qx = calloc(m->nq, sizeof(*m->qx));
	if (!m->q || !m->qx || !(m->kick = dq_kicks_new(m->nq))) {
		rc = m->q && m->qx ? -errno : -ENOMEM;
		goto fail;
	}
	if ((rc = admin_mmu_init(&m->mmu, cfg->mem, cfg->max_asids ? cfg->max_asids : VHU_ADMIN_MMU_ASIDS,
				 cfg->mmu_max_mappings ? cfg->mmu_max_mappings : VHU_ADMIN_MMU_MAPPINGS)) < 0)
		goto fail;
	for (uint16_t i = 0; i < m->nq; i++)
		m->qx[i] = (struct admin_mmu_queue){ .mmu = &m->mmu, .queue = i };
	struct dev_transport t = { .opaque = m, .call = tr_call, .error = tr_error, .config_changed = tr_config_changed };
	if ((rc = dev_attach(m->dev, &t)) < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	admin_mmu_destroy(&m->mmu);
	dq_kicks_free(m->kick, m->nq);
	free(m->qx);
	free(m->q);
	free(m);
	return rc;
}

void vhu_admin_member_free(struct vhu_admin_member *m)
{
	if (!m)
		return;
	vhu_admin_member_reset(m);
	dev_detach(m->dev);
	admin_mmu_destroy(&m->mmu);
	dq_kicks_free(m->kick, m->nq);
	free(m->qx);
	free(m->q);
	free(m);
}
