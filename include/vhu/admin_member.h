/* SPDX-License-Identifier: MIT */
/*
 * A managed device of the admin-virtqueue transport (docs/admin-transport.md):
 * a device of the device core (vhu/device.h) whose basic facilities are
 * reached only by admin commands, its rings in the management device's
 * guest memory. This is the transport side a management device uses for
 * each member: it answers the per-member commands of sections 4.3 to 5
 * (features, status, config space, virtqueues, notifications, interrupts)
 * and turns the device's used-buffer and config notifications into events
 * for the management device's event queue (section 6), and its device MMU
 * (section 7): with the MMU on, every address the member uses is
 * translated through its queue's address space, and nothing else of the
 * management device's memory is reachable.
 *
 * Threads: commands come from one thread (the management device's admin
 * queue); the event callback comes from the threads serving the member's
 * queues, with a queue lock held, and must not wait.
 */
#ifndef VHU_ADMIN_MEMBER_H
#define VHU_ADMIN_MEMBER_H

#include "vhu/visibility.h"

#include <stdint.h>
#include <sys/uio.h>

#include "vhu/admin.h"
#include "vhu/device.h"
#include "vhu/mem.h"

VHU_API_BEGIN

struct vhu_admin_member;

struct vhu_admin_member_config {
	struct vhu_device *dev;         /* no other transport attached; outlives the member */
	uint64_t id;                    /* its group_member_id */
	const struct vhu_mem *mem;      /* the management device's guest memory; outlives the member */
	/* An interrupt is due (VHU_ADMIN_EVENT_*; queue for USED). */
	void (*event)(void *opaque, uint64_t member, uint16_t type, uint16_t queue);
	void *event_opaque;
	uint32_t max_asids;             /* MMU address spaces (0: VHU_ADMIN_MMU_ASIDS) */
	uint32_t mmu_max_mappings;      /* MMU mappings, all spaces together (0: VHU_ADMIN_MMU_MAPPINGS) */
};

#define VHU_ADMIN_MMU_ASIDS 4u
#define VHU_ADMIN_MMU_MAPPINGS 256u

/* 0, -EINVAL (a device with another transport, a bad configuration), -ENOMEM. */
int vhu_admin_member_new(struct vhu_admin_member **out, const struct vhu_admin_member_config *cfg);
/* Resets the member (every ring stopped, its requests completed) and detaches. */
void vhu_admin_member_free(struct vhu_admin_member *m);

/* What STATUS_SET 0 does: every ring stopped (its requests completed),
 * features, status, MMU and interrupts back to their state at creation. */
void vhu_admin_member_reset(struct vhu_admin_member *m);

/* One command for this member, its header already checked by the
 * management device (group type, opcode in use, member id): the status and
 * result go into the buffer's writable part; returns the used length. */
uint32_t vhu_admin_member_command(struct vhu_admin_member *m, const struct vhu_admin_req *req,
				  const struct iovec *iov, unsigned out, unsigned in);

/* Whether the member serves this opcode (for the management device's
 * LIST_QUERY and its opcode checks). */
bool vhu_admin_member_opcode(uint16_t opcode);

/* The management device's memory is about to change: every ring of the
 * member stops touching it (paused, what it returned flushed) until
 * vhu_admin_member_resume maps them again in the new table (the old
 * memory may be gone by then) (-EFAULT: a ring is no longer in memory; that
 * queue is broken, DEVICE_NEEDS_RESET and an event). */
void vhu_admin_member_pause(struct vhu_admin_member *m);
int vhu_admin_member_resume(struct vhu_admin_member *m);

VHU_API_END

#endif
