/* SPDX-License-Identifier: MIT */
/*
 * Driver and device over one ring in one process, in random interleavings,
 * for split and packed x INDIRECT x EVENT_IDX x IN_ORDER x queue sizes.
 *
 * Checks: every buffer comes back exactly once, with the length the device
 * wrote and the bytes it wrote; what the device read is what the driver
 * wrote (through straddled regions); a side that armed notifications and
 * went to sleep is always notified when the other side publishes (a missed
 * notification fails the test); spurious notifications are counted.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ringpair.h"

#define SLOT_BYTES 512
#define MAX_SEG 6
#define HDR_MAGIC 0x56485521u

struct tok {
	uint64_t serial;
	unsigned out, in;
	struct vhu_sg sg[MAX_SEG];
	uint32_t reply, in_len;
	bool busy;
};

struct held {
	struct vhu_vq_elem e;
	struct iovec iov[32];
};

struct rt {
	struct ringpair rp;
	uint16_t num;
	struct tok *tok;
	uint32_t *free_tok, nfree;
	struct held *held;       /* pool, num entries */
	uint32_t *hq, hhead, hcount;   /* queue of held indices, in pop order */
	uint32_t *hfree, nhfree;
	uint8_t *returned;
	uint64_t nserial, max_serial, completed, target;
	uint64_t kicks, spurious_kicks, calls, spurious_calls;
	bool dev_sleeping, drv_sleeping, dev_polls, drv_polls;
	uint64_t rng;
};

static uint32_t rnd(struct rt *t, uint32_t n)   /* 0 .. n-1 */
{
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	return n ? (uint32_t)(t->rng % n) : 0;
}

static uint8_t data_byte(uint64_t serial, uint32_t i) { return (uint8_t)(serial * 131 + i * 7 + 1); }
static uint8_t out_byte(uint64_t serial, uint32_t i) { return (uint8_t)(serial * 31 + i * 3); }
static uint8_t anon_byte(uint32_t i) { return (uint8_t)(0xa5 ^ i); }

static void rt_setup(struct rt *t, uint16_t num, uint64_t features, uint64_t seed)
{
	memset(t, 0, sizeof(*t));
	t->num = num;
	t->rng = seed | 1;
	assert_int_equal(rp_init(&t->rp, num, features, (size_t)num * SLOT_BYTES, 1000), 0);
	t->tok = calloc(num, sizeof(*t->tok));
	t->free_tok = calloc(num, sizeof(uint32_t));
	t->held = calloc(num, sizeof(*t->held));
	t->hq = calloc(num, sizeof(uint32_t));
	t->hfree = calloc(num, sizeof(uint32_t));
	assert_non_null(t->tok);
	assert_non_null(t->held);
	for (uint32_t i = 0; i < num; i++) {
		t->free_tok[t->nfree++] = i;
		t->hfree[t->nhfree++] = i;
	}
	/* at least three trips round the ring */
	t->target = 3ull * num + 200;
	t->max_serial = t->target + 2ull * num + 16;
	t->returned = calloc(t->max_serial, 1);
	assert_non_null(t->returned);
}

static void rt_teardown(struct rt *t)
{
	rp_free(&t->rp);
	free(t->tok);
	free(t->free_tok);
	free(t->held);
	free(t->hq);
	free(t->hfree);
	free(t->returned);
}

/* Build one buffer in token slot i: segments at random offsets of the slot's
 * area, header + pattern in the readable part. */
static void make_buffer(struct rt *t, uint32_t i, unsigned max_total)
{
	struct tok *k = &t->tok[i];
	uint64_t base = GM_DATA_BASE + (uint64_t)i * SLOT_BYTES;
	unsigned out = rnd(t, 4), in = rnd(t, 4);
	uint32_t off = 0, o = 0;

	if (out + in == 0)
		out = 1;
	while (out + in > max_total) {
		if (in > out)
			in--;
		else
			out--;
	}
	k->serial = t->nserial++;
	k->out = out;
	k->in = in;
	k->in_len = 0;
	for (unsigned s = 0; s < out + in; s++) {
		uint32_t len = (s == 0 && out) ? 16 + rnd(t, 49) : 1 + rnd(t, 64);
		off += rnd(t, 8);
		k->sg[s].addr = base + off;
		k->sg[s].len = len;
		off += len;
		if (s >= out)
			k->in_len += len;
	}
	if (out) {
		uint32_t c = rnd(t, 4);
		k->reply = c == 0 ? 0 : c == 1 ? rnd(t, k->in_len + 1) : k->in_len;
		unsigned char buf[SLOT_BYTES];
		uint32_t hdr[4] = { (uint32_t)k->serial, (uint32_t)(k->serial >> 32), k->reply, HDR_MAGIC };
		uint32_t total = 0;
		for (unsigned s = 0; s < out; s++)
			total += k->sg[s].len;
		for (uint32_t b = 0; b < total; b++)
			buf[b] = out_byte(k->serial, b);
		memcpy(buf, hdr, sizeof(hdr));
		for (unsigned s = 0; s < out; s++) {
			gm_write(&t->rp.gm, k->sg[s].addr, buf + o, k->sg[s].len);
			o += k->sg[s].len;
		}
	} else {
		k->reply = k->in_len;   /* no header: the device fills it all */
	}
}

static void driver_add(struct rt *t)
{
	unsigned n = 1 + rnd(t, t->num < 16 ? t->num : 16), added = 0;
	bool ind = t->rp.drv.f.indirect;
	unsigned max_total = ind ? MAX_SEG : (t->num < MAX_SEG ? t->num : MAX_SEG);

	for (unsigned a = 0; a < n && t->nfree && t->nserial < t->max_serial - 1; a++) {
		uint32_t i = t->free_tok[t->nfree - 1];
		make_buffer(t, i, max_total);
		int r = vhu_drv_vq_add(&t->rp.drv, t->tok[i].sg, t->tok[i].out, t->tok[i].in, &t->tok[i]);
		if (r == -ENOSPC) {
			t->nserial--;
			break;
		}
		assert_int_equal(r, 0);
		t->tok[i].busy = true;
		t->nfree--;
		added++;
	}
	uint32_t data = vhu_drv_vq_notification_data(&t->rp.drv);
	bool kick = vhu_drv_vq_kick_prepare(&t->rp.drv);
	if (kick) {
		t->kicks++;
		if (!t->dev_sleeping)
			t->spurious_kicks++;
		t->dev_sleeping = false;
		int nd = vhu_dev_vq_notification_data(&t->rp.dev, data);
		if (nd < 0)
			fail_msg("notification data 0x%x rejected: %d", data, nd);
	} else if (added && t->dev_sleeping) {
		fail_msg("missed kick: device asleep, %u buffers published, no kick", added);
	}
}

static void device_take(struct rt *t)
{
	struct vhu_dev_vq *dev = &t->rp.dev;
	unsigned k = 1 + rnd(t, 16);

	if (t->dev_sleeping)
		return;
	if (t->dev_polls)
		vhu_dev_vq_disable_notify(dev);
	for (unsigned a = 0; a < k && t->nhfree; a++) {
		uint32_t h = t->hfree[t->nhfree - 1];
		struct held *hd = &t->held[h];
		int r = vhu_dev_vq_pop(dev, &hd->e, hd->iov, 32);
		if (r == 0) {
			/* Going to sleep: a device that had notifications
			 * enabled all along relies on pop, which armed the
			 * event and rechecked; one that polled re-enables and
			 * rechecks. */
			if (!t->dev_polls && dev->notify_enabled)
				t->dev_sleeping = true;
			else if (!vhu_dev_vq_enable_notify(dev))
				t->dev_sleeping = true;
			if (t->dev_sleeping)
				return;
			continue;
		}
		if (r != 1)
			fail_msg("pop: %d (%s)", r, vhu_vq_strerror(r));
		t->nhfree--;
		t->hq[(t->hhead + t->hcount++) % t->num] = h;
	}
}

/* Serve one held buffer: check what the driver wrote, write the reply. */
static uint32_t serve(struct held *hd)
{
	unsigned char in[SLOT_BYTES];
	uint64_t serial = 0;
	uint32_t reply, got = 0;
	struct vhu_vq_elem *e = &hd->e;

	assert_true(e->out_len <= SLOT_BYTES && e->in_len <= SLOT_BYTES);
	for (uint32_t s = 0; s < e->out_num; s++) {
		memcpy(in + got, e->iov[s].iov_base, e->iov[s].iov_len);
		got += e->iov[s].iov_len;
	}
	assert_int_equal(got, e->out_len);
	if (got) {
		uint32_t hdr[4];
		assert_true(got >= 16);
		memcpy(hdr, in, sizeof(hdr));
		assert_int_equal(hdr[3], HDR_MAGIC);
		serial = hdr[0] | (uint64_t)hdr[1] << 32;
		reply = hdr[2];
		for (uint32_t b = 16; b < got; b++)
			if (in[b] != out_byte(serial, b))
				fail_msg("serial %llu: device read byte %u wrong", (unsigned long long)serial, b);
	} else {
		reply = (uint32_t)e->in_len;
	}
	assert_true(reply <= e->in_len);
	uint32_t done = 0;
	for (uint32_t s = e->out_num; s < e->out_num + e->in_num && done < reply; s++) {
		unsigned char *p = e->iov[s].iov_base;
		for (size_t b = 0; b < e->iov[s].iov_len && done < reply; b++, done++)
			p[b] = got ? data_byte(serial, done) : anon_byte(done);
	}
	return reply;
}

static void device_complete(struct rt *t)
{
	struct vhu_dev_vq *dev = &t->rp.dev;
	unsigned n = rnd(t, t->hcount + 1), pushed = 0;

	for (unsigned a = 0; a < n; a++) {
		/* random completion order unless IN_ORDER was negotiated */
		uint32_t pick = dev->f.in_order ? 0 : rnd(t, t->hcount);
		uint32_t *head = &t->hq[t->hhead], *other = &t->hq[(t->hhead + pick) % t->num];
		uint32_t tmp = *head;
		*head = *other;
		*other = tmp;
		uint32_t h = t->hq[t->hhead];
		t->hhead = (t->hhead + 1) % t->num;
		t->hcount--;
		uint32_t len = serve(&t->held[h]);
		assert_int_equal(vhu_dev_vq_push(dev, &t->held[h].e, len), 0);
		t->hfree[t->nhfree++] = h;
		pushed++;
	}
	vhu_dev_vq_flush(dev);
	if (!pushed)
		return;
	if (vhu_dev_vq_should_notify(dev)) {
		t->calls++;
		if (!t->drv_sleeping)
			t->spurious_calls++;
		t->drv_sleeping = false;
	} else if (t->drv_sleeping) {
		fail_msg("missed call: driver asleep, %u buffers used, no notification", pushed);
	}
}

static void driver_collect(struct rt *t)
{
	struct vhu_drv_vq *drv = &t->rp.drv;
	unsigned n = 1 + rnd(t, 32);

	if (t->drv_sleeping)
		return;
	if (t->drv_polls)
		vhu_drv_vq_disable_cb(drv);
	for (unsigned a = 0; a < n; a++) {
		void *token;
		uint32_t len;
		int r = vhu_drv_vq_get(drv, &token, &len);
		if (r == 0) {
			if (!vhu_drv_vq_enable_cb(drv))
				t->drv_sleeping = true;
			if (t->drv_sleeping)
				return;
			continue;
		}
		if (r != 1)
			fail_msg("get: %d (%s)", r, vhu_vq_strerror(r));
		struct tok *k = token;
		assert_true(k >= t->tok && k < t->tok + t->num && k->busy);
		if (t->returned[k->serial])
			fail_msg("serial %llu returned twice", (unsigned long long)k->serial);
		t->returned[k->serial] = 1;
		if (len != k->reply)
			fail_msg("serial %llu: len %u, device wrote %u", (unsigned long long)k->serial, len, k->reply);
		uint32_t done = 0;
		for (unsigned s = k->out; s < k->out + k->in && done < len; s++) {
			unsigned char buf[64];
			uint32_t l = k->sg[s].len;
			gm_read(&t->rp.gm, k->sg[s].addr, buf, l);
			for (uint32_t b = 0; b < l && done < len; b++, done++)
				if (buf[b] != (k->out ? data_byte(k->serial, done) : anon_byte(done)))
					fail_msg("serial %llu: reply byte %u wrong", (unsigned long long)k->serial, done);
		}
		k->busy = false;
		t->free_tok[t->nfree++] = (uint32_t)(k - t->tok);
		t->completed++;
	}
}

struct rt_case {
	uint16_t num;
	uint64_t features;
};

static void run_case(void **state)
{
	const struct rt_case *c = *state;
	struct rt t;
	uint64_t steps = 0, limit = 400ull * (3ull * c->num + 200) + 100000;

	rt_setup(&t, c->num, c->features, 0x9e3779b97f4a7c15ull ^ (c->num * 0x100000001ull) ^ c->features);
	while (t.completed < t.target) {
		/* each side changes its habits now and then */
		if (rnd(&t, 64) == 0)
			t.dev_polls = !t.dev_polls;
		if (rnd(&t, 64) == 0)
			t.drv_polls = !t.drv_polls;
		switch (rnd(&t, 4)) {
		case 0: driver_add(&t); break;
		case 1: device_take(&t); break;
		case 2: device_complete(&t); break;
		case 3: driver_collect(&t); break;
		}
		if (++steps > limit)
			fail_msg("no progress: %llu of %llu completed", (unsigned long long)t.completed,
				 (unsigned long long)t.target);
	}
	/* drain: no more adds; everything in flight must come back */
	for (steps = 0; t.nfree < c->num; steps++) {
		device_take(&t);
		device_complete(&t);
		driver_collect(&t);
		if (steps > 100000)
			fail_msg("drain stuck: %u in flight", c->num - t.nfree);
	}
	for (uint64_t s = 0; s < t.nserial; s++)
		if (!t.returned[s])
			fail_msg("serial %llu never returned", (unsigned long long)s);
	assert_int_equal(vhu_dev_vq_inflight(&t.rp.dev), 0);
	assert_int_equal(vhu_drv_vq_num_free(&t.rp.drv), c->num);
	print_message("# %llu buffers, kicks %llu (spurious %llu), calls %llu (spurious %llu)\n",
		      (unsigned long long)t.completed, (unsigned long long)t.kicks,
		      (unsigned long long)t.spurious_kicks, (unsigned long long)t.calls,
		      (unsigned long long)t.spurious_calls);
	rt_teardown(&t);
}

int main(void)
{
	static const uint16_t split_sizes[] = { 1, 2, 256, 32768 };
	static const uint16_t packed_sizes[] = { 1, 2, 3, 256, 32768 };
	static struct rt_case cases[72];
	static char names[72][64];
	struct CMUnitTest tests[72];
	size_t n = 0;

	for (int packed = 0; packed < 2; packed++) {
		const uint16_t *sizes = packed ? packed_sizes : split_sizes;
		size_t nsizes = packed ? 5 : 4;
		for (size_t s = 0; s < nsizes; s++)
			for (int m = 0; m < 8; m++) {
				bool ind = m & 1, evt = m & 2, ord = m & 4;
				cases[n] = (struct rt_case){
					.num = sizes[s],
					.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_NOTIFICATION_DATA) |
						    (packed ? VHU_BIT(VHU_F_RING_PACKED) : 0) |
						    (ind ? VHU_BIT(VHU_F_INDIRECT_DESC) : 0) |
						    (evt ? VHU_BIT(VHU_F_EVENT_IDX) : 0) |
						    (ord ? VHU_BIT(VHU_F_IN_ORDER) : 0),
				};
				snprintf(names[n], sizeof(names[n]), "%s num=%u indirect=%d event_idx=%d in_order=%d",
					 packed ? "packed" : "split", sizes[s], ind, evt, ord);
				tests[n] = (struct CMUnitTest){ .name = names[n], .test_func = run_case,
								.initial_state = &cases[n] };
				n++;
			}
	}
	return _cmocka_run_group_tests("ring_roundtrip", tests, n, NULL, NULL);
}
