/* SPDX-License-Identifier: MIT */
/*
 * Guest address translation as the device side of a ring does it: the
 * memory layer's one entry point for "guest address -> host pointer".
 *
 * A device maps every buffer of every chain, and consecutive buffers almost
 * always lie in the guest memory region that served the one before. So a
 * translator keeps, per access direction, the window that answered last
 * (guest range, host base), and the common case is an inline range check;
 * only a miss calls out: to the region table's search (vhu_mem) or to a
 * caller's callback. The later IOTLB and dirty-log work hangs off the miss
 * path and the write window, which is why the memory layer, not the ring,
 * owns this.
 *
 * A window is only ever a range the source reported as contiguous and
 * accessible for that direction, so a hit can never reach memory a miss
 * would have refused. Whoever changes the memory behind a translator (a new
 * memory table, an IOTLB invalidation) calls vhu_xlate_invalidate() first;
 * the back-end pauses every queue around such a change.
 */
#ifndef VHU_XLATE_H
#define VHU_XLATE_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stdint.h>

VHU_API_BEGIN

enum vhu_access {
	VHU_ACCESS_READ = 1,   /* the device reads this memory (driver->device) */
	VHU_ACCESS_WRITE = 2,  /* the device writes this memory (device->driver) */
};

/*
 * Map guest memory [addr, addr + *len) for the given access.
 * Returns the host address of addr and sets *len to the number of bytes
 * that are contiguous in host memory from there (1 .. the asked length).
 * Returns NULL when addr is not mapped with that access. The engine calls it
 * again for the rest when a buffer straddles two regions.
 */
typedef void *(*vhu_translate_fn)(void *opaque, uint64_t addr, uint64_t *len,
				  int access);

struct vhu_mem;
struct vhu_iotlb;

/* [gpa, gpa + len) is contiguous at host; len 0 = empty. */
struct vhu_xlate_window {
	uint64_t gpa, len;
	unsigned char *host;
};

struct vhu_xlate {
	struct vhu_xlate_window win[2];  /* [0] device reads, [1] device writes */
	/* the source a miss asks: an IOTLB then a region table, a region
	 * table, else the callback */
	const struct vhu_mem *mem;
	const struct vhu_iotlb *iotlb;
	vhu_translate_fn fn;
	void *opaque;
	uint64_t misses;                 /* for tests and statistics */
	/* the first address the IOTLB had no mapping for since the user last
	 * zeroed iotlb_missing (for a MISS to the front-end), and its access;
	 * iotlb_missing is 0 when none */
	uint64_t missing_iova;
	int iotlb_missing;
	/* set by the user: a mapping the IOTLB lacks is a fault (the chain is
	 * taken and fails) rather than a miss to wait for */
	bool misses_fault;
};

/* Translate through a callback (fn must not be NULL). */
void vhu_xlate_init(struct vhu_xlate *x, vhu_translate_fn fn, void *opaque);
/* Translate through a region table: a miss is a binary search of it, and the
 * window becomes the whole region. */
void vhu_xlate_init_mem(struct vhu_xlate *x, const struct vhu_mem *mem);
/* Translate I/O virtual addresses (VIRTIO_F_ACCESS_PLATFORM): through the
 * IOTLB to the front-end's user addresses, then through the region table.
 * A window is the part of one mapping that one region holds, and only for
 * the access the mapping permits. */
void vhu_xlate_init_iotlb(struct vhu_xlate *x, const struct vhu_iotlb *iotlb, const struct vhu_mem *mem);
/* Forget both windows: the memory behind them changed. */
void vhu_xlate_invalidate(struct vhu_xlate *x);
/* The miss path of vhu_xlate(); same contract. */
void *vhu_xlate_miss(struct vhu_xlate *x, uint64_t addr, uint64_t *len, int access);

/* vhu_translate_fn's contract, inline when [addr, ...) starts inside the
 * window of the last translation of this direction. access must be
 * VHU_ACCESS_READ or VHU_ACCESS_WRITE. */
static inline __attribute__((always_inline)) void *vhu_xlate(struct vhu_xlate *x, uint64_t addr, uint64_t *len,
							   int access)
{
	const struct vhu_xlate_window *w = &x->win[(access >> 1) & 1];
	uint64_t off = addr - w->gpa;   /* wraps far out of range below gpa */

	if (__builtin_expect(off < w->len, 1)) {
		if (*len > w->len - off)
			*len = w->len - off;
		return w->host + off;
	}
	return vhu_xlate_miss(x, addr, len, access);
}

VHU_API_END

#endif
