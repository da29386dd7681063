/* SPDX-License-Identifier: MIT */
/* The device IOTLB: a bounded, sorted table of IOVA ranges (vhu/iotlb.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vhu/iotlb.h"
#include "vhu/vhost_user.h"
#include "vhu/xlate.h"

static uint64_t last_of(const struct vhu_iotlb_entry *e)
{
	return e->iova + (e->size - 1);
}

void vhu_iotlb_init(struct vhu_iotlb *t, unsigned max)
{
	memset(t, 0, sizeof(*t));
	t->max = max ? max : VHU_IOTLB_DEFAULT_MAX;
	t->rng = 0x9e3779b97f4a7c15ull;
}

void vhu_iotlb_clear(struct vhu_iotlb *t)
{
	free(t->e);
	t->e = NULL;
	t->n = t->cap = 0;
}

/* The first mapping that ends at or after a: the only one that can hold a,
 * and where a range starting at a begins to overlap the table. */
static unsigned first_ending_from(const struct vhu_iotlb *t, uint64_t a)
{
	unsigned lo = 0, hi = t->n;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (last_of(&t->e[mid]) < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int reserve(struct vhu_iotlb *t, unsigned want)
{
	if (want <= t->cap)
		return 0;
	unsigned cap = t->cap ? t->cap * 2 : 16;
	if (cap < want)
		cap = want;
	struct vhu_iotlb_entry *e = realloc(t->e, (size_t)cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	t->e = e;
	t->cap = cap;
	return 0;
}

/* Cut [iova, last] out of the table; it has room for one more mapping (a
 * mapping across both edges splits in two). How many mappings it touched. */
static int cut(struct vhu_iotlb *t, uint64_t iova, uint64_t last)
{
	unsigned i = first_ending_from(t, iova);
	int touched = 0;
	if (i < t->n && t->e[i].iova < iova && last_of(&t->e[i]) > last) {
		struct vhu_iotlb_entry *e = &t->e[i];
		uint64_t skip = last + 1 - e->iova;
		struct vhu_iotlb_entry right = { last + 1, e->size - skip, e->uaddr + skip, e->perm };
		e->size = iova - e->iova;
		memmove(&t->e[i + 2], &t->e[i + 1], (t->n - i - 1) * sizeof(*e));
		t->e[i + 1] = right;
		t->n++;
		return 1;
	}
	if (i < t->n && t->e[i].iova < iova) {	/* across the start: keep its head */
		t->e[i].size = iova - t->e[i].iova;
		i++;
		touched++;
	}
	unsigned j = i;
	while (j < t->n && last_of(&t->e[j]) <= last)	/* wholly inside */
		j++;
	touched += (int)(j - i);
	if (j < t->n && t->e[j].iova <= last) {	/* across the end: keep its tail */
		uint64_t skip = last + 1 - t->e[j].iova;
		t->e[j].iova += skip;
		t->e[j].uaddr += skip;
		t->e[j].size -= skip;
		touched++;
	}
	memmove(&t->e[i], &t->e[j], (t->n - j) * sizeof(*t->e));
	t->n -= j - i;
	return touched;
}

static void evict_one(struct vhu_iotlb *t)
{
	/* xorshift64: cheap, and no pattern of updates can make it pick the
	 * same victims every time */
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	unsigned i = (unsigned)(t->rng % t->n);
	memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(*t->e));
	t->n--;
	t->evictions++;
}

static bool range_ok(uint64_t a, uint64_t size)
{
	return size && a + (size - 1) >= a;
}

int vhu_iotlb_update(struct vhu_iotlb *t, uint64_t iova, uint64_t size, uint64_t uaddr, unsigned perm)
{
	if (!range_ok(iova, size) || !range_ok(uaddr, size))
		return -EINVAL;
	if (perm != VHU_USER_IOTLB_PERM_RO && perm != VHU_USER_IOTLB_PERM_WO && perm != VHU_USER_IOTLB_PERM_RW)
		return -EINVAL;
	if (reserve(t, t->n + 2) < 0)
		return -ENOMEM;
	cut(t, iova, iova + (size - 1));
	while (t->n >= t->max)
		evict_one(t);
	unsigned at = first_ending_from(t, iova);
	memmove(&t->e[at + 1], &t->e[at], (t->n - at) * sizeof(*t->e));
	t->e[at] = (struct vhu_iotlb_entry){ iova, size, uaddr, (uint8_t)perm };
	t->n++;
	return 0;
}

int vhu_iotlb_invalidate(struct vhu_iotlb *t, uint64_t iova, uint64_t size)
{
	if (!range_ok(iova, size))
		return -EINVAL;
	if (reserve(t, t->n + 1) < 0)
		return -ENOMEM;
	int touched = cut(t, iova, iova + (size - 1));
	/* a mapping split in two in a full table: the bound holds here too
	 * (found by fuzz_iotlb) */
	while (t->n > t->max)
		evict_one(t);
	return touched;
}

const struct vhu_iotlb_entry *vhu_iotlb_find(const struct vhu_iotlb *t, uint64_t iova)
{
	unsigned i = first_ending_from(t, iova);
	return i < t->n && t->e[i].iova <= iova ? &t->e[i] : NULL;
}

int vhu_iotlb_lookup(const struct vhu_iotlb *t, uint64_t iova, uint64_t *len, int access, uint64_t *uaddr)
{
	const struct vhu_iotlb_entry *e = vhu_iotlb_find(t, iova);
	if (!e)
		return -ENOENT;
	unsigned need = access == VHU_ACCESS_WRITE ? VHU_USER_IOTLB_PERM_WO : VHU_USER_IOTLB_PERM_RO;
	if (!(e->perm & need))
		return -EACCES;
	uint64_t off = iova - e->iova, left = last_of(e) - iova;   /* bytes after iova, minus one */
	if (*len - 1 > left)
		*len = left + 1;
	*uaddr = e->uaddr + off;
	return 0;
}

int vhu_iotlb_overlaps(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len)
{
	if (!a_len || !b_len)
		return 0;
	uint64_t a_last = a + (a_len - 1), b_last = b + (b_len - 1);
	return a <= b_last && b <= a_last;
}
