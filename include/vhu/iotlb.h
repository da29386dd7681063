/* SPDX-License-Identifier: MIT */
/*
 * The device IOTLB of a guest behind an IOMMU (VIRTIO_F_ACCESS_PLATFORM):
 * which I/O virtual addresses the front-end's IOMMU has mapped, to which of
 * its user addresses, with which permissions. The vhost-user spec's "IOMMU
 * support": the front-end sends IOTLB_MSG UPDATE and INVALIDATE, the
 * back-end asks for what it lacks with BACKEND_IOTLB_MSG MISS.
 *
 * A table of non-overlapping ranges sorted by IOVA, so a lookup is a binary
 * search (the caller keeps the last hit inline, see vhu_xlate), never a
 * scan. Its size is bounded: a table that is full drops a mapping chosen at
 * random to take a new one, which only costs a later miss (it is a cache of
 * the IOMMU's state, not the state), and never a scan per lookup, the
 * collapse DPDK's users hit (DPDK e7cb7fdf54). A newer update replaces what
 * it overlaps, as the IOMMU's page tables would.
 */
#ifndef VHU_IOTLB_H
#define VHU_IOTLB_H

#include "vhu/visibility.h"

#include <stdint.h>

VHU_API_BEGIN

/* [iova, iova + size) -> the front-end's [uaddr, uaddr + size); perm is
 * VHU_USER_IOTLB_PERM_RO (the device may read), _WO (write) or _RW. */
struct vhu_iotlb_entry {
	uint64_t iova, size, uaddr;
	uint8_t perm;
};

struct vhu_iotlb {
	struct vhu_iotlb_entry *e;  /* sorted by iova, never overlapping */
	unsigned n, cap, max;
	uint64_t evictions;          /* mappings dropped to make room */
	uint64_t rng;
};

#define VHU_IOTLB_DEFAULT_MAX 4096u

/* An empty table holding at most max mappings (0: VHU_IOTLB_DEFAULT_MAX). */
void vhu_iotlb_init(struct vhu_iotlb *t, unsigned max);
/* Forget every mapping and free the table. */
void vhu_iotlb_clear(struct vhu_iotlb *t);
/*
 * Map [iova, iova + size) to uaddr with perm, replacing what it overlaps.
 * -EINVAL: size 0, a range that wraps in either space, perm not RO, WO or
 * RW; -ENOMEM. On error the table is unchanged.
 */
int vhu_iotlb_update(struct vhu_iotlb *t, uint64_t iova, uint64_t size, uint64_t uaddr, unsigned perm);
/*
 * Unmap [iova, iova + size): mappings inside it go, mappings across its
 * edges are cut. Returns how many mappings it touched (0: none), -EINVAL
 * for size 0 or a wrapping range, -ENOMEM (splitting a mapping in two
 * needs a slot; the table is then unchanged).
 */
int vhu_iotlb_invalidate(struct vhu_iotlb *t, uint64_t iova, uint64_t size);
/* The mapping that holds iova, or NULL. */
const struct vhu_iotlb_entry *vhu_iotlb_find(const struct vhu_iotlb *t, uint64_t iova);
/*
 * iova for the given access (VHU_ACCESS_READ or VHU_ACCESS_WRITE of
 * vhu/xlate.h) -> the front-end's user address in *uaddr, *len cut to what
 * the mapping holds from there. 0; -ENOENT if nothing maps iova (a miss, to
 * ask the front-end about); -EACCES if the mapping forbids the access.
 */
int vhu_iotlb_lookup(const struct vhu_iotlb *t, uint64_t iova, uint64_t *len, int access, uint64_t *uaddr);
/* Whether [a, a + a_len) and [b, b + b_len) share a byte (an empty range
 * shares none; ranges may end at the top of the address space). */
int vhu_iotlb_overlaps(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len);

VHU_API_END

#endif
