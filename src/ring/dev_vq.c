/* SPDX-License-Identifier: MIT */
/* Device-side virtqueue: set-up, position, and dispatch by ring format. */
#include <stdlib.h>

#include "inflight_internal.h"

static void set_rings(struct vhu_dev_vq *vq, const struct vhu_vq_config *cfg)
{
	if (vq->packed) {
		vq->pk.desc = cfg->desc;
		vq->pk.driver = cfg->driver_area;
		vq->pk.device = cfg->device_area;
	} else {
		vq->split.desc = cfg->desc;
		vq->split.avail = cfg->driver_area;
		vq->split.used = cfg->device_area;
	}
	if (cfg->mem && cfg->iotlb)
		vhu_xlate_init_iotlb(&vq->xl, cfg->iotlb, cfg->mem);
	else if (cfg->mem)
		vhu_xlate_init_mem(&vq->xl, cfg->mem);
	else
		vhu_xlate_init(&vq->xl, cfg->translate, cfg->translate_opaque);
}

int vhu_dev_vq_init(struct vhu_dev_vq *vq, const struct vhu_vq_config *cfg)
{
	int r = vq_config_check(cfg, true);

	if (r < 0)
		return r;
	struct vhu_dev_chain *chain = calloc(cfg->num, sizeof(*chain));
	if (!chain)
		return -ENOMEM;
	memset(vq, 0, sizeof(*vq));
	vq->num = cfg->num;
	vq->index = cfg->index;
	vq->packed = vhu_has_feature(cfg->features, VHU_F_RING_PACKED);
	vq->f = vq_flags_from(cfg->features);
	vq->chain = chain;
	set_rings(vq, cfg);
	if (vq->packed) {
		/* §2.8.1: both wrap counters start at 1 */
		vq->avail_wrap = vq->used_wrap = true;
		vq->signalled_wrap = true;
	}
	vq->notify_enabled = true;
	return 0;
}

static void detach_inflight(struct vhu_dev_vq *vq)
{
	ifl_free(vq->ifl);
	vq->ifl = NULL;
}

void vhu_dev_vq_destroy(struct vhu_dev_vq *vq)
{
	dev_log_free(vq);
	detach_inflight(vq);
	free(vq->chain);
	vq->chain = NULL;
	/* a pop or push after this answers instead of reaching freed memory */
	vq->broken = -ESHUTDOWN;
}

int vhu_dev_vq_remap(struct vhu_dev_vq *vq, const struct vhu_vq_config *cfg)
{
	int r = vq_config_check(cfg, true);

	if (r < 0)
		return r;
	if (cfg->num != vq->num || vhu_has_feature(cfg->features, VHU_F_RING_PACKED) != vq->packed)
		return -EINVAL;
	set_rings(vq, cfg);
	if (vq->log)
		vq->log->last_region = 0;   /* the table may be another */
	return 0;
}

/* iovec counts travel in 16 bits */
#define IOV_CAP 0xffffu

int vhu_dev_vq_pop_burst(struct vhu_dev_vq *vq, struct vhu_vq_elem *elems, unsigned n,
			 struct iovec *iov, unsigned iov_len, unsigned iov_max)
{
	if (vq->broken)
		return vq->broken;
	if (iov_max > IOV_CAP)
		iov_max = IOV_CAP;
	if (n == 0)
		return 0;
	int r;
	if (__builtin_expect(vq->ifl && vhu_dev_vq_resubmit_pending(vq), 0))
		r = ifl_pop_resubmitted(vq, elems, n, iov, iov_len, iov_max);
	else
		r = vq->packed ? packed_dev_pop_burst(vq, elems, n, iov, iov_len, iov_max)
			       : split_dev_pop_burst(vq, elems, n, iov, iov_len, iov_max);
	if (__builtin_expect(vq->log != NULL, 0))
		dev_log_popped(vq, elems, r);
	return r;
}

int vhu_dev_vq_pop(struct vhu_dev_vq *vq, struct vhu_vq_elem *elem,
		   struct iovec *iov, unsigned iov_max)
{
	if (vq->broken)
		return vq->broken;
	if (iov_max > IOV_CAP)
		iov_max = IOV_CAP;
	int r;
	if (__builtin_expect(vq->ifl && vhu_dev_vq_resubmit_pending(vq), 0))
		r = ifl_pop_resubmitted(vq, elem, 1, iov, iov_max, iov_max);
	else
		r = vq->packed ? packed_dev_pop_one(vq, elem, iov, iov_max) : split_dev_pop_one(vq, elem, iov, iov_max);
	if (__builtin_expect(vq->log != NULL, 0))
		dev_log_popped(vq, elem, r);
	return r;
}

bool vhu_dev_vq_iotlb_miss(const struct vhu_dev_vq *vq, uint64_t *iova, int *access)
{
	if (!vq->xl.iotlb_missing)
		return false;
	*iova = vq->xl.missing_iova;
	*access = vq->xl.iotlb_missing;
	return true;
}

int vhu_dev_vq_push_burst(struct vhu_dev_vq *vq, const struct vhu_vq_used *used, unsigned n)
{
	if (vq->broken)
		return vq->broken;
	if (__builtin_expect(vq->log != NULL, 0))
		dev_log_pushed(vq, used, n);
	int k = vq->packed ? packed_dev_push_burst(vq, used, n) : split_dev_push_burst(vq, used, n);
	vhu_dev_vq_flush(vq);
	return k;
}

int vhu_dev_vq_push(struct vhu_dev_vq *vq, const struct vhu_vq_elem *elem, uint32_t len)
{
	struct vhu_vq_used u = { elem->id, len };

	if (vq->broken)
		return vq->broken;
	if (__builtin_expect(vq->log != NULL, 0))
		dev_log_pushed(vq, &u, 1);
	if (!vq->packed)
		return split_dev_push_one(vq, u.id, u.len) == 1 ? 0 : -EINVAL;
	return packed_dev_push_burst(vq, &u, 1) == 1 ? 0 : -EINVAL;
}

void vhu_dev_vq_flush(struct vhu_dev_vq *vq)
{
	if (vq->packed)
		packed_dev_flush(vq);
	else
		split_dev_flush(vq);
}

bool vhu_dev_vq_should_notify(struct vhu_dev_vq *vq)
{
	return vq->packed ? packed_dev_should_notify(vq) : split_dev_should_notify(vq);
}

void vhu_dev_vq_disable_notify(struct vhu_dev_vq *vq)
{
	if (!vq->notify_enabled)
		return;
	if (vq->packed)
		packed_dev_set_notify(vq, false);
	else
		split_dev_set_notify(vq, false);
	if (__builtin_expect(vq->log != NULL, 0))
		dev_log_flush(vq);
}

bool vhu_dev_vq_enable_notify(struct vhu_dev_vq *vq)
{
	if (vq->packed)
		packed_dev_set_notify(vq, true);
	else
		split_dev_set_notify(vq, true);
	if (__builtin_expect(vq->log != NULL, 0))
		dev_log_flush(vq);
	/* the enable must be visible before we look at the ring again */
	full_barrier();
	return vhu_dev_vq_has_avail(vq);
}

bool vhu_dev_vq_has_avail(struct vhu_dev_vq *vq)
{
	if (vq->broken)
		return false;
	if (vhu_dev_vq_resubmit_pending(vq))
		return true;
	return vq->packed ? packed_dev_has_avail(vq) : split_dev_has_avail(vq);
}

int vhu_dev_vq_notification_data(struct vhu_dev_vq *vq, uint32_t data)
{
	if ((data & 0xffff) != vq->index)
		return -ENXIO;
	if (vq->packed)
		return packed_dev_notification_data(vq, (data >> 16) & 0x7fff, data >> 31);
	return split_dev_notification_data(vq, data >> 16);
}

void vhu_dev_vq_get_pos(const struct vhu_dev_vq *vq, struct vhu_vq_pos *pos)
{
	*pos = (struct vhu_vq_pos){
		.avail = vq->last_avail,
		.avail_wrap = vq->packed && vq->avail_wrap,
		.used = vq->packed ? vq->used_idx : vq->published_used,
		.used_wrap = vq->packed && vq->used_wrap,
	};
}

int vhu_dev_vq_set_pos(struct vhu_dev_vq *vq, const struct vhu_vq_pos *pos)
{
	uint32_t inflight;

	/* destroyed: the records are gone, and clearing broken below would
	 * let a pop reach them */
	if (!vq->chain)
		return -ESHUTDOWN;
	detach_inflight(vq);
	dev_log_free(vq);

	if (vq->packed) {
		if (pos->avail >= vq->num || pos->used >= vq->num)
			return -EINVAL;
		/* slots from used to avail: same lap, or avail one lap on */
		if (pos->avail_wrap == pos->used_wrap) {
			if (pos->avail < pos->used)
				return -EINVAL;
			inflight = pos->avail - pos->used;
		} else {
			if (pos->avail > pos->used)
				return -EINVAL;
			inflight = (uint32_t)vq->num - pos->used + pos->avail;
		}
		vq->used_idx = pos->used;
		vq->used_wrap = pos->used_wrap;
		vq->avail_wrap = pos->avail_wrap;
	} else {
		/* §2.7.8: used->idx in the ring is the truth for split */
		uint16_t used = ld16(&vq->split.used->idx);
		inflight = (uint16_t)(pos->avail - used);
		if (inflight > vq->num)
			return -EINVAL;
		vq->used_idx = vq->published_used = used;
	}
	vq->last_avail = vq->shadow_avail = pos->avail;
	vq->inflight = inflight;
	/* what the device held before is not ours to return any more */
	memset(vq->chain, 0, vq->num * sizeof(*vq->chain));
	vq->pending = false;
	memset(&vq->batch, 0, sizeof(vq->batch));
	vq->signalled_valid = false;
	vq->avail_event_valid = false;
	vq->broken = 0;
	return 0;
}
