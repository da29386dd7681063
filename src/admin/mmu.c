/* SPDX-License-Identifier: MIT */
/* A managed device's MMU (mmu.h, docs/admin-transport.md section 7). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mmu.h"
#include "vhu/xlate.h"

int admin_mmu_init(struct admin_mmu *u, const struct vhu_mem *mem, uint32_t max_asids, uint32_t max_maps)
{
	*u = (struct admin_mmu){ .max_asids = max_asids, .max_maps = max_maps, .mem = mem };
	if (!max_asids || !max_maps || !(u->as = calloc(max_asids, sizeof(*u->as))))
		return max_asids && max_maps ? -ENOMEM : -EINVAL;
	for (uint32_t i = 0; i < max_asids; i++)
		vhu_iotlb_init(&u->as[i], max_maps);
	pthread_mutex_init(&u->err_lock, NULL);
	return 0;
}

void admin_mmu_destroy(struct admin_mmu *u)
{
	if (!u->as)
		return;
	for (uint32_t i = 0; i < u->max_asids; i++)
		vhu_iotlb_clear(&u->as[i]);
	free(u->as);
	u->as = NULL;
	pthread_mutex_destroy(&u->err_lock);
}

void admin_mmu_reset(struct admin_mmu *u)
{
	for (uint32_t i = 0; i < u->max_asids; i++) {
		vhu_iotlb_clear(&u->as[i]);
		vhu_iotlb_init(&u->as[i], u->max_maps);
	}
	u->nmaps = 0;
	u->on = false;
	pthread_mutex_lock(&u->err_lock);
	u->err = (struct vhu_admin_mmu_err){ 0 };
	pthread_mutex_unlock(&u->err_lock);
}

static void refused(struct admin_mmu_queue *mq, uint32_t reason, uint64_t iova, int access)
{
	struct admin_mmu *u = mq->mmu;
	pthread_mutex_lock(&u->err_lock);
	u->err = (struct vhu_admin_mmu_err){ .reason = reason, .queue = mq->queue, .asid = mq->asid,
					     .flags = access == VHU_ACCESS_WRITE ? VHU_ADMIN_MMU_WRITE : VHU_ADMIN_MMU_READ,
					     .iova = iova };
	pthread_mutex_unlock(&u->err_lock);
}

void *admin_mmu_translate(void *queue, uint64_t iova, uint64_t *len, int access)
{
	struct admin_mmu_queue *mq = queue;
	uint64_t gpa, want = *len;
	int r = vhu_iotlb_lookup(&mq->mmu->as[mq->asid], iova, &want, access, &gpa);
	if (r < 0) {
		refused(mq, r == -EACCES ? 2 : 1, iova, access);
		return NULL;
	}
	/* the mapping's guest range may lie beyond the memory table now (a
	 * region removed since): that too is an access refused */
	void *p = vhu_mem_translate((void *)mq->mmu->mem, gpa, &want, access);
	if (!p) {
		refused(mq, 1, iova, access);
		return NULL;
	}
	*len = want;
	return p;
}

void *admin_mmu_part(void *queue, uint64_t iova, uint64_t len, int access)
{
	uint64_t got = len;
	void *p = admin_mmu_translate(queue, iova, &got, access);
	return p && got >= len ? p : NULL;
}

static bool wraps(uint64_t a, uint64_t size)
{
	return a + (size - 1) < a;
}

/* Every byte of [gpa, gpa + size) in the memory table now. */
static bool in_memory(const struct vhu_mem *mem, uint64_t gpa, uint64_t size)
{
	while (size) {
		uint64_t got = size;
		if (!vhu_mem_translate((void *)mem, gpa, &got, 0) || !got)
			return false;
		gpa += got;
		size -= got;
	}
	return true;
}

int admin_mmu_map_check(const struct admin_mmu *u, const struct vhu_admin_mmu_map *mp)
{
	if (mp->asid >= u->max_asids || !mp->size || (mp->flags & ~3u) || !(mp->flags & 3u) ||
	    wraps(mp->iova, mp->size) || wraps(mp->dma, mp->size) || !in_memory(u->mem, mp->dma, mp->size))
		return -EINVAL;
	const struct vhu_iotlb *t = &u->as[mp->asid];
	for (unsigned i = 0; i < t->n; i++)
		if (vhu_iotlb_overlaps(t->e[i].iova, t->e[i].size, mp->iova, mp->size))
			return -EBUSY;   /* the RFC's rule: remove first */
	return u->nmaps >= u->max_maps ? -ENOSPC : 0;
}

int admin_mmu_map(struct admin_mmu *u, const struct vhu_admin_mmu_map *mp)
{
	/* the admin flags are the IOTLB's permissions: bit 0 read, bit 1 write */
	int r = vhu_iotlb_update(&u->as[mp->asid], mp->iova, mp->size, mp->dma, mp->flags);
	if (r == 0)
		u->nmaps++;
	return r;
}

int admin_mmu_unmap_count(const struct admin_mmu *u, uint32_t asid, uint64_t iova, uint64_t size)
{
	if (asid >= u->max_asids || !size || wraps(iova, size))
		return -EINVAL;
	const struct vhu_iotlb *t = &u->as[asid];
	int n = 0;
	for (unsigned i = 0; i < t->n; i++)
		n += vhu_iotlb_overlaps(t->e[i].iova, t->e[i].size, iova, size);
	return n;
}

void admin_mmu_unmap(struct admin_mmu *u, uint32_t asid, uint64_t iova, uint64_t size)
{
	struct vhu_iotlb *t = &u->as[asid];
	for (unsigned i = 0; i < t->n;) {
		struct vhu_iotlb_entry e = t->e[i];
		if (!vhu_iotlb_overlaps(e.iova, e.size, iova, size)) {
			i++;
			continue;
		}
		/* whole mappings (the RFC's rule), so no split needs a slot */
		vhu_iotlb_invalidate(t, e.iova, e.size);
		u->nmaps--;
	}
}

struct vhu_admin_mmu_err admin_mmu_take_error(struct admin_mmu *u)
{
	pthread_mutex_lock(&u->err_lock);
	struct vhu_admin_mmu_err e = u->err;
	u->err = (struct vhu_admin_mmu_err){ 0 };
	pthread_mutex_unlock(&u->err_lock);
	return e;
}
