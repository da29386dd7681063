/* SPDX-License-Identifier: MIT */
/* Back-end: object life, logging, the control loop, the back-end channel. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../common/log_internal.h"
#include "backend_internal.h"


void vhu_backend_log(struct vhu_backend *be, enum vhu_log_level level, const char *fmt, ...)
{
	struct vhu_device_config *c = &be->dev->cfg;
	va_list ap;

	va_start(ap, fmt);
	vhu_log_emit(c->log, c->log_opaque, c->log_level, level, fmt, ap);
	va_end(ap);
}

/* ---- the session's epoll set: for a loop of the application's ----------- */

static int watch(struct vhu_backend *be, int fd, int op)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	return epoll_ctl(be->epoll_fd, op, fd, &ev) < 0 ? -errno : 0;
}

/* The in-band notice, and the device's own set when the application runs
 * its queues too (an epoll set is readable while one inside it is). */
static int events_init(struct vhu_backend *be)
{
	be->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (be->epoll_fd < 0 || watch(be, be->inband_fd, EPOLL_CTL_ADD) < 0)
		return -1;
	int dev_fd = vhu_device_event_fd(be->dev);
	if (dev_fd >= 0 && watch(be, dev_fd, EPOLL_CTL_ADD) < 0)
		return -1;
	return 0;
}

static bool app_runs_queues(const struct vhu_backend *be)
{
	return be->dev->cfg.exec == VHU_EXEC_APP;
}

int vhu_backend_event_fd(const struct vhu_backend *be)
{
	return be->epoll_fd;
}

int vhu_backend_attach(struct vhu_backend *be, int conn)
{
	if (be->conn >= 0)
		return -EBUSY;
	int r = watch(be, conn, EPOLL_CTL_ADD);
	if (r < 0)
		return r;
	be->conn = conn;
	be->attached = true;
	be_info(be, "front-end connected");
	return 0;
}

static void app_detach(struct vhu_backend *be)
{
	watch(be, be->conn, EPOLL_CTL_DEL);
	be_session_reset(be);
	close(be->conn);
	be->conn = -1;
	be->attached = false;
}

static bool serve_message(struct vhu_backend *be);
static void send_inband(struct vhu_backend *be);

int vhu_backend_dispatch(struct vhu_backend *be)
{
	if (be->conn < 0 || !be->attached)
		return -ENOTCONN;
	/* At most a few messages a call, so a chatty front-end cannot starve the
	 * queues; the rest keep the (level-triggered) event fd readable. The
	 * set itself need not be read: every source is looked at. */
	for (unsigned k = 0; k < 16; k++) {
		struct pollfd p = { .fd = be->conn, .events = POLLIN };
		if (poll(&p, 1, 0) != 1)
			break;
		if (!serve_message(be)) {
			app_detach(be);
			return -ECONNRESET;
		}
	}
	/* doorbell answers: looked at here, since the application's event fd
	 * does not watch the channel (they are read at the next dispatch) */
	struct pollfd pb = { .fd = be_doorbells(be) ? be->backend_fd : -1, .events = POLLIN };
	if (pb.fd >= 0 && poll(&pb, 1, 0) == 1)
		be_backend_channel_readable(be);
	send_inband(be);
	if (app_runs_queues(be)) {
		vhu_device_process(be->dev);
		send_inband(be);	/* what the handlers just asked for */
	}
	return 0;
}

struct vhu_backend *vhu_backend_new(const struct vhu_backend_config *cfg)
{
	struct vhu_backend *be;

	if (!cfg->device || cfg->device->attached) {
		errno = cfg->device ? EBUSY : EINVAL;
		return NULL;
	}
	be = calloc(1, sizeof(*be));
	if (!be)
		return NULL;
	be->cfg = *cfg;
	be->dev = cfg->device;
	be->nq = vhu_device_num_queues(be->dev);
	/* offer only what is served: by the library, or by the device's request op */
	be->cfg.protocol_features &= VHU_BACKEND_PROTOCOL_FEATURES | (1ull << VHU_USER_PROTOCOL_F_HOST_NOTIFIER) |
				     (cfg->request ? VHU_BACKEND_DEVICE_PROTOCOL_FEATURES : 0);
	/* doorbells are looked at by a queue's own thread (doorbell.c) */
	if ((be->cfg.protocol_features >> VHU_USER_PROTOCOL_F_HOST_NOTIFIER & 1) &&
	    be->dev->cfg.exec != VHU_EXEC_THREAD_PER_QUEUE) {
		be->cfg.protocol_features &= ~(1ull << VHU_USER_PROTOCOL_F_HOST_NOTIFIER);
		vhu_backend_log(be, VHU_LOG_WARN, "doorbells (HOST_NOTIFIER) need a thread per queue: not offered");
	}
	be->conn = be->backend_fd = be->epoll_fd = be->log.fd = be->postcopy.uffd = -1;
	/* postcopy only where the kernel gives us a userfaultfd for shared memory */
	if ((be->cfg.protocol_features >> VHU_USER_PROTOCOL_F_PAGEFAULT & 1) && be_postcopy_probe() < 0) {
		be->cfg.protocol_features &= ~(1ull << VHU_USER_PROTOCOL_F_PAGEFAULT);
		vhu_backend_log(be, VHU_LOG_INFO, "postcopy (PAGEFAULT) not offered: no userfaultfd for shared memory");
	}
	vhu_mem_init(&be->mem);
	vhu_iotlb_init(&be->iotlb, 0);
	pthread_mutex_init(&be->backend_lock, NULL);
	be->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	be->inband_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	be->vr = calloc(be->nq, sizeof(*be->vr));
	if (be->stop_fd < 0 || be->inband_fd < 0 || !be->vr || events_init(be) < 0)
		goto fail;
	struct dev_transport t = be_transport;
	t.opaque = be;
	dev_attach(be->dev, &t);
	return be;
fail:
	be->dev = NULL;
	vhu_backend_free(be);
	return NULL;
}

void vhu_backend_free(struct vhu_backend *be)
{
	if (!be)
		return;
	int e = errno;
	if (be->dev) {
		if (be->conn >= 0)
			be_session_reset(be);
		dev_detach(be->dev);
	}
	if (be->conn >= 0 && be->attached)
		close(be->conn);	/* an attached session: the back-end owned it */
	if (be->epoll_fd >= 0)
		close(be->epoll_fd);
	free(be->vr);
	be_log_unmap(be);
	be_log_close_fd(be);
	be_postcopy_end(be);
	vhu_mem_clear(&be->mem);
	if (be->backend_fd >= 0)
		close(be->backend_fd);
	if (be->stop_fd >= 0)
		close(be->stop_fd);
	if (be->inband_fd >= 0)
		close(be->inband_fd);
	pthread_mutex_destroy(&be->backend_lock);
	free(be);
	errno = e;
}

struct vhu_device *vhu_backend_device(struct vhu_backend *be) { return be->dev; }
uint64_t vhu_backend_features(const struct vhu_backend *be) { return be->features; }
const struct vhu_mem *vhu_backend_mem(const struct vhu_backend *be) { return &be->mem; }
void *vhu_backend_opaque(const struct vhu_backend *be) { return be->cfg.opaque; }

void vhu_backend_stop(struct vhu_backend *be)
{
	uint64_t one = 1;
	/* write(2) only: callable from a signal handler */
	(void)!write(be->stop_fd, &one, sizeof(one));
}

static int send_backend(struct vhu_backend *be, uint32_t request, const void *payload, uint32_t size, bool want_ack)
{
	struct vhu_user_msg m;
	int r;

	memset(&m.hdr, 0, sizeof(m.hdr));
	m.hdr.request = request;
	m.hdr.flags = VHU_USER_VERSION;
	m.hdr.size = size;
	m.nfds = 0;
	if (size)
		memcpy(&m.payload, payload, size);
	bool ack = want_ack && be_pf(be, VHU_USER_PROTOCOL_F_REPLY_ACK);
	if (ack)
		m.hdr.flags |= VHU_USER_NEED_REPLY_MASK;
	pthread_mutex_lock(&be->backend_lock);
	if (be->backend_fd < 0) {
		r = -ENOTCONN;
	} else if ((r = vhu_user_send(be->backend_fd, &m)) == 0 && ack) {
		struct vhu_user_msg rep;
		/* answers to doorbell messages sent before come first (in order) */
		while ((r = vhu_user_recv(be->backend_fd, &rep, 1000)) == 0 && be_doorbell_take_reply(be, &rep))
			vhu_user_msg_close_fds(&rep);
		if (r == 0) {
			vhu_user_msg_close_fds(&rep);
			if (rep.hdr.request != request || !(rep.hdr.flags & VHU_USER_REPLY_MASK) ||
			    rep.hdr.size != 8 || rep.payload.u64 != 0)
				r = -EIO;
		}
	}
	pthread_mutex_unlock(&be->backend_lock);
	if (r < 0)
		be_warn(be, "back-end request %s failed: %s", vhu_user_backend_request_name(request), strerror(-r));
	return r;
}

int be_send_backend_msg(struct vhu_backend *be, uint32_t request, const void *payload, uint32_t size)
{
	return send_backend(be, request, payload, size, true);
}

int be_send_backend_notice(struct vhu_backend *be, uint32_t request, const void *payload, uint32_t size)
{
	return send_backend(be, request, payload, size, false);
}

int vhu_backend_config_changed(struct vhu_backend *be)
{
	return vhu_device_config_changed(be->dev);
}

/* Validate, handle, reply. Returns false when the connection must close. */
static bool process(struct vhu_backend *be, struct vhu_user_msg *m, int recv_err)
{
	const struct vhu_user_request_info *ri = vhu_user_request_info(m->hdr.request);
	const char *name = ri ? ri->name : "unknown request";
	struct reply rep;
	int r = recv_err;

	memset(&rep, 0, sizeof(rep));
	if (!r && be_postcopy_take_ack(be, m)) {
		vhu_user_msg_close_fds(m);
		return true;	/* postcopy.c: not a request, nothing to answer */
	}
	if (!r)
		r = vhu_user_check_shape(m, be->cfg.protocol_features != 0, be->protocol_features);
	if (r < 0)
		be_err(be, "%s (%u) rejected: %s", name, m->hdr.request, strerror(-r));
	else
		r = be_handle(be, m, &rep);
	vhu_user_msg_close_fds(m);
	be_dbg(be, "%s -> %d", name, r);

	rep.msg.hdr.request = m->hdr.request;
	rep.msg.hdr.flags = VHU_USER_VERSION | VHU_USER_REPLY_MASK;
	if (r < 0)
		vhu_user_msg_close_fds(&rep.msg);   /* only a reply that succeeded carries fds */
	bool need_ack = (m->hdr.flags & VHU_USER_NEED_REPLY_MASK) && be_pf(be, VHU_USER_PROTOCOL_F_REPLY_ACK);
	if (!rep.has_body && (need_ack || (ri && ri->replies))) {
		/* REPLY_ACK: zero on success, non-zero (the errno) on failure;
		 * a request that expects its own reply gets one too, so a
		 * front-end never waits for an answer that will not come */
		rep.msg.hdr.size = 8;
		rep.msg.payload.u64 = r < 0 ? (uint64_t)-r : 0;
		rep.has_body = true;
	}
	bool sent = !rep.has_body || vhu_user_send(be->conn, &rep.msg) == 0;
	vhu_user_msg_close_fds(&rep.msg);   /* the front-end has its copies */
	if (!sent) {
		be_err(be, "reply to %s failed", name);
		return false;
	}
	return !be->close_conn;
}

/* In-band VRING_CALL / VRING_ERR that workers asked for. */
static void send_inband(struct vhu_backend *be)
{
	uint64_t v;

	(void)!read(be->inband_fd, &v, sizeof(v));
	for (unsigned i = 0; i < be->nq; i++) {
		struct vhu_user_vring_state s = { i, 0 };
		if (atomic_exchange(&be->vr[i].inband_err, false))
			be_send_backend_msg(be, VHU_USER_BACKEND_VRING_ERR, &s, sizeof(s));
		if (atomic_exchange(&be->vr[i].inband_call, false))
			be_send_backend_msg(be, VHU_USER_BACKEND_VRING_CALL, &s, sizeof(s));
	}
	be_iotlb_send_misses(be);
	be_doorbell_send_wishes(be);
}

/* Receive one message (its start has arrived) and serve it; false when the session must end. */
static bool serve_message(struct vhu_backend *be)
{
	struct vhu_user_msg m;
	int r = vhu_user_recv(be->conn, &m, 5000);
	if (r == -ECONNRESET) {
		be_info(be, "front-end disconnected");
		return false;
	}
	if (r < 0 && r != -E2BIG && r != -EMSGSIZE) {
		be_err(be, "receive failed: %s; dropping the front-end", strerror(-r));
		return false;
	}
	return process(be, &m, r);
}

int vhu_backend_run_conn(struct vhu_backend *be, int conn)
{
	int ret = 0;

	if (app_runs_queues(be))
		return -EINVAL;	/* the application's loop: vhu_backend_attach and dispatch */
	if (be->conn >= 0)
		return -EBUSY;
	be->conn = conn;
	be_info(be, "front-end connected");
	for (;;) {
		/* the back-end channel too: answers to doorbell messages */
		struct pollfd p[4] = { { .fd = conn, .events = POLLIN }, { .fd = be->stop_fd, .events = POLLIN },
				       { .fd = be->inband_fd, .events = POLLIN },
				       { .fd = be_doorbells(be) ? be->backend_fd : -1, .events = POLLIN } };
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (p[1].revents & POLLIN)
			break;
		if (p[2].revents & POLLIN)
			send_inband(be);
		if (p[3].revents & (POLLIN | POLLHUP | POLLERR))
			be_backend_channel_readable(be);
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (!serve_message(be))
			break;
	}
	be_session_reset(be);
	close(conn);
	be->conn = -1;
	return ret;
}

int vhu_backend_run_listen(struct vhu_backend *be, int listen_fd)
{
	if (app_runs_queues(be))
		return -EINVAL;
	for (;;) {
		struct pollfd p[2] = { { .fd = listen_fd, .events = POLLIN }, { .fd = be->stop_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents & POLLIN)
			return 0;
		int c = vhu_user_accept(listen_fd, 0);
		if (c < 0)
			continue;
		vhu_backend_run_conn(be, c);
		uint64_t v;
		if (read(be->stop_fd, &v, sizeof(v)) == sizeof(v))
			return 0;
	}
}
