/* SPDX-License-Identifier: MIT */
/* Packed virtqueue, driver side (VIRTIO §2.8.21 - §2.8.23). */
#include "vq_internal.h"

static int broken(struct vhu_drv_vq *vq, int err)
{
	vq->broken = err;
	return err;
}

static uint16_t avail_bits(bool wrap)
{
	/* §2.8.1: AVAIL equal to the wrap counter, USED its inverse */
	return wrap ? VHU_VRING_PACKED_DESC_F_AVAIL : VHU_VRING_PACKED_DESC_F_USED;
}

static inline __attribute__((always_inline)) int add_one(struct vhu_drv_vq *vq,
	const struct vhu_sg *sg, unsigned out, unsigned in, void *token, bool in_order)
{
	unsigned total = out + in, need;
	bool ind = drv_use_indirect(vq, total);
	uint16_t id, head = vq->next_avail, head_flags = 0, pos = head;
	bool wrap = vq->avail_wrap;

	need = ind ? 1 : total;
	if (!ind && total > vq->num)
		return -EINVAL;  /* §2.8.19: no list longer than the queue */
	if (need > vq->num_free)
		return -ENOSPC;
	/* With IN_ORDER the id is the head offset, so the driver can walk a
	 * batch by ring position (§2.8.9); otherwise any free id. */
	id = in_order ? head : vq->next[--vq->free_head];

	if (ind) {
		struct vhu_vring_packed_desc *t =
			(struct vhu_vring_packed_desc *)vq->ind_host + (size_t)id * vq->ind_max;
		for (unsigned k = 0; k < total; k++) {
			st64(&t[k].addr, sg[k].addr);
			st32(&t[k].len, sg[k].len);
			st16(&t[k].id, 0);
			st16(&t[k].flags, k >= out ? VHU_VRING_DESC_F_WRITE : 0);
		}
		struct vhu_vring_packed_desc *d = &vq->pk.desc[pos];
		st64(&d->addr, vq->ind_addr + (uint64_t)id * vq->ind_max * 16u);
		st32(&d->len, total * 16u);
		st16(&d->id, id);
		head_flags = VHU_VRING_DESC_F_INDIRECT | avail_bits(wrap);
		packed_advance(&pos, &wrap, 1, vq->num);
	} else {
		for (unsigned k = 0; k < total; k++) {
			struct vhu_vring_packed_desc *d = &vq->pk.desc[pos];
			uint16_t f = avail_bits(wrap) |
				     (k + 1 < total ? VHU_VRING_DESC_F_NEXT : 0) |
				     (k >= out ? VHU_VRING_DESC_F_WRITE : 0);
			st64(&d->addr, sg[k].addr);
			st32(&d->len, sg[k].len);
			/* §2.8.13: the id belongs in the last descriptor; we
			 * write it in each, as Linux does, for lenient devices */
			st16(&d->id, id);
			if (k == 0)
				head_flags = f;
			else
				st16(&d->flags, f);  /* ordered by the head's release */
			packed_advance(&pos, &wrap, 1, vq->num);
		}
	}
	vq->slot[id] = (struct vhu_drv_slot){
		.token = token, .in_len = drv_sg_in_len(sg, out, in), .ndesc = (uint16_t)need,
	};
	vq->num_free -= need;
	vq->added += need;
	vq->next_avail = pos;
	vq->avail_wrap = wrap;
	/* §2.8.21.1: the head's flags last, after every other write */
	st16_rel(&vq->pk.desc[head].flags, head_flags);
	return 0;
}

/* Without IN_ORDER, the ring state in locals: one-segment buffers are
 * written here, any other takes add_one() with the state written back. */
static inline __attribute__((always_inline)) int add_free_ids_run(struct vhu_drv_vq *vq, const struct vhu_drv_buf *b, unsigned n)
{
	const uint16_t num = vq->num;
	struct vhu_vring_packed_desc *desc = vq->pk.desc;
	struct vhu_drv_slot *slots = vq->slot;
	const uint16_t *free_ids = vq->next;
	uint16_t pos = vq->next_avail, free_top = vq->free_head, num_free = vq->num_free;
	bool wrap = vq->avail_wrap, single_indirect = drv_use_indirect(vq, 1);
	uint32_t added = 0;
	unsigned k;
	int r = 0;

	for (k = 0; k < n; k++) {
		const struct vhu_drv_buf *x = &b[k];
		if ((r = drv_buf_check(x)) < 0)
			break;
		if ((unsigned)x->out + x->in != 1 || single_indirect) {
			vq->next_avail = pos;
			vq->avail_wrap = wrap;
			vq->free_head = free_top;
			vq->num_free = num_free;
			vq->added += added;
			added = 0;
			r = add_one(vq, x->sg, x->out, x->in, x->token, false);
			pos = vq->next_avail;
			wrap = vq->avail_wrap;
			free_top = vq->free_head;
			num_free = vq->num_free;
			if (r < 0)
				break;
			continue;
		}
		if (!num_free) {
			r = -ENOSPC;
			break;
		}
		uint16_t id = free_ids[--free_top];
		const struct vhu_sg *g = x->sg;
		struct vhu_vring_packed_desc *d = &desc[pos];
		st64(&d->addr, g->addr);
		st32(&d->len, g->len);
		st16(&d->id, id);
		slots[id] = (struct vhu_drv_slot){ .token = x->token, .in_len = x->in ? g->len : 0, .ndesc = 1 };
		/* §2.8.21.1: the flags last, after every other write */
		st16_rel(&d->flags, avail_bits(wrap) | (x->in ? VHU_VRING_DESC_F_WRITE : 0));
		if (++pos == num) {
			pos = 0;
			wrap = !wrap;
		}
		num_free--;
		added++;
	}
	vq->next_avail = pos;
	vq->avail_wrap = wrap;
	vq->free_head = free_top;
	vq->num_free = num_free;
	vq->added += added;
	return k ? (int)k : r;
}

int packed_drv_add_burst(struct vhu_drv_vq *vq, const struct vhu_drv_buf *b, unsigned n)
{
	return vq->f.in_order ? drv_add_each(vq, b, n, true, add_one) : add_free_ids_run(vq, b, n);
}

bool packed_drv_kick_prepare(struct vhu_drv_vq *vq)
{
	uint32_t n = vq->added;
	uint16_t old_off = vq->kick_pos;
	bool old_wrap = vq->kick_wrap;

	if (n == 0)
		return false;
	/* §2.8.21.3.1: flags stores before reading the device's structure */
	full_barrier();
	vq->added = 0;
	vq->kick_pos = vq->next_avail;
	vq->kick_wrap = vq->avail_wrap;
	uint16_t ev = ld16_acq(&vq->pk.device->flags) & 3;
	if (ev == VHU_RING_EVENT_FLAGS_DISABLE)
		return false;
	if (ev == VHU_RING_EVENT_FLAGS_DESC && vq->f.event_idx)
		return vhu_vring_packed_need_event(vq->num, ld16(&vq->pk.device->off_wrap),
						   old_off, old_wrap, n);
	return true;
}

/*
 * IN_ORDER (§2.8.9): the next buffer taken, from its own used descriptor or
 * as one skipped by a batch's (those before the batch's last have none of
 * their own and were used completely). Ids are head offsets, so the buffer
 * is always the one at last_used. 1, 0 when none, or the broken code.
 */
static int get_in_order_one(struct vhu_drv_vq *vq, void **token, uint32_t *len)
{
	uint16_t id = vq->last_used;
	uint32_t l;

	if (vq->batch) {
		if (!vq->slot[id].token)
			return broken(vq, -ENOENT);
		if (id == vq->batch_last) {
			l = vq->batch_len;
			vq->batch = false;
		} else {
			l = vq->slot[id].in_len;
		}
	} else {
		struct vhu_vring_packed_desc *d = &vq->pk.desc[vq->last_used];
		uint16_t flags = ld16_acq(&d->flags);
		if (!packed_is_used(flags, vq->used_wrap))
			return 0;
		uint32_t uid = ld16(&d->id);
		l = (flags & VHU_VRING_DESC_F_WRITE) ? ld32(&d->len) : 0;
		if (uid >= vq->num)
			return broken(vq, -ERANGE);
		if (uid != id) {
			if (!vq->slot[uid].token)
				return broken(vq, -ENOENT);
			vq->batch = true;
			vq->batch_last = (uint16_t)uid;
			vq->batch_len = l;
			l = vq->slot[id].in_len;
		}
		if (!vq->slot[id].token)
			return broken(vq, -ENOENT);
	}
	if (l > vq->slot[id].in_len)
		return broken(vq, -EOVERFLOW);
	struct vhu_drv_slot *s = &vq->slot[id];
	*token = s->token;
	*len = l;
	packed_advance(&vq->last_used, &vq->used_wrap, s->ndesc, vq->num);
	vq->num_free += s->ndesc;
	s->token = NULL;
	return 1;
}

static inline __attribute__((always_inline)) int get_in_order_run(struct vhu_drv_vq *vq,
	void **tokens, uint32_t *lens, unsigned n)
{
	unsigned k;

	for (k = 0; k < n; k++) {
		int r = get_in_order_one(vq, &tokens[k], &lens[k]);
		if (r <= 0)
			return k ? (int)k : r;
	}
	return (int)k;
}

/* Without IN_ORDER, the ring state in locals. */
static inline __attribute__((always_inline)) int get_free_ids_run(struct vhu_drv_vq *vq, void **tokens, uint32_t *lens, unsigned n)
{
	const uint16_t num = vq->num;
	const struct vhu_vring_packed_desc *desc = vq->pk.desc;
	struct vhu_drv_slot *slots = vq->slot;
	uint16_t *free_ids = vq->next;
	uint16_t last = vq->last_used, free_top = vq->free_head, num_free = vq->num_free;
	bool wrap = vq->used_wrap;
	unsigned k;
	int r = 0;

	for (k = 0; k < n; k++) {
		const struct vhu_vring_packed_desc *d = &desc[last];
		uint16_t flags = ld16_acq(&d->flags);
		if (!packed_is_used(flags, wrap))
			break;
		uint32_t id = ld16(&d->id);
		uint32_t l = (flags & VHU_VRING_DESC_F_WRITE) ? ld32(&d->len) : 0;
		struct vhu_drv_slot *s;
		if ((r = drv_used_slot(vq, slots, num, id, l, &s)) < 0)
			break;
		tokens[k] = s->token;
		lens[k] = l;
		packed_advance(&last, &wrap, s->ndesc, num);
		num_free += s->ndesc;
		free_ids[free_top++] = (uint16_t)id;
		s->token = NULL;
	}
	vq->last_used = last;
	vq->used_wrap = wrap;
	vq->free_head = free_top;
	vq->num_free = num_free;
	return k ? (int)k : r;
}

int packed_drv_get_burst(struct vhu_drv_vq *vq, void **tokens, uint32_t *lens, unsigned n)
{
	return vq->f.in_order ? get_in_order_run(vq, tokens, lens, n) : get_free_ids_run(vq, tokens, lens, n);
}

bool packed_drv_has_used(struct vhu_drv_vq *vq)
{
	if (vq->f.in_order && vq->batch)
		return true;
	return packed_is_used(ld16_acq(&vq->pk.desc[vq->last_used].flags), vq->used_wrap);
}

void packed_drv_set_cb(struct vhu_drv_vq *vq, bool enable)
{
	vq->cb_enabled = enable;
	if (!enable) {
		st16(&vq->pk.driver->flags, VHU_RING_EVENT_FLAGS_DISABLE);
	} else if (vq->f.event_idx) {
		/* notify when our next slot is used */
		st16(&vq->pk.driver->off_wrap,
		     vq->last_used | (uint16_t)vq->used_wrap << VHU_RING_EVENT_WRAP_SHIFT);
		st16_rel(&vq->pk.driver->flags, VHU_RING_EVENT_FLAGS_DESC);
	} else {
		st16_rel(&vq->pk.driver->flags, VHU_RING_EVENT_FLAGS_ENABLE);
	}
}

/* One buffer (vhu_drv_vq_add, vhu_drv_vq_get): the bursts compiled for n = 1 */
int packed_drv_add_one(struct vhu_drv_vq *vq, const struct vhu_drv_buf *b)
{
	return vq->f.in_order ? drv_add_each(vq, b, 1, true, add_one) : add_free_ids_run(vq, b, 1);
}

int packed_drv_get_one(struct vhu_drv_vq *vq, void **token, uint32_t *len)
{
	return vq->f.in_order ? get_in_order_run(vq, token, len, 1) : get_free_ids_run(vq, token, len, 1);
}
