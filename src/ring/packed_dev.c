/* SPDX-License-Identifier: MIT */
/* Packed virtqueue, device side (VIRTIO §2.8). */
#include "inflight_internal.h"

static int broken(struct vhu_dev_vq *vq, int err)
{
	vq->broken = err;
	return err;
}

static uint16_t head_flags(struct vhu_dev_vq *vq)
{
	return ld16_acq(&vq->pk.desc[vq->last_avail].flags);
}

/* Device event suppression in DESC mode: ask for a kick when the driver
 * makes our next slot available, then recheck (§2.8.10, §2.8.21.3). */
static uint16_t arm_event(struct vhu_dev_vq *vq, uint16_t flags)
{
	uint16_t want = vq->last_avail | (uint16_t)vq->avail_wrap << VHU_RING_EVENT_WRAP_SHIFT;

	if (vq->avail_event_valid && vq->pk_event == want)
		return flags;
	st16(&vq->pk.device->off_wrap, want);
	st16_rel(&vq->pk.device->flags, VHU_RING_EVENT_FLAGS_DESC);
	dev_log_ring(vq, false, 0, 4);
	vq->pk_event = want;
	vq->avail_event_valid = true;
	full_barrier();
	return head_flags(vq);
}

/* An indirect descriptor stands alone in a packed ring (§2.8.7 driver
 * requirements); its table holds plain descriptors. */
static int map_indirect(struct vhu_dev_vq *vq, const struct desc_copy *d,
			struct chain_map *m, int *buf_err)
{
	struct ind_table ind;
	int r = ind_open(vq, d->addr, d->len, &ind);

	if (r == -EFAULT)
		return *buf_err = r, 0;
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < ind.count; i++) {
		struct desc_copy c;
		r = ind_read(vq, &ind, i, true, &c);
		if (r < 0)
			return *buf_err = r, 0;
		/* §2.8.7 says the device ignores flags other than WRITE in a
		 * table. We reject INDIRECT there all the same: the driver
		 * broke a MUST NOT, and treating its nested table as a data
		 * buffer would let the device touch memory the driver never
		 * offered as data. Matches the split rule (§2.7.5.3.1). */
		if (c.flags & VHU_VRING_DESC_F_INDIRECT)
			return -EMLINK;
		if (!*buf_err)
			*buf_err = chain_map_add(vq, m, c.addr, c.len,
						 c.flags & VHU_VRING_DESC_F_WRITE);
	}
	return 0;
}

/* The full walker for the chain at pos (flags: its head's, loaded with
 * acquire). Returns 0 or a buffer error with *m, *ndesc and *id set, or a
 * malformed chain's code in *ring_err. */
static int walk(struct vhu_dev_vq *vq, uint16_t pos, uint16_t flags, struct chain_map *m,
		uint16_t *ndesc, uint16_t *id, int *ring_err)
{
	bool wrap = false;   /* only the offset matters here */
	uint16_t n = 0;
	int buf_err = 0, r;

	for (;;) {
		struct desc_copy d;
		read_packed_desc(&vq->pk.desc[pos], &d);
		d.flags = n == 0 ? flags : ld16(&vq->pk.desc[pos].flags);
		n++;
		packed_advance(&pos, &wrap, 1, vq->num);
		if (d.flags & VHU_VRING_DESC_F_INDIRECT) {
			if (n > 1 || (d.flags & VHU_VRING_DESC_F_NEXT))
				return *ring_err = -EPROTO, 0;
			if (!vq->f.indirect)
				return *ring_err = -EOPNOTSUPP, 0;
			r = map_indirect(vq, &d, m, &buf_err);
			if (r < 0)
				return *ring_err = r, 0;
			*id = d.next_or_id;
			break;
		}
		if (!buf_err)
			buf_err = chain_map_add(vq, m, d.addr, d.len,
						d.flags & VHU_VRING_DESC_F_WRITE);
		if (!(d.flags & VHU_VRING_DESC_F_NEXT)) {
			*id = d.next_or_id;   /* §2.8.13: the id is in the last descriptor */
			break;
		}
		if (n >= vq->num)
			return *ring_err = -E2BIG, 0;  /* §2.8.19: no list longer than the queue */
	}
	*ndesc = n;
	return buf_err;
}

/* A recovered chain from its copied descriptors (inflight.c): the rules
 * of walk() on entries linked by next instead of ring slots. */
int packed_dev_map_copies(struct vhu_dev_vq *vq, const struct desc_copy *copy, const uint16_t *next,
			  uint16_t head, unsigned n, struct chain_map *m, int *ring_err)
{
	int buf_err = 0;
	uint16_t e = head;

	for (unsigned j = 0; j < n; j++, e = next[e]) {
		const struct desc_copy *d = &copy[e];
		if (d->flags & VHU_VRING_DESC_F_INDIRECT) {
			if (n > 1 || (d->flags & VHU_VRING_DESC_F_NEXT))
				return *ring_err = -EPROTO, 0;
			if (!vq->f.indirect)
				return *ring_err = -EOPNOTSUPP, 0;
			int r = map_indirect(vq, d, m, &buf_err);
			if (r < 0)
				*ring_err = r;
			return buf_err;
		}
		if (!buf_err)
			buf_err = chain_map_add(vq, m, d->addr, d->len, d->flags & VHU_VRING_DESC_F_WRITE);
	}
	return buf_err;
}

/*
 * The run of one-descriptor chains from pos, up to limit (see split_dev.c's
 * take_simple_run): available, id in range and not held, buffer in a
 * translation window. Returns how many were taken; *pos and *wrap follow.
 */
static inline __attribute__((always_inline)) unsigned take_simple_run(const struct vhu_vring_packed_desc *desc,
	struct vhu_dev_chain *chains, uint16_t num, uint16_t *posp, bool *wrapp,
	const struct vhu_xlate_window *win, struct vhu_vq_elem *e, unsigned limit, struct iovec *iov,
	bool own, struct vhu_dev_inflight *track)
{
	uint16_t pos = *posp;
	bool wrap = *wrapp;
	unsigned k;

	for (k = 0; k < limit; k++) {
		const struct vhu_vring_packed_desc *d = &desc[pos];
		uint16_t flags = ld16_acq(&d->flags);
		if (!packed_is_avail(flags, wrap))
			break;
		uint16_t id = ld16(&d->id);
		if (id >= num || chains[id].ndesc ||
		    !take_one_desc(win, ld64(&d->addr), ld32(&d->len), flags, own ? e[k].iov : iov + k, &e[k]))
			break;
		e[k].id = id;
		chains[id] = (struct vhu_dev_chain){ .in_len = e[k].in_len, .ndesc = 1, .pos = pos };
		if (track)
			ifl_packed_take(track, desc, pos, 1, id);
		if (++pos == num) {
			pos = 0;
			wrap = !wrap;
		}
	}
	*posp = pos;
	*wrapp = wrap;
	return k;
}

/* The chain at pos by the fast walker or the full one (as walk()). Out of
 * line: the burst's loop for one-descriptor chains keeps its registers. */
static __attribute__((noinline)) int map_chain(struct vhu_dev_vq *vq, uint16_t pos, uint16_t flags,
	struct chain_map *m, uint16_t *ndesc, uint16_t *id, int *ring_err)
{
	*id = 0;
	if (chain_map_fast(vq, pos, true, m, flags, ndesc, id))
		return 0;
	chain_map_start(m, m->iov, m->max);
	return walk(vq, pos, flags, m, ndesc, id, ring_err);
}

/* own: each chain into its element's own iovecs (iov is NULL); track: the
 * inflight region is kept. Template parameters, so each loop is compiled
 * for its case. */
static inline __attribute__((always_inline)) int pop_run(struct vhu_dev_vq *vq,
	struct vhu_vq_elem *elems, unsigned n, struct iovec *iov, unsigned iov_len, unsigned iov_max,
	bool own, bool track)
{
	struct vhu_dev_inflight *ifl = track ? vq->ifl : NULL;

	/* The region's free list serves takes and uses alike, and its old_*
	 * state is one snapshot: settle used buffers before taking more, so
	 * a roll-back never undoes a take. */
	if (track && ifl->open)
		packed_dev_flush(vq);
	/* the queue's fields the loop reads, in locals (see split_dev.c) */
	const uint16_t num = vq->num;
	const struct vhu_vring_packed_desc *desc = vq->pk.desc;
	struct vhu_dev_chain *chains = vq->chain;
	struct vhu_xlate_window win[2] = { vq->xl.win[0], vq->xl.win[1] };
	uint16_t pos = vq->last_avail;
	bool wrap = vq->avail_wrap;
	uint32_t inflight = vq->inflight;
	unsigned taken = 0;
	int ret = 0;

	while (taken < n) {
		unsigned k = take_simple_run(desc, chains, num, &pos, &wrap, win, elems + taken,
					     simple_limit(n - taken, inflight, num, own, !taken, iov_len, iov_max),
					     iov, own, ifl);
		taken += k;
		inflight += k;
		if (!own) {
			iov += k;
			iov_len -= k;
		}
		if (taken == n)
			break;
		if (!own && taken && iov_len < iov_max)
			break;
		const struct vhu_vring_packed_desc *d = &desc[pos];
		uint16_t flags = ld16_acq(&d->flags);
		if (!packed_is_avail(flags, wrap)) {
			if (taken || !vq->notify_enabled || !vq->f.event_idx)
				break;
			flags = arm_event(vq, flags);
			if (!packed_is_avail(flags, wrap))
				break;
		}
		struct vhu_vq_elem *e = &elems[taken];
		/* into the shared array, or into the element's own */
		struct iovec *ciov = own ? e->iov : iov;
		unsigned room = !own && iov_len < iov_max ? iov_len : iov_max;
		uint16_t id = 0, ndesc = 1;
		struct chain_map m;
		int ring_err = 0;
		chain_map_start(&m, ciov, room);
		vq->xl.iotlb_missing = 0;
		int buf_err = map_chain(vq, pos, flags, &m, &ndesc, &id, &ring_err);
		win[0] = vq->xl.win[0];   /* a miss moved them */
		win[1] = vq->xl.win[1];
		if (ring_err < 0) {
			ret = broken(vq, ring_err);
			break;
		}
		if (id >= num) {
			ret = broken(vq, -ERANGE);
			break;
		}
		/* The driver cannot offer more slots than the ring has: slots we
		 * hold showing "available" again means it rewrote them. */
		if (inflight + ndesc > num) {
			ret = broken(vq, -EDOM);
			break;
		}
		if (chains[id].ndesc) {
			ret = broken(vq, -EEXIST);
			break;
		}
		if (buf_err == -EFAULT && vq->xl.iotlb_missing) {
			/* the IOTLB lacks a mapping: the chain stays in the ring,
			 * untouched, until the front-end sends it */
			ret = taken ? 0 : -EAGAIN;
			break;
		}
		if (buf_err && taken)
			break;   /* first in the next burst, with its code */
		chain_map_finish(&m, e);
		unsigned used_iov = m.n;
		e->id = id;
		chains[id] = (struct vhu_dev_chain){ .in_len = e->in_len, .ndesc = ndesc, .pos = pos };
		if (track)
			ifl_packed_take(ifl, desc, pos, ndesc, id);
		taken++;
		packed_advance(&pos, &wrap, ndesc, num);
		inflight += ndesc;
		if (!own) {
			iov += used_iov;
			iov_len -= used_iov;
		}
		if (buf_err) {
			ret = buf_err;
			break;
		}
	}
	vq->last_avail = pos;
	vq->avail_wrap = wrap;
	vq->inflight = inflight;
	return burst_result(vq, ret, taken);
}

/* One chain (vhu_dev_vq_pop): the burst's loop compiled for n = 1 */
int packed_dev_pop_one(struct vhu_dev_vq *vq, struct vhu_vq_elem *e, struct iovec *iov, unsigned max)
{
	return vq->ifl ? pop_run(vq, e, 1, iov, max, max, false, true)
		       : pop_run(vq, e, 1, iov, max, max, false, false);
}

int packed_dev_pop_burst(struct vhu_dev_vq *vq, struct vhu_vq_elem *elems, unsigned n,
			 struct iovec *iov, unsigned iov_len, unsigned iov_max)
{
	if (vq->ifl)
		return iov ? pop_run(vq, elems, n, iov, iov_len, iov_max, false, true)
			   : pop_run(vq, elems, n, NULL, 0, iov_max, true, true);
	return iov ? pop_run(vq, elems, n, iov, iov_len, iov_max, false, false)
		   : pop_run(vq, elems, n, NULL, 0, iov_max, true, false);
}

/* Write one used descriptor at the used offset and skip the chain's slots.
 * The first descriptor of a flush keeps its flags back until the flush, so
 * the driver sees the whole batch at once (§2.8.16 multi-buffer rule). */
static void write_used(struct vhu_dev_vq *vq, uint16_t id, uint32_t len, bool write,
		       uint16_t ndesc)
{
	struct vhu_vring_packed_desc *d = &vq->pk.desc[vq->used_idx];
	uint16_t flags = vq->used_wrap ? VHU_VRING_PACKED_DESC_F_AVAIL | VHU_VRING_PACKED_DESC_F_USED : 0;

	/* §2.8.6: WRITE in a used descriptor says len is meaningful */
	if (write)
		flags |= VHU_VRING_DESC_F_WRITE;
	st16(&d->id, id);
	st32(&d->len, len);
	dev_log_ring(vq, true, 16u * vq->used_idx, 16);   /* flags too, now or at the flush */
	if (!vq->pending) {
		vq->pending = true;
		vq->pending_pos = vq->used_idx;
		vq->pending_flags = flags;
	} else {
		st16_rel(&d->flags, flags);
	}
	packed_advance(&vq->used_idx, &vq->used_wrap, ndesc, vq->num);
	vq->used_slots += ndesc;
}

static void write_batch(struct vhu_dev_vq *vq)
{
	/* §2.8.9: one used descriptor with the last buffer's id; the skipped
	 * buffers count as fully used */
	write_used(vq, vq->batch.last_id, vq->batch.last_len, vq->batch.last_write, vq->batch.ndesc);
	vq->batch.count = 0;
	vq->batch.ndesc = 0;
}

/* IN_ORDER: buffers batched into one used descriptor while fully written. */
static unsigned push_in_order(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n)
{
	struct vhu_dev_chain *chains = vq->chain;
	unsigned k;

	for (k = 0; k < n; k++) {
		uint32_t id = u[k].id, len = u[k].len;
		if (!dev_used_ok(chains, vq->num, id, len))
			break;
		struct vhu_dev_chain *c = &chains[id];
		uint16_t expect = vq->used_idx;
		bool w = vq->used_wrap;
		packed_advance(&expect, &w, vq->batch.ndesc, vq->num);
		if (c->pos != expect)
			break;
		if (vq->batch.count && !vq->batch.last_full)
			write_batch(vq);
		vq->batch.count++;
		vq->batch.ndesc += c->ndesc;
		vq->batch.last_id = (uint16_t)id;
		vq->batch.last_len = len;
		vq->batch.last_full = len == c->in_len;
		vq->batch.last_write = c->in_len > 0;
		if (vq->ifl)
			ifl_packed_push(vq->ifl, (uint16_t)id, c->ndesc);
		vq->inflight -= c->ndesc;
		c->ndesc = 0;
	}
	return k;
}

/* Without IN_ORDER: one used descriptor each, the ring state in locals;
 * the first one's flags wait for the flush, as write_used() does. */
static unsigned push_each(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n)
{
	const uint16_t num = vq->num;
	struct vhu_vring_packed_desc *desc = vq->pk.desc;
	struct vhu_dev_chain *chains = vq->chain;
	struct vhu_dev_inflight *ifl = vq->ifl;
	uint16_t used_idx = vq->used_idx;
	bool used_wrap = vq->used_wrap, pending = vq->pending;
	uint32_t slots = 0;
	unsigned k;

	for (k = 0; k < n; k++) {
		uint32_t id = u[k].id, len = u[k].len;
		if (!dev_used_ok(chains, num, id, len))
			break;
		struct vhu_dev_chain *c = &chains[id];
		if (ifl)
			ifl_packed_push(ifl, (uint16_t)id, c->ndesc);
		struct vhu_vring_packed_desc *d = &desc[used_idx];
		uint16_t flags = used_wrap ? VHU_VRING_PACKED_DESC_F_AVAIL | VHU_VRING_PACKED_DESC_F_USED : 0;
		/* §2.8.6: WRITE in a used descriptor says len is meaningful */
		if (c->in_len)
			flags |= VHU_VRING_DESC_F_WRITE;
		st16(&d->id, (uint16_t)id);
		st32(&d->len, len);
		dev_log_ring(vq, true, 16u * used_idx, 16);
		if (!pending) {
			pending = true;
			vq->pending_pos = used_idx;
			vq->pending_flags = flags;
		} else {
			st16_rel(&d->flags, flags);
		}
		packed_advance(&used_idx, &used_wrap, c->ndesc, num);
		slots += c->ndesc;
		c->ndesc = 0;
	}
	vq->used_idx = used_idx;
	vq->used_wrap = used_wrap;
	vq->pending = pending;
	vq->used_slots += slots;
	vq->inflight -= slots;
	return k;
}

int packed_dev_push_burst(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n)
{
	return (int)(vq->f.in_order ? push_in_order(vq, u, n) : push_each(vq, u, n));
}

void packed_dev_flush(struct vhu_dev_vq *vq)
{
	if (vq->batch.count)
		write_batch(vq);
	if (__builtin_expect(vq->log != NULL, 0) && !dev_log_flush(vq))
		return;
	if (vq->pending) {
		st16_rel(&vq->pk.desc[vq->pending_pos].flags, vq->pending_flags);
		vq->pending = false;
	}
	if (vq->ifl)
		ifl_packed_published(vq->ifl);
}

bool packed_dev_should_notify(struct vhu_dev_vq *vq)
{
	uint32_t n = vq->used_slots - vq->signalled_slots;
	uint16_t old_off = vq->signalled_pos;
	bool old_wrap = vq->signalled_wrap, valid = vq->signalled_valid;

	if (valid && n == 0)
		return false;
	/* our flag stores before the driver's event structure (§2.8.21.3) */
	full_barrier();
	vq->signalled_slots = vq->used_slots;
	vq->signalled_pos = vq->used_idx;
	vq->signalled_wrap = vq->used_wrap;
	vq->signalled_valid = true;

	uint16_t ev = ld16_acq(&vq->pk.driver->flags) & 3;
	if (vq->f.notify_on_empty && !packed_is_avail(head_flags(vq), vq->avail_wrap))
		return true;
	if (ev == VHU_RING_EVENT_FLAGS_DISABLE)
		return false;
	if (ev == VHU_RING_EVENT_FLAGS_DESC && vq->f.event_idx) {
		if (!valid)
			return true;
		return vhu_vring_packed_need_event(vq->num, ld16(&vq->pk.driver->off_wrap),
						   old_off, old_wrap, n);
	}
	/* ENABLE, DESC without EVENT_IDX, or the reserved value 3: notify */
	return true;
}

void packed_dev_set_notify(struct vhu_dev_vq *vq, bool enable)
{
	vq->notify_enabled = enable;
	vq->avail_event_valid = false;
	if (!enable) {
		st16(&vq->pk.device->flags, VHU_RING_EVENT_FLAGS_DISABLE);
	} else if (vq->f.event_idx) {
		vq->pk_event = vq->last_avail | (uint16_t)vq->avail_wrap << VHU_RING_EVENT_WRAP_SHIFT;
		st16(&vq->pk.device->off_wrap, vq->pk_event);
		st16_rel(&vq->pk.device->flags, VHU_RING_EVENT_FLAGS_DESC);
		vq->avail_event_valid = true;
	} else {
		st16_rel(&vq->pk.device->flags, VHU_RING_EVENT_FLAGS_ENABLE);
	}
	dev_log_ring(vq, false, 0, 4);
}

bool packed_dev_has_avail(struct vhu_dev_vq *vq)
{
	return packed_is_avail(head_flags(vq), vq->avail_wrap);
}

int packed_dev_notification_data(struct vhu_dev_vq *vq, uint16_t off, bool wrap)
{
	uint32_t dist;

	if (off >= vq->num)
		return -EBADE;
	/* distance from our next slot to the driver's, modulo two laps */
	if (wrap == vq->avail_wrap)
		dist = off >= vq->last_avail ? (uint32_t)off - vq->last_avail
					     : 2u * vq->num - vq->last_avail + off;
	else
		dist = (uint32_t)vq->num - vq->last_avail + off;
	if (dist > vq->num)
		return 0;    /* behind us: a stale value, already served */
	if (dist > vq->num - vq->inflight)
		return -EBADE;
	/* The driver wrote its descriptors before notifying, so the slot just
	 * before the one it names must show available (in its own lap). */
	if (dist) {
		uint16_t last = vq->last_avail;
		bool w = vq->avail_wrap;
		packed_advance(&last, &w, (uint16_t)(dist - 1), vq->num);
		if (!packed_is_avail(ld16_acq(&vq->pk.desc[last].flags), w))
			return -EBADE;
	}
	return (int)dist;
}
