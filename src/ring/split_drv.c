/* SPDX-License-Identifier: MIT */
/* Split virtqueue, driver side (VIRTIO §2.7.13 - §2.7.14). */
#include <stdlib.h>

#include "vq_internal.h"

static int broken(struct vhu_drv_vq *vq, int err)
{
	vq->broken = err;
	return err;
}

static void write_desc(struct vhu_vring_desc *d, uint64_t addr, uint32_t len,
		       uint16_t flags, uint16_t next)
{
	st64(&d->addr, addr);
	st32(&d->len, len);
	st16(&d->flags, flags);
	st16(&d->next, next);
}

static inline __attribute__((always_inline)) int add_one(struct vhu_drv_vq *vq,
	const struct vhu_sg *sg, unsigned out, unsigned in, void *token, bool in_order)
{
	unsigned total = out + in, need;
	bool ind = drv_use_indirect(vq, total);
	uint16_t mask = vq->num - 1, head, i;

	need = ind ? 1 : total;
	if (!ind && total > vq->num)
		return -EINVAL;  /* §2.7.5.2: no chain longer than the queue */
	if (need > vq->num_free)
		return -ENOSPC;

	/* §2.7.5: with IN_ORDER the driver uses the table in ring order */
	head = in_order ? vq->next_avail : vq->free_head;
	if (ind) {
		struct vhu_vring_desc *t = vq->ind_host + (size_t)head * vq->ind_max;
		for (unsigned k = 0; k < total; k++)
			write_desc(&t[k], sg[k].addr, sg[k].len,
				   (k + 1 < total ? VHU_VRING_DESC_F_NEXT : 0) |
				   (k >= out ? VHU_VRING_DESC_F_WRITE : 0),
				   (uint16_t)(k + 1));
		write_desc(&vq->split.desc[head],
			   vq->ind_addr + (uint64_t)head * vq->ind_max * 16u,
			   total * 16u, VHU_VRING_DESC_F_INDIRECT, 0);
		i = head;
	} else {
		i = head;
		for (unsigned k = 0;; k++) {
			uint16_t nx = in_order ? (uint16_t)((i + 1) & mask) : vq->next[i];
			vq->next[i] = nx;   /* private link, also the chain order */
			write_desc(&vq->split.desc[i], sg[k].addr, sg[k].len,
				   (k + 1 < total ? VHU_VRING_DESC_F_NEXT : 0) |
				   (k >= out ? VHU_VRING_DESC_F_WRITE : 0), nx);
			if (k + 1 == total)
				break;
			i = nx;
		}
	}
	if (in_order)
		vq->next_avail = (uint16_t)((i + 1) & mask);
	else
		vq->free_head = vq->next[i];
	vq->num_free -= need;
	vq->slot[head] = (struct vhu_drv_slot){
		.token = token, .in_len = drv_sg_in_len(sg, out, in),
		.ndesc = (uint16_t)need, .last = i,
	};
	/* The device reads this entry only after our release of avail->idx. */
	st16(&vq->split.avail->ring[vq->avail_idx & mask], head);
	vq->avail_idx++;
	vq->added++;
	return 0;
}

/* Any buffer but a one-segment direct one, out of line so the burst's loop
 * keeps its registers: add_one() with the ring state written back. */
static __attribute__((noinline)) int add_general(struct vhu_drv_vq *vq, const struct vhu_drv_buf *x,
	uint16_t *free_head, uint16_t *num_free, uint16_t *avail_idx)
{
	vq->free_head = *free_head;
	vq->num_free = *num_free;
	vq->avail_idx = *avail_idx;
	int r = add_one(vq, x->sg, x->out, x->in, x->token, false);
	*free_head = vq->free_head;
	*num_free = vq->num_free;
	*avail_idx = vq->avail_idx;
	return r;
}

/*
 * The burst without IN_ORDER, the ring state in locals (stores to the ring
 * could alias the queue's fields for the compiler): one-segment buffers,
 * the commonest, are written here, any other by add_general().
 */
static inline __attribute__((always_inline)) int add_free_list_run(struct vhu_drv_vq *vq, const struct vhu_drv_buf *b, unsigned n)
{
	const uint16_t mask = vq->num - 1;
	struct vhu_vring_desc *desc = vq->split.desc;
	uint16_t *ring = vq->split.avail->ring, *next = vq->next;
	struct vhu_drv_slot *slots = vq->slot;
	uint16_t free_head = vq->free_head, num_free = vq->num_free, avail_idx = vq->avail_idx;
	bool single_indirect = drv_use_indirect(vq, 1);
	unsigned k, simple = 0;
	int r = 0;

	for (k = 0; k < n; k++) {
		const struct vhu_drv_buf *x = &b[k];
		if ((r = drv_buf_check(x)) < 0)
			break;
		if ((unsigned)x->out + x->in != 1 || single_indirect) {
			if ((r = add_general(vq, x, &free_head, &num_free, &avail_idx)) < 0)
				break;
			continue;
		}
		if (!num_free) {
			r = -ENOSPC;
			break;
		}
		uint16_t head = free_head;
		const struct vhu_sg *g = x->sg;
		uint32_t len = g->len, in_len = x->in ? len : 0;
		free_head = next[head];
		write_desc(&desc[head], g->addr, len, x->in ? VHU_VRING_DESC_F_WRITE : 0, free_head);
		num_free--;
		slots[head] = (struct vhu_drv_slot){ .token = x->token, .in_len = in_len, .ndesc = 1, .last = head };
		/* The device reads this entry only after our release of avail->idx. */
		st16(&ring[avail_idx & mask], head);
		avail_idx++;
		simple++;
	}
	vq->added += simple;
	vq->free_head = free_head;
	vq->num_free = num_free;
	vq->avail_idx = avail_idx;
	return k ? (int)k : r;
}

int split_drv_add_burst(struct vhu_drv_vq *vq, const struct vhu_drv_buf *b, unsigned n)
{
	return vq->f.in_order ? drv_add_each(vq, b, n, true, add_one) : add_free_list_run(vq, b, n);
}

bool split_drv_kick_prepare(struct vhu_drv_vq *vq)
{
	uint16_t old_idx = vq->kick_old, new_idx = vq->avail_idx;
	uint32_t added = vq->added;

	if (added == 0)
		return false;
	/* the caller published avail->idx; §2.7.13.4.1: idx before we read
	 * the device's suppression */
	full_barrier();
	vq->kick_old = new_idx;
	vq->added = 0;
	if (vq->f.event_idx) {
		/* more than 2^16 - 1 adds since the last kick cannot be
		 * compared in 16 bits: kick */
		if (added > 0xffff)
			return true;
		return vhu_vring_need_event(ld16(split_avail_event(vq->split.used, vq->num)),
					    new_idx, old_idx);
	}
	return !(ld16(&vq->split.used->flags) & VHU_VRING_USED_F_NO_NOTIFY);
}

static void free_chain(struct vhu_drv_vq *vq, uint16_t head)
{
	struct vhu_drv_slot *s = &vq->slot[head];

	if (!vq->f.in_order) {
		vq->next[s->last] = vq->free_head;
		vq->free_head = head;
	}
	vq->num_free += s->ndesc;
	s->token = NULL;
}

/* The used window: how many entries the device has published beyond
 * last_used, read from used->idx only when the shadow has fewer than want
 * (§2.7.8: never more than the queue size). */
static int used_window(struct vhu_drv_vq *vq, unsigned want)
{
	uint16_t ready = (uint16_t)(vq->shadow_used - vq->last_used);

	if (ready < want) {
		uint16_t u = ld16_acq(&vq->split.used->idx);
		if ((uint16_t)(u - vq->last_used) > vq->num)
			return broken(vq, -EDOM);
		vq->shadow_used = u;
		ready = (uint16_t)(u - vq->last_used);
	}
	return ready;
}

/* IN_ORDER (§2.7.9): the next buffer, one the window says is there; an
 * entry may stand for a batch ending with its id, the buffers before it
 * fully used. */
static int get_in_order_one(struct vhu_drv_vq *vq, void **token, uint32_t *len)
{
	uint16_t mask = vq->num - 1, head;
	uint32_t l;

	if (!vq->batch) {
		struct vhu_vring_used_elem *u = &vq->split.used->ring[vq->last_used & mask];
		uint32_t id = ld32(&u->id);
		if (id >= vq->num)
			return broken(vq, -ERANGE);
		vq->batch_last = (uint16_t)id;
		vq->batch_len = ld32(&u->len);
		vq->batch = true;
	}
	head = vq->next_done;
	if (!vq->slot[head].token)
		return broken(vq, -ENOENT);
	if (head == vq->batch_last) {
		l = vq->batch_len;
		vq->batch = false;
	} else {
		l = vq->slot[head].in_len;  /* skipped: fully used */
	}
	vq->next_done = (uint16_t)((head + vq->slot[head].ndesc) & mask);
	/* §2.7.8.2: a device claiming more than the writable part is lying */
	if (l > vq->slot[head].in_len)
		return broken(vq, -EOVERFLOW);
	*token = vq->slot[head].token;
	*len = l;
	free_chain(vq, head);
	vq->last_used++;
	return 1;
}

static inline __attribute__((always_inline)) int get_in_order_run(struct vhu_drv_vq *vq,
	void **tokens, uint32_t *lens, unsigned n)
{
	int ready = used_window(vq, n);

	if (ready < 0)
		return ready;
	if (n > (unsigned)ready)
		n = (unsigned)ready;
	for (unsigned k = 0; k < n; k++) {
		int r = get_in_order_one(vq, &tokens[k], &lens[k]);
		if (r < 0)
			return k ? (int)k : r;
	}
	return (int)n;
}

/* The burst without IN_ORDER, the ring state in locals. */
static inline __attribute__((always_inline)) int get_free_list_run(struct vhu_drv_vq *vq, void **tokens, uint32_t *lens, unsigned n)
{
	const uint16_t num = vq->num, mask = num - 1;
	const struct vhu_vring_used_elem *ring = vq->split.used->ring;
	uint16_t *next = vq->next;
	struct vhu_drv_slot *slots = vq->slot;
	uint16_t last = vq->last_used, free_head = vq->free_head, num_free = vq->num_free;
	int ready = used_window(vq, n);
	unsigned k;
	int r = 0;

	if (ready < 0)
		return ready;
	if (n > (unsigned)ready)
		n = (unsigned)ready;
	for (k = 0; k < n; k++) {
		const struct vhu_vring_used_elem *u = &ring[last & mask];
		uint32_t id = ld32(&u->id), l = ld32(&u->len);
		struct vhu_drv_slot *s;
		if ((r = drv_used_slot(vq, slots, num, id, l, &s)) < 0)
			break;
		tokens[k] = s->token;
		lens[k] = l;
		next[s->last] = free_head;
		free_head = (uint16_t)id;
		num_free += s->ndesc;
		s->token = NULL;
		last++;
	}
	vq->last_used = last;
	vq->free_head = free_head;
	vq->num_free = num_free;
	return k ? (int)k : r;
}

int split_drv_get_burst(struct vhu_drv_vq *vq, void **tokens, uint32_t *lens, unsigned n)
{
	return vq->f.in_order ? get_in_order_run(vq, tokens, lens, n) : get_free_list_run(vq, tokens, lens, n);
}

bool split_drv_has_used(struct vhu_drv_vq *vq)
{
	return vq->last_used != vq->shadow_used ||
	       ld16_acq(&vq->split.used->idx) != vq->last_used;
}

void split_drv_set_cb(struct vhu_drv_vq *vq, bool enable)
{
	vq->cb_enabled = enable;
	if (vq->f.event_idx) {
		/* §2.7.10: the device ignores NO_INTERRUPT; used_event at our
		 * next entry asks for a notification, a stale one suppresses */
		if (enable)
			st16(split_used_event(vq->split.avail, vq->num), vq->last_used);
		return;
	}
	st16(&vq->split.avail->flags, enable ? 0 : VHU_VRING_AVAIL_F_NO_INTERRUPT);
}

/* One buffer (vhu_drv_vq_add, vhu_drv_vq_get): the bursts compiled for n = 1 */
int split_drv_add_one(struct vhu_drv_vq *vq, const struct vhu_drv_buf *b)
{
	return vq->f.in_order ? drv_add_each(vq, b, 1, true, add_one) : add_free_list_run(vq, b, 1);
}

int split_drv_get_one(struct vhu_drv_vq *vq, void **token, uint32_t *len)
{
	return vq->f.in_order ? get_in_order_run(vq, token, len, 1) : get_free_list_run(vq, token, len, 1);
}

/*
 * A device that restarted without an inflight region resumes a split ring
 * from the used index (QEMU's restore): it takes the avail entries from
 * there again. With out-of-order completion some of those heads were used
 * already, and the driver may have reused them for newer buffers offered
 * further on, which would then be taken twice. The driver knows what is
 * outstanding: its heads in flight, less those in used entries it has not
 * read yet and those added but not yet published. Exactly that many avail
 * entries follow the used index; they are rewritten to hold these heads, in
 * the order the ring still shows them. Only while no device runs the ring.
 */
int split_drv_reoffer(struct vhu_drv_vq *vq)
{
	const uint16_t num = vq->num, mask = num - 1;
	uint16_t used = ld16_acq(&vq->split.used->idx), pub = vq->published_avail;
	uint16_t want = (uint16_t)(pub - used), done_ahead = (uint16_t)(used - vq->last_used);
	uint8_t *out = calloc(num, 1);   /* 1: a head to offer again, 2: placed */
	unsigned n = 0;

	if (!out)
		return -ENOMEM;
	if (want > num || done_ahead > num) {
		free(out);
		return vq->broken = -EDOM;
	}
	for (uint16_t h = 0; h < num; h++)
		out[h] = vq->slot[h].token != NULL;
	/* used, not yet read by us: the device is done with them */
	for (uint16_t k = 0; k < done_ahead; k++) {
		uint32_t id = ld32(&vq->split.used->ring[(uint16_t)(vq->last_used + k) & mask].id);
		if (id >= num) {
			free(out);
			return vq->broken = -ERANGE;
		}
		out[id] = 0;
	}
	/* added, not yet published: their entries are right already */
	for (uint16_t p = pub; p != vq->avail_idx; p++)
		out[ld16(&vq->split.avail->ring[p & mask])] = 0;
	uint16_t *heads = calloc(num, sizeof(*heads));
	if (!heads) {
		free(out);
		return -ENOMEM;
	}
	for (uint16_t k = 0; k < want; k++) {
		uint16_t h = ld16(&vq->split.avail->ring[(uint16_t)(used + k) & mask]);
		if (h < num && out[h] == 1) {
			out[h] = 2;
			heads[n++] = h;
		}
	}
	for (uint16_t h = 0; h < num; h++)
		if (out[h] == 1 && n < num)
			heads[n++] = h;
	int r = n == want ? (int)n : -EPROTO;   /* the device's used ring disagrees with us */
	for (unsigned k = 0; r >= 0 && k < n; k++)
		st16(&vq->split.avail->ring[(uint16_t)(used + k) & mask], heads[k]);
	free(heads);
	free(out);
	return r;
}
