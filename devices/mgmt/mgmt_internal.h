/* SPDX-License-Identifier: MIT */
/*
 * The management device's state. Threads: the admin queue's thread runs
 * every command (members are made and destroyed only there, or by the
 * control thread while the admin queue is stopped: a reset, a memory
 * change); the event queue's thread posts events; the poll group's
 * threads serve the members' queues and raise events (event.c).
 */
#ifndef VHU_MGMT_INTERNAL_H
#define VHU_MGMT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mgmt.h"
#include "vhu/admin.h"
#include "vhu/admin_member.h"

#define MGMT_ADMIN_QUEUE 0
#define MGMT_EVENT_QUEUE 1
#define MGMT_MAX_QUEUES 62u           /* a member's queues fit beside the two bits below */
#define EV_CONFIG_BIT 62
#define EV_RESET_BIT 63

struct mgmt_member {
	uint64_t id;
	struct mgmt *mg;
	struct vhu_admin_create made;     /* host byte order, as made (DEV_INFO_GET) */
	struct blk_dev blk;
	char serial[VHU_BLK_ID_BYTES + 1];
	struct vhu_device *dev;
	struct vhu_admin_member *am;
	uint64_t mem_bytes;               /* a mem: backing's share of mem_limit */
	/* events remembered, not yet posted: bit q a used buffer of queue q */
	_Atomic uint64_t pending;
	bool queued;                      /* on the event list (ev_lock) */
	struct mgmt_member *ev_next;
};

struct verdict {
	uint16_t status, qualifier;
};
#define V_OK ((struct verdict){ VHU_ADMIN_STATUS_OK, VHU_ADMIN_Q_OK })
#define V_FIELD ((struct verdict){ VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_FIELD })

struct mgmt {
	struct mgmt_config cfg;
	struct vhu_device *dev;
	struct vhu_backend *be;
	int backing_dirfd;                /* -1: none */
	struct mgmt_member **members;     /* sorted by id: ids only grow, so appended */
	uint32_t n, cap;
	uint64_t next_id;
	uint64_t mem_used;
	uint64_t supported[2][VHU_ADMIN_OPCODE_WORDS];   /* [0] group self, [1] managed; made at start */
	uint64_t in_use[2][VHU_ADMIN_OPCODE_WORDS];      /* LIST_USE's, a subset of supported */
	pthread_mutex_t ev_lock;
	struct mgmt_member *ev_head, *ev_tail;
	int ev_fd;                        /* the event queue's aux fd: an event is due */
	uint8_t result[8 + 8 * 512];      /* the admin thread's answer */
};

/* mgmt.c: one command buffer of out readable then in writable iovecs (the
 * admin queue's thread); returns the used length */
uint32_t mgmt_command(struct mgmt *mg, const struct iovec *iov, unsigned out, unsigned in);

/* members.c (the admin thread) */
struct verdict mgmt_member_create(struct mgmt *mg, const struct vhu_admin_req *r, uint64_t *id);
void mgmt_member_destroy(struct mgmt *mg, uint32_t index);
void mgmt_members_destroy_all(struct mgmt *mg);
/* the index of a live member, or -1 */
long mgmt_member_find(const struct mgmt *mg, uint64_t id);
/* DEV_INFO_GET's result (88 bytes) */
uint32_t mgmt_member_info(const struct mgmt_member *mm, uint8_t *out);
/* BACKING_LIST: how many names there are; those from first that fit room
 * into out (64 bytes each), their count in *wrote */
uint32_t mgmt_backings(struct mgmt *mg, uint32_t first, uint8_t *out, uint32_t room, uint32_t *wrote);

/* event.c */
void mgmt_event_raise(void *member, uint64_t id, uint16_t type, uint16_t queue);
void mgmt_event_forget(struct mgmt *mg, struct mgmt_member *mm);
void mgmt_event_post(struct mgmt *mg, struct vhu_queue *q);

#endif
