/* SPDX-License-Identifier: MIT */
/*
 * The front-end as a VMM uses it: the guest owns the memory and the rings,
 * the VMM only tells the back-end where they are (as QEMU's vhost layer
 * does for a guest's virtio device). On a connection from vhu_fe_connect,
 * instead of vhu_fe_start:
 *
 *   vhu_fe_vmm_begin(fe, num_queues)      once, before anything below
 *   vhu_fe_vmm_set_features(fe, f)        the features the driver accepted
 *   vhu_fe_vmm_set_memory(fe, regions)    the guest's memory (again when it changes)
 *   vhu_fe_vmm_vring_start(fe, i, ring)   the driver made queue i ready
 *   vhu_fe_vmm_notify(fe, i, value)       the driver notified queue i
 *   vhu_fe_vmm_vring_stop(fe, i, &base)   the driver stopped or reset queue i
 *
 * Notifications go by the kick eventfd the caller gave, or by one store into
 * the doorbell page the back-end gave for the queue (cfg.doorbells,
 * VHOST_USER_PROTOCOL_F_HOST_NOTIFIER), from whatever thread trapped the
 * driver's write: several threads may notify the same queue at once, and a
 * page is unmapped only once no store can still reach it.
 *
 * Used-buffer notifications come on the call eventfds the caller gave; the
 * back-end channel (config changes, queue errors, doorbell pages) is served
 * by whoever polls vhu_fe_backend_fd() and calls vhu_fe_serve_backend().
 * The notify modes of vhu_fe_setup, the block driver, reconnection, the dirty
 * log and the IOMMU belong to vhu_fe_start's use and are not available here.
 */
#ifndef VHU_FRONTEND_VMM_H
#define VHU_FRONTEND_VMM_H

#include "vhu/visibility.h"

#include <stdint.h>

#include "vhu/frontend.h"

VHU_API_BEGIN

/* A region of guest memory: guest addresses [guest_addr, guest_addr + size)
 * are at host in this process and at fd_offset in fd, which the back-end
 * maps (fd stays the caller's: it is sent, not kept). */
struct vhu_fe_vmm_region {
	uint64_t guest_addr, size;
	void *host;
	int fd;
	uint64_t fd_offset;
};

/* A ring as the driver set it up: guest addresses of its three parts, its
 * size, where the device starts (split: the avail index; packed: the avail
 * index with its wrap counter in bit 15, vhost-user's encoding, for both the
 * device's avail and used positions), and the caller's eventfds (kick_fd may
 * be -1 for a back-end that polls; call_fd -1: no used-buffer notifications). */
struct vhu_fe_vmm_vring {
	uint16_t num;
	uint64_t desc, driver, device;
	uint32_t base;
	int kick_fd, call_fd;
};

/* Queues 0 .. num_queues - 1 (at most what the back-end offers with MQ, or
 * 1 without). -EINVAL if the connection was started or begun already. */
int vhu_fe_vmm_begin(struct vhu_fe *fe, uint16_t num_queues);
/* SET_FEATURES with what both sides offer of features (the vhost-user
 * PROTOCOL_FEATURES bit added as the back-end offers it); the result in
 * vhu_fe_features(). NOTIFICATION_DATA is kept: a doorbell store carries it,
 * and an eventfd kick without it only makes the back-end look at the ring. */
int vhu_fe_vmm_set_features(struct vhu_fe *fe, uint64_t features);
/* The whole guest memory table: SET_MEM_TABLE (up to 8 regions), or with
 * CONFIGURE_MEM_SLOTS the difference from the last table (REM_MEM_REG,
 * ADD_MEM_REG). -EINVAL: overlapping or empty regions, more than the back-end
 * takes (-ENOSPC). */
int vhu_fe_vmm_set_memory(struct vhu_fe *fe, const struct vhu_fe_vmm_region *r, unsigned n);
/* SET_VRING_NUM, _BASE, _ADDR (each part must lie in one region: -EFAULT),
 * _CALL, _KICK, and _ENABLE. The fds stay the caller's. */
int vhu_fe_vmm_vring_start(struct vhu_fe *fe, unsigned index, const struct vhu_fe_vmm_vring *v);
/* GET_VRING_BASE: when it returns the back-end has stopped the ring and no
 * longer touches it; *base (may be NULL) is where it stopped. */
int vhu_fe_vmm_vring_stop(struct vhu_fe *fe, unsigned index, uint32_t *base);
/* Notify a started queue: value is what the driver wrote (the queue index,
 * or with NOTIFICATION_DATA the notification data of §2.9, stored whole
 * into a doorbell page). -EINVAL: not started. Safe from any thread. */
int vhu_fe_vmm_notify(struct vhu_fe *fe, unsigned index, uint32_t value);
/* The back-end channel's socket, for the caller's poll loop (-1: none). */
int vhu_fe_backend_fd(const struct vhu_fe *fe);

VHU_API_END

#endif
