/* SPDX-License-Identifier: MIT */
/*
 * The inflight region of vhost-user ("Inflight I/O tracking",
 * VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD): shared memory the back-end keeps
 * its record of taken-but-not-completed requests in, and the front-end keeps
 * alive across a back-end restart, so that a new back-end process resubmits
 * them. One queue region after another, each laid out as the spec gives it
 * for the ring format; the per-queue stride is vhu_inflight_queue_size().
 *
 * Only the back-end interprets the region; the front-end allocates nothing
 * of it and just hands the fd back (GET_INFLIGHT_FD / SET_INFLIGHT_FD).
 * The ring engine (vhu/vq.h: vhu_dev_vq_inflight_attach) keeps it in step
 * with its own bookkeeping and never reads it while running; a region it is
 * given at start is checked entry by entry before anything in it is used.
 */
#ifndef VHU_INFLIGHT_H
#define VHU_INFLIGHT_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

VHU_API_BEGIN

/* The version the spec defines; 0 means a fresh region. */
#define VHU_INFLIGHT_VERSION 1

/* Split ring: one entry per descriptor table index, meaningful for heads. */
struct vhu_inflight_split_desc {
	uint8_t inflight;          /* 1: taken, not yet used */
	uint8_t padding[5];
	uint16_t next;             /* the last batch of used heads, as a list */
	uint64_t counter;          /* the order heads were taken in */
};

struct vhu_inflight_split_queue {
	uint64_t features;         /* 0 */
	uint16_t version;
	uint16_t desc_num;         /* the queue size */
	uint16_t last_batch_head;
	uint16_t used_idx;         /* used->idx once the last batch was settled */
	struct vhu_inflight_split_desc desc[];
};

/* Packed ring: entries are taken from a free list, one per descriptor of a
 * chain, each a copy of the descriptor (the ring slot itself is overwritten
 * by used descriptors while the request is in flight). */
struct vhu_inflight_packed_desc {
	uint8_t inflight;          /* head entry: taken, not yet used */
	uint8_t padding;
	uint16_t next;             /* free list, and a chain's entries in order */
	uint16_t last;             /* head entry: the chain's last entry */
	uint16_t num;              /* head entry: descriptors in the chain */
	uint64_t counter;          /* head entry: the order chains were taken in */
	uint16_t id;
	uint16_t flags;
	uint32_t len;
	uint64_t addr;
};

struct vhu_inflight_packed_queue {
	uint64_t features;         /* 0 */
	uint16_t version;
	uint16_t desc_num;
	uint16_t free_head;
	uint16_t old_free_head;    /* the old_* triple: the state as of the */
	uint16_t used_idx;         /* last settled batch, for the roll-back */
	uint16_t old_used_idx;
	uint8_t used_wrap_counter;
	uint8_t old_used_wrap_counter;
	uint8_t padding[7];
	struct vhu_inflight_packed_desc desc[];
};

_Static_assert(sizeof(struct vhu_inflight_split_desc) == 16, "DescStateSplit");
_Static_assert(sizeof(struct vhu_inflight_split_queue) == 16, "QueueRegionSplit");
_Static_assert(sizeof(struct vhu_inflight_packed_desc) == 32, "DescStatePacked");
_Static_assert(sizeof(struct vhu_inflight_packed_queue) == 32, "QueueRegionPacked");

/* Bytes one queue's region takes, rounded up to a cache line so queues do
 * not share one (the front-end learns the total from GET_INFLIGHT_FD). 0 if
 * num is 0. */
size_t vhu_inflight_queue_size(uint16_t num, bool packed);

VHU_API_END

#endif
