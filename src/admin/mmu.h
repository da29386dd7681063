/* SPDX-License-Identifier: MIT */
/*
 * A managed device's MMU (docs/admin-transport.md section 7): address
 * spaces of I/O virtual address -> the management device's guest address,
 * each an IOTLB table (vhu/iotlb.h, its "uaddr" the guest address) that
 * never evicts: the member's own limit is checked before a mapping is
 * made. Changed only by the admin queue's thread with the member's queues
 * paused; looked up by the threads serving them.
 */
#ifndef VHU_ADMIN_MMU_H
#define VHU_ADMIN_MMU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhu/admin.h"
#include "vhu/iotlb.h"
#include "vhu/mem.h"

struct admin_mmu {
	bool on;
	uint32_t max_asids, max_maps, nmaps;
	struct vhu_iotlb *as;              /* max_asids tables */
	const struct vhu_mem *mem;
	pthread_mutex_t err_lock;          /* serving threads record refusals */
	struct vhu_admin_mmu_err err;      /* the last one; reason 0: none since read */
};

/* One queue's view: the translate callback's opaque. */
struct admin_mmu_queue {
	struct admin_mmu *mmu;
	uint16_t queue;
	uint32_t asid;
};

int admin_mmu_init(struct admin_mmu *u, const struct vhu_mem *mem, uint32_t max_asids, uint32_t max_maps);
void admin_mmu_destroy(struct admin_mmu *u);
/* Off, every mapping dropped, no error recorded. */
void admin_mmu_reset(struct admin_mmu *u);
/* vhu_translate_fn through the queue's address space, then the memory
 * table; a refusal is recorded for MMU_ERR_GET and answered NULL. */
void *admin_mmu_translate(void *queue, uint64_t iova, uint64_t *len, int access);
/* The host address of [iova, iova + len) if the queue's space maps all of
 * it, contiguous, for access (a ring part); NULL otherwise. */
void *admin_mmu_part(void *queue, uint64_t iova, uint64_t len, int access);
/* The checks of MMU_MAP, nothing changed: 0, -EINVAL (a field), -EBUSY (it
 * intersects a mapping of the space), -ENOSPC (the member's limit). */
int admin_mmu_map_check(const struct admin_mmu *u, const struct vhu_admin_mmu_map *mp);
/* Make it (checked; queues paused): 0 or -ENOMEM. */
int admin_mmu_map(struct admin_mmu *u, const struct vhu_admin_mmu_map *mp);
/* How many whole mappings of the space [iova, iova + size) intersects
 * (-EINVAL: a bad range or space). */
int admin_mmu_unmap_count(const struct admin_mmu *u, uint32_t asid, uint64_t iova, uint64_t size);
/* Remove them (queues paused). */
void admin_mmu_unmap(struct admin_mmu *u, uint32_t asid, uint64_t iova, uint64_t size);
/* The last refusal, cleared. */
struct vhu_admin_mmu_err admin_mmu_take_error(struct admin_mmu *u);

#endif
