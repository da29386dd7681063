/* SPDX-License-Identifier: MIT */
/* Guest address translation: the miss path behind vhu_xlate(). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "vhu/iotlb.h"
#include "vhu/mem.h"
#include "vhu/xlate.h"

void vhu_xlate_init(struct vhu_xlate *x, vhu_translate_fn fn, void *opaque)
{
	memset(x, 0, sizeof(*x));
	x->fn = fn;
	x->opaque = opaque;
}

void vhu_xlate_init_mem(struct vhu_xlate *x, const struct vhu_mem *mem)
{
	memset(x, 0, sizeof(*x));
	x->mem = mem;
}

void vhu_xlate_init_iotlb(struct vhu_xlate *x, const struct vhu_iotlb *iotlb, const struct vhu_mem *mem)
{
	memset(x, 0, sizeof(*x));
	x->iotlb = iotlb;
	x->mem = mem;
}

/* The window for iova: the part of its mapping that one region holds. */
static bool iotlb_window(struct vhu_xlate *x, uint64_t iova, int access, struct vhu_xlate_window *w)
{
	const struct vhu_iotlb_entry *e = vhu_iotlb_find(x->iotlb, iova);
	uint64_t len = UINT64_MAX, uaddr;
	int r = vhu_iotlb_lookup(x->iotlb, iova, &len, access, &uaddr);
	if (r == -ENOENT && !x->iotlb_missing && !x->misses_fault) {	/* the first of a chain */
		x->missing_iova = iova;
		x->iotlb_missing = access;
	}
	if (r < 0)
		return false;
	const struct vhu_mem_region *g = vhu_mem_find_uaddr(x->mem, uaddr);
	if (!g)
		return false;
	/* from the later of the mapping's and the region's starts to the
	 * earlier of their ends, in IOVA terms */
	uint64_t into_map = iova - e->iova, into_region = uaddr - g->uaddr;
	uint64_t back = into_map < into_region ? into_map : into_region;
	uint64_t region_left = g->size - into_region;   /* from uaddr */
	uint64_t fwd = len < region_left ? len : region_left;
	*w = (struct vhu_xlate_window){ .gpa = iova - back, .len = back + fwd, .host = g->host + (into_region - back) };
	return true;
}

void vhu_xlate_invalidate(struct vhu_xlate *x)
{
	memset(x->win, 0, sizeof(x->win));
}

void *vhu_xlate_miss(struct vhu_xlate *x, uint64_t addr, uint64_t *len, int access)
{
	struct vhu_xlate_window *w = &x->win[(access >> 1) & 1];
	uint64_t asked = *len;

	x->misses++;
	if (x->iotlb) {
		if (!iotlb_window(x, addr, access, w))
			return NULL;
	} else if (x->mem) {
		const struct vhu_mem_region *g = vhu_mem_find(x->mem, addr);
		if (!g)
			return NULL;
		*w = (struct vhu_xlate_window){ .gpa = g->gpa, .len = g->size, .host = g->host };
	} else {
		/* Ask for everything up to the top of the address space: the
		 * callback cuts it to what is contiguous, and that whole range
		 * becomes the window. A callback that answers with nothing, or
		 * with more than it was asked, is treated as a refusal. */
		uint64_t want = UINT64_MAX - addr;
		if (want < asked)
			want = asked;
		uint64_t got = want;
		unsigned char *p = x->fn(x->opaque, addr, &got, access);
		if (!p || got == 0 || got > want)
			return NULL;
		*w = (struct vhu_xlate_window){ .gpa = addr, .len = got, .host = p };
	}
	uint64_t off = addr - w->gpa;
	if (*len > w->len - off)
		*len = w->len - off;
	return w->host + off;
}
