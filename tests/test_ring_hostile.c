/* SPDX-License-Identifier: MIT */
/*
 * Hostile-input table: malformed rings written by hand, for each ring kind.
 * Each case asserts the exact error and the state afterwards: a broken
 * queue stays broken with the same code; a consumed bad buffer can be
 * returned with len 0 and the next good buffer is served normally.
 * Every case runs twice: through vhu_dev_vq_pop() and through
 * vhu_dev_vq_pop_burst(), whose paths are its own.
 * The last part turns the table round: a device lying to the driver.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ringpair.h"

#define NUM 8
#define GOOD_ADDR (GM_DATA_BASE + 4000)
#define GOOD_LEN 100

/* ---- writing rings by hand ------------------------------------------- */

static struct vhu_vring_desc *sdesc(struct ringpair *rp) { return rp->cfg.desc; }
static struct vhu_vring_avail *savail(struct ringpair *rp) { return rp->cfg.driver_area; }
static struct vhu_vring_used *sused(struct ringpair *rp) { return rp->cfg.device_area; }
static struct vhu_vring_packed_desc *pdesc(struct ringpair *rp) { return rp->cfg.desc; }

static void sd(struct ringpair *rp, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	sdesc(rp)[i] = (struct vhu_vring_desc){ addr, len, flags, next };
}

/* offer head at the next avail slot */
static void soffer(struct ringpair *rp, uint16_t head)
{
	struct vhu_vring_avail *a = savail(rp);
	a->ring[a->idx % NUM] = head;
	__atomic_store_n(&a->idx, (uint16_t)(a->idx + 1), __ATOMIC_RELEASE);
}

/* packed slot, made available in lap `wrap` */
static void pd(struct ringpair *rp, uint16_t pos, bool wrap, uint64_t addr, uint32_t len,
	       uint16_t id, uint16_t flags)
{
	struct vhu_vring_packed_desc *d = &pdesc(rp)[pos];
	d->addr = addr;
	d->len = len;
	d->id = id;
	flags |= wrap ? VHU_VRING_PACKED_DESC_F_AVAIL : VHU_VRING_PACKED_DESC_F_USED;
	__atomic_store_n(&d->flags, flags, __ATOMIC_RELEASE);
}

/* an indirect table in the identity-mapped area; returns its guest address */
static uint64_t table(struct ringpair *rp, unsigned slot, const struct vhu_vring_desc *t, unsigned n)
{
	memcpy(rp->gm.ind + slot * 256, t, n * 16);
	return GM_IND_BASE + slot * 256;
}

/* ---- the table --------------------------------------------------------- */

struct hcase {
	const char *name;
	bool packed;
	bool no_indirect;      /* negotiate without VIRTIO_F_INDIRECT_DESC */
	bool map_all;
	unsigned iov_max;
	int err;
	bool breaks;           /* structural: queue broken; else consumed */
	/* writes the bad buffer; returns packed slots used (split: 0) */
	uint16_t (*build)(struct ringpair *rp);
};

#define W VHU_VRING_DESC_F_WRITE
#define N VHU_VRING_DESC_F_NEXT
#define I VHU_VRING_DESC_F_INDIRECT

static uint16_t s_avail_jump(struct ringpair *rp) { savail(rp)->idx = NUM + 1; return 0; }
static uint16_t s_head_range(struct ringpair *rp) { soffer(rp, NUM); return 0; }
static uint16_t s_next_range(struct ringpair *rp)
{
	sd(rp, 0, GOOD_ADDR, 10, N, NUM);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_loop(struct ringpair *rp)
{
	sd(rp, 0, GOOD_ADDR, 10, N, 1);
	sd(rp, 1, GOOD_ADDR, 10, N, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_too_long(struct ringpair *rp)
{
	for (uint16_t i = 0; i < NUM; i++)   /* 0 -> 1 -> ... -> 7 -> 0 */
		sd(rp, i, GOOD_ADDR, 1, N, (i + 1) % NUM);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_len_overflow(struct ringpair *rp)
{
	sd(rp, 0, GOOD_ADDR, 0x80000000u, N, 1);
	sd(rp, 1, GOOD_ADDR, 0x80000000u, W, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_addr_wrap(struct ringpair *rp)
{
	sd(rp, 0, UINT64_MAX - 10, 100, 0, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_ind_next(struct ringpair *rp)
{
	struct vhu_vring_desc t[1] = { { GOOD_ADDR, 10, 0, 0 } };
	sd(rp, 0, table(rp, 0, t, 1), 16, I | N, 1);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_ind_nested(struct ringpair *rp)
{
	struct vhu_vring_desc inner[1] = { { GOOD_ADDR, 10, 0, 0 } };
	struct vhu_vring_desc outer[1] = { { table(rp, 1, inner, 1), 16, I, 0 } };
	sd(rp, 0, table(rp, 0, outer, 1), 16, I, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_ind_len_odd(struct ringpair *rp)
{
	struct vhu_vring_desc t[2] = { { GOOD_ADDR, 10, 0, 0 } };
	sd(rp, 0, table(rp, 0, t, 2), 24, I, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_ind_len_zero(struct ringpair *rp)
{
	sd(rp, 0, GM_IND_BASE, 0, I, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_ind_too_big(struct ringpair *rp)
{
	sd(rp, 0, GM_IND_BASE, (VHU_VQ_MAX_INDIRECT + 1) * 16, I, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_ind_unnegotiated(struct ringpair *rp)
{
	struct vhu_vring_desc t[1] = { { GOOD_ADDR, 10, 0, 0 } };
	sd(rp, 0, table(rp, 0, t, 1), 16, I, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_ind_next_range(struct ringpair *rp)
{
	struct vhu_vring_desc t[2] = { { GOOD_ADDR, 10, N, 2 }, { GOOD_ADDR, 10, 0, 0 } };
	sd(rp, 0, table(rp, 0, t, 2), 32, I, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_ind_loop(struct ringpair *rp)
{
	struct vhu_vring_desc t[2] = { { GOOD_ADDR, 10, N, 1 }, { GOOD_ADDR, 10, N, 0 } };
	sd(rp, 0, table(rp, 0, t, 2), 32, I, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_outside(struct ringpair *rp)
{
	sd(rp, 0, GOOD_ADDR, 10, N, 1);
	sd(rp, 1, 0x10, 10, W, 0);          /* below guest memory */
	soffer(rp, 0);
	return 0;
}
static uint16_t s_ind_outside(struct ringpair *rp)
{
	sd(rp, 0, 0x20, 32, I, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_write_then_read(struct ringpair *rp)
{
	sd(rp, 0, GOOD_ADDR, 10, W | N, 1);
	sd(rp, 1, GOOD_ADDR + 10, 10, 0, 0);
	soffer(rp, 0);
	return 0;
}
static uint16_t s_too_many_segs(struct ringpair *rp)
{
	sd(rp, 0, GM_DATA_BASE + 990, 20, W, 0);   /* straddles: two iovecs */
	soffer(rp, 0);
	return 0;
}

static uint16_t p_too_long(struct ringpair *rp)
{
	for (uint16_t i = 0; i < NUM; i++)
		pd(rp, i, true, GOOD_ADDR, 1, 0, N);
	return NUM;
}
static uint16_t p_id_range(struct ringpair *rp) { pd(rp, 0, true, GOOD_ADDR, 10, NUM, 0); return 1; }
static uint16_t p_ind_next(struct ringpair *rp)
{
	struct vhu_vring_desc t[1] = { { GOOD_ADDR, 10, 0, 0 } };
	pd(rp, 0, true, table(rp, 0, t, 1), 16, 0, I | N);
	pd(rp, 1, true, GOOD_ADDR, 10, 0, 0);
	return 2;
}
static uint16_t p_ind_in_chain(struct ringpair *rp)
{
	struct vhu_vring_desc t[1] = { { GOOD_ADDR, 10, 0, 0 } };
	pd(rp, 0, true, GOOD_ADDR, 10, 0, N);
	pd(rp, 1, true, table(rp, 0, t, 1), 16, 0, I);
	return 2;
}
/* packed tables hold pvirtq_desc: addr, len, id, flags */
static uint64_t ptable(struct ringpair *rp, unsigned slot, const struct vhu_vring_packed_desc *t, unsigned n)
{
	memcpy(rp->gm.ind + slot * 256, t, n * 16);
	return GM_IND_BASE + slot * 256;
}
static uint16_t p_ind_nested(struct ringpair *rp)
{
	struct vhu_vring_packed_desc t[1] = { { GM_IND_BASE, 16, 0, I } };
	pd(rp, 0, true, ptable(rp, 0, t, 1), 16, 0, I);
	return 1;
}
static uint16_t p_ind_len_odd(struct ringpair *rp) { pd(rp, 0, true, GM_IND_BASE, 40, 0, I); return 1; }
static uint16_t p_ind_too_big(struct ringpair *rp)
{
	pd(rp, 0, true, GM_IND_BASE, (VHU_VQ_MAX_INDIRECT + 1) * 16, 0, I);
	return 1;
}
static uint16_t p_ind_unnegotiated(struct ringpair *rp)
{
	struct vhu_vring_packed_desc t[1] = { { GOOD_ADDR, 10, 0, 0 } };
	pd(rp, 0, true, ptable(rp, 0, t, 1), 16, 0, I);
	return 1;
}
static uint16_t p_len_overflow(struct ringpair *rp)
{
	pd(rp, 0, true, GOOD_ADDR, 0x80000000u, 0, N);
	pd(rp, 1, true, GOOD_ADDR, 0x80000000u, 0, W);
	return 2;
}
static uint16_t p_outside(struct ringpair *rp) { pd(rp, 0, true, 1ull << 50, 10, 0, 0); return 1; }
static uint16_t p_ind_outside(struct ringpair *rp) { pd(rp, 0, true, 0x30, 32, 0, I); return 1; }
static uint16_t p_write_then_read(struct ringpair *rp)
{
	pd(rp, 0, true, GOOD_ADDR, 10, 0, W | N);
	pd(rp, 1, true, GOOD_ADDR, 10, 0, 0);
	return 2;
}
static uint16_t p_too_many_segs(struct ringpair *rp)
{
	pd(rp, 0, true, GM_DATA_BASE + 990, 20, 0, W);
	return 1;
}

static const struct hcase cases[] = {
	{ "split: avail index jumps past the queue size", false, false, false, 8, -EDOM, true, s_avail_jump },
	{ "split: head out of range", false, false, false, 8, -ERANGE, true, s_head_range },
	{ "split: next out of range", false, false, false, 8, -ERANGE, true, s_next_range },
	{ "split: two-descriptor loop", false, false, false, 8, -ELOOP, true, s_loop },
	{ "split: chain longer than the queue", false, false, false, 8, -ELOOP, true, s_too_long },
	{ "split: total length over 32 bits", false, false, true, 8, -EOVERFLOW, false, s_len_overflow },
	{ "split: address + length wraps 64 bits", false, false, false, 8, -EFAULT, false, s_addr_wrap },
	{ "split: INDIRECT with NEXT", false, false, false, 8, -EPROTO, true, s_ind_next },
	{ "split: nested indirect", false, false, false, 8, -EMLINK, true, s_ind_nested },
	{ "split: indirect length not a multiple of 16", false, false, false, 8, -EBADMSG, true, s_ind_len_odd },
	{ "split: indirect length zero", false, false, false, 8, -EBADMSG, true, s_ind_len_zero },
	{ "split: indirect table too long", false, false, false, 8, -EMSGSIZE, true, s_ind_too_big },
	{ "split: INDIRECT not negotiated", false, true, false, 8, -EOPNOTSUPP, true, s_ind_unnegotiated },
	{ "split: indirect next out of table", false, false, false, 8, -ERANGE, true, s_ind_next_range },
	{ "split: indirect loop", false, false, false, 8, -ELOOP, true, s_ind_loop },
	{ "split: buffer outside guest memory", false, false, false, 8, -EFAULT, false, s_outside },
	{ "split: indirect table outside guest memory", false, false, false, 8, -EFAULT, false, s_ind_outside },
	{ "split: readable after writable", false, false, false, 8, -EILSEQ, false, s_write_then_read },
	{ "split: more segments than iovecs", false, false, false, 1, -ENOBUFS, false, s_too_many_segs },
	{ "packed: chain longer than the queue", true, false, false, 8, -E2BIG, true, p_too_long },
	{ "packed: buffer id out of range", true, false, false, 8, -ERANGE, true, p_id_range },
	{ "packed: INDIRECT with NEXT", true, false, false, 8, -EPROTO, true, p_ind_next },
	{ "packed: INDIRECT inside a chain", true, false, false, 8, -EPROTO, true, p_ind_in_chain },
	{ "packed: nested indirect", true, false, false, 8, -EMLINK, true, p_ind_nested },
	{ "packed: indirect length not a multiple of 16", true, false, false, 8, -EBADMSG, true, p_ind_len_odd },
	{ "packed: indirect table too long", true, false, false, 8, -EMSGSIZE, true, p_ind_too_big },
	{ "packed: INDIRECT not negotiated", true, true, false, 8, -EOPNOTSUPP, true, p_ind_unnegotiated },
	{ "packed: total length over 32 bits", true, false, true, 8, -EOVERFLOW, false, p_len_overflow },
	{ "packed: buffer outside guest memory", true, false, false, 8, -EFAULT, false, p_outside },
	{ "packed: indirect table outside guest memory", true, false, false, 8, -EFAULT, false, p_ind_outside },
	{ "packed: readable after writable", true, false, false, 8, -EILSEQ, false, p_write_then_read },
	{ "packed: more segments than iovecs", true, false, false, 1, -ENOBUFS, false, p_too_many_segs },
};

static uint64_t features_of(bool packed, bool indirect)
{
	return VHU_BIT(VHU_F_VERSION_1) | (packed ? VHU_BIT(VHU_F_RING_PACKED) : 0) |
	       (indirect ? VHU_BIT(VHU_F_INDIRECT_DESC) : 0);
}

/* A good one-segment writable buffer after the bad one. */
static void offer_good(struct ringpair *rp, bool packed, uint16_t pos)
{
	if (packed) {
		pd(rp, pos, true, GOOD_ADDR, GOOD_LEN, 5, W);
	} else {
		sd(rp, NUM - 1, GOOD_ADDR, GOOD_LEN, W, 0);
		soffer(rp, NUM - 1);
	}
}

/* Buffer i, one good writable segment, offered under id i (packed: in slot i). */
static void offer_writable(struct ringpair *rp, bool packed, uint16_t i)
{
	if (packed) {
		pd(rp, i, true, GOOD_ADDR, GOOD_LEN, i, W);
	} else {
		sd(rp, i, GOOD_ADDR, GOOD_LEN, W, 0);
		soffer(rp, i);
	}
}

static void run_hcase(void **state)
{
	const struct hcase *c = *state;
	struct ringpair rp;
	struct vhu_vq_elem e;
	struct iovec iov[8];

	assert_int_equal(rp_init(&rp, NUM, features_of(c->packed, !c->no_indirect), 64 * 1024, 1000), 0);
	rp.gm.map_all = c->map_all;
	uint16_t used_slots = c->build(&rp);
	int r = vhu_dev_vq_pop(&rp.dev, &e, iov, c->iov_max);
	if (r != c->err)
		fail_msg("pop returned %d (%s), expected %d (%s)", r, vhu_vq_strerror(r), c->err,
			 vhu_vq_strerror(c->err));
	rp.gm.map_all = false;
	if (c->breaks) {
		assert_int_equal(vhu_dev_vq_broken(&rp.dev), c->err);
		offer_good(&rp, c->packed, used_slots % NUM);
		assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 8), c->err);  /* sticky */
		assert_false(vhu_dev_vq_has_avail(&rp.dev));
		assert_int_equal(vhu_dev_vq_inflight(&rp.dev), 0);
	} else {
		/* consumed: return it empty, then the queue goes on */
		assert_int_equal(vhu_dev_vq_broken(&rp.dev), 0);
		assert_int_equal(vhu_dev_vq_inflight(&rp.dev), c->packed ? used_slots : 1);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e, 0), 0);
		vhu_dev_vq_flush(&rp.dev);
		if (c->packed) {
			struct vhu_vring_packed_desc *d = &pdesc(&rp)[0];
			assert_int_equal(d->id, e.id);
			assert_true((d->flags & VHU_VRING_PACKED_DESC_F_USED) && (d->flags & VHU_VRING_PACKED_DESC_F_AVAIL));
		} else {
			assert_int_equal(sused(&rp)->idx, 1);
			assert_int_equal(sused(&rp)->ring[0].id, e.id);
			assert_int_equal(sused(&rp)->ring[0].len, 0);
		}
		offer_good(&rp, c->packed, used_slots);
		assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 8), 1);
		assert_int_equal(e.in_num, 1);
		assert_int_equal(e.in_len, GOOD_LEN);
		assert_int_equal(e.id, c->packed ? 5 : NUM - 1);
	}
	rp_free(&rp);
}

/* The same case through the burst path: the bad chain first in a burst of
 * four (with a good one behind it), the same code, the same state after. */
static void run_hcase_burst(void **state)
{
	const struct hcase *c = *state;
	struct ringpair rp;
	struct vhu_vq_elem e[4];
	struct iovec iov[32];

	assert_int_equal(rp_init(&rp, NUM, features_of(c->packed, !c->no_indirect), 64 * 1024, 1000), 0);
	rp.gm.map_all = c->map_all;
	uint16_t used_slots = c->build(&rp);
	int r = vhu_dev_vq_pop_burst(&rp.dev, e, 4, iov, 32, c->iov_max);
	if (r != c->err)
		fail_msg("pop_burst returned %d (%s), expected %d (%s)", r, vhu_vq_strerror(r), c->err,
			 vhu_vq_strerror(c->err));
	rp.gm.map_all = false;
	if (c->breaks) {
		assert_int_equal(vhu_dev_vq_broken(&rp.dev), c->err);
		offer_good(&rp, c->packed, used_slots % NUM);
		assert_int_equal(vhu_dev_vq_pop_burst(&rp.dev, e, 4, iov, 32, 8), c->err);  /* sticky */
		assert_int_equal(vhu_dev_vq_inflight(&rp.dev), 0);
	} else {
		assert_int_equal(vhu_dev_vq_broken(&rp.dev), 0);
		assert_int_equal(vhu_dev_vq_inflight(&rp.dev), c->packed ? used_slots : 1);
		struct vhu_vq_used u = { e[0].id, 0 };
		assert_int_equal(vhu_dev_vq_push_burst(&rp.dev, &u, 1), 1);
		offer_good(&rp, c->packed, used_slots);
		assert_int_equal(vhu_dev_vq_pop_burst(&rp.dev, e, 4, iov, 32, 8), 1);
		assert_int_equal(e[0].in_num, 1);
		assert_int_equal(e[0].in_len, GOOD_LEN);
		assert_int_equal(e[0].id, c->packed ? 5 : NUM - 1);
		assert_int_equal(e[0].iov[0].iov_len, GOOD_LEN);
	}
	rp_free(&rp);
}

/* Good chains before a bad one: the burst returns the good ones, and the
 * next call the bad one's code, as elems[0] (a buffer error: taken) or as
 * the sticky broken code (a ring error). */
static void burst_good_then_bad(void **state)
{
	(void)state;
	for (int packed = 0; packed < 2; packed++)
		for (int ring_err = 0; ring_err < 2; ring_err++) {
			struct ringpair rp;
			struct vhu_vq_elem e[8];
			struct iovec iov[16];
			assert_int_equal(rp_init(&rp, NUM, features_of(packed, true), 64 * 1024, 1000), 0);
			for (uint16_t i = 0; i < 2; i++)
				offer_writable(&rp, packed, i);
			int err = ring_err ? -ERANGE : -EFAULT;
			if (packed) {
				pd(&rp, 2, true, ring_err ? GOOD_ADDR : 1ull << 50, 10, ring_err ? NUM : 2, 0);
			} else {
				sd(&rp, 2, 1ull << 50, 10, 0, 0);
				soffer(&rp, ring_err ? NUM : 2);
			}
			assert_int_equal(vhu_dev_vq_pop_burst(&rp.dev, e, 8, iov, 16, 4), 2);
			assert_int_equal(e[0].id, 0);
			assert_int_equal(e[1].id, 1);
			assert_ptr_equal(e[1].iov, e[0].iov + 1);   /* packed one after the other */
			assert_int_equal(vhu_dev_vq_pop_burst(&rp.dev, e, 8, iov, 16, 4), err);
			assert_int_equal(vhu_dev_vq_broken(&rp.dev), ring_err ? err : 0);
			if (!ring_err) {
				/* taken: all three can be returned in one burst */
				struct vhu_vq_used u[3] = { { 0, 1 }, { 1, 2 }, { 2, 0 } };
				assert_int_equal(vhu_dev_vq_push_burst(&rp.dev, u, 3), 3);
				assert_int_equal(vhu_dev_vq_inflight(&rp.dev), 0);
			}
			rp_free(&rp);
		}
}

/* A burst never starts a chain without iov_max iovecs of room, so each
 * chain gets what a single pop with iov_max would give it. */
static void burst_iov_room(void **state)
{
	(void)state;
	for (int packed = 0; packed < 2; packed++) {
		struct ringpair rp;
		struct vhu_vq_elem e[8];
		struct iovec iov[3];
		assert_int_equal(rp_init(&rp, NUM, features_of(packed, true), 64 * 1024, 1000), 0);
		for (uint16_t i = 0; i < 4; i++)
			offer_writable(&rp, packed, i);
		/* chains of one iovec, up to 2 each, in 3: the third would
		 * start with 1 left */
		assert_int_equal(vhu_dev_vq_pop_burst(&rp.dev, e, 8, iov, 3, 2), 2);
		assert_int_equal(vhu_dev_vq_pop_burst(&rp.dev, e, 8, iov, 3, 2), 2);
		assert_int_equal(vhu_dev_vq_pop_burst(&rp.dev, e, 8, iov, 3, 2), 0);
		/* pushing an id twice, or one never taken, stops the burst there */
		struct vhu_vq_used u[3] = { { 3, 0 }, { 3, 0 }, { 2, 0 } };
		assert_int_equal(vhu_dev_vq_push_burst(&rp.dev, u, 3), 1);
		struct vhu_vq_used big = { 2, GOOD_LEN + 1 };
		assert_int_equal(vhu_dev_vq_push_burst(&rp.dev, &big, 1), 0);
		struct vhu_vq_used bad = { NUM, 0 };
		assert_int_equal(vhu_dev_vq_push_burst(&rp.dev, &bad, 1), 0);
		rp_free(&rp);
	}
}

/* The one-buffer push refuses what the burst refuses (its own path for a
 * split ring without IN_ORDER or an inflight region): an id out of range,
 * one never taken, a length beyond the writable part, the same id twice;
 * each refusal leaves the used ring as it was. */
static void single_push_refusals(void **state)
{
	(void)state;
	for (int packed = 0; packed < 2; packed++) {
		struct ringpair rp;
		struct vhu_vq_elem e[2];
		struct iovec iov[2][2];
		assert_int_equal(rp_init(&rp, NUM, features_of(packed, true), 64 * 1024, 1000), 0);
		for (uint16_t i = 0; i < 2; i++) {
			offer_writable(&rp, packed, i);
			assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e[i], iov[i], 2), 1);
		}
		struct vhu_vq_elem out_of_range = e[0], never_taken = e[0];
		out_of_range.id = NUM;
		never_taken.id = 5;
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &out_of_range, 0), -EINVAL);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &never_taken, 0), -EINVAL);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[0], GOOD_LEN + 1), -EINVAL);
		assert_int_equal(vhu_dev_vq_inflight(&rp.dev), 2);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[0], GOOD_LEN), 0);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[0], GOOD_LEN), -EINVAL);
		assert_int_equal(vhu_dev_vq_inflight(&rp.dev), 1);
		vhu_dev_vq_flush(&rp.dev);
		if (packed) {
			/* one used descriptor, in slot 0, and nothing after it */
			struct vhu_vring_packed_desc *d = rp.cfg.desc;
			assert_int_equal(d[0].id, e[0].id);
			assert_int_equal(d[0].len, GOOD_LEN);
			assert_int_equal(d[1].flags & VHU_VRING_PACKED_DESC_F_USED, 0);
		} else {
			struct vhu_vring_used *u = rp.cfg.device_area;
			assert_int_equal(u->idx, 1);
			assert_int_equal(u->ring[0].id, e[0].id);
			assert_int_equal(u->ring[0].len, GOOD_LEN);
		}
		rp_free(&rp);
	}
}

/* A buffer id the device holds offered again before the device returned it:
 * the two would alias one chain's bookkeeping. */
static void split_head_reoffered(void **state)
{
	(void)state;
	struct ringpair rp;
	struct vhu_vq_elem e[4];
	struct iovec iov[8];

	assert_int_equal(rp_init(&rp, NUM, features_of(false, true), 64 * 1024, 1000), 0);
	sd(&rp, 1, GOOD_ADDR, 10, W, 0);
	soffer(&rp, 1);
	soffer(&rp, 1);
	assert_int_equal(vhu_dev_vq_pop_burst(&rp.dev, e, 4, iov, 8, 2), 1);
	assert_int_equal(vhu_dev_vq_pop_burst(&rp.dev, e, 4, iov, 8, 2), -EEXIST);
	assert_int_equal(vhu_dev_vq_broken(&rp.dev), -EEXIST);
	rp_free(&rp);
}

static void packed_id_reused(void **state)
{
	(void)state;
	struct ringpair rp;
	struct vhu_vq_elem e;
	struct iovec iov[4];

	assert_int_equal(rp_init(&rp, NUM, features_of(true, true), 64 * 1024, 1000), 0);
	pd(&rp, 0, true, GOOD_ADDR, 10, 3, W);
	pd(&rp, 1, true, GOOD_ADDR, 10, 3, W);
	assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 4), 1);
	assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 4), -EEXIST);
	assert_int_equal(vhu_dev_vq_broken(&rp.dev), -EEXIST);
	rp_free(&rp);
}

/* ---- cases that need more than one pop ------------------------------- */

static void split_reoffer_inflight(void **state)
{
	(void)state;
	struct ringpair rp;
	struct vhu_vq_elem e;
	struct iovec iov[4];

	assert_int_equal(rp_init(&rp, NUM, features_of(false, true), 64 * 1024, 1000), 0);
	for (uint16_t i = 0; i < NUM; i++) {
		sd(&rp, i, GOOD_ADDR, 10, W, 0);
		soffer(&rp, i);
		assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 4), 1);
	}
	soffer(&rp, 0);   /* head 0 is still ours */
	assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 4), -EDOM);
	assert_int_equal(vhu_dev_vq_broken(&rp.dev), -EDOM);
	rp_free(&rp);
}

static void packed_reoffer_inflight(void **state)
{
	(void)state;
	struct ringpair rp;
	struct vhu_vq_elem e;
	struct iovec iov[4];

	assert_int_equal(rp_init(&rp, NUM, features_of(true, true), 64 * 1024, 1000), 0);
	for (uint16_t i = 0; i < NUM; i++) {
		pd(&rp, i, true, GOOD_ADDR, 10, i, W);
		assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 4), 1);
	}
	/* all slots are ours; the driver marks slot 0 available for lap 2 */
	pd(&rp, 0, false, GOOD_ADDR, 10, 0, W);
	assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 4), -EDOM);
	assert_int_equal(vhu_dev_vq_broken(&rp.dev), -EDOM);
	rp_free(&rp);
}

/* Buffers and an indirect table that straddle regions, the table also
 * misaligned: served correctly through the slow path. */
static void straddling_buffers(void **state)
{
	(void)state;
	for (int packed = 0; packed < 2; packed++) {
		struct ringpair rp;
		struct vhu_vq_elem e;
		struct iovec iov[8];
		unsigned char pattern[40];
		/* crosses the first region boundary either way */
		uint64_t tbl = GM_DATA_BASE + (packed ? 976 : 992);
		uint64_t buf = GM_DATA_BASE + 1990;        /* crosses the second */

		for (unsigned i = 0; i < sizeof(pattern); i++)
			pattern[i] = (uint8_t)(i * 5 + packed);
		assert_int_equal(rp_init(&rp, NUM, features_of(packed, true), 64 * 1024, 1000), 0);
		gm_write(&rp.gm, buf, pattern, sizeof(pattern));
		if (packed) {
			struct vhu_vring_packed_desc t[2] = { { buf, 40, 0, 0 }, { GOOD_ADDR, 8, 0, W } };
			gm_write(&rp.gm, tbl, t, sizeof(t));
			pd(&rp, 0, true, tbl, 32, 3, I);
		} else {
			/* direct descriptors may precede the indirect one (§2.7.5.3.2) */
			struct vhu_vring_desc t[1] = { { GOOD_ADDR, 8, W, 0 } };
			gm_write(&rp.gm, tbl, t, sizeof(t));
			sd(&rp, 0, buf, 40, N, 1);
			sd(&rp, 1, tbl, 16, I, 0);
			soffer(&rp, 0);
		}
		uint64_t before = rp.gm.translations;
		assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 8), 1);
		assert_true(rp.gm.translations - before >= 4);
		assert_int_equal(e.out_num, 2);   /* 40 bytes across a boundary */
		assert_int_equal(e.in_num, 1);
		assert_int_equal(e.out_len, 40);
		assert_int_equal(iov[0].iov_len, 10);
		assert_int_equal(iov[1].iov_len, 30);
		assert_memory_equal(iov[0].iov_base, pattern, 10);
		assert_memory_equal(iov[1].iov_base, pattern + 10, 30);
		assert_int_equal(e.id, packed ? 3 : 0);
		rp_free(&rp);
	}
}

/* ---- a device lying to the driver ------------------------------------ */

struct dcase {
	const char *name;
	int err;
	int what;   /* 0 idx jump, 1 id range, 2 id not in flight, 3 len too big */
};

static void run_dcase(void **state)
{
	const struct dcase *c = *state;

	for (int packed = 0; packed < 2; packed++) {
		struct ringpair rp;
		struct vhu_sg sg[2] = { { GOOD_ADDR, 16 }, { GOOD_ADDR + 16, 64 } };
		void *tok;
		uint32_t len;
		int dummy;

		if (packed && c->what == 0)
			continue;  /* packed has no used index */
		assert_int_equal(rp_init(&rp, NUM, features_of(packed, false), 64 * 1024, 1000), 0);
		assert_int_equal(vhu_drv_vq_add(&rp.drv, sg, 1, 1, &dummy), 0);
		vhu_drv_vq_kick_prepare(&rp.drv);
		uint32_t id = c->what == 1 ? NUM : c->what == 2 ? 1 : 0;
		uint32_t ulen = c->what == 3 ? 65 : 64;
		if (packed) {
			struct vhu_vring_packed_desc *d = &pdesc(&rp)[0];
			d->id = (uint16_t)id;
			d->len = ulen;
			__atomic_store_n(&d->flags, (uint16_t)(VHU_VRING_PACKED_DESC_F_AVAIL |
					 VHU_VRING_PACKED_DESC_F_USED | W), __ATOMIC_RELEASE);
		} else {
			sused(&rp)->ring[0] = (struct vhu_vring_used_elem){ id, ulen };
			__atomic_store_n(&sused(&rp)->idx, (uint16_t)(c->what == 0 ? NUM + 1 : 1), __ATOMIC_RELEASE);
		}
		assert_int_equal(vhu_drv_vq_get(&rp.drv, &tok, &len), c->err);
		assert_int_equal(vhu_drv_vq_broken(&rp.drv), c->err);
		assert_int_equal(vhu_drv_vq_add(&rp.drv, sg, 1, 1, &dummy), c->err);
		rp_free(&rp);
	}
}

static const struct dcase dcases[] = {
	{ "driver: used index jumps past the queue size", -EDOM, 0 },
	{ "driver: used id out of range", -ERANGE, 1 },
	{ "driver: used id not in flight", -ENOENT, 2 },
	{ "driver: used length beyond the writable part", -EOVERFLOW, 3 },
};

int main(void)
{
	enum { NC = sizeof(cases) / sizeof(cases[0]), ND = sizeof(dcases) / sizeof(dcases[0]) };
	struct CMUnitTest tests[2 * NC + ND + 8];
	static char burst_names[NC][96];
	size_t n = 0;

	for (size_t i = 0; i < NC; i++)
		tests[n++] = (struct CMUnitTest){ .name = cases[i].name, .test_func = run_hcase,
						  .initial_state = (void *)&cases[i] };
	for (size_t i = 0; i < NC; i++) {
		snprintf(burst_names[i], sizeof(burst_names[i]), "burst: %s", cases[i].name);
		tests[n++] = (struct CMUnitTest){ .name = burst_names[i], .test_func = run_hcase_burst,
						  .initial_state = (void *)&cases[i] };
	}
	tests[n++] = (struct CMUnitTest){ .name = "burst: good chains, then a bad one",
					  .test_func = burst_good_then_bad };
	tests[n++] = (struct CMUnitTest){ .name = "burst: iovec room and bad pushes",
					  .test_func = burst_iov_room };
	tests[n++] = (struct CMUnitTest){ .name = "one-buffer push: ids and lengths refused",
					  .test_func = single_push_refusals };
	tests[n++] = (struct CMUnitTest){ .name = "split: head offered twice while in flight",
					  .test_func = split_head_reoffered };
	tests[n++] = (struct CMUnitTest){ .name = "packed: buffer id reused while in flight",
					  .test_func = packed_id_reused };
	for (size_t i = 0; i < ND; i++)
		tests[n++] = (struct CMUnitTest){ .name = dcases[i].name, .test_func = run_dcase,
						  .initial_state = (void *)&dcases[i] };
	tests[n++] = (struct CMUnitTest){ .name = "split: head re-offered while in flight",
					  .test_func = split_reoffer_inflight };
	tests[n++] = (struct CMUnitTest){ .name = "packed: slot re-offered while in flight",
					  .test_func = packed_reoffer_inflight };
	tests[n++] = (struct CMUnitTest){ .name = "buffers and indirect tables straddling regions",
					  .test_func = straddling_buffers };
	return _cmocka_run_group_tests("ring_hostile", tests, n, NULL, NULL);
}
