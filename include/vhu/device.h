/* SPDX-License-Identifier: MIT */
/*
 * The device core: a virtio device instance (its queues, features, config
 * space and status) and the machinery that runs its queues, independent of
 * the transport that carries it. A transport attaches to a device and maps
 * its rings: the vhost-user back-end (vhu/backend.h) today; a virtio-mmio
 * model or an admin-virtqueue group owner attaches the same way.
 *
 * Who runs the queues (vhu_device_config.exec):
 *  - VHU_EXEC_THREAD_PER_QUEUE: a worker thread per queue sleeps on the
 *    queue's kick eventfd and the device's own fd, then calls handle;
 *  - VHU_EXEC_POLL_GROUP: the threads of a vhu_poll_group serve the queues
 *    of many devices, each queue on one thread; a thread busy-polls its
 *    queues while they have work and sleeps on one epoll set when idle;
 *  - VHU_EXEC_APP: vhu starts no thread; the application's own loop calls
 *    vhu_device_process() when vhu_device_event_fd() is readable.
 *
 * In every model a queue is served by one thread at a time, holding the
 * queue's lock: the device's handle, queue_start, queue_stop, drain and poll
 * are never called for the same queue concurrently. The transport's thread
 * (the control thread) pauses a queue (takes its lock) before it changes
 * anything the queue depends on.
 */
#ifndef VHU_DEVICE_H
#define VHU_DEVICE_H

#include "vhu/visibility.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vhu/log.h"
#include "vhu/vq.h"

VHU_API_BEGIN

struct vhu_device;
struct vhu_queue;
struct vhu_poll_group;

/* Events a queue handler is called for. A handler may be called with an
 * event that turns out to have nothing behind it (a kick for a buffer it
 * already took): it pops until the ring is empty and returns. */
#define VHU_QUEUE_EV_KICK 1u   /* the driver notified, or the ring is polled */
#define VHU_QUEUE_EV_AUX  2u   /* the device's own fd (vhu_queue_set_aux_fd) */

/* Who wrote the config space (set_config's flags; the values are
 * vhost-user's VHOST_SET_CONFIG_TYPE_FRONTEND and _MIGRATION). */
#define VHU_CONFIG_WRITE_DRIVER    0u   /* only fields the driver may write */
#define VHU_CONFIG_WRITE_MIGRATION 1u   /* the whole space, restored by a migration */

struct vhu_device_ops {
	/* Called by the thread serving the queue, queue lock held, while the
	 * queue is enabled. Pop with vhu_queue_pop, return with
	 * vhu_queue_push, publish with vhu_queue_notify. */
	void (*handle)(struct vhu_device *dev, struct vhu_queue *q, unsigned events);
	/* Optional. A queue starts or stops (lock held). queue_start returns
	 * 0, or -errno if the device cannot serve the queue (no memory, no
	 * io_uring, ...): the queue is then broken as a malformed ring would
	 * be (DEVICE_NEEDS_RESET, the transport's error notice), never left
	 * silently unserved, and queue_stop is not called for it. */
	int (*queue_start)(struct vhu_device *dev, struct vhu_queue *q);
	void (*queue_stop)(struct vhu_device *dev, struct vhu_queue *q);
	/* Optional. Complete every request the device holds for this queue
	 * before it returns: guest memory or the ring is about to change, or
	 * dirty logging starts (a chain held across that could not be logged;
	 * the queue would fail) (lock held, from the transport's thread). */
	void (*drain)(struct vhu_device *dev, struct vhu_queue *q);
	/* Config space. set_config gets a VHU_CONFIG_WRITE_* flag. Return 0 or -errno. */
	int (*get_config)(struct vhu_device *dev, uint8_t *buf, uint32_t offset, uint32_t len);
	int (*set_config)(struct vhu_device *dev, const uint8_t *buf, uint32_t offset, uint32_t len,
			  uint32_t flags);
	/* Optional. The negotiated features. */
	int (*set_features)(struct vhu_device *dev, uint64_t features);
	/* Optional. Has the device completions waiting (cheap, no system
	 * call)? Lets a busy-polling thread notice them. */
	bool (*poll)(struct vhu_device *dev, struct vhu_queue *q);
	/* Optional. The driver reset the device, or the transport went away:
	 * back to the initial state (every queue is stopped already). */
	void (*reset)(struct vhu_device *dev);
};

enum vhu_exec { VHU_EXEC_THREAD_PER_QUEUE = 0, VHU_EXEC_POLL_GROUP, VHU_EXEC_APP };

struct vhu_device_config {
	const struct vhu_device_ops *ops;
	void *priv;                   /* the device's state */
	uint16_t num_queues;          /* 1..256 */
	uint16_t max_queue_size;      /* a ring larger than this is refused */
	uint64_t features;            /* VIRTIO features offered (device and transport) */
	uint32_t config_size;         /* bytes of device config space (at most 256) */
	vhu_log_fn log;               /* the one log hook, for the device and its transport */
	void *log_opaque;
	int log_level;                /* messages at or below this level are passed on */
	/* Adaptive polling: after serving a queue, its thread keeps looking at
	 * the ring (kicks turned off) for this long before it sleeps. 0: off.
	 * Thread per queue; a poll group has its own (vhu_poll_group_config). */
	uint32_t poll_ns;
	enum vhu_exec exec;
	struct vhu_poll_group *poll_group;   /* VHU_EXEC_POLL_GROUP: outlives the device */
};

/* Create a device; its queues are stopped. NULL with errno set on failure. */
struct vhu_device *vhu_device_new(const struct vhu_device_config *cfg);
/* Stops every queue (drained) and frees the device. Detach the transport first. */
void vhu_device_free(struct vhu_device *dev);
void *vhu_device_priv(struct vhu_device *dev);
uint16_t vhu_device_num_queues(const struct vhu_device *dev);
struct vhu_queue *vhu_device_queue(struct vhu_device *dev, uint16_t index);
/* The negotiated features (0 before the driver set them). */
uint64_t vhu_device_features(const struct vhu_device *dev);
/* The device status byte (VIRTIO §2.1), with DEVICE_NEEDS_RESET when a queue broke. */
uint8_t vhu_device_status(const struct vhu_device *dev);
/* Tell the driver the config space changed (through the transport). */
int vhu_device_config_changed(struct vhu_device *dev);
void vhu_device_log(struct vhu_device *dev, enum vhu_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* VHU_EXEC_APP: an epoll fd, readable whenever a queue has something to do
 * (a kick, the device's fd, a wake-up from the transport); -EINVAL in the
 * other models. vhu_device_process serves every queue once, never waiting. */
int vhu_device_event_fd(const struct vhu_device *dev);
void vhu_device_process(struct vhu_device *dev);

/* ---- poll groups ---------------------------------------------------------- */
struct vhu_poll_group_config {
	unsigned threads;             /* 0: one per online CPU */
	uint32_t poll_ns;             /* busy-poll a thread's queues this long after work; 0: off */
	vhu_log_fn log;
	void *log_opaque;
	int log_level;
};
struct vhu_poll_group *vhu_poll_group_new(const struct vhu_poll_group_config *cfg);
/* Free it after every device on it. */
void vhu_poll_group_free(struct vhu_poll_group *pg);
unsigned vhu_poll_group_threads(const struct vhu_poll_group *pg);

/* ---- for device handlers (the serving thread, queue lock held) ------------ */
enum vhu_ring_state {
	VHU_RING_STOPPED,             /* not started, or stopped (GET_VRING_BASE, reset) */
	VHU_RING_DISABLED,            /* started, but the driver has not enabled it */
	VHU_RING_ENABLED,             /* served */
	VHU_RING_BROKEN,              /* malformed, or the device could not start it: needs reset */
};
enum vhu_ring_state vhu_queue_state(const struct vhu_queue *q);
uint16_t vhu_queue_index(const struct vhu_queue *q);
/* Requests a restarted device got again from a transport's inflight region
 * (vhost-user INFLIGHT_SHMFD), since the device was made. */
unsigned vhu_queue_resubmitted(const struct vhu_queue *q);
uint16_t vhu_queue_size(const struct vhu_queue *q);
struct vhu_device *vhu_queue_device(struct vhu_queue *q);
/* The queue's engine; the device may use it directly. */
struct vhu_dev_vq *vhu_queue_vq(struct vhu_queue *q);
/* vhu_dev_vq_pop; a broken ring also sets DEVICE_NEEDS_RESET and tells the
 * transport (the error eventfd, or an in-band VRING_ERR). */
int vhu_queue_pop(struct vhu_queue *q, struct vhu_vq_elem *e, struct iovec *iov, unsigned max);
int vhu_queue_push(struct vhu_queue *q, const struct vhu_vq_elem *e, uint32_t len);
/* The burst forms: vhu_dev_vq_pop_burst and vhu_dev_vq_push_burst, a broken
 * ring reported as vhu_queue_pop reports it. */
int vhu_queue_pop_burst(struct vhu_queue *q, struct vhu_vq_elem *elems, unsigned n,
			struct iovec *iov, unsigned iov_len, unsigned iov_max);
int vhu_queue_push_burst(struct vhu_queue *q, const struct vhu_vq_used *used, unsigned n);
/* Flush and, if the driver wants it, signal the call eventfd (or in-band). */
void vhu_queue_notify(struct vhu_queue *q);
/* An fd of the device's (e.g. io_uring's eventfd) that wakes the queue's
 * thread with VHU_QUEUE_EV_AUX; -1: none. Cleared when the queue stops. */
void vhu_queue_set_aux_fd(struct vhu_queue *q, int fd);
void vhu_queue_set_priv(struct vhu_queue *q, void *p);
void *vhu_queue_priv(struct vhu_queue *q);

VHU_API_END

#endif
