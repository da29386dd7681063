/* SPDX-License-Identifier: MIT */
/*
 * The ring engine's instructions per descriptor, for callgrind: one thread
 * streams single-descriptor buffers through a 256-entry ring in batches of
 * 64, the driver's add and publish, the device's pop, push and flush, the
 * driver's get, each batch step in its own function so that callgrind's
 * --toggle-collect can count one role at a time. Instruction counts are
 * repeatable for the same binary, whatever else the machine is doing, so
 * they measure the engine where this project's noisy machines cannot time
 * it. bench/ring-insns runs it under callgrind, linked as programs link
 * libvhu (shared) and statically, through the one-buffer calls (single) or
 * the burst calls (burst: one call per batch and role), and the minimal
 * virtqueue that ring_bench times as the floor (floor, bench/minvq.h), so
 * the engine's count has the format's own beside it, and that virtqueue
 * with only the checks and bookkeeping no safe engine can skip (checked).
 *
 * Usage: ring_insns split|packed [batches [single|burst|floor|checked]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhu/virtio.h"
#include "vhu/vq.h"
#include "minvq.h"
#include "region.h"

#define QSIZE 256
#define BATCH 64


static struct vhu_dev_vq dev;
static struct vhu_drv_vq drv;
static struct region reg;
static int tokens[QSIZE];
static unsigned long sent;

__attribute__((noinline)) void driver_add(void);
__attribute__((noinline)) void device_serve(void);
__attribute__((noinline)) void driver_get(void);

static bool burst;   /* the burst API, else one call per buffer */
static bool floor_ring;   /* the minimal virtqueue instead of vhu */
static bool checked_ring; /* the checked minimal virtqueue */
static struct minvq_ring minvq;
static struct minvq_device minvq_dev;
static struct minvq_driver minvq_drv;
static struct minvq_checked_device chk_dev;
static struct minvq_checked_driver chk_drv;
static void *chk_tokens[BATCH];
_Static_assert(QSIZE == MINVQ_SIZE, "the floor and vhu use one queue size");

void driver_add(void)
{
	if (floor_ring) {
		minvq_add(&minvq, &minvq_drv, BATCH);
		return;
	}
	if (checked_ring) {
		minvq_checked_add(&minvq, &chk_drv, BATCH, chk_tokens);
		if (chk_drv.err)
			exit(1);
		return;
	}
	if (burst) {
		struct vhu_sg sg[BATCH];
		struct vhu_drv_buf b[BATCH];
		for (unsigned i = 0; i < BATCH; i++) {
			unsigned slot = (unsigned)(sent++ % QSIZE);
			sg[i] = (struct vhu_sg){ reg.gpa + slot * 64u, 64 };
			b[i] = (struct vhu_drv_buf){ &sg[i], 1, 0, &tokens[slot] };
		}
		if (vhu_drv_vq_add_burst(&drv, b, BATCH) != BATCH)
			exit(1);
		vhu_drv_vq_publish(&drv);
		return;
	}
	for (unsigned i = 0; i < BATCH; i++) {
		unsigned slot = (unsigned)(sent++ % QSIZE);
		struct vhu_sg sg = { reg.gpa + slot * 64u, 64 };
		if (vhu_drv_vq_add(&drv, &sg, 1, 0, &tokens[slot]) < 0)
			exit(1);
	}
	vhu_drv_vq_publish(&drv);
}

void device_serve(void)
{
	struct vhu_vq_elem e;
	struct iovec iov[4];
	if (floor_ring) {
		if (minvq_serve(&minvq, &minvq_dev, BATCH) != BATCH)
			exit(1);
		return;
	}
	if (checked_ring) {
		if (minvq_checked_serve(&minvq, &chk_dev, BATCH) != BATCH)
			exit(1);
		return;
	}
	if (burst) {
		struct vhu_vq_elem es[BATCH];
		struct vhu_vq_used u[BATCH];
		struct iovec iovs[BATCH * 4];
		if (vhu_dev_vq_pop_burst(&dev, es, BATCH, iovs, BATCH * 4, 4) != BATCH)
			exit(1);
		for (unsigned i = 0; i < BATCH; i++)
			u[i] = (struct vhu_vq_used){ es[i].id, 0 };
		if (vhu_dev_vq_push_burst(&dev, u, BATCH) != BATCH)
			exit(1);
		return;
	}
	for (unsigned i = 0; i < BATCH; i++) {
		if (vhu_dev_vq_pop(&dev, &e, iov, 4) != 1)
			exit(1);
		vhu_dev_vq_push(&dev, &e, 0);
	}
	vhu_dev_vq_flush(&dev);
}

void driver_get(void)
{
	void *tok;
	uint32_t len;
	if (floor_ring) {
		if (minvq_get(&minvq, &minvq_drv, BATCH) != BATCH)
			exit(1);
		return;
	}
	if (checked_ring) {
		if (minvq_checked_get(&minvq, &chk_drv, BATCH) != BATCH)
			exit(1);
		return;
	}
	if (burst) {
		void *toks[BATCH];
		uint32_t lens[BATCH];
		if (vhu_drv_vq_get_burst(&drv, toks, lens, BATCH) != BATCH)
			exit(1);
		return;
	}
	for (unsigned i = 0; i < BATCH; i++)
		if (vhu_drv_vq_get(&drv, &tok, &len) != 1)
			exit(1);
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "split") && strcmp(argv[1], "packed"))) {
		fprintf(stderr, "usage: ring_insns split|packed [batches [single|burst|floor|checked]]\n");
		return 2;
	}
	bool packed = !strcmp(argv[1], "packed");
	long batches = argc > 2 ? strtol(argv[2], NULL, 10) : 2000;
	burst = argc > 3 && !strcmp(argv[3], "burst");
	floor_ring = argc > 3 && !strcmp(argv[3], "floor");
	checked_ring = argc > 3 && !strcmp(argv[3], "checked");
	struct vhu_vq_layout l;
	vhu_vq_layout(QSIZE, packed, &l);
	unsigned char *ring = aligned_alloc(4096, l.size);
	memset(ring, 0, l.size);
	reg = (struct region){ MINVQ_GPA, QSIZE * 64, aligned_alloc(4096, QSIZE * 64) };
	struct vhu_vq_config cfg = {
		.num = QSIZE, .features = VHU_BIT(VHU_F_VERSION_1) | (packed ? VHU_BIT(VHU_F_RING_PACKED) : 0),
		.desc = ring + l.desc_off, .driver_area = ring + l.driver_off, .device_area = ring + l.device_off,
		.translate = translate, .translate_opaque = &reg,
	};
	if (vhu_dev_vq_init(&dev, &cfg) || vhu_drv_vq_init(&drv, &cfg, NULL, 0, 0))
		return 1;
	minvq = (struct minvq_ring){
		.desc = (void *)(ring + l.desc_off), .pdesc = (void *)(ring + l.desc_off),
		.avail = (void *)(ring + l.driver_off), .used = (void *)(ring + l.device_off),
		.host = reg.host, .packed = packed,
	};
	minvq_device_init(&minvq_dev);
	minvq_driver_init(&minvq_drv);
	minvq_checked_device_init(&chk_dev, reg.gpa, reg.size);
	minvq_checked_driver_init(&chk_drv);
	for (unsigned i = 0; i < BATCH; i++)
		chk_tokens[i] = &tokens[i];
	vhu_drv_vq_disable_cb(&drv);
	vhu_dev_vq_disable_notify(&dev);
	for (long b = 0; b < batches; b++) {
		driver_add();
		device_serve();
		driver_get();
	}
	printf("%s: %ld descriptors\n", argv[1], batches * BATCH);
	vhu_drv_vq_destroy(&drv);
	vhu_dev_vq_destroy(&dev);
	free(ring);
	free(reg.host);
	return 0;
}
