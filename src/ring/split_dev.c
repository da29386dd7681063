/* SPDX-License-Identifier: MIT */
/* Split virtqueue, device side (VIRTIO §2.7). */
#include "vq_internal.h"

static int broken(struct vhu_dev_vq *vq, int err)
{
	vq->broken = err;
	return err;
}

/*
 * With EVENT_IDX, tell the driver the next index we want a kick for, then
 * recheck the ring: a buffer added between our empty check and the store
 * would otherwise get no kick (§2.7.10). Returns the fresh avail index.
 * Skips the store and the barrier when avail_event already says so: the
 * recheck that followed that earlier store covers every later add.
 */
static uint16_t arm_avail_event(struct vhu_dev_vq *vq, uint16_t avail_idx)
{
	if (vq->avail_event_valid && vq->avail_event == vq->last_avail)
		return avail_idx;
	st16(split_avail_event(vq->split.used, vq->num), vq->last_avail);
	vq->avail_event = vq->last_avail;
	vq->avail_event_valid = true;
	full_barrier();
	return ld16_acq(&vq->split.avail->idx);
}

/* Walk the chain at head into m. Structural errors (returned as is, the
 * caller breaks the queue) take priority over buffer errors (returned in
 * *buf_err), so the walk goes on after a bad buffer to check the shape. */
static int walk(struct vhu_dev_vq *vq, uint16_t head, struct chain_map *m, int *buf_err)
{
	const struct vhu_vring_desc *table = vq->split.desc;
	struct ind_table ind;
	bool in_ind = false;
	uint32_t table_num = vq->num, count = 0, i = head;

	for (;;) {
		struct desc_copy d;

		if (in_ind) {
			int r = ind_read(vq, &ind, i, false, &d);
			if (r < 0)
				return *buf_err = r, 0;
		} else {
			read_split_desc(&table[i], &d);
		}
		/* A chain longer than its table must revisit an entry
		 * (§2.7.5.2: loops are forbidden). */
		if (++count > table_num)
			return -ELOOP;
		if (d.flags & VHU_VRING_DESC_F_INDIRECT) {
			if (in_ind)
				return -EMLINK;      /* §2.7.5.3.1 */
			if (!vq->f.indirect)
				return -EOPNOTSUPP;
			if (d.flags & VHU_VRING_DESC_F_NEXT)
				return -EPROTO;      /* §2.7.5.3.1 */
			int r = ind_open(vq, d.addr, d.len, &ind);
			if (r == -EFAULT)
				return *buf_err = r, 0;
			if (r < 0)
				return r;
			/* §2.7.5.3.2: zero or more direct descriptors may precede
			 * the indirect one; the table is walked from entry 0. */
			in_ind = true;
			table_num = ind.count;
			count = 0;
			i = 0;
			continue;
		}
		if (!*buf_err)
			*buf_err = chain_map_add(vq, m, d.addr, d.len,
						 d.flags & VHU_VRING_DESC_F_WRITE);
		if (!(d.flags & VHU_VRING_DESC_F_NEXT))
			return 0;
		i = d.next_or_id;
		if (i >= table_num)
			return -ERANGE;
	}
}

int split_dev_pop(struct vhu_dev_vq *vq, struct vhu_vq_elem *e, struct iovec *iov, unsigned max)
{
	uint16_t avail_idx = vq->shadow_avail;

	if (avail_idx == vq->last_avail) {
		avail_idx = ld16_acq(&vq->split.avail->idx);
		if (avail_idx == vq->last_avail && vq->notify_enabled && vq->f.event_idx)
			avail_idx = arm_avail_event(vq, avail_idx);
		/* §2.7.6: the driver cannot have more than num buffers ready */
		if ((uint16_t)(avail_idx - vq->last_avail) > vq->num)
			return broken(vq, -EDOM);
		vq->shadow_avail = avail_idx;
		if (avail_idx == vq->last_avail)
			return 0;
	}
	/* Buffers in flight are the driver's too: more than num at once means
	 * it re-offered a head we still hold. */
	if (vq->inflight >= vq->num)
		return broken(vq, -EDOM);

	uint16_t head = ld16(&vq->split.avail->ring[vq->last_avail & (vq->num - 1)]);
	if (head >= vq->num)
		return broken(vq, -ERANGE);

	uint16_t ndesc, unused_id;
	int buf_err = 0;
	if (!chain_map_fast(vq, head, false, iov, max, e, 0, &ndesc, &unused_id)) {
		struct chain_map m;
		chain_map_start(&m, iov, max);
		int r = walk(vq, head, &m, &buf_err);
		if (r < 0)
			return broken(vq, r);
		chain_map_finish(&m, e);
	}
	e->id = head;
	e->ndesc = 1;
	e->pos = vq->last_avail;
	e->wrap = false;
	vq->last_avail++;
	vq->inflight++;
	return buf_err ? buf_err : 1;
}

static void write_used(struct vhu_dev_vq *vq, uint16_t id, uint32_t len)
{
	struct vhu_vring_used_elem *u = &vq->split.used->ring[vq->used_idx & (vq->num - 1)];

	st32(&u->id, id);
	st32(&u->len, len);
}

/* IN_ORDER (§2.7.9): one entry, in the slot of the batch's first buffer,
 * with the id of its last; used->idx moves by the batch size. */
static void write_batch(struct vhu_dev_vq *vq)
{
	write_used(vq, vq->batch.last_id, vq->batch.last_len);
	vq->used_idx += vq->batch.count;
	vq->batch.count = 0;
}

int split_dev_push(struct vhu_dev_vq *vq, const struct vhu_vq_elem *e, uint32_t len)
{
	if (len > e->in_len || vq->inflight == 0 || e->id >= vq->num)
		return -EINVAL;
	if (vq->f.in_order) {
		if (e->pos != (uint16_t)(vq->used_idx + vq->batch.count))
			return -EINVAL;
		/* Only a fully written buffer may be skipped (§2.7.9). */
		if (vq->batch.count && !vq->batch.last_full)
			write_batch(vq);
		vq->batch.count++;
		vq->batch.last_id = e->id;
		vq->batch.last_len = len;
		vq->batch.last_full = len == e->in_len;
	} else {
		write_used(vq, e->id, len);
		vq->used_idx++;
	}
	vq->inflight--;
	return 0;
}

void split_dev_flush(struct vhu_dev_vq *vq)
{
	if (vq->batch.count)
		write_batch(vq);
	if (vq->used_idx != vq->published_used) {
		/* §2.7.8.2: len and id before idx */
		st16_rel(&vq->split.used->idx, vq->used_idx);
		vq->published_used = vq->used_idx;
	}
}

bool split_dev_should_notify(struct vhu_dev_vq *vq)
{
	uint16_t new_idx = vq->published_used, old_idx = vq->signalled_used;
	bool valid = vq->signalled_valid;

	if (valid && new_idx == old_idx)
		return false;
	/* used->idx must be visible before we read the driver's wishes,
	 * or a driver re-enabling interrupts in between is missed. */
	full_barrier();
	vq->signalled_used = new_idx;
	vq->signalled_valid = true;
	if (vq->f.notify_on_empty && ld16(&vq->split.avail->idx) == vq->last_avail)
		return true;
	if (vq->f.event_idx) {
		if (!valid)
			return true;
		return vhu_vring_need_event(ld16(split_used_event(vq->split.avail, vq->num)),
					    new_idx, old_idx);
	}
	return !(ld16(&vq->split.avail->flags) & VHU_VRING_AVAIL_F_NO_INTERRUPT);
}

void split_dev_set_notify(struct vhu_dev_vq *vq, bool enable)
{
	vq->notify_enabled = enable;
	if (vq->f.event_idx) {
		/* §2.7.10: the driver ignores NO_NOTIFY; a stale avail_event
		 * behind the ring suppresses, a current one asks for a kick. */
		if (enable) {
			st16(split_avail_event(vq->split.used, vq->num), vq->last_avail);
			vq->avail_event = vq->last_avail;
			vq->avail_event_valid = true;
		}
		return;
	}
	st16(&vq->split.used->flags, enable ? 0 : VHU_VRING_USED_F_NO_NOTIFY);
}

bool split_dev_has_avail(struct vhu_dev_vq *vq)
{
	return vq->shadow_avail != vq->last_avail ||
	       ld16_acq(&vq->split.avail->idx) != vq->last_avail;
}

int split_dev_notification_data(struct vhu_dev_vq *vq, uint16_t next)
{
	uint16_t ahead = next - vq->last_avail;
	uint16_t ring = ld16_acq(&vq->split.avail->idx) - vq->last_avail;

	/* More than a ring ahead of what we took cannot be told from a stale
	 * value that we already passed: accept it as stale. */
	if (ahead > vq->num)
		return 0;
	/* The driver published its index before notifying, so the ring must
	 * show at least what the value claims. */
	if (ahead > ring || ahead > vq->num - vq->inflight)
		return -EBADE;
	return ahead;
}
