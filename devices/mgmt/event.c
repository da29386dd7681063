/* SPDX-License-Identifier: MIT */
/*
 * The event queue (docs/admin-transport.md section 6): a member's
 * interrupt is remembered as one bit (per queue, config change, needs
 * reset), so a second one for the same cause while the first waits is no
 * second event and the memory it takes is bounded; the member goes on a
 * list once, and the event queue's thread posts what the list holds into
 * the driver's buffers as long as it has some.
 */
#include <string.h>
#include <unistd.h>

#include "mgmt_internal.h"

static unsigned event_bit(uint16_t type, uint16_t queue)
{
	return type == VHU_ADMIN_EVENT_USED ? queue : type == VHU_ADMIN_EVENT_CONFIG ? EV_CONFIG_BIT : EV_RESET_BIT;
}

/* From a member's serving thread (its queue lock held): never waits but
 * for the list's lock, which is held only to link or post. */
void mgmt_event_raise(void *member, uint64_t id, uint16_t type, uint16_t queue)
{
	struct mgmt_member *mm = member;
	struct mgmt *mg = mm->mg;
	uint64_t bit = 1ull << event_bit(type, queue), one = 1;
	(void)id;
	uint64_t before = atomic_fetch_or(&mm->pending, bit);
	if (before & bit)
		return;   /* remembered already */
	if (!before) {
		pthread_mutex_lock(&mg->ev_lock);
		if (!mm->queued) {
			mm->queued = true;
			mm->ev_next = NULL;
			if (mg->ev_tail)
				mg->ev_tail->ev_next = mm;
			else
				mg->ev_head = mm;
			mg->ev_tail = mm;
		}
		pthread_mutex_unlock(&mg->ev_lock);
	}
	(void)!write(mg->ev_fd, &one, 8);
}

/* A member going away, after its last event was raised. */
void mgmt_event_forget(struct mgmt *mg, struct mgmt_member *mm)
{
	pthread_mutex_lock(&mg->ev_lock);
	if (mm->queued) {
		struct mgmt_member **p = &mg->ev_head, *prev = NULL;
		while (*p != mm) {
			prev = *p;
			p = &(*p)->ev_next;
		}
		*p = mm->ev_next;
		if (mg->ev_tail == mm)
			mg->ev_tail = prev;
		mm->queued = false;
	}
	pthread_mutex_unlock(&mg->ev_lock);
}

static bool put_event(const struct iovec *iov, unsigned n, const uint8_t *ev)
{
	size_t room = 0;
	for (unsigned i = 0; i < n; i++)
		room += iov[i].iov_len;
	if (room < sizeof(struct vhu_admin_event))
		return false;
	size_t done = 0;
	for (unsigned i = 0; i < n && done < 16; i++) {
		size_t k = iov[i].iov_len < 16 - done ? iov[i].iov_len : 16 - done;
		memcpy(iov[i].iov_base, ev + done, k);
		done += k;
	}
	return true;
}

/* Post one remembered event into the next buffer: 1 posted, 0 no buffer
 * (the event stays remembered), -1 the queue broke. */
static int post_one(struct vhu_queue *q, uint64_t id, unsigned bit)
{
	for (;;) {
		struct vhu_vq_elem e;
		struct iovec iov[8];
		int r = vhu_queue_pop(q, &e, iov, 8);
		if (r == 0)
			return 0;
		if (r < 0) {
			if (vhu_dev_vq_broken(vhu_queue_vq(q)))
				return -1;
			vhu_queue_push(q, &e, 0);   /* a buffer the device cannot use */
			continue;
		}
		uint8_t ev[16] = { 0 };
		vhu_admin_put_le(ev, id, 8);
		vhu_admin_put_le(ev + 8, bit == EV_CONFIG_BIT ? VHU_ADMIN_EVENT_CONFIG
			       : bit == EV_RESET_BIT ? VHU_ADMIN_EVENT_NEEDS_RESET : VHU_ADMIN_EVENT_USED, 2);
		vhu_admin_put_le(ev + 10, bit < EV_CONFIG_BIT ? bit : 0, 2);
		if (e.out_num || !put_event(iov, e.in_num, ev)) {
			vhu_queue_push(q, &e, 0);   /* not an event buffer: returned unused */
			continue;
		}
		vhu_queue_push(q, &e, sizeof(ev));
		return 1;
	}
}

/* The event queue's handler: everything remembered, while buffers last. */
void mgmt_event_post(struct mgmt *mg, struct vhu_queue *q)
{
	uint64_t v;
	(void)!read(mg->ev_fd, &v, 8);
	pthread_mutex_lock(&mg->ev_lock);
	while (mg->ev_head) {
		struct mgmt_member *mm = mg->ev_head;
		uint64_t bits = atomic_exchange(&mm->pending, 0);
		while (bits) {
			unsigned bit = (unsigned)__builtin_ctzll(bits);
			int r = post_one(q, mm->id, bit);
			if (r <= 0) {
				atomic_fetch_or(&mm->pending, bits);   /* still remembered */
				goto out;
			}
			bits &= bits - 1;
		}
		/* raised again since the exchange: that raiser links it after us */
		mg->ev_head = mm->ev_next;
		if (!mg->ev_head)
			mg->ev_tail = NULL;
		mm->queued = false;
	}
out:
	pthread_mutex_unlock(&mg->ev_lock);
	vhu_queue_notify(q);
}
