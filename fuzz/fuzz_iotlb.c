/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the device IOTLB and translation through it, driven by
 * a script of IOTLB messages (update, invalidate; any ranges, permissions
 * and sizes, wrapping or huge) mixed with translations for reading and
 * writing. Checked after every step: the table stays sorted, disjoint and
 * within its bound; every translation that answers lies wholly inside one
 * region and agrees with a fresh lookup of a mapping that permits that
 * access, so no stale or out-of-range mapping is ever used.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhu/iotlb.h"
#include "vhu/mem.h"
#include "vhu/vhost_user.h"
#include "vhu/xlate.h"

#define MAX_ENTRIES 16
#define UBASE 0x7f0000000000ull

static struct vhu_mem mem;

static void setup(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	vhu_mem_init(&mem);
	/* two regions, not contiguous in user space */
	const uint64_t at[2][3] = { { 0x0, 0x10000, UBASE }, { 0x100000, 0x8000, UBASE + 0x20000 } };
	for (int i = 0; i < 2; i++) {
		int fd = memfd_create("fuzz-iotlb", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		assert(fd >= 0 && ftruncate(fd, (off_t)at[i][1]) == 0);
		struct vhu_user_mem_region r = { at[i][0], at[i][1], at[i][2], 0 };
		assert(vhu_mem_add(&mem, &r, fd) == 0);
	}
}

struct step {
	uint8_t op, perm;
	uint64_t iova, size, uaddr;
} __attribute__((packed));

static void check_table(const struct vhu_iotlb *t)
{
	assert(t->n <= MAX_ENTRIES);
	for (unsigned i = 0; i < t->n; i++) {
		assert(t->e[i].size && t->e[i].iova + (t->e[i].size - 1) >= t->e[i].iova);
		if (i)
			assert(t->e[i - 1].iova + (t->e[i - 1].size - 1) < t->e[i].iova);
	}
}

static void check_answer(const struct vhu_iotlb *t, uint64_t iova, uint64_t asked, uint64_t len, int access,
			 const unsigned char *p)
{
	assert(len >= 1 && len <= asked);
	bool inside = false;
	for (unsigned i = 0; i < mem.n; i++)
		if (p >= mem.r[i].host && (uint64_t)(p - mem.r[i].host) < mem.r[i].size)
			inside = len <= mem.r[i].size - (uint64_t)(p - mem.r[i].host);
	assert(inside);
	uint64_t l = len, ua;
	assert(vhu_iotlb_lookup(t, iova, &l, access, &ua) == 0);
	assert(l >= len && vhu_mem_uaddr(&mem, ua, len) == p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhu_iotlb t;
	struct vhu_xlate x;
	setup();
	vhu_iotlb_init(&t, MAX_ENTRIES);
	vhu_xlate_init_iotlb(&x, &t, &mem);
	for (size_t o = 0; o + sizeof(struct step) <= size; o += sizeof(struct step)) {
		struct step s;
		memcpy(&s, data + o, sizeof(s));
		if (s.op & 0x80) {	/* small numbers: ranges that meet and overlap */
			s.iova &= 0x3ffff;
			s.size &= 0x3ffff;
			s.uaddr = UBASE + (s.uaddr & 0x3ffff);
		}
		switch (s.op & 7) {
		case 0:
		case 1:
			(void)vhu_iotlb_update(&t, s.iova, s.size, s.uaddr, s.perm);
			vhu_xlate_invalidate(&x);	/* as the back-end does around any change */
			break;
		case 2:
			(void)vhu_iotlb_invalidate(&t, s.iova, s.size);
			vhu_xlate_invalidate(&x);
			break;
		default: {
			int access = s.op & 1 ? VHU_ACCESS_WRITE : VHU_ACCESS_READ;
			uint64_t asked = s.size ? s.size : 1, len = asked;
			unsigned char *p = vhu_xlate(&x, s.iova, &len, access);
			if (p)
				check_answer(&t, s.iova, asked, len, access, p);
			break;
		}
		}
		check_table(&t);
	}
	vhu_iotlb_clear(&t);
	return 0;
}
