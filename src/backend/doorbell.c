/* SPDX-License-Identifier: MIT */
/*
 * Doorbells over vhost-user (VHOST_USER_PROTOCOL_F_HOST_NOTIFIER): a page
 * of ours per queue (a sealed memfd of the host page size, as QEMU
 * requires), handed to the front-end with BACKEND_VRING_HOST_NOTIFIER_MSG;
 * QEMU maps it as the queue's notification area, so the guest's notify
 * store lands in our memory. The device core decides when (doorbell.c
 * there: offered when a kick comes by the fd, withdrawn after an idle
 * spell); the control thread sends, since a serving thread must never wait
 * on the front-end.
 *
 * Every message asks for a reply (REPLY_ACK is required): an offer is live
 * only once the front-end said 0 (QEMU refuses a device without
 * page-per-vq, or a legacy one), a withdrawal is done only once answered.
 * The replies are read asynchronously by the control thread, in the order
 * the messages went (the front-end serves its channel in order): waiting
 * for one could deadlock against a front-end that is itself waiting for our
 * reply to one of its requests. The withdrawal is the spec's "no file
 * descriptor" form (bit 8 of the index); QEMU removes the notifier and then
 * rejects the missing page (its reply is then non-zero): any answer to a
 * withdrawal completes it.
 *
 * QEMU 7.2 aborts (vhost_user_host_notifier_remove: "Assertion
 * `!n->unmap_addr' failed") when a notifier is removed while the unmapping
 * of the one removed before is still waiting for its RCU grace period: a
 * withdrawal, an offer, and a withdrawal again within that period kill the
 * VMM (seen with a guest whose rings restart during boot). So withdrawals
 * are at least VHU_DOORBELL_REMOVAL_GAP_NS apart: an idle withdrawal sooner
 * is declined (the doorbell stays live), and a ring that stops sooner keeps
 * its page mapped, and starts again with it live.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend_internal.h"

enum { DB_WANT_NONE, DB_WANT_OFFER, DB_WANT_WITHDRAW };

#define VHU_DOORBELL_REMOVAL_GAP_NS 1000000000ull

bool be_doorbells(const struct vhu_backend *be)
{
	return be->cfg.protocol_features >> VHU_USER_PROTOCOL_F_HOST_NOTIFIER & 1;
}

static bool negotiated(const struct vhu_backend *be)
{
	return be_pf(be, VHU_USER_PROTOCOL_F_HOST_NOTIFIER) && be_pf(be, VHU_USER_PROTOCOL_F_BACKEND_REQ) &&
	       be_pf(be, VHU_USER_PROTOCOL_F_REPLY_ACK);
}

/* The queue's page, made the first time (kept for the session). */
static int page_of(struct vhu_backend *be, struct be_vring *vr, unsigned index)
{
	if (vr->db_page)
		return 0;
	long page = sysconf(_SC_PAGESIZE);
	int fd = memfd_create("vhu-doorbell", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, page) < 0) {
		int e = -errno;
		if (fd >= 0)
			close(fd);
		be_err(be, "queue %u: no doorbell page: %s", index, strerror(-e));
		return e;
	}
	/* the front-end cannot shrink it under our mapping */
	(void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int e = -errno;
		close(fd);
		return e;
	}
	vr->db_fd = fd;
	vr->db_page = p;
	vr->db_size = (size_t)page;
	return 0;
}

/* The ring started (queue paused): it gets its doorbell, withdrawn until
 * it is busy. */
void be_doorbell_ring_started(struct vhu_backend *be, struct vhu_queue *q)
{
	unsigned i = vhu_queue_index(q);
	if (!be_doorbells(be) || !negotiated(be) || be->vr[i].db_refused || page_of(be, &be->vr[i], i) < 0)
		return;
	dq_doorbell_set(q, be->vr[i].db_page, be->vr[i].db_peer_maps);
}

static bool removal_too_soon(uint64_t last)
{
	return last && dev_mono_ns() - last < VHU_DOORBELL_REMOVAL_GAP_NS;
}

/* The serving thread's wish; the control thread sends it. */
void be_doorbell_wish(void *opaque, struct vhu_queue *q, bool offer)
{
	struct vhu_backend *be = opaque;
	struct be_vring *vr = &be->vr[vhu_queue_index(q)];
	if (!offer && removal_too_soon(atomic_load(&vr->db_removed_ns_seen))) {
		dq_doorbell_settled(q, false);   /* declined: stays live a while longer */
		return;
	}
	atomic_store(&vr->db_want, offer ? DB_WANT_OFFER : DB_WANT_WITHDRAW);
	uint64_t one = 1;
	(void)!write(be->inband_fd, &one, sizeof(one));
}

static void send_area(struct vhu_backend *be, unsigned index, bool offer)
{
	struct be_vring *vr = &be->vr[index];
	struct vhu_user_msg m;
	memset(&m, 0, sizeof(m));
	m.hdr = (struct vhu_user_hdr){ VHU_USER_BACKEND_VRING_HOST_NOTIFIER_MSG,
				       VHU_USER_VERSION | VHU_USER_NEED_REPLY_MASK, sizeof(m.payload.area) };
	m.payload.area = (struct vhu_user_vring_area){ index | (offer ? 0 : VHU_USER_VRING_NOFD_MASK),
						       offer ? vr->db_size : 0, 0 };
	if (offer) {
		m.nfds = 1;
		m.fds[0] = vr->db_fd;
	}
	int r = -ENOTCONN;
	/* from here on the front-end may map it, or stops */
	vr->db_peer_maps = offer;
	if (!offer) {
		vr->db_removed_ns = dev_mono_ns();
		atomic_store(&vr->db_removed_ns_seen, vr->db_removed_ns);
	}
	pthread_mutex_lock(&be->backend_lock);
	if (be->backend_fd >= 0 && be->db_pending < BE_DB_PENDING_MAX && (r = vhu_user_send(be->backend_fd, &m)) == 0)
		be->db_fifo[(be->db_head + be->db_pending++) % BE_DB_PENDING_MAX] = (struct be_db_sent){ (uint16_t)index, offer };
	pthread_mutex_unlock(&be->backend_lock);
	be_dbg(be, "queue %u: doorbell %s", index, offer ? "offered" : "withdrawn");
	if (r < 0) {
		/* no channel: the session is ending (the front-end unmaps its own) */
		if (be->backend_fd >= 0 || offer)
			be_warn(be, "queue %u: doorbell %s not sent: %s", index, offer ? "offer" : "withdrawal",
				r == -ENOTCONN ? "no channel or too many waiting" : strerror(-r));
		dq_doorbell_settled(&be->dev->q[index], false);
		if (offer)
			vr->db_peer_maps = false;
	}
}

void be_doorbell_send_wishes(struct vhu_backend *be)
{
	for (unsigned i = 0; i < be->nq; i++) {
		int w = atomic_exchange(&be->vr[i].db_want, DB_WANT_NONE);
		/* a wish for a doorbell the queue no longer has (stopped) is void */
		if (w != DB_WANT_NONE && be->vr[i].db_page && atomic_load(&be->dev->q[i].db_word))
			send_area(be, i, w == DB_WANT_OFFER);
	}
}

/* The ring stops (queue paused): the front-end stops using its page. */
void be_doorbell_ring_stopped(struct vhu_backend *be, struct vhu_queue *q)
{
	struct be_vring *vr = &be->vr[vhu_queue_index(q)];
	int s = atomic_load(&q->db_state);
	dq_doorbell_set(q, NULL, false);
	atomic_store(&vr->db_want, DB_WANT_NONE);
	if ((s == DQ_DB_OFFERING || s == DQ_DB_LIVE || s == DQ_DB_WITHDRAWING) && !removal_too_soon(vr->db_removed_ns))
		send_area(be, vhu_queue_index(q), false);
}

bool be_doorbell_take_reply(struct vhu_backend *be, const struct vhu_user_msg *r)
{
	if (r->hdr.request != VHU_USER_BACKEND_VRING_HOST_NOTIFIER_MSG || !be->db_pending)
		return false;
	struct be_db_sent sent = be->db_fifo[be->db_head];
	be->db_head = (be->db_head + 1) % BE_DB_PENDING_MAX;
	be->db_pending--;
	bool ok = (r->hdr.flags & VHU_USER_REPLY_MASK) && r->hdr.size == 8 && r->payload.u64 == 0;
	if (sent.offer)
		be_info(be, "queue %u: doorbell %s", sent.index, ok ? "live" : "refused by the front-end");
	if (sent.offer && !ok) {
		be->vr[sent.index].db_refused = true;   /* not offered again this session */
		be->vr[sent.index].db_peer_maps = false;
	}
	dq_doorbell_settled(&be->dev->q[sent.index], sent.offer ? ok : true);   /* any answer ends a withdrawal */
	return true;
}

/* The back-end channel is readable: an answer to one of our messages. */
void be_backend_channel_readable(struct vhu_backend *be)
{
	struct vhu_user_msg r;
	pthread_mutex_lock(&be->backend_lock);
	int rc = be->backend_fd >= 0 ? vhu_user_recv(be->backend_fd, &r, 1000) : -ENOTCONN;
	if (rc == 0) {
		vhu_user_msg_close_fds(&r);
		if (!be_doorbell_take_reply(be, &r))
			be_warn(be, "back-end channel: a message nobody waits for (%u) dropped", r.hdr.request);
	} else if (be->backend_fd >= 0) {
		/* the front-end closed its end (going away), or wrote garbage:
		 * no more of it */
		if (rc == -ECONNRESET)
			be_dbg(be, "back-end channel closed by the front-end");
		else
			be_warn(be, "back-end channel: %s; closed", strerror(-rc));
		close(be->backend_fd);
		be->backend_fd = -1;
	}
	pthread_mutex_unlock(&be->backend_lock);
}

/* The session ends: the pages go with it (the front-end unmaps its own). */
void be_doorbell_reset(struct vhu_backend *be)
{
	for (unsigned i = 0; i < be->nq; i++) {
		struct be_vring *vr = &be->vr[i];
		dq_doorbell_set(&be->dev->q[i], NULL, false);
		vr->db_peer_maps = vr->db_refused = false;
		vr->db_removed_ns = 0;
		atomic_store(&vr->db_removed_ns_seen, 0);
		uint64_t kicks = atomic_load(&be->dev->q[i].db_kicks);
		if (kicks || atomic_load(&be->dev->q[i].db_offers))
			be_info(be, "queue %u: doorbell: %llu kicks by it, %llu offers, %llu notification values "
				"disagreeing with the ring", i, (unsigned long long)kicks,
				(unsigned long long)atomic_load(&be->dev->q[i].db_offers),
				(unsigned long long)atomic_load(&be->dev->q[i].db_bad_data));
		atomic_store(&be->dev->q[i].db_kicks, 0);
		atomic_store(&be->dev->q[i].db_offers, 0);
		atomic_store(&be->dev->q[i].db_bad_data, 0);
		atomic_store(&vr->db_want, DB_WANT_NONE);
		if (vr->db_page) {
			munmap(vr->db_page, vr->db_size);
			close(vr->db_fd);
		}
		vr->db_page = NULL;
		vr->db_fd = -1;
	}
	pthread_mutex_lock(&be->backend_lock);
	be->db_head = be->db_pending = 0;
	pthread_mutex_unlock(&be->backend_lock);
}
