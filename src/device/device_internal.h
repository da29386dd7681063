/* SPDX-License-Identifier: MIT */
/*
 * The device core's inside, and the interface a transport uses. Each field
 * of a queue is written by one owner, named beside it; other code reads
 * them through the functions below.
 */
#ifndef VHU_DEVICE_INTERNAL_H
#define VHU_DEVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "vhu/device.h"

struct pg_thread;

/* What the transport does for the device core: signal the driver where the
 * queue has no eventfd for it (vhost-user's in-band messages), and carry a
 * config change. Called with the queue's lock held, from the serving
 * thread: none of them may wait on the peer. */
struct dev_transport {
	void *opaque;
	void (*call)(void *opaque, struct vhu_queue *q);    /* no call fd */
	void (*error)(void *opaque, struct vhu_queue *q);   /* no err fd */
	int (*config_changed)(void *opaque);
	/* a chain's buffer is not in the IOTLB (the pop said -EAGAIN): ask the
	 * driver side, and wake the queue once it answers; NULL: no IOMMU */
	void (*iotlb_miss)(void *opaque, struct vhu_queue *q, uint64_t iova, int access);
	/* the queue's doorbell (doorbell.c) should be offered to the driver
	 * (busy) or withdrawn (idle): serving thread, queue lock held; the
	 * transport answers later with dq_doorbell_settled. NULL: none. */
	void (*doorbell)(void *opaque, struct vhu_queue *q, bool offer);
};

/* Where a queue's doorbell stands (doorbell.c). The driver's stores may
 * land in the word while it is being offered, is live, or is being
 * withdrawn; then nothing wakes the serving thread and it looks. */
enum dq_doorbell_state {
	DQ_DB_NONE,         /* no doorbell */
	DQ_DB_OFF,          /* withdrawn: kicks come by the kick fd */
	DQ_DB_OFFERING,     /* offered, no answer yet */
	DQ_DB_LIVE,         /* the driver notifies by a store into the word */
	DQ_DB_WITHDRAWING,  /* withdrawal sent, no answer yet */
	DQ_DB_REFUSED,      /* the driver side cannot map it: never again */
};

struct vhu_queue {
	struct vhu_device *dev;
	uint16_t index;
	pthread_mutex_t lock;       /* held by whoever runs the ring */
	int wake_fd;                /* eventfd: transport -> serving thread */
	atomic_int pause_req;       /* the transport wants the lock */
	atomic_bool inband_kick;    /* a kick that came as a message */
	/* the chain at the ring's head waits for an IOTLB mapping: the ring is
	 * not work until the transport says one arrived (dq_iotlb_updated) */
	atomic_bool iotlb_wait;
	uint64_t iotlb_wait_since;  /* queue.c, under the lock: when the wait began */

	/* queue.c, under the lock: the ring and its state */
	enum vhu_ring_state state;
	bool enabled;               /* the driver's enable (kept while stopped) */
	bool dev_started;           /* queue_start succeeded: queue_stop is owed */
	uint16_t num;               /* 0 while started: the ring is not mapped (a remap failed) */
	struct vhu_dev_vq vq;
	struct vhu_vq_pos unmapped_pos;
	unsigned resubmitted;      /* requests recovered from inflight regions */
	unsigned pending_ev;
	int kick_fd, call_fd, err_fd;   /* owned; -1: none (kick: the ring is polled) */
	unsigned kick_gen;

	/* the device, under the lock */
	int aux_fd;
	unsigned aux_gen;
	void *priv;

	/* the execution model's */
	pthread_t thread;           /* thread per queue */
	bool thread_up;
	atomic_bool quit;
	int watch_kick, watch_aux;  /* dups of kick_fd / aux_fd in an epoll set, -1: none */
	unsigned watch_kick_gen, watch_aux_gen;
	/* the doorbell (doorbell.c): the word and its state are the
	 * transport's to set (queue paused); the counters the serving thread's */
	_Atomic(uint32_t *) db_word;
	atomic_int db_state;
	uint64_t db_quiet_since;    /* serving thread: last work seen while live */
	unsigned db_empty_naps;     /* serving thread: naps in a row that found nothing */
	_Atomic uint64_t db_kicks, db_bad_data, db_offers;
	struct pg_thread *pt;       /* poll group: the thread serving it */
	unsigned pg_slot, pg_id;    /* pg_id: 31 bits, as the epoll data carries it */
	atomic_uint pg_ready;       /* poll group: events its epoll set saw */
	bool notify_off;            /* poll group: kicks off while busy-polling */
};

struct vhu_device {
	struct vhu_device_config cfg;
	struct vhu_queue *q;
	uint64_t features;          /* negotiated (device.c) */
	atomic_uint status;
	struct dev_transport transport;
	bool attached;
	int epoll_fd;               /* VHU_EXEC_APP */
};

static inline bool dq_active(const struct vhu_queue *q)
{
	/* num 0: started, but its ring is unmapped (an IOTLB invalidation
	 * took its mapping; it waits for a new one): nothing may touch it */
	return q->state == VHU_RING_ENABLED && !q->vq.broken && q->num;
}

/* ---- for transports (their control thread) ---------------------------- */
int dev_attach(struct vhu_device *dev, const struct dev_transport *t);
void dev_detach(struct vhu_device *dev);
/* Features: those offered, then the driver's choice (-EINVAL: not offered;
 * -EBUSY: the ring format changes under a running queue). */
int dev_set_features(struct vhu_device *dev, uint64_t f);
/* The driver's status byte; our NEEDS_RESET is kept until it writes 0. */
void dev_set_status(struct vhu_device *dev, uint8_t s);
/* Every queue stopped and reset, features and status back to 0 (paused). */
void dev_reset(struct vhu_device *dev);
int dev_get_config(struct vhu_device *dev, uint8_t *buf, uint32_t offset, uint32_t len);
int dev_set_config(struct vhu_device *dev, const uint8_t *buf, uint32_t offset, uint32_t len, uint32_t flags);
void dev_pause_all(struct vhu_device *dev);   /* and drained */
/* Every queue paused, requests in flight left to run; dev_drain_all then
 * waits for them (every queue paused). */
void dev_pause_all_undrained(struct vhu_device *dev);
void dev_drain_all(struct vhu_device *dev);
void dev_resume_all(struct vhu_device *dev);

/* A queue, paused (its lock held) except dq_pause and dq_wake. */
void dq_pause(struct vhu_queue *q);
void dq_resume(struct vhu_queue *q);
/* The driver kicked in a message (vhost-user VRING_KICK). */
void dq_wake(struct vhu_queue *q, bool kick);
/* The IOTLB gained mappings: a queue whose chain waited looks again. */
void dq_iotlb_updated(struct vhu_queue *q);
/* Whether the ring has chains the device can take now. */
bool dq_ring_has_work(struct vhu_queue *q);
/* A chain waited for the IOTLB longer than VHU_IOTLB_MISS_TIMEOUT_NS: the
 * next serve fails it (the serving loops look at least every
 * VHU_IOTLB_WAIT_POLL_MS while a queue waits). */
#define VHU_IOTLB_MISS_TIMEOUT_NS 2000000000ull
#define VHU_IOTLB_WAIT_POLL_MS 200
bool dq_iotlb_expired(struct vhu_queue *q);
/* Whether any queue of this process waits for the IOTLB. */
bool dq_any_iotlb_wait(void);
/* Start the ring with the transport's mapping and position. A ring the
 * engine refuses is an error (the queue stays stopped); a device that cannot
 * serve it breaks the queue, and the start still succeeds. */
/* inflight: the queue's part of a vhost-user inflight region, or NULL */
int dq_start(struct vhu_queue *q, const struct vhu_vq_config *c, const struct vhu_vq_pos *pos,
	     void *inflight, size_t inflight_len);
/* Drain, flush, stop; *pos (if given) gets where the ring stands. */
void dq_stop(struct vhu_queue *q, struct vhu_vq_pos *pos);
/* The ring's memory moved (a new memory table, new addresses): map it again
 * at the same position. c NULL: it cannot be mapped; nothing touches the
 * old mapping from now on (the caller breaks the queue or maps it again). */
int dq_remap(struct vhu_queue *q, const struct vhu_vq_config *c);
void dq_set_enabled(struct vhu_queue *q, bool on);
/* fd: owned from now on; -1: none (a kick of -1 means the ring is polled). */
void dq_set_kick_fd(struct vhu_queue *q, int fd);
void dq_set_call_fd(struct vhu_queue *q, int fd);
void dq_set_err_fd(struct vhu_queue *q, int fd);
bool dq_started(const struct vhu_queue *q);
/* Stopped, fds closed, disabled (lock held). */
void dq_reset(struct vhu_queue *q);
/* The queue cannot go on: DEVICE_NEEDS_RESET, and the error eventfd (or the
 * transport) tells the driver (VIRTIO §2.1.2 "Device Status Field"). */
void dq_fail(struct vhu_queue *q, const char *why, int err);

/* Rings named by guest address in a transport's memory table, kicked by an
 * eventfd the transport keeps, interrupts by its call hook (local_ring.c:
 * virtio-mmio, the admin transport). */
struct vhu_mem;
struct dq_ring_gpa {
	uint16_t size;
	uint64_t desc, driver, device;
};
bool dq_ring_map(const struct vhu_mem *mem, const struct dq_ring_gpa *r, uint16_t index, uint64_t features,
		 struct vhu_vq_config *c);
/* The same through a lookup of the transport's own (an MMU): the host
 * address of [addr, addr + len) if all of it is reachable for access, else
 * NULL; c's translation is left for the caller to set. */
typedef void *(*dq_part_fn)(void *opaque, uint64_t addr, uint64_t len, int access);
bool dq_ring_map_by(dq_part_fn part, void *opaque, const struct dq_ring_gpa *r, uint16_t index, uint64_t features,
		    struct vhu_vq_config *c);
/* Fresh position, a duplicate of kick_keep, no call fd, enabled; 0 or dq_start's error (the queue reset). */
int dq_start_local(struct vhu_queue *q, const struct vhu_vq_config *c, int kick_keep);
/* Stopped, drained, reset; a kick left on kick_keep read away. */
void dq_stop_local(struct vhu_queue *q, int kick_keep);
/* The kick eventfds such a transport keeps, one per queue: NULL with errno. */
int *dq_kicks_new(unsigned n);
void dq_kicks_free(int *kick, unsigned n);   /* NULL: nothing */

/* ---- inside the core -------------------------------------------------- */
void dq_init(struct vhu_device *dev, struct vhu_queue *q, uint16_t index);
void dq_destroy(struct vhu_queue *q);
/* Add ev to what is pending and, if the queue runs, call the handler with
 * it all (lock held). True if the handler was called. */
bool dq_serve(struct vhu_queue *q, unsigned ev);
/* The execution model's view of the queue's fds follows its state (lock held). */
void dq_sync_watch(struct vhu_queue *q);

/* doorbell.c */
/* The value a doorbell word holds until the driver stores into it: no
 * notification value can be it (the queue index in its low 16 bits would
 * be 0xffff). */
#define DQ_DOORBELL_EMPTY 0xffffffffu
/* While live, the serving thread looks this often; with no work for
 * VHU_DOORBELL_IDLE_NS it asks for the doorbell to be withdrawn. */
#define VHU_DOORBELL_NAP_NS 20000ull
/* Each nap that finds nothing doubles the next, up to this: a queue kicked
 * every 10 ms cost its back-end half a CPU napping 20 us at a time. */
#define VHU_DOORBELL_NAP_MAX_NS 320000ull
#define VHU_DOORBELL_IDLE_NS 20000000ull
/* Transport, queue paused: the queue has a doorbell at word (emptied),
 * live (the driver side maps it already) or withdrawn; NULL takes it away. */
void dq_doorbell_set(struct vhu_queue *q, uint32_t *word, bool live);
/* Transport, any thread: the driver side answered an offer (ok: it maps
 * the word now; else refused) or a withdrawal (ok: it no longer writes
 * there; else the withdrawal was declined and the doorbell stays live). */
void dq_doorbell_settled(struct vhu_queue *q, bool ok);
/* Serving thread: a store into the word since the last look (taken, and
 * its notification data checked against the ring). */
bool dq_doorbell_take(struct vhu_queue *q);
/* Serving thread: whether the driver's stores may land in the word, so the
 * thread must look rather than sleep; and the state changes the thread
 * asks for: busy (a kick came by the fd) offers, idle withdraws. */
bool dq_doorbell_watched(const struct vhu_queue *q);
void dq_doorbell_busy(struct vhu_queue *q);
void dq_doorbell_idle_check(struct vhu_queue *q, bool worked);

/* exec_thread.c */
int exec_thread_start(struct vhu_queue *q);
void exec_thread_stop(struct vhu_queue *q);
/* exec_app.c */
int exec_app_init(struct vhu_device *dev);
void exec_app_fini(struct vhu_device *dev);
/* The queue's kick and aux fds in epfd while it runs, out of it otherwise
 * (lock held): a kick fd on a stopped or disabled ring is never watched,
 * since an unread kick would wake a level-triggered set for ever. */
void exec_watch_queue(struct vhu_queue *q, int epfd, uint64_t kick_data, uint64_t aux_data, uint32_t events);
/* a dup of `want` (generation gen) in epfd, data `data`; -1: none */
void exec_rewatch(struct vhu_device *dev, int epfd, int *watched, unsigned *watched_gen, int want,
		  unsigned gen, uint64_t data, uint32_t events);
/* poll_group.c */
int pg_add(struct vhu_poll_group *pg, struct vhu_queue *q);
void pg_remove(struct vhu_queue *q);
/* the queue's fds or state changed (lock held) */
void pg_sync(struct vhu_queue *q);
void pg_kick(struct vhu_queue *q);

uint64_t dev_mono_ns(void);
void dev_efd_signal(int fd);

#define dev_err(d, ...) vhu_device_log(d, VHU_LOG_ERROR, __VA_ARGS__)
#define dev_warn(d, ...) vhu_device_log(d, VHU_LOG_WARN, __VA_ARGS__)
#define dev_info(d, ...) vhu_device_log(d, VHU_LOG_INFO, __VA_ARGS__)
#define dev_dbg(d, ...) vhu_device_log(d, VHU_LOG_DEBUG, __VA_ARGS__)

#endif
