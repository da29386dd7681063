/* SPDX-License-Identifier: MIT */
/*
 * A managed device of the admin transport (vhu/admin_member.h), driven by
 * admin commands only, as a management device would hand them over: a RAM
 * disk on the device core, initialised by STATUS_SET / DRV_FEATURES_SET /
 * VQ_SET / VQ_ENABLE_SET, notified by VQ_NOTIFY, its interrupts as events;
 * data written and read back, split and packed, two queues; a reset and a
 * second initialisation; a polling device that suppresses notifications so
 * a busy queue needs no command per request; and hostile commands, each
 * with its status and qualifier, none changing the device.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "mmio_driver.h"
#include "ramdisk_dev.h"
#include "vhu/admin_member.h"
#include "vhu/virtio.h"

#define ID 7

struct bench {
	struct mdrv d;
	struct vhu_mem mem;
	struct vhu_device *dev;
	struct vhu_admin_member *m;
	int event_fd;
	unsigned events[4], notifies;
	void (*before_rings)(struct bench *b);   /* a step of init after FEATURES_OK */
};

static void on_event(void *o, uint64_t member, uint16_t type, uint16_t queue)
{
	struct bench *b = o;
	uint64_t one = 1;
	(void)queue;
	if (member != ID || type > 3)
		abort();
	__atomic_fetch_add(&b->events[type], 1, __ATOMIC_RELAXED);
	(void)!write(b->event_fd, &one, 8);
}

struct reply {
	uint16_t status, qualifier;
	uint32_t used;
	uint8_t result[256];
};

/* One command as the management device passes it on. */
static struct reply cmd(struct bench *b, uint16_t opcode, const void *data, size_t len)
{
	uint8_t rd[24 + 300] = { 0 }, wr[8 + 256];
	struct reply r = { 0 };
	rd[0] = (uint8_t)opcode;
	rd[1] = (uint8_t)(opcode >> 8);
	rd[2] = 0x00;
	rd[3] = 0x80;   /* VHU_ADMIN_GROUP_MANAGED */
	rd[16] = ID;
	if (len)
		memcpy(rd + 24, data, len);
	memset(wr, 0xee, sizeof(wr));
	struct iovec iov[2] = { { rd, 24 + len }, { wr, sizeof(wr) } };
	struct vhu_admin_req req;
	assert_int_equal(vhu_admin_take(iov, 1, 1, &req), 0);
	r.used = vhu_admin_member_command(b->m, &req, iov, 1, 1);
	r.status = vhu_admin_le16(wr);
	r.qualifier = vhu_admin_le16(wr + 2);
	memcpy(r.result, wr + 8, sizeof(r.result));
	return r;
}

#define OK_(r) assert_int_equal((r).status, VHU_ADMIN_STATUS_OK)

static void status_set(struct bench *b, uint8_t s)
{
	uint8_t d[8] = { s };
	OK_(cmd(b, VHU_ADMIN_CMD_STATUS_SET, d, 8));
}

static uint8_t status_get(struct bench *b)
{
	struct reply r = cmd(b, VHU_ADMIN_CMD_STATUS_GET, NULL, 0);
	OK_(r);
	return r.result[0];
}

static void vq_notify(struct mdrv *d, unsigned queue, uint32_t value)
{
	struct bench *b = d->transport;
	uint8_t data[8] = { (uint8_t)queue, (uint8_t)(queue >> 8), 0, 0 };
	memcpy(data + 4, &value, 4);
	b->notifies++;
	OK_(cmd(b, VHU_ADMIN_CMD_VQ_NOTIFY, data, 8));
}

static uint32_t wait_event(struct mdrv *d, int ms)
{
	struct bench *b = d->transport;
	struct pollfd p = { .fd = b->event_fd, .events = POLLIN };
	uint64_t v;
	if (poll(&p, 1, ms) <= 0)
		return 0;
	(void)!read(b->event_fd, &v, 8);
	return 1;
}

static void bench_up(struct bench *b, uint32_t poll_ns)
{
	memset(b, 0, sizeof(*b));
	mdrv_mem_init(&b->d);
	b->d.notify = vq_notify;
	b->d.wait = wait_event;
	b->d.transport = b;
	b->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vhu_mem_init(&b->mem);
	struct vhu_user_mem_region reg = { MDRV_GPA, MDRV_MEM, (uintptr_t)b->d.mem, 0 };
	assert_int_equal(vhu_mem_add(&b->mem, &reg, dup(b->d.memfd)), 0);
	struct vhu_device_config dc = {
		.ops = &ram_ops, .num_queues = 2, .max_queue_size = 256, .config_size = 60, .poll_ns = poll_ns,
		.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) |
			    VHU_BIT(VHU_F_INDIRECT_DESC) | VHU_BIT(VHU_BLK_F_MQ),
	};
	assert_non_null(b->dev = vhu_device_new(&dc));
	struct vhu_admin_member_config mc = { .dev = b->dev, .id = ID, .mem = &b->mem, .event = on_event,
					      .event_opaque = b };
	assert_int_equal(vhu_admin_member_new(&b->m, &mc), 0);
}

static void bench_down(struct bench *b)
{
	vhu_admin_member_free(b->m);
	vhu_device_free(b->dev);
	vhu_mem_clear(&b->mem);
	close(b->event_fd);
	mdrv_destroy(&b->d);
}

static struct reply vq_set(struct bench *b, uint16_t q, uint16_t size, uint64_t desc, uint64_t drv, uint64_t dev)
{
	uint8_t v[32] = { 0 };
	memcpy(v, &q, 2);
	memcpy(v + 2, &size, 2);
	memcpy(v + 8, &desc, 8);
	memcpy(v + 16, &drv, 8);
	memcpy(v + 24, &dev, 8);
	return cmd(b, VHU_ADMIN_CMD_VQ_SET, v, 32);
}

static struct reply queue_flag(struct bench *b, uint16_t opcode, uint16_t q, uint8_t on)
{
	uint8_t v[8] = { (uint8_t)q, (uint8_t)(q >> 8), on };
	return cmd(b, opcode, v, 8);
}

/* The driver's initialisation (§3.1.1), every step a command. */
static void init(struct bench *b, uint64_t want, unsigned nq, uint16_t qsize)
{
	struct mdrv *d = &b->d;
	status_set(b, 0);
	status_set(b, VHU_STATUS_ACKNOWLEDGE);
	status_set(b, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER);
	struct reply r = cmd(b, VHU_ADMIN_CMD_DEV_FEATURES_GET, NULL, 0);
	OK_(r);
	assert_int_equal(r.used, 16);
	d->features = vhu_admin_le64(r.result) & (want | VHU_BIT(VHU_F_VERSION_1));
	OK_(cmd(b, VHU_ADMIN_CMD_DRV_FEATURES_SET, &d->features, 8));
	status_set(b, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK);
	assert_true(status_get(b) & VHU_STATUS_FEATURES_OK);
	if (b->before_rings)
		b->before_rings(b);
	d->nq = nq;
	d->qsize = qsize;
	d->alloc = 0;
	bool packed = vhu_has_feature(d->features, VHU_F_RING_PACKED);
	for (unsigned i = 0; i < nq; i++) {
		struct vhu_vq_layout l;
		uint64_t gpa;
		vhu_vq_layout(qsize, packed, &l);
		unsigned char *ring = mdrv_alloc(d, l.size, 4096, &gpa);
		memset(ring, 0, l.size);
		struct vhu_vq_config c = { .num = qsize, .index = (uint16_t)i, .features = d->features,
					   .desc = ring + l.desc_off, .driver_area = ring + l.driver_off,
					   .device_area = ring + l.device_off };
		assert_int_equal(vhu_drv_vq_init(&d->vq[i], &c, NULL, 0, 0), 0);
		OK_(vq_set(b, (uint16_t)i, qsize, gpa + l.desc_off, gpa + l.driver_off, gpa + l.device_off));
		OK_(queue_flag(b, VHU_ADMIN_CMD_VQ_INTERRUPT_SET, (uint16_t)i, 1));
		OK_(queue_flag(b, VHU_ADMIN_CMD_VQ_ENABLE_SET, (uint16_t)i, 1));
		struct reply s = queue_flag(b, VHU_ADMIN_CMD_VQ_GET, (uint16_t)i, 0);
		OK_(s);
		assert_int_equal(s.result[6], 1);
		assert_int_equal(vhu_admin_le16(s.result + 4), qsize);
	}
	status_set(b, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK | VHU_STATUS_DRIVER_OK);
}

static void reset(struct bench *b)
{
	status_set(b, 0);
	assert_int_equal(status_get(b), 0);   /* the reset is done when STATUS_SET 0 completes */
	for (unsigned i = 0; i < b->d.nq; i++) {
		struct reply s = queue_flag(b, VHU_ADMIN_CMD_VQ_GET, (uint16_t)i, 0);
		assert_int_equal(s.result[6], 0);
		vhu_drv_vq_destroy(&b->d.vq[i]);
	}
	b->d.nq = 0;
}

static uint64_t capacity(struct bench *b)
{
	uint32_t range[2] = { 0, 8 };
	struct reply r = cmd(b, VHU_ADMIN_CMD_CONFIG_GET, range, 8);
	OK_(r);
	assert_int_equal(r.used, 16);
	return vhu_admin_le64(r.result);
}

static void drive(uint64_t want)
{
	static struct bench b;
	bench_up(&b, 0);
	for (unsigned pass = 0; pass < 2; pass++) {
		init(&b, want, 2, pass ? 64 : 128);
		assert_int_equal(capacity(&b), RAM_BYTES / 512);
		for (unsigned i = 0; i < 2; i++)
			assert_int_equal(mdrv_blk_write_read(&b.d, i, 1024 * i + 64 * pass, 16, pass + i), 0);
		assert_true(b.events[VHU_ADMIN_EVENT_USED] > 0);
		assert_true(b.notifies > 0);
		reset(&b);
	}
	bench_down(&b);
}

static void split_two_queues(void **state)
{
	(void)state;
	drive(VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_BLK_F_MQ));
}

static void packed_two_queues(void **state)
{
	(void)state;
	drive(VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_BLK_F_MQ) | VHU_BIT(VHU_F_RING_PACKED));
}

/* A device that polls after work suppresses notifications in the ring: a
 * busy queue needs no VQ_NOTIFY per request (docs/admin-transport.md 5). */
static void polling_needs_no_command_per_request(void **state)
{
	(void)state;
	static struct bench b;
	bench_up(&b, 50 * 1000 * 1000);   /* 50 ms: generous for a loaded machine */
	init(&b, VHU_BIT(VHU_F_EVENT_IDX), 1, 128);
	unsigned batches = 0;
	for (unsigned round = 0; round < 20; round++, batches += 2)
		assert_int_equal(mdrv_blk_write_read(&b.d, 0, 64 * round, 8, round), 0);
	print_message("# %u batches of requests, %u VQ_NOTIFY commands, %u used events\n", batches, b.notifies,
		      b.events[VHU_ADMIN_EVENT_USED]);
	assert_true(b.notifies < batches / 2);
	reset(&b);
	bench_down(&b);
}

struct hostile {
	const char *what;
	uint16_t opcode;
	uint8_t data[40];
	size_t len;
	uint16_t status, qualifier;
};

#define BAD VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_FIELD
static const struct hostile hostile_commands[] = {
	{ "features after FEATURES_OK", VHU_ADMIN_CMD_DRV_FEATURES_SET, { 0, 0, 0, 0, 1 }, 8,
	  VHU_ADMIN_STATUS_EBUSY, VHU_ADMIN_Q_INVALID_FIELD },
	{ "status with a reserved bit", VHU_ADMIN_CMD_STATUS_SET, { 0x1f }, 8, BAD },
	{ "status setting NEEDS_RESET", VHU_ADMIN_CMD_STATUS_SET, { 0x4f }, 8, BAD },
	{ "status setting MMU_FAIL", VHU_ADMIN_CMD_STATUS_SET, { 0x2f }, 8, BAD },
	{ "status clearing bits", VHU_ADMIN_CMD_STATUS_SET, { 0x01 }, 8, BAD },
	{ "status with reserved bytes", VHU_ADMIN_CMD_STATUS_SET, { 0x0f, 0, 0, 1 }, 8, BAD },
	{ "config past the space", VHU_ADMIN_CMD_CONFIG_GET, { 56, 0, 0, 0, 8 }, 8, BAD },
	{ "config of size 0", VHU_ADMIN_CMD_CONFIG_GET, { 0 }, 8, BAD },
	{ "config larger than 256", VHU_ADMIN_CMD_CONFIG_GET, { 0, 0, 0, 0, 1, 1, 0, 0 }, 8, BAD },
	{ "config offset wrapping", VHU_ADMIN_CMD_CONFIG_GET, { 0xff, 0xff, 0xff, 0xff, 8 }, 8, BAD },
	{ "config write without its bytes", VHU_ADMIN_CMD_CONFIG_SET, { 0, 0, 0, 0, 8 }, 10, BAD },
	{ "queue out of range", VHU_ADMIN_CMD_VQ_GET, { 2 }, 8, BAD },
	{ "queue index far out", VHU_ADMIN_CMD_VQ_ENABLE_SET, { 0xff, 0xff, 1 }, 8, BAD },
	{ "enable of 2", VHU_ADMIN_CMD_VQ_ENABLE_SET, { 1, 0, 2 }, 8, BAD },
	{ "interrupt flag of 9", VHU_ADMIN_CMD_VQ_INTERRUPT_SET, { 0, 0, 9 }, 8, BAD },
	{ "interrupt with reserved bytes", VHU_ADMIN_CMD_VQ_INTERRUPT_SET, { 0, 0, 1, 0, 0, 0, 0, 1 }, 8, BAD },
	{ "config interrupt of 3", VHU_ADMIN_CMD_CONFIG_INTERRUPT_SET, { 3 }, 8, BAD },
	{ "notify with reserved bytes", VHU_ADMIN_CMD_VQ_NOTIFY, { 0, 0, 1 }, 8, BAD },
	{ "VQ_SET on an enabled queue", VHU_ADMIN_CMD_VQ_SET, { 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 1 }, 32,
	  VHU_ADMIN_STATUS_EBUSY, VHU_ADMIN_Q_INVALID_FIELD },
	{ "VQ_SET size 0", VHU_ADMIN_CMD_VQ_SET, { 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 32, BAD },
	{ "VQ_SET above the maximum", VHU_ADMIN_CMD_VQ_SET, { 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1 }, 32, BAD },
	{ "VQ_SET misaligned descriptors", VHU_ADMIN_CMD_VQ_SET, { 1, 0, 64, 0, 0, 0, 0, 0, 8, 0, 0, 0x40 }, 32, BAD },
	{ "VQ_SET reserved bytes", VHU_ADMIN_CMD_VQ_SET, { 1, 0, 64, 0, 1 }, 32, BAD },
	{ "MMU enable under an enabled queue", VHU_ADMIN_CMD_MMU_ENABLE, { 1 }, 8,
	  VHU_ADMIN_STATUS_EBUSY, VHU_ADMIN_Q_INVALID_FIELD },
	{ "MMU enable of 2", VHU_ADMIN_CMD_MMU_ENABLE, { 2 }, 8, BAD },
	{ "MMU address space out of range", VHU_ADMIN_CMD_MMU_ASID_SET, { 1, 0, 0, 0, 4 }, 8, BAD },
	{ "MMU address space of a running queue", VHU_ADMIN_CMD_MMU_ASID_SET, { 0, 0, 0, 0, 1 }, 8,
	  VHU_ADMIN_STATUS_EBUSY, VHU_ADMIN_Q_INVALID_FIELD },
	{ "MMU map of size 0", VHU_ADMIN_CMD_MMU_MAP, { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40 }, 32, BAD },
	{ "MMU map without access", VHU_ADMIN_CMD_MMU_MAP, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	  0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40 }, 32, BAD },
	{ "MMU map with a reserved flag", VHU_ADMIN_CMD_MMU_MAP, { 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	  0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40 }, 32, BAD },
	{ "MMU map outside the memory", VHU_ADMIN_CMD_MMU_MAP, { 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	  0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 32, BAD },
	{ "MMU map wrapping", VHU_ADMIN_CMD_MMU_MAP, { 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
	  0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0x40 }, 32, BAD },
	{ "MMU map in a space out of range", VHU_ADMIN_CMD_MMU_MAP, { 9, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	  0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40 }, 32, BAD },
	{ "MMU unmap of nothing", VHU_ADMIN_CMD_MMU_UNMAP, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	  0, 0x10 }, 24, VHU_ADMIN_STATUS_ENXIO, VHU_ADMIN_Q_INVALID_FIELD },
	{ "MMU unmap with reserved bytes", VHU_ADMIN_CMD_MMU_UNMAP, { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	  0, 0x10 }, 24, BAD },
	{ "a management command sent to a member", VHU_ADMIN_CMD_DEV_CREATE, { 2 }, 8,
	  VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_OPCODE },
};

static void hostile(void **state)
{
	(void)state;
	static struct bench b;
	bench_up(&b, 0);
	init(&b, VHU_BIT(VHU_F_EVENT_IDX), 1, 64);
	uint8_t before = status_get(&b);
	for (size_t i = 0; i < sizeof(hostile_commands) / sizeof(hostile_commands[0]); i++) {
		const struct hostile *h = &hostile_commands[i];
		struct reply r = cmd(&b, h->opcode, h->data, h->len);
		if (r.status != h->status || r.qualifier != h->qualifier || r.used != 8)
			fail_msg("%s: status %u qualifier %u used %u", h->what, r.status, r.qualifier, r.used);
		if (status_get(&b) != before)
			fail_msg("%s: changed the status", h->what);
		/* the queue still serves */
		if (mdrv_blk_write_read(&b.d, 0, 8 * i, 2, (uint32_t)i) < 0)
			fail_msg("%s: the queue stopped serving", h->what);
	}
	/* reserved header bytes: refused before the command is looked at */
	uint8_t rd[32] = { 0x14, 0x04, 0x00, 0x80, 0, 0, 0, 1 }, wr[16];
	rd[16] = ID;
	struct iovec iov[2] = { { rd, 32 }, { wr, 16 } };
	struct vhu_admin_req req;
	assert_int_equal(vhu_admin_take(iov, 1, 1, &req), 0);
	assert_int_equal(vhu_admin_member_command(b.m, &req, iov, 1, 1), 8);
	assert_int_equal(vhu_admin_le16(wr), VHU_ADMIN_STATUS_EINVAL);
	reset(&b);
	/* before FEATURES_OK a queue cannot start; a ring outside memory never */
	status_set(&b, VHU_STATUS_ACKNOWLEDGE);
	status_set(&b, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER);
	OK_(vq_set(&b, 0, 64, MDRV_GPA, MDRV_GPA + 4096, MDRV_GPA + 8192));
	struct reply r = queue_flag(&b, VHU_ADMIN_CMD_VQ_ENABLE_SET, 0, 1);
	assert_int_equal(r.status, VHU_ADMIN_STATUS_EBUSY);
	uint64_t f = VHU_BIT(63);   /* not offered */
	r = cmd(&b, VHU_ADMIN_CMD_DRV_FEATURES_SET, &f, 8);
	assert_int_equal(r.status, VHU_ADMIN_STATUS_EINVAL);
	assert_int_equal(r.qualifier, VHU_ADMIN_Q_INVALID_FIELD);
	f = VHU_BIT(VHU_F_VERSION_1);
	OK_(cmd(&b, VHU_ADMIN_CMD_DRV_FEATURES_SET, &f, 8));
	status_set(&b, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK);
	OK_(vq_set(&b, 0, 64, 0x1000, MDRV_GPA + 4096, MDRV_GPA + 8192));
	r = queue_flag(&b, VHU_ADMIN_CMD_VQ_ENABLE_SET, 0, 1);
	assert_int_equal(r.status, VHU_ADMIN_STATUS_EINVAL);
	assert_int_equal(r.qualifier, VHU_ADMIN_Q_INVALID_FIELD);
	OK_(vq_set(&b, 1, 100, MDRV_GPA, MDRV_GPA + 4096, MDRV_GPA + 8192));   /* split: not a power of 2 */
	assert_int_equal(queue_flag(&b, VHU_ADMIN_CMD_VQ_ENABLE_SET, 1, 1).status, VHU_ADMIN_STATUS_EINVAL);
	/* FEATURES_OK without VERSION_1: left clear, DRIVER_OK with it */
	status_set(&b, 0);
	status_set(&b, VHU_STATUS_ACKNOWLEDGE);
	status_set(&b, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER);
	status_set(&b, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK | VHU_STATUS_DRIVER_OK);
	assert_int_equal(status_get(&b), VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER);
	status_set(&b, 0);
	bench_down(&b);
}

static struct reply mmu_map(struct bench *b, uint32_t asid, uint32_t flags, uint64_t iova, uint64_t size,
			    uint64_t dma)
{
	uint8_t v[32];
	memcpy(v, &asid, 4);
	memcpy(v + 4, &flags, 4);
	memcpy(v + 8, &iova, 8);
	memcpy(v + 16, &size, 8);
	memcpy(v + 24, &dma, 8);
	return cmd(b, VHU_ADMIN_CMD_MMU_MAP, v, 32);
}

static struct reply mmu_unmap(struct bench *b, uint32_t asid, uint64_t iova, uint64_t size)
{
	uint8_t v[24] = { 0 };
	memcpy(v, &asid, 4);
	memcpy(v + 8, &iova, 8);
	memcpy(v + 16, &size, 8);
	return cmd(b, VHU_ADMIN_CMD_MMU_UNMAP, v, 24);
}

/* One IN (the device writes data) or OUT request of one segment at a
 * device address; returns the used length, the status byte in *st. */
static uint32_t one_request(struct bench *b, uint32_t type, uint64_t data, uint32_t len, uint8_t *st)
{
	struct mdrv *d = &b->d;
	uint64_t hgpa;
	struct vhu_blk_req_hdr *h = mdrv_alloc(d, sizeof(*h) + 1, 16, &hgpa);
	uint8_t *status = (uint8_t *)(h + 1);
	*h = (struct vhu_blk_req_hdr){ .type = htole32(type), .sector = 0 };
	*status = 0xff;
	struct vhu_sg sg[3] = { { hgpa, sizeof(*h) }, { data, len }, { hgpa + sizeof(*h), 1 } };
	unsigned out = type == VHU_BLK_T_OUT ? 2 : 1;
	assert_int_equal(vhu_drv_vq_add(&d->vq[0], sg, out, 3 - out, h), 0);
	mdrv_kick(d, 0);
	void *tok;
	uint32_t used;
	for (int tries = 0; tries < 500; tries++) {
		if (vhu_drv_vq_get(&d->vq[0], &tok, &used) == 1) {
			*st = *status;
			return used;
		}
		wait_event(d, 10);
	}
	fail_msg("no answer to the request");
	return 0;
}

/* The device MMU (docs/admin-transport.md 7): with it on, the member
 * reaches only what its address space maps, with the permissions mapped;
 * a refused buffer fails its request and touches nothing; a refusal is
 * reported once by MMU_ERR_GET; unmapping the ring breaks the queue with
 * DEVICE_MMU_FAIL. */
#define HALF (MDRV_MEM / 2)
#define SECRET (MDRV_GPA + HALF + 4096)
#define RO_PAGE (MDRV_GPA + HALF + 8192)

/* The first half of the memory mapped 1:1 for the rings and requests, a
 * page beyond it the device must never reach, one mapped read-only. */
static void mmu_on(struct bench *b)
{
	uint8_t d8[8] = { 1 };
	OK_(cmd(b, VHU_ADMIN_CMD_MMU_ENABLE, d8, 8));
	OK_(mmu_map(b, 0, VHU_ADMIN_MMU_READ | VHU_ADMIN_MMU_WRITE, MDRV_GPA, HALF, MDRV_GPA));
	OK_(mmu_map(b, 0, VHU_ADMIN_MMU_READ, RO_PAGE, 4096, RO_PAGE));
	struct reply r = mmu_map(b, 0, VHU_ADMIN_MMU_READ, MDRV_GPA + 4096, 4096, MDRV_GPA);
	assert_int_equal(r.status, VHU_ADMIN_STATUS_EBUSY);   /* intersects: remove first */
}

static void mmu_isolates(void **state)
{
	(void)state;
	static struct bench b;
	bench_up(&b, 0);
	struct mdrv *d = &b.d;
	const uint64_t half = HALF, secret = SECRET, ro = RO_PAGE;
	b.before_rings = mmu_on;
	init(&b, 0, 1, 64);
	b.before_rings = NULL;
	struct reply r;
	memset(d->mem + half + 4096, 0x5a, 4096);
	memset(d->mem + half + 8192, 0x77, 4096);
	assert_int_equal(mdrv_blk_write_read(d, 0, 0, 4, 1), 0);   /* what is mapped works */
	uint8_t st;
	uint64_t pattern = 0x5a5a5a5a5a5a5a5aull;
	/* a read from the disk into the unmapped page: refused, nothing written */
	assert_int_equal(one_request(&b, VHU_BLK_T_IN, secret, 4096, &st), 0);
	assert_int_equal(st, 0xff);
	for (unsigned i = 0; i < 4096; i += 8)
		assert_memory_equal(d->mem + half + 4096 + i, &pattern, 8);
	r = cmd(&b, VHU_ADMIN_CMD_MMU_ERR_GET, NULL, 0);
	OK_(r);
	assert_int_equal(vhu_admin_le32(r.result), 1);   /* not mapped */
	assert_int_equal(vhu_admin_le32(r.result + 12), VHU_ADMIN_MMU_WRITE);
	assert_true(vhu_admin_le64(r.result + 16) == secret);
	r = cmd(&b, VHU_ADMIN_CMD_MMU_ERR_GET, NULL, 0);
	assert_int_equal(vhu_admin_le32(r.result), 0);   /* cleared by reading */
	/* a read-only page: the disk may be written from it, not read into it */
	assert_int_equal(one_request(&b, VHU_BLK_T_OUT, ro, 4096, &st), 1);
	assert_int_equal(st, VHU_BLK_S_OK);
	assert_int_equal(one_request(&b, VHU_BLK_T_IN, ro, 4096, &st), 0);
	assert_int_equal(d->mem[half + 8192], 0x77);
	r = cmd(&b, VHU_ADMIN_CMD_MMU_ERR_GET, NULL, 0);
	assert_int_equal(vhu_admin_le32(r.result), 2);   /* permission */
	/* the queue still serves; then the ring's mapping goes: the queue
	 * fails, with DEVICE_MMU_FAIL, and a needs-reset event */
	assert_int_equal(mdrv_blk_write_read(d, 0, 64, 4, 2), 0);
	OK_(mmu_unmap(&b, 0, MDRV_GPA, 1));
	assert_int_equal(status_get(&b) & (VHU_STATUS_DEVICE_NEEDS_RESET | VHU_STATUS_DEVICE_MMU_FAIL),
			 VHU_STATUS_DEVICE_NEEDS_RESET | VHU_STATUS_DEVICE_MMU_FAIL);
	assert_true(b.events[VHU_ADMIN_EVENT_NEEDS_RESET] > 0);
	/* a reset clears all of it: the MMU is off, its mappings gone */
	reset(&b);
	assert_int_equal(mmu_unmap(&b, 0, ro, 1).status, VHU_ADMIN_STATUS_ENXIO);
	init(&b, 0, 1, 64);
	assert_int_equal(mdrv_blk_write_read(d, 0, 0, 4, 3), 0);
	reset(&b);
	bench_down(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split_two_queues),
		cmocka_unit_test(packed_two_queues),
		cmocka_unit_test(polling_needs_no_command_per_request),
		cmocka_unit_test(hostile),
		cmocka_unit_test(mmu_isolates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
