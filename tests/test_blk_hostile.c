/* SPDX-License-Identifier: MIT */
/*
 * Malicious drivers against vhu-blk itself (argv[1]), one daemon for the
 * whole run and a new connection for each case. Guest memory is three
 * regions of one memfd with a hole between the second and the third;
 * ring 0 lives in the first, ring 1 in the third. In each case the driver
 * corrupts ring 0 (or reconfigures it) while the daemon serves it, and then:
 *   - the bad request comes back with nothing written, or the ring is
 *     broken (error eventfd, DEVICE_NEEDS_RESET in the status);
 *   - ring 1 still serves reads and writes;
 *   - no byte of guest memory outside the device-writable buffers the
 *     driver offered has changed (a shadow copy of every byte the driver
 *     wrote is compared with the memfd at the end of each case);
 *   - the image holds exactly what acknowledged writes put there.
 * At the end the daemon serves a clean session, holds as many fds as
 * before the first case, and exits 0 on SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "minife.h"
#include "vhu/virtio.h"
#include "vhu/virtio_blk.h"

#define QSIZE 64
#define IMG_SECTORS 4096                  /* 2 MiB */
#define MEMFD_SIZE 0x100000u
#define GPA_A 0x000000u                   /* 512 KiB at memfd offset 0 */
#define GPA_B 0x080000u                   /* 256 KiB right after A, at offset 0x80000 */
#define GPA_B_END 0x0c0000u
#define GPA_C 0x100000u                   /* 256 KiB after a 256 KiB hole, at offset 0xc0000 */
#define NSLOT 16

static const char *vhu_blk;
static char sock_path[64], img_path[64];
static pid_t daemon_pid;
static int daemon_fds_idle;
static int img_fd;

/* per ring: the ring, then request headers (status at +16), then data */
static const uint64_t ring_gpa[2] = { GPA_A, GPA_C };
static const uint64_t hdr_gpa[2] = { GPA_A + 0x10000, GPA_C + 0x8000 };
static const uint64_t data_gpa[2] = { GPA_A + 0x20000, GPA_C + 0x10000 };

struct hctx {
	struct fe f;
	bool packed;
	unsigned char shadow[MEMFD_SIZE];     /* what guest memory must hold ... */
	bool writable[MEMFD_SIZE];            /* ... except where the device may write */
	unsigned char image[IMG_SECTORS * 512]; /* what the image must hold */
};

static size_t off_of(struct hctx *h, uint64_t gpa)
{
	unsigned char *p = fe_gpa(&h->f, gpa);
	assert_non_null(p);
	return (size_t)(p - h->f.mem);
}

/* The driver writes guest memory: the shadow follows. */
static void put(struct hctx *h, uint64_t gpa, const void *src, size_t n)
{
	size_t o = off_of(h, gpa);
	memcpy(h->f.mem + o, src, n);
	memcpy(h->shadow + o, src, n);
}

/* Mark a range (in guest memory) the device may write. */
static void allow_write(struct hctx *h, uint64_t gpa, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		h->writable[off_of(h, gpa + i)] = true;
}

static void check_memory(struct hctx *h)
{
	for (size_t o = 0; o < MEMFD_SIZE; o++)
		if (!h->writable[o] && h->f.mem[o] != h->shadow[o])
			fail_msg("guest memory at memfd offset 0x%zx changed: 0x%02x, expected 0x%02x", o,
				 h->f.mem[o], h->shadow[o]);
}

static void check_image(struct hctx *h)
{
	static unsigned char now[IMG_SECTORS * 512];
	assert_int_equal(pread(img_fd, now, sizeof(now), 0), (ssize_t)sizeof(now));
	for (size_t i = 0; i < sizeof(now); i += 512)
		if (memcmp(now + i, h->image + i, 512))
			fail_msg("image sector %zu differs from what acknowledged writes put there", i / 512);
}

static void session_begin(struct hctx *h, bool packed)
{
	memset(h, 0, sizeof(*h));
	h->packed = packed;
	int s = vhu_user_connect(sock_path, 5000);
	assert_true(s >= 0);
	fe_init(&h->f, s, MEMFD_SIZE);
	h->f.regions[0] = (struct fe_region){ GPA_A, 0x80000, 0 };
	h->f.regions[1] = (struct fe_region){ GPA_B, 0x40000, 0x80000 };
	h->f.regions[2] = (struct fe_region){ GPA_C, 0x40000, 0xc0000 };
	h->f.nregions = 3;
	memset(h->f.mem, 0xcc, MEMFD_SIZE);
	memset(h->shadow, 0xcc, MEMFD_SIZE);
	assert_int_equal(pread(img_fd, h->image, sizeof(h->image), 0), (ssize_t)sizeof(h->image));
	uint64_t pf = (1ull << VHU_USER_PROTOCOL_F_MQ) | (1ull << VHU_USER_PROTOCOL_F_REPLY_ACK) |
		      (1ull << VHU_USER_PROTOCOL_F_CONFIG) | (1ull << VHU_USER_PROTOCOL_F_STATUS) |
		      (1ull << VHU_USER_PROTOCOL_F_RESET_DEVICE) | (1ull << VHU_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
	uint64_t want = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_F_INDIRECT_DESC) |
			(packed ? VHU_BIT(VHU_F_RING_PACKED) : 0) | VHU_BIT(VHU_BLK_F_FLUSH);
	assert_int_equal(fe_negotiate(&h->f, want, pf), 2);
	fe_mem_table(&h->f);
	for (unsigned qi = 0; qi < 2; qi++) {
		fe_setup_ring_at(&h->f, qi, ring_gpa[qi], QSIZE, true);
		allow_write(h, ring_gpa[qi], h->f.q[qi].layout.size);
	}
}

/* After a hang-up the daemon finishes the session (drains, unmaps, closes
 * the session's fds) and listens again: wait for its fd count to be back
 * to what it was at rest (up to 10 s, for valgrind). */
static void wait_daemon_idle(void)
{
	for (int i = 0; i < 1000 && count_fds_of(daemon_pid) != daemon_fds_idle; i++)
		usleep(10000);
	assert_int_equal(count_fds_of(daemon_pid), daemon_fds_idle);
}

static void session_end(struct hctx *h)
{
	check_memory(h);
	check_image(h);
	fe_close(&h->f);
	wait_daemon_idle();
}

/* Does the whole range lie in guest memory (across adjacent regions)? */
static bool in_memory(struct hctx *h, uint64_t gpa, uint64_t len)
{
	if (len > MEMFD_SIZE)
		return false;
	for (uint64_t i = 0; i < len; i++)
		if (!fe_gpa(&h->f, gpa + i))
			return false;
	return true;
}

/* Offer a chain on ring qi through the driver engine. The device may write
 * the writable buffers (sg[out..]) that lie whole in guest memory; the
 * others it must refuse, so their bytes must stay as they are. */
static void offer(struct hctx *h, unsigned qi, const struct vhu_sg *sg, unsigned out, unsigned in, uintptr_t tok)
{
	for (unsigned i = out; i < out + in; i++)
		if (in_memory(h, sg[i].addr, sg[i].len))
			allow_write(h, sg[i].addr, sg[i].len);
	assert_int_equal(vhu_drv_vq_add(&h->f.q[qi].drv, sg, out, in, (void *)tok), 0);
}

/* A header in slot s of ring qi; its status byte is preset to 0xee. */
static struct vhu_sg header(struct hctx *h, unsigned qi, unsigned s, uint32_t type, uint64_t sector)
{
	struct vhu_blk_req_hdr hd = { type, 0, sector };
	put(h, hdr_gpa[qi] + 32 * s, &hd, sizeof(hd));
	put(h, hdr_gpa[qi] + 32 * s + 16, &(unsigned char){ 0xee }, 1);
	return (struct vhu_sg){ hdr_gpa[qi] + 32 * s, 16 };
}

static struct vhu_sg status_of(unsigned qi, unsigned s) { return (struct vhu_sg){ hdr_gpa[qi] + 32 * s + 16, 1 }; }
static int status_byte(struct hctx *h, unsigned qi, unsigned s)
{
	return *fe_gpa(&h->f, hdr_gpa[qi] + 32 * s + 16);
}

static void pattern(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 29 + i * 13 + (i >> 9));
}

/* A write of len bytes at gpa, or a read into it; waits for it and returns
 * the status byte (-1: the device wrote none) and the used length. A write
 * carries data (or, if NULL, a pattern never written before); if the device
 * acknowledges it, it goes into the expected image. */
static int rw_data(struct hctx *h, unsigned qi, uint32_t type, uint64_t sector, uint64_t gpa, uint32_t len,
		   const unsigned char *data, uint32_t *used)
{
	static unsigned writes;    /* across sessions: each write changes the image */
	struct vhu_sg sg[3] = { header(h, qi, 0, type, sector), { gpa, len }, status_of(qi, 0) };
	unsigned char buf[8192];
	bool out = type == VHU_BLK_T_OUT;
	if (out && in_memory(h, gpa, len)) {
		assert_true(len <= sizeof(buf));
		if (data)
			memcpy(buf, data, len);
		else
			pattern(buf, len, ++writes);
		/* byte by byte: the buffer may straddle two regions */
		for (uint32_t i = 0; i < len; i++)
			put(h, gpa + i, &buf[i], 1);
	}
	offer(h, qi, sg, out ? 2 : 1, out ? 1 : 2, 1);
	void *tok;
	uint32_t l;
	fe_kick(&h->f, qi);
	fe_wait_used(&h->f, qi, &tok, &l);
	assert_ptr_equal(tok, (void *)1);
	if (used)
		*used = l;
	int st = status_byte(h, qi, 0) == 0xee ? -1 : status_byte(h, qi, 0);
	if (out && st == VHU_BLK_S_OK)
		memcpy(h->image + sector * 512, buf, len);
	return st;
}

static int rw(struct hctx *h, unsigned qi, uint32_t type, uint64_t sector, uint64_t gpa, uint32_t len,
	      uint32_t *used)
{
	return rw_data(h, qi, type, sector, gpa, len, NULL, used);
}

/* Ring qi serves: a 4 KiB write, and reading it back. */
static void serves(struct hctx *h, unsigned qi, uint64_t sector)
{
	uint32_t used;
	assert_int_equal(rw(h, qi, VHU_BLK_T_OUT, sector, data_gpa[qi], 4096, NULL), VHU_BLK_S_OK);
	assert_int_equal(rw(h, qi, VHU_BLK_T_IN, sector, data_gpa[qi] + 4096, 4096, &used), VHU_BLK_S_OK);
	assert_int_equal(used, 4097);
	assert_memory_equal(fe_gpa(&h->f, data_gpa[qi] + 4096), h->image + sector * 512, 4096);
}

static void kick_raw(struct hctx *h, unsigned qi)
{
	assert_int_equal(write(h->f.q[qi].kick, &(uint64_t){ 1 }, 8), 8);
}

static uint64_t device_status(struct hctx *h)
{
	return fe_req(&h->f, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL);
}

/* Ring qi is broken: its error eventfd fires and the status asks for a
 * reset; the other ring still serves. */
static void expect_broken(struct hctx *h, unsigned qi)
{
	struct pollfd p = { .fd = h->f.q[qi].err, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_true(device_status(h) & VHU_STATUS_DEVICE_NEEDS_RESET);
	serves(h, !qi, 512 + 64 * qi);
}

/* No reset asked for, and both rings serve. */
static void expect_healthy(struct hctx *h)
{
	assert_false(device_status(h) & VHU_STATUS_DEVICE_NEEDS_RESET);
	serves(h, 1, 512);
	serves(h, 0, 256);
}

/* ---- buffers the device must refuse, each on its own -------------------- */

/* Not hostile, but the boundary the hostile cases lean on: a buffer that
 * straddles two regions adjacent in guest physical memory is one buffer. */
static void straddles_regions(struct hctx *h)
{
	uint32_t used;
	assert_int_equal(rw(h, 0, VHU_BLK_T_OUT, 64, GPA_B - 0x800, 4096, NULL), VHU_BLK_S_OK);
	assert_int_equal(rw(h, 0, VHU_BLK_T_IN, 64, GPA_B - 0x400, 4096, &used), VHU_BLK_S_OK);
	assert_int_equal(used, 4097);
	for (uint32_t i = 0; i < 4096; i++)
		assert_int_equal(*fe_gpa(&h->f, GPA_B - 0x400 + i), h->image[64 * 512 + i]);
	expect_healthy(h);
}

/* A request on ring 0 with this data buffer comes back unanswered, with
 * nothing written (no status, used length 0). */
static void refused(struct hctx *h, uint32_t type, uint64_t gpa, uint32_t len)
{
	uint32_t used;
	assert_int_equal(rw(h, 0, type, 0, gpa, len, &used), -1);
	assert_int_equal(used, 0);
}

/* Starts 2 KiB before the end of region B; the rest is in the hole. */
static void into_hole(struct hctx *h)
{
	refused(h, VHU_BLK_T_IN, GPA_B_END - 0x800, 4096);
	refused(h, VHU_BLK_T_OUT, GPA_B_END - 0x800, 4096);
	expect_healthy(h);
}

static void outside_memory(struct hctx *h)
{
	refused(h, VHU_BLK_T_IN, 1ull << 40, 512);
	refused(h, VHU_BLK_T_OUT, UINT64_MAX - 255, 512);   /* wraps around */
	expect_healthy(h);
}

static void huge_length(struct hctx *h)
{
	refused(h, VHU_BLK_T_IN, data_gpa[0], 0xfffffe00u);
	expect_healthy(h);
}

/* The status byte offered device-readable, then the header offered
 * device-writable: the device has nowhere legitimate to answer. */
static void misdirected_parts(struct hctx *h)
{
	void *tok;
	uint32_t used;
	struct vhu_sg ro_status[2] = { header(h, 0, 0, VHU_BLK_T_FLUSH, 0), status_of(0, 0) };
	offer(h, 0, ro_status, 2, 0, 1);
	fe_kick(&h->f, 0);
	fe_wait_used(&h->f, 0, &tok, &used);
	assert_int_equal(used, 0);
	assert_int_equal(status_byte(h, 0, 0), 0xee);
	struct vhu_sg w_header[2] = { header(h, 0, 1, VHU_BLK_T_IN, 0), status_of(0, 1) };
	offer(h, 0, w_header, 0, 2, 2);
	fe_kick(&h->f, 0);
	fe_wait_used(&h->f, 0, &tok, &used);
	assert_ptr_equal(tok, (void *)2);
	/* the header was not where it must be: refused, not executed */
	assert_true(used == 0 || status_byte(h, 0, 1) != VHU_BLK_S_OK);
	expect_healthy(h);
}

/* ---- rings the driver breaks ------------------------------------------- */

#define FREE_DESC (QSIZE - 4)   /* beyond what the driver engine handed out */

static struct vhu_vring_desc *sdesc(struct hctx *h) { return (void *)(h->f.q[0].base + h->f.q[0].layout.desc_off); }
static struct vhu_vring_avail *savail(struct hctx *h) { return (void *)(h->f.q[0].base + h->f.q[0].layout.driver_off); }
static struct vhu_vring_used *sused(struct hctx *h) { return (void *)(h->f.q[0].base + h->f.q[0].layout.device_off); }
static struct vhu_vring_packed_desc *pdesc(struct hctx *h) { return (void *)(h->f.q[0].base + h->f.q[0].layout.desc_off); }

static void s_offer_head(struct hctx *h, uint16_t head)
{
	struct vhu_vring_avail *a = savail(h);
	uint16_t i = __atomic_load_n(&a->idx, __ATOMIC_RELAXED);
	a->ring[i % QSIZE] = head;
	__atomic_store_n(&a->idx, (uint16_t)(i + 1), __ATOMIC_RELEASE);
	kick_raw(h, 0);
}

static void descriptor_loop(struct hctx *h)
{
	serves(h, 0, 256);
	sdesc(h)[FREE_DESC] = (struct vhu_vring_desc){ hdr_gpa[0], 16, VHU_VRING_DESC_F_NEXT, FREE_DESC + 1 };
	sdesc(h)[FREE_DESC + 1] = (struct vhu_vring_desc){ data_gpa[0], 512, VHU_VRING_DESC_F_NEXT, FREE_DESC };
	s_offer_head(h, FREE_DESC);
	expect_broken(h, 0);
}

static void head_out_of_range(struct hctx *h)
{
	serves(h, 0, 256);
	s_offer_head(h, 1000);
	expect_broken(h, 0);
}

static void avail_index_jumps(struct hctx *h)
{
	serves(h, 0, 256);
	struct vhu_vring_avail *a = savail(h);
	__atomic_store_n(&a->idx, (uint16_t)(a->idx + QSIZE + 5), __ATOMIC_RELEASE);
	kick_raw(h, 0);
	expect_broken(h, 0);
}

/* An indirect table (in the driver's memory, shadowed) behind FREE_DESC. */
static void s_offer_indirect(struct hctx *h, const struct vhu_vring_desc *table, uint32_t bytes)
{
	uint64_t at = GPA_A + 0x38000;
	put(h, at, table, bytes);
	sdesc(h)[FREE_DESC] = (struct vhu_vring_desc){ at, bytes, VHU_VRING_DESC_F_INDIRECT, 0 };
	s_offer_head(h, FREE_DESC);
}

static void indirect_in_indirect(struct hctx *h)
{
	serves(h, 0, 256);
	struct vhu_vring_desc t[2] = { { hdr_gpa[0], 16, VHU_VRING_DESC_F_NEXT, 1 },
				       { GPA_A + 0x39000, 32, VHU_VRING_DESC_F_INDIRECT, 0 } };
	s_offer_indirect(h, t, sizeof(t));
	expect_broken(h, 0);
}

static void indirect_table_torn(struct hctx *h)
{
	serves(h, 0, 256);
	struct vhu_vring_desc t[2] = { { hdr_gpa[0], 16, VHU_VRING_DESC_F_NEXT, 1 },
				       { status_of(0, 0).addr, 1, VHU_VRING_DESC_F_WRITE, 0 } };
	s_offer_indirect(h, t, 24);   /* a table of one and a half descriptors */
	expect_broken(h, 0);
}

/* A read whose buffer is the ring it came on: the device itself writes
 * garbage over the avail ring (an index far ahead) and must notice. */
static void read_over_own_ring(struct hctx *h)
{
	uint64_t sector = 300;
	unsigned char ff[512];
	memset(ff, 0xff, sizeof(ff));   /* avail idx 0xffff: far past the ring */
	assert_int_equal(rw_data(h, 1, VHU_BLK_T_OUT, sector, data_gpa[1], 512, ff, NULL), VHU_BLK_S_OK);
	uint64_t avail = ring_gpa[0] + h->f.q[0].layout.driver_off;
	struct vhu_sg sg[3] = { header(h, 0, 0, VHU_BLK_T_IN, sector), { avail, 512 }, status_of(0, 0) };
	offer(h, 0, sg, 1, 2, 1);
	fe_kick(&h->f, 0);
	expect_broken(h, 0);
}

static void packed_chain_longer_than_ring(struct hctx *h)
{
	serves(h, 0, 256);
	struct vhu_vq_pos pos;
	vhu_drv_vq_get_pos(&h->f.q[0].drv, &pos);
	for (unsigned k = 0; k < QSIZE; k++) {
		unsigned i = (pos.avail + k) % QSIZE;
		bool wrap = pos.avail_wrap ^ (pos.avail + k >= QSIZE);
		struct vhu_vring_packed_desc *d = &pdesc(h)[i];
		d->addr = hdr_gpa[0];
		d->len = 16;
		d->id = 0;
		__atomic_store_n(&d->flags, (uint16_t)(VHU_VRING_DESC_F_NEXT | (wrap ? VHU_VRING_PACKED_DESC_F_AVAIL
										       : VHU_VRING_PACKED_DESC_F_USED)),
				 __ATOMIC_RELEASE);
	}
	kick_raw(h, 0);
	expect_broken(h, 0);
}

static void packed_buffer_id_out_of_range(struct hctx *h)
{
	serves(h, 0, 256);
	struct vhu_vq_pos pos;
	vhu_drv_vq_get_pos(&h->f.q[0].drv, &pos);
	struct vhu_vring_packed_desc *d = &pdesc(h)[pos.avail];
	d->addr = hdr_gpa[0];
	d->len = 16;
	d->id = 5000;
	__atomic_store_n(&d->flags, (uint16_t)(pos.avail_wrap ? VHU_VRING_PACKED_DESC_F_AVAIL : VHU_VRING_PACKED_DESC_F_USED),
			 __ATOMIC_RELEASE);
	kick_raw(h, 0);
	expect_broken(h, 0);
}

/* Split: the same head twice in one avail window. A driver gets a head back
 * only from the used ring, after the device has let go of it, so a head the
 * device still holds offered again is the driver's bug (or an attack), and
 * the two would alias one chain's bookkeeping: the ring is broken (the
 * engine's -EEXIST), and the other queue serves on. */
static void same_head_twice(struct hctx *h)
{
	struct vhu_sg sg[3] = { header(h, 0, 0, VHU_BLK_T_FLUSH, 0), status_of(0, 0) };
	offer(h, 0, sg, 1, 1, 1);   /* in the avail ring, idx not yet published */
	struct vhu_vring_avail *a = savail(h);
	uint16_t i = h->f.q[0].drv.avail_idx;
	a->ring[i % QSIZE] = a->ring[(uint16_t)(i - 1) % QSIZE];
	__atomic_store_n(&a->idx, (uint16_t)(i + 1), __ATOMIC_RELEASE);
	kick_raw(h, 0);
	expect_broken(h, 0);
}

/* ---- rings reconfigured while in use ------------------------------------ */

static void ring_memory_removed(struct hctx *h)
{
	serves(h, 1, 512);
	h->f.nregions = 2;    /* region C, with ring 1 in it, goes away */
	fe_mem_table(&h->f);
	expect_broken(h, 1);
}

static void ring_region_unplugged(struct hctx *h)
{
	serves(h, 1, 512);
	struct vhu_user_mem_single r = { .region = { GPA_C, 0x40000, (uintptr_t)h->f.mem + 0xc0000, 0xc0000 } };
	assert_int_equal(fe_req(&h->f, VHU_USER_REM_MEM_REG, &r, sizeof(r), NULL, 0, true, NULL), 0);
	expect_broken(h, 1);
}

static void layout_changed_while_running(struct hctx *h)
{
	serves(h, 0, 256);
	assert_int_not_equal(fe_state(&h->f, VHU_USER_SET_VRING_NUM, 0, QSIZE / 2, true), 0);
	assert_int_not_equal(fe_state(&h->f, VHU_USER_SET_VRING_BASE, 0, 7, true), 0);
	/* the ring format and event index with it */
	assert_int_not_equal(fe_u64(&h->f, VHU_USER_SET_FEATURES, h->f.features ^ VHU_BIT(VHU_F_RING_PACKED), true), 0);
	assert_int_not_equal(fe_u64(&h->f, VHU_USER_SET_FEATURES, h->f.features ^ VHU_BIT(VHU_F_EVENT_IDX), true), 0);
	expect_healthy(h);
}

/* NSLOT 4 KiB writes on ring 0, slot s to sector first + 8 s with the
 * pattern seed + s, kicked at once. */
static void offer_writes(struct hctx *h, uint64_t first, unsigned seed)
{
	unsigned char buf[4096];
	for (unsigned s = 0; s < NSLOT; s++) {
		pattern(buf, sizeof(buf), seed + s);
		put(h, data_gpa[0] + 4096ull * s, buf, sizeof(buf));
		struct vhu_sg sg[3] = { header(h, 0, s, VHU_BLK_T_OUT, first + 8ull * s),
					{ data_gpa[0] + 4096ull * s, 4096 }, status_of(0, s) };
		offer(h, 0, sg, 2, 1, s + 1);
	}
	fe_kick(&h->f, 0);
}

/* Stopping a ring with writes in flight: every request the device took is
 * finished, in the used ring and in the image, before it answers. */
static void stop_with_writes_in_flight(struct hctx *h)
{
	unsigned char buf[4096];
	offer_writes(h, 1024, 1000);
	/* the reply is a vring state: index in the low half, num in the high */
	uint32_t base = (uint32_t)(fe_state(&h->f, VHU_USER_GET_VRING_BASE, 0, 0, false) >> 32);
	uint16_t used = __atomic_load_n(&sused(h)->idx, __ATOMIC_ACQUIRE);
	print_message("# %u of %u writes taken when the ring stopped\n", base & 0xffff, NSLOT);
	assert_int_equal(base & 0xffff, used);
	for (uint16_t k = 0; k < used; k++) {
		unsigned s = sused(h)->ring[k].id;    /* heads 0, 3, 6 ...: three descriptors each */
		assert_true(s % 3 == 0 && s / 3 < NSLOT);
		s /= 3;
		assert_int_equal(status_byte(h, 0, s), VHU_BLK_S_OK);
		pattern(buf, sizeof(buf), 1000 + s);
		memcpy(h->image + (1024 + 8ull * s) * 512, buf, sizeof(buf));
	}
	serves(h, 1, 512);
}

/* ---- the front-end itself misbehaving ----------------------------------- */

/* Truncating guest memory under the device's mappings would make its next
 * access fault (SIGBUS) and take the daemon down: it sealed the memfd. */
static void guest_memory_truncated(struct hctx *h)
{
	serves(h, 0, 256);
	assert_int_equal(ftruncate(h->f.memfd, 0), -1);
	assert_int_equal(errno, EPERM);
	expect_healthy(h);
}

/* A header claiming a 2 GiB payload: the daemon hangs up on this front-end
 * (the next case's connection shows it still serves others). */
static void oversized_message(struct hctx *h)
{
	serves(h, 0, 256);
	struct vhu_user_hdr hd = { VHU_USER_SET_MEM_TABLE, VHU_USER_VERSION, 0x7fffffff };
	assert_int_equal(write(h->f.sock, &hd, sizeof(hd)), (ssize_t)sizeof(hd));
	struct pollfd p = { .fd = h->f.sock, .events = POLLIN };
	char c;
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_int_equal(read(h->f.sock, &c, 1), 0);
}

/* Hanging up with writes in flight: the daemon finishes them (it drains
 * before unmapping) or never started them; it touches no memory it has
 * unmapped, and each block of the image is either as before or the whole
 * write, never anything else. */
static void hang_up_with_writes_in_flight(struct hctx *h)
{
	unsigned char buf[4096];
	offer_writes(h, 2048, 2000);
	/* hang up as soon as the first is answered: the rest are in flight */
	for (int i = 0; i < 50000 && status_byte(h, 0, 0) == 0xee; i++)
		usleep(100);
	close(h->f.sock);
	h->f.sock = -1;
	wait_daemon_idle();
	unsigned landed = 0;
	for (unsigned s = 0; s < NSLOT; s++) {
		unsigned char now[4096];
		size_t at = (2048 + 8ull * s) * 512;
		pattern(buf, sizeof(buf), 2000 + s);
		assert_int_equal(pread(img_fd, now, sizeof(now), (off_t)at), (ssize_t)sizeof(now));
		if (!memcmp(now, buf, sizeof(buf))) {
			memcpy(h->image + at, buf, sizeof(buf));
			landed++;
		} else {
			assert_memory_equal(now, h->image + at, sizeof(now));
		}
	}
	print_message("# %u of %u writes landed\n", landed, NSLOT);
}

struct hcase {
	const char *name;
	bool packed;
	void (*run)(struct hctx *h);
};

static const struct hcase hcases[] = {
	{ "split: buffer straddling two adjacent regions", false, straddles_regions },
	{ "packed: buffer straddling two adjacent regions", true, straddles_regions },
	{ "split: buffer running into a hole between regions", false, into_hole },
	{ "packed: buffer running into a hole between regions", true, into_hole },
	{ "split: buffers outside guest memory", false, outside_memory },
	{ "packed: buffers outside guest memory", true, outside_memory },
	{ "split: 4 GiB read", false, huge_length },
	{ "packed: 4 GiB read", true, huge_length },
	{ "split: status read-only, header writable", false, misdirected_parts },
	{ "packed: status read-only, header writable", true, misdirected_parts },
	{ "split: descriptor loop", false, descriptor_loop },
	{ "split: head out of range", false, head_out_of_range },
	{ "split: avail index jumps past the ring", false, avail_index_jumps },
	{ "split: indirect table inside an indirect table", false, indirect_in_indirect },
	{ "split: indirect table of one and a half descriptors", false, indirect_table_torn },
	{ "split: a read over its own avail ring", false, read_over_own_ring },
	{ "split: the same head twice in flight", false, same_head_twice },
	{ "packed: chain longer than the ring", true, packed_chain_longer_than_ring },
	{ "packed: buffer id out of range", true, packed_buffer_id_out_of_range },
	{ "split: memory of a running ring removed", false, ring_memory_removed },
	{ "packed: memory of a running ring removed", true, ring_memory_removed },
	{ "split: region of a running ring unplugged", false, ring_region_unplugged },
	{ "split: size, base and format changed while running", false, layout_changed_while_running },
	{ "packed: size, base and format changed while running", true, layout_changed_while_running },
	{ "split: ring stopped with writes in flight", false, stop_with_writes_in_flight },
	{ "split: guest memory truncated under the device", false, guest_memory_truncated },
	{ "split: a message claiming a 2 GiB payload", false, oversized_message },
	{ "split: hang-up with writes in flight", false, hang_up_with_writes_in_flight },
	{ "packed: hang-up with writes in flight", true, hang_up_with_writes_in_flight },
};

static struct hctx hctx;   /* 3 MiB: not on the stack */

static void run_case(void **state)
{
	const struct hcase *c = *state;
	session_begin(&hctx, c->packed);
	c->run(&hctx);
	session_end(&hctx);
}

/* A failed case leaves its connection open; close it, or the daemon,
 * still serving it, never answers the next one. */
static int close_session(void **state)
{
	(void)state;
	if (hctx.f.sock >= 0 && hctx.f.mem)
		fe_close(&hctx.f);
	return 0;
}

/* After all of it: a clean session, and SIGTERM ends the daemon with 0. */
static void still_serving_then_exits(void **state)
{
	(void)state;
	session_begin(&hctx, false);
	expect_healthy(&hctx);
	session_end(&hctx);
	int st;
	kill(daemon_pid, SIGTERM);
	assert_int_equal(waitpid(daemon_pid, &st, 0), daemon_pid);
	daemon_pid = -1;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static int start_daemon(void **state)
{
	(void)state;
	snprintf(img_path, sizeof(img_path), "/tmp/vhu-hostile-%d.img", getpid());
	snprintf(sock_path, sizeof(sock_path), "/tmp/vhu-hostile-%d.sock", getpid());
	img_fd = open(img_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (img_fd < 0 || ftruncate(img_fd, IMG_SECTORS * 512) < 0)
		return -1;
	daemon_pid = fork();
	if (daemon_pid == 0) {
		char file[96], sock[96];
		snprintf(file, sizeof(file), "--blk-file=%s", img_path);
		snprintf(sock, sizeof(sock), "--socket-path=%s", sock_path);
		execl(vhu_blk, vhu_blk, sock, file, "--num-queues=2", "--engine=io_uring", (char *)NULL);
		_exit(127);
	}
	/* wait for it to listen, then count its fds at rest */
	for (int i = 0; i < 1000 && access(sock_path, F_OK) < 0; i++)
		usleep(10000);
	daemon_fds_idle = count_fds_of(daemon_pid);
	return access(sock_path, F_OK);
}

static int stop_daemon(void **state)
{
	(void)state;
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, NULL, 0);
	}
	close(img_fd);
	unlink(img_path);
	unlink(sock_path);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_blk_hostile VHU_BLK_BINARY\n");
		return 2;
	}
	vhu_blk = argv[1];
	signal(SIGPIPE, SIG_IGN);
	enum { N = sizeof(hcases) / sizeof(hcases[0]) };
	struct CMUnitTest all[N + 1];
	for (unsigned i = 0; i < N; i++)
		all[i] = (struct CMUnitTest){ .name = hcases[i].name, .test_func = run_case,
					      .teardown_func = close_session, .initial_state = (void *)&hcases[i] };
	all[N] = (struct CMUnitTest){ .name = "afterwards: a clean session, and SIGTERM", .test_func = still_serving_then_exits,
				      .teardown_func = close_session };
	return _cmocka_run_group_tests("blk_hostile", all, N + 1, start_daemon, stop_daemon);
}
