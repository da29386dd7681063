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
 * Add one descriptor's buffer. The common case (in order, small, one
 * region) is inline; straddling buffers and every error go to
 * chain_map_slow(), which applies the same rules.
 */
static inline int chain_map_add(struct vhu_dev_vq *vq, struct chain_map *m, uint64_t addr,
				uint32_t len, bool write)
{
	/* §2.7.4.2 / §2.8.6: device-writable elements follow every readable one */
	if (__builtin_expect((!write && m->seen_write) || len == 0 || m->n == m->max ||
			     m->out_len + m->in_len + len > UINT32_MAX || addr + len < addr, 0))
		return chain_map_slow(vq, m, addr, len, write);
	uint64_t chunk = len;
	void *p = vq->translate(vq->translate_opaque, addr, &chunk,
				write ? VHU_ACCESS_WRITE : VHU_ACCESS_READ);
	if (__builtin_expect(!p || chunk != len, 0))
		return chain_map_slow(vq, m, addr, len, write);
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
	return 0;
}

static inline void chain_map_finish(const struct chain_map *m, struct vhu_vq_elem *e)
{
	e->iov = m->iov;
	e->out_num = m->out_num;
	e->in_num = m->n - m->out_num;
	e->out_len = m->out_len;
	e->in_len = m->in_len;
}

/*
 * Fast path for the commonest chain: direct descriptors, each buffer inside
 * one region, nothing unusual. Walks with everything in locals and returns
 * true with *e filled, or false as soon as anything is out of the ordinary;
 * the caller then runs the full walker from scratch, which alone decides
 * errors. Both read the same descriptors, so a driver rewriting them in
 * between only changes which path's answer counts, never memory safety.
 * ring_desc: split table or packed ring; packed descriptors are consecutive
 * slots starting at head, split ones follow next.
 */
static inline __attribute__((always_inline)) bool chain_map_fast(struct vhu_dev_vq *vq, uint16_t head, bool packed,
				  struct iovec *iov, unsigned max, struct vhu_vq_elem *e,
				  uint16_t first_flags, uint16_t *ndesc, uint16_t *id)
{
	uint64_t out_len = 0, in_len = 0;
	unsigned n = 0, out_num = 0;
	uint32_t i = head;
	bool seen_write = false;

	for (unsigned count = 0; count < vq->num; count++) {
		struct desc_copy d;
		if (packed) {
			read_packed_desc(&((const struct vhu_vring_packed_desc *)vq->pk.desc)[i], &d);
			d.flags = count ? ld16(&vq->pk.desc[i].flags) : first_flags;
		} else {
			read_split_desc(&vq->split.desc[i], &d);
		}
		bool write = d.flags & VHU_VRING_DESC_F_WRITE;
		if ((d.flags & VHU_VRING_DESC_F_INDIRECT) || (!write && seen_write) ||
		    d.len == 0 || n == max || out_len + in_len + d.len > UINT32_MAX)
			return false;
		uint64_t chunk = d.len;
		void *p = vq->translate(vq->translate_opaque, d.addr, &chunk,
					write ? VHU_ACCESS_WRITE : VHU_ACCESS_READ);
		if (!p || chunk != d.len)
			return false;
		iov[n].iov_base = p;
		iov[n].iov_len = d.len;
		n++;
		if (write) {
			seen_write = true;
			in_len += d.len;
		} else {
			out_len += d.len;
			out_num = n;
		}
		if (!(d.flags & VHU_VRING_DESC_F_NEXT)) {
			e->iov = iov;
			e->out_num = out_num;
			e->in_num = n - out_num;
			e->out_len = out_len;
			e->in_len = in_len;
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
int split_dev_pop(struct vhu_dev_vq *vq, struct vhu_vq_elem *e, struct iovec *iov, unsigned max);
int split_dev_push(struct vhu_dev_vq *vq, const struct vhu_vq_elem *e, uint32_t len);
void split_dev_flush(struct vhu_dev_vq *vq);
bool split_dev_should_notify(struct vhu_dev_vq *vq);
void split_dev_set_notify(struct vhu_dev_vq *vq, bool enable);
bool split_dev_has_avail(struct vhu_dev_vq *vq);
int split_dev_notification_data(struct vhu_dev_vq *vq, uint16_t next);

int packed_dev_pop(struct vhu_dev_vq *vq, struct vhu_vq_elem *e, struct iovec *iov, unsigned max);
int packed_dev_push(struct vhu_dev_vq *vq, const struct vhu_vq_elem *e, uint32_t len);
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
uint32_t drv_sg_in_len(const struct vhu_sg *sg, unsigned out, unsigned in);

int split_drv_add(struct vhu_drv_vq *vq, const struct vhu_sg *sg, unsigned out, unsigned in, void *token);
bool split_drv_kick_prepare(struct vhu_drv_vq *vq);
int split_drv_get(struct vhu_drv_vq *vq, void **token, uint32_t *len);
bool split_drv_has_used(struct vhu_drv_vq *vq);
void split_drv_set_cb(struct vhu_drv_vq *vq, bool enable);

int packed_drv_add(struct vhu_drv_vq *vq, const struct vhu_sg *sg, unsigned out, unsigned in, void *token);
bool packed_drv_kick_prepare(struct vhu_drv_vq *vq);
int packed_drv_get(struct vhu_drv_vq *vq, void **token, uint32_t *len);
bool packed_drv_has_used(struct vhu_drv_vq *vq);
void packed_drv_set_cb(struct vhu_drv_vq *vq, bool enable);

#endif
