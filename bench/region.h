/* SPDX-License-Identifier: MIT */
/* The benchmarks' guest memory: one region, translated as a one-region
 * memory table would answer (vhu_translate_fn). */
#ifndef VHU_BENCH_REGION_H
#define VHU_BENCH_REGION_H

#include <stdint.h>

struct region {
	uint64_t gpa, size;
	unsigned char *host;
};

static inline void *translate(void *opaque, uint64_t addr, uint64_t *len, int access)
{
	struct region *r = opaque;
	(void)access;
	uint64_t off = addr - r->gpa;
	if (off >= r->size)
		return NULL;
	if (*len > r->size - off)
		*len = r->size - off;
	return r->host + off;
}

#endif
