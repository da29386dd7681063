/* SPDX-License-Identifier: MIT */
/*
 * Poll groups: a fixed set of threads serving the queues of many devices.
 * Each queue belongs to one thread (the least loaded when the device is
 * made). A thread goes round its queues while any has work, keeps going
 * round with kicks turned off for poll_ns after the last work (new buffers
 * are then found without a system call on either side), and otherwise turns
 * kicks back on, checks once more, and sleeps on its epoll set: the kick and
 * device fds of its queues (edge-triggered: an eventfd write is an event, so
 * nothing has to be read back) and its own wake fd.
 *
 * Locks: the thread holds its members lock while it goes round, and a
 * queue's lock (trylock) while it serves that queue. The transport pauses a
 * queue by asking (pause_req) and taking the queue's lock; the thread skips
 * a queue someone asked for, and dq_resume wakes it to look again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../common/cpu_relax.h"
#include "device_internal.h"

struct pg_thread {
	struct vhu_poll_group *pg;
	pthread_t tid;
	bool up;
	int epfd, wake_fd;
	atomic_bool quit;
	pthread_mutex_t lock;       /* members */
	struct vhu_queue **members; /* a removed queue leaves a hole (NULL): slots never move */
	unsigned cap;
	unsigned count;             /* under the group's lock: for the choice of thread */
	bool polled;                /* a member has no kick fd: look every ms */
};

struct vhu_poll_group {
	struct vhu_poll_group_config cfg;
	unsigned n;
	struct pg_thread *t;
	pthread_mutex_t lock;       /* assignment, ids */
	unsigned next_id;
};

/* epoll data: slot, queue id (a slot is reused by another queue), which fd */
#define EV_WAKE UINT64_MAX
static uint64_t ev_data(const struct vhu_queue *q, bool aux)
{
	return (uint64_t)q->pg_slot << 32 | (uint64_t)q->pg_id << 1 | aux;
}

void pg_kick(struct vhu_queue *q)
{
	dev_efd_signal(q->pt->wake_fd);
}

void pg_sync(struct vhu_queue *q)
{
	exec_watch_queue(q, q->pt->epfd, ev_data(q, false), ev_data(q, true), EPOLLIN | EPOLLET);
}

/* What the queue has, seen without a system call: a kick the epoll set
 * saw, an in-band kick, and while busy-polling the ring and the device. */
static unsigned collect(struct vhu_queue *q)
{
	struct vhu_device *dev = q->dev;
	unsigned ev = atomic_exchange(&q->pg_ready, 0);

	if (atomic_exchange(&q->inband_kick, false))
		ev |= VHU_QUEUE_EV_KICK;
	if (!dq_active(q))
		return ev;
	if (dq_iotlb_expired(q))
		ev |= VHU_QUEUE_EV_KICK;
	if ((q->notify_off || q->kick_fd < 0) && dq_ring_has_work(q))
		ev |= VHU_QUEUE_EV_KICK;
	if (q->notify_off && dev->cfg.ops->poll && dev->cfg.ops->poll(dev, q))
		ev |= VHU_QUEUE_EV_AUX;
	return ev;
}

/* Serve one queue if nobody else wants it; true if its handler ran. */
static bool serve_one(struct pg_thread *pt, struct vhu_queue *q)
{
	if (atomic_load(&q->pause_req) || pthread_mutex_trylock(&q->lock))
		return false;	/* dq_resume wakes us */
	bool did = dq_serve(q, collect(q));
	if (did && pt->pg->cfg.poll_ns && dq_active(q) && !q->notify_off) {
		vhu_dev_vq_disable_notify(&q->vq);
		q->notify_off = true;
	}
	pg_sync(q);	/* the handler may have set its aux fd, or broken the ring */
	if (dq_active(q) && q->kick_fd < 0)
		pt->polled = true;
	pthread_mutex_unlock(&q->lock);
	return did;
}

static bool serve_round(struct pg_thread *pt)
{
	bool did = false;

	pthread_mutex_lock(&pt->lock);
	pt->polled = false;
	for (unsigned i = 0; i < pt->cap; i++)
		if (pt->members[i])
			did |= serve_one(pt, pt->members[i]);
	pthread_mutex_unlock(&pt->lock);
	return did;
}

/* Kicks back on for every queue that had them off: enable, barrier,
 * recheck (§2.7.14). False if a ring got work meanwhile. */
static bool prepare_sleep(struct pg_thread *pt)
{
	bool idle = true;

	pthread_mutex_lock(&pt->lock);
	for (unsigned i = 0; i < pt->cap; i++) {
		struct vhu_queue *q = pt->members[i];
		if (!q || !q->notify_off || atomic_load(&q->pause_req) || pthread_mutex_trylock(&q->lock))
			continue;
		if (q->notify_off && dq_active(q) && vhu_dev_vq_enable_notify(&q->vq) && !atomic_load(&q->iotlb_wait)) {
			atomic_fetch_or(&q->pg_ready, VHU_QUEUE_EV_KICK);
			idle = false;
		}
		q->notify_off = false;
		pthread_mutex_unlock(&q->lock);
	}
	pthread_mutex_unlock(&pt->lock);
	return idle;
}

static void take_events(struct pg_thread *pt, const struct epoll_event *evs, int n)
{
	pthread_mutex_lock(&pt->lock);
	for (int i = 0; i < n; i++) {
		uint64_t d = evs[i].data.u64;
		if (d == EV_WAKE) {
			uint64_t v;
			(void)!read(pt->wake_fd, &v, sizeof(v));
			continue;
		}
		unsigned slot = (unsigned)(d >> 32), id = (unsigned)(d >> 1) & 0x7fffffffu;
		struct vhu_queue *q = slot < pt->cap ? pt->members[slot] : NULL;
		if (q && q->pg_id == id)
			atomic_fetch_or(&q->pg_ready, (d & 1) ? VHU_QUEUE_EV_AUX : VHU_QUEUE_EV_KICK);
	}
	pthread_mutex_unlock(&pt->lock);
}

static void *pg_main(void *arg)
{
	struct pg_thread *pt = arg;
	uint32_t poll_ns = pt->pg->cfg.poll_ns;
	uint64_t last_work = 0;

	while (!atomic_load(&pt->quit)) {
		if (serve_round(pt)) {
			if (poll_ns)
				last_work = dev_mono_ns();
			continue;
		}
		if (poll_ns && dev_mono_ns() - last_work < poll_ns) {
			vhu_cpu_relax();
			continue;
		}
		if (!prepare_sleep(pt))
			continue;
		struct epoll_event evs[64];
		int n = epoll_wait(pt->epfd, evs, 64,
				   pt->polled ? 1 : dq_any_iotlb_wait() ? VHU_IOTLB_WAIT_POLL_MS : -1);
		if (n > 0)
			take_events(pt, evs, n);
	}
	return NULL;
}

static int thread_init(struct vhu_poll_group *pg, struct pg_thread *pt)
{
	pt->pg = pg;
	pthread_mutex_init(&pt->lock, NULL);
	pt->epfd = epoll_create1(EPOLL_CLOEXEC);
	pt->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pt->epfd < 0 || pt->wake_fd < 0)
		return -errno;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_WAKE };
	if (epoll_ctl(pt->epfd, EPOLL_CTL_ADD, pt->wake_fd, &ev) < 0)
		return -errno;
	int r = pthread_create(&pt->tid, NULL, pg_main, pt);
	if (r)
		return -r;
	pt->up = true;
	return 0;
}

struct vhu_poll_group *vhu_poll_group_new(const struct vhu_poll_group_config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = cfg->threads ? cfg->threads : cpus > 0 ? (unsigned)cpus : 1;
	struct vhu_poll_group *pg;

	if (n > 1024) {
		errno = EINVAL;
		return NULL;
	}
	pg = calloc(1, sizeof(*pg));
	if (!pg)
		return NULL;
	pg->cfg = *cfg;
	pthread_mutex_init(&pg->lock, NULL);
	pg->t = calloc(n, sizeof(*pg->t));
	if (!pg->t)
		goto fail;
	for (unsigned i = 0; i < n; i++) {
		pg->t[i].epfd = pg->t[i].wake_fd = -1;
		pg->n = i + 1;
		int r = thread_init(pg, &pg->t[i]);
		if (r < 0) {
			errno = -r;
			goto fail;
		}
	}
	return pg;
fail:;
	int e = errno;
	vhu_poll_group_free(pg);
	errno = e;
	return NULL;
}

void vhu_poll_group_free(struct vhu_poll_group *pg)
{
	if (!pg)
		return;
	for (unsigned i = 0; i < pg->n; i++) {
		struct pg_thread *pt = &pg->t[i];
		if (pt->up) {
			atomic_store(&pt->quit, true);
			dev_efd_signal(pt->wake_fd);
			pthread_join(pt->tid, NULL);
		}
		if (pt->epfd >= 0)
			close(pt->epfd);
		if (pt->wake_fd >= 0)
			close(pt->wake_fd);
		free(pt->members);
		pthread_mutex_destroy(&pt->lock);
	}
	free(pg->t);
	pthread_mutex_destroy(&pg->lock);
	free(pg);
}

unsigned vhu_poll_group_threads(const struct vhu_poll_group *pg) { return pg->n; }

int pg_add(struct vhu_poll_group *pg, struct vhu_queue *q)
{
	pthread_mutex_lock(&pg->lock);
	struct pg_thread *pt = &pg->t[0];
	for (unsigned i = 1; i < pg->n; i++)
		if (pg->t[i].count < pt->count)
			pt = &pg->t[i];
	unsigned id = ++pg->next_id & 0x7fffffffu;
	pt->count++;
	pthread_mutex_unlock(&pg->lock);

	pthread_mutex_lock(&pt->lock);
	unsigned slot = 0;
	while (slot < pt->cap && pt->members[slot])
		slot++;
	if (slot == pt->cap) {
		unsigned cap = pt->cap ? pt->cap * 2 : 16;
		struct vhu_queue **m = realloc(pt->members, cap * sizeof(*m));
		if (!m) {
			pthread_mutex_unlock(&pt->lock);
			pthread_mutex_lock(&pg->lock);
			pt->count--;
			pthread_mutex_unlock(&pg->lock);
			return -ENOMEM;
		}
		memset(m + pt->cap, 0, (cap - pt->cap) * sizeof(*m));
		pt->members = m;
		pt->cap = cap;
	}
	q->pt = pt;
	q->pg_slot = slot;
	q->pg_id = id;
	pt->members[slot] = q;
	pthread_mutex_unlock(&pt->lock);
	return 0;
}

/* The queue is stopped; after this its thread never looks at it again. */
void pg_remove(struct vhu_queue *q)
{
	struct pg_thread *pt = q->pt;

	if (!pt)
		return;
	pthread_mutex_lock(&pt->lock);
	pt->members[q->pg_slot] = NULL;
	pthread_mutex_unlock(&pt->lock);
	pthread_mutex_lock(&pt->pg->lock);
	pt->count--;
	pthread_mutex_unlock(&pt->pg->lock);
	/* out of the set; an event for it already taken finds the slot empty */
	exec_rewatch(q->dev, pt->epfd, &q->watch_kick, &q->watch_kick_gen, -1, 0, 0, 0);
	exec_rewatch(q->dev, pt->epfd, &q->watch_aux, &q->watch_aux_gen, -1, 0, 0, 0);
	q->pt = NULL;
}
