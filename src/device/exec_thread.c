/* SPDX-License-Identifier: MIT */
/* A worker thread per queue: sleeps on the kick and the device's fd. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "../common/cpu_relax.h"
#include "device_internal.h"

static void efd_drain(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

/*
 * Adaptive polling (as QEMU's poll-max-ns, SPDK's pollers): with the
 * driver's kicks turned off, watch the ring and the device for poll_ns
 * before going to sleep; new work found this way costs neither side a
 * system call. Before sleeping, kicks go back on and the ring is checked
 * once more (enable, barrier, recheck). True if there is work to do.
 */
static bool busy_poll(struct vhu_queue *q)
{
	struct vhu_device *dev = q->dev;
	uint64_t end = dev_mono_ns() + dev->cfg.poll_ns;
	bool work = false;

	vhu_dev_vq_disable_notify(&q->vq);
	do {
		/* (kicks are off, so a store there is an old one; taken to
		 * keep the word's account) */
		bool rung = dq_doorbell_take(q);
		if (dq_ring_has_work(q) || rung) {
			q->pending_ev |= VHU_QUEUE_EV_KICK;
			work = true;
		}
		if (dev->cfg.ops->poll && dev->cfg.ops->poll(dev, q)) {
			q->pending_ev |= VHU_QUEUE_EV_AUX;
			work = true;
		}
		if (work || atomic_load(&q->pause_req) || atomic_load(&q->quit))
			break;
		vhu_cpu_relax();
	} while (dev_mono_ns() < end);
	/* Work found: kicks stay off while it is served and the polling goes
	 * on after it. Turned on here, the driver whose buffers we just saw
	 * would read them as on and kick for buffers we are about to take:
	 * every batch cost a kick under polling (found by test_admin_member,
	 * whose kicks are commands). */
	if (work && !atomic_load(&q->pause_req) && !atomic_load(&q->quit))
		return true;
	if (vhu_dev_vq_enable_notify(&q->vq) && !atomic_load(&q->iotlb_wait) && !work) {
		q->pending_ev |= VHU_QUEUE_EV_KICK;
		work = true;
	}
	return work && !atomic_load(&q->pause_req);
}

/* Sleep until something happens to the queue; what did goes to pending_ev. */
static void wait_for_work(struct vhu_queue *q, bool active)
{
	struct pollfd p[3];
	int n = 0, ik = -1, ia = -1, kick = q->kick_fd;

	p[n++] = (struct pollfd){ .fd = q->wake_fd, .events = POLLIN };
	if (active && q->kick_fd >= 0) {
		ik = n;
		p[n++] = (struct pollfd){ .fd = q->kick_fd, .events = POLLIN };
	}
	if (active && q->aux_fd >= 0) {
		ia = n;
		p[n++] = (struct pollfd){ .fd = q->aux_fd, .events = POLLIN };
	}
	/* polling mode (no kick fd): look at the ring every ms */
	uint64_t timeout_ns = active && q->kick_fd < 0 ? 1000000ull : UINT64_MAX;
	if (atomic_load(&q->iotlb_wait))	/* to fail a chain whose mapping never comes */
		timeout_ns = VHU_IOTLB_WAIT_POLL_MS * 1000000ull;
	/* the driver may store into the doorbell: nothing would wake us */
	bool doorbell = active && dq_doorbell_watched(q);
	if (doorbell) {
		uint64_t nap = VHU_DOORBELL_NAP_NS << (q->db_empty_naps < 4 ? q->db_empty_naps : 4);   /* 20 us << 4: the 320 us cap */
		timeout_ns = atomic_load(&q->db_state) == DQ_DB_WITHDRAWING ? 1000000ull
			     : nap < VHU_DOORBELL_NAP_MAX_NS ? nap : VHU_DOORBELL_NAP_MAX_NS;
		/* a nap is a timer: with the default 50 us of slack a 20 us nap
		 * lasted 70 us, every kick by the doorbell waited that long */
		static _Thread_local bool slack_set;
		if (!slack_set) {
			(void)prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);   /* 1 us; best effort */
			slack_set = true;
		}
	}
	struct timespec ts = { (time_t)(timeout_ns / 1000000000ull), (long)(timeout_ns % 1000000000ull) };
	pthread_mutex_unlock(&q->lock);
	int r = ppoll(p, (nfds_t)n, timeout_ns == UINT64_MAX ? NULL : &ts, NULL);
	/* let the control thread in first if it asked */
	while (atomic_load(&q->pause_req) && !atomic_load(&q->quit)) {
		struct timespec nap = { 0, 50000 };
		nanosleep(&nap, NULL);
	}
	pthread_mutex_lock(&q->lock);
	if (r < 0)
		return;
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
		/* busy, and kicking by the fd: offer the doorbell (if withdrawn) */
		if (atomic_load(&q->db_state) == DQ_DB_OFF)
			dq_doorbell_busy(q);
	}
	if (doorbell) {
		if (dq_doorbell_take(q) || dq_ring_has_work(q) || q->pending_ev) {
			q->pending_ev |= VHU_QUEUE_EV_KICK;
			q->db_empty_naps = 0;
		} else {
			q->db_empty_naps++;
		}
	}
	if (ia >= 0 && (p[ia].revents & POLLIN))
		q->pending_ev |= VHU_QUEUE_EV_AUX;
	if (active && q->kick_fd < 0)
		q->pending_ev |= VHU_QUEUE_EV_KICK;
}

static void *worker(void *arg)
{
	struct vhu_queue *q = arg;

	pthread_mutex_lock(&q->lock);
	while (!atomic_load(&q->quit)) {
		bool served = dq_serve(q, 0);
		if (atomic_load(&q->db_state) != DQ_DB_NONE)
			dq_doorbell_idle_check(q, served);
		if (served && q->dev->cfg.poll_ns && busy_poll(q))
			continue;
		wait_for_work(q, dq_active(q));
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int exec_thread_start(struct vhu_queue *q)
{
	q->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->wake_fd < 0)
		return -errno;
	int r = pthread_create(&q->thread, NULL, worker, q);
	if (r)
		return -r;
	q->thread_up = true;
	return 0;
}

void exec_thread_stop(struct vhu_queue *q)
{
	if (!q->thread_up)
		return;
	atomic_store(&q->quit, true);
	dev_efd_signal(q->wake_fd);
	pthread_join(q->thread, NULL);
	q->thread_up = false;
}
