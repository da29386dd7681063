/* SPDX-License-Identifier: MIT */
/*
 * A device's queue: its ring state (stopped, disabled, enabled, broken),
 * the fds that carry notifications, pause and resume for the transport, and
 * the calls a device handler makes. The ring fields are written here only,
 * with the queue's lock held.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "device_internal.h"
#include "vhu/virtio.h"

uint64_t dev_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void dev_efd_signal(int fd)
{
	uint64_t one = 1;
	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void dq_init(struct vhu_device *dev, struct vhu_queue *q, uint16_t index)
{
	memset(q, 0, sizeof(*q));
	q->dev = dev;
	q->index = index;
	q->state = VHU_RING_STOPPED;
	q->kick_fd = q->call_fd = q->err_fd = q->aux_fd = q->wake_fd = -1;
	q->watch_kick = q->watch_aux = -1;
	pthread_mutex_init(&q->lock, NULL);
}

void dq_destroy(struct vhu_queue *q)
{
	if (q->dev->cfg.exec == VHU_EXEC_THREAD_PER_QUEUE)
		exec_thread_stop(q);
	else if (q->dev->cfg.exec == VHU_EXEC_POLL_GROUP)
		pg_remove(q);
	close_fd(&q->wake_fd);
	close_fd(&q->watch_kick);	/* the epoll set they were in goes too, or pg_remove took them out */
	close_fd(&q->watch_aux);
	close_fd(&q->kick_fd);
	close_fd(&q->call_fd);
	close_fd(&q->err_fd);
	vhu_dev_vq_destroy(&q->vq);
	pthread_mutex_destroy(&q->lock);
}

/* The model's view of the queue's fds follows its state (lock held). */
void dq_sync_watch(struct vhu_queue *q)
{
	struct vhu_device *dev = q->dev;

	if (dev->cfg.exec == VHU_EXEC_POLL_GROUP)
		pg_sync(q);
	else if (dev->cfg.exec == VHU_EXEC_APP)
		exec_watch_queue(q, dev->epoll_fd, q->index, q->index, EPOLLIN);
}

/* Whoever serves the queue looks at it again. */
static void wake_server(struct vhu_queue *q)
{
	if (q->wake_fd >= 0)
		dev_efd_signal(q->wake_fd);
	if (q->pt)
		pg_kick(q);
}

/*
 * The server sleeps without the lock, so a free lock means there is no one
 * to interrupt: waking it would only have it wait for the resume (a thread
 * hop per message, on the path of a migration's stop: QEMU's
 * SET_VRING_ENABLE 0 and GET_VRING_BASE are inside the downtime).
 */
void dq_pause(struct vhu_queue *q)
{
	atomic_fetch_add(&q->pause_req, 1);
	if (pthread_mutex_trylock(&q->lock) == 0)
		return;
	if (q->wake_fd >= 0)
		dev_efd_signal(q->wake_fd);
	pthread_mutex_lock(&q->lock);
}

void dq_resume(struct vhu_queue *q)
{
	/* what changed may be work (a started ring, a kick); a queue left
	 * inactive has none, and its server sees the change when next woken */
	bool wake = dq_active(q) || q->pending_ev;
	dq_sync_watch(q);
	pthread_mutex_unlock(&q->lock);
	atomic_fetch_sub(&q->pause_req, 1);
	if (wake)
		wake_server(q);
}

void dq_wake(struct vhu_queue *q, bool kick)
{
	if (kick)
		atomic_store(&q->inband_kick, true);
	wake_server(q);
}

static atomic_uint iotlb_waiting;	/* queues of the process waiting */

static void iotlb_wait_end(struct vhu_queue *q)
{
	if (atomic_exchange(&q->iotlb_wait, false))
		atomic_fetch_sub(&iotlb_waiting, 1);
}

bool dq_any_iotlb_wait(void)
{
	return atomic_load(&iotlb_waiting) != 0;
}

void dq_iotlb_updated(struct vhu_queue *q)
{
	if (atomic_load(&q->iotlb_wait)) {
		iotlb_wait_end(q);
		dq_wake(q, true);
	}
}

bool dq_ring_has_work(struct vhu_queue *q)
{
	/* a chain waiting for the IOTLB is not work: looking again before a
	 * mapping arrives would only ask again, in a loop */
	return !atomic_load(&q->iotlb_wait) && vhu_dev_vq_has_avail(&q->vq);
}

/* A poll group leaves kicks off between rounds; the ring gets them back
 * before anyone else looks at it. */
static void notify_back_on(struct vhu_queue *q)
{
	if (q->notify_off && q->state != VHU_RING_STOPPED && !q->vq.broken)
		vhu_dev_vq_enable_notify(&q->vq);
	q->notify_off = false;
}

bool dq_started(const struct vhu_queue *q) { return q->state != VHU_RING_STOPPED; }

static void set_running_state(struct vhu_queue *q)
{
	if (q->state == VHU_RING_DISABLED || q->state == VHU_RING_ENABLED)
		q->state = q->enabled ? VHU_RING_ENABLED : VHU_RING_DISABLED;
}

int dq_start(struct vhu_queue *q, const struct vhu_vq_config *c, const struct vhu_vq_pos *pos,
	     void *inflight, size_t inflight_len)
{
	struct vhu_device *dev = q->dev;
	int r;

	if (q->state != VHU_RING_STOPPED)
		return 0;
	if (c->num > dev->cfg.max_queue_size) {
		dev_err(dev, "queue %u: size %u above the device's %u", q->index, c->num, dev->cfg.max_queue_size);
		return -EINVAL;
	}
	if ((r = vhu_dev_vq_init(&q->vq, c)) < 0) {
		dev_err(dev, "queue %u: ring rejected: %s", q->index, vhu_vq_strerror(r));
		return r;
	}
	if ((r = vhu_dev_vq_set_pos(&q->vq, pos)) < 0) {
		dev_err(dev, "queue %u: ring position out of range for the ring", q->index);
		vhu_dev_vq_destroy(&q->vq);
		return r;
	}
	q->num = c->num;
	q->notify_off = false;
	q->state = VHU_RING_DISABLED;
	set_running_state(q);
	if (inflight) {
		/* the region decides the position; a region refused breaks the
		 * ring (§2.1.2) but the request that started it was valid */
		r = vhu_dev_vq_inflight_attach(&q->vq, inflight, inflight_len);
		if (r < 0) {
			dq_fail(q, "its inflight region is refused", r);
			return 0;
		}
		q->resubmitted += (unsigned)r;
		if (r)
			dev_info(dev, "queue %u: %d requests taken before a restart are resubmitted", q->index, r);
	}
	if (dev->cfg.ops->queue_start && (r = dev->cfg.ops->queue_start(dev, q)) < 0) {
		/* The ring is sound but the device cannot serve it: VIRTIO
		 * §2.1.2, the device sets DEVICE_NEEDS_RESET. The transport's
		 * request itself was valid, so it still succeeds. */
		q->vq.broken = r;
		dq_fail(q, "the device could not start it", r);
		return 0;
	}
	q->dev_started = true;
	/* buffers may be waiting already */
	q->pending_ev |= VHU_QUEUE_EV_KICK;
	dev_dbg(dev, "queue %u started: size %u, %s ring", q->index, q->num, q->vq.packed ? "packed" : "split");
	return 0;
}

void dq_stop(struct vhu_queue *q, struct vhu_vq_pos *pos)
{
	struct vhu_device *dev = q->dev;

	if (q->state == VHU_RING_STOPPED)
		return;
	if (dev->cfg.ops->drain)
		dev->cfg.ops->drain(dev, q);
	notify_back_on(q);
	if (q->num) {
		vhu_dev_vq_flush(&q->vq);
		if (pos)
			vhu_dev_vq_get_pos(&q->vq, pos);
	} else if (pos) {
		*pos = q->unmapped_pos;	/* a remap failed: where it stood then */
	}
	if (dev->cfg.ops->queue_stop && q->dev_started)
		dev->cfg.ops->queue_stop(dev, q);
	q->dev_started = false;
	q->state = VHU_RING_STOPPED;
	iotlb_wait_end(q);
	vhu_dev_vq_destroy(&q->vq);
	q->pending_ev = 0;
	q->aux_fd = -1;
	q->aux_gen++;
}

int dq_remap(struct vhu_queue *q, const struct vhu_vq_config *c)
{
	int r;

	if (q->state == VHU_RING_STOPPED)
		return 0;
	notify_back_on(q);
	if (q->num) {	/* else unmapped before: unmapped_pos has where it stood */
		vhu_dev_vq_flush(&q->vq);
		vhu_dev_vq_get_pos(&q->vq, &q->unmapped_pos);
		q->num = 0;
	}
	if (!c)
		return 0;	/* nothing may touch the old memory from now on */
	/* the same ring through the new mappings: its position and the
	 * chains the device holds are kept */
	if ((r = vhu_dev_vq_remap(&q->vq, c)) < 0)
		return r;
	q->num = c->num;
	q->pending_ev |= VHU_QUEUE_EV_KICK;
	return 0;
}

void dq_set_enabled(struct vhu_queue *q, bool on)
{
	q->enabled = on;
	set_running_state(q);
	if (on)
		q->pending_ev |= VHU_QUEUE_EV_KICK;
}

void dq_set_kick_fd(struct vhu_queue *q, int fd)
{
	close_fd(&q->kick_fd);
	/* Whoever serves the queue reads the kick fd only when it is ready,
	 * but a front-end may hand the same eventfd to two queues, and the
	 * other one may empty it first: never block on it. (The flag is on
	 * the file the front-end shares; an eventfd it only writes is not
	 * affected.) */
	if (fd >= 0)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	q->kick_fd = fd;
	q->kick_gen++;
}

void dq_set_call_fd(struct vhu_queue *q, int fd)
{
	close_fd(&q->call_fd);
	q->call_fd = fd;
}

void dq_set_err_fd(struct vhu_queue *q, int fd)
{
	close_fd(&q->err_fd);
	q->err_fd = fd;
}

void dq_reset(struct vhu_queue *q)
{
	dq_stop(q, NULL);
	close_fd(&q->kick_fd);
	q->kick_gen++;
	close_fd(&q->call_fd);
	close_fd(&q->err_fd);
	q->enabled = false;
	q->num = 0;
	atomic_store(&q->inband_kick, false);
}

void dq_fail(struct vhu_queue *q, const char *why, int err)
{
	struct vhu_device *dev = q->dev;

	dev_err(dev, "queue %u broken: %s (%d); device needs reset", q->index, why, err);
	if (q->state != VHU_RING_STOPPED)
		q->state = VHU_RING_BROKEN;
	atomic_fetch_or(&dev->status, VHU_STATUS_DEVICE_NEEDS_RESET);
	if (q->err_fd >= 0)
		dev_efd_signal(q->err_fd);
	else if (dev->transport.error)
		dev->transport.error(dev->transport.opaque, q);
}

bool dq_iotlb_expired(struct vhu_queue *q)
{
	return atomic_load(&q->iotlb_wait) && dev_mono_ns() - q->iotlb_wait_since >= VHU_IOTLB_MISS_TIMEOUT_NS;
}

bool dq_serve(struct vhu_queue *q, unsigned ev)
{
	/* The front-end never answered (or the guest gave an address its
	 * IOMMU does not map: QEMU reports the fault to the guest and sends
	 * nothing): the chain is taken as a fault, the request fails, and the
	 * queue goes on. */
	bool expired = dq_iotlb_expired(q);
	if (expired) {
		uint64_t iova;
		int access;
		if (vhu_dev_vq_iotlb_miss(&q->vq, &iova, &access))
			dev_warn(q->dev, "queue %u: no IOTLB mapping for 0x%llx after %llu ms: the request fails",
				 q->index, (unsigned long long)iova,
				 (unsigned long long)(VHU_IOTLB_MISS_TIMEOUT_NS / 1000000));
		iotlb_wait_end(q);
		q->vq.xl.misses_fault = true;
		ev |= VHU_QUEUE_EV_KICK;
	}
	q->pending_ev |= ev;
	if (!dq_active(q) || !q->pending_ev) {
		q->vq.xl.misses_fault = false;
		return false;
	}
	ev = q->pending_ev;
	q->pending_ev = 0;
	q->dev->cfg.ops->handle(q->dev, q, ev);
	q->vq.xl.misses_fault = false;
	return true;
}

/* ---- device-facing calls ---------------------------------------------- */

/* A pop's error, told once: a ring that broke now, or a bad buffer. */
static void pop_failed(struct vhu_queue *q, bool was_broken, int r, const struct vhu_vq_elem *e)
{
	if (!was_broken && q->vq.broken)
		dq_fail(q, vhu_vq_strerror(q->vq.broken), q->vq.broken);
	else if (r < 0 && !q->vq.broken)
		dev_warn(q->dev, "queue %u: bad buffer %u: %s", q->index, e->id, vhu_vq_strerror(r));
}

/* -EAGAIN: the chain waits in the ring for the IOTLB; to the device it is
 * a ring with nothing more for now, and the transport wakes the queue */
static int iotlb_wait(struct vhu_queue *q)
{
	uint64_t iova;
	int access;
	if (q->dev->transport.iotlb_miss && vhu_dev_vq_iotlb_miss(&q->vq, &iova, &access)) {
		if (!atomic_exchange(&q->iotlb_wait, true)) {
			q->iotlb_wait_since = dev_mono_ns();
			atomic_fetch_add(&iotlb_waiting, 1);
		}
		q->dev->transport.iotlb_miss(q->dev->transport.opaque, q, iova, access);
	}
	return 0;
}

int vhu_queue_pop(struct vhu_queue *q, struct vhu_vq_elem *e, struct iovec *iov, unsigned max)
{
	bool was_broken = q->vq.broken;
	int r = vhu_dev_vq_pop(&q->vq, e, iov, max);
	if (r == -EAGAIN)
		return iotlb_wait(q);

	if (r < 0)
		pop_failed(q, was_broken, r, e);
	return r;
}

int vhu_queue_pop_burst(struct vhu_queue *q, struct vhu_vq_elem *elems, unsigned n,
			struct iovec *iov, unsigned iov_len, unsigned iov_max)
{
	bool was_broken = q->vq.broken;
	int r = vhu_dev_vq_pop_burst(&q->vq, elems, n, iov, iov_len, iov_max);
	if (r == -EAGAIN)
		return iotlb_wait(q);

	/* good chains before a malformed one: the ring is broken already,
	 * and the device hears it now, not a call later */
	if (r < 0 || q->vq.broken)
		pop_failed(q, was_broken, r, elems);
	return r;
}

int vhu_queue_push(struct vhu_queue *q, const struct vhu_vq_elem *e, uint32_t len)
{
	return vhu_dev_vq_push(&q->vq, e, len);
}

int vhu_queue_push_burst(struct vhu_queue *q, const struct vhu_vq_used *used, unsigned n)
{
	return vhu_dev_vq_push_burst(&q->vq, used, n);
}

void vhu_queue_notify(struct vhu_queue *q)
{
	vhu_dev_vq_flush(&q->vq);
	if (!vhu_dev_vq_should_notify(&q->vq))
		return;
	if (q->call_fd >= 0)
		dev_efd_signal(q->call_fd);
	else if (q->dev->transport.call)
		q->dev->transport.call(q->dev->transport.opaque, q);
	/* otherwise the driver polls the used ring */
}

enum vhu_ring_state vhu_queue_state(const struct vhu_queue *q)
{
	return q->state != VHU_RING_STOPPED && q->vq.broken ? VHU_RING_BROKEN : q->state;
}
uint16_t vhu_queue_index(const struct vhu_queue *q) { return q->index; }
unsigned vhu_queue_resubmitted(const struct vhu_queue *q) { return q->resubmitted; }
uint16_t vhu_queue_size(const struct vhu_queue *q) { return q->num; }
struct vhu_dev_vq *vhu_queue_vq(struct vhu_queue *q) { return &q->vq; }
struct vhu_device *vhu_queue_device(struct vhu_queue *q) { return q->dev; }
void vhu_queue_set_aux_fd(struct vhu_queue *q, int fd)
{
	q->aux_fd = fd;
	q->aux_gen++;
}
void vhu_queue_set_priv(struct vhu_queue *q, void *p) { q->priv = p; }
void *vhu_queue_priv(struct vhu_queue *q) { return q->priv; }
