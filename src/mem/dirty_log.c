/* SPDX-License-Identifier: MIT */
/* The dirty-page log: marking pages in the shared bitmap, and the cache
 * that batches the marks of a burst (vhu/dirty_log.h). */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "vhu/dirty_log.h"

bool vhu_dirty_log_covers(const struct vhu_dirty_log *log, uint64_t gpa, uint64_t len)
{
	uint64_t last = gpa + len - 1;
	return len && last >= gpa && log->bitmap && (last >> VHU_LOG_PAGE_SHIFT) / 8 < log->size;
}

/* OR bits (pages 64w .. 64w + 63) into the bitmap; false if some of them
 * lie past its end (those are dropped). The bitmap has no alignment
 * promise (the front-end chooses the offset), so a word is ORed whole only
 * where it is aligned and inside; else byte by byte. */
static bool or_word(const struct vhu_dirty_log *log, uint64_t w, uint64_t bits)
{
	uint64_t byte = w * 8;
	uint8_t *p = log->bitmap + byte;
	bool inside = true;

	if (byte < log->size && log->size - byte >= 8 && !((uintptr_t)p & 7)) {
		__atomic_fetch_or((uint64_t *)(void *)p, htole64(bits), __ATOMIC_RELAXED);
		return true;
	}
	for (unsigned i = 0; i < 8; i++) {
		uint8_t b = (uint8_t)(bits >> (8 * i));
		if (!b)
			continue;
		if (byte + i >= log->size || byte + i < byte) {
			inside = false;
			continue;
		}
		__atomic_fetch_or(p + i, b, __ATOMIC_RELAXED);
	}
	return inside;
}

/* The bits of pages [first, last] that fall in word w. */
static uint64_t word_bits(uint64_t w, uint64_t first, uint64_t last)
{
	uint64_t lo = w << 6 > first ? 0 : first & 63;
	uint64_t hi = (w << 6) + 63 < last ? 63 : last & 63;
	uint64_t span = hi - lo + 1;
	return span == 64 ? ~0ull : ((1ull << span) - 1) << lo;
}

int vhu_dirty_log_mark(const struct vhu_dirty_log *log, uint64_t gpa, uint64_t len)
{
	if (!len)
		return 0;
	if (!log->bitmap)
		return -ERANGE;
	uint64_t end = gpa + len - 1;
	bool inside = end >= gpa;
	if (!inside)
		end = UINT64_MAX;
	uint64_t first = gpa >> VHU_LOG_PAGE_SHIFT, last = end >> VHU_LOG_PAGE_SHIFT;
	/* nothing past the bitmap's last word is worth a loop */
	uint64_t top = log->size ? (log->size - 1) / 8 : 0;
	for (uint64_t w = first >> 6; w <= last >> 6; w++) {
		if (!log->size || w > top) {
			inside = false;
			break;
		}
		inside &= or_word(log, w, word_bits(w, first, last));
	}
	return inside ? 0 : -ERANGE;
}

bool vhu_dirty_log_test(const struct vhu_dirty_log *log, uint64_t gpa)
{
	uint64_t page = gpa >> VHU_LOG_PAGE_SHIFT;
	if (!log->bitmap || page / 8 >= log->size)
		return false;
	return __atomic_load_n(log->bitmap + page / 8, __ATOMIC_RELAXED) >> (page % 8) & 1;
}

uint64_t vhu_dirty_log_take(const struct vhu_dirty_log *log, uint8_t *out)
{
	uint64_t pages = 0;

	for (uint64_t i = 0; log->bitmap && i < log->size; i++) {
		uint8_t b = __atomic_load_n(log->bitmap + i, __ATOMIC_RELAXED);
		if (b)
			b = __atomic_exchange_n(log->bitmap + i, 0, __ATOMIC_ACQ_REL);
		if (out)
			out[i] = b;
		pages += (uint64_t)__builtin_popcount(b);
	}
	return pages;
}

void vhu_dirty_cache_flush(struct vhu_dirty_cache *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (!c->log || !c->log->bitmap || !or_word(c->log, c->e[i].word, c->e[i].bits))
			c->outside++;
	c->n = 0;
}

static void cache_or(struct vhu_dirty_cache *c, uint64_t w, uint64_t bits)
{
	for (unsigned i = c->n; i-- > 0;)
		if (c->e[i].word == w) {
			c->e[i].bits |= bits;
			return;
		}
	if (c->n == VHU_DIRTY_CACHE_WORDS)
		vhu_dirty_cache_flush(c);
	c->e[c->n].word = w;
	c->e[c->n].bits = bits;
	c->n++;
}

void vhu_dirty_cache_add_slow(struct vhu_dirty_cache *c, uint64_t gpa, uint64_t len)
{
	if (!len)
		return;
	uint64_t end = gpa + len - 1;
	if (end < gpa) {
		/* a range past the top of the address space: its tail cannot
		 * be in any bitmap */
		c->outside++;
		end = UINT64_MAX;
	}
	uint64_t first = gpa >> VHU_LOG_PAGE_SHIFT, last = end >> VHU_LOG_PAGE_SHIFT;
	uint64_t top = c->log && c->log->size ? (c->log->size - 1) / 8 : 0;
	for (uint64_t w = first >> 6; w <= last >> 6; w++) {
		if (!c->log || !c->log->size || w > top) {
			c->outside++;
			return;
		}
		cache_or(c, w, word_bits(w, first, last));
	}
}
