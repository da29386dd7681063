/* SPDX-License-Identifier: MIT */
#include "mmio_driver.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhu/virtio.h"
#include "vhu/virtio_blk.h"

#define say(...) fprintf(stderr, "# mmio driver: " __VA_ARGS__)

void mdrv_mem_init(struct mdrv *d)
{
	memset(d, 0, sizeof(*d));
	d->memfd = memfd_create("mdrv-guest", MFD_CLOEXEC);
	if (d->memfd < 0 || ftruncate(d->memfd, MDRV_MEM) < 0)
		abort();
	d->mem = mmap(NULL, MDRV_MEM, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
	if (d->mem == MAP_FAILED)
		abort();
	d->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

struct vhu_fe_vmm_region mdrv_region(const struct mdrv *d)
{
	return (struct vhu_fe_vmm_region){ MDRV_GPA, MDRV_MEM, d->mem, d->memfd, 0 };
}

void mdrv_interrupt(void *opaque, bool asserted)
{
	struct mdrv *d = opaque;
	uint64_t one = 1;
	if (asserted) {
		__atomic_fetch_add(&d->interrupts, 1, __ATOMIC_RELAXED);
		(void)!write(d->irq_fd, &one, 8);
	}
}

void *mdrv_alloc(struct mdrv *d, size_t size, size_t align, uint64_t *gpa)
{
	uint64_t off = (d->alloc + align - 1) & ~(uint64_t)(align - 1);
	if (off + size > MDRV_MEM)
		return NULL;
	d->alloc = off + size;
	*gpa = MDRV_GPA + off;
	return d->mem + off;
}

static uint32_t rd(struct mdrv *d, uint64_t off) { return (uint32_t)vhu_mmio_read(d->m, off, 4); }
static void wr(struct mdrv *d, uint64_t off, uint32_t v) { vhu_mmio_write(d->m, off, 4, v); }

static int setup_queue(struct mdrv *d, unsigned i)
{
	bool packed = vhu_has_feature(d->features, VHU_F_RING_PACKED);
	struct vhu_vq_layout l;
	uint64_t gpa;

	wr(d, VHU_MMIO_QUEUE_SEL, i);
	if (rd(d, VHU_MMIO_QUEUE_READY) != 0 || rd(d, VHU_MMIO_QUEUE_SIZE_MAX) < d->qsize) {
		say("queue %u: in use, or smaller than %u\n", i, d->qsize);
		return -EIO;
	}
	vhu_vq_layout(d->qsize, packed, &l);
	unsigned char *ring = mdrv_alloc(d, l.size, 4096, &gpa);
	if (!ring)
		return -ENOMEM;
	memset(ring, 0, l.size);
	struct vhu_vq_config c = { .num = d->qsize, .index = (uint16_t)i, .features = d->features,
				   .desc = ring + l.desc_off, .driver_area = ring + l.driver_off,
				   .device_area = ring + l.device_off };
	if (vhu_drv_vq_init(&d->vq[i], &c, NULL, 0, 0) < 0)
		return -EIO;
	wr(d, VHU_MMIO_QUEUE_SIZE, d->qsize);
	wr(d, VHU_MMIO_QUEUE_DESC_LOW, (uint32_t)(gpa + l.desc_off));
	wr(d, VHU_MMIO_QUEUE_DESC_HIGH, (uint32_t)((gpa + l.desc_off) >> 32));
	wr(d, VHU_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(gpa + l.driver_off));
	wr(d, VHU_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)((gpa + l.driver_off) >> 32));
	wr(d, VHU_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(gpa + l.device_off));
	wr(d, VHU_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)((gpa + l.device_off) >> 32));
	wr(d, VHU_MMIO_QUEUE_READY, 1);
	if (rd(d, VHU_MMIO_QUEUE_READY) != 1) {
		say("queue %u: the device did not take it\n", i);
		return -EIO;
	}
	return 0;
}

int mdrv_init(struct mdrv *d, struct vhu_mmio *m, uint64_t want, unsigned nq, uint16_t qsize)
{
	d->m = m;
	d->nq = nq;
	d->qsize = qsize;
	d->alloc = 0;
	/* §4.2.3.1: magic and version first, then a device id of 0 means no device */
	if (rd(d, VHU_MMIO_MAGIC_VALUE) != VHU_MMIO_MAGIC || rd(d, VHU_MMIO_VERSION) != 2 ||
	    rd(d, VHU_MMIO_DEVICE_ID) == 0) {
		say("not a version-2 virtio-mmio device\n");
		return -EIO;
	}
	wr(d, VHU_MMIO_STATUS, 0);
	wr(d, VHU_MMIO_STATUS, VHU_STATUS_ACKNOWLEDGE);
	wr(d, VHU_MMIO_STATUS, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER);
	uint64_t offer = 0;
	for (unsigned sel = 0; sel < 2; sel++) {
		wr(d, VHU_MMIO_DEVICE_FEATURES_SEL, sel);
		offer |= (uint64_t)rd(d, VHU_MMIO_DEVICE_FEATURES) << 32 * sel;
	}
	d->features = offer & (want | VHU_BIT(VHU_F_VERSION_1));
	for (unsigned sel = 0; sel < 2; sel++) {
		wr(d, VHU_MMIO_DRIVER_FEATURES_SEL, sel);
		wr(d, VHU_MMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32 * sel));
	}
	uint32_t s = VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK;
	wr(d, VHU_MMIO_STATUS, s);
	if (!(rd(d, VHU_MMIO_STATUS) & VHU_STATUS_FEATURES_OK)) {
		say("FEATURES_OK refused for 0x%llx\n", (unsigned long long)d->features);
		return -EIO;
	}
	for (unsigned i = 0; i < nq; i++)
		if (setup_queue(d, i) < 0)
			return -EIO;
	wr(d, VHU_MMIO_STATUS, s | VHU_STATUS_DRIVER_OK);
	return rd(d, VHU_MMIO_STATUS) == (s | VHU_STATUS_DRIVER_OK) ? 0 : -EIO;
}

void mdrv_kick(struct mdrv *d, unsigned i)
{
	if (!vhu_drv_vq_kick_prepare(&d->vq[i]))
		return;
	/* §4.2.3.3 */
	uint32_t v = vhu_has_feature(d->features, VHU_F_NOTIFICATION_DATA) ? vhu_drv_vq_notification_data(&d->vq[i])
									    : i;
	if (d->notify)
		d->notify(d, i, v);
	else
		wr(d, VHU_MMIO_QUEUE_NOTIFY, v);
}

uint32_t mdrv_wait_interrupt(struct mdrv *d, int ms)
{
	if (d->wait)
		return d->wait(d, ms);
	struct pollfd p = { .fd = d->irq_fd, .events = POLLIN };
	uint32_t isr = rd(d, VHU_MMIO_INTERRUPT_STATUS);
	if (!isr) {
		if (poll(&p, 1, ms) <= 0)
			return 0;
		uint64_t v;
		(void)!read(d->irq_fd, &v, 8);
		isr = rd(d, VHU_MMIO_INTERRUPT_STATUS);
	}
	if (isr)
		wr(d, VHU_MMIO_INTERRUPT_ACK, isr);
	return isr;
}

void mdrv_reset(struct mdrv *d)
{
	wr(d, VHU_MMIO_STATUS, 0);
	for (unsigned i = 0; i < d->nq; i++)
		vhu_drv_vq_destroy(&d->vq[i]);
	d->nq = 0;
}

void mdrv_destroy(struct mdrv *d)
{
	for (unsigned i = 0; i < d->nq; i++)
		vhu_drv_vq_destroy(&d->vq[i]);
	munmap(d->mem, MDRV_MEM);
	close(d->memfd);
	close(d->irq_fd);
}

/* ---- block requests ------------------------------------------------------- */

struct req {
	struct vhu_blk_req_hdr *hdr;
	uint8_t *data, *status;
	uint64_t hdr_gpa, data_gpa, status_gpa;
};

static void fill(uint8_t *p, uint64_t sector, uint32_t seed)
{
	for (unsigned j = 0; j < 4096; j++)
		p[j] = (uint8_t)(sector * 131 + j * 7 + seed);
}

static int run(struct mdrv *d, unsigned i, struct req *r, unsigned count, uint32_t type, uint64_t base)
{
	struct vhu_drv_vq *vq = &d->vq[i];
	for (unsigned k = 0; k < count; k++) {
		*r[k].hdr = (struct vhu_blk_req_hdr){ .type = htole32(type), .sector = htole64(base + 8 * k) };
		*r[k].status = 0xff;
		bool in = type == VHU_BLK_T_IN;
		struct vhu_sg sg[3] = { { r[k].hdr_gpa, 16 }, { r[k].data_gpa, 4096 }, { r[k].status_gpa, 1 } };
		if (vhu_drv_vq_add(vq, sg, in ? 1 : 2, in ? 2 : 1, &r[k]) < 0) {
			say("queue %u: add failed\n", i);
			return -1;
		}
	}
	mdrv_kick(d, i);
	unsigned done = 0;
	for (int idle = 0; done < count;) {
		void *tok;
		uint32_t len;
		int got = vhu_drv_vq_get(vq, &tok, &len);
		if (got < 0) {
			say("queue %u: the device broke the ring (%d)\n", i, got);
			return -1;
		}
		if (got) {
			struct req *x = tok;
			if (*x->status != VHU_BLK_S_OK) {
				say("queue %u: request status %u\n", i, *x->status);
				return -1;
			}
			done++;
			continue;
		}
		/* the ring first, then sleep on the line: a used buffer may come
		 * without an interrupt we did not wait for (suppression) */
		if (vhu_drv_vq_enable_cb(vq))
			continue;
		if (mdrv_wait_interrupt(d, 500))
			continue;
		/* notifications were on and the ring empty: a used buffer now,
		 * with no interrupt for it, is a lost interrupt */
		if (vhu_drv_vq_has_used(vq)) {
			say("queue %u: a used buffer came without an interrupt\n", i);
			return -1;
		}
		if (++idle > 10) {
			say("queue %u: %u of %u requests done, no interrupt for 5 s\n", i, done, count);
			return -1;
		}
	}
	return 0;
}

int mdrv_blk_write_read(struct mdrv *d, unsigned i, uint64_t base, unsigned count, uint32_t seed)
{
	struct req r[64];
	if (count > 64 || count > d->qsize)
		return -1;
	uint64_t save = d->alloc;
	for (unsigned k = 0; k < count; k++) {
		r[k].hdr = mdrv_alloc(d, 16, 16, &r[k].hdr_gpa);
		r[k].data = mdrv_alloc(d, 4096, 512, &r[k].data_gpa);
		r[k].status = mdrv_alloc(d, 1, 1, &r[k].status_gpa);
		if (!r[k].hdr || !r[k].data || !r[k].status)
			return -1;
		fill(r[k].data, base + 8 * k, seed);
	}
	int rc = run(d, i, r, count, VHU_BLK_T_OUT, base);
	for (unsigned k = 0; rc == 0 && k < count; k++)
		memset(r[k].data, 0, 4096);
	if (rc == 0)
		rc = run(d, i, r, count, VHU_BLK_T_IN, base);
	for (unsigned k = 0; rc == 0 && k < count; k++) {
		uint8_t want[4096];
		fill(want, base + 8 * k, seed);
		if (memcmp(want, r[k].data, 4096)) {
			say("queue %u: sector %llu read back different\n", i, (unsigned long long)(base + 8 * k));
			rc = -1;
		}
	}
	d->alloc = save;
	return rc;
}
