/* SPDX-License-Identifier: MIT */
/*
 * A queue's doorbell: a 32-bit word in memory the driver side maps as the
 * queue's notification address (vhost-user: a host-notifier page), so a
 * driver notifies by one store, with no exit and no eventfd. A store wakes
 * no one, so while the driver may be storing there the serving thread
 * naps and looks (VHU_DOORBELL_NAP_NS); after VHU_DOORBELL_IDLE_NS without
 * work it asks the transport to withdraw the doorbell and goes back to
 * sleeping on the kick fd, and the next kick that comes by the fd offers it
 * again. The thread keeps watching the kick fd in every state, and checks
 * the ring after every look, so a notification that went either way during
 * a switch is not lost: the ring is the truth, the word only a hint.
 *
 * With VIRTIO_F_NOTIFICATION_DATA the word holds the driver's next avail
 * position (§2.9): checked against the ring, a value that disagrees is
 * counted and ignored (vhu_dev_vq_notification_data), never trusted past
 * what the ring shows.
 */
#include "device_internal.h"

void dq_doorbell_set(struct vhu_queue *q, uint32_t *word, bool live)
{
	if (word)
		__atomic_store_n(word, DQ_DOORBELL_EMPTY, __ATOMIC_RELAXED);
	q->db_quiet_since = dev_mono_ns();
	atomic_store(&q->db_word, word);
	atomic_store(&q->db_state, !word ? DQ_DB_NONE : live ? DQ_DB_LIVE : DQ_DB_OFF);
}

void dq_doorbell_settled(struct vhu_queue *q, bool ok)
{
	int s = atomic_load(&q->db_state);
	if (s == DQ_DB_OFFERING)
		atomic_compare_exchange_strong(&q->db_state, &s, ok ? DQ_DB_LIVE : DQ_DB_REFUSED);
	else if (s == DQ_DB_WITHDRAWING)   /* declined: still live, idle counted afresh */
		atomic_compare_exchange_strong(&q->db_state, &s, ok ? DQ_DB_OFF : DQ_DB_LIVE);
	if (s == DQ_DB_OFFERING && !ok)
		dev_warn(q->dev, "queue %u: the driver side refused its doorbell; kicks by the eventfd", q->index);
	if (s == DQ_DB_WITHDRAWING && !ok)
		q->db_quiet_since = dev_mono_ns();
	dq_wake(q, false);   /* the serving thread sleeps or looks by the new state */
}

bool dq_doorbell_take(struct vhu_queue *q)
{
	uint32_t *word = atomic_load(&q->db_word);
	/* a plain load first: the look is in every polling loop, and an
	 * exchange (a locked instruction, the line taken for writing) on
	 * every turn cost the polled ring a third of its rate */
	if (!word || __atomic_load_n(word, __ATOMIC_RELAXED) == DQ_DOORBELL_EMPTY)
		return false;
	uint32_t v = __atomic_exchange_n(word, DQ_DOORBELL_EMPTY, __ATOMIC_ACQUIRE);
	if (v == DQ_DOORBELL_EMPTY)
		return false;
	atomic_fetch_add_explicit(&q->db_kicks, 1, memory_order_relaxed);
	if (q->vq.f.notification_data && dq_started(q) && q->num &&
	    vhu_dev_vq_notification_data(&q->vq, v) < 0)
		atomic_fetch_add_explicit(&q->db_bad_data, 1, memory_order_relaxed);
	return true;
}

bool dq_doorbell_watched(const struct vhu_queue *q)
{
	int s = atomic_load(&q->db_state);
	return s == DQ_DB_OFFERING || s == DQ_DB_LIVE || s == DQ_DB_WITHDRAWING;
}

void dq_doorbell_busy(struct vhu_queue *q)
{
	int s = DQ_DB_OFF;
	q->db_quiet_since = dev_mono_ns();
	if (!q->dev->transport.doorbell || !dq_active(q) ||
	    !atomic_compare_exchange_strong(&q->db_state, &s, DQ_DB_OFFERING))
		return;
	atomic_fetch_add_explicit(&q->db_offers, 1, memory_order_relaxed);
	q->dev->transport.doorbell(q->dev->transport.opaque, q, true);
}

void dq_doorbell_idle_check(struct vhu_queue *q, bool worked)
{
	uint64_t now = dev_mono_ns();
	if (worked || atomic_load(&q->db_state) != DQ_DB_LIVE) {
		if (worked)
			q->db_quiet_since = now;
		return;
	}
	if (now - q->db_quiet_since < VHU_DOORBELL_IDLE_NS)
		return;
	int s = DQ_DB_LIVE;
	if (atomic_compare_exchange_strong(&q->db_state, &s, DQ_DB_WITHDRAWING))
		q->dev->transport.doorbell(q->dev->transport.opaque, q, false);
}
