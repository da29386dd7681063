/* SPDX-License-Identifier: MIT */
/*
 * The virtio-mmio model and bridge (vhu/mmio.h, vhu/mmio_bridge.h):
 *   - the register file against a recording device: the initialisation a
 *     driver follows, then hostile accesses (wrong widths, undefined
 *     offsets, reads of write-only and writes to read-only registers, queue
 *     settings while ready, features after FEATURES_OK, statuses that skip
 *     steps or set reserved bits, rings the device cannot take, notifications
 *     for queues that are not ready): each has its defined result, none
 *     reaches the device, and the model still works after them; the notify
 *     matcher in the privcmd ioeventfd's terms;
 *   - an in-process virtio-mmio driver (mmio_driver.c) through the bridge to
 *     vhu-blk and qemu-storage-daemon processes: data written, read back and
 *     found in the image from outside, split and packed, two queues,
 *     notification data through a doorbell page, a device reset and a second
 *     initialisation, and a back-end that dies (DEVICE_NEEDS_RESET).
 * argv[1]: vhu-blk; argv[2]: scripts/qsd.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "mmio_driver.h"
#include "ramdisk_dev.h"
#include "vhu/device.h"
#include "vhu/mmio_bridge.h"
#include "vhu/mmio_device.h"
#include "vhu/virtio.h"
#include "vhu/virtio_blk.h"

static const char *vhu_blk, *qsd_sh;
#define IMG_BYTES (64u << 20)

/* ---- a recording device for the register file ------------------------------ */

struct rec {
	int features_calls, enables, disables, notifies, resets, driver_oks, config_writes;
	uint64_t features;
	struct vhu_mmio_ring last_ring;
	uint32_t last_notify;
	uint8_t config[16];
	bool line;
	int refuse_enable;
};

static int rec_features(void *o, uint64_t f) { struct rec *r = o; r->features_calls++; r->features = f; return 0; }
static int rec_enable(void *o, const struct vhu_mmio_ring *q)
{
	struct rec *r = o;
	if (r->refuse_enable)
		return r->refuse_enable;
	r->enables++;
	r->last_ring = *q;
	return 0;
}
static void rec_disable(void *o, uint16_t i) { struct rec *r = o; (void)i; r->disables++; }
static void rec_notify(void *o, uint16_t i, uint32_t v) { struct rec *r = o; (void)i; r->notifies++; r->last_notify = v; }
static void rec_reset(void *o) { struct rec *r = o; r->resets++; }
static void rec_driver_ok(void *o) { struct rec *r = o; r->driver_oks++; }
static int rec_cread(void *o, uint32_t off, void *b, uint32_t len) { memcpy(b, ((struct rec *)o)->config + off, len); return 0; }
static int rec_cwrite(void *o, uint32_t off, const void *b, uint32_t len)
{
	struct rec *r = o;
	memcpy(r->config + off, b, len);
	r->config_writes++;
	return 0;
}
static void rec_line(void *o, bool a) { ((struct rec *)o)->line = a; }

static const struct vhu_mmio_ops rec_ops = {
	.set_features = rec_features, .queue_enable = rec_enable, .queue_disable = rec_disable,
	.notify = rec_notify, .driver_ok = rec_driver_ok, .reset = rec_reset, .config_read = rec_cread,
	.config_write = rec_cwrite,
};

static const struct vhu_mmio_shm rec_shm = { .id = 3, .base = 0x1122334455667788ull, .len = 0x10000 };

static struct vhu_mmio *rec_model(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	for (unsigned i = 0; i < sizeof(r->config); i++)
		r->config[i] = (uint8_t)(0xa0 + i);
	struct vhu_mmio_config c = {
		.device_id = 2, .vendor_id = 0x554d4551, .num_queues = 2, .queue_size_max = 128, .config_size = 16,
		.features = VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_F_RING_RESET) | 1u << 9,
		.shm = &rec_shm, .num_shm = 1, .ops = &rec_ops, .opaque = r, .interrupt = rec_line, .interrupt_opaque = r,
	};
	struct vhu_mmio *m = vhu_mmio_new(&c);
	assert_non_null(m);
	return m;
}

/* The device saw the same calls (the fields one by one: the struct has padding). */
static bool same_calls(const struct rec *a, const struct rec *b)
{
	return a->features_calls == b->features_calls && a->enables == b->enables && a->disables == b->disables &&
	       a->notifies == b->notifies && a->resets == b->resets && a->driver_oks == b->driver_oks &&
	       a->config_writes == b->config_writes && a->features == b->features && a->line == b->line &&
	       !memcmp(a->config, b->config, sizeof(a->config));
}

static uint32_t rd(struct vhu_mmio *m, uint64_t off) { return (uint32_t)vhu_mmio_read(m, off, 4); }
static void wr(struct vhu_mmio *m, uint64_t off, uint32_t v) { vhu_mmio_write(m, off, 4, v); }

static void set_features(struct vhu_mmio *m, uint64_t f)
{
	wr(m, VHU_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(m, VHU_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(m, VHU_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(m, VHU_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
}

static void queue_addrs(struct vhu_mmio *m, uint64_t desc, uint64_t drv, uint64_t dev)
{
	wr(m, VHU_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(m, VHU_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(m, VHU_MMIO_QUEUE_DRIVER_LOW, (uint32_t)drv);
	wr(m, VHU_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(drv >> 32));
	wr(m, VHU_MMIO_QUEUE_DEVICE_LOW, (uint32_t)dev);
	wr(m, VHU_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(dev >> 32));
}

#define V1 VHU_BIT(VHU_F_VERSION_1)
#define S_AD (VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER)
#define S_FOK (S_AD | VHU_STATUS_FEATURES_OK)

static void register_file_reads(void **state)
{
	(void)state;
	struct rec r;
	struct vhu_mmio *m = rec_model(&r);
	assert_int_equal(rd(m, VHU_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(rd(m, VHU_MMIO_VERSION), 2);
	assert_int_equal(rd(m, VHU_MMIO_DEVICE_ID), 2);
	assert_int_equal(rd(m, VHU_MMIO_VENDOR_ID), 0x554d4551);
	wr(m, VHU_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(rd(m, VHU_MMIO_DEVICE_FEATURES), VHU_BIT(VHU_F_EVENT_IDX) | 1u << 9);
	wr(m, VHU_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(m, VHU_MMIO_DEVICE_FEATURES), 1u | 1u << 2 | 1u << 8);   /* VERSION_1, PACKED, RING_RESET */
	wr(m, VHU_MMIO_DEVICE_FEATURES_SEL, 7);
	assert_int_equal(rd(m, VHU_MMIO_DEVICE_FEATURES), 0);
	wr(m, VHU_MMIO_QUEUE_SEL, 1);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_SIZE_MAX), 128);
	wr(m, VHU_MMIO_QUEUE_SEL, 2);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_SIZE_MAX), 0);   /* no such queue */
	/* shared memory: the region, and all ones for an id nobody uses */
	wr(m, VHU_MMIO_SHM_SEL, 3);
	assert_int_equal(rd(m, VHU_MMIO_SHM_LEN_LOW), 0x10000);
	assert_int_equal(rd(m, VHU_MMIO_SHM_LEN_HIGH), 0);
	assert_int_equal(rd(m, VHU_MMIO_SHM_BASE_LOW), 0x55667788);
	assert_int_equal(rd(m, VHU_MMIO_SHM_BASE_HIGH), 0x11223344);
	wr(m, VHU_MMIO_SHM_SEL, 4);
	assert_int_equal(rd(m, VHU_MMIO_SHM_LEN_LOW), 0xffffffffu);
	assert_int_equal(rd(m, VHU_MMIO_SHM_BASE_HIGH), 0xffffffffu);
	/* config space: bytes, halves, words, little-endian */
	assert_int_equal(vhu_mmio_read(m, VHU_MMIO_CONFIG + 1, 1), 0xa1);
	assert_int_equal(vhu_mmio_read(m, VHU_MMIO_CONFIG + 2, 2), 0xa3a2);
	assert_int_equal(vhu_mmio_read(m, VHU_MMIO_CONFIG + 4, 4), 0xa7a6a5a4);
	assert_int_equal(vhu_mmio_read(m, VHU_MMIO_CONFIG + 8, 8), 0xafaeadacabaaa9a8ull);
	struct vhu_mmio_stats st;
	vhu_mmio_stats(m, &st);
	assert_int_equal(st.bad_width + st.bad_offset + st.refused, 0);
	vhu_mmio_free(m);
}

/* The driver's initialisation, step by step, and what the device saw. */
static void register_file_init(void **state)
{
	(void)state;
	struct rec r;
	struct vhu_mmio *m = rec_model(&r);
	wr(m, VHU_MMIO_STATUS, VHU_STATUS_ACKNOWLEDGE);
	wr(m, VHU_MMIO_STATUS, S_AD);
	set_features(m, V1 | VHU_BIT(VHU_F_RING_PACKED));
	wr(m, VHU_MMIO_STATUS, S_FOK);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), S_FOK);
	assert_int_equal(r.features_calls, 1);
	assert_int_equal(r.features, V1 | VHU_BIT(VHU_F_RING_PACKED));
	wr(m, VHU_MMIO_QUEUE_SEL, 1);
	wr(m, VHU_MMIO_QUEUE_SIZE, 100);   /* packed: any size up to the maximum */
	queue_addrs(m, 0x123400000000ull, 0x5000, 0x6004);
	wr(m, VHU_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_READY), 1);
	assert_int_equal(r.enables, 1);
	assert_int_equal(r.last_ring.index, 1);
	assert_int_equal(r.last_ring.size, 100);
	assert_int_equal(r.last_ring.desc, 0x123400000000ull);
	assert_int_equal(r.last_ring.driver, 0x5000);
	assert_int_equal(r.last_ring.device, 0x6004);
	wr(m, VHU_MMIO_STATUS, S_FOK | VHU_STATUS_DRIVER_OK);
	assert_int_equal(r.driver_oks, 1);
	wr(m, VHU_MMIO_QUEUE_NOTIFY, 0x00050001);   /* notification data for queue 1 */
	assert_int_equal(r.notifies, 1);
	assert_int_equal(r.last_notify, 0x00050001);
	/* interrupts: the line follows InterruptStatus until acknowledged */
	vhu_mmio_raise(m, VHU_MMIO_INT_VRING);
	assert_true(r.line);
	assert_int_equal(rd(m, VHU_MMIO_INTERRUPT_STATUS), 1);
	vhu_mmio_config_changed(m);
	assert_int_equal(rd(m, VHU_MMIO_INTERRUPT_STATUS), 3);
	assert_int_equal(rd(m, VHU_MMIO_CONFIG_GENERATION), 1);
	wr(m, VHU_MMIO_INTERRUPT_ACK, 1);
	assert_true(r.line);
	wr(m, VHU_MMIO_INTERRUPT_ACK, 2);
	assert_false(r.line);
	/* config writes reach the device */
	vhu_mmio_write(m, VHU_MMIO_CONFIG + 6, 2, 0xbeef);
	assert_int_equal(r.config_writes, 1);
	assert_int_equal(r.config[6], 0xef);
	assert_int_equal(r.config[7], 0xbe);
	/* a queue reset (RING_RESET negotiated? no: refused) */
	wr(m, VHU_MMIO_QUEUE_RESET, 1);
	assert_int_equal(r.disables, 0);
	/* stop the queue, then reset the device: one disable, one reset */
	wr(m, VHU_MMIO_QUEUE_READY, 0);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_READY), 0);
	assert_int_equal(r.disables, 1);
	vhu_mmio_raise(m, VHU_MMIO_INT_VRING);
	wr(m, VHU_MMIO_STATUS, 0);
	assert_int_equal(r.resets, 1);
	assert_int_equal(r.disables, 1);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), 0);
	assert_int_equal(rd(m, VHU_MMIO_INTERRUPT_STATUS), 0);   /* §4.2.2.1 */
	assert_false(r.line);
	vhu_mmio_free(m);
}

/* Reach FEATURES_OK with features f, queue 0 set up but not ready. */
static void to_features_ok(struct vhu_mmio *m, uint64_t f)
{
	wr(m, VHU_MMIO_STATUS, 0);
	wr(m, VHU_MMIO_STATUS, VHU_STATUS_ACKNOWLEDGE);
	wr(m, VHU_MMIO_STATUS, S_AD);
	set_features(m, f);
	wr(m, VHU_MMIO_STATUS, S_FOK);
	wr(m, VHU_MMIO_QUEUE_SEL, 0);
	wr(m, VHU_MMIO_QUEUE_SIZE, 64);
	queue_addrs(m, 0x10000, 0x11000, 0x12000);
}

struct hostile {
	const char *what;
	bool write;
	uint64_t off;
	unsigned size;
	uint64_t value;
};

static const struct hostile hostile_accesses[] = {
	{ "byte read of Status", false, VHU_MMIO_STATUS, 1, 0 },
	{ "half read of MagicValue", false, VHU_MMIO_MAGIC_VALUE, 2, 0 },
	{ "64-bit read of DeviceFeatures", false, VHU_MMIO_DEVICE_FEATURES, 8, 0 },
	{ "unaligned read inside Version", false, VHU_MMIO_VERSION + 1, 4, 0 },
	{ "byte write to Status", true, VHU_MMIO_STATUS, 1, 0 },
	{ "half write to QueueReady", true, VHU_MMIO_QUEUE_READY, 2, 1 },
	{ "read of undefined 0x018", false, 0x018, 4, 0 },
	{ "read of legacy QueuePFN 0x040", false, 0x040, 4, 0 },
	{ "write to legacy GuestPageSize 0x028", true, 0x028, 4, 4096 },
	{ "write to undefined 0x0f8", true, 0x0f8, 4, 1 },
	{ "read of write-only QueueNotify", false, VHU_MMIO_QUEUE_NOTIFY, 4, 0 },
	{ "read of write-only QueueSel", false, VHU_MMIO_QUEUE_SEL, 4, 0 },
	{ "read of write-only InterruptACK", false, VHU_MMIO_INTERRUPT_ACK, 4, 0 },
	{ "read of write-only QueueDescLow", false, VHU_MMIO_QUEUE_DESC_LOW, 4, 0 },
	{ "write to read-only MagicValue", true, VHU_MMIO_MAGIC_VALUE, 4, 0 },
	{ "write to read-only InterruptStatus", true, VHU_MMIO_INTERRUPT_STATUS, 4, 3 },
	{ "write to read-only ConfigGeneration", true, VHU_MMIO_CONFIG_GENERATION, 4, 9 },
	{ "write to read-only DeviceFeatures", true, VHU_MMIO_DEVICE_FEATURES, 4, ~0u },
	{ "write to read-only SHMLenLow", true, VHU_MMIO_SHM_LEN_LOW, 4, 1 },
	{ "config read past the space", false, VHU_MMIO_CONFIG + 16, 1, 0 },
	{ "config read across the end", false, VHU_MMIO_CONFIG + 12, 8, 0 },
	{ "unaligned config word", false, VHU_MMIO_CONFIG + 2, 4, 0 },
	{ "config access of 3 bytes", false, VHU_MMIO_CONFIG, 3, 0 },
	{ "config write past the space", true, VHU_MMIO_CONFIG + 200, 4, 1 },
	{ "write far past the window", true, 0x7fffffff0ull, 4, 1 },
	{ "read far past the window", false, ~0ull - 3, 4, 0 },
	{ "QueueNotify for a queue that does not exist", true, VHU_MMIO_QUEUE_NOTIFY, 4, 7 },
	{ "QueueNotify for a queue not ready", true, VHU_MMIO_QUEUE_NOTIFY, 4, 1 },
	{ "InterruptACK with undefined bits", true, VHU_MMIO_INTERRUPT_ACK, 4, 0xfffffffc },
};

/* Every hostile access above at FEATURES_OK with queue 0 ready: nothing of
 * the device's is called, the state is what it was, and the device works. */
static void register_file_hostile_accesses(void **state)
{
	(void)state;
	struct rec r;
	struct vhu_mmio *m = rec_model(&r);
	to_features_ok(m, V1 | VHU_BIT(VHU_F_EVENT_IDX));
	wr(m, VHU_MMIO_QUEUE_READY, 1);
	wr(m, VHU_MMIO_STATUS, S_FOK | VHU_STATUS_DRIVER_OK);
	struct rec before = r;
	struct vhu_mmio_stats st0, st;
	vhu_mmio_stats(m, &st0);
	for (size_t i = 0; i < sizeof(hostile_accesses) / sizeof(hostile_accesses[0]); i++) {
		const struct hostile *h = &hostile_accesses[i];
		uint64_t v = 0;
		if (h->write)
			vhu_mmio_write(m, h->off, h->size, h->value);
		else
			v = vhu_mmio_read(m, h->off, h->size);
		if (v != 0 || !same_calls(&r, &before) ||
		    rd(m, VHU_MMIO_STATUS) != (S_FOK | VHU_STATUS_DRIVER_OK) || rd(m, VHU_MMIO_INTERRUPT_STATUS) ||
		    rd(m, VHU_MMIO_MAGIC_VALUE) != VHU_MMIO_MAGIC)
			fail_msg("%s: read 0x%llx or changed the device", h->what, (unsigned long long)v);
		vhu_mmio_stats(m, &st);
		if (st.bad_width + st.bad_offset + st.refused != st0.bad_width + st0.bad_offset + st0.refused + 1)
			fail_msg("%s: not counted as one bad access", h->what);
		st0 = st;
	}
	/* and it still works */
	wr(m, VHU_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(r.notifies, 1);
	vhu_mmio_free(m);
}

/* The state rules: each refused, each leaving the state as it was. */
static void register_file_hostile_states(void **state)
{
	(void)state;
	struct rec r;
	struct vhu_mmio *m = rec_model(&r);
	/* status steps out of order, reserved bits, the device's own bit */
	wr(m, VHU_MMIO_STATUS, VHU_STATUS_DRIVER);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), 0);
	wr(m, VHU_MMIO_STATUS, VHU_STATUS_ACKNOWLEDGE | 0x10);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), 0);
	wr(m, VHU_MMIO_STATUS, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), 0);
	wr(m, VHU_MMIO_STATUS, VHU_STATUS_ACKNOWLEDGE);
	wr(m, VHU_MMIO_STATUS, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_FEATURES_OK);   /* skips DRIVER */
	assert_int_equal(rd(m, VHU_MMIO_STATUS), VHU_STATUS_ACKNOWLEDGE);
	wr(m, VHU_MMIO_STATUS, S_AD);
	wr(m, VHU_MMIO_STATUS, S_AD | VHU_STATUS_DRIVER_OK);   /* skips FEATURES_OK */
	assert_int_equal(rd(m, VHU_MMIO_STATUS), S_AD);
	/* a queue before FEATURES_OK */
	wr(m, VHU_MMIO_QUEUE_SEL, 0);
	wr(m, VHU_MMIO_QUEUE_SIZE, 64);
	queue_addrs(m, 0x10000, 0x11000, 0x12000);
	wr(m, VHU_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_READY), 0);
	/* features the device did not offer, then without VERSION_1 */
	set_features(m, V1 | VHU_BIT(VHU_F_IN_ORDER));
	wr(m, VHU_MMIO_STATUS, S_FOK);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), S_AD);   /* §3.1.1: read back clear */
	set_features(m, VHU_BIT(VHU_F_EVENT_IDX));
	wr(m, VHU_MMIO_STATUS, S_FOK);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), S_AD);
	/* FEATURES_OK and DRIVER_OK in one write, the features refused:
	 * neither is set (fuzz_mmio found DRIVER_OK kept without FEATURES_OK) */
	set_features(m, V1 | VHU_BIT(VHU_F_IN_ORDER));
	wr(m, VHU_MMIO_STATUS, S_FOK | VHU_STATUS_DRIVER_OK);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), S_AD);
	assert_int_equal(r.driver_oks, 0);
	assert_int_equal(r.features_calls, 0);
	/* features past 64 bits */
	wr(m, VHU_MMIO_DRIVER_FEATURES_SEL, 2);
	wr(m, VHU_MMIO_DRIVER_FEATURES, 1);
	set_features(m, V1);
	wr(m, VHU_MMIO_STATUS, S_FOK);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), S_FOK);
	assert_int_equal(r.features, V1);
	/* features after FEATURES_OK */
	set_features(m, V1 | VHU_BIT(VHU_F_EVENT_IDX));
	assert_int_equal(vhu_mmio_driver_features(m), V1);
	/* clearing a bit without a reset */
	wr(m, VHU_MMIO_STATUS, VHU_STATUS_ACKNOWLEDGE);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), S_FOK);
	/* rings the device cannot take: split size not a power of 2, above the
	 * maximum, zero, misaligned parts; and a device that says no */
	static const struct { uint32_t size; uint64_t desc, drv, dev; } bad[] = {
		{ 100, 0x10000, 0x11000, 0x12000 }, { 256, 0x10000, 0x11000, 0x12000 }, { 0, 0x10000, 0x11000, 0x12000 },
		{ 64, 0x10008, 0x11000, 0x12000 },  { 64, 0x10000, 0x11001, 0x12000 },  { 64, 0x10000, 0x11000, 0x12002 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wr(m, VHU_MMIO_QUEUE_SIZE, bad[i].size);
		queue_addrs(m, bad[i].desc, bad[i].drv, bad[i].dev);
		wr(m, VHU_MMIO_QUEUE_READY, 1);
		if (rd(m, VHU_MMIO_QUEUE_READY) || r.enables)
			fail_msg("ring %zu taken", i);
	}
	wr(m, VHU_MMIO_QUEUE_SIZE, 0);
	wr(m, VHU_MMIO_QUEUE_SIZE, 0x10040);   /* more than 16 bits: refused, the size stays 0 */
	queue_addrs(m, 0x10000, 0x11000, 0x12000);
	wr(m, VHU_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_READY), 0);
	r.refuse_enable = -ENOMEM;
	wr(m, VHU_MMIO_QUEUE_SIZE, 64);
	wr(m, VHU_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_READY), 0);
	r.refuse_enable = 0;
	wr(m, VHU_MMIO_QUEUE_READY, 2);   /* only 0 and 1 */
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_READY), 0);
	wr(m, VHU_MMIO_QUEUE_READY, 1);
	assert_int_equal(r.enables, 1);
	/* queue settings while ready change nothing */
	wr(m, VHU_MMIO_QUEUE_SIZE, 32);
	queue_addrs(m, 0x90000, 0x91000, 0x92000);
	wr(m, VHU_MMIO_QUEUE_READY, 0);
	wr(m, VHU_MMIO_QUEUE_READY, 1);
	assert_int_equal(r.enables, 2);
	assert_int_equal(r.last_ring.size, 64);
	assert_int_equal(r.last_ring.desc, 0x10000);
	/* queue registers of a queue that does not exist */
	wr(m, VHU_MMIO_QUEUE_SEL, 9);
	wr(m, VHU_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_READY), 0);
	assert_int_equal(r.enables, 2);
	/* NEEDS_RESET: set by the device only once the driver is running */
	vhu_mmio_needs_reset(m);
	assert_int_equal(rd(m, VHU_MMIO_STATUS) & VHU_STATUS_DEVICE_NEEDS_RESET, 0);
	wr(m, VHU_MMIO_STATUS, S_FOK | VHU_STATUS_DRIVER_OK);
	vhu_mmio_needs_reset(m);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), S_FOK | VHU_STATUS_DRIVER_OK | VHU_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(rd(m, VHU_MMIO_INTERRUPT_STATUS), VHU_MMIO_INT_CONFIG);
	/* FAILED is the driver's at any time; a reset clears everything */
	wr(m, VHU_MMIO_STATUS, S_FOK | VHU_STATUS_DRIVER_OK | VHU_STATUS_FAILED);
	assert_true(rd(m, VHU_MMIO_STATUS) & VHU_STATUS_FAILED);
	wr(m, VHU_MMIO_STATUS, 0);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), 0);
	assert_int_equal(r.disables, 2);
	vhu_mmio_free(m);
}

/* QueueReset with RING_RESET: the queue stops at once and its registers
 * return to their reset values (§4.2.2.1). */
static void register_file_queue_reset(void **state)
{
	(void)state;
	struct rec r;
	struct vhu_mmio *m = rec_model(&r);
	to_features_ok(m, V1 | VHU_BIT(VHU_F_RING_RESET));
	wr(m, VHU_MMIO_QUEUE_READY, 1);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_RESET), 0);
	wr(m, VHU_MMIO_QUEUE_RESET, 1);
	assert_int_equal(r.disables, 1);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_RESET), 0);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_READY), 0);
	wr(m, VHU_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(r.notifies, 0);
	queue_addrs(m, 0x20000, 0x21000, 0x22000);
	wr(m, VHU_MMIO_QUEUE_READY, 1);
	assert_int_equal(r.enables, 2);
	assert_int_equal(r.last_ring.size, 128);   /* back to the maximum */
	assert_int_equal(r.last_ring.desc, 0x20000);
	vhu_mmio_free(m);
}

static void notify_matcher(void **state)
{
	(void)state;
	struct vhu_mmio_notify_matcher n = { .addr = 0xfeb00000 + VHU_MMIO_QUEUE_NOTIFY, .size = 4, .num_queues = 2 };
	assert_int_equal(vhu_mmio_notify_match(&n, 0xfeb00050, 4, true, 1), 1);
	assert_int_equal(vhu_mmio_notify_match(&n, 0xfeb00050, 4, true, 0x12340000), 0);   /* notification data */
	assert_int_equal(vhu_mmio_notify_match(&n, 0xfeb00050, 4, true, 0x12340002), -1);  /* no queue 2 */
	assert_int_equal(vhu_mmio_notify_match(&n, 0xfeb00050, 4, false, 1), -1);          /* a read */
	assert_int_equal(vhu_mmio_notify_match(&n, 0xfeb00050, 2, true, 1), -1);           /* the wrong size */
	assert_int_equal(vhu_mmio_notify_match(&n, 0xfeb00054, 4, true, 1), -1);
	assert_int_equal(vhu_mmio_notify_match(&n, 0xfeb00060, 4, true, 1), -1);
}

/* ---- through the bridge to real back-ends ---------------------------------------- */

struct peer {
	pid_t pid;
	char dir[64], sock[96], img[96];
};

/* The peer of the running case, stopped by the teardown even when the case fails. */
static struct peer *current;

static void wait_socket(const char *path)
{
	for (int i = 0; i < 500; i++) {
		struct stat st;
		if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			return;
		usleep(10000);
	}
	fail_msg("%s never appeared", path);
}

static void peer_files(struct peer *p)
{
	snprintf(p->dir, sizeof(p->dir), "/tmp/vhu-test-mmio.XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->sock, sizeof(p->sock), "%s/s.sock", p->dir);
	snprintf(p->img, sizeof(p->img), "%s/disk.img", p->dir);
	int fd = open(p->img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, IMG_BYTES), 0);
	close(fd);
}

static void start_vhu_blk(struct peer *p, bool doorbell)
{
	peer_files(p);
	current = p;
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		char s[128], f[128];
		snprintf(s, sizeof(s), "--socket-path=%s", p->sock);
		snprintf(f, sizeof(f), "--blk-file=%s", p->img);
		execl(vhu_blk, vhu_blk, s, f, "--num-queues=2", doorbell ? "--doorbell" : "--engine=io_uring",
		      (char *)NULL);
		_exit(127);
	}
	wait_socket(p->sock);
}

static void start_qsd(struct peer *p)
{
	char cmd[512], out[32] = "";
	peer_files(p);
	current = p;
	snprintf(cmd, sizeof(cmd), "bash %s %s %s --queues=2", qsd_sh, p->img, p->sock);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	if (!fgets(out, sizeof(out), f))
		out[0] = 0;
	int st = pclose(f);
	if (st != 0 || !atoi(out))
		fail_msg("qemu-storage-daemon did not start (%s)", cmd);
	p->pid = atoi(out);
	wait_socket(p->sock);
}

static void stop_peer(struct peer *p)
{
	char cmd[160];
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		waitpid(p->pid, NULL, 0);   /* qsd is not our child: ECHILD, then it is gone soon */
		p->pid = 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", p->dir);
	(void)!system(cmd);
	current = NULL;
}

static int stop_current(void **state)
{
	(void)state;
	if (current)
		stop_peer(current);
	return 0;
}

static struct vhu_mmio_bridge *bridge(struct peer *p, struct mdrv *d, bool doorbells)
{
	struct vhu_fe_vmm_region reg = mdrv_region(d);
	struct vhu_mmio_bridge_config c = {
		.fe = { .path = p->sock, .fd = -1, .timeout_ms = 5000, .doorbells = doorbells },
		.device_id = 2, .config_size = 60, .queue_size_max = 256,
		.regions = &reg, .num_regions = 1, .interrupt = mdrv_interrupt, .interrupt_opaque = d,
	};
	struct vhu_mmio_bridge *b = NULL;
	int rc = vhu_mmio_bridge_new(&b, &c);
	if (rc < 0)
		fail_msg("bridge: %s", strerror(-rc));
	return b;
}

/* The capacity in the config space (§5.2.4), read as the driver does: two
 * 32-bit halves inside a generation that did not change. */
static uint64_t capacity(struct vhu_mmio *m)
{
	uint32_t g, lo, hi;
	do {
		g = rd(m, VHU_MMIO_CONFIG_GENERATION);
		lo = (uint32_t)vhu_mmio_read(m, VHU_MMIO_CONFIG + 0, 4);
		hi = (uint32_t)vhu_mmio_read(m, VHU_MMIO_CONFIG + 4, 4);
	} while (g != rd(m, VHU_MMIO_CONFIG_GENERATION));
	return (uint64_t)hi << 32 | lo;
}

/* What the guest wrote is in the image, seen from outside. */
static void image_holds(const struct peer *p, uint64_t sector, uint32_t seed)
{
	uint8_t got[4096];
	int fd = open(p->img, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, got, 4096, (off_t)sector * 512), 4096);
	close(fd);
	for (unsigned j = 0; j < 4096; j++)
		if (got[j] != (uint8_t)(sector * 131 + j * 7 + seed))
			fail_msg("sector %llu byte %u not in the image", (unsigned long long)sector, j);
}

static void drive(struct peer *p, uint64_t want, unsigned nq, bool doorbells)
{
	struct mdrv d;
	mdrv_mem_init(&d);
	struct vhu_mmio_bridge *b = bridge(p, &d, doorbells);
	struct vhu_mmio *m = vhu_mmio_bridge_mmio(b);
	assert_int_equal(mdrv_init(&d, m, want, nq, 128), 0);
	assert_int_equal(capacity(m), IMG_BYTES / 512);
	for (unsigned round = 0; round < 4; round++)
		for (unsigned i = 0; i < nq; i++)
			if (mdrv_blk_write_read(&d, i, 4096 * i + 256 * round, 32, round * 7 + i) < 0)
				fail_msg("queue %u round %u", i, round);
	image_holds(p, 4096 * (nq - 1) + 256 * 3 + 8 * 31, 3 * 7 + nq - 1);
	assert_true(d.interrupts > 0);
	if (want & VHU_BIT(VHU_F_RING_PACKED))
		assert_true(d.features & VHU_BIT(VHU_F_RING_PACKED));
	struct vhu_mmio_stats st;
	vhu_mmio_stats(m, &st);
	assert_int_equal(st.bad_width + st.bad_offset + st.refused, 0);
	assert_true(st.notifies > 0);
	if (doorbells) {
		/* the back-end offers a page at the first kick that comes by the
		 * eventfd; requests go on until the stores carry them */
		assert_true(d.features & VHU_BIT(VHU_F_NOTIFICATION_DATA));
		struct vhu_fe_queue_stats qs = { 0 };
		for (int i = 0; i < 200 && !qs.kicks_doorbell; i++) {
			assert_int_equal(mdrv_blk_write_read(&d, 0, 8192 + 8 * (i % 64), 4, 99), 0);
			vhu_fe_queue_stats(vhu_fe_queue(vhu_mmio_bridge_fe(b), 0), &qs);
		}
		print_message("# doorbell: %llu kicks stored, %llu by eventfd, %llu pages mapped\n",
			      (unsigned long long)qs.kicks_doorbell, (unsigned long long)qs.kicks_eventfd,
			      (unsigned long long)qs.doorbells_mapped);
		assert_true(qs.kicks_doorbell > 0);
		assert_true(qs.doorbells_mapped > 0);
	}
	mdrv_reset(&d);
	vhu_mmio_bridge_free(b);
	mdrv_destroy(&d);
}

#define WANT_RING (VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_F_INDIRECT_DESC) | VHU_BIT(VHU_BLK_F_MQ) | \
		   VHU_BIT(VHU_BLK_F_FLUSH) | VHU_BIT(VHU_BLK_F_SEG_MAX))

/* One driver through the bridge to one back-end process. */
struct bridge_case {
	bool qsd, doorbell;
	uint64_t want;
	unsigned nq;
};

static const struct bridge_case vhu_blk_split_1q = { false, false, WANT_RING, 1 };
static const struct bridge_case vhu_blk_split_2q = { false, false, WANT_RING, 2 };
static const struct bridge_case vhu_blk_packed_2q = { false, false, WANT_RING | VHU_BIT(VHU_F_RING_PACKED), 2 };
static const struct bridge_case vhu_blk_packed_doorbell_2q = {
	false, true, WANT_RING | VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_NOTIFICATION_DATA), 2 };
static const struct bridge_case vhu_blk_split_doorbell_1q = {
	false, true, WANT_RING | VHU_BIT(VHU_F_NOTIFICATION_DATA), 1 };
static const struct bridge_case qsd_split_2q = { true, false, WANT_RING, 2 };

static void through_bridge(void **state)
{
	const struct bridge_case *c = *state;
	static struct peer p;
	if (c->qsd)
		start_qsd(&p);
	else
		start_vhu_blk(&p, c->doorbell);
	drive(&p, c->want, c->nq, c->doorbell);
	stop_peer(&p);
}

/* A device reset between two initialisations of one bridge: the rings go
 * (GET_VRING_BASE), the back-end forgets, the second driver starts afresh. */
static void reset_and_again(struct peer *p, uint64_t want)
{
	struct mdrv d;
	mdrv_mem_init(&d);
	struct vhu_mmio_bridge *b = bridge(p, &d, false);
	struct vhu_mmio *m = vhu_mmio_bridge_mmio(b);
	for (unsigned pass = 0; pass < 3; pass++) {
		assert_int_equal(mdrv_init(&d, m, want, 2, pass ? 64 : 128), 0);
		for (unsigned i = 0; i < 2; i++)
			assert_int_equal(mdrv_blk_write_read(&d, i, 1024 * pass + 512 * i, 16, pass), 0);
		mdrv_reset(&d);
		assert_int_equal(rd(m, VHU_MMIO_STATUS), 0);
	}
	vhu_mmio_bridge_free(b);
	mdrv_destroy(&d);
}

static void vhu_blk_reset_and_again(void **state)
{
	(void)state;
	static struct peer p;
	start_vhu_blk(&p, false);
	reset_and_again(&p, WANT_RING | VHU_BIT(VHU_F_RING_PACKED));
	stop_peer(&p);
}

static void qsd_reset_and_again(void **state)
{
	(void)state;
	static struct peer p;
	start_qsd(&p);
	reset_and_again(&p, WANT_RING);
	stop_peer(&p);
}

/* The back-end dies under a running driver: DEVICE_NEEDS_RESET and a
 * configuration interrupt, and the model stays usable (a reset works). */
static void back_end_dies(void **state)
{
	(void)state;
	static struct peer p;
	struct mdrv d;
	start_vhu_blk(&p, false);
	mdrv_mem_init(&d);
	struct vhu_mmio_bridge *b = bridge(&p, &d, false);
	struct vhu_mmio *m = vhu_mmio_bridge_mmio(b);
	assert_int_equal(mdrv_init(&d, m, WANT_RING, 1, 128), 0);
	assert_int_equal(mdrv_blk_write_read(&d, 0, 0, 8, 1), 0);
	kill(p.pid, SIGKILL);
	waitpid(p.pid, NULL, 0);
	p.pid = 0;
	uint32_t isr = 0;
	for (int i = 0; i < 50 && !(isr & VHU_MMIO_INT_CONFIG); i++)
		isr |= mdrv_wait_interrupt(&d, 100);
	assert_true(isr & VHU_MMIO_INT_CONFIG);
	assert_true(rd(m, VHU_MMIO_STATUS) & VHU_STATUS_DEVICE_NEEDS_RESET);
	mdrv_reset(&d);
	assert_int_equal(rd(m, VHU_MMIO_STATUS), 0);
	vhu_mmio_bridge_free(b);
	mdrv_destroy(&d);
	stop_peer(&p);
}

/* ---- the model on the device core: a RAM disk of the test's, no vhost-user ------------ */


static void on_device_core(uint64_t want, unsigned nq, enum vhu_exec exec)
{
	struct mdrv d;
	mdrv_mem_init(&d);
	struct vhu_poll_group *pg = NULL;
	if (exec == VHU_EXEC_POLL_GROUP)
		assert_non_null(pg = vhu_poll_group_new(&(struct vhu_poll_group_config){ .threads = 1 }));
	struct vhu_device_config dc = {
		.ops = &ram_ops, .num_queues = 2, .max_queue_size = 256, .config_size = 60, .exec = exec, .poll_group = pg,
		.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) |
			    VHU_BIT(VHU_F_INDIRECT_DESC) | VHU_BIT(VHU_BLK_F_MQ),
	};
	struct vhu_device *dev = vhu_device_new(&dc);
	assert_non_null(dev);
	struct vhu_mmio_mem_region reg = { MDRV_GPA, MDRV_MEM, d.memfd, 0 };
	struct vhu_mmio_device_config mc = { .dev = dev, .device_id = 2, .regions = &reg, .num_regions = 1,
					     .interrupt = mdrv_interrupt, .interrupt_opaque = &d };
	struct vhu_mmio_device *md = NULL;
	assert_int_equal(vhu_mmio_device_new(&md, &mc), 0);
	struct vhu_mmio *m = vhu_mmio_device_mmio(md);
	for (unsigned pass = 0; pass < 2; pass++) {
		assert_int_equal(mdrv_init(&d, m, want, nq, 128), 0);
		assert_int_equal(capacity(m), RAM_BYTES / 512);
		for (unsigned i = 0; i < nq; i++)
			if (mdrv_blk_write_read(&d, i, 2048 * i + 128 * pass, 32, pass + i) < 0)
				fail_msg("queue %u pass %u", i, pass);
		assert_int_equal(vhu_device_features(dev), d.features);
		mdrv_reset(&d);
		assert_int_equal(vhu_device_features(dev), 0);
	}
	assert_true(d.interrupts > 0);
	/* a ring outside guest memory is refused; the queue stays not ready */
	assert_int_equal(mdrv_init(&d, m, want, nq, 128), 0);
	mdrv_reset(&d);
	vhu_mmio_write(m, VHU_MMIO_STATUS, 4, VHU_STATUS_ACKNOWLEDGE);
	vhu_mmio_write(m, VHU_MMIO_STATUS, 4, S_AD);
	set_features(m, V1);
	vhu_mmio_write(m, VHU_MMIO_STATUS, 4, S_FOK);
	vhu_mmio_write(m, VHU_MMIO_QUEUE_SEL, 4, 0);
	vhu_mmio_write(m, VHU_MMIO_QUEUE_SIZE, 4, 64);
	queue_addrs(m, 0x1000, MDRV_GPA, MDRV_GPA + 4096);
	vhu_mmio_write(m, VHU_MMIO_QUEUE_READY, 4, 1);
	assert_int_equal(rd(m, VHU_MMIO_QUEUE_READY), 0);
	vhu_mmio_device_free(md);
	vhu_device_free(dev);
	vhu_poll_group_free(pg);
	mdrv_destroy(&d);
}

static void device_core_split_two_queues(void **state)
{
	(void)state;
	on_device_core(WANT_RING, 2, VHU_EXEC_THREAD_PER_QUEUE);
}

static void device_core_packed_two_queues(void **state)
{
	(void)state;
	on_device_core(WANT_RING | VHU_BIT(VHU_F_RING_PACKED), 2, VHU_EXEC_THREAD_PER_QUEUE);
}

static void device_core_poll_group(void **state)
{
	(void)state;
	on_device_core(WANT_RING | VHU_BIT(VHU_F_RING_PACKED), 2, VHU_EXEC_POLL_GROUP);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: test_mmio VHU_BLK QSD_SH\n");
		return 2;
	}
	vhu_blk = argv[1];
	qsd_sh = argv[2];
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(register_file_reads),
		cmocka_unit_test(register_file_init),
		cmocka_unit_test(register_file_hostile_accesses),
		cmocka_unit_test(register_file_hostile_states),
		cmocka_unit_test(register_file_queue_reset),
		cmocka_unit_test(notify_matcher),
		cmocka_unit_test(device_core_split_two_queues),
		cmocka_unit_test(device_core_packed_two_queues),
		cmocka_unit_test(device_core_poll_group),
		{ "vhu_blk_split_1q", through_bridge, NULL, stop_current, (void *)&vhu_blk_split_1q },
		{ "vhu_blk_split_2q", through_bridge, NULL, stop_current, (void *)&vhu_blk_split_2q },
		{ "vhu_blk_packed_2q", through_bridge, NULL, stop_current, (void *)&vhu_blk_packed_2q },
		{ "vhu_blk_packed_doorbell_2q", through_bridge, NULL, stop_current, (void *)&vhu_blk_packed_doorbell_2q },
		{ "vhu_blk_split_doorbell_1q", through_bridge, NULL, stop_current, (void *)&vhu_blk_split_doorbell_1q },
		{ "qsd_split_2q", through_bridge, NULL, stop_current, (void *)&qsd_split_2q },
		cmocka_unit_test_teardown(vhu_blk_reset_and_again, stop_current),
		cmocka_unit_test_teardown(qsd_reset_and_again, stop_current),
		cmocka_unit_test_teardown(back_end_dies, stop_current),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
