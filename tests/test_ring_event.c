/* SPDX-License-Identifier: MIT */
/*
 * Notification rules at their edges: vring_need_event and packed off_wrap
 * around the 16-bit wrap, notification data, vring base encoding, saving
 * and restoring a queue with buffers in flight, NOTIFY_ON_EMPTY and
 * IN_ORDER batching.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "ringpair.h"

static uint64_t feat(bool packed, uint64_t more)
{
	return VHU_BIT(VHU_F_VERSION_1) | (packed ? VHU_BIT(VHU_F_RING_PACKED) : 0) | more;
}

static void need_event_wraps(void **state)
{
	(void)state;
	/* event in [old, new) modulo 2^16 */
	assert_true(vhu_vring_need_event(0, 1, 0));
	assert_false(vhu_vring_need_event(1, 1, 0));        /* not yet crossed */
	assert_true(vhu_vring_need_event(0xffff, 0, 0xfffe));
	assert_true(vhu_vring_need_event(0xfffe, 0, 0xfffe));
	assert_false(vhu_vring_need_event(0, 0, 0xfffe));   /* new == event: not crossed */
	assert_true(vhu_vring_need_event(0xffff, 2, 0xfff0));
	assert_true(vhu_vring_need_event(1, 2, 0xfff0));
	assert_false(vhu_vring_need_event(2, 2, 0xfff0));
	assert_false(vhu_vring_need_event(0xffef, 2, 0xfff0)); /* just behind old */
	assert_false(vhu_vring_need_event(5, 5, 5));          /* nothing new */
	/* exhaustive against the definition for a window at the wrap */
	for (uint32_t old = 0xff00; old < 0x10100; old += 7)
		for (uint32_t n = 0; n < 300; n += 13)
			for (uint32_t ev = old - 20; ev < old + 320; ev += 3) {
				bool want = ev - old < n;   /* ev in [old, old + n) */
				if (ev < old)
					want = false;
				assert_int_equal(vhu_vring_need_event((uint16_t)ev, (uint16_t)(old + n),
								      (uint16_t)old), want);
			}
}

/* Reference model: walk the slots one by one. */
static bool packed_model(uint16_t num, uint16_t off_wrap, uint16_t off, bool wrap, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (off == (off_wrap & 0x7fff) && wrap == (off_wrap >> 15))
			return true;
		if (++off == num) {
			off = 0;
			wrap = !wrap;
		}
	}
	return false;
}

static void packed_need_event_wraps(void **state)
{
	(void)state;
	static const uint16_t nums[] = { 1, 2, 3, 5, 256, 32767, 32768 };
	for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
		uint32_t num = nums[k];
		/* small rings: every offset and count; large ones: the offsets
		 * and counts next to the ring's ends and the 16-bit wrap */
		uint32_t pts[] = { 0, 1, 2, num / 2, num - 2, num - 1 };
		uint32_t cnt[] = { 0, 1, 2, 3, num - 1, num, num + 1, 2 * num - 1, 2 * num, 2 * num + 1 };
		bool small = num <= 8;
		uint32_t npts = small ? num : 6, ncnt = small ? 2 * num + 2 : 10;
		for (uint32_t a = 0; a < npts; a++)
			for (int ow = 0; ow < 2; ow++)
				for (uint32_t b = 0; b < npts; b++)
					for (int evw = 0; evw < 2; evw++)
						for (uint32_t c = 0; c < ncnt; c++) {
							uint32_t old = small ? a : pts[a] % num, ev = small ? b : pts[b] % num;
							uint32_t n = small ? c : cnt[c];
							uint16_t ow16 = (uint16_t)(ev | evw << 15);
							assert_int_equal(
								vhu_vring_packed_need_event((uint16_t)num, ow16, (uint16_t)old, ow, n),
								packed_model((uint16_t)num, ow16, (uint16_t)old, ow, n));
						}
	}
	/* the largest queue: offset 32767 and the wrap bit share a word */
	assert_true(vhu_vring_packed_need_event(32768, 0x7fff, 0x7fff, false, 1));
	assert_false(vhu_vring_packed_need_event(32768, 0xffff, 0x7fff, false, 1));
	assert_true(vhu_vring_packed_need_event(32768, 0x8000, 0x7fff, false, 2));
	/* an offset the ring does not have: notify rather than never */
	assert_true(vhu_vring_packed_need_event(8, 9, 0, true, 1));
}

static void vring_base_encoding(void **state)
{
	(void)state;
	struct vhu_vq_pos p = { .avail = 0x7fff, .avail_wrap = true, .used = 0x1234, .used_wrap = false };
	uint32_t b = vhu_vq_pos_encode(&p, true);
	struct vhu_vq_pos q;

	assert_int_equal(b, 0x7fffu | 1u << 15 | 0x1234u << 16);
	assert_int_equal(vhu_vq_pos_decode(b, true, 32768, &q), 0);
	assert_int_equal(q.avail, p.avail);
	assert_int_equal(q.avail_wrap, p.avail_wrap);
	assert_int_equal(q.used, p.used);
	assert_int_equal(q.used_wrap, p.used_wrap);
	p.used_wrap = true;
	assert_int_equal(vhu_vq_pos_encode(&p, true) >> 31, 1);
	/* offsets beyond the queue are refused */
	assert_int_equal(vhu_vq_pos_decode(b, true, 256, &q), -EINVAL);
	/* split: the avail index only, 16 bits */
	assert_int_equal(vhu_vq_pos_decode(0xfffe, false, 256, &q), 0);
	assert_int_equal(q.avail, 0xfffe);
	assert_int_equal(vhu_vq_pos_decode(0x10000, false, 256, &q), -EINVAL);
}

static int add_one(struct ringpair *rp, void *tok)
{
	struct vhu_sg sg[2] = { { GM_DATA_BASE, 16 }, { GM_DATA_BASE + 16, 32 } };
	return vhu_drv_vq_add(&rp->drv, sg, 1, 1, tok);
}

static void notification_data(void **state)
{
	(void)state;
	for (int packed = 0; packed < 2; packed++) {
		struct ringpair rp;
		int tok;
		struct vhu_vq_elem e;
		struct iovec iov[4];

		assert_int_equal(rp_init(&rp, 8, feat(packed, VHU_BIT(VHU_F_NOTIFICATION_DATA)), 4096, 4096), 0);
		/* encoding of §4.1.5.2 */
		assert_int_equal(vhu_notification_data_encode(3, 0x1234, false, false), 0x12340003u);
		assert_int_equal(vhu_notification_data_encode(3, 0x1234, true, true), 0x92340003u);
		assert_int_equal(vhu_drv_vq_notification_data(&rp.drv), packed ? 0x80000003u : 3u);
		for (int i = 0; i < 3; i++)
			assert_int_equal(add_one(&rp, &tok), 0);
		vhu_drv_vq_kick_prepare(&rp.drv);
		uint32_t data = vhu_drv_vq_notification_data(&rp.drv);
		/* packed: 3 buffers of 2 descriptors, next offset 6 in lap 1 */
		assert_int_equal(data, packed ? (1u << 31 | 6u << 16 | 3u) : (3u << 16 | 3u));
		assert_int_equal(vhu_dev_vq_notification_data(&rp.dev, data), packed ? 6 : 3);
		/* another queue's index */
		assert_int_equal(vhu_dev_vq_notification_data(&rp.dev, data & ~0xffffu), -ENXIO);
		/* claiming more than the ring shows */
		uint32_t lie = packed ? vhu_notification_data_encode(3, 7, true, true)
				      : vhu_notification_data_encode(3, 4, false, false);
		assert_int_equal(vhu_dev_vq_notification_data(&rp.dev, lie), -EBADE);
		/* a lie is only a wrong hint: the ring stays the truth (not
		 * broken), and the device takes exactly the three it shows */
		assert_int_equal(vhu_dev_vq_broken(&rp.dev), 0);
		for (int i = 0; i < 3; i++)
			assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 4), 1);
		assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 4), 0);
		/* after the device took them all, the same value is stale, not wrong */
		assert_int_equal(vhu_dev_vq_notification_data(&rp.dev, data), 0);
		/* and one that is a lap behind is stale too */
		if (packed)
			assert_int_equal(vhu_dev_vq_notification_data(&rp.dev,
				vhu_notification_data_encode(3, 2, true, true)), 0);
		rp_free(&rp);
	}
}

/* Stop with buffers in flight, save the position, bring up a fresh device
 * queue on the same ring, restore, and carry on (vhost-user
 * GET_VRING_BASE / SET_VRING_BASE across a back-end restart). The chains the
 * old queue held are still owed to the driver (counted in flight), but the
 * new queue never took them: returning them by element is refused, which
 * only the inflight region of a crash recovery can do. */
static void save_restore_inflight(void **state)
{
	(void)state;
	for (int packed = 0; packed < 2; packed++) {
		struct ringpair rp;
		int tok[6];
		struct vhu_vq_elem e[6];
		struct iovec iov[6][4];
		struct vhu_vq_pos pos;
		void *t;
		uint32_t len;

		assert_int_equal(rp_init(&rp, 16, feat(packed, VHU_BIT(VHU_F_EVENT_IDX)), 4096, 4096), 0);
		for (int i = 0; i < 6; i++)
			assert_int_equal(add_one(&rp, &tok[i]), 0);
		vhu_drv_vq_kick_prepare(&rp.drv);
		for (int i = 0; i < 4; i++)
			assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e[i], iov[i], 4), 1);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[1], 7), 0);
		vhu_dev_vq_flush(&rp.dev);
		vhu_dev_vq_get_pos(&rp.dev, &pos);
		uint32_t base = vhu_vq_pos_encode(&pos, packed);

		/* the back-end restarts: new queue object, same ring */
		struct vhu_vq_pos back;
		assert_int_equal(vhu_vq_pos_decode(base, packed, 16, &back), 0);
		vhu_dev_vq_destroy(&rp.dev);
		/* a destroyed queue answers, it does not reach freed memory */
		assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e[0], iov[0], 4), -ESHUTDOWN);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[0], 0), -ESHUTDOWN);
		assert_int_equal(vhu_dev_vq_set_pos(&rp.dev, &back), -ESHUTDOWN);
		assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e[0], iov[0], 4), -ESHUTDOWN);
		assert_int_equal(vhu_dev_vq_init(&rp.dev, &rp.cfg), 0);
		assert_int_equal(vhu_dev_vq_set_pos(&rp.dev, &back), 0);
		/* the in-flight ones (e0, e2, e3) are still owed to the driver */
		assert_int_equal(vhu_dev_vq_inflight(&rp.dev), packed ? 6 : 3);
		for (int i = 4; i < 6; i++)
			assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e[i], iov[i], 4), 1);
		assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e[0], iov[0], 4), 0);
		/* the old queue's chains are not this one's to return */
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[3], 3), -EINVAL);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[5], 5), 0);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[4], 4), 0);
		/* nor twice the same */
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[4], 4), -EINVAL);
		vhu_dev_vq_flush(&rp.dev);
		assert_int_equal(vhu_dev_vq_inflight(&rp.dev), packed ? 6 : 3);
		int seen = 0;
		while (vhu_drv_vq_get(&rp.drv, &t, &len) == 1) {
			int i = (int)((int *)t - tok);
			assert_int_equal(len, i == 1 ? 7 : (uint32_t)i);
			seen |= 1 << i;
		}
		assert_int_equal(seen, 0x32);
		assert_int_equal(vhu_drv_vq_num_free(&rp.drv), 16 - 3 * 2);
		/* a position the ring cannot have is refused: split, more than
		 * a queue ahead of used->idx (6); packed, an offset >= num */
		struct vhu_vq_pos bad = { .avail = 23 };
		assert_int_equal(vhu_dev_vq_set_pos(&rp.dev, &bad), -EINVAL);
		rp_free(&rp);
	}
}

/* §6 VIRTIO_F_NOTIFY_ON_EMPTY: notify when the ring runs dry even if the
 * driver suppressed notifications. */
static void notify_on_empty(void **state)
{
	(void)state;
	for (int packed = 0; packed < 2; packed++)
		for (int noe = 0; noe < 2; noe++) {
			struct ringpair rp;
			int tok;
			struct vhu_vq_elem e;
			struct iovec iov[4];

			assert_int_equal(rp_init(&rp, 8, feat(packed, noe ? VHU_BIT(VHU_F_NOTIFY_ON_EMPTY) : 0),
						 4096, 4096), 0);
			vhu_drv_vq_disable_cb(&rp.drv);
			assert_int_equal(add_one(&rp, &tok), 0);
			assert_int_equal(add_one(&rp, &tok), 0);
			vhu_drv_vq_kick_prepare(&rp.drv);
			assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 4), 1);
			assert_int_equal(vhu_dev_vq_push(&rp.dev, &e, 0), 0);
			vhu_dev_vq_flush(&rp.dev);
			/* not empty yet: suppressed in both cases (first call
			 * after init always notifies, so consume it) */
			(void)vhu_dev_vq_should_notify(&rp.dev);
			assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e, iov, 4), 1);
			assert_int_equal(vhu_dev_vq_push(&rp.dev, &e, 0), 0);
			vhu_dev_vq_flush(&rp.dev);
			/* now the ring is empty */
			assert_int_equal(vhu_dev_vq_should_notify(&rp.dev), noe);
			rp_free(&rp);
		}
}

/* IN_ORDER: fully written buffers are returned with a single used entry
 * (split) or descriptor (packed); a partly written one ends the batch. */
static void in_order_batches(void **state)
{
	(void)state;
	for (int packed = 0; packed < 2; packed++) {
		struct ringpair rp;
		int tok[4];
		struct vhu_vq_elem e[4];
		struct iovec iov[4][4];
		void *t;
		uint32_t len;

		assert_int_equal(rp_init(&rp, 16, feat(packed, VHU_BIT(VHU_F_IN_ORDER)), 4096, 4096), 0);
		for (int i = 0; i < 4; i++)
			assert_int_equal(add_one(&rp, &tok[i]), 0);
		vhu_drv_vq_kick_prepare(&rp.drv);
		for (int i = 0; i < 4; i++)
			assert_int_equal(vhu_dev_vq_pop(&rp.dev, &e[i], iov[i], 4), 1);
		/* out of order is refused */
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[1], 32), -EINVAL);
		/* 0, 1 full; 2 partial; 3 full */
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[0], 32), 0);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[1], 32), 0);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[2], 5), 0);
		assert_int_equal(vhu_dev_vq_push(&rp.dev, &e[3], 32), 0);
		vhu_dev_vq_flush(&rp.dev);
		if (packed) {
			struct vhu_vring_packed_desc *d = rp.cfg.desc;
			/* batch 0..2 in slot 0 (id of buffer 2), buffer 3 in slot 6 */
			assert_int_equal(d[0].id, e[2].id);
			assert_int_equal(d[0].len, 5);
			assert_int_equal(d[6].id, e[3].id);
			assert_true(d[6].flags & VHU_VRING_PACKED_DESC_F_USED);
			assert_false(d[2].flags & VHU_VRING_PACKED_DESC_F_USED);
		} else {
			struct vhu_vring_used *u = rp.cfg.device_area;
			assert_int_equal(u->idx, 4);
			assert_int_equal(u->ring[0].id, e[2].id);
			assert_int_equal(u->ring[0].len, 5);
			assert_int_equal(u->ring[3].id, e[3].id);
		}
		uint32_t want[] = { 32, 32, 5, 32 };
		for (int i = 0; i < 4; i++) {
			assert_int_equal(vhu_drv_vq_get(&rp.drv, &t, &len), 1);
			assert_ptr_equal(t, &tok[i]);
			assert_int_equal(len, want[i]);
		}
		assert_int_equal(vhu_drv_vq_get(&rp.drv, &t, &len), 0);
		rp_free(&rp);
	}
}

/* Config checks: sizes and alignment the spec requires. */
static void config_checks(void **state)
{
	(void)state;
	struct ringpair rp;
	struct vhu_dev_vq dev;
	struct vhu_vq_config c;

	assert_int_equal(rp_init(&rp, 8, feat(false, 0), 4096, 4096), 0);
	c = rp.cfg;
	c.num = 6;  /* split must be a power of two */
	assert_int_equal(vhu_dev_vq_init(&dev, &c), -EINVAL);
	c.features = feat(true, 0);  /* packed need not be */
	assert_int_equal(vhu_dev_vq_init(&dev, &c), 0);
	vhu_dev_vq_destroy(&dev);
	c = rp.cfg;
	c.num = 0;
	assert_int_equal(vhu_dev_vq_init(&dev, &c), -EINVAL);
	c = rp.cfg;
	c.desc = (char *)c.desc + 8;
	assert_int_equal(vhu_dev_vq_init(&dev, &c), -EINVAL);
	c = rp.cfg;
	c.device_area = (char *)c.device_area + 2;
	assert_int_equal(vhu_dev_vq_init(&dev, &c), -EINVAL);
	c = rp.cfg;
	c.translate = NULL;
	assert_int_equal(vhu_dev_vq_init(&dev, &c), -EINVAL);
	rp_free(&rp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(need_event_wraps),
		cmocka_unit_test(packed_need_event_wraps),
		cmocka_unit_test(vring_base_encoding),
		cmocka_unit_test(notification_data),
		cmocka_unit_test(save_restore_inflight),
		cmocka_unit_test(notify_on_empty),
		cmocka_unit_test(in_order_batches),
		cmocka_unit_test(config_checks),
	};
	return cmocka_run_group_tests_name("ring_event", tests, NULL, NULL);
}
