/* SPDX-License-Identifier: MIT */
/*
 * The data `vhu guest verify` writes: every 512-byte sector says where it
 * belongs. Its first 16 bytes are a tag ("VHU!", the sector's LBA as a
 * little-endian u64, the run's seed as a little-endian u32); the other 496
 * bytes are a pseudo-random stream keyed by (seed, LBA). A sector found at
 * the wrong place, or left from another run, names its origin.
 *
 * Shared by the guest's init (which writes and checks it) and the host
 * (which checks the back-end's image afterwards): header-only, no libc
 * beyond memcpy, so the static guest binary stays small.
 */
#ifndef VHU_GUEST_PATTERN_H
#define VHU_GUEST_PATTERN_H

#include <stdint.h>
#include <string.h>

#define VHU_PATTERN_SECTOR 512u
#define VHU_PATTERN_MAGIC "VHU!"

static inline uint64_t vhu_pattern_mix(uint64_t x)
{
	/* splitmix64's finaliser: consecutive LBAs give unrelated streams */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline void vhu_pattern_put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t vhu_pattern_get_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Fill one sector with what belongs at `lba` in the run `seed`. */
static inline void vhu_pattern_sector(uint8_t *s, uint64_t lba, uint32_t seed)
{
	memcpy(s, VHU_PATTERN_MAGIC, 4);
	vhu_pattern_put_le(s + 4, lba, 8);
	vhu_pattern_put_le(s + 12, seed, 4);
	uint64_t x = vhu_pattern_mix(lba ^ ((uint64_t)seed << 32));
	for (unsigned o = 16; o < VHU_PATTERN_SECTOR; o += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		vhu_pattern_put_le(s + o, x, 8);
	}
}

/* Fill `len` bytes (a multiple of the sector) starting at sector `lba`. */
static inline void vhu_pattern_fill(uint8_t *buf, uint64_t len, uint64_t lba, uint32_t seed)
{
	for (uint64_t o = 0; o < len; o += VHU_PATTERN_SECTOR)
		vhu_pattern_sector(buf + o, lba + o / VHU_PATTERN_SECTOR, seed);
}

/*
 * Compare `len` bytes read from sector `lba` on with the pattern. Returns
 * the byte offset of the first difference, or `len` if all match; `tag_lba`
 * and `tag_seed` get what the differing sector's tag claims (UINT64_MAX if
 * it has no tag).
 */
static inline uint64_t vhu_pattern_check(const uint8_t *buf, uint64_t len, uint64_t lba, uint32_t seed,
					 uint64_t *tag_lba, uint32_t *tag_seed)
{
	uint8_t want[VHU_PATTERN_SECTOR];
	for (uint64_t o = 0; o < len; o += VHU_PATTERN_SECTOR) {
		vhu_pattern_sector(want, lba + o / VHU_PATTERN_SECTOR, seed);
		if (!memcmp(want, buf + o, VHU_PATTERN_SECTOR))
			continue;
		unsigned b = 0;
		while (want[b] == buf[o + b])
			b++;
		bool tagged = !memcmp(buf + o, VHU_PATTERN_MAGIC, 4);
		*tag_lba = tagged ? vhu_pattern_get_le(buf + o + 4, 8) : UINT64_MAX;
		*tag_seed = tagged ? (uint32_t)vhu_pattern_get_le(buf + o + 12, 4) : 0;
		return o + b;
	}
	return len;
}

#endif
