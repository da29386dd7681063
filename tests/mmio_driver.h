/* SPDX-License-Identifier: MIT */
/*
 * An in-process virtio-mmio driver for tests: it owns "guest" memory (a
 * memfd at a guest address far from 0) and drives a virtio-mmio device
 * model only through register reads and writes, following the spec's
 * initialisation sequence (§3.1.1, §4.2.3.1-2), its rings through vhu's
 * driver-side engine, notifications by QUEUE_NOTIFY writes, completions by
 * the interrupt line, InterruptStatus and InterruptACK (§4.2.3.4).
 */
#ifndef VHU_TEST_MMIO_DRIVER_H
#define VHU_TEST_MMIO_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "vhu/frontend_vmm.h"
#include "vhu/mmio.h"
#include "vhu/vq.h"

#define MDRV_GPA 0x40000000ull
#define MDRV_MEM (8u << 20)
#define MDRV_MAX_QUEUES 4

struct mdrv {
	struct vhu_mmio *m;
	int memfd;
	unsigned char *mem;
	uint64_t alloc;
	int irq_fd;                 /* an eventfd the interrupt line raises */
	uint64_t features;          /* negotiated */
	unsigned nq;
	uint16_t qsize;
	struct vhu_drv_vq vq[MDRV_MAX_QUEUES];
	uint64_t interrupts;        /* rising edges seen */
	/* Another transport's notification and interrupt wait (NULL: the
	 * model's QUEUE_NOTIFY and InterruptStatus): the block requests below
	 * then run over it. */
	void (*notify)(struct mdrv *d, unsigned queue, uint32_t value);
	uint32_t (*wait)(struct mdrv *d, int ms);
	void *transport;
};

/* The guest memory (before the device exists: a bridge needs the region). */
void mdrv_mem_init(struct mdrv *d);
struct vhu_fe_vmm_region mdrv_region(const struct mdrv *d);
/* The callback to give the model or bridge as its interrupt line. */
void mdrv_interrupt(void *opaque, bool asserted);
/* Guest memory: the host pointer and, in *gpa, the guest address. */
void *mdrv_alloc(struct mdrv *d, size_t size, size_t align, uint64_t *gpa);
/* The initialisation: reset, ACKNOWLEDGE, DRIVER, features (the offer
 * masked with want, VERSION_1 always), FEATURES_OK read back, nq rings of
 * qsize made ready, DRIVER_OK. 0, or -EIO with the step that failed logged. */
int mdrv_init(struct mdrv *d, struct vhu_mmio *m, uint64_t want, unsigned nq, uint16_t qsize);
/* Notify queue i if the ring wants it: the index, or notification data. */
void mdrv_kick(struct mdrv *d, unsigned i);
/* Wait for the interrupt (up to ms), read and acknowledge InterruptStatus;
 * returns the bits, 0 on timeout. */
uint32_t mdrv_wait_interrupt(struct mdrv *d, int ms);
void mdrv_reset(struct mdrv *d);
void mdrv_destroy(struct mdrv *d);

/* Block requests: count writes of one 4 KiB block each on queue i at
 * sector base + 8k, filled from seed, all in flight at once; then read them
 * back the same way and compare. 0 or -1 (logged). */
int mdrv_blk_write_read(struct mdrv *d, unsigned i, uint64_t base, unsigned count, uint32_t seed);

#endif
