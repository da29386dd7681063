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
void chain_map_start(struct chain_map *m, struct iovec *iov, unsigned max);
int chain_map_add(struct vhu_dev_vq *vq, struct chain_map *m, uint64_t addr,
		  uint32_t len, bool write);
void chain_map_finish(const struct chain_map *m, struct vhu_vq_elem *e);

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
