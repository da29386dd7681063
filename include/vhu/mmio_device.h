/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio as a transport of the device core: a device of vhu's
 * (vhu/device.h: its queues, features, config space and execution model)
 * served in this process to a guest whose accesses a VMM traps, with no
 * vhost-user in between. The model's registers (vhu/mmio.h) drive the device
 * core directly: FEATURES_OK sets the device's features, QueueReady starts
 * and stops its rings in the guest memory given here, a QUEUE_NOTIFY write
 * signals the queue's kick eventfd from the trapping thread, and the
 * device's used-buffer notifications, config changes and broken rings set
 * InterruptStatus (and DEVICE_NEEDS_RESET) and call the interrupt callback
 * from the thread that serves the queue, holding its lock: the callback must
 * not wait (an irqfd write, a flag).
 */
#ifndef VHU_MMIO_DEVICE_H
#define VHU_MMIO_DEVICE_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stdint.h>

#include "vhu/device.h"
#include "vhu/mmio.h"

VHU_API_BEGIN

/* Guest memory: guest addresses [guest_addr, guest_addr + size) at fd_offset
 * in fd (duplicated and mapped here; fd stays the caller's). */
struct vhu_mmio_mem_region {
	uint64_t guest_addr, size;
	int fd;
	uint64_t fd_offset;
};

struct vhu_mmio_device_config {
	struct vhu_device *dev;        /* outlives this transport; no other transport attached */
	uint32_t device_id, vendor_id;
	uint16_t queue_size_max;       /* 0: the device's max_queue_size */
	const struct vhu_mmio_mem_region *regions;
	unsigned num_regions;
	void (*interrupt)(void *opaque, bool asserted);
	void *interrupt_opaque;
};

struct vhu_mmio_device;

/* 0, or -EINVAL (a bad configuration, memory that cannot be mapped), -ENOMEM. */
int vhu_mmio_device_new(struct vhu_mmio_device **out, const struct vhu_mmio_device_config *cfg);
/* Stops the rings and detaches from the device (which the caller frees). */
void vhu_mmio_device_free(struct vhu_mmio_device *md);
struct vhu_mmio *vhu_mmio_device_mmio(struct vhu_mmio_device *md);

VHU_API_END

#endif
