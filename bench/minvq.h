/* SPDX-License-Identifier: MIT */
/*
 * Minimal hand-written virtqueues, the floor the ring benchmarks measure vhu
 * against: the same ring formats and memory traffic as vhu (descriptor table
 * or ring, avail/used rings, the same batching and publication), with none
 * of the engine: no validation, no address translation beyond one
 * subtraction, no iovecs, no bookkeeping beyond what the format needs.
 * ring_bench times them, ring_insns counts their instructions, from this one
 * copy; the checked ones below add only the checks and bookkeeping no safe
 * engine can skip (a lower bound under vhu). MINVQ_SIZE entries, single-descriptor buffers of 64 bytes at
 * MINVQ_GPA + id * 64.
 */
#ifndef VHU_BENCH_MINVQ_H
#define VHU_BENCH_MINVQ_H

#include <stdbool.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "vhu/virtio.h"

#define MINVQ_SIZE 256
#define MINVQ_GPA 0x100000u

struct minvq_ring {
	struct vhu_vring_desc *desc;
	struct vhu_vring_avail *avail;
	struct vhu_vring_used *used;
	struct vhu_vring_packed_desc *pdesc;
	unsigned char *host;   /* the device's view of the buffers (at MINVQ_GPA) */
	bool packed;
};

struct minvq_device {
	uint16_t last, used;
	bool wrap, uwrap;
	uint64_t acc;   /* what it read of each buffer, so nothing is optimised out */
};

struct minvq_driver {
	uint16_t avail_idx, last_used, next;
	bool wrap, uwrap;
	uint64_t acc;
};

/* §2.8.1: a packed slot the driver made available, and one the device used,
 * by the wrap counter of the side that reads it */
static inline bool minvq_slot_avail(uint16_t f, bool wrap)
{
	return !!(f & VHU_VRING_PACKED_DESC_F_AVAIL) == wrap && !!(f & VHU_VRING_PACKED_DESC_F_USED) != wrap;
}

static inline bool minvq_slot_used(uint16_t f, bool wrap)
{
	return !!(f & VHU_VRING_PACKED_DESC_F_AVAIL) == wrap && !!(f & VHU_VRING_PACKED_DESC_F_USED) == wrap;
}

static inline void minvq_device_init(struct minvq_device *s)
{
	*s = (struct minvq_device){ .wrap = true, .uwrap = true };
}

static inline void minvq_driver_init(struct minvq_driver *s)
{
	*s = (struct minvq_driver){ .wrap = true, .uwrap = true };
}

/* The device: up to batch buffers taken and returned used; how many. */
static inline unsigned minvq_serve(const struct minvq_ring *q, struct minvq_device *s, unsigned batch)
{
	unsigned n = 0;

	if (q->packed) {
		while (n < batch) {
			struct vhu_vring_packed_desc *d = &q->pdesc[s->last];
			uint16_t f = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
			if (!minvq_slot_avail(f, s->wrap))
				break;
			s->acc += (uintptr_t)(q->host + (d->addr - MINVQ_GPA)) + d->len;
			struct vhu_vring_packed_desc *u = &q->pdesc[s->used];
			u->id = d->id;
			u->len = 0;
			__atomic_store_n(&u->flags,
					 (uint16_t)(s->uwrap ? VHU_VRING_PACKED_DESC_F_AVAIL | VHU_VRING_PACKED_DESC_F_USED : 0),
					 __ATOMIC_RELEASE);
			if (++s->last == MINVQ_SIZE) { s->last = 0; s->wrap = !s->wrap; }
			if (++s->used == MINVQ_SIZE) { s->used = 0; s->uwrap = !s->uwrap; }
			n++;
		}
		return n;
	}
	uint16_t avail = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
	while (n < batch && s->last != avail) {
		uint16_t head = q->avail->ring[s->last & (MINVQ_SIZE - 1)];
		struct vhu_vring_desc *d = &q->desc[head];
		s->acc += (uintptr_t)(q->host + (d->addr - MINVQ_GPA)) + d->len;
		q->used->ring[s->used & (MINVQ_SIZE - 1)] = (struct vhu_vring_used_elem){ head, 0 };
		s->last++;
		s->used++;
		n++;
	}
	if (n)
		__atomic_store_n(&q->used->idx, s->used, __ATOMIC_RELEASE);
	return n;
}

/* The driver: batch buffers made available (the caller keeps room). */
static inline void minvq_add(const struct minvq_ring *q, struct minvq_driver *s, unsigned batch)
{
	for (unsigned i = 0; i < batch; i++) {
		uint64_t addr = MINVQ_GPA + s->next * 64u;
		if (q->packed) {
			struct vhu_vring_packed_desc *d = &q->pdesc[s->next];
			d->addr = addr;
			d->len = 64;
			d->id = s->next;
			__atomic_store_n(&d->flags, (uint16_t)(s->wrap ? VHU_VRING_PACKED_DESC_F_AVAIL : VHU_VRING_PACKED_DESC_F_USED),
					 __ATOMIC_RELEASE);
			if (++s->next == MINVQ_SIZE) { s->next = 0; s->wrap = !s->wrap; }
		} else {
			q->desc[s->next] = (struct vhu_vring_desc){ addr, 64, 0, 0 };
			q->avail->ring[s->avail_idx & (MINVQ_SIZE - 1)] = s->next;
			s->avail_idx++;
			s->next = (s->next + 1) & (MINVQ_SIZE - 1);
		}
	}
	if (!q->packed)
		__atomic_store_n(&q->avail->idx, s->avail_idx, __ATOMIC_RELEASE);
}

/* The driver: up to batch used buffers taken back; how many. */
static inline unsigned minvq_get(const struct minvq_ring *q, struct minvq_driver *s, unsigned batch)
{
	unsigned got = 0;

	if (q->packed) {
		while (got < batch) {
			struct vhu_vring_packed_desc *d = &q->pdesc[s->last_used];
			uint16_t f = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
			if (!minvq_slot_used(f, s->uwrap))
				break;
			s->acc += d->id;
			if (++s->last_used == MINVQ_SIZE) { s->last_used = 0; s->uwrap = !s->uwrap; }
			got++;
		}
		return got;
	}
	uint16_t u = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
	while (got < batch && s->last_used != u) {
		s->acc += q->used->ring[s->last_used & (MINVQ_SIZE - 1)].id;
		s->last_used++;
		got++;
	}
	return got;
}

/*
 * The same virtqueues with only what any engine that trusts neither side
 * must do per buffer, and nothing else: the checks vhu's hostile table
 * requires of a one-descriptor chain (avail window, head or id in range and
 * not already held, no NEXT or INDIRECT taken as a plain buffer, the buffer
 * inside guest memory, a used id held and a used length within what was
 * writable) and the bookkeeping without which an API cannot work (the
 * device hands out an element and takes it back in a second pass, the
 * driver allocates ids and keeps a token for each). No error handling
 * beyond stopping: a lower bound for an engine, not an engine.
 */
struct minvq_elem {
	void *addr;
	uint32_t len;
	uint16_t id;
	bool write;
};

struct minvq_checked_device {
	struct minvq_device s;
	uint64_t mem_gpa, mem_size;   /* the one memory region */
	uint32_t in_len[MINVQ_SIZE];  /* writable bytes of each id held */
	uint8_t held[MINVQ_SIZE];
	uint16_t inflight;
	int err;
};

struct minvq_checked_driver {
	struct minvq_driver s;
	void *token[MINVQ_SIZE];
	uint32_t writable[MINVQ_SIZE];
	uint16_t next_free[MINVQ_SIZE];
	uint16_t free_head, free_n;
	int err;
};

static inline void minvq_checked_device_init(struct minvq_checked_device *c, uint64_t gpa, uint64_t size)
{
	memset(c, 0, sizeof(*c));
	minvq_device_init(&c->s);
	c->mem_gpa = gpa;
	c->mem_size = size;
}

static inline void minvq_checked_driver_init(struct minvq_checked_driver *c)
{
	memset(c, 0, sizeof(*c));
	minvq_driver_init(&c->s);
	for (unsigned i = 0; i < MINVQ_SIZE; i++)
		c->next_free[i] = (uint16_t)(i + 1);
	c->free_n = MINVQ_SIZE;
}

/* One descriptor's checks and element; false stops the burst. */
static inline bool minvq_take(struct minvq_checked_device *c, const struct minvq_ring *q, uint16_t id,
			      uint64_t addr, uint32_t len, uint16_t flags, struct minvq_elem *e)
{
	if (id >= MINVQ_SIZE || c->held[id] || c->inflight >= MINVQ_SIZE)
		return c->err = -ERANGE, false;
	if (flags & (VHU_VRING_DESC_F_NEXT | VHU_VRING_DESC_F_INDIRECT))
		return c->err = -EPROTO, false;
	uint64_t off = addr - c->mem_gpa;
	if (off >= c->mem_size || len > c->mem_size - off)
		return c->err = -EFAULT, false;
	bool write = flags & VHU_VRING_DESC_F_WRITE;
	*e = (struct minvq_elem){ q->host + off, len, id, write };
	c->held[id] = 1;
	c->in_len[id] = write ? len : 0;
	c->inflight++;
	return true;
}

/* A used buffer's checks; false stops the burst. */
static inline bool minvq_give(struct minvq_checked_device *c, uint16_t id, uint32_t len)
{
	if (id >= MINVQ_SIZE || !c->held[id] || len > c->in_len[id])
		return c->err = -EINVAL, false;
	c->held[id] = 0;
	c->inflight--;
	return true;
}

/* The device: a burst popped into elements, then returned used. */
static inline unsigned minvq_checked_serve(const struct minvq_ring *q, struct minvq_checked_device *c, unsigned batch)
{
	struct minvq_elem e[MINVQ_SIZE];
	struct minvq_device *s = &c->s;
	unsigned n = 0;

	if (batch > MINVQ_SIZE)
		batch = MINVQ_SIZE;
	if (q->packed) {
		uint16_t last = s->last;
		bool wrap = s->wrap;
		while (n < batch) {
			struct vhu_vring_packed_desc *d = &q->pdesc[last];
			uint16_t f = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
			if (!minvq_slot_avail(f, wrap))
				break;
			if (!minvq_take(c, q, d->id, d->addr, d->len, f, &e[n]))
				break;
			if (++last == MINVQ_SIZE) { last = 0; wrap = !wrap; }
			n++;
		}
		s->last = last;
		s->wrap = wrap;
		unsigned k;
		for (k = 0; k < n; k++) {
			if (!minvq_give(c, e[k].id, 0))
				break;
			s->acc += (uintptr_t)e[k].addr + e[k].len;
			struct vhu_vring_packed_desc *u = &q->pdesc[s->used];
			u->id = e[k].id;
			u->len = 0;
			__atomic_store_n(&u->flags,
					 (uint16_t)(s->uwrap ? VHU_VRING_PACKED_DESC_F_AVAIL | VHU_VRING_PACKED_DESC_F_USED : 0),
					 __ATOMIC_RELEASE);
			if (++s->used == MINVQ_SIZE) { s->used = 0; s->uwrap = !s->uwrap; }
		}
		return k;
	}
	uint16_t avail = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
	if ((uint16_t)(avail - s->last) > MINVQ_SIZE)
		return c->err = -EDOM, 0;
	uint16_t last = s->last;
	while (n < batch && last != avail) {
		uint16_t head = q->avail->ring[last & (MINVQ_SIZE - 1)];
		if (head >= MINVQ_SIZE) {
			c->err = -ERANGE;
			break;
		}
		const struct vhu_vring_desc *d = &q->desc[head];
		if (!minvq_take(c, q, head, d->addr, d->len, d->flags, &e[n]))
			break;
		last++;
		n++;
	}
	s->last = last;
	uint16_t used = s->used;
	unsigned k;
	for (k = 0; k < n; k++) {
		if (!minvq_give(c, e[k].id, 0))
			break;
		s->acc += (uintptr_t)e[k].addr + e[k].len;
		q->used->ring[used & (MINVQ_SIZE - 1)] = (struct vhu_vring_used_elem){ e[k].id, 0 };
		used++;
	}
	if (k)
		__atomic_store_n(&q->used->idx, used, __ATOMIC_RELEASE);
	s->used = used;
	return k;
}

/* The driver: batch readable buffers of 64 bytes, each with a token. */
static inline void minvq_checked_add(const struct minvq_ring *q, struct minvq_checked_driver *c, unsigned batch,
				     void **tokens)
{
	struct minvq_driver *s = &c->s;

	for (unsigned i = 0; i < batch; i++) {
		uint64_t addr = MINVQ_GPA + (uint64_t)(s->next) * 64u;
		uint32_t len = 64;
		if (!c->free_n || !len || addr + len < addr) {
			c->err = -ENOSPC;
			break;
		}
		uint16_t id = c->free_head;
		c->free_head = c->next_free[id];
		c->free_n--;
		c->token[id] = tokens[i];
		c->writable[id] = 0;
		if (q->packed) {
			struct vhu_vring_packed_desc *d = &q->pdesc[s->next];
			d->addr = addr;
			d->len = len;
			d->id = id;
			__atomic_store_n(&d->flags, (uint16_t)(s->wrap ? VHU_VRING_PACKED_DESC_F_AVAIL : VHU_VRING_PACKED_DESC_F_USED),
					 __ATOMIC_RELEASE);
			if (++s->next == MINVQ_SIZE) { s->next = 0; s->wrap = !s->wrap; }
		} else {
			q->desc[id] = (struct vhu_vring_desc){ addr, len, 0, 0 };
			q->avail->ring[s->avail_idx & (MINVQ_SIZE - 1)] = id;
			s->avail_idx++;
			s->next = (s->next + 1) & (MINVQ_SIZE - 1);
		}
	}
	if (!q->packed)
		__atomic_store_n(&q->avail->idx, s->avail_idx, __ATOMIC_RELEASE);
}

/* A used buffer's checks and its token back; false stops the burst. */
static inline bool minvq_took_back(struct minvq_checked_driver *c, uint32_t id, uint32_t len)
{
	if (id >= MINVQ_SIZE || !c->token[id] || len > c->writable[id])
		return c->err = -EBADMSG, false;
	c->s.acc += (uintptr_t)c->token[id];
	c->token[id] = NULL;
	c->next_free[id] = c->free_head;
	c->free_head = (uint16_t)id;
	c->free_n++;
	return true;
}

/* The driver: up to batch used buffers taken back; how many. */
static inline unsigned minvq_checked_get(const struct minvq_ring *q, struct minvq_checked_driver *c, unsigned batch)
{
	struct minvq_driver *s = &c->s;
	unsigned got = 0;

	if (q->packed) {
		while (got < batch) {
			struct vhu_vring_packed_desc *d = &q->pdesc[s->last_used];
			uint16_t f = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
			if (!minvq_slot_used(f, s->uwrap))
				break;
			if (!minvq_took_back(c, d->id, d->len))
				break;
			if (++s->last_used == MINVQ_SIZE) { s->last_used = 0; s->uwrap = !s->uwrap; }
			got++;
		}
		return got;
	}
	uint16_t u = __atomic_load_n(&q->used->idx, __ATOMIC_ACQUIRE);
	if ((uint16_t)(u - s->last_used) > MINVQ_SIZE)
		return c->err = -EDOM, 0;
	while (got < batch && s->last_used != u) {
		const struct vhu_vring_used_elem *e = &q->used->ring[s->last_used & (MINVQ_SIZE - 1)];
		if (!minvq_took_back(c, e->id, e->len))
			break;
		s->last_used++;
		got++;
	}
	return got;
}

#endif
