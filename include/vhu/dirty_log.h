/* SPDX-License-Identifier: MIT */
/*
 * The dirty-page log of live migration (vhost-user "Migration"): a bitmap
 * in memory shared with the front-end, one bit per 4 KiB page of guest
 * physical memory, bit (page % 8) of byte (page / 8). The front-end reads
 * and clears it while it copies guest memory; a device that writes guest
 * memory sets the bits of the pages it wrote, with atomic OR, since the
 * front-end and the other queues change the same bytes concurrently.
 *
 * A page missing from the log is silent corruption on the destination, a
 * page too many only costs a copy; so every path here sets a superset of
 * what it is told, and refuses (counts) only what lies outside the bitmap.
 *
 * Writes are batched: a cache of the words touched since its last flush,
 * ORed into the log at the flush (one atomic per word touched rather than
 * per write). The ring engine flushes before it publishes the used entries
 * that make the writes visible to the driver.
 */
#ifndef VHU_DIRTY_LOG_H
#define VHU_DIRTY_LOG_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

VHU_API_BEGIN

#define VHU_LOG_PAGE_SHIFT 12
#define VHU_LOG_PAGE 4096u   /* VHOST_LOG_PAGE */

struct vhu_dirty_log {
	uint8_t *bitmap;     /* shared: byte i, bit j is page 8i + j */
	uint64_t size;       /* bytes of bitmap: pages 0 .. 8 * size - 1 */
};

/* Bytes of bitmap that cover guest addresses [0, end). */
static inline uint64_t vhu_dirty_log_size_for(uint64_t end)
{
	uint64_t pages = (end >> VHU_LOG_PAGE_SHIFT) + !!(end & (VHU_LOG_PAGE - 1));
	return (pages + 7) / 8;
}

/* Does the bitmap cover every byte of [gpa, gpa + len)? (len > 0) */
bool vhu_dirty_log_covers(const struct vhu_dirty_log *log, uint64_t gpa, uint64_t len);

/* Mark the pages of [gpa, gpa + len) now, atomically. -ERANGE (and the
 * pages inside the bitmap marked) if part of it lies outside. */
int vhu_dirty_log_mark(const struct vhu_dirty_log *log, uint64_t gpa, uint64_t len);

/* Is the page holding gpa marked? (front-ends, tests) */
bool vhu_dirty_log_test(const struct vhu_dirty_log *log, uint64_t gpa);

/* Take the bitmap's bits and clear them, atomically word by word, into
 * out (size bytes, may be NULL to only clear). Returns the pages taken.
 * This is what a front-end does on each pass of its copy. */
uint64_t vhu_dirty_log_take(const struct vhu_dirty_log *log, uint8_t *out);

/* ---- the batching cache ------------------------------------------------ */
#define VHU_DIRTY_CACHE_WORDS 16

struct vhu_dirty_cache {
	const struct vhu_dirty_log *log;   /* NULL: nothing to log into */
	unsigned n;
	uint64_t outside;                  /* writes refused since the last look */
	struct {
		uint64_t word;     /* index of a 64-page group */
		uint64_t bits;
	} e[VHU_DIRTY_CACHE_WORDS];
};

static inline void vhu_dirty_cache_init(struct vhu_dirty_cache *c, const struct vhu_dirty_log *log)
{
	c->log = log;
	c->n = 0;
	c->outside = 0;
}

/* OR the cached words into the log and empty the cache. */
void vhu_dirty_cache_flush(struct vhu_dirty_cache *c);
/* The out-of-line part of vhu_dirty_cache_add(): a range over several
 * words, or a word not cached yet. */
void vhu_dirty_cache_add_slow(struct vhu_dirty_cache *c, uint64_t gpa, uint64_t len);

/* Note that [gpa, gpa + len) was written (len > 0). Inline when the range
 * falls in the group of 64 pages the last call touched. */
static inline void vhu_dirty_cache_add(struct vhu_dirty_cache *c, uint64_t gpa, uint64_t len)
{
	uint64_t first = gpa >> VHU_LOG_PAGE_SHIFT, last = (gpa + len - 1) >> VHU_LOG_PAGE_SHIFT;

	if (__builtin_expect(c->n && (first >> 6) == (last >> 6) && c->e[c->n - 1].word == first >> 6 &&
			     gpa + len > gpa, 1)) {
		uint64_t span = last - first + 1;
		uint64_t bits = span == 64 ? ~0ull : ((1ull << span) - 1) << (first & 63);
		c->e[c->n - 1].bits |= bits;
		return;
	}
	vhu_dirty_cache_add_slow(c, gpa, len);
}

VHU_API_END

#endif
