/* SPDX-License-Identifier: MIT */
/* Back-end virtqueues: workers, ring start/stop, and the device's calls. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../common/cpu_relax.h"
#include "backend_internal.h"

static void efd_signal(int fd)
{
	uint64_t one = 1;
	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void efd_drain(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Adaptive polling (as QEMU's poll-max-ns, SPDK's pollers): with the
 * driver's kicks turned off, watch the ring and the device for poll_ns
 * before going to sleep; new work found this way costs neither side a
 * system call. Before sleeping, kicks go back on and the ring is checked
 * once more (enable, barrier, recheck). True if there is work to do.
 */
static bool busy_poll(struct vhu_bqueue *q)
{
	struct vhu_backend *be = q->be;
	uint64_t end = mono_ns() + be->cfg.poll_ns;
	bool work = false;

	vhu_dev_vq_disable_notify(&q->vq);
	do {
		if (vhu_dev_vq_has_avail(&q->vq)) {
			q->pending_ev |= VHU_QUEUE_EV_KICK;
			work = true;
		}
		if (be->cfg.ops->poll && be->cfg.ops->poll(be, q)) {
			q->pending_ev |= VHU_QUEUE_EV_AUX;
			work = true;
		}
		if (work || atomic_load(&q->pause_req) || atomic_load(&q->quit))
			break;
		vhu_cpu_relax();
	} while (mono_ns() < end);
	if (vhu_dev_vq_enable_notify(&q->vq) && !work) {
		q->pending_ev |= VHU_QUEUE_EV_KICK;
		work = true;
	}
	return work && !atomic_load(&q->pause_req);
}

static void *worker(void *arg)
{
	struct vhu_bqueue *q = arg;
	struct vhu_backend *be = q->be;

	pthread_mutex_lock(&q->lock);
	while (!atomic_load(&q->quit)) {
		bool active = bq_active(q);
		if (active && q->pending_ev) {
			unsigned ev = q->pending_ev;
			q->pending_ev = 0;
			be->cfg.ops->handle(be, q, ev);
			if (be->cfg.poll_ns && busy_poll(q))
				continue;
		}
		struct pollfd p[3];
		int n = 0, ik = -1, ia = -1, kick = q->kick_fd;
		p[n++] = (struct pollfd){ .fd = q->wake_fd, .events = POLLIN };
		if (active && !q->kick_poll && q->kick_fd >= 0) {
			ik = n;
			p[n++] = (struct pollfd){ .fd = q->kick_fd, .events = POLLIN };
		}
		if (active && q->aux_fd >= 0) {
			ia = n;
			p[n++] = (struct pollfd){ .fd = q->aux_fd, .events = POLLIN };
		}
		/* polling mode (kick fd "invalid"): look at the ring every ms */
		int timeout = active && q->kick_poll ? 1 : -1;
		pthread_mutex_unlock(&q->lock);
		int r = poll(p, n, timeout);
		/* let the control thread in first if it asked */
		while (atomic_load(&q->pause_req) && !atomic_load(&q->quit)) {
			struct timespec ts = { 0, 50000 };
			nanosleep(&ts, NULL);
		}
		pthread_mutex_lock(&q->lock);
		if (r < 0)
			continue;
		if (p[0].revents & POLLIN)
			efd_drain(q->wake_fd);
		if (atomic_exchange(&q->inband_kick, false))
			q->pending_ev |= VHU_QUEUE_EV_KICK;
		if (ik >= 0 && (p[ik].revents & POLLIN)) {
			/* only the fd we polled: the control thread may have
			 * replaced it meanwhile (its number even reused) */
			if (q->kick_fd == kick)
				efd_drain(kick);
			q->pending_ev |= VHU_QUEUE_EV_KICK;
		}
		if (ia >= 0 && (p[ia].revents & POLLIN))
			q->pending_ev |= VHU_QUEUE_EV_AUX;
		if (active && q->kick_poll)
			q->pending_ev |= VHU_QUEUE_EV_KICK;
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int bq_init(struct vhu_backend *be, struct vhu_bqueue *q, uint16_t index)
{
	memset(q, 0, sizeof(*q));
	q->be = be;
	q->index = index;
	q->kick_fd = q->call_fd = q->err_fd = q->aux_fd = -1;
	q->watch_kick = q->watch_aux = -1;
	pthread_mutex_init(&q->lock, NULL);
	q->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->wake_fd < 0)
		return -errno;
	if (be->cfg.threads == VHU_THREADS_NONE)
		return 0;	/* the application's loop serves it (bq_service) */
	int r = pthread_create(&q->thread, NULL, worker, q);
	if (r) {
		close(q->wake_fd);
		return -r;
	}
	q->thread_up = true;
	return 0;
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/*
 * The application-driven worker: one pass of what worker() does, without
 * sleeping. The kick fd is non-blocking (handlers.c), so reading it says
 * whether the driver kicked; the device's aux fd is only looked at, as the
 * worker's poll does, and left for the device to drain.
 */
void bq_service(struct vhu_bqueue *q)
{
	struct vhu_backend *be = q->be;
	uint64_t v;

	pthread_mutex_lock(&q->lock);
	(void)!read(q->wake_fd, &v, sizeof(v));
	if (atomic_exchange(&q->inband_kick, false))
		q->pending_ev |= VHU_QUEUE_EV_KICK;
	bool active = bq_active(q);
	if (active && !q->kick_poll && q->kick_fd >= 0 && read(q->kick_fd, &v, sizeof(v)) == sizeof(v))
		q->pending_ev |= VHU_QUEUE_EV_KICK;
	if (active && q->aux_fd >= 0 && readable(q->aux_fd))
		q->pending_ev |= VHU_QUEUE_EV_AUX;
	if (active && q->kick_poll)
		q->pending_ev |= VHU_QUEUE_EV_KICK;
	if (active && q->pending_ev) {
		unsigned ev = q->pending_ev;
		q->pending_ev = 0;
		be->cfg.ops->handle(be, q, ev);
	}
	pthread_mutex_unlock(&q->lock);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void bq_destroy(struct vhu_bqueue *q)
{
	if (q->thread_up) {
		atomic_store(&q->quit, true);
		efd_signal(q->wake_fd);
		pthread_join(q->thread, NULL);
	}
	close_fd(&q->wake_fd);
	close_fd(&q->watch_kick);	/* the epoll set goes with the back-end */
	close_fd(&q->watch_aux);
	close_fd(&q->kick_fd);
	close_fd(&q->call_fd);
	close_fd(&q->err_fd);
	pthread_mutex_destroy(&q->lock);
}

void bq_pause(struct vhu_bqueue *q)
{
	atomic_fetch_add(&q->pause_req, 1);
	efd_signal(q->wake_fd);
	pthread_mutex_lock(&q->lock);
}

void bq_resume(struct vhu_bqueue *q)
{
	pthread_mutex_unlock(&q->lock);
	atomic_fetch_sub(&q->pause_req, 1);
	efd_signal(q->wake_fd);
}

void bq_wake(struct vhu_bqueue *q, bool kick)
{
	if (kick)
		atomic_store(&q->inband_kick, true);
	efd_signal(q->wake_fd);
}

/* Host addresses of the ring parts from the front-end's user addresses;
 * each part must lie whole inside one region. */
static int map_ring(struct vhu_bqueue *q, struct vhu_vq_config *c)
{
	struct vhu_backend *be = q->be;
	bool packed = vhu_has_feature(be->features, VHU_F_RING_PACKED);
	uint64_t dsz = packed ? vhu_vring_packed_desc_size(q->num) : vhu_vring_split_desc_size(q->num);
	uint64_t asz = packed ? 4 : vhu_vring_split_avail_size(q->num);
	uint64_t usz = packed ? 4 : vhu_vring_split_used_size(q->num);

	*c = (struct vhu_vq_config){
		.num = (uint16_t)q->num, .index = q->index, .features = be->features,
		.desc = vhu_mem_uaddr(&be->mem, q->addr.desc_user_addr, dsz),
		.driver_area = vhu_mem_uaddr(&be->mem, q->addr.avail_user_addr, asz),
		.device_area = vhu_mem_uaddr(&be->mem, q->addr.used_user_addr, usz),
		.translate = vhu_mem_translate, .translate_opaque = &be->mem,
	};
	if (!c->desc || !c->driver_area || !c->device_area) {
		be_err(be, "queue %u: ring addresses outside guest memory", q->index);
		return -EFAULT;
	}
	return 0;
}

int bq_start(struct vhu_bqueue *q)
{
	struct vhu_backend *be = q->be;
	struct vhu_vq_config c;
	int r;

	if (q->started)
		return 0;
	if (!q->num || !q->addr_set) {
		be_err(be, "queue %u: started before its size and addresses were set", q->index);
		return -EINVAL;
	}
	if ((r = map_ring(q, &c)) < 0)
		return r;
	if ((r = vhu_dev_vq_init(&q->vq, &c)) < 0) {
		be_err(be, "queue %u: ring rejected: %s", q->index, vhu_vq_strerror(r));
		return r;
	}
	if ((r = vhu_dev_vq_set_pos(&q->vq, &q->base)) < 0) {
		be_err(be, "queue %u: vring base out of range for the ring", q->index);
		return r;
	}
	q->vq_ready = true;
	q->started = true;
	/* §"Ring states": without VHOST_USER_F_PROTOCOL_FEATURES a started
	 * ring is enabled at once; with it, SET_VRING_ENABLE decides. */
	if (!be_pf_negotiated_base(be))
		q->enabled = true;
	if (be->cfg.ops->queue_start && (r = be->cfg.ops->queue_start(be, q)) < 0) {
		/* The ring is sound but the device cannot serve it: VIRTIO
		 * §2.1.2, the device sets DEVICE_NEEDS_RESET. The request
		 * itself was valid, so it still succeeds. */
		q->vq.broken = r;
		bq_fail(q, "the device could not start it", r);
		return 0;
	}
	q->dev_started = true;
	/* buffers may be waiting already */
	q->pending_ev |= VHU_QUEUE_EV_KICK;
	be_dbg(be, "queue %u started: size %u, %s ring", q->index, q->num,
	       q->vq.packed ? "packed" : "split");
	return 0;
}

void bq_stop(struct vhu_bqueue *q)
{
	struct vhu_backend *be = q->be;

	if (!q->started)
		return;
	if (be->cfg.ops->drain)
		be->cfg.ops->drain(be, q);
	if (q->vq_ready) {
		vhu_dev_vq_flush(&q->vq);
		vhu_dev_vq_get_pos(&q->vq, &q->base);
	}
	if (be->cfg.ops->queue_stop && q->dev_started)
		be->cfg.ops->queue_stop(be, q);
	q->dev_started = false;
	q->started = false;
	q->vq_ready = false;
	q->pending_ev = 0;
	q->aux_fd = -1;
	q->aux_gen++;
}

int bq_refresh(struct vhu_bqueue *q)
{
	struct vhu_vq_config c;
	struct vhu_vq_pos pos;
	int r;

	if (!q->started)
		return 0;
	vhu_dev_vq_flush(&q->vq);
	vhu_dev_vq_get_pos(&q->vq, &pos);
	q->vq_ready = false;
	if ((r = map_ring(q, &c)) < 0 || (r = vhu_dev_vq_init(&q->vq, &c)) < 0 ||
	    (r = vhu_dev_vq_set_pos(&q->vq, &pos)) < 0)
		return r;
	q->vq_ready = true;
	q->pending_ev |= VHU_QUEUE_EV_KICK;
	return 0;
}

void bq_reset(struct vhu_bqueue *q)
{
	bq_stop(q);
	close_fd(&q->kick_fd);
	close_fd(&q->call_fd);
	close_fd(&q->err_fd);
	q->kick_poll = false;
	q->enabled = false;
	atomic_store(&q->inband_call, false);
	atomic_store(&q->inband_err, false);
	q->num = 0;
	q->addr_set = false;
	memset(&q->base, 0, sizeof(q->base));
	atomic_store(&q->inband_kick, false);
}

/* ---- device-facing calls ---------------------------------------------- */

void bq_fail(struct vhu_bqueue *q, const char *why, int err)
{
	struct vhu_backend *be = q->be;

	be_err(be, "queue %u broken: %s (%d); device needs reset", q->index, why, err);
	atomic_fetch_or(&be->status, VHU_STATUS_DEVICE_NEEDS_RESET);
	if (q->err_fd >= 0) {
		efd_signal(q->err_fd);
	} else if (be_pf(be, VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS)) {
		atomic_store(&q->inband_err, true);
		efd_signal(be->inband_fd);
	}
}

int vhu_bqueue_pop(struct vhu_bqueue *q, struct vhu_vq_elem *e, struct iovec *iov, unsigned max)
{
	bool was_broken = q->vq.broken;
	int r = vhu_dev_vq_pop(&q->vq, e, iov, max);

	if (r < 0 && !was_broken && q->vq.broken)
		bq_fail(q, vhu_vq_strerror(r), r);
	else if (r < 0 && !q->vq.broken)
		be_warn(q->be, "queue %u: bad buffer %u: %s", q->index, e->id, vhu_vq_strerror(r));
	return r;
}

int vhu_bqueue_push(struct vhu_bqueue *q, const struct vhu_vq_elem *e, uint32_t len)
{
	return vhu_dev_vq_push(&q->vq, e, len);
}

void vhu_bqueue_notify(struct vhu_bqueue *q)
{
	struct vhu_backend *be = q->be;

	vhu_dev_vq_flush(&q->vq);
	if (!vhu_dev_vq_should_notify(&q->vq))
		return;
	if (q->call_fd >= 0) {
		efd_signal(q->call_fd);
	} else if (be_pf(be, VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS)) {
		/* The control thread sends it: a worker holding its queue lock
		 * must never wait on the front-end (which may itself be waiting
		 * for the control thread, which needs that lock). */
		atomic_store(&q->inband_call, true);
		efd_signal(be->inband_fd);
	}
	/* otherwise the front-end polls the used ring */
}

uint16_t vhu_bqueue_index(const struct vhu_bqueue *q) { return q->index; }
uint16_t vhu_bqueue_size(const struct vhu_bqueue *q) { return (uint16_t)q->num; }
struct vhu_dev_vq *vhu_bqueue_vq(struct vhu_bqueue *q) { return &q->vq; }
void vhu_bqueue_set_aux_fd(struct vhu_bqueue *q, int fd)
{
	q->aux_fd = fd;
	q->aux_gen++;
}
void vhu_bqueue_set_priv(struct vhu_bqueue *q, void *p) { q->priv = p; }
void *vhu_bqueue_priv(struct vhu_bqueue *q) { return q->priv; }
struct vhu_backend *vhu_bqueue_backend(struct vhu_bqueue *q) { return q->be; }
