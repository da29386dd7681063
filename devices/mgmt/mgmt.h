/* SPDX-License-Identifier: MIT */
/*
 * vhu-mgmt's management device (docs/admin-transport.md): a virtio device
 * served over vhost-user whose admin queue creates, drives and destroys
 * managed block devices, and whose event queue carries their interrupts.
 */
#ifndef VHU_MGMT_H
#define VHU_MGMT_H

#include <stdint.h>

#include "../blk/blk_dev.h"
#include "vhu/backend.h"
#include "vhu/device.h"

struct mgmt_config {
	const char *backing_dir;      /* the files members may use, by name; NULL: only mem: and null: */
	uint32_t max_members;
	uint16_t max_queues;          /* per member (at most 62) */
	uint16_t max_queue_size;
	uint64_t mem_limit;           /* bytes every mem: backing together may hold */
	enum blk_engine engine;       /* io_uring, sync (threads needs a pool: not offered) */
	struct vhu_poll_group *pg;    /* serves every member's queues; outlives the device */
	vhu_log_fn log;
	int log_level;
};

struct mgmt;

/* The management device and its back-end; NULL with errno set. */
struct mgmt *mgmt_new(const struct mgmt_config *cfg);
struct vhu_backend *mgmt_backend(struct mgmt *mg);
/* Every member destroyed (their requests completed), then the device. */
void mgmt_free(struct mgmt *mg);

#endif
