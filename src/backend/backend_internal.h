/* SPDX-License-Identifier: MIT */
#ifndef VHU_BACKEND_INTERNAL_H
#define VHU_BACKEND_INTERNAL_H

#include <stdatomic.h>

#include "vhu/backend.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"

struct vhu_bqueue {
	struct vhu_backend *be;
	uint16_t index;
	pthread_mutex_t lock;       /* held by the worker while it runs the ring */
	pthread_t thread;
	bool thread_up;
	int wake_fd;                /* eventfd: control thread -> worker */
	atomic_int pause_req;       /* control thread wants the lock */
	atomic_bool quit;
	atomic_bool inband_kick;
	atomic_bool inband_call;    /* a VRING_CALL for the control thread to send */
	atomic_bool inband_err;     /* a VRING_ERR likewise */
	unsigned pending_ev;

	/* set by messages (control thread, lock held) */
	uint32_t num;
	struct vhu_user_vring_addr addr;
	bool addr_set;
	struct vhu_vq_pos base;
	int kick_fd, call_fd, err_fd;
	bool kick_poll;
	bool started, enabled, vq_ready;
	bool dev_started;           /* the device's queue_start succeeded: queue_stop is owed */
	struct vhu_dev_vq vq;

	int aux_fd;
	void *priv;
	/* application-driven: private dups of the kick and aux fds in the
	 * back-end's epoll set (never the originals, whose file the front-end
	 * or the device may keep open after we close our fd, which would leave
	 * the registration behind), -1 when not watched */
	int watch_kick, watch_aux;
	/* kick_fd and aux_fd change with a new generation each time (a new fd
	 * may get the number of the one just closed); the dups are of these */
	unsigned kick_gen, aux_gen, watch_kick_gen, watch_aux_gen;
};

struct vhu_backend {
	struct vhu_backend_config cfg;
	struct vhu_bqueue *q;
	int stop_fd;                /* eventfd: vhu_backend_stop */
	int inband_fd;              /* eventfd: a worker has in-band messages to send */

	/* session state (control thread) */
	int conn;
	bool owner;
	uint64_t features;          /* negotiated VIRTIO features */
	uint64_t protocol_features; /* negotiated */
	atomic_uint status;
	struct vhu_mem mem;
	int backend_fd;             /* back-end channel, or -1 */
	pthread_mutex_t backend_lock;
	bool close_conn;            /* a fatal protocol error: drop the front-end */
	int epoll_fd;               /* application-driven: what vhu_backend_event_fd returns, else -1 */
};

static inline bool be_pf(const struct vhu_backend *be, unsigned bit)
{
	return be->protocol_features >> bit & 1;
}
static inline bool be_pf_negotiated_base(const struct vhu_backend *be)
{
	return be->features >> VHU_USER_F_PROTOCOL_FEATURES & 1;
}

/* The queue is served: started, enabled, its ring mapped and not broken. */
static inline bool bq_active(const struct vhu_bqueue *q)
{
	return q->started && q->enabled && q->vq_ready && !q->vq.broken;
}

/* queue.c */
int bq_init(struct vhu_backend *be, struct vhu_bqueue *q, uint16_t index);
/* Application-driven: take what arrived for the queue and serve it (takes its lock). */
void bq_service(struct vhu_bqueue *q);
void bq_destroy(struct vhu_bqueue *q);
void bq_pause(struct vhu_bqueue *q);
void bq_resume(struct vhu_bqueue *q);
int bq_start(struct vhu_bqueue *q);           /* lock held */
void bq_stop(struct vhu_bqueue *q);           /* lock held */
int bq_refresh(struct vhu_bqueue *q);         /* memory changed; lock held */
/* The queue cannot go on: DEVICE_NEEDS_RESET, and its error eventfd (or an
 * in-band VRING_ERR) tells the front-end (§2.1.2 "Device Status Field"). */
void bq_fail(struct vhu_bqueue *q, const char *why, int err);
void bq_reset(struct vhu_bqueue *q);          /* back to initial; lock held */
void bq_wake(struct vhu_bqueue *q, bool kick);

/* handlers.c */
struct reply {
	bool has_body;              /* the request's own reply */
	struct vhu_user_msg msg;
};
int be_handle(struct vhu_backend *be, struct vhu_user_msg *m, struct reply *rep);

/* backend.c */
int be_send_backend_msg(struct vhu_backend *be, uint32_t request, const void *payload, uint32_t size);
void be_pause_all(struct vhu_backend *be);
void be_resume_all(struct vhu_backend *be);
/* handlers.c: a front-end went away; back to the state before SET_OWNER */
void be_session_reset(struct vhu_backend *be);

#define be_err(be, ...) vhu_backend_log(be, VHU_LOG_ERROR, __VA_ARGS__)
#define be_warn(be, ...) vhu_backend_log(be, VHU_LOG_WARN, __VA_ARGS__)
#define be_info(be, ...) vhu_backend_log(be, VHU_LOG_INFO, __VA_ARGS__)
#define be_dbg(be, ...) vhu_backend_log(be, VHU_LOG_DEBUG, __VA_ARGS__)

#endif
