/* SPDX-License-Identifier: MIT */
/*
 * Fake guest memory for ring tests: a guest-physical range cut into regions
 * of an awkward size whose host copies are shuffled, so that buffers which
 * are contiguous for the driver straddle regions for the device. A second,
 * identity-mapped range holds the driver's indirect tables.
 */
#ifndef VHU_TEST_GUESTMEM_H
#define VHU_TEST_GUESTMEM_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#define GM_DATA_BASE 0x100000ull
#define GM_IND_BASE  0x40000000ull

struct guestmem {
	unsigned char *host;     /* data regions, shuffled */
	size_t region_size, nregions;
	uint32_t *perm;          /* region i lives at host + perm[i] * size */
	unsigned char *ind;      /* indirect-table area, identity mapped */
	size_t ind_size;
	uint64_t translations;   /* calls, for tests that count */
	bool map_all;            /* map any address, full length, to a dummy
				    pointer (for chains never dereferenced) */
};

int gm_init(struct guestmem *gm, size_t data_bytes, size_t region_size,
	    size_t ind_bytes, unsigned seed);
void gm_free(struct guestmem *gm);
void *gm_translate(void *opaque, uint64_t addr, uint64_t *len, int access);
/* copy to/from guest memory by guest address (driver's view) */
void gm_write(struct guestmem *gm, uint64_t addr, const void *buf, size_t len);
void gm_read(struct guestmem *gm, uint64_t addr, void *buf, size_t len);

#endif
