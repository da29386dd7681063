/* SPDX-License-Identifier: MIT */
/* Driver-side virtqueue: set-up, private state, dispatch by ring format. */
#include <stdlib.h>

#include "vq_internal.h"

int vhu_drv_vq_init(struct vhu_drv_vq *vq, const struct vhu_vq_config *cfg,
		    void *ind_host, uint64_t ind_addr, uint16_t ind_max)
{
	int r = vq_config_check(cfg, false);

	if (r < 0)
		return r;
	if (ind_host && (ind_max < 2 || ind_max > VHU_VQ_MAX_INDIRECT || ((uintptr_t)ind_host & 15)))
		return -EINVAL;
	memset(vq, 0, sizeof(*vq));
	vq->num = cfg->num;
	vq->index = cfg->index;
	vq->packed = vhu_has_feature(cfg->features, VHU_F_RING_PACKED);
	vq->f = vq_flags_from(cfg->features);
	vq->slot = calloc(vq->num, sizeof(*vq->slot));
	vq->next = calloc(vq->num, sizeof(*vq->next));
	if (!vq->slot || !vq->next) {
		vhu_drv_vq_destroy(vq);
		return -ENOMEM;
	}
	if (vq->packed) {
		vq->pk.desc = cfg->desc;
		vq->pk.driver = cfg->driver_area;
		vq->pk.device = cfg->device_area;
		vq->avail_wrap = vq->used_wrap = vq->kick_wrap = true;  /* §2.8.1 */
		/* free id stack: ids num-1 .. 0, so id 0 is handed out first */
		for (uint16_t i = 0; i < vq->num; i++)
			vq->next[i] = (uint16_t)(vq->num - 1 - i);
		vq->free_head = vq->num;
	} else {
		vq->split.desc = cfg->desc;
		vq->split.avail = cfg->driver_area;
		vq->split.used = cfg->device_area;
		for (uint16_t i = 0; i < vq->num; i++)
			vq->next[i] = (uint16_t)((i + 1) & (vq->num - 1));
	}
	vq->num_free = vq->num;
	vq->ind_host = ind_host;
	vq->ind_addr = ind_addr;
	vq->ind_max = ind_host ? ind_max : 0;
	vq->ind_min = 2;
	vq->cb_enabled = true;
	return 0;
}

void vhu_drv_vq_destroy(struct vhu_drv_vq *vq)
{
	free(vq->slot);
	free(vq->next);
	vq->slot = NULL;
	vq->next = NULL;
}

bool drv_use_indirect(const struct vhu_drv_vq *vq, unsigned total)
{
	return vq->f.indirect && vq->ind_host && total >= vq->ind_min &&
	       total <= vq->ind_max;
}

uint32_t drv_sg_in_len(const struct vhu_sg *sg, unsigned out, unsigned in)
{
	uint64_t n = 0;

	for (unsigned k = out; k < out + in; k++)
		n += sg[k].len;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

int vhu_drv_vq_add_burst(struct vhu_drv_vq *vq, const struct vhu_drv_buf *bufs, unsigned n)
{
	if (vq->broken)
		return vq->broken;
	if (n == 0)
		return 0;
	return vq->packed ? packed_drv_add_burst(vq, bufs, n) : split_drv_add_burst(vq, bufs, n);
}

int vhu_drv_vq_add(struct vhu_drv_vq *vq, const struct vhu_sg *sg, unsigned out,
		   unsigned in, void *token)
{
	if (vq->broken)
		return vq->broken;
	if (out > 0xffff || in > 0xffff)
		return -EINVAL;
	struct vhu_drv_buf b = { sg, (uint16_t)out, (uint16_t)in, token };
	int r = vq->packed ? packed_drv_add_one(vq, &b) : split_drv_add_one(vq, &b);
	return r > 0 ? 0 : r;
}

void vhu_drv_vq_publish(struct vhu_drv_vq *vq)
{
	/* packed: each add already released its head flags */
	if (!vq->packed && vq->published_avail != vq->avail_idx) {
		/* §2.7.13.3: descriptors and ring entries before idx */
		st16_rel(&vq->split.avail->idx, vq->avail_idx);
		vq->published_avail = vq->avail_idx;
	}
}

bool vhu_drv_vq_kick_prepare(struct vhu_drv_vq *vq)
{
	vhu_drv_vq_publish(vq);
	return vq->packed ? packed_drv_kick_prepare(vq) : split_drv_kick_prepare(vq);
}

uint32_t vhu_drv_vq_notification_data(const struct vhu_drv_vq *vq)
{
	if (vq->packed)
		return vhu_notification_data_encode(vq->index, vq->next_avail, vq->avail_wrap, true);
	return vhu_notification_data_encode(vq->index, vq->avail_idx, false, false);
}

int vhu_drv_vq_get_burst(struct vhu_drv_vq *vq, void **tokens, uint32_t *lens, unsigned n)
{
	if (vq->broken)
		return vq->broken;
	if (n == 0)
		return 0;
	return vq->packed ? packed_drv_get_burst(vq, tokens, lens, n)
			  : split_drv_get_burst(vq, tokens, lens, n);
}

int vhu_drv_vq_get(struct vhu_drv_vq *vq, void **token, uint32_t *len)
{
	if (vq->broken)
		return vq->broken;
	return vq->packed ? packed_drv_get_one(vq, token, len) : split_drv_get_one(vq, token, len);
}

bool vhu_drv_vq_has_used(struct vhu_drv_vq *vq)
{
	if (vq->broken)
		return false;
	return vq->packed ? packed_drv_has_used(vq) : split_drv_has_used(vq);
}

void vhu_drv_vq_disable_cb(struct vhu_drv_vq *vq)
{
	if (!vq->cb_enabled)
		return;
	if (vq->packed)
		packed_drv_set_cb(vq, false);
	else
		split_drv_set_cb(vq, false);
}

bool vhu_drv_vq_enable_cb(struct vhu_drv_vq *vq)
{
	if (vq->packed)
		packed_drv_set_cb(vq, true);
	else
		split_drv_set_cb(vq, true);
	/* §2.7.14 note, §2.8.22: enable, barrier, then recheck */
	full_barrier();
	return vhu_drv_vq_has_used(vq);
}

int vhu_drv_vq_reoffer(struct vhu_drv_vq *vq)
{
	if (vq->broken)
		return vq->broken;
	/* IN_ORDER: the device used them in order, so the entries after
	 * the used index are exactly the outstanding ones already; packed:
	 * only the device's inflight region can tell what it had taken */
	if (vq->packed || vq->f.in_order)
		return 0;
	return split_drv_reoffer(vq);
}

void vhu_drv_vq_get_pos(const struct vhu_drv_vq *vq, struct vhu_vq_pos *pos)
{
	*pos = (struct vhu_vq_pos){
		.avail = vq->packed ? vq->next_avail : vq->avail_idx,
		.avail_wrap = vq->packed && vq->avail_wrap,
		.used = vq->last_used,
		.used_wrap = vq->packed && vq->used_wrap,
	};
}
