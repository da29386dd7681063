/* SPDX-License-Identifier: MIT */
/*
 * The virtio-mmio bridge: a virtio-mmio device model (vhu/mmio.h) whose
 * device is any vhost-user back-end (vhu-blk, qemu-storage-daemon,
 * anyone's), reached through vhu's front-end in its VMM form
 * (vhu/frontend_vmm.h). A VMM that traps MMIO hands the guest's register
 * accesses to vhu_mmio_read/vhu_mmio_write on vhu_mmio_bridge_mmio(); they
 * become vhost-user messages:
 *
 *   FEATURES_OK      SET_FEATURES, SET_MEM_TABLE (the guest memory given here)
 *   QueueReady 1     SET_VRING_NUM, _BASE, _ADDR, _CALL, _KICK, _ENABLE
 *   QueueReady 0     GET_VRING_BASE (also QueueReset, and each ready queue
 *                    on a device reset, which then sends RESET_DEVICE)
 *   DRIVER_OK        SET_STATUS
 *   config space     read from the back-end at FEATURES_OK and on its
 *                    CONFIG_CHANGE_MSG (a new ConfigGeneration and a
 *                    configuration interrupt); writes go as SET_CONFIG
 *
 * A QUEUE_NOTIFY write signals the back-end's kick eventfd directly from the
 * trapping thread (no relay thread), or, where the back-end gave the queue a
 * doorbell page (cfg.fe.doorbells), is one store of the written value into
 * it. The back-end's call eventfds set the used-buffer bit of
 * InterruptStatus and change the interrupt line (cfg.interrupt), as an irqfd
 * would; a back-end that goes away, or breaks a queue, sets
 * DEVICE_NEEDS_RESET.
 *
 * Threads: those calls come from the bridge's own thread, or, with
 * cfg.own_loop, from the caller's loop: poll vhu_mmio_bridge_fd() and call
 * vhu_mmio_bridge_process() when it is readable.
 */
#ifndef VHU_MMIO_BRIDGE_H
#define VHU_MMIO_BRIDGE_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stdint.h>

#include "vhu/frontend.h"
#include "vhu/frontend_vmm.h"
#include "vhu/mmio.h"

VHU_API_BEGIN

struct vhu_mmio_bridge;

struct vhu_mmio_bridge_config {
	struct vhu_fe_config fe;        /* the back-end; fe.doorbells to take its doorbell pages */
	uint32_t device_id;             /* the VIRTIO device type the back-end serves (2: block) */
	uint32_t vendor_id;
	uint16_t num_queues;            /* 0: what the back-end offers (MQ), else 1 */
	uint16_t queue_size_max;        /* 0: 256 */
	uint32_t config_size;           /* the device's config space, read from the back-end (at most 256) */
	/* Features the model may offer, masked with the back-end's offer;
	 * 0: all of them but vhost-user's own bits and ACCESS_PLATFORM. */
	uint64_t features;
	const struct vhu_fe_vmm_region *regions;   /* the guest's memory */
	unsigned num_regions;
	void (*interrupt)(void *opaque, bool asserted);
	void *interrupt_opaque;
	bool own_loop;                  /* no thread of the bridge's: the caller serves vhu_mmio_bridge_fd() */
};

/* Connect to the back-end and build the model. 0, or a negative errno (the
 * connection's error, -EINVAL for a bad configuration). */
int vhu_mmio_bridge_new(struct vhu_mmio_bridge **out, const struct vhu_mmio_bridge_config *cfg);
/* Stops the thread, the rings (GET_VRING_BASE) and closes the connection. */
void vhu_mmio_bridge_free(struct vhu_mmio_bridge *b);

struct vhu_mmio *vhu_mmio_bridge_mmio(struct vhu_mmio_bridge *b);
struct vhu_fe *vhu_mmio_bridge_fe(struct vhu_mmio_bridge *b);
/* The guest's memory changed: sent now if the driver is past FEATURES_OK,
 * else at FEATURES_OK. */
int vhu_mmio_bridge_set_memory(struct vhu_mmio_bridge *b, const struct vhu_fe_vmm_region *r, unsigned n);

/* cfg.own_loop: an epoll fd readable when a call eventfd or the back-end
 * channel has something; process serves it without waiting. 0, or
 * -ECONNRESET once the back-end has gone (the device then needs reset). */
int vhu_mmio_bridge_fd(const struct vhu_mmio_bridge *b);
int vhu_mmio_bridge_process(struct vhu_mmio_bridge *b);

VHU_API_END

#endif
