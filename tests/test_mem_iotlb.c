/* SPDX-License-Identifier: MIT */
/*
 * The device IOTLB (vhu/iotlb.h) and translation through it (vhu/xlate.h):
 * updates that replace what they overlap, invalidations that cut mappings
 * at their edges, permissions, a bounded table, hostile ranges, and a
 * randomized comparison with a model that keeps one answer per unit of
 * address space.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "vhu/iotlb.h"
#include "vhu/mem.h"
#include "vhu/vhost_user.h"
#include "vhu/virtio.h"
#include "vhu/vq.h"
#include "vhu/xlate.h"

#define RO VHU_USER_IOTLB_PERM_RO
#define WO VHU_USER_IOTLB_PERM_WO
#define RW VHU_USER_IOTLB_PERM_RW

static void assert_sorted_disjoint(const struct vhu_iotlb *t)
{
	for (unsigned i = 0; i < t->n; i++) {
		assert_true(t->e[i].size > 0);
		if (i)
			assert_true(t->e[i - 1].iova + (t->e[i - 1].size - 1) < t->e[i].iova);
	}
}

static void update_find_lookup(void **state)
{
	(void)state;
	struct vhu_iotlb t;
	vhu_iotlb_init(&t, 0);
	assert_int_equal(vhu_iotlb_update(&t, 0x10000, 0x1000, 0x7f0000, RW), 0);
	assert_int_equal(vhu_iotlb_update(&t, 0x2000, 0x1000, 0x900000, RO), 0);
	assert_sorted_disjoint(&t);
	assert_null(vhu_iotlb_find(&t, 0x1fff));
	assert_non_null(vhu_iotlb_find(&t, 0x2000));
	assert_non_null(vhu_iotlb_find(&t, 0x10fff));
	assert_null(vhu_iotlb_find(&t, 0x11000));
	uint64_t len = 0x100, ua = 0;
	assert_int_equal(vhu_iotlb_lookup(&t, 0x10ff0, &len, VHU_ACCESS_WRITE, &ua), 0);
	assert_int_equal(ua, 0x7f0ff0);
	assert_int_equal(len, 0x10);   /* cut at the mapping's end */
	len = 8;
	assert_int_equal(vhu_iotlb_lookup(&t, 0x2008, &len, VHU_ACCESS_WRITE, &ua), -EACCES);   /* read-only */
	assert_int_equal(vhu_iotlb_lookup(&t, 0x2008, &len, VHU_ACCESS_READ, &ua), 0);
	assert_int_equal(ua, 0x900008);
	assert_int_equal(vhu_iotlb_lookup(&t, 0x5000, &len, VHU_ACCESS_READ, &ua), -ENOENT);
	assert_int_equal(vhu_iotlb_update(&t, 0x30000, 0x1000, 0x1000, WO), 0);
	len = 1;
	assert_int_equal(vhu_iotlb_lookup(&t, 0x30000, &len, VHU_ACCESS_READ, &ua), -EACCES);   /* write-only */
	vhu_iotlb_clear(&t);
}

/* An update in the middle of a mapping splits it; one across several
 * replaces them; invalidations cut at their edges. */
static void overlap_and_invalidate(void **state)
{
	(void)state;
	struct vhu_iotlb t;
	vhu_iotlb_init(&t, 0);
	assert_int_equal(vhu_iotlb_update(&t, 0x0, 0x10000, 0x100000, RW), 0);
	assert_int_equal(vhu_iotlb_update(&t, 0x4000, 0x1000, 0x900000, RO), 0);
	assert_int_equal(t.n, 3);
	assert_sorted_disjoint(&t);
	uint64_t len = 1, ua;
	assert_int_equal(vhu_iotlb_lookup(&t, 0x5000, &len, VHU_ACCESS_READ, &ua), 0);
	assert_int_equal(ua, 0x105000);   /* the tail keeps its own translation */
	assert_int_equal(vhu_iotlb_lookup(&t, 0x4800, &len, VHU_ACCESS_READ, &ua), 0);
	assert_int_equal(ua, 0x900800);
	/* across all three */
	assert_int_equal(vhu_iotlb_update(&t, 0x3000, 0x3000, 0x500000, RW), 0);
	assert_int_equal(t.n, 3);
	assert_sorted_disjoint(&t);
	/* an invalidation inside one: two pieces left of it */
	assert_int_equal(vhu_iotlb_invalidate(&t, 0x8000, 0x1000), 1);
	assert_null(vhu_iotlb_find(&t, 0x8800));
	assert_non_null(vhu_iotlb_find(&t, 0x7fff));
	assert_non_null(vhu_iotlb_find(&t, 0x9000));
	/* nothing there */
	assert_int_equal(vhu_iotlb_invalidate(&t, 0x80000, 0x1000), 0);
	/* everything, up to the top of the address space */
	unsigned before = t.n;
	assert_int_equal(vhu_iotlb_invalidate(&t, 0, UINT64_MAX), (int)before);
	assert_int_equal(t.n, 0);
	vhu_iotlb_clear(&t);
}

/* What a front-end can send that must be refused, leaving the table as it was. */
static void hostile_ranges(void **state)
{
	(void)state;
	struct vhu_iotlb t;
	vhu_iotlb_init(&t, 0);
	assert_int_equal(vhu_iotlb_update(&t, 0x1000, 0x1000, 0x1000, RW), 0);
	assert_int_equal(vhu_iotlb_update(&t, 0x1000, 0, 0x1000, RW), -EINVAL);        /* empty */
	assert_int_equal(vhu_iotlb_update(&t, UINT64_MAX, 2, 0x1000, RW), -EINVAL);    /* IOVA wraps */
	assert_int_equal(vhu_iotlb_update(&t, 0x1000, 0x2000, UINT64_MAX - 0x10, RW), -EINVAL);   /* uaddr wraps */
	for (unsigned p = 0; p < 256; p++)
		if (p != RO && p != WO && p != RW)
			assert_int_equal(vhu_iotlb_update(&t, 0x1000, 0x1000, 0x1000, p), -EINVAL);
	assert_int_equal(vhu_iotlb_invalidate(&t, 0x1000, 0), -EINVAL);
	assert_int_equal(vhu_iotlb_invalidate(&t, 2, UINT64_MAX), -EINVAL);
	assert_int_equal(t.n, 1);
	/* ranges ending at the very top are fine */
	assert_int_equal(vhu_iotlb_update(&t, UINT64_MAX - 0xfff, 0x1000, 0x2000, RW), 0);
	uint64_t len = UINT64_MAX, ua;
	assert_int_equal(vhu_iotlb_lookup(&t, UINT64_MAX, &len, VHU_ACCESS_READ, &ua), 0);
	assert_int_equal(len, 1);
	assert_int_equal(ua, 0x2fff);
	vhu_iotlb_clear(&t);
}

/* A flood of updates never holds more than max mappings, and what it
 * holds still answers right. */
static void bounded(void **state)
{
	(void)state;
	struct vhu_iotlb t;
	vhu_iotlb_init(&t, 64);
	for (uint64_t i = 0; i < 100000; i++) {
		uint64_t iova = (i * 7919 % 50000) << 12;
		assert_int_equal(vhu_iotlb_update(&t, iova, 0x1000, 0x40000000 + iova, RW), 0);
		assert_true(t.n <= 64);
		const struct vhu_iotlb_entry *e = vhu_iotlb_find(&t, iova + 5);
		assert_non_null(e);   /* the newest is never the victim */
		assert_int_equal(e->uaddr, 0x40000000 + iova);
	}
	assert_sorted_disjoint(&t);
	assert_true(t.evictions >= 100000 - 64);
	/* invalidations that split mappings of a full table (fuzz_iotlb found
	 * the table growing past its bound this way) */
	uint64_t at[64];
	unsigned n = t.n;
	for (unsigned i = 0; i < n; i++)
		at[i] = t.e[i].iova + 0x400;
	for (unsigned i = 0; i < n; i++) {
		assert_true(vhu_iotlb_invalidate(&t, at[i], 0x10) >= 0);   /* 0: evicted meanwhile */
		assert_true(t.n <= 64);
		assert_null(vhu_iotlb_find(&t, at[i]));
	}
	assert_sorted_disjoint(&t);
	assert_true(t.cap <= 64 + 2 + 64);   /* memory bounded too */
	vhu_iotlb_clear(&t);
}

/*
 * Random updates and invalidations over 256 units of 16 bytes against a
 * model holding, for each unit, the user address and permission it maps to.
 */
#define UNITS 256
struct unit {
	uint64_t uaddr;
	unsigned perm;   /* 0: unmapped */
};

static void model_compare(void **state)
{
	(void)state;
	struct vhu_iotlb t;
	struct unit model[UNITS];
	memset(model, 0, sizeof(model));
	vhu_iotlb_init(&t, 100000);   /* no eviction: the model has none */
	srand(7);
	for (int op = 0; op < 20000; op++) {
		unsigned a = (unsigned)rand() % UNITS, n = 1 + (unsigned)rand() % (UNITS - a);
		if (rand() % 3) {
			unsigned perm = 1 + (unsigned)rand() % 3;
			uint64_t ua = 0x100000 + (uint64_t)(rand() % 4096) * 16;
			assert_int_equal(vhu_iotlb_update(&t, a * 16ull, n * 16ull, ua, perm), 0);
			for (unsigned u = a; u < a + n; u++)
				model[u] = (struct unit){ ua + (u - a) * 16ull, perm };
		} else {
			assert_true(vhu_iotlb_invalidate(&t, a * 16ull, n * 16ull) >= 0);
			for (unsigned u = a; u < a + n; u++)
				model[u].perm = 0;
		}
		assert_sorted_disjoint(&t);
		for (unsigned u = 0; u < UNITS; u++) {
			uint64_t len = 16, ua = 0;
			int r = vhu_iotlb_lookup(&t, u * 16ull + 3, &len, VHU_ACCESS_READ, &ua);
			if (!model[u].perm) {
				assert_int_equal(r, -ENOENT);
				continue;
			}
			assert_int_equal(r, model[u].perm & RO ? 0 : -EACCES);
			if (!r) {
				assert_int_equal(ua, model[u].uaddr + 3);
				/* cut at the mapping's end, which is never inside a unit;
				 * past it only where the next unit continues it */
				bool goes_on = u + 1 < UNITS && model[u + 1].perm == model[u].perm &&
					       model[u + 1].uaddr == model[u].uaddr + 16;
				assert_true(len == 13 || (len == 16 && goes_on));
			}
		}
	}
	vhu_iotlb_clear(&t);
}

static int add_region(struct vhu_mem *m, uint64_t gpa, uint64_t size, uint64_t uaddr)
{
	int fd = memfd_create("iotlb", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -errno;
	struct vhu_user_mem_region reg = { gpa, size, uaddr, 0 };
	return vhu_mem_add(m, &reg, fd);
}

/* Translation through the IOTLB: a window is the part of one mapping that
 * one region holds, for the access the mapping allows; a miss says what
 * it missed. */
static void xlate_through_iotlb(void **state)
{
	(void)state;
	struct vhu_mem m;
	struct vhu_iotlb t;
	struct vhu_xlate x;
	vhu_mem_init(&m);
	vhu_iotlb_init(&t, 0);
	assert_int_equal(add_region(&m, 0x0, 0x4000, 0x7f0000000000ull), 0);
	assert_int_equal(add_region(&m, 0x10000, 0x4000, 0x7f0000100000ull), 0);
	/* IOVA 0x80000.. -> the last page of region 0 then (not contiguous in
	 * user space) nothing: the window stops at the region's end */
	assert_int_equal(vhu_iotlb_update(&t, 0x80000, 0x2000, 0x7f0000003000ull, RW), 0);
	assert_int_equal(vhu_iotlb_update(&t, 0x90000, 0x1000, 0x7f0000101000ull, RO), 0);
	vhu_xlate_init_iotlb(&x, &t, &m);
	uint64_t len = 0x2000;
	unsigned char *p = vhu_xlate(&x, 0x80010, &len, VHU_ACCESS_WRITE);
	assert_ptr_equal(p, m.r[0].host + 0x3010);
	assert_int_equal(len, 0xff0);
	assert_int_equal(x.win[1].gpa, 0x80000);
	assert_int_equal(x.win[1].len, 0x1000);
	len = 0x10;
	assert_null(vhu_xlate(&x, 0x81000, &len, VHU_ACCESS_WRITE));   /* mapped to memory no region holds */
	assert_int_equal(x.iotlb_missing, 0);
	len = 8;
	assert_null(vhu_xlate(&x, 0x90000, &len, VHU_ACCESS_WRITE));   /* read-only mapping */
	assert_ptr_equal(vhu_xlate(&x, 0x90008, &len, VHU_ACCESS_READ), m.r[1].host + 0x1008);
	assert_null(vhu_xlate(&x, 0xa0000, &len, VHU_ACCESS_READ));   /* a miss */
	assert_int_equal(x.iotlb_missing, VHU_ACCESS_READ);
	assert_int_equal(x.missing_iova, 0xa0000);
	/* invalidated: the caller forgets the windows, and the next asks again */
	assert_int_equal(vhu_iotlb_invalidate(&t, 0x90000, 0x1000), 1);
	vhu_xlate_invalidate(&x);
	x.iotlb_missing = 0;   /* what the ring does before each chain */
	assert_null(vhu_xlate(&x, 0x90008, &len, VHU_ACCESS_READ));
	assert_int_equal(x.missing_iova, 0x90008);
	vhu_iotlb_clear(&t);
	vhu_mem_clear(&m);
}

/*
 * A ring whose buffers are I/O virtual addresses: a chain with a buffer the
 * IOTLB lacks stays in the ring (-EAGAIN, the miss named, the queue not
 * broken) and is taken whole once the mapping arrives; a write through a
 * read-only mapping is a fault, not a miss. Split and packed; a burst stops
 * before the chain that misses.
 */
static void ring_waits_for_mapping(bool packed)
{
	struct vhu_mem m;
	struct vhu_iotlb t;
	vhu_mem_init(&m);
	vhu_iotlb_init(&t, 0);
	assert_int_equal(add_region(&m, 0x0, 0x100000, 0x7f0000000000ull), 0);
	uint64_t features = (1ull << VHU_F_VERSION_1) | (1ull << VHU_F_ACCESS_PLATFORM) |
			    (packed ? 1ull << VHU_F_RING_PACKED : 0);
	struct vhu_vq_layout l;
	vhu_vq_layout(8, packed, &l);
	unsigned char *ring = aligned_alloc(4096, l.size);
	assert_non_null(ring);
	memset(ring, 0, l.size);
	struct vhu_vq_config c = { .num = 8, .features = features, .desc = ring + l.desc_off,
				   .driver_area = ring + l.driver_off, .device_area = ring + l.device_off,
				   .mem = &m, .iotlb = &t };
	struct vhu_drv_vq drv;
	struct vhu_dev_vq dev;
	assert_int_equal(vhu_drv_vq_init(&drv, &c, NULL, 0, 0), 0);
	assert_int_equal(vhu_dev_vq_init(&dev, &c), 0);
	/* IOVA 0x40000000 -> region offset 0x1000 (read), 0x50000000 -> 0x8000 (write) */
	assert_int_equal(vhu_iotlb_update(&t, 0x40000000, 0x1000, 0x7f0000001000ull, RO), 0);
	struct vhu_sg sg[2] = { { 0x40000010, 64 }, { 0x50000020, 128 } };
	assert_int_equal(vhu_drv_vq_add(&drv, sg, 1, 1, (void *)1), 0);
	assert_int_equal(vhu_drv_vq_add(&drv, sg, 1, 1, (void *)2), 0);
	vhu_drv_vq_publish(&drv);

	struct vhu_vq_elem e[2];
	struct iovec iov[8];
	uint64_t iova;
	int access;
	assert_int_equal(vhu_dev_vq_pop(&dev, &e[0], iov, 8), -EAGAIN);
	assert_true(vhu_dev_vq_iotlb_miss(&dev, &iova, &access));
	assert_int_equal(iova, 0x50000020);
	assert_int_equal(access, VHU_ACCESS_WRITE);
	assert_int_equal(vhu_dev_vq_broken(&dev), 0);
	assert_true(vhu_dev_vq_has_avail(&dev));
	assert_int_equal(vhu_dev_vq_pop(&dev, &e[0], iov, 8), -EAGAIN);   /* still there, still missing */

	/* the wrong permission is the IOMMU's answer, not a miss */
	assert_int_equal(vhu_iotlb_update(&t, 0x50000000, 0x1000, 0x7f0000008000ull, RO), 0);
	vhu_xlate_invalidate(&dev.xl);
	assert_int_equal(vhu_dev_vq_pop(&dev, &e[0], iov, 8), -EFAULT);
	assert_false(vhu_dev_vq_iotlb_miss(&dev, &iova, &access));
	assert_int_equal(vhu_dev_vq_push(&dev, &e[0], 0), 0);

	assert_int_equal(vhu_iotlb_update(&t, 0x50000000, 0x1000, 0x7f0000008000ull, WO), 0);
	vhu_xlate_invalidate(&dev.xl);
	assert_int_equal(vhu_dev_vq_pop(&dev, &e[1], iov, 8), 1);
	assert_int_equal(e[1].out_num, 1);
	assert_int_equal(e[1].in_num, 1);
	assert_ptr_equal(e[1].iov[0].iov_base, m.r[0].host + 0x1010);
	assert_ptr_equal(e[1].iov[1].iov_base, m.r[0].host + 0x8020);
	assert_int_equal(e[1].iov[1].iov_len, 128);
	assert_int_equal(vhu_dev_vq_push(&dev, &e[1], 128), 0);

	/* a burst of two where the second misses: one taken, then -EAGAIN */
	struct vhu_sg far[2] = { { 0x40000000, 16 }, { 0x60000000, 16 } };
	assert_int_equal(vhu_drv_vq_add(&drv, sg, 1, 1, (void *)3), 0);
	assert_int_equal(vhu_drv_vq_add(&drv, far, 1, 1, (void *)4), 0);
	vhu_drv_vq_publish(&drv);
	struct iovec biov[8];
	assert_int_equal(vhu_dev_vq_pop_burst(&dev, e, 2, biov, 8, 4), 1);
	assert_int_equal(vhu_dev_vq_pop_burst(&dev, &e[1], 1, biov + 2, 6, 4), -EAGAIN);
	assert_true(vhu_dev_vq_iotlb_miss(&dev, &iova, &access));
	assert_int_equal(iova, 0x60000000);
	vhu_dev_vq_destroy(&dev);
	vhu_drv_vq_destroy(&drv);
	free(ring);
	vhu_iotlb_clear(&t);
	vhu_mem_clear(&m);
}

static void ring_waits_for_mapping_split(void **state)
{
	(void)state;
	ring_waits_for_mapping(false);
}

static void ring_waits_for_mapping_packed(void **state)
{
	(void)state;
	ring_waits_for_mapping(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(update_find_lookup),   cmocka_unit_test(overlap_and_invalidate),
		cmocka_unit_test(hostile_ranges),       cmocka_unit_test(bounded),
		cmocka_unit_test(model_compare),        cmocka_unit_test(xlate_through_iotlb),
		cmocka_unit_test(ring_waits_for_mapping_split), cmocka_unit_test(ring_waits_for_mapping_packed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
