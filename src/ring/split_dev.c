/* SPDX-License-Identifier: MIT */
/* Split virtqueue, device side (VIRTIO §2.7). */
#include "inflight_internal.h"

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
	dev_log_ring(vq, false, 4 + 8u * vq->num, 2);
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

/* The avail window: how many buffers the driver has made available beyond
 * last (§2.7.6: never more than the queue size). With nothing there and
 * kicks wanted under EVENT_IDX, arms avail_event and looks again. */
static int avail_window(struct vhu_dev_vq *vq, uint16_t last, unsigned want)
{
	uint16_t avail_idx = vq->shadow_avail;

	if ((uint16_t)(avail_idx - last) >= want)
		return (uint16_t)(avail_idx - last);
	avail_idx = ld16_acq(&vq->split.avail->idx);
	if (avail_idx == last && vq->notify_enabled && vq->f.event_idx)
		avail_idx = arm_avail_event(vq, avail_idx);
	if ((uint16_t)(avail_idx - last) > vq->num)
		return broken(vq, -EDOM);
	vq->shadow_avail = avail_idx;
	return (uint16_t)(avail_idx - last);
}

/* Map the chain at head into *m, by the fast path or the full walker.
 * Returns 0 or a buffer error (the chain is still taken); a malformed
 * chain's code comes back in *ring_err. Out of line: the burst's loop for
 * one-descriptor chains keeps its registers. */
static __attribute__((noinline)) int map_chain(struct vhu_dev_vq *vq, uint16_t head, struct chain_map *m, int *ring_err)
{
	uint16_t ndesc, unused_id;
	int buf_err = 0;

	if (chain_map_fast(vq, head, false, m, 0, &ndesc, &unused_id))
		return 0;
	chain_map_start(m, m->iov, m->max);
	*ring_err = walk(vq, head, m, &buf_err);
	return buf_err;
}

int split_dev_map_head(struct vhu_dev_vq *vq, uint16_t head, struct chain_map *m, int *ring_err)
{
	return map_chain(vq, head, m, ring_err);
}

/*
 * The run of one-descriptor chains at the front of the avail window, up to
 * limit: each head checked, its descriptor read once and its buffer inside
 * a translation window, with nothing else written but the iovec, the
 * element and the record. Stops at the first chain that is anything else,
 * which the caller takes through the full path (reading it afresh, which
 * alone decides). Returns how many were taken.
 */
static inline __attribute__((always_inline)) unsigned take_simple_run(const struct vhu_vring_desc *desc,
	const uint16_t *ring, struct vhu_dev_chain *chains, uint16_t num, uint16_t last,
	const struct vhu_xlate_window *win, struct vhu_vq_elem *e, unsigned limit, struct iovec *iov,
	bool own, struct vhu_dev_inflight *track)
{
	const uint16_t mask = num - 1;
	unsigned k;

	for (k = 0; k < limit; k++) {
		uint16_t pos = (uint16_t)(last + k);
		uint16_t head = ld16(&ring[pos & mask]);
		if (head >= num || chains[head].ndesc)
			break;
		const struct vhu_vring_desc *d = &desc[head];
		if (!take_one_desc(win, ld64(&d->addr), ld32(&d->len), ld16(&d->flags),
				   own ? e[k].iov : iov + k, &e[k]))
			break;
		e[k].id = head;
		chains[head] = (struct vhu_dev_chain){ .in_len = e[k].in_len, .ndesc = 1, .pos = pos };
		if (track)
			ifl_split_take(track, head);
	}
	return k;
}

/* own: each chain into its element's own iovecs (iov is NULL); track: the
 * inflight region is kept (vq->ifl). Template parameters, so each loop is
 * compiled for its case and an untracked queue pays nothing for it. */
static inline __attribute__((always_inline)) int pop_run(struct vhu_dev_vq *vq,
	struct vhu_vq_elem *elems, unsigned n, struct iovec *iov, unsigned iov_len, unsigned iov_max,
	bool own, bool track)
{
	struct vhu_dev_inflight *ifl = track ? vq->ifl : NULL;
	/* everything the loop reads of the queue, in locals: the stores to
	 * iovecs and elements could alias it for the compiler */
	const uint16_t num = vq->num, mask = num - 1;
	const struct vhu_vring_desc *desc = vq->split.desc;
	const uint16_t *ring = vq->split.avail->ring;
	struct vhu_dev_chain *chains = vq->chain;
	struct vhu_xlate_window win[2] = { vq->xl.win[0], vq->xl.win[1] };
	uint16_t last = vq->last_avail;
	uint32_t inflight = vq->inflight;
	unsigned taken = 0;
	int ret = 0;

	int ready = avail_window(vq, last, n);
	if (ready <= 0)
		return ready;
	if ((unsigned)ready < n)
		n = (unsigned)ready;
	while (taken < n) {
		unsigned k = take_simple_run(desc, ring, chains, num, last, win, elems + taken,
					     simple_limit(n - taken, inflight, num, own, !taken, iov_len, iov_max),
					     iov, own, ifl);
		taken += k;
		last = (uint16_t)(last + k);
		inflight += k;
		if (!own) {
			iov += k;
			iov_len -= k;
		}
		if (taken == n)
			break;
		/* a chain is started only with all its iovecs' room */
		if (!own && taken && iov_len < iov_max)
			break;
		/* Buffers in flight are the driver's too: more than num at
		 * once means it re-offered a head we still hold. */
		if (inflight >= num) {
			ret = broken(vq, -EDOM);
			break;
		}
		uint16_t head = ld16(&ring[last & mask]);
		if (head >= num) {
			ret = broken(vq, -ERANGE);
			break;
		}
		if (chains[head].ndesc) {
			ret = broken(vq, -EEXIST);
			break;
		}
		struct vhu_vq_elem *e = &elems[taken];
		/* into the shared array, or into the element's own */
		struct iovec *ciov = own ? e->iov : iov;
		unsigned room = !own && iov_len < iov_max ? iov_len : iov_max;
		struct chain_map m;
		int ring_err = 0;
		chain_map_start(&m, ciov, room);
		vq->xl.iotlb_missing = 0;
		int buf_err = map_chain(vq, head, &m, &ring_err);
		win[0] = vq->xl.win[0];   /* a miss moved them */
		win[1] = vq->xl.win[1];
		if (ring_err < 0) {
			ret = broken(vq, ring_err);
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
		e->id = head;
		chains[head] = (struct vhu_dev_chain){ .in_len = e->in_len, .ndesc = 1, .pos = last };
		if (track)
			ifl_split_take(ifl, head);
		taken++;
		last++;
		inflight++;
		if (!own) {
			iov += used_iov;
			iov_len -= used_iov;
		}
		if (buf_err) {
			ret = buf_err;
			break;
		}
	}
	vq->last_avail = last;
	vq->inflight = inflight;
	return burst_result(vq, ret, taken);
}

/* One chain (vhu_dev_vq_pop): the burst's loop compiled for n = 1 */
int split_dev_pop_one(struct vhu_dev_vq *vq, struct vhu_vq_elem *e, struct iovec *iov, unsigned max)
{
	return vq->ifl ? pop_run(vq, e, 1, iov, max, max, false, true)
		       : pop_run(vq, e, 1, iov, max, max, false, false);
}

int split_dev_pop_burst(struct vhu_dev_vq *vq, struct vhu_vq_elem *elems, unsigned n,
			struct iovec *iov, unsigned iov_len, unsigned iov_max)
{
	if (vq->ifl)
		return iov ? pop_run(vq, elems, n, iov, iov_len, iov_max, false, true)
			   : pop_run(vq, elems, n, NULL, 0, iov_max, true, true);
	return iov ? pop_run(vq, elems, n, iov, iov_len, iov_max, false, false)
		   : pop_run(vq, elems, n, NULL, 0, iov_max, true, false);
}

static void write_used(struct vhu_dev_vq *vq, uint16_t id, uint32_t len)
{
	uint16_t slot = vq->used_idx & (vq->num - 1);
	struct vhu_vring_used_elem *u = &vq->split.used->ring[slot];

	st32(&u->id, id);
	st32(&u->len, len);
	dev_log_ring(vq, false, 4 + 8u * slot, 8);
}

/* IN_ORDER (§2.7.9): one entry, in the slot of the batch's first buffer,
 * with the id of its last; used->idx moves by the batch size. */
static void write_batch(struct vhu_dev_vq *vq)
{
	write_used(vq, vq->batch.last_id, vq->batch.last_len);
	vq->used_idx += vq->batch.count;
	vq->batch.count = 0;
}

/* IN_ORDER: buffers batched into one used entry while fully written. */
static unsigned push_in_order(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n)
{
	struct vhu_dev_chain *chains = vq->chain;
	unsigned k;

	for (k = 0; k < n; k++) {
		uint32_t id = u[k].id, len = u[k].len;
		if (!dev_used_ok(chains, vq->num, id, len))
			break;
		struct vhu_dev_chain *c = &chains[id];
		if (c->pos != (uint16_t)(vq->used_idx + vq->batch.count))
			break;
		/* Only a fully written buffer may be skipped (§2.7.9). */
		if (vq->batch.count && !vq->batch.last_full)
			write_batch(vq);
		vq->batch.count++;
		vq->batch.last_id = (uint16_t)id;
		vq->batch.last_len = len;
		vq->batch.last_full = len == c->in_len;
		c->ndesc = 0;
		if (vq->ifl)
			ifl_split_push(vq->ifl, (uint16_t)id);
	}
	vq->inflight -= k;
	return k;
}

/* Without IN_ORDER: one used entry each, the ring state in locals. */
static unsigned push_each(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n)
{
	const uint16_t num = vq->num, mask = num - 1;
	struct vhu_vring_used_elem *ring = vq->split.used->ring;
	struct vhu_dev_chain *chains = vq->chain;
	struct vhu_dev_inflight *ifl = vq->ifl;
	uint16_t used_idx = vq->used_idx;
	unsigned k;

	for (k = 0; k < n; k++) {
		uint32_t id = u[k].id, len = u[k].len;
		if (!dev_used_ok(chains, num, id, len))
			break;
		chains[id].ndesc = 0;
		if (ifl)
			ifl_split_push(ifl, (uint16_t)id);
		struct vhu_vring_used_elem *e = &ring[used_idx & mask];
		st32(&e->id, id);
		st32(&e->len, len);
		dev_log_ring(vq, false, 4 + 8u * (used_idx & mask), 8);
		used_idx++;
	}
	vq->used_idx = used_idx;
	vq->inflight -= k;
	return k;
}

static unsigned push_some(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n)
{
	return vq->f.in_order ? push_in_order(vq, u, n) : push_each(vq, u, n);
}

int split_dev_push_burst(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n)
{
	struct vhu_dev_inflight *f = vq->ifl;
	unsigned done = 0;

	if (!f)
		return (int)push_some(vq, u, n);
	/* a batch the region lists is at most a ring of heads: a driver
	 * re-offering heads before seeing them used could make it longer */
	while (done < n) {
		unsigned room = vq->num - f->batch_n;
		if (!room) {
			split_dev_flush(vq);
			continue;
		}
		unsigned want = n - done < room ? n - done : room;
		unsigned k = push_some(vq, u + done, want);
		done += k;
		if (k < want)
			break;
	}
	return (int)done;
}

/* One used buffer (vhu_dev_vq_push): without IN_ORDER's batching or an
 * inflight region to keep, its entry is written at once, with no loop to
 * set up for it. 1 if taken, 0 if the id or length is refused. Out of
 * line: inlined into vhu_dev_vq_push it costs the packed ring's push
 * registers (4 instructions more per buffer, bench/ring-insns). */
__attribute__((noinline)) int split_dev_push_one(struct vhu_dev_vq *vq, uint32_t id, uint32_t len)
{
	if (vq->f.in_order || vq->ifl) {
		struct vhu_vq_used u = { id, len };
		return split_dev_push_burst(vq, &u, 1);
	}
	if (!dev_used_ok(vq->chain, vq->num, id, len))
		return 0;
	vq->chain[id].ndesc = 0;
	write_used(vq, (uint16_t)id, len);
	vq->used_idx++;
	vq->inflight--;
	return 1;
}

void split_dev_flush(struct vhu_dev_vq *vq)
{
	if (vq->batch.count)
		write_batch(vq);
	bool publish = vq->used_idx != vq->published_used;
	if (__builtin_expect(vq->log != NULL, 0)) {
		if (publish)
			dev_log_ring(vq, false, 2, 2);   /* used->idx */
		if (!dev_log_flush(vq))
			return;
	}
	if (publish) {
		/* §2.7.8.2: len and id before idx */
		st16_rel(&vq->split.used->idx, vq->used_idx);
		vq->published_used = vq->used_idx;
		if (vq->ifl)
			ifl_split_published(vq->ifl, vq->used_idx);
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
			dev_log_ring(vq, false, 4 + 8u * vq->num, 2);
			vq->avail_event = vq->last_avail;
			vq->avail_event_valid = true;
		}
		return;
	}
	st16(&vq->split.used->flags, enable ? 0 : VHU_VRING_USED_F_NO_NOTIFY);
	dev_log_ring(vq, false, 0, 2);
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
