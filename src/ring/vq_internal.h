/* SPDX-License-Identifier: MIT */
/*
 * Internal helpers of the ring engine.
 *
 * Shared-memory access rules (see docs/ARCHITECTURE.md, "Memory ordering"):
 * every field the peer may write concurrently is read with one atomic load
 * into a local and never read again for the same decision, so a peer that
 * changes memory under us cannot make two checks see two values. The ring
 * layouts are fixed by the VIRTIO spec and cannot be declared _Atomic, so
 * we use the GCC/Clang __atomic builtins, which implement the C11 memory
 * model on plain objects. Fences use C11 atomic_thread_fence.
 */
#ifndef VHU_VQ_INTERNAL_H
#define VHU_VQ_INTERNAL_H

#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "vhu/dirty_log.h"
#include "vhu/virtio.h"
#include "vhu/vq.h"

static inline uint16_t ld16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}
/* Acquire: everything the peer wrote before its release store of this index
 * or flag (ring entries, descriptors, buffers) is visible after the load. */
static inline uint16_t ld16_acq(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}
static inline uint32_t ld32(const uint32_t *p)
{
	return le32toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}
static inline uint64_t ld64(const uint64_t *p)
{
	return le64toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}
static inline void st16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}
/* Release: our earlier writes (entries, descriptors, buffer data) become
 * visible no later than this index or flag. */
static inline void st16_rel(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELEASE);
}
static inline void st32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, htole32(v), __ATOMIC_RELAXED);
}
static inline void st64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, htole64(v), __ATOMIC_RELAXED);
}

/*
 * Full barrier between our store of an index/flag and our load of the
 * peer's suppression state (or of its index after we armed ours). Acquire
 * and release do not order a store before a later load; without this the
 * two sides can each miss the other's update and both go to sleep (the
 * missed-notification race of §2.7.7.2 / §2.7.10 / §2.8.21.3).
 */
static inline void full_barrier(void)
{
	atomic_thread_fence(memory_order_seq_cst);
}

/* A descriptor as read once from shared memory. The split and packed
 * layouts share addr/len at the same offsets; the last two 16-bit fields are
 * flags/next (split) or id/flags (packed). */
struct desc_copy {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next_or_id;
};

static inline void read_split_desc(const struct vhu_vring_desc *d, struct desc_copy *c)
{
	c->addr = ld64(&d->addr);
	c->len = ld32(&d->len);
	c->flags = ld16(&d->flags);
	c->next_or_id = ld16(&d->next);
}

/* Packed slot: flags were already loaded (with acquire) by the caller when
 * it checked availability, or are loaded here relaxed for later slots of a
 * chain, which the acquire on the head's flags already ordered. */
static inline void read_packed_desc(const struct vhu_vring_packed_desc *d, struct desc_copy *c)
{
	c->addr = ld64(&d->addr);
	c->len = ld32(&d->len);
	c->next_or_id = ld16(&d->id);
}

/* The engine's bookkeeping of a chain the device holds, by id: what push
 * needs to check and account for it, so the element the device keeps can
 * stay small. ndesc 0: the id is not in flight. */
struct vhu_dev_chain {
	uint32_t in_len;   /* the most a push may report written */
	uint16_t ndesc;    /* ring slots it took (packed), 1 (split) */
	uint16_t pos;      /* split: avail index; packed: ring offset of head */
};

/* A used pair the device returns is one the engine gave it: the id in range
 * and in flight, the length within what the chain can take. */
static inline bool dev_used_ok(const struct vhu_dev_chain *chains, uint16_t num, uint32_t id, uint32_t len)
{
	return id < num && chains[id].ndesc && len <= chains[id].in_len;
}

static inline __attribute__((always_inline)) void *dev_xlate(struct vhu_dev_vq *vq, uint64_t addr, uint64_t *len, bool write)
{
	return vhu_xlate(&vq->xl, addr, len, write ? VHU_ACCESS_WRITE : VHU_ACCESS_READ);
}

/* Dirty-page logging of a queue (dirty.c): the batch of marks since the
 * last flush, and per id the guest ranges of the writable buffers of the
 * chain the device holds, in order (only while buffers are logged). */
struct log_seg {
	uint64_t gpa, len;
};
struct log_rec {
	struct log_seg *seg;
	uint32_t n, cap;
};
struct vhu_dev_vq_log {
	struct vhu_dirty_cache cache;
	bool buffers, rings;
	bool nomem;                /* a record could not grow: -ENOMEM at the flush */
	uint64_t desc_gpa, device_gpa;
	struct log_rec *rec;       /* per id, with buffers */
	unsigned last_region;      /* where the last reverse lookup hit */
};

/* A store of the device into its ring: part desc (packed descriptors) or
 * device (split used ring, packed device area), at byte offset off. */
static inline __attribute__((always_inline)) void dev_log_ring(struct vhu_dev_vq *vq, bool desc, uint64_t off,
							       uint64_t len)
{
	struct vhu_dev_vq_log *l = vq->log;
	if (__builtin_expect(l != NULL, 0) && l->rings)
		vhu_dirty_cache_add(&l->cache, (desc ? l->desc_gpa : l->device_gpa) + off, len);
}
/* After a pop took n chains into elems (n < 0: the pop's code, elems[0]
 * taken if it is a buffer error): record their writable ranges. */
void dev_log_popped(struct vhu_dev_vq *vq, const struct vhu_vq_elem *elems, int n);
/* Before a push of u[0 .. n): mark what each reports written. */
void dev_log_pushed(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n);
/* Before a publishing store: the batch into the log. False if a write could
 * not be logged (outside the bitmap: the queue breaks with -EFBIG; a record
 * that could not grow: -ENOMEM): the caller then publishes nothing, since
 * what the driver is never told of was never acknowledged, while a write
 * acknowledged unlogged would be lost on the destination. */
bool dev_log_flush(struct vhu_dev_vq *vq);
void dev_log_free(struct vhu_dev_vq *vq);

/* Device-side mapping of one chain into iovecs (desc_map.c). */
struct chain_map {
	struct iovec *iov;
	unsigned max, n, out_num;
	uint64_t out_len, in_len;
	bool seen_write;
};
int chain_map_slow(struct vhu_dev_vq *vq, struct chain_map *m, uint64_t addr,
		   uint32_t len, bool write);

static inline void chain_map_start(struct chain_map *m, struct iovec *iov, unsigned max)
{
	m->iov = iov;
	m->max = max;
	m->n = m->out_num = 0;
	m->out_len = m->in_len = 0;
	m->seen_write = false;
}

/*
 * One descriptor's buffer, the common case only: device-readable before
 * writable, not empty, room for an iovec, and inside the translation
 * window. Returns false, having changed nothing, for anything else, which
 * the caller then leaves to the full rules of chain_map_slow().
 */
static inline __attribute__((always_inline)) bool chain_map_try(struct vhu_dev_vq *vq,
	struct chain_map *m, uint64_t addr, uint32_t len, uint16_t flags)
{
	bool write = flags & VHU_VRING_DESC_F_WRITE;

	/* §2.7.4.2 / §2.8.6: device-writable elements follow every readable one */
	if (__builtin_expect((flags & VHU_VRING_DESC_F_INDIRECT) || (!write && m->seen_write) ||
			     len == 0 || m->n == m->max ||
			     m->out_len + m->in_len + len > UINT32_MAX, 0))
		return false;
	uint64_t chunk = len;
	void *p = dev_xlate(vq, addr, &chunk, write);
	if (__builtin_expect(!p || chunk != len, 0))
		return false;
	m->iov[m->n].iov_base = p;
	m->iov[m->n].iov_len = len;
	m->n++;
	if (write) {
		m->seen_write = true;
		m->in_len += len;
	} else {
		m->out_len += len;
		m->out_num = m->n;
	}
	return true;
}

/* Add one descriptor's buffer: inline in the common case; a buffer
 * straddling regions and every error go to chain_map_slow(). */
static inline int chain_map_add(struct vhu_dev_vq *vq, struct chain_map *m, uint64_t addr,
				uint32_t len, bool write)
{
	if (__builtin_expect(addr + len >= addr, 1) &&
	    chain_map_try(vq, m, addr, len, write ? VHU_VRING_DESC_F_WRITE : 0))
		return 0;
	return chain_map_slow(vq, m, addr, len, write);
}

static inline void chain_map_finish(const struct chain_map *m, struct vhu_vq_elem *e)
{
	e->iov = m->iov;
	e->out_num = (uint16_t)m->out_num;
	e->in_num = (uint16_t)(m->n - m->out_num);
	e->out_len = (uint32_t)m->out_len;
	e->in_len = (uint32_t)m->in_len;
}

/*
 * Fast path for an indirect table (§2.7.5.3, §2.8.7) standing alone at the
 * head of a chain: contiguous and aligned in one translation window, every
 * entry a plain buffer. Same answer as the full walker or false.
 */
static inline __attribute__((always_inline)) bool table_map_fast(struct vhu_dev_vq *vq,
	struct chain_map *m, uint64_t addr, uint32_t len, bool packed)
{
	if (len == 0 || len % 16 || len / 16 > VHU_VQ_MAX_INDIRECT || addr + len < addr)
		return false;
	uint64_t chunk = len;
	const unsigned char *t = dev_xlate(vq, addr, &chunk, false);
	if (!t || chunk != len || ((uintptr_t)t & 7))
		return false;
	uint32_t count = len / 16, i = 0;
	for (uint32_t k = 0; k < count; k++) {
		struct desc_copy c;
		if (packed) {
			const struct vhu_vring_packed_desc *d = (const void *)(t + 16u * k);
			read_packed_desc(d, &c);
			/* a packed table ignores NEXT; INDIRECT in it is an error */
			c.flags = ld16(&d->flags) & (VHU_VRING_DESC_F_WRITE | VHU_VRING_DESC_F_INDIRECT);
			if (!chain_map_try(vq, m, c.addr, c.len, c.flags))
				return false;
			continue;
		}
		read_split_desc((const void *)(t + 16u * i), &c);
		if (!chain_map_try(vq, m, c.addr, c.len, c.flags))
			return false;
		if (!(c.flags & VHU_VRING_DESC_F_NEXT))
			return true;
		i = c.next_or_id;
		if (i >= count)
			return false;
	}
	return packed;
}

/*
 * Fast path for the common chains: direct descriptors, or one indirect
 * table alone, each buffer inside the translation window, nothing unusual.
 * Walks with everything in locals and returns true with *m filled, or false
 * as soon as anything is out of the ordinary; the caller then runs the full
 * walker from scratch, which alone decides errors. Both read the same
 * descriptors, so a driver rewriting them in between only changes which
 * path's answer counts, never memory safety. ring_desc: split table or
 * packed ring; packed descriptors are consecutive slots starting at head,
 * split ones follow next.
 */
static inline __attribute__((always_inline)) bool chain_map_fast(struct vhu_dev_vq *vq,
	uint16_t head, bool packed, struct chain_map *m, uint16_t first_flags,
	uint16_t *ndesc, uint16_t *id)
{
	uint32_t i = head;

	for (unsigned count = 0; count < vq->num; count++) {
		struct desc_copy d;
		if (packed) {
			read_packed_desc(&((const struct vhu_vring_packed_desc *)vq->pk.desc)[i], &d);
			d.flags = count ? ld16(&vq->pk.desc[i].flags) : first_flags;
		} else {
			read_split_desc(&vq->split.desc[i], &d);
		}
		if (count == 0 && (d.flags & VHU_VRING_DESC_F_INDIRECT)) {
			*ndesc = 1;
			*id = d.next_or_id;
			return !(d.flags & VHU_VRING_DESC_F_NEXT) && vq->f.indirect &&
			       table_map_fast(vq, m, d.addr, d.len, packed);
		}
		if (d.addr + d.len < d.addr || !chain_map_try(vq, m, d.addr, d.len, d.flags))
			return false;
		if (!(d.flags & VHU_VRING_DESC_F_NEXT)) {
			*ndesc = (uint16_t)(count + 1);
			*id = d.next_or_id;
			return true;
		}
		if (packed) {
			if (++i == vq->num)
				i = 0;
		} else {
			i = d.next_or_id;
			if (i >= vq->num)
				return false;
		}
	}
	return false;
}

/*
 * The commonest chain of all, one direct descriptor, with nothing in
 * memory but the iovec and the element: flags without NEXT or INDIRECT, a
 * length, and a buffer inside the translation window of its direction.
 * False, having written nothing, for anything else (the general path then
 * decides). win: the queue's translation windows, copied into locals by
 * the burst (stores to iovecs could otherwise alias them for the compiler).
 */
static inline __attribute__((always_inline)) bool take_one_desc(const struct vhu_xlate_window *win,
	uint64_t addr, uint32_t len, uint16_t flags, struct iovec *iov, struct vhu_vq_elem *e)
{
	if (flags & (VHU_VRING_DESC_F_NEXT | VHU_VRING_DESC_F_INDIRECT))
		return false;
	bool write = flags & VHU_VRING_DESC_F_WRITE;
	const struct vhu_xlate_window *w = &win[write];
	uint64_t off = addr - w->gpa;
	if (len == 0 || off >= w->len || len > w->len - off)
		return false;
	iov->iov_base = w->host + off;
	iov->iov_len = len;
	e->iov = iov;
	e->out_num = !write;
	e->in_num = write;
	e->out_len = write ? 0 : len;
	e->in_len = write ? len : 0;
	return true;
}

/*
 * How many one-descriptor chains a burst may take in a row from here
 * without a check per chain: no more than n, than the ring has room in
 * flight for (the next one then gets -EDOM from the full path), and, into a
 * shared iovec array of `left`, only while iov_max remain (every chain but
 * a burst's first; a one-descriptor chain uses one).
 */
static inline unsigned simple_limit(unsigned n, uint32_t inflight, uint16_t num, bool own,
				    bool first, unsigned left, unsigned iov_max)
{
	unsigned lim = inflight >= num ? 0 : n < num - inflight ? n : num - inflight;

	if (iov_max == 0)
		return 0;
	if (!own) {
		unsigned room = left >= iov_max ? left - iov_max + 1 : first && left;
		if (lim > room)
			lim = room;
	}
	return lim;
}

/* An indirect table opened for reading (desc_map.c). */
struct ind_table {
	const unsigned char *host;  /* contiguous and aligned, or NULL */
	uint64_t addr;
	uint32_t count;
};
int ind_open(struct vhu_dev_vq *vq, uint64_t addr, uint32_t len, struct ind_table *t);
int ind_read(struct vhu_dev_vq *vq, const struct ind_table *t, uint32_t i,
	     bool packed, struct desc_copy *c);

int vq_config_check(const struct vhu_vq_config *cfg, bool device);
struct vhu_vq_flags vq_flags_from(uint64_t features);

/* Split/packed implementations behind the public dispatchers. */
/* What a pop burst returns when it stopped on code ret (0 if it did not)
 * after taking `taken` chains: a buffer error is only ever elems[0]'s (the
 * queue is not broken); a malformed ring after good chains waits for the
 * next call, which returns it (it is sticky). */
static inline int burst_result(const struct vhu_dev_vq *vq, int ret, unsigned taken)
{
	if (ret && (!vq->broken || !taken))
		return ret;
	return (int)taken;
}

int split_dev_pop_burst(struct vhu_dev_vq *vq, struct vhu_vq_elem *elems, unsigned n,
			struct iovec *iov, unsigned iov_len, unsigned iov_max);
int split_dev_pop_one(struct vhu_dev_vq *vq, struct vhu_vq_elem *e, struct iovec *iov, unsigned max);
int split_dev_push_burst(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n);
int split_dev_push_one(struct vhu_dev_vq *vq, uint32_t id, uint32_t len);
void split_dev_flush(struct vhu_dev_vq *vq);
bool split_dev_should_notify(struct vhu_dev_vq *vq);
void split_dev_set_notify(struct vhu_dev_vq *vq, bool enable);
bool split_dev_has_avail(struct vhu_dev_vq *vq);
int split_dev_notification_data(struct vhu_dev_vq *vq, uint16_t next);

int packed_dev_pop_burst(struct vhu_dev_vq *vq, struct vhu_vq_elem *elems, unsigned n,
			 struct iovec *iov, unsigned iov_len, unsigned iov_max);
int packed_dev_pop_one(struct vhu_dev_vq *vq, struct vhu_vq_elem *e, struct iovec *iov, unsigned max);
int packed_dev_push_burst(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n);
void packed_dev_flush(struct vhu_dev_vq *vq);
bool packed_dev_should_notify(struct vhu_dev_vq *vq);
void packed_dev_set_notify(struct vhu_dev_vq *vq, bool enable);
bool packed_dev_has_avail(struct vhu_dev_vq *vq);
int packed_dev_notification_data(struct vhu_dev_vq *vq, uint16_t off, bool wrap);

/* Packed ring: a slot is available when AVAIL matches the wrap counter and
 * USED does not; used when both match (§2.8.1). */
static inline bool packed_is_avail(uint16_t flags, bool wrap)
{
	return !!(flags & VHU_VRING_PACKED_DESC_F_AVAIL) == wrap &&
	       !!(flags & VHU_VRING_PACKED_DESC_F_USED) != wrap;
}
static inline bool packed_is_used(uint16_t flags, bool wrap)
{
	return !!(flags & VHU_VRING_PACKED_DESC_F_AVAIL) == wrap &&
	       !!(flags & VHU_VRING_PACKED_DESC_F_USED) == wrap;
}
static inline void packed_advance(uint16_t *off, bool *wrap, uint16_t n, uint16_t num)
{
	uint32_t o = (uint32_t)*off + n;
	if (o >= num) {
		o -= num;
		*wrap = !*wrap;
	}
	*off = (uint16_t)o;
}

static inline uint16_t *split_used_event(struct vhu_vring_avail *a, uint16_t num)
{
	return &a->ring[num];
}
static inline uint16_t *split_avail_event(struct vhu_vring_used *u, uint16_t num)
{
	return (uint16_t *)&u->ring[num];
}

/* Driver side: private per-id state. Nothing here lives in shared memory,
 * so a device cannot corrupt the driver's bookkeeping. */
struct vhu_drv_slot {
	void *token;       /* NULL when the id is free */
	uint32_t in_len;   /* writable bytes, the most the device may report */
	uint16_t ndesc;    /* ring slots / table descriptors the buffer holds */
	uint16_t last;     /* split: last descriptor of the chain */
};

bool drv_use_indirect(const struct vhu_drv_vq *vq, unsigned total);

static inline int drv_buf_check(const struct vhu_drv_buf *b)
{
	unsigned total = (unsigned)b->out + b->in;
	return !b->token || !b->sg || total == 0 || total > 0xffff ? -EINVAL : 0;
}

/* A used entry the device returned, (id, len) as read once: the id in range
 * and in flight, the length within the writable part (§2.7.8.2, §2.8.6);
 * else the queue breaks with the code of what is wrong. */
static inline __attribute__((always_inline)) int drv_used_slot(struct vhu_drv_vq *vq,
	struct vhu_drv_slot *slots, uint16_t num, uint32_t id, uint32_t len, struct vhu_drv_slot **out)
{
	int err = 0;

	if (id >= num)
		err = -ERANGE;
	else if (!slots[id].token)
		err = -ENOENT;
	else if (len > slots[id].in_len)
		err = -EOVERFLOW;   /* a device claiming more than it may write */
	if (err)
		return vq->broken = err;
	*out = &slots[id];
	return 0;
}

/* A format's way of adding one buffer (split_drv.c, packed_drv.c). */
typedef int (*drv_add_one_fn)(struct vhu_drv_vq *vq, const struct vhu_sg *sg, unsigned out,
			      unsigned in, void *token, bool in_order);

/* A burst added one buffer at a time through the format's add_one (the
 * IN_ORDER paths): the count added, or the first buffer's error. Inlined
 * with add_one known, so nothing is called through the pointer. */
static inline __attribute__((always_inline)) int drv_add_each(struct vhu_drv_vq *vq,
	const struct vhu_drv_buf *b, unsigned n, bool in_order, drv_add_one_fn add_one)
{
	unsigned k;

	for (k = 0; k < n; k++) {
		int r = drv_buf_check(&b[k]);
		if (!r)
			r = add_one(vq, b[k].sg, b[k].out, b[k].in, b[k].token, in_order);
		if (r < 0)
			return k ? (int)k : r;
	}
	return (int)k;
}
uint32_t drv_sg_in_len(const struct vhu_sg *sg, unsigned out, unsigned in);

int split_drv_add_burst(struct vhu_drv_vq *vq, const struct vhu_drv_buf *b, unsigned n);
int split_drv_add_one(struct vhu_drv_vq *vq, const struct vhu_drv_buf *b);
int split_drv_get_one(struct vhu_drv_vq *vq, void **token, uint32_t *len);
bool split_drv_kick_prepare(struct vhu_drv_vq *vq);
int split_drv_get_burst(struct vhu_drv_vq *vq, void **tokens, uint32_t *lens, unsigned n);
bool split_drv_has_used(struct vhu_drv_vq *vq);
int split_drv_reoffer(struct vhu_drv_vq *vq);
void split_drv_set_cb(struct vhu_drv_vq *vq, bool enable);

int packed_drv_add_burst(struct vhu_drv_vq *vq, const struct vhu_drv_buf *b, unsigned n);
int packed_drv_add_one(struct vhu_drv_vq *vq, const struct vhu_drv_buf *b);
int packed_drv_get_one(struct vhu_drv_vq *vq, void **token, uint32_t *len);
bool packed_drv_kick_prepare(struct vhu_drv_vq *vq);
int packed_drv_get_burst(struct vhu_drv_vq *vq, void **tokens, uint32_t *lens, unsigned n);
bool packed_drv_has_used(struct vhu_drv_vq *vq);
void packed_drv_set_cb(struct vhu_drv_vq *vq, bool enable);

#endif
