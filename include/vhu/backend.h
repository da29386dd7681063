/* SPDX-License-Identifier: MIT */
/*
 * vhost-user back-end library: serves any virtio device type through a
 * small device-ops interface.
 *
 * Threads: the caller's thread runs the control loop (vhu_backend_run):
 * it accepts a front-end, handles its messages, and accepts again after a
 * disconnect. Each virtqueue has a worker thread that sleeps on the queue's
 * kick eventfd (or an in-band kick, or polls) and calls the device's
 * handler. A worker holds its queue's lock while it touches the ring; the
 * control thread takes that lock (waking the worker first) before it
 * changes anything the queue depends on: the ring (GET_VRING_BASE), the
 * memory table (SET_MEM_TABLE, ADD/REM_MEM_REG) or the device (RESET).
 */
#ifndef VHU_BACKEND_H
#define VHU_BACKEND_H

#include "vhu/visibility.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhu/log.h"
#include "vhu/mem.h"
#include "vhu/vhost_user.h"
#include "vhu/vq.h"

VHU_API_BEGIN

struct vhu_backend;
struct vhu_bqueue;


/* Events a queue handler is called for. */
#define VHU_QUEUE_EV_KICK 1u   /* the driver notified, or polling is on */
#define VHU_QUEUE_EV_AUX  2u   /* the device's own fd (vhu_bqueue_set_aux_fd) */

struct vhu_device_ops {
	/* Called in the queue's worker thread, queue lock held, while the
	 * queue is started and enabled. Pop with vhu_bqueue_pop, return with
	 * vhu_bqueue_push, publish with vhu_bqueue_notify. */
	void (*handle)(struct vhu_backend *be, struct vhu_bqueue *q, unsigned events);
	/* Optional. A queue starts or stops (worker thread, lock held).
	 * queue_start returns 0, or -errno if the device cannot serve the
	 * queue (no memory, no io_uring, ...): the queue is then broken as a
	 * malformed ring would be (DEVICE_NEEDS_RESET, its err fd or an
	 * in-band VRING_ERR), never left silently unserved, and queue_stop is
	 * not called for it. */
	int (*queue_start)(struct vhu_backend *be, struct vhu_bqueue *q);
	void (*queue_stop)(struct vhu_backend *be, struct vhu_bqueue *q);
	/* Optional. Complete every request the device holds for this queue
	 * before it returns: guest memory or the ring is about to change
	 * (lock held, from the control thread). */
	void (*drain)(struct vhu_backend *be, struct vhu_bqueue *q);
	/* Config space (GET/SET_CONFIG). set_config gets the flags rule's
	 * result: only writable fields unless migrating. Return 0 or -errno. */
	int (*get_config)(struct vhu_backend *be, uint8_t *buf, uint32_t offset, uint32_t len);
	int (*set_config)(struct vhu_backend *be, const uint8_t *buf, uint32_t offset, uint32_t len,
			  uint32_t flags);
	/* Optional. The negotiated features (after SET_FEATURES). */
	int (*set_features)(struct vhu_backend *be, uint64_t features);
	/* Optional. Has the device completions waiting (cheap, no system
	 * call)? Lets the worker's busy-poll notice them. */
	bool (*poll)(struct vhu_backend *be, struct vhu_bqueue *q);
	/* Optional. RESET_DEVICE / RESET_OWNER / disconnect: back to initial state. */
	void (*reset)(struct vhu_backend *be);
	/* Optional. A device-specific request (vhu_backend_serves() says
	 * VHU_SERVES_DEVICE: SEND_RARP, NET_SET_MTU, crypto sessions,
	 * GPU_SET_SOCKET), already checked against the protocol's message
	 * table. The device may take m's fds (set them to -1); a reply body
	 * goes in reply->payload with reply->hdr.size set (0: none, and with
	 * REPLY_ACK the return value is acked). Return 0 or -errno. The
	 * protocol features those requests need are offered only by a device
	 * that has this op. */
	int (*request)(struct vhu_backend *be, struct vhu_user_msg *m, struct vhu_user_msg *reply);
};

/* The protocol features the library itself serves. */
#define VHU_BACKEND_PROTOCOL_FEATURES                                                     \
	((1ull << VHU_USER_PROTOCOL_F_MQ) | (1ull << VHU_USER_PROTOCOL_F_REPLY_ACK) |      \
	 (1ull << VHU_USER_PROTOCOL_F_BACKEND_REQ) | (1ull << VHU_USER_PROTOCOL_F_CONFIG) | \
	 (1ull << VHU_USER_PROTOCOL_F_RESET_DEVICE) |                                      \
	 (1ull << VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS) |                              \
	 (1ull << VHU_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | (1ull << VHU_USER_PROTOCOL_F_STATUS))
/* The ones a device with a request op may offer too. */
#define VHU_BACKEND_DEVICE_PROTOCOL_FEATURES                                              \
	((1ull << VHU_USER_PROTOCOL_F_RARP) | (1ull << VHU_USER_PROTOCOL_F_NET_MTU) |      \
	 (1ull << VHU_USER_PROTOCOL_F_CRYPTO_SESSION))

/* Who serves a front-end request: the back-end library, the device's
 * request op, nobody (its feature is never offered), or it is not a
 * request vhu knows. One row per request in src/backend/handlers.c. */
enum vhu_backend_serves { VHU_SERVES_UNKNOWN, VHU_SERVES_LIBRARY, VHU_SERVES_DEVICE, VHU_SERVES_NOT_OFFERED };
enum vhu_backend_serves vhu_backend_serves(uint32_t request);

struct vhu_backend_config {
	const struct vhu_device_ops *ops;
	void *priv;                   /* the device's state */
	uint16_t num_queues;
	uint16_t max_queue_size;      /* SET_VRING_NUM above this is refused */
	uint64_t features;            /* VIRTIO features offered (device and transport) */
	uint64_t protocol_features;   /* protocol features offered (masked to what vhu implements) */
	uint32_t config_size;         /* bytes of device config space */
	vhu_log_fn log;
	void *log_opaque;
	int log_level;                /* messages at or below this level are passed on */
	/* Adaptive polling: after serving a queue, the worker keeps looking at
	 * the ring (kicks turned off) for this long before it sleeps. 0: off.
	 * (Thread per queue only: an application's loop decides for itself.) */
	uint32_t poll_ns;
	/* Who runs the queues: a worker thread per queue (the default), or the
	 * application's own event loop (VHU_THREADS_NONE: vhu starts no
	 * thread; see vhu_backend_dispatch). */
	enum vhu_backend_threads { VHU_THREAD_PER_QUEUE = 0, VHU_THREADS_NONE } threads;
};

/* Create a back-end. Returns NULL with errno set on failure. */
struct vhu_backend *vhu_backend_new(const struct vhu_backend_config *cfg);
void vhu_backend_free(struct vhu_backend *be);
void *vhu_backend_priv(struct vhu_backend *be);

/* Serve front-ends on a listening socket (server role) until stopped:
 * after a disconnect the device is reset and the next connection accepted.
 * Returns 0 when stopped, or a negative errno. */
int vhu_backend_run_listen(struct vhu_backend *be, int listen_fd);
/* Serve one already-connected socket (--fd, or the client role); returns
 * when the front-end disconnects or the back-end is stopped. */
int vhu_backend_run_conn(struct vhu_backend *be, int conn_fd);
/* Ask the control loop to end soon. Async-signal-safe. */
void vhu_backend_stop(struct vhu_backend *be);

/*
 * Application-driven back-ends (threads = VHU_THREADS_NONE), for programs
 * that have an event loop or reactor of their own: vhu starts no thread and
 * blocks only while it reads the rest of a message that has begun to arrive.
 * The application accepts or connects the socket itself, attaches it, adds
 * vhu_backend_event_fd() (an epoll fd, readable whenever vhu has something
 * to do: a message, a kick, a device completion) to its loop, and calls
 * vhu_backend_dispatch() whenever it is readable. Device handlers are
 * called from there, on the application's thread. A queue whose kick fd is
 * "invalid" (polling mode) is served on every call, so such an application
 * calls dispatch at the rate it wants that queue polled.
 */
int vhu_backend_event_fd(const struct vhu_backend *be);
/* Start a session on a connected socket; vhu owns it from now on. -EBUSY if one is attached. */
int vhu_backend_attach(struct vhu_backend *be, int conn_fd);
/* Serve what is pending, never waiting for more. 0; -ENOTCONN with no
 * session; -ECONNRESET when the session ended (front-end gone or dropped
 * for a protocol error: the device is reset, the socket closed, and the
 * next may be attached). */
int vhu_backend_dispatch(struct vhu_backend *be);

/* Send BACKEND_CONFIG_CHANGE_MSG on the back-end channel, if negotiated. */
int vhu_backend_config_changed(struct vhu_backend *be);
uint64_t vhu_backend_features(const struct vhu_backend *be);
void vhu_backend_log(struct vhu_backend *be, enum vhu_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- for device handlers (worker thread, queue lock held) -------------- */
uint16_t vhu_bqueue_index(const struct vhu_bqueue *q);
uint16_t vhu_bqueue_size(const struct vhu_bqueue *q);
/* The queue's engine; the device may use it directly. */
struct vhu_dev_vq *vhu_bqueue_vq(struct vhu_bqueue *q);
/* vhu_dev_vq_pop; a broken ring also sets DEVICE_NEEDS_RESET and signals
 * the error fd (or in-band VRING_ERR). */
int vhu_bqueue_pop(struct vhu_bqueue *q, struct vhu_vq_elem *e, struct iovec *iov, unsigned max);
int vhu_bqueue_push(struct vhu_bqueue *q, const struct vhu_vq_elem *e, uint32_t len);
/* Flush and, if the driver wants it, signal the call fd (or in-band). */
void vhu_bqueue_notify(struct vhu_bqueue *q);
/* An fd of the device's (e.g. io_uring's eventfd) the worker also waits on. */
void vhu_bqueue_set_aux_fd(struct vhu_bqueue *q, int fd);
void vhu_bqueue_set_priv(struct vhu_bqueue *q, void *p);
void *vhu_bqueue_priv(struct vhu_bqueue *q);
struct vhu_backend *vhu_bqueue_backend(struct vhu_bqueue *q);

VHU_API_END

#endif
