/* SPDX-License-Identifier: MIT */
/*
 * A virtio-blk driver over the vhost-user front-end: the device's config
 * decoded, and per-queue request submission and completion. Each request
 * slot's header and status byte live in guest memory; data buffers are the
 * caller's, also in guest memory (vhu_fe_alloc). One queue per thread.
 */
#ifndef VHU_BLK_DRIVER_H
#define VHU_BLK_DRIVER_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhu/frontend.h"
#include "vhu/virtio_blk.h"

VHU_API_BEGIN

struct vhu_blk_info {
	uint64_t capacity;          /* 512-byte sectors */
	uint32_t blk_size, seg_max, size_max;
	uint16_t num_queues;
	bool read_only, flush, discard, write_zeroes;
	uint32_t max_discard_sectors, max_discard_seg;
	uint32_t max_write_zeroes_sectors, max_write_zeroes_seg;
	bool write_zeroes_may_unmap;
};

/* The virtio-blk features this driver can use. */
uint64_t vhu_blk_driver_features(void);
/* Read and decode the config space; features: what the device offers. */
int vhu_blk_read_info(struct vhu_fe *fe, uint64_t features, struct vhu_blk_info *info);
/* Decode a config space read some other way (len bytes of it). */
void vhu_blk_decode_info(const struct vhu_blk_config *c, uint64_t features, struct vhu_blk_info *info);

struct vhu_blk_queue;
struct vhu_blk_completion {
	void *user;
	uint8_t status;             /* VHU_BLK_S_*, or 0xff: no status written */
	uint32_t len;               /* bytes the device reports written */
};

/* Slots for the queue's size, their headers in guest memory. */
struct vhu_blk_queue *vhu_blk_queue_new(struct vhu_fe *fe, unsigned index);
/* The same over a ring some other transport carries (a managed device of
 * vhu/admin_driver.h): its engine, and how to get memory the device can
 * reach, notify it, and wait for it. */
struct vhu_blk_ring {
	struct vhu_drv_vq *vq;
	void *(*alloc)(void *opaque, size_t size, size_t align, uint64_t *addr);
	int (*kick)(void *opaque);
	int (*wait)(void *opaque, int timeout_ms);
	void *opaque;
};
struct vhu_blk_queue *vhu_blk_queue_new_on(const struct vhu_blk_ring *ring);
void vhu_blk_queue_free(struct vhu_blk_queue *q);
/* Queue a request: data segments are readable (write-like requests) or
 * writable (IN, GET_ID). -ENOSPC when the ring or the slots are full. */
int vhu_blk_submit(struct vhu_blk_queue *q, uint32_t type, uint64_t sector, const struct vhu_sg *data,
		   unsigned ndata, void *user);
/* One request of a burst, as vhu_blk_submit() takes it. */
struct vhu_blk_request {
	uint32_t type;
	uint64_t sector;
	const struct vhu_sg *data;
	unsigned ndata;
	void *user;
};
/* Queue up to n requests through the ring's burst path. Returns how many
 * were queued (fewer when the ring or the slots filled up, or before one
 * with too many segments), or vhu_blk_submit()'s error for the first. */
int vhu_blk_submit_burst(struct vhu_blk_queue *q, const struct vhu_blk_request *reqs, unsigned n);
int vhu_blk_kick(struct vhu_blk_queue *q);
/* Take up to max completed requests (no waiting). */
int vhu_blk_complete(struct vhu_blk_queue *q, struct vhu_blk_completion *c, unsigned max);
/* Wait for completions (notifications or polling, as the front-end was set up). */
int vhu_blk_wait(struct vhu_blk_queue *q, int timeout_ms);
unsigned vhu_blk_inflight(const struct vhu_blk_queue *q);

VHU_API_END

#endif
