/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: sequences of register accesses (any offset, width and value),
 * device-side events (interrupts, config changes, needs-reset) and matched
 * notifications against the virtio-mmio model (vhu/mmio.h), whose device
 * checks every call it gets against what the spec allows at that moment:
 * a ring only after FEATURES_OK, valid and not already enabled; a disable
 * only of an enabled ring; a notification only for an enabled ring; features
 * a subset of the offer with VERSION_1; config accesses inside the space; a
 * reset only with every ring disabled. After each step the model's own
 * state is checked: status bits a driver or the device may set, DRIVER_OK
 * only with FEATURES_OK, InterruptStatus only its two bits, the line
 * asserted exactly while InterruptStatus is not zero.
 *
 * Input: records of 8 bytes: op, size, offset (u16 LE), value (u32 LE).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vhu/mmio.h"
#include "vhu/virtio.h"

#define NQ 3
#define QMAX 256
#define CONFIG_SIZE 24
#define OFFER (VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_F_RING_RESET) | \
	       VHU_BIT(VHU_F_NOTIFICATION_DATA) | VHU_BIT(VHU_F_VERSION_1) | 0x3ffu)

struct checker {
	struct vhu_mmio *m;
	bool enabled[NQ];
	bool features_set;
	uint64_t features;
	bool line;
	uint8_t config[CONFIG_SIZE];
};

#define check(c) do { if (!(c)) abort(); } while (0)

static int set_features(void *o, uint64_t f)
{
	struct checker *c = o;
	check(!c->features_set);
	check(!(f & ~OFFER) && (f & VHU_BIT(VHU_F_VERSION_1)));
	if (f & 0x200)
		return -EINVAL;   /* a device that refuses one feature */
	c->features_set = true;
	c->features = f;
	return 0;
}

static int queue_enable(void *o, const struct vhu_mmio_ring *r)
{
	struct checker *c = o;
	bool packed = c->features & VHU_BIT(VHU_F_RING_PACKED);
	check(c->features_set && r->index < NQ && !c->enabled[r->index]);
	check(r->size && r->size <= QMAX && (packed || !(r->size & (r->size - 1))));
	check(!(r->desc % 16) && !(r->driver % 2) && !(r->device % 4));
	if (r->desc == 0xdead0)
		return -ENOMEM;   /* the device may fail to start a ring */
	c->enabled[r->index] = true;
	return 0;
}

static void queue_disable(void *o, uint16_t i)
{
	struct checker *c = o;
	check(i < NQ && c->enabled[i]);
	c->enabled[i] = false;
}

static void notify(void *o, uint16_t i, uint32_t v)
{
	struct checker *c = o;
	check(i < NQ && c->enabled[i] && (uint16_t)v == i);
}

static void reset(void *o)
{
	struct checker *c = o;
	for (unsigned i = 0; i < NQ; i++)
		check(!c->enabled[i]);
	c->features_set = false;
}

static int config_read(void *o, uint32_t off, void *buf, uint32_t len)
{
	struct checker *c = o;
	check(off <= CONFIG_SIZE && len <= CONFIG_SIZE - off && len && len <= 8);
	memcpy(buf, c->config + off, len);
	return 0;
}

static int config_write(void *o, uint32_t off, const void *buf, uint32_t len)
{
	struct checker *c = o;
	check(off <= CONFIG_SIZE && len <= CONFIG_SIZE - off && len && len <= 8);
	memcpy(c->config + off, buf, len);
	return off == 0 ? -EPERM : 0;
}

static void line(void *o, bool asserted)
{
	struct checker *c = o;
	check(asserted != c->line);   /* called only on a change */
	c->line = asserted;
}

static const struct vhu_mmio_ops ops = {
	.set_features = set_features, .queue_enable = queue_enable, .queue_disable = queue_disable,
	.notify = notify, .reset = reset, .config_read = config_read, .config_write = config_write,
};

static void invariants(struct checker *c)
{
	uint8_t s = vhu_mmio_status(c->m);
	uint32_t isr = vhu_mmio_interrupt_status(c->m);
	check(!(s & 0x30));
	check(!(s & VHU_STATUS_DRIVER_OK) || (s & VHU_STATUS_FEATURES_OK));
	check(!(s & VHU_STATUS_FEATURES_OK) || c->features_set);
	check(!(isr & ~3u));
	check(c->line == (isr != 0));
	for (uint16_t i = 0; i < NQ; i++)
		check(vhu_mmio_queue_ready(c->m, i) == c->enabled[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct vhu_mmio_shm shm = { .id = 1, .base = 0x80000000, .len = 0x1000 };
	struct checker c = { 0 };
	struct vhu_mmio_config cfg = {
		.device_id = 2, .features = OFFER, .num_queues = NQ, .queue_size_max = QMAX, .config_size = CONFIG_SIZE,
		.shm = &shm, .num_shm = 1, .ops = &ops, .opaque = &c, .interrupt = line, .interrupt_opaque = &c,
	};
	struct vhu_mmio_notify_matcher match = { .addr = 0x10000000 + VHU_MMIO_QUEUE_NOTIFY, .size = 4, .num_queues = NQ };
	c.m = vhu_mmio_new(&cfg);
	if (!c.m)
		abort();
	for (size_t at = 0; at + 8 <= size; at += 8) {
		const uint8_t *r = data + at;
		unsigned op = r[0] % 8, width = 1u << (r[1] % 4);
		/* offsets mostly inside the window, now and then anywhere */
		uint64_t off = (uint64_t)(r[2] | r[3] << 8);
		if (r[1] & 0x80)
			off &= 0x1fc;
		uint32_t v = (uint32_t)r[4] | (uint32_t)r[5] << 8 | (uint32_t)r[6] << 16 | (uint32_t)r[7] << 24;
		switch (op) {
		case 0: case 1: case 2:
			vhu_mmio_write(c.m, off, (r[1] & 0x40) ? 4 : width, v);
			break;
		case 3: case 4:
			(void)vhu_mmio_read(c.m, off, (r[1] & 0x40) ? 4 : width);
			break;
		case 5:
			vhu_mmio_raise(c.m, v);
			break;
		case 6:
			if (v & 1)
				vhu_mmio_config_changed(c.m);
			else
				vhu_mmio_needs_reset(c.m);
			break;
		default: {
			int q = vhu_mmio_notify_match(&match, 0x10000000 + off, width, true, v);
			if (q >= 0)
				vhu_mmio_notify(c.m, v);
		}
		}
		invariants(&c);
	}
	vhu_mmio_free(c.m);
	return 0;
}
