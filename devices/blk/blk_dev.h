/* SPDX-License-Identifier: MIT */
#ifndef VHU_BLK_DEV_H
#define VHU_BLK_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "blk_req.h"
#include "vhu/device.h"
#include "vhu/virtio.h"

enum blk_engine { BLK_ENGINE_URING, BLK_ENGINE_THREADS, BLK_ENGINE_SYNC, BLK_ENGINE_NULL };

struct blk_pool;

struct blk_dev {
	const char *path;
	const char *serial;
	int fd;
	bool read_only, is_blockdev;
	bool doorbell;              /* --doorbell: HOST_NOTIFIER pages, NOTIFICATION_DATA */
	uint64_t capacity;          /* sectors */
	uint16_t num_queues, queue_size;
	uint32_t seg_max;
	enum blk_engine engine;
	struct blk_pool *pool;      /* BLK_ENGINE_THREADS */
	struct vhu_blk_config cfg;  /* little-endian, as the driver reads it */
};

extern const struct vhu_device_ops blk_ops;
int blk_dev_open(struct blk_dev *d);
void blk_dev_fill_config(struct blk_dev *d);
uint64_t blk_dev_features(const struct blk_dev *d);
const char *blk_engine_name(enum blk_engine e);

#endif
