/* SPDX-License-Identifier: MIT */
/*
 * vhost-user front-end: drive any back-end from an ordinary program. The
 * front-end owns the "guest" memory (a memfd, optionally huge pages) and the
 * rings in it, negotiates, registers memory (SET_MEM_TABLE, or ADD_MEM_REG
 * when CONFIGURE_MEM_SLOTS is offered), notifies through eventfds, in-band
 * messages or polling, and serves the back-end channel.
 *
 * Nothing a back-end sends is trusted: every reply is checked for request,
 * flags and size, every wait is bounded by the configured timeout, and a
 * wrong answer is an error (-EPROTO, -ETIMEDOUT, -ECONNRESET), never a hang.
 *
 * Threads: requests on the connection are serialised by a lock; each queue
 * is used by one thread at a time (one queue per thread for parallelism).
 */
#ifndef VHU_FRONTEND_H
#define VHU_FRONTEND_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhu/dirty_log.h"
#include "vhu/log.h"
#include "vhu/vhost_user.h"
#include "vhu/vq.h"

VHU_API_BEGIN

enum vhu_fe_notify {
	VHU_FE_NOTIFY_EVENTFD,   /* kick and call eventfds */
	VHU_FE_NOTIFY_INBAND,    /* VRING_KICK / BACKEND_VRING_CALL messages */
	VHU_FE_NOTIFY_POLL,      /* eventfds, but used-buffer notifications off:
				    completions are polled from the used ring */
};

struct vhu_fe_config {
	const char *path;        /* the back-end's socket */
	bool server;             /* listen at path and wait for the back-end */
	int fd;                  /* or an already connected socket (>= 0) */
	int timeout_ms;          /* for connecting and for every reply (default 5000) */
	vhu_log_fn log;
	void *log_opaque;
	int log_level;
	/* Negotiate HOST_NOTIFIER: a back-end may then give each queue a
	 * doorbell page, and kicks are one store into it (eventfd mode; the
	 * kick eventfd whenever no page is mapped). With it, the setup's
	 * VIRTIO_F_NOTIFICATION_DATA is kept if offered: the store carries the
	 * driver's next avail position. */
	bool doorbells;
};

struct vhu_fe;
struct vhu_fe_queue;

/* Connect and read what the back-end offers (GET_FEATURES, protocol
 * features, queue count, memory slots), then SET_PROTOCOL_FEATURES with
 * what both know and SET_OWNER. Nothing else about the device changes. */
int vhu_fe_connect(struct vhu_fe **out, const struct vhu_fe_config *cfg);
void vhu_fe_close(struct vhu_fe *fe);

uint64_t vhu_fe_offered_features(const struct vhu_fe *fe);
uint64_t vhu_fe_offered_protocol_features(const struct vhu_fe *fe);
uint64_t vhu_fe_protocol_features(const struct vhu_fe *fe);   /* negotiated */
uint64_t vhu_fe_queue_num(const struct vhu_fe *fe);           /* 0: no MQ */
uint64_t vhu_fe_max_mem_slots(const struct vhu_fe *fe);       /* 0: not offered */

int vhu_fe_get_config(struct vhu_fe *fe, uint32_t offset, void *buf, uint32_t len);
int vhu_fe_set_config(struct vhu_fe *fe, uint32_t offset, const void *buf, uint32_t len);
int vhu_fe_get_status(struct vhu_fe *fe, uint8_t *status);
int vhu_fe_set_status(struct vhu_fe *fe, uint8_t status);
int vhu_fe_reset_device(struct vhu_fe *fe);

/*
 * The front-end as the device's IOMMU (VIRTIO_F_ACCESS_PLATFORM): device
 * addresses are then I/O virtual addresses in a window at
 * VHU_FE_IOVA_BASE over the front-end's memory (VHU_FE_IOVA_BASE + guest
 * address; vhu_fe_alloc hands them out), translated only through what is
 * mapped. Needs a back-end with BACKEND_REQ and REPLY_ACK.
 */
enum vhu_fe_iommu {
	VHU_FE_IOMMU_OFF,
	VHU_FE_IOMMU_STATIC,     /* the whole window mapped read-write at start */
	VHU_FE_IOMMU_DYNAMIC,    /* only the rings (and indirect tables) mapped;
				    the caller maps its buffers, as a guest's
				    DMA API does (vhu_fe_iommu_map) */
};
#define VHU_FE_IOVA_BASE (1ull << 40)

struct vhu_fe_setup {
	uint64_t features;       /* wanted; masked with what is offered */
	uint16_t num_queues;
	uint16_t queue_size;
	enum vhu_fe_notify notify;
	size_t mem_size;         /* guest memory for buffers (rings come on top) */
	bool hugepages;
	uint16_t indirect_max;   /* descriptors per indirect table, 0: none */
	/* eventfd and in-band modes: before sleeping on a notification, watch
	 * the used ring this long with notifications off (hybrid polling; the
	 * device then need not signal while the driver is busy). 0: sleep at once. */
	uint32_t spin_ns;
	enum vhu_fe_iommu iommu;
};

/* SET_FEATURES, memory, rings: the device is live after this. */
int vhu_fe_start(struct vhu_fe *fe, const struct vhu_fe_setup *s);
/* SET_MEM_TABLE again with the same memory, while the device runs, as a
 * VMM sends its table again whenever its layout changes: the back-end
 * maps it anew under its running queues (a test of that path). 0,
 * -EINVAL (not started), or the request's error. */
int vhu_fe_resend_memory(struct vhu_fe *fe);
/* GET_VRING_BASE on every queue: the back-end stops them. */
int vhu_fe_stop(struct vhu_fe *fe);
uint64_t vhu_fe_features(const struct vhu_fe *fe);            /* negotiated */

/*
 * The back-end went away (a wait returned -ECONNRESET, a request failed):
 * connect to it again (client role: retry the path; server role: accept on
 * the socket kept listening) until timeout_ms (< 0: the connection's
 * timeout), and resume the device as it was: negotiation, the same
 * features, memory, the inflight region the back-end made at the first
 * start (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD; kept here across restarts,
 * as QEMU keeps it), and every ring where it stands. The buffers in flight
 * stay the caller's: a back-end with the region resubmits what it had
 * taken; without one, a split ring's buffers after the used index are
 * taken again. 0, or -ETIMEDOUT, -ENOTCONN (a socket given as cfg.fd
 * cannot be reopened), -EPROTO (the back-end lost a feature in use).
 */
int vhu_fe_reconnect(struct vhu_fe *fe, int timeout_ms);
unsigned vhu_fe_reconnects(const struct vhu_fe *fe);

/*
 * Dirty-page logging, as a VMM drives it for a live migration
 * (VHOST_USER_PROTOCOL_F_LOG_SHMFD): vhu_fe_log_start shares a bitmap
 * covering the guest memory (SET_LOG_BASE; memory is at guest addresses 0 ..
 * its size), then turns on the logging of buffer writes (VHOST_F_LOG_ALL in
 * SET_FEATURES) and of each ring's used area (VHOST_VRING_F_LOG on
 * SET_VRING_ADDR, log_guest_addr the used ring / device area). The bitmap is
 * then the back-end's account of what it wrote: vhu_fe_dirty_log gives it
 * (vhu/dirty_log.h: vhu_dirty_log_test, vhu_dirty_log_take to read and clear
 * it as each pass of a migration does). Kept across vhu_fe_reconnect.
 * vhu_fe_log_stop turns logging off and frees the bitmap.
 * 0, -ENOTSUP (not offered), -EINVAL (not started), -EALREADY / -ENOENT
 * (on / off already), -EIO (refused), or a request's error.
 */
int vhu_fe_log_start(struct vhu_fe *fe);
int vhu_fe_log_stop(struct vhu_fe *fe);
const struct vhu_dirty_log *vhu_fe_dirty_log(const struct vhu_fe *fe);   /* NULL while off */

/* Buffer memory handed out by a simple bump allocator over the guest
 * memory; host pointer, and in *addr the address the device uses for it
 * (its guest address, or behind the IOMMU its IOVA in the window). NULL
 * when full. */
void *vhu_fe_alloc(struct vhu_fe *fe, size_t size, size_t align, uint64_t *addr);

/*
 * IOMMU mappings (setup.iommu on; -ENOTSUP otherwise). Map [iova, iova +
 * size) of the window, perm VHU_USER_IOTLB_PERM_RO (the device reads), _WO
 * or _RW; it replaces what it overlaps (the back-end is told to drop that
 * first). The back-end learns a mapping when it misses on it, as QEMU's
 * back-ends do; push sends the UPDATE now instead (as does a map that
 * covers an address the back-end asked for while it was unmapped). Unmap withdraws what the
 * range holds: when it returns 0 the back-end has acknowledged the
 * INVALIDATE and no longer touches that memory (-ENOENT: nothing mapped).
 * -EINVAL (outside the window, size 0, perm), -ENOSPC (65536 mappings), or
 * a request's error. Misses are answered by whoever serves the back-end
 * channel: the waits below, or vhu_fe_serve_backend.
 */
int vhu_fe_iommu_map(struct vhu_fe *fe, uint64_t iova, uint64_t size, unsigned perm, bool push);
int vhu_fe_iommu_unmap(struct vhu_fe *fe, uint64_t iova, uint64_t size);
enum vhu_fe_iommu vhu_fe_iommu_mode(const struct vhu_fe *fe);

struct vhu_fe_iommu_stats {
	uint64_t misses;         /* BACKEND_IOTLB_MSG MISS received */
	uint64_t answered;       /* misses answered with an UPDATE */
	uint64_t unmapped;       /* misses for an address nothing maps: no answer */
	uint64_t dropped;        /* misses beyond the 64 waiting: the back-end asks again */
	uint64_t pushed;         /* UPDATEs sent by vhu_fe_iommu_map */
	uint64_t invalidations;  /* INVALIDATEs sent */
	uint64_t access_fails;   /* ACCESS_FAIL received */
	uint64_t mappings;       /* in the table now */
};
void vhu_fe_iommu_stats(struct vhu_fe *fe, struct vhu_fe_iommu_stats *st);

struct vhu_fe_queue *vhu_fe_queue(struct vhu_fe *fe, unsigned index);
struct vhu_drv_vq *vhu_fe_queue_vq(struct vhu_fe_queue *q);
/* Publish added buffers and notify if the device wants it. */
int vhu_fe_queue_kick(struct vhu_fe_queue *q);
/* Wait (up to timeout_ms; < 0: the connection's timeout) for the device to
 * use a buffer: re-arms notifications and rechecks first. 0 when a used
 * buffer is there, -ETIMEDOUT, or an error. Polling mode spins. */
int vhu_fe_queue_wait(struct vhu_fe_queue *q, int timeout_ms);
/* How a queue's kicks went, and the doorbell pages the back-end gave
 * (mapped) or that were refused (size, offset, a file that could shrink). */
struct vhu_fe_queue_stats {
	uint64_t kicks_doorbell, kicks_eventfd, kicks_inband;
	uint64_t doorbells_mapped, doorbells_refused;
};
void vhu_fe_queue_stats(struct vhu_fe_queue *q, struct vhu_fe_queue_stats *st);
/* The call eventfd (eventfd mode), for the caller's own poll loop. */
int vhu_fe_queue_call_fd(struct vhu_fe_queue *q);

/* Serve pending back-end channel messages (config change, in-band calls
 * and errors); returns how many. Called by the waits above as well. */
int vhu_fe_serve_backend(struct vhu_fe *fe, int timeout_ms);
/* Set by the back-end channel: the config changed, or a queue broke. */
bool vhu_fe_config_changed(struct vhu_fe *fe);
bool vhu_fe_queue_error(struct vhu_fe_queue *q);

VHU_API_END

#endif
