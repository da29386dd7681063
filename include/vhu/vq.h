/* SPDX-License-Identifier: MIT */
/*
 * vhu virtqueue engine: split (VIRTIO §2.7) and packed (§2.8) rings, device
 * side and driver side.
 *
 * Pure logic: no system calls, no threads, no allocation except the per-id
 * bookkeeping made by vhu_dev_vq_init() and vhu_drv_vq_init(). Guest memory
 * is reached only through the pointers given at init (the ring parts) and
 * through the memory layer's translation (vhu/xlate.h: the buffers and
 * indirect tables). Nothing read from the ring is trusted: every
 * index, length, flag and id is checked before use and each descriptor field
 * is read exactly once.
 *
 * One queue object is used by one thread at a time; the other side of the
 * ring (the peer) may run concurrently in another thread or process.
 *
 * Error convention: negative errno. The codes a device-side pop can return
 * are listed with vhu_dev_vq_pop(); vhu_vq_strerror() describes each one.
 */
#ifndef VHU_VQ_H
#define VHU_VQ_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vhu/virtio_ring.h"
#include "vhu/xlate.h"

VHU_API_BEGIN

/* Indirect tables are bounded independently of the queue size, because a
 * driver may place more segments in one table than the ring has slots (Linux
 * virtio-blk does with small queues). 4096 entries = a 64 KiB table. */
#define VHU_VQ_MAX_INDIRECT 4096u

struct vhu_iotlb;

struct vhu_vq_config {
	uint16_t num;        /* queue size: split a power of two, 1..32768 */
	uint16_t index;      /* queue index, carried in notification data */
	uint64_t features;   /* negotiated VIRTIO feature bits; the ring format
				follows VIRTIO_F_RING_PACKED */
	/* Host addresses of the three parts. Split: descriptor table, available
	 * ring, used ring. Packed: descriptor ring, driver event suppression,
	 * device event suppression. Alignment is checked (§2.7, §2.8.10.1). */
	void *desc;
	void *driver_area;
	void *device_area;
	/* Device side only: how buffers and indirect tables are translated.
	 * A region table (searched on a miss of the translation cache), or
	 * else a callback. */
	const struct vhu_mem *mem;
	vhu_translate_fn translate;
	void *translate_opaque;
	/* With mem: buffer and indirect-table addresses are I/O virtual
	 * addresses (VIRTIO_F_ACCESS_PLATFORM), translated through this IOTLB
	 * to the front-end's user addresses, then through mem. A missing
	 * mapping leaves its chain in the ring (pop returns -EAGAIN). */
	const struct vhu_iotlb *iotlb;
};

/* One chain taken by the device: only what the device needs to serve it.
 * iov[0 .. out_num) is device-readable, iov[out_num .. out_num + in_num)
 * device-writable. Where the chain sits in the ring is the engine's own
 * bookkeeping, kept by id in a side array, so returning it needs the id. */
struct vhu_vq_elem {
	struct iovec *iov;
	uint16_t out_num, in_num;
	uint16_t id;               /* split: head index; packed: buffer id */
	uint32_t out_len, in_len;  /* byte totals of each part (a chain is
				      < 4 GiB: used len is 32-bit, §2.7.8) */
};

/* A used buffer to return: its id and the bytes written into it. */
struct vhu_vq_used {
	uint32_t id;
	uint32_t len;
};

/* Position of a queue, as saved across a stop (vhost-user GET/SET_VRING_BASE). */
struct vhu_vq_pos {
	uint16_t avail;      /* split: next avail index; packed: next offset */
	bool avail_wrap;     /* packed only */
	uint16_t used;       /* split: used index; packed: next used offset */
	bool used_wrap;      /* packed only */
};

struct vhu_vq_flags {
	bool event_idx, indirect, in_order, notify_on_empty, notification_data;
};

/* ---------------------------------------------------------------------- */
/* Device side. The struct is public so it can be embedded; its fields are
 * the engine's own. */
struct vhu_dev_chain;
struct vhu_dev_inflight;
struct vhu_dev_vq_log;
struct vhu_dirty_log;

struct vhu_dev_vq {
	uint16_t num, index;
	bool packed;
	struct vhu_vq_flags f;
	union {
		struct {
			struct vhu_vring_desc *desc;
			struct vhu_vring_avail *avail;
			struct vhu_vring_used *used;
		} split;
		struct {
			struct vhu_vring_packed_desc *desc;
			struct vhu_vring_packed_event *driver;  /* read only */
			struct vhu_vring_packed_event *device;  /* written */
		} pk;
	};
	struct vhu_xlate xl;       /* buffers and indirect tables */
	struct vhu_dev_chain *chain;  /* per id: the chains the device holds */
	struct vhu_dev_inflight *ifl; /* the inflight region kept, or NULL */
	struct vhu_dev_vq_log *log;   /* dirty-page logging, or NULL (off) */

	/* consumer position */
	uint16_t last_avail;       /* split: free-running; packed: offset */
	bool avail_wrap;
	uint16_t shadow_avail;     /* split: last avail->idx read */
	/* producer position (written into the ring, maybe not yet published) */
	uint16_t used_idx;         /* split: free-running; packed: offset */
	bool used_wrap;
	uint16_t published_used;   /* split: last value stored to used->idx */
	uint32_t used_slots;       /* packed: free-running count of used slots */
	uint32_t inflight;         /* split: buffers; packed: ring slots */
	/* packed: first used descriptor written but not yet flagged */
	bool pending;
	uint16_t pending_pos, pending_flags;
	/* IN_ORDER batch not yet written (§2.7.9, §2.8.9) */
	struct {
		uint16_t count, ndesc, last_id;
		uint32_t last_len;
		bool last_full, last_write;
	} batch;
	/* notification state */
	bool notify_enabled;       /* driver kicks wanted (our suppression) */
	bool avail_event_valid;
	uint16_t avail_event;      /* split: last avail_event written */
	uint16_t pk_event;         /* packed: last device off_wrap written */
	bool signalled_valid;
	uint16_t signalled_used;   /* split: used idx at last notify decision */
	uint32_t signalled_slots;  /* packed: used_slots at last decision */
	uint16_t signalled_pos;
	bool signalled_wrap;
	int broken;                /* 0, or the sticky negative errno */
};

/* Set up a queue; allocates the per-id side array (-ENOMEM), which
 * vhu_dev_vq_destroy() frees (pop and push then return -ESHUTDOWN). */
int vhu_dev_vq_init(struct vhu_dev_vq *vq, const struct vhu_vq_config *cfg);
void vhu_dev_vq_destroy(struct vhu_dev_vq *vq);
/* The same ring seen through new mappings (a new memory table): the ring
 * part addresses and the translation change, the position and the chains in
 * flight stay. The size and the features must be the ones of init. */
int vhu_dev_vq_remap(struct vhu_dev_vq *vq, const struct vhu_vq_config *cfg);

/*
 * Take the next available buffer, mapping it into iov[0 .. iov_max).
 * Returns 1 with *elem filled, 0 when the ring is empty, or a negative errno.
 *
 * The chain was well formed but its buffers cannot be used; the element IS
 * taken and elem->id/ndesc/pos are valid, so return it with
 * vhu_dev_vq_push(vq, elem, 0) (a device usually reports an error status):
 *   -EFAULT    a buffer or indirect table is outside guest memory
 *   -EOVERFLOW the chain's total length exceeds 2^32 - 1 (used len is 32-bit)
 *   -ENOBUFS   more segments than iov_max
 *   -EILSEQ    a device-readable descriptor after a device-writable one
 *
 * The chain is NOT taken and stays in the ring as it is, for a later pop:
 *   -EAGAIN    the queue translates through an IOTLB (vhu_xlate_init_iotlb)
 *              that has no mapping for one of its buffers or its indirect
 *              table; vhu_dev_vq_iotlb_miss() says which address, to ask the
 *              front-end for (BACKEND_IOTLB_MSG MISS) before popping again
 *
 * The ring itself is malformed; the queue is broken (every later call returns
 * the same code; the device should set DEVICE_NEEDS_RESET, §2.1.2):
 *   -EDOM      the driver's avail index moved more than the queue size ahead
 *   -ERANGE    head, next or buffer id outside the queue (or indirect table)
 *   -ELOOP     split: the chain revisits a descriptor (longer than its table)
 *   -E2BIG     packed: the chain is longer than the queue
 *   -EPROTO    INDIRECT together with NEXT (or inside a packed chain)
 *   -EMLINK    INDIRECT inside an indirect table
 *   -EBADMSG   indirect table length zero or not a multiple of 16
 *   -EMSGSIZE  indirect table longer than VHU_VQ_MAX_INDIRECT entries
 *   -EOPNOTSUPP INDIRECT used without VIRTIO_F_INDIRECT_DESC
 *   -EEXIST    the driver offered a buffer id (split: head) the device holds
 * iov_max is at most 65535 (larger is cut to it).
 */
int vhu_dev_vq_pop(struct vhu_dev_vq *vq, struct vhu_vq_elem *elem,
		   struct iovec *iov, unsigned iov_max);

/* After a pop's -EAGAIN: the first address of the chain the IOTLB had no
 * mapping for, and the access it was wanted for (VHU_ACCESS_READ or
 * _WRITE). Returns false when the last pop missed nothing. */
bool vhu_dev_vq_iotlb_miss(const struct vhu_dev_vq *vq, uint64_t *iova, int *access);

/*
 * Take up to n available chains into elems[0 ..), their iovecs packed one
 * after the other into iov[0 .. iov_len), each chain allowed iov_max of them
 * (a chain is not started unless iov_max remain, so a chain gets the same
 * answer as from vhu_dev_vq_pop(..., iov_max)); or, with iov NULL, each into
 * the caller's own array at elems[i].iov, of iov_max entries (for a device
 * whose requests keep their iovecs apart). The avail window is read and
 * checked once, the ring state is kept in locals, and the ring format and
 * options were resolved at init.
 * Returns the number of chains taken (0: none available), or a negative code
 * of vhu_dev_vq_pop() for elems[0], which is then taken as a pop would take
 * it: a chain with unusable buffers ends a burst and comes first in the next
 * one, so its code is never lost among good chains; a malformed ring after
 * good chains returns them, and the next call the code.
 */
int vhu_dev_vq_pop_burst(struct vhu_dev_vq *vq, struct vhu_vq_elem *elems, unsigned n,
			 struct iovec *iov, unsigned iov_len, unsigned iov_max);

/*
 * Return a buffer with len bytes written (len <= elem->in_len). The entry is
 * written into the ring but the driver sees it only after vhu_dev_vq_flush().
 * With IN_ORDER, buffers must be pushed in the order they were popped; fully
 * written buffers are then batched into one used entry (§2.7.9, §2.8.9).
 * -EINVAL: id not in flight, len too large, or out of order.
 */
int vhu_dev_vq_push(struct vhu_dev_vq *vq, const struct vhu_vq_elem *elem,
		    uint32_t len);
/*
 * Return n used buffers and publish them: the entries are written as shadow
 * used entries and made visible with one release store (split: used->idx;
 * packed: the first entry's flags), as vhu_dev_vq_flush() does. Returns n,
 * or the number returned before used[k] that vhu_dev_vq_push() would refuse
 * (those before it are published), or the broken code.
 */
int vhu_dev_vq_push_burst(struct vhu_dev_vq *vq, const struct vhu_vq_used *used, unsigned n);
/* Publish every pushed entry to the driver. */
void vhu_dev_vq_flush(struct vhu_dev_vq *vq);
/* After a flush: must the driver be notified (used buffer notification)?
 * Honours NO_INTERRUPT, used_event, packed driver event suppression and
 * NOTIFY_ON_EMPTY. A call with nothing new since the last returns false. */
bool vhu_dev_vq_should_notify(struct vhu_dev_vq *vq);

/* Ask the driver not to notify (kick) us: the device is polling. */
void vhu_dev_vq_disable_notify(struct vhu_dev_vq *vq);
/* Ask for kicks again. Returns true if buffers became available meanwhile:
 * the caller must process them rather than sleep (enable, barrier, recheck). */
bool vhu_dev_vq_enable_notify(struct vhu_dev_vq *vq);
/* True if a buffer is available (no side effects). */
bool vhu_dev_vq_has_avail(struct vhu_dev_vq *vq);

/* VIRTIO_F_NOTIFICATION_DATA (§2.9, §4.2.3.3): check the 32-bit value that
 * came with a driver notification against this queue and its ring. Returns
 * the number of descriptors (packed) or buffers (split) the value says are
 * available beyond what the device has taken, or -ENXIO (other queue) or
 * -EBADE (the value disagrees with the ring). */
int vhu_dev_vq_notification_data(struct vhu_dev_vq *vq, uint32_t data);

/* Save and restore the position (stop/start, migration, reconnect). Flush
 * first: get_pos reports what was published. Split: set_pos takes the used
 * index from the ring, which is its truth (§2.7.8). set_pos forgets the
 * chains the queue held (they stay counted in flight). -EINVAL if the
 * position is out of range for the queue, -ESHUTDOWN after destroy. */
void vhu_dev_vq_get_pos(const struct vhu_dev_vq *vq, struct vhu_vq_pos *pos);
int vhu_dev_vq_set_pos(struct vhu_dev_vq *vq, const struct vhu_vq_pos *pos);

/*
 * Keep this queue's part of a vhost-user inflight region (vhu/inflight.h),
 * at least vhu_inflight_queue_size(num, packed) bytes, 8-byte aligned, in
 * step with the queue: call after init and set_pos. A fresh region
 * (version 0) is laid out at the current position. A region in use is
 * recovered: checked entry by entry, its last batch settled or rolled back
 * ("When reconnecting"), the ring position rebuilt from it and the ring
 * (so the position set_pos was given does not count), and each request it
 * records as taken but not used queued: the next pops return those first,
 * in the order they were first taken, with their ids; the device serves
 * them as any other. Every pop then records, every push and flush settles,
 * in an order that a crash at any instruction leaves recoverable.
 * Returns how many were queued, or a negative errno, the queue then broken
 * with it: -EPROTONOSUPPORT a version or features vhu does not know,
 * -EINVAL region too small or misaligned, or desc_num not the queue size,
 * -EBADMSG an entry out of range, a list that loops or leaks, a chain
 * whose count, links, flags or id disagree, two with one id or counter,
 * -ENOMEM. set_pos and destroy detach the region.
 */
int vhu_dev_vq_inflight_attach(struct vhu_dev_vq *vq, void *region, size_t len);
/* Requests recovered from the region and not yet popped again. */
unsigned vhu_dev_vq_resubmit_pending(const struct vhu_dev_vq *vq);

/*
 * Dirty-page logging for live migration (vhost-user "Migration"): what the
 * device writes into guest memory is marked in a shared bitmap
 * (vhu/dirty_log.h) by guest physical address, before the used entries that
 * make it visible are published, batched per flush.
 *   buffers: the bytes a push reports written, along the chain's writable
 *            buffers in order (VHOST_F_LOG_ALL);
 *   rings:   every store of the device into the ring (VHOST_VRING_F_LOG):
 *            split, used entries, used->idx, flags and avail_event, logged
 *            at device_gpa + their offset in the used ring; packed, the used
 *            descriptors at desc_gpa + 16 * slot and the device event
 *            suppression area at device_gpa.
 * The guest addresses of buffers come from the iovecs a pop made, mapped
 * back through the queue's region table, so logging needs one (-EOPNOTSUPP
 * with a translate callback). Buffers can only start being logged with no
 * chain held by the device (-EBUSY: drain first), since the guest addresses
 * of a chain are recorded when it is popped. c NULL, or neither part, turns
 * logging off (nothing is then paid on any path); a call while on changes
 * the log or the parts (the old log gets what was batched for it first).
 * A write the bitmap does not cover breaks the queue with -EFBIG: it cannot
 * be logged, and a lost mark is corruption on the destination.
 * -ENOMEM. Logging ends with destroy and set_pos.
 */
struct vhu_vq_log_config {
	const struct vhu_dirty_log *log;   /* kept by pointer: must outlive the use */
	bool buffers, rings;
	uint64_t desc_gpa;     /* packed only */
	uint64_t device_gpa;   /* split: the used ring (log_guest_addr); packed: device area */
};
int vhu_dev_vq_set_log(struct vhu_dev_vq *vq, const struct vhu_vq_log_config *c);

static inline int vhu_dev_vq_broken(const struct vhu_dev_vq *vq) { return vq->broken; }
static inline uint32_t vhu_dev_vq_inflight(const struct vhu_dev_vq *vq) { return vq->inflight; }
/* The translation cache's misses so far (statistics, tests). */
static inline uint64_t vhu_dev_vq_xlate_misses(const struct vhu_dev_vq *vq) { return vq->xl.misses; }

/* ---------------------------------------------------------------------- */
/* Driver side. */

struct vhu_sg {
	uint64_t addr;   /* guest address */
	uint32_t len;
};

struct vhu_drv_slot;

struct vhu_drv_vq {
	uint16_t num, index;
	bool packed;
	struct vhu_vq_flags f;
	union {
		struct {
			struct vhu_vring_desc *desc;
			struct vhu_vring_avail *avail;
			struct vhu_vring_used *used;
		} split;
		struct {
			struct vhu_vring_packed_desc *desc;
			struct vhu_vring_packed_event *driver;  /* written */
			struct vhu_vring_packed_event *device;  /* read only */
		} pk;
	};
	/* indirect tables: one per id, indirect_max entries each */
	struct vhu_vring_desc *ind_host;
	uint64_t ind_addr;
	uint16_t ind_max;
	uint16_t ind_min;          /* use a table for chains of >= this many */

	struct vhu_drv_slot *slot; /* per id (split: per head) */
	uint16_t *next;            /* split: private chain/free links; packed: free ids */
	uint16_t num_free;         /* free descriptors (ring slots) */
	uint16_t free_head;        /* split: free list head; packed: free id count */

	/* producer */
	uint16_t avail_idx;        /* split: free-running shadow of avail->idx */
	uint16_t published_avail;  /* split: last value stored to avail->idx */
	uint16_t next_avail;       /* split in-order: next table index;
				      packed: next ring offset */
	bool avail_wrap;
	uint32_t added;            /* split: buffers, packed: slots since last kick decision */
	uint16_t kick_old;         /* split: avail idx at last kick decision */
	uint16_t kick_pos;         /* packed: offset at last kick decision */
	bool kick_wrap;
	/* consumer */
	uint16_t last_used;        /* split: free-running; packed: offset */
	bool used_wrap;
	uint16_t shadow_used;      /* split: last used->idx read */
	uint16_t next_done;        /* in-order: id/head the next completion is for */
	bool batch;                /* in-order: inside a batched used entry */
	uint16_t batch_last;
	uint32_t batch_len;
	bool cb_enabled;
	int broken;
};

/* Allocates the driver's private per-id state (the only allocation in the
 * engine). ind_host/ind_addr: optional memory for indirect tables, num *
 * ind_max descriptors, both the host and the guest address of it. The rings
 * must be zeroed by the caller before the device sees them (§2.7, §2.8). */
int vhu_drv_vq_init(struct vhu_drv_vq *vq, const struct vhu_vq_config *cfg,
		    void *ind_host, uint64_t ind_addr, uint16_t ind_max);
void vhu_drv_vq_destroy(struct vhu_drv_vq *vq);

/* Add a buffer of out device-readable then in device-writable segments.
 * token (non-NULL) comes back from vhu_drv_vq_get(). The device may see the
 * buffer at once (packed) and does at the latest on vhu_drv_vq_kick_prepare().
 * -ENOSPC ring full, -EINVAL bad arguments, or the broken code. */
int vhu_drv_vq_add(struct vhu_drv_vq *vq, const struct vhu_sg *sg,
		   unsigned out, unsigned in, void *token);

/* One buffer of a burst: sg[0 .. out) device-readable, then in writable. */
struct vhu_drv_buf {
	const struct vhu_sg *sg;
	uint16_t out, in;
	void *token;
};
/* Add up to n buffers, as vhu_drv_vq_add() each, the ring state in locals.
 * Returns how many were added (fewer than n when the ring filled up), or
 * vhu_drv_vq_add()'s error for bufs[0] (-ENOSPC when none fits). A buffer
 * with bad arguments after good ones ends the burst; the next call reports
 * it. Publish them with vhu_drv_vq_publish() or vhu_drv_vq_kick_prepare(). */
int vhu_drv_vq_add_burst(struct vhu_drv_vq *vq, const struct vhu_drv_buf *bufs, unsigned n);
/* Make added buffers visible without deciding on a notification: for a
 * driver whose device polls. */
void vhu_drv_vq_publish(struct vhu_drv_vq *vq);
/* Publish added buffers; returns true if the device must be notified. */
bool vhu_drv_vq_kick_prepare(struct vhu_drv_vq *vq);
/* The value to send with a notification under VIRTIO_F_NOTIFICATION_DATA. */
uint32_t vhu_drv_vq_notification_data(const struct vhu_drv_vq *vq);

/* Take one used buffer: 1 with *token and *len, 0 if none, negative if the
 * device returned something it could not (the queue is then broken):
 * -EDOM used index moved too far, -ERANGE id out of range, -ENOENT id not in
 * flight, -EOVERFLOW len larger than the writable part. */
int vhu_drv_vq_get(struct vhu_drv_vq *vq, void **token, uint32_t *len);
/* Take up to n used buffers into tokens[i], lens[i]; the used window is read
 * once. Returns how many, or vhu_drv_vq_get()'s error when the first is bad
 * (after good ones the burst ends and the next call returns the error). */
int vhu_drv_vq_get_burst(struct vhu_drv_vq *vq, void **tokens, uint32_t *lens, unsigned n);
bool vhu_drv_vq_has_used(struct vhu_drv_vq *vq);
void vhu_drv_vq_disable_cb(struct vhu_drv_vq *vq);
/* Ask for used buffer notifications; true if buffers were used meanwhile. */
bool vhu_drv_vq_enable_cb(struct vhu_drv_vq *vq);
static inline unsigned vhu_drv_vq_num_free(const struct vhu_drv_vq *vq) { return vq->num_free; }
static inline int vhu_drv_vq_broken(const struct vhu_drv_vq *vq) { return vq->broken; }
void vhu_drv_vq_get_pos(const struct vhu_drv_vq *vq, struct vhu_vq_pos *pos);
/* Before a restarted device without an inflight region resumes a split
 * ring from its used index: rewrite the avail entries after it with exactly
 * the buffers still outstanding, so that none used out of order is taken
 * again. Only while no device runs the ring. Returns how many, 0 where
 * nothing is needed (packed, IN_ORDER), -EPROTO if the used ring does not
 * match what the driver holds, or the ring's error. */
int vhu_drv_vq_reoffer(struct vhu_drv_vq *vq);

/* ---------------------------------------------------------------------- */
/* Shared rules, exposed for both sides and for tests. */

/* §2.7.10: with EVENT_IDX, notify iff event_idx lies in [old, new) modulo
 * 2^16, i.e. the index the peer asked about was crossed by this update. */
static inline bool vhu_vring_need_event(uint16_t event_idx, uint16_t new_idx,
					uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

/* §2.8.10: packed EVENT_IDX. Going forward n slots from (old_off, old_wrap),
 * was slot (off_wrap & 0x7fff) of lap parity (off_wrap >> 15) crossed?
 * Exact for any n: the wrap bit tells laps apart modulo two. */
bool vhu_vring_packed_need_event(uint16_t num, uint16_t off_wrap,
				 uint16_t old_off, bool old_wrap, uint32_t n);

/* VIRTIO_F_NOTIFICATION_DATA value (§4.1.5.2): split: bits 0-15 queue index,
 * 16-31 next avail index; packed: 0-15 index, 16-30 next offset, 31 wrap. */
static inline uint32_t vhu_notification_data_encode(uint16_t index, uint16_t next,
						   bool wrap, bool packed)
{
	if (packed)
		return index | (uint32_t)(next & 0x7fff) << 16 | (uint32_t)wrap << 31;
	return index | (uint32_t)next << 16;
}

/* vhost-user's vring base (GET/SET_VRING_BASE num): split, the avail index;
 * packed, bits 0-14 avail offset, 15 avail wrap, 16-30 used offset, 31 used
 * wrap. decode returns -EINVAL if an offset is not below num. */
uint32_t vhu_vq_pos_encode(const struct vhu_vq_pos *pos, bool packed);
int vhu_vq_pos_decode(uint32_t base, bool packed, uint16_t num, struct vhu_vq_pos *pos);

/* Memory layout for a driver that allocates its own rings: offsets of the
 * three parts in one block and the block size. Each part starts on its own
 * cache line so the two sides do not false-share. */
struct vhu_vq_layout {
	size_t desc_off, driver_off, device_off, size;
};
void vhu_vq_layout(uint16_t num, bool packed, struct vhu_vq_layout *l);

/* What a ring error code means, for logs. */
const char *vhu_vq_strerror(int err);

VHU_API_END

#endif
