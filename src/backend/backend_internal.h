/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user back-end: a transport of the device core. It owns the
 * session (socket, owner, negotiated features, memory table, back-end
 * channel) and what vhost-user says of each ring (size, addresses, base);
 * the device core owns the rings themselves and whoever runs them.
 *
 * Who writes what: backend.c the session's socket and the back-end channel;
 * handlers.c the negotiated state and the rings' vhost-user state (struct
 * be_vring), through the table's handlers; rings.c nothing of its own (it
 * maps rings and carries the device core's notices).
 */
#ifndef VHU_BACKEND_INTERNAL_H
#define VHU_BACKEND_INTERNAL_H

#include <stdatomic.h>

#include "../device/device_internal.h"
#include "vhu/backend.h"
#include "vhu/dirty_log.h"
#include "vhu/inflight.h"
#include "vhu/iotlb.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"

/* What vhost-user says of one ring (handlers.c, the queue paused). */
struct be_vring {
	uint32_t num;
	struct vhu_user_vring_addr addr;
	bool addr_set;
	struct vhu_vq_pos base;     /* SET_VRING_BASE, or where the ring stopped */
	atomic_bool inband_call;    /* a VRING_CALL for the control thread to send */
	atomic_bool inband_err;     /* a VRING_ERR likewise */
	/* IOTLB (iotlb.c): the ring's parts wait for a mapping (control thread);
	 * a chain waits (set by its serving thread), the miss to send */
	bool ring_wait;
	atomic_bool chain_wait, inband_miss;
	_Atomic uint64_t miss_iova;
	atomic_int miss_access;
	uint64_t miss_asked_ns;     /* when the serving thread last asked (its own) */
	/* doorbell (doorbell.c): the page, made at the first start (control
	 * thread), and what the serving thread wants sent */
	atomic_int db_want;
	int db_fd;
	uint32_t *db_page;
	size_t db_size;
	/* control thread: the front-end maps our page (an offer it took, no
	 * withdrawal since); it refused one (never again this session); when
	 * we last sent a withdrawal (QEMU 7.2 cannot take two in a row fast:
	 * doorbell.c) */
	/* written by whichever thread reads the channel's replies, read by the control thread */
	atomic_bool db_peer_maps, db_refused;
	uint64_t db_removed_ns;
	_Atomic uint64_t db_removed_ns_seen;   /* the same, for the serving thread */
};

/* A doorbell message sent, its reply still to come (in order). */
struct be_db_sent {
	uint16_t index;
	bool offer;
};
#define BE_DB_PENDING_MAX 64u

struct vhu_backend {
	struct vhu_backend_config cfg;
	struct vhu_device *dev;
	uint16_t nq;
	struct be_vring *vr;
	int stop_fd;                /* eventfd: vhu_backend_stop */
	int inband_fd;              /* eventfd: a serving thread has in-band messages to send */
	int epoll_fd;               /* vhu_backend_event_fd */

	/* session state (control thread) */
	int conn;
	bool attached;              /* conn came through vhu_backend_attach: ours to close */
	bool owner;
	uint64_t features;          /* negotiated, VHOST_USER_F_PROTOCOL_FEATURES included */
	uint64_t protocol_features; /* negotiated */
	struct vhu_mem mem;
	int backend_fd;             /* back-end channel, or -1 */
	pthread_mutex_t backend_lock;
	bool close_conn;            /* a fatal protocol error: drop the front-end */
	/* doorbell messages awaiting their replies (under backend_lock) */
	struct be_db_sent db_fifo[BE_DB_PENDING_MAX];
	unsigned db_head, db_pending;
	struct {                    /* the inflight region (INFLIGHT_SHMFD), mapped */
		void *base;
		size_t map_size;
		uint16_t num_queues, queue_size;
	} inflight;
	struct {                    /* the dirty log (LOG_SHMFD), mapped */
		void *map;
		size_t map_len;
		struct vhu_dirty_log bitmap;
		int fd;             /* SET_LOG_FD's eventfd, or -1 */
	} log;
	bool log_all;               /* VHOST_F_LOG_ALL as last negotiated */
	bool iommu;                 /* VIRTIO_F_ACCESS_PLATFORM negotiated: addresses are IOVAs */
	struct vhu_iotlb iotlb;     /* changed with every queue paused */
	uint64_t iotlb_updates, iotlb_invalidations, iotlb_misses;
	struct {                    /* postcopy (PAGEFAULT) */
		int uffd;           /* our userfaultfd, or -1 */
		bool listening;     /* regions are registered with it as they are mapped */
		bool await_ack;     /* a table was answered; the front-end's ack is next */
	} postcopy;
};

static inline bool be_pf(const struct vhu_backend *be, unsigned bit)
{
	return be->protocol_features >> bit & 1;
}
static inline bool be_pf_negotiated_base(const struct vhu_backend *be)
{
	return be->features >> VHU_USER_F_PROTOCOL_FEATURES & 1;
}

/* handlers.c */
struct reply {
	bool has_body;              /* the request's own reply */
	struct vhu_user_msg msg;
};
int be_handle(struct vhu_backend *be, struct vhu_user_msg *m, struct reply *rep);
/* a front-end went away; back to the state before SET_OWNER */
void be_session_reset(struct vhu_backend *be);

/* rings.c (queue paused) */
/* The sizes of the ring's descriptor, driver and device parts, as negotiated. */
void be_ring_part_sizes(const struct vhu_backend *be, const struct be_vring *vr, uint64_t *dsz, uint64_t *asz,
			uint64_t *usz);
/* Start the ring once its size, addresses and kick are known ("Ring states"). */
int be_ring_start(struct vhu_backend *be, struct vhu_queue *q);
/* The memory table or the ring's addresses changed: map it again. */
int be_ring_remap(struct vhu_backend *be, struct vhu_queue *q);
/* The device core's notices, carried in-band where the ring has no eventfd. */
extern const struct dev_transport be_transport;

/* inflight.c (every queue paused) */
int be_get_inflight_fd(struct vhu_backend *be, struct vhu_user_msg *m, struct reply *rep);
int be_set_inflight_fd(struct vhu_backend *be, struct vhu_user_msg *m);
void be_inflight_unmap(struct vhu_backend *be);
/* Queue index's part of the region for a ring of num (NULL, 0 without a
 * region); -EINVAL if the region has none for it. */
int be_inflight_part(struct vhu_backend *be, uint16_t index, uint16_t num, bool packed,
		     void **part, size_t *len);

/* log.c (every queue paused, or the one named) */
int be_set_log_base(struct vhu_backend *be, struct vhu_user_msg *m);
int be_set_log_fd(struct vhu_backend *be, struct vhu_user_msg *m);
void be_log_unmap(struct vhu_backend *be);
void be_log_close_fd(struct vhu_backend *be);
/* Tell ring q's engine what to log where, from the bitmap, LOG_ALL and the
 * ring's flags; a ring that cannot log as asked fails. */
int be_ring_log(struct vhu_backend *be, struct vhu_queue *q);
void be_log_all_rings(struct vhu_backend *be);
/* -ERANGE if the ring's log_guest_addr lies outside the bitmap mapped. */
int be_ring_log_check(struct vhu_backend *be, const struct be_vring *vr, unsigned index);

/* iotlb.c */
int be_iotlb_msg(struct vhu_backend *be, const struct vhu_user_iotlb *m);
/* A ring part at an IOVA, for reading and/or writing; -EAGAIN: a MISS was
 * sent and the ring waits (ring_wait), -EFAULT: refused. */
int be_ring_part_iova(struct vhu_backend *be, unsigned index, uint64_t iova, uint64_t len, bool read, bool write,
		      void **host);
void be_iotlb_chain_miss(void *opaque, struct vhu_queue *q, uint64_t iova, int access);
void be_iotlb_send_misses(struct vhu_backend *be);
void be_iotlb_reset(struct vhu_backend *be);

/* doorbell.c */
bool be_doorbells(const struct vhu_backend *be);   /* HOST_NOTIFIER offered */
void be_doorbell_ring_started(struct vhu_backend *be, struct vhu_queue *q);
void be_doorbell_ring_stopped(struct vhu_backend *be, struct vhu_queue *q);
void be_doorbell_wish(void *opaque, struct vhu_queue *q, bool offer);
void be_doorbell_send_wishes(struct vhu_backend *be);   /* control thread */
/* r came on the back-end channel: if it answers a doorbell message, it is
 * taken (true); backend_lock held. */
bool be_doorbell_take_reply(struct vhu_backend *be, const struct vhu_user_msg *r);
void be_backend_channel_readable(struct vhu_backend *be);
void be_doorbell_reset(struct vhu_backend *be);   /* every queue paused */

/* postcopy.c */
int be_postcopy_probe(void);   /* 0 if this kernel gives a userfaultfd for shared memory */
int be_postcopy_advise(struct vhu_backend *be, struct reply *rep);
int be_postcopy_listen(struct vhu_backend *be);
void be_postcopy_end(struct vhu_backend *be);
int be_postcopy_register(struct vhu_backend *be, const struct vhu_mem *mem);
/* Answer a table request made while listening with our mapping addresses. */
void be_postcopy_reply_table(struct vhu_backend *be, const struct vhu_user_msg *m, struct reply *rep);
/* Is m the front-end's acknowledgement of that answer? (consumed if so) */
bool be_postcopy_take_ack(struct vhu_backend *be, const struct vhu_user_msg *m);

/* backend.c */
int be_send_backend_msg(struct vhu_backend *be, uint32_t request, const void *payload, uint32_t size);
/* The same without NEED_REPLY: for a message the front-end answers on the
 * other channel first (IOTLB MISS), which a wait here would deadlock. */
int be_send_backend_notice(struct vhu_backend *be, uint32_t request, const void *payload, uint32_t size);

#define be_err(be, ...) vhu_backend_log(be, VHU_LOG_ERROR, __VA_ARGS__)
#define be_warn(be, ...) vhu_backend_log(be, VHU_LOG_WARN, __VA_ARGS__)
#define be_info(be, ...) vhu_backend_log(be, VHU_LOG_INFO, __VA_ARGS__)
#define be_dbg(be, ...) vhu_backend_log(be, VHU_LOG_DEBUG, __VA_ARGS__)

#endif
