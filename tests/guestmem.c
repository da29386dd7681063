/* SPDX-License-Identifier: MIT */
#include "guestmem.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "vhu/vq.h"

int gm_init(struct guestmem *gm, size_t data_bytes, size_t region_size,
	    size_t ind_bytes, unsigned seed)
{
	memset(gm, 0, sizeof(*gm));
	gm->region_size = region_size;
	gm->nregions = (data_bytes + region_size - 1) / region_size;
	gm->host = calloc(gm->nregions, region_size);
	gm->perm = calloc(gm->nregions, sizeof(*gm->perm));
	gm->ind_size = ind_bytes;
	gm->ind = ind_bytes ? aligned_alloc(64, (ind_bytes + 63) & ~(size_t)63) : NULL;
	if (!gm->host || !gm->perm || (ind_bytes && !gm->ind))
		return -1;
	if (gm->ind)
		memset(gm->ind, 0, ind_bytes);
	for (size_t i = 0; i < gm->nregions; i++)
		gm->perm[i] = (uint32_t)i;
	srand(seed);
	for (size_t i = gm->nregions; i > 1; i--) {
		size_t j = (size_t)rand() % i;
		uint32_t t = gm->perm[i - 1];
		gm->perm[i - 1] = gm->perm[j];
		gm->perm[j] = t;
	}
	return 0;
}

void gm_free(struct guestmem *gm)
{
	free(gm->host);
	free(gm->perm);
	free(gm->ind);
	memset(gm, 0, sizeof(*gm));
}

void *gm_translate(void *opaque, uint64_t addr, uint64_t *len, int access)
{
	struct guestmem *gm = opaque;
	(void)access;

	gm->translations++;
	if (gm->map_all)
		return gm->host;
	if (gm->ind && addr >= GM_IND_BASE && addr - GM_IND_BASE < gm->ind_size) {
		uint64_t off = addr - GM_IND_BASE;
		if (*len > gm->ind_size - off)
			*len = gm->ind_size - off;
		return gm->ind + off;
	}
	if (addr < GM_DATA_BASE)
		return NULL;
	uint64_t off = addr - GM_DATA_BASE;
	uint64_t r = off / gm->region_size, in = off % gm->region_size;
	if (r >= gm->nregions)
		return NULL;
	if (*len > gm->region_size - in)
		*len = gm->region_size - in;
	return gm->host + (size_t)gm->perm[r] * gm->region_size + in;
}

static void gm_copy(struct guestmem *gm, uint64_t addr, void *buf, size_t len, int to_guest)
{
	unsigned char *b = buf;
	while (len) {
		uint64_t chunk = len;
		unsigned char *p = gm_translate(gm, addr, &chunk, VHU_ACCESS_READ);
		assert(p && chunk);
		if (to_guest)
			memcpy(p, b, chunk);
		else
			memcpy(b, p, chunk);
		b += chunk;
		addr += chunk;
		len -= chunk;
	}
}

void gm_write(struct guestmem *gm, uint64_t addr, const void *buf, size_t len)
{
	gm_copy(gm, addr, (void *)buf, len, 1);
}

void gm_read(struct guestmem *gm, uint64_t addr, void *buf, size_t len)
{
	gm_copy(gm, addr, buf, len, 0);
}
