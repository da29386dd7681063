/* SPDX-License-Identifier: MIT */
/*
 * Inflight I/O tracking (vhost-user "Inflight I/O tracking"): the region's
 * upkeep for the packed ring, the settling of split batches, and at start
 * the recovery of a region a dead process left: checked entry by entry, its
 * last batch settled or rolled back as the spec says, the ring position
 * rebuilt, and the requests it holds queued to be popped again in the order
 * they were first taken.
 */
#include <stdlib.h>

#include "inflight_internal.h"

size_t vhu_inflight_queue_size(uint16_t num, bool packed)
{
	size_t sz = packed ? sizeof(struct vhu_inflight_packed_queue) +
			     (size_t)num * sizeof(struct vhu_inflight_packed_desc)
			   : sizeof(struct vhu_inflight_split_queue) +
			     (size_t)num * sizeof(struct vhu_inflight_split_desc);
	return num ? (sz + 63) & ~(size_t)63 : 0;
}

/* ---- running ---------------------------------------------------------------- */

void ifl_split_published(struct vhu_dev_inflight *f, uint16_t used_idx)
{
	struct vhu_inflight_split_queue *q = f->r.split;

	for (unsigned k = 0; k < f->batch_n; k++) {
		IFL_ST(&q->desc[f->batch[k]].inflight, 0);
		IFL_STEP();
	}
	IFL_ST_REL(&q->used_idx, used_idx);
	IFL_STEP();
	f->batch_n = 0;
}

/*
 * The used position and its old_* copy, with both wrap counters, as one
 * aligned 64-bit store (bytes 16..23 of the header). Stored field by field,
 * as the spec lists them, a crash between old_used_idx and its wrap counter
 * would leave a triple that names neither the settled state nor the batch,
 * and the recovery would test the wrong slot. The padding bytes stay 0.
 */
typedef uint64_t __attribute__((may_alias)) u64_alias;
_Static_assert(offsetof(struct vhu_inflight_packed_queue, used_idx) == 16 &&
	       offsetof(struct vhu_inflight_packed_queue, padding) == 22, "the used word");

static void store_used_word(struct vhu_inflight_packed_queue *q, uint16_t used, bool wrap,
			    uint16_t old, bool old_wrap)
{
	union {
		uint64_t v;
		struct { uint16_t used, old; uint8_t wrap, old_wrap, pad[2]; } s;
	} w = { .s = { used, old, wrap, old_wrap, { 0, 0 } } };
	__atomic_store_n((u64_alias *)&q->used_idx, w.v, __ATOMIC_RELEASE);
}

void ifl_packed_take(struct vhu_dev_inflight *f, const struct vhu_vring_packed_desc *ring,
		     uint16_t pos, uint16_t ndesc, uint16_t id)
{
	struct vhu_inflight_packed_queue *q = f->r.pk;
	uint16_t head = f->free_head, e = head;

	for (uint16_t j = 0;; j++) {
		const struct vhu_vring_packed_desc *d = &ring[pos];
		struct vhu_inflight_packed_desc *s = &q->desc[e];
		IFL_ST(&s->addr, ld64(&d->addr));
		IFL_ST(&s->len, ld32(&d->len));
		IFL_ST(&s->id, ld16(&d->id));
		IFL_ST(&s->flags, ld16(&d->flags));
		IFL_STEP();
		if (j + 1 == ndesc)
			break;
		e = f->next[e];
		if (++pos == f->num)
			pos = 0;
	}
	struct vhu_inflight_packed_desc *h = &q->desc[head];
	IFL_ST(&h->num, ndesc);
	IFL_ST(&h->last, e);
	IFL_ST(&h->counter, f->counter++);
	IFL_STEP();
	IFL_ST_REL(&h->inflight, 1);
	IFL_STEP();
	f->free_head = f->next[e];
	IFL_ST_REL(&q->free_head, f->free_head);
	IFL_STEP();
	IFL_ST_REL(&q->old_free_head, f->free_head);
	IFL_STEP();
	f->head_of[id] = head;
	f->last_of[id] = e;
}

void ifl_packed_push(struct vhu_dev_inflight *f, uint16_t id, uint16_t ndesc)
{
	struct vhu_inflight_packed_queue *q = f->r.pk;
	uint16_t head = f->head_of[id], last = f->last_of[id];

	if (!f->open) {
		f->open = true;
		f->old_used_idx = f->used_idx;
		f->old_used_wrap = f->used_wrap;
	}
	packed_advance(&f->used_idx, &f->used_wrap, ndesc, f->num);
	store_used_word(q, f->used_idx, f->used_wrap, f->old_used_idx, f->old_used_wrap);
	IFL_STEP();
	f->next[last] = f->free_head;
	IFL_ST(&q->desc[last].next, f->free_head);
	IFL_STEP();
	f->free_head = head;
	IFL_ST_REL(&q->free_head, head);
	IFL_STEP();
	f->batch[f->batch_n++] = head;
}

void ifl_packed_published(struct vhu_dev_inflight *f)
{
	struct vhu_inflight_packed_queue *q = f->r.pk;

	if (!f->open)
		return;
	for (unsigned k = 0; k < f->batch_n; k++) {
		IFL_ST(&q->desc[f->batch[k]].inflight, 0);
		IFL_STEP();
	}
	/* old_free_head first: until the used word says settled, the
	 * recovery decides by the batch's first slot, and commits */
	IFL_ST_REL(&q->old_free_head, f->free_head);
	IFL_STEP();
	store_used_word(q, f->used_idx, f->used_wrap, f->used_idx, f->used_wrap);
	IFL_STEP();
	f->batch_n = 0;
	f->open = false;
}

/* ---- start: a fresh region, or the recovery of one in use -------------------- */

void ifl_free(struct vhu_dev_inflight *f)
{
	free(f);
}

/* One allocation for every private array, sized for num. */
static struct vhu_dev_inflight *ifl_alloc(uint16_t num, bool packed)
{
	size_t n16 = (size_t)num * (packed ? 6 : 3);
	size_t sz = sizeof(struct vhu_dev_inflight) + (packed ? num * sizeof(struct desc_copy) : 0) +
		    n16 * sizeof(uint16_t);
	struct vhu_dev_inflight *f = calloc(1, sz);
	if (!f)
		return NULL;
	unsigned char *p = (unsigned char *)(f + 1);
	if (packed) {
		f->copy = (struct desc_copy *)p;
		p += num * sizeof(struct desc_copy);
	}
	uint16_t *a = (uint16_t *)p;
	f->resub = a;
	f->resub_pos = a + num;
	f->batch = a + 2 * num;
	if (packed) {
		f->next = a + 3 * num;
		f->head_of = a + 4 * num;
		f->last_of = a + 5 * num;
	}
	f->num = num;
	return f;
}

/* Order of the recovered requests: by counter; equal counters cannot come
 * from a sane region and are refused by the caller. */
struct order {
	uint64_t counter;
	uint16_t entry;
};
static int by_counter(const void *a, const void *b)
{
	const struct order *x = a, *y = b;
	return x->counter < y->counter ? -1 : x->counter > y->counter;
}

static int sort_checked(struct order *o, unsigned n, uint64_t *next_counter)
{
	qsort(o, n, sizeof(*o), by_counter);
	for (unsigned k = 1; k < n; k++)
		if (o[k].counter == o[k - 1].counter)
			return -EBADMSG;
	*next_counter = n ? o[n - 1].counter + 1 : 0;
	return 0;
}

static void split_init(struct vhu_dev_vq *vq, struct vhu_inflight_split_queue *q)
{
	memset(q->desc, 0, vq->num * sizeof(q->desc[0]));
	q->features = 0;
	q->desc_num = vq->num;
	q->last_batch_head = 0;
	q->used_idx = vq->published_used;
	IFL_ST_REL(&q->version, VHU_INFLIGHT_VERSION);
}

/* "When reconnecting" for the split ring: settle the last batch, then the
 * heads still flagged are the requests to resubmit. The ring position is
 * the used index plus their count: they and the used ones are all taken. */
static int split_recover(struct vhu_dev_vq *vq, struct vhu_dev_inflight *f, struct order *o)
{
	struct vhu_inflight_split_queue *q = f->r.split;
	const uint16_t num = vq->num;
	uint16_t ring_used = ld16(&vq->split.used->idx);
	uint16_t batch = (uint16_t)(ring_used - q->used_idx);
	unsigned n = 0;

	if (batch > num)
		return -EBADMSG;
	for (uint16_t k = 0, i = q->last_batch_head; k < batch; k++) {
		if (i >= num)
			return -EBADMSG;
		q->desc[i].inflight = 0;
		i = q->desc[i].next;
	}
	q->used_idx = ring_used;
	for (uint16_t i = 0; i < num; i++) {
		uint8_t flag = q->desc[i].inflight;
		if (flag > 1)
			return -EBADMSG;
		if (flag)
			o[n++] = (struct order){ q->desc[i].counter, i };
	}
	int r = sort_checked(o, n, &f->counter);
	if (r < 0)
		return r;
	for (unsigned k = 0; k < n; k++) {
		f->resub[k] = o[k].entry;
		f->resub_pos[k] = (uint16_t)(ring_used + k);
		/* held: a driver offering it again is caught as for any head */
		vq->chain[o[k].entry] = (struct vhu_dev_chain){ .ndesc = 1 };
	}
	f->resub_n = n;
	vq->used_idx = vq->published_used = ring_used;
	vq->last_avail = vq->shadow_avail = (uint16_t)(ring_used + n);
	vq->inflight = n;
	return (int)n;
}

static void packed_init(struct vhu_dev_vq *vq, struct vhu_dev_inflight *f,
			struct vhu_inflight_packed_queue *q)
{
	memset(q->desc, 0, vq->num * sizeof(q->desc[0]));
	for (uint16_t i = 0; i < vq->num; i++)
		q->desc[i].next = f->next[i] = (uint16_t)(i + 1);   /* num ends the list */
	q->features = 0;
	q->desc_num = vq->num;
	q->free_head = q->old_free_head = f->free_head = 0;
	q->used_idx = q->old_used_idx = f->used_idx = vq->used_idx;
	q->used_wrap_counter = q->old_used_wrap_counter = f->used_wrap = vq->used_wrap;
	IFL_ST_REL(&q->version, VHU_INFLIGHT_VERSION);
}

/*
 * A batch rolled back leaves used descriptors in the ring: the engine flags
 * every one but the batch's first as it writes them, the first last, so
 * the driver sees the batch at once. The first never got its flag, but
 * the others did, and the new process returns its requests in another
 * order and with other lengths, so the driver, walking from one new used
 * descriptor to the next, could land on a stale one. Each slot the batch
 * covered after its first is set back to the driver's own "available in
 * this lap" form; they belong to requests taken and in flight, which
 * neither side reads again before the new used descriptors cover them.
 */
static void scrub_batch(struct vhu_dev_vq *vq, uint16_t pos, bool wrap, uint32_t slots)
{
	for (uint32_t k = 1; k < slots; k++) {
		packed_advance(&pos, &wrap, 1, vq->num);
		uint16_t flags = ld16(&vq->pk.desc[pos].flags);
		flags &= (uint16_t)~(VHU_VRING_PACKED_DESC_F_AVAIL | VHU_VRING_PACKED_DESC_F_USED);
		flags |= wrap ? VHU_VRING_PACKED_DESC_F_AVAIL : VHU_VRING_PACKED_DESC_F_USED;
		st16_rel(&vq->pk.desc[pos].flags, flags);
		dev_log_ring(vq, true, 16u * pos + 14, 2);
	}
}

/* Slots from (from, from_wrap) forward to (to, to_wrap): less than a ring
 * and a lap, or more than num if the pair cannot be. */
static uint32_t slots_between(uint16_t num, uint16_t from, bool from_wrap, uint16_t to, bool to_wrap)
{
	if (from_wrap == to_wrap)
		return to >= from ? (uint32_t)(to - from) : UINT32_MAX;
	return to <= from ? (uint32_t)num - from + to : UINT32_MAX;
}

/* The last batch: committed if the driver could see it (the first used
 * descriptor at old_used_idx is flagged used in that lap), else rolled back
 * with its stale descriptors scrubbed; then the current state is the old
 * one either way (the spec's roll-back). */
static int packed_settle(struct vhu_dev_vq *vq, struct vhu_inflight_packed_queue *q)
{
	const uint16_t num = vq->num;

	if (q->free_head > num || q->old_free_head > num || q->used_idx >= num ||
	    q->old_used_idx >= num || q->used_wrap_counter > 1 || q->old_used_wrap_counter > 1)
		return -EBADMSG;
	if (q->used_idx != q->old_used_idx || q->used_wrap_counter != q->old_used_wrap_counter) {
		uint32_t slots = slots_between(num, q->old_used_idx, q->old_used_wrap_counter,
					       q->used_idx, q->used_wrap_counter);
		if (slots > num)
			return -EBADMSG;
		uint16_t flags = ld16_acq(&vq->pk.desc[q->old_used_idx].flags);
		if (packed_is_used(flags, q->old_used_wrap_counter)) {
			q->old_free_head = q->free_head;
			q->old_used_idx = q->used_idx;
			q->old_used_wrap_counter = q->used_wrap_counter;
		} else {
			scrub_batch(vq, q->old_used_idx, q->old_used_wrap_counter, slots);
		}
	}
	/* Roll back whatever was not settled: a batch the driver cannot
	 * have seen, or a take whose free list move was not committed
	 * (its head is then in the free list again and cleared below, and
	 * the ring position leaves it to be taken again). */
	q->free_head = q->old_free_head;
	q->used_idx = q->old_used_idx;
	q->used_wrap_counter = q->old_used_wrap_counter;
	return 0;
}

enum { ENTRY_UNSEEN, ENTRY_FREE, ENTRY_HELD };

/* One recovered chain from its head entry: num entries linked by next,
 * ending at last, each seen once; NEXT on all but the last; INDIRECT only
 * alone. Its descriptors are copied out (the region is not read again). */
static int packed_chain(struct vhu_dev_inflight *f, const struct vhu_inflight_packed_queue *q,
			uint16_t head, uint8_t *state, uint16_t *id_out, uint16_t *ndesc_out)
{
	const uint16_t num = f->num;
	uint16_t n = q->desc[head].num, e = head;

	if (n == 0 || n > num)
		return -EBADMSG;
	for (uint16_t j = 0;; j++) {
		if (e >= num || state[e] != ENTRY_UNSEEN)
			return -EBADMSG;
		state[e] = ENTRY_HELD;
		const struct vhu_inflight_packed_desc *s = &q->desc[e];
		f->copy[e] = (struct desc_copy){ s->addr, s->len, s->flags, s->id };
		bool more = s->flags & VHU_VRING_DESC_F_NEXT;
		if ((s->flags & VHU_VRING_DESC_F_INDIRECT) && n > 1)
			return -EBADMSG;
		if (j + 1 == n) {
			if (more || e != q->desc[head].last || s->id >= num)
				return -EBADMSG;
			*id_out = s->id;
			break;
		}
		if (!more)
			return -EBADMSG;
		f->next[e] = s->next;
		e = s->next;
	}
	f->last_of[*id_out] = e;
	f->head_of[*id_out] = head;
	f->next[e] = num;   /* set again when it is used */
	*ndesc_out = n;
	return 0;
}

static int packed_recover(struct vhu_dev_vq *vq, struct vhu_dev_inflight *f, struct order *o)
{
	struct vhu_inflight_packed_queue *q = f->r.pk;
	const uint16_t num = vq->num;
	uint8_t *state = calloc(num, 1);
	unsigned nfree = 0, n = 0, slots = 0;
	int r = -EBADMSG;

	if (!state)
		return -ENOMEM;
	if ((r = packed_settle(vq, q)) < 0)
		goto out;
	r = -EBADMSG;
	/* the free list, which ends at num; its entries are not in flight */
	for (uint16_t e = q->free_head; e != num; e = q->desc[e].next) {
		if (e > num || state[e] != ENTRY_UNSEEN)
			goto out;
		state[e] = ENTRY_FREE;
		q->desc[e].inflight = 0;
		f->next[e] = q->desc[e].next;
		nfree++;
	}
	for (uint16_t i = 0; i < num; i++) {
		uint8_t flag = q->desc[i].inflight;
		if (flag > 1)
			goto out;
		if (flag)
			o[n++] = (struct order){ q->desc[i].counter, i };
	}
	if ((r = sort_checked(o, n, &f->counter)) < 0)
		goto out;
	uint16_t pos = q->used_idx;
	bool wrap = q->used_wrap_counter;
	for (unsigned k = 0; k < n; k++) {
		uint16_t id, ndesc;
		if ((r = packed_chain(f, q, o[k].entry, state, &id, &ndesc)) < 0)
			goto out;
		if (vq->chain[id].ndesc) {
			r = -EBADMSG;   /* two requests with one buffer id */
			goto out;
		}
		vq->chain[id] = (struct vhu_dev_chain){ .ndesc = ndesc };
		f->resub[k] = id;
		f->resub_pos[k] = pos;
		packed_advance(&pos, &wrap, ndesc, num);
		slots += ndesc;
	}
	/* every entry free or in exactly one request: none leaked */
	r = -EBADMSG;
	if (nfree + slots != num)
		goto out;
	f->free_head = q->free_head;
	f->used_idx = vq->used_idx = q->used_idx;
	f->used_wrap = vq->used_wrap = q->used_wrap_counter;
	vq->last_avail = pos;
	vq->avail_wrap = wrap;
	vq->inflight = slots;
	f->resub_n = n;
	r = (int)n;
out:
	free(state);
	if (r < 0)
		memset(vq->chain, 0, num * sizeof(*vq->chain));
	return r;
}

int vhu_dev_vq_inflight_attach(struct vhu_dev_vq *vq, void *region, size_t len)
{
	if (!vq->chain)
		return -ESHUTDOWN;
	if (vq->ifl || !region || ((uintptr_t)region & 7))
		return -EINVAL;
	if (len < vhu_inflight_queue_size(vq->num, vq->packed))
		return -EINVAL;
	struct vhu_dev_inflight *f = ifl_alloc(vq->num, vq->packed);
	struct order *o = NULL;
	int r;

	if (!f)
		return -ENOMEM;
	f->r.split = region;
	/* the three header fields in front are the same in both layouts */
	struct vhu_inflight_split_queue *h = region;
	if (h->version == 0) {
		if (vq->packed)
			packed_init(vq, f, f->r.pk);
		else
			split_init(vq, f->r.split);
		r = 0;
	} else if (h->version != VHU_INFLIGHT_VERSION || h->features) {
		r = -EPROTONOSUPPORT;
	} else if (h->desc_num != vq->num) {
		r = -EINVAL;
	} else if (!(o = calloc(vq->num, sizeof(*o)))) {
		r = -ENOMEM;
	} else {
		r = vq->packed ? packed_recover(vq, f, o) : split_recover(vq, f, o);
	}
	free(o);
	if (r < 0) {
		free(f);
		vq->broken = r;
		return r;
	}
	vq->ifl = f;
	return r;
}

unsigned vhu_dev_vq_resubmit_pending(const struct vhu_dev_vq *vq)
{
	return vq->ifl ? vq->ifl->resub_n - vq->ifl->resub_next : 0;
}

/* ---- resubmission ----------------------------------------------------------- */

/* The recovered chain k into *m: split from the descriptor table, which the
 * driver has not touched while the head was in flight; packed from the
 * copies (its ring slots may hold used descriptors by now). */
static int map_resubmitted(struct vhu_dev_vq *vq, struct vhu_dev_inflight *f, unsigned k,
			   struct chain_map *m, int *ring_err)
{
	if (!vq->packed)
		return split_dev_map_head(vq, f->resub[k], m, ring_err);
	uint16_t id = f->resub[k];
	return packed_dev_map_copies(vq, f->copy, f->next, f->head_of[id], vq->chain[id].ndesc, m, ring_err);
}

int ifl_pop_resubmitted(struct vhu_dev_vq *vq, struct vhu_vq_elem *elems, unsigned n,
			struct iovec *iov, unsigned iov_len, unsigned iov_max)
{
	struct vhu_dev_inflight *f = vq->ifl;
	bool own = !iov;
	unsigned taken = 0;
	int ret = 0;

	while (taken < n && f->resub_next < f->resub_n) {
		if (!own && taken && iov_len < iov_max)
			break;
		struct vhu_vq_elem *e = &elems[taken];
		unsigned room = !own && iov_len < iov_max ? iov_len : iov_max;
		unsigned k = f->resub_next;
		uint16_t id = f->resub[k];
		struct chain_map m;
		int ring_err = 0;
		chain_map_start(&m, own ? e->iov : iov, room);
		int buf_err = map_resubmitted(vq, f, k, &m, &ring_err);
		if (ring_err < 0) {
			ret = vq->broken = ring_err;
			break;
		}
		if (buf_err && taken)
			break;
		chain_map_finish(&m, e);
		e->id = id;
		vq->chain[id].in_len = e->in_len;
		vq->chain[id].pos = f->resub_pos[k];
		f->resub_next++;
		taken++;
		if (!own) {
			iov += m.n;
			iov_len -= m.n;
		}
		if (buf_err) {
			ret = buf_err;
			break;
		}
	}
	return burst_result(vq, ret, taken);
}
