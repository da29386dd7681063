/* SPDX-License-Identifier: MIT */
/*
 * Application-driven queues: vhu starts no thread. The device's epoll set
 * holds each queue's wake fd and private dups of its kick and aux fds; the
 * application calls vhu_device_process() when the set is readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "device_internal.h"

static int watch(int epfd, int fd, int op, uint64_t data, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	return epoll_ctl(epfd, op, fd, &ev) < 0 ? -errno : 0;
}

/*
 * Make a dup of `want` (-1: nothing), generation `gen`, the one in the set.
 * Never the original: the front-end or the device may keep its file open
 * after we close our fd, which would leave the registration behind (epoll
 * forgets an fd only when its file closes). A new fd may get the number of
 * the one just closed, hence the generation.
 */
void exec_rewatch(struct vhu_device *dev, int epfd, int *watched, unsigned *watched_gen, int want,
		  unsigned gen, uint64_t data, uint32_t events)
{
	if ((*watched >= 0) == (want >= 0) && (want < 0 || *watched_gen == gen))
		return;
	if (*watched >= 0) {
		watch(epfd, *watched, EPOLL_CTL_DEL, 0, 0);
		close(*watched);
		*watched = -1;
	}
	*watched_gen = gen;
	if (want >= 0 && (*watched = fcntl(want, F_DUPFD_CLOEXEC, 0)) >= 0 &&
	    watch(epfd, *watched, EPOLL_CTL_ADD, data, events) < 0) {
		dev_err(dev, "cannot watch fd %d: %s", want, strerror(errno));
		close(*watched);
		*watched = -1;
	}
}

void exec_watch_queue(struct vhu_queue *q, int epfd, uint64_t kick_data, uint64_t aux_data, uint32_t events)
{
	bool active = dq_active(q);

	exec_rewatch(q->dev, epfd, &q->watch_kick, &q->watch_kick_gen, active && q->kick_fd >= 0 ? q->kick_fd : -1,
		     q->kick_gen, kick_data, events);
	exec_rewatch(q->dev, epfd, &q->watch_aux, &q->watch_aux_gen, active ? q->aux_fd : -1, q->aux_gen, aux_data,
		     events);
}

int exec_app_init(struct vhu_device *dev)
{
	dev->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (dev->epoll_fd < 0)
		return -errno;
	for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
		int r = watch(dev->epoll_fd, dev->q[i].wake_fd, EPOLL_CTL_ADD, i, EPOLLIN);
		if (r < 0)
			return r;
	}
	return 0;
}

void exec_app_fini(struct vhu_device *dev)
{
	if (dev->epoll_fd >= 0)
		close(dev->epoll_fd);
	dev->epoll_fd = -1;
}

int vhu_device_event_fd(const struct vhu_device *dev)
{
	return dev->epoll_fd >= 0 ? dev->epoll_fd : -EINVAL;
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/*
 * One pass of what a worker thread does, without sleeping. The kick fd is
 * non-blocking (dq_set_kick_fd), so reading it says whether the driver
 * kicked; the device's aux fd is only looked at, as the worker's poll does,
 * and left for the device to drain. A queue without a kick fd is served on
 * every call: the application polls it at the rate it calls.
 */
static void service(struct vhu_queue *q)
{
	unsigned ev = 0;
	uint64_t v;

	pthread_mutex_lock(&q->lock);
	(void)!read(q->wake_fd, &v, sizeof(v));
	if (atomic_exchange(&q->inband_kick, false))
		ev |= VHU_QUEUE_EV_KICK;
	if (dq_active(q)) {
		if (q->kick_fd < 0 || read(q->kick_fd, &v, sizeof(v)) == sizeof(v))
			ev |= VHU_QUEUE_EV_KICK;
		if (q->aux_fd >= 0 && readable(q->aux_fd))
			ev |= VHU_QUEUE_EV_AUX;
	}
	dq_serve(q, ev);
	/* the handler may have set its aux fd, or broken the ring */
	dq_sync_watch(q);
	pthread_mutex_unlock(&q->lock);
}

void vhu_device_process(struct vhu_device *dev)
{
	if (dev->epoll_fd < 0)
		return;
	for (unsigned i = 0; i < dev->cfg.num_queues; i++)
		service(&dev->q[i]);
}
