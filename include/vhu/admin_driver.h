/* SPDX-License-Identifier: MIT */
/*
 * The driver of vhu's admin-virtqueue transport (docs/admin-transport.md),
 * on the vhost-user front-end: admin commands to a management device
 * (vhu-mgmt), and managed devices driven through them, their rings in the
 * front-end's memory, kicked by VQ_NOTIFY when the ring asks for it, their
 * interrupts taken from the management device's event queue.
 *
 * Threads: commands are serialised by a lock; each queue of a managed
 * device is used by one thread at a time, as with vhu/frontend.h.
 */
#ifndef VHU_ADMIN_DRIVER_H
#define VHU_ADMIN_DRIVER_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhu/admin.h"
#include "vhu/frontend.h"
#include "vhu/vq.h"

VHU_API_BEGIN

struct vhu_admin_driver;
struct vhu_admin_dev;

/* The features a management driver asks for (the setup of vhu_fe_start). */
uint64_t vhu_admin_driver_features(void);
/* On a started front-end of a management device (its config names the
 * admin and event queues): the event queue filled with buffers. 0,
 * -ENODEV (not a management device: no ADMIN_VQ, or its config), -ENOMEM. */
int vhu_admin_driver_new(struct vhu_admin_driver **out, struct vhu_fe *fe);
/* Also frees the driver's side of every managed device still started,
 * sending nothing (the members are reset when the session ends). */
void vhu_admin_driver_free(struct vhu_admin_driver *ad);

/* One command; waits (up to the connection's timeout) for its buffer to
 * be used. 0 with the device's status (and result, up to room, its length
 * in *result_len), or -ETIMEDOUT, -EPROTO (a used length the buffer cannot
 * hold), -ENOMEM, a transport error. */
struct vhu_admin_answer {
	uint16_t status, qualifier;
	uint32_t result_len;
};
int vhu_admin_command(struct vhu_admin_driver *ad, uint16_t group_type, uint16_t opcode, uint64_t member,
		      const void *data, uint32_t len, void *result, uint32_t room, struct vhu_admin_answer *ans);

/* The commands of section 4 in host byte order. A command the device
 * failed returns its status as a negative errno (the status values are
 * Linux errno numbers), the qualifier in vhu_admin_qualifier(). */
uint16_t vhu_admin_qualifier(const struct vhu_admin_driver *ad);
int vhu_admin_caps_get(struct vhu_admin_driver *ad, struct vhu_admin_caps *caps);
int vhu_admin_dev_create(struct vhu_admin_driver *ad, const struct vhu_admin_create *c, uint64_t *member);
int vhu_admin_dev_destroy(struct vhu_admin_driver *ad, uint64_t member);
/* Ids from first, up to max; returns how many. */
int vhu_admin_dev_list(struct vhu_admin_driver *ad, uint64_t first, uint64_t *ids, unsigned max);
int vhu_admin_dev_info(struct vhu_admin_driver *ad, uint64_t member, struct vhu_admin_create *c);
/* Names from first, up to max; returns how many. */
int vhu_admin_backings(struct vhu_admin_driver *ad, uint32_t first, char (*names)[VHU_ADMIN_BACKING_NAME],
		       unsigned max);
int vhu_admin_status_get(struct vhu_admin_driver *ad, uint64_t member, uint8_t *status);
int vhu_admin_mmu_map(struct vhu_admin_driver *ad, uint64_t member, const struct vhu_admin_mmu_map *map);
int vhu_admin_mmu_unmap(struct vhu_admin_driver *ad, uint64_t member, uint32_t asid, uint64_t iova, uint64_t size);
int vhu_admin_mmu_error(struct vhu_admin_driver *ad, uint64_t member, struct vhu_admin_mmu_err *err);

/* ---- a managed device --------------------------------------------------------- */

struct vhu_admin_dev_setup {
	uint64_t features;          /* wanted; masked with the member's offer; VERSION_1 always;
				       with INDIRECT_DESC each slot of a ring gets an indirect
				       table of 8 descriptors */
	uint16_t num_queues;
	uint16_t queue_size;
	/* The member's MMU on, address space 0 mapping exactly what
	 * vhu_admin_dev_alloc hands out (its rings among them), 1:1: the
	 * member reaches nothing else of the front-end's memory. */
	bool mmu;
};
/* The driver's initialisation of §3.1.1, every step a command: reset,
 * ACKNOWLEDGE, DRIVER, features, FEATURES_OK read back, rings made and
 * enabled with their interrupts, DRIVER_OK. 0, -errno (a command's status,
 * -ENOMEM for the front-end's memory). */
int vhu_admin_dev_start(struct vhu_admin_driver *ad, uint64_t member, const struct vhu_admin_dev_setup *s,
			struct vhu_admin_dev **out);
/* Reset the member (STATUS_SET 0: it completes when the member's requests
 * have) and free the driver's side. */
void vhu_admin_dev_stop(struct vhu_admin_dev *d);
uint64_t vhu_admin_dev_member(const struct vhu_admin_dev *d);
uint64_t vhu_admin_dev_features(const struct vhu_admin_dev *d);   /* negotiated */
int vhu_admin_dev_config(struct vhu_admin_dev *d, uint32_t offset, void *buf, uint32_t len);
/* Front-end memory for the member's buffers: with the MMU on, mapped for
 * it (read and write) and for nothing else. NULL when full. */
void *vhu_admin_dev_alloc(struct vhu_admin_dev *d, size_t size, size_t align, uint64_t *addr);
struct vhu_drv_vq *vhu_admin_dev_vq(struct vhu_admin_dev *d, unsigned queue);
/* Publish added buffers; a VQ_NOTIFY command when the ring asks for one. */
int vhu_admin_dev_kick(struct vhu_admin_dev *d, unsigned queue);
/* Wait for a used buffer of the queue: 0, -ETIMEDOUT, -EIO (the member
 * needs a reset), or an error of the event queue. */
int vhu_admin_dev_wait(struct vhu_admin_dev *d, unsigned queue, int timeout_ms);
/* How the queues' notifications went. */
struct vhu_admin_dev_stats {
	uint64_t notifies;          /* VQ_NOTIFY commands sent */
	uint64_t events;            /* used-buffer events taken */
};
void vhu_admin_dev_stats(const struct vhu_admin_dev *d, struct vhu_admin_dev_stats *st);

VHU_API_END

#endif
