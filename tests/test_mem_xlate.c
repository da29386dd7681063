/* SPDX-License-Identifier: MIT */
/*
 * The memory layer's translation (vhu/xlate.h): windows that answer inline,
 * misses that go to the callback or the region table, and what must never
 * be answered from a window: memory the source refused, the other access
 * direction, a window after invalidation. And the ring using it: a burst
 * of buffers in one region costs one miss.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "vhu/mem.h"
#include "vhu/xlate.h"
#include "ringpair.h"

static unsigned char area[8192];
static unsigned calls;
static int last_access;
static bool lie;   /* answer with more than was asked */

/* [0x1000, 0x3000) -> area, readable and writable */
static void *cb(void *opaque, uint64_t addr, uint64_t *len, int access)
{
	(void)opaque;
	calls++;
	last_access = access;
	if (addr < 0x1000 || addr >= 0x3000)
		return NULL;
	if (lie) {
		*len += 1;
		return area + (addr - 0x1000);
	}
	if (*len > 0x3000 - addr)
		*len = 0x3000 - addr;
	return area + (addr - 0x1000);
}

static void callback_windows(void **state)
{
	(void)state;
	struct vhu_xlate x;
	uint64_t len;

	calls = 0;
	vhu_xlate_init(&x, cb, NULL);
	len = 16;
	assert_ptr_equal(vhu_xlate(&x, 0x1800, &len, VHU_ACCESS_READ), area + 0x800);
	assert_int_equal(len, 16);
	assert_int_equal(calls, 1);
	/* above it, inside what the callback said is contiguous: inline */
	len = 0x100;
	assert_ptr_equal(vhu_xlate(&x, 0x2f80, &len, VHU_ACCESS_READ), area + 0x1f80);
	assert_int_equal(len, 0x80);   /* cut at the window's end */
	assert_int_equal(calls, 1);
	/* below the window's start: asked again */
	len = 8;
	assert_ptr_equal(vhu_xlate(&x, 0x1000, &len, VHU_ACCESS_READ), area);
	assert_int_equal(calls, 2);
	/* the other direction has a window of its own, asked with its access */
	len = 8;
	assert_ptr_equal(vhu_xlate(&x, 0x1000, &len, VHU_ACCESS_WRITE), area);
	assert_int_equal(calls, 3);
	assert_int_equal(last_access, VHU_ACCESS_WRITE);
	len = 8;
	assert_ptr_equal(vhu_xlate(&x, 0x2000, &len, VHU_ACCESS_WRITE), area + 0x1000);
	assert_int_equal(calls, 3);
	assert_int_equal(x.misses, 3);
	/* outside: NULL, and the window stays what it was */
	len = 8;
	assert_null(vhu_xlate(&x, 0x3000, &len, VHU_ACCESS_READ));
	len = 8;
	assert_ptr_equal(vhu_xlate(&x, 0x1008, &len, VHU_ACCESS_READ), area + 8);
	assert_int_equal(calls, 4);
	/* forgotten: asked again */
	vhu_xlate_invalidate(&x);
	len = 8;
	assert_ptr_equal(vhu_xlate(&x, 0x1008, &len, VHU_ACCESS_READ), area + 8);
	assert_int_equal(calls, 5);
}

/* A callback that answers with more than it was asked breaks its contract:
 * nothing it said is used, or cached. */
static void callback_lying(void **state)
{
	(void)state;
	struct vhu_xlate x;
	uint64_t len = 16;

	calls = 0;
	lie = true;
	vhu_xlate_init(&x, cb, NULL);
	assert_null(vhu_xlate(&x, 0x1800, &len, VHU_ACCESS_READ));
	assert_int_equal(x.win[0].len, 0);   /* nothing of it kept */
	lie = false;
	len = 16;
	assert_ptr_equal(vhu_xlate(&x, 0x1800, &len, VHU_ACCESS_READ), area + 0x800);
	assert_int_equal(calls, 2);
}

static int add_region(struct vhu_mem *m, uint64_t gpa, uint64_t size)
{
	int fd = memfd_create("xlate", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -errno;
	struct vhu_user_mem_region reg = { gpa, size, 0x7f0000000000ull + gpa, 0 };
	return vhu_mem_add(m, &reg, fd);
}

/* Through a region table the window is the whole region. */
static void region_windows(void **state)
{
	(void)state;
	struct vhu_mem m;
	struct vhu_xlate x;
	uint64_t len;

	vhu_mem_init(&m);
	assert_int_equal(add_region(&m, 0x10000, 0x4000), 0);
	assert_int_equal(add_region(&m, 0x14000, 0x4000), 0);   /* adjacent */
	assert_int_equal(add_region(&m, 0x20000, 0x1000), 0);   /* after a gap */
	vhu_xlate_init_mem(&x, &m);
	len = 4;
	unsigned char *a = vhu_xlate(&x, 0x13ffc, &len, VHU_ACCESS_READ);
	assert_ptr_equal(a, m.r[0].host + 0x3ffc);
	len = 4;
	assert_ptr_equal(vhu_xlate(&x, 0x10000, &len, VHU_ACCESS_READ), m.r[0].host);
	assert_int_equal(x.misses, 1);
	/* a buffer running into the adjacent region: cut at the end */
	len = 0x10;
	assert_ptr_equal(vhu_xlate(&x, 0x13ff8, &len, VHU_ACCESS_READ), m.r[0].host + 0x3ff8);
	assert_int_equal(len, 8);
	len = 8;
	assert_ptr_equal(vhu_xlate(&x, 0x14000, &len, VHU_ACCESS_READ), m.r[1].host);
	assert_int_equal(x.misses, 2);
	/* the gap */
	len = 8;
	assert_null(vhu_xlate(&x, 0x18000, &len, VHU_ACCESS_WRITE));
	assert_null(vhu_xlate(&x, 0x0, &len, VHU_ACCESS_WRITE));
	len = 8;
	assert_ptr_equal(vhu_xlate(&x, 0x20ff8, &len, VHU_ACCESS_WRITE), m.r[2].host + 0xff8);
	len = 8;
	assert_null(vhu_xlate(&x, 0x21000, &len, VHU_ACCESS_WRITE));
	vhu_mem_clear(&m);
}

/* The ring translates through the cache: 64 one-segment buffers spread over
 * one region cost one miss, not 64 searches. */
static void ring_burst_misses(void **state)
{
	(void)state;
	for (int packed = 0; packed < 2; packed++) {
		struct ringpair rp;
		struct vhu_vq_elem e[64];
		struct iovec iov[64];
		int tok[64];
		uint64_t f = VHU_BIT(VHU_F_VERSION_1) | (packed ? VHU_BIT(VHU_F_RING_PACKED) : 0);
		assert_int_equal(rp_init(&rp, 64, f, 64 * 1024, 64 * 1024), 0);
		for (unsigned i = 0; i < 64; i++) {
			struct vhu_sg sg = { GM_DATA_BASE + 1000 * i, 64 };
			assert_int_equal(vhu_drv_vq_add(&rp.drv, &sg, 1, 0, &tok[i]), 0);
		}
		vhu_drv_vq_publish(&rp.drv);
		assert_int_equal(vhu_dev_vq_pop_burst(&rp.dev, e, 64, iov, 64, 1), 64);
		assert_int_equal(vhu_dev_vq_xlate_misses(&rp.dev), 1);
		for (unsigned i = 0; i < 64; i++) {
			unsigned char want[64];
			gm_read(&rp.gm, GM_DATA_BASE + 1000 * i, want, 64);
			assert_memory_equal(e[i].iov[0].iov_base, want, 64);
		}
		rp_free(&rp);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(callback_windows),
		cmocka_unit_test(callback_lying),
		cmocka_unit_test(region_windows),
		cmocka_unit_test(ring_burst_misses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
