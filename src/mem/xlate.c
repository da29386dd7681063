/* SPDX-License-Identifier: MIT */
/* Guest address translation: the miss path behind vhu_xlate(). */
#include <string.h>

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

void vhu_xlate_invalidate(struct vhu_xlate *x)
{
	memset(x->win, 0, sizeof(x->win));
}

void *vhu_xlate_miss(struct vhu_xlate *x, uint64_t addr, uint64_t *len, int access)
{
	struct vhu_xlate_window *w = &x->win[(access >> 1) & 1];
	uint64_t asked = *len;

	x->misses++;
	if (x->mem) {
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
