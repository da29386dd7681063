/* SPDX-License-Identifier: MIT */
/* vhost-user front-end: connection, negotiation, memory, rings, waits. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/cpu_relax.h"
#include "../common/log_internal.h"
#include "frontend_internal.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"

#define LOG_ALL_BIT (1ull << VHU_USER_F_LOG_ALL)

void fe_log(struct vhu_fe *fe, enum vhu_log_level l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vhu_log_emit(fe->cfg.log, fe->cfg.log_opaque, fe->cfg.log_level, l, fmt, ap);
	va_end(ap);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* ---- the back-end channel ---------------------------------------------- */

static int serve_one(struct vhu_fe *fe)
{
	struct vhu_user_msg m;
	int rc = vhu_user_recv(fe->chan, &m, fe->cfg.timeout_ms);
	uint64_t result = 0;

	if (rc < 0)
		return rc;
	if (m.hdr.request == VHU_USER_BACKEND_VRING_HOST_NOTIFIER_MSG)
		result = (uint64_t)fe_doorbell_msg(fe, &m);   /* takes the fd */
	vhu_user_msg_close_fds(&m);
	uint32_t idx = m.payload.state.index;
	switch (m.hdr.request) {
	case VHU_USER_BACKEND_VRING_HOST_NOTIFIER_MSG:
		break;
	case VHU_USER_BACKEND_CONFIG_CHANGE_MSG:
		atomic_store(&fe->config_changed, true);
		break;
	case VHU_USER_BACKEND_VRING_CALL:
	case VHU_USER_BACKEND_VRING_ERR:
		if (m.hdr.size != sizeof(struct vhu_user_vring_state) || idx >= fe->nq) {
			fe_log(fe, VHU_LOG_ERROR, "back-end sent %s for queue %u", 
			       vhu_user_backend_request_name(m.hdr.request), idx);
			result = 1;
		} else if (m.hdr.request == VHU_USER_BACKEND_VRING_CALL) {
			atomic_fetch_add(&fe->q[idx].inband_calls, 1);
		} else {
			atomic_store(&fe->q[idx].error, true);
		}
		break;
	case VHU_USER_BACKEND_IOTLB_MSG: {
		int verdict = fe_iommu_backend_msg(fe, &m);
		if (verdict == 2)
			return 1;   /* the reply goes with the answer */
		result = (uint64_t)verdict;
		break;
	}
	default:
		fe_log(fe, VHU_LOG_WARN, "back-end request %u not supported", m.hdr.request);
		result = 1;
	}
	if (m.hdr.flags & VHU_USER_NEED_REPLY_MASK && (rc = fe_chan_reply(fe, m.hdr.request, result)) < 0)
		return rc;
	return 1;
}

int fe_chan_reply(struct vhu_fe *fe, uint32_t request, uint64_t result)
{
	struct vhu_user_msg r;
	memset(&r, 0, sizeof(r));
	r.hdr = (struct vhu_user_hdr){ request, VHU_USER_VERSION | VHU_USER_REPLY_MASK, 8 };
	r.payload.u64 = result;
	return fe->chan >= 0 ? vhu_user_send(fe->chan, &r) : -ENOTCONN;
}

/* Serve what the channel holds. From inside a request (nested), only if
 * no other thread serves it already (-EBUSY), and misses stay for later:
 * answering them is a request of its own. */
static int serve_channel(struct vhu_fe *fe, int timeout_ms, bool nested)
{
	int n = 0;

	if (fe->chan < 0)
		return 0;
	if (!nested)
		pthread_mutex_lock(&fe->chan_lock);
	else if (pthread_mutex_trylock(&fe->chan_lock))
		return -EBUSY;
	for (;;) {
		/* and, where misses can be answered, stop waiting when one
		 * waits: a request of ours may have taken it off the channel */
		struct pollfd p[2] = { { .fd = fe->chan, .events = POLLIN },
				       { .fd = nested ? -1 : fe_iommu_wake_fd(fe), .events = POLLIN } };
		int r = poll(p, 2, n ? 0 : timeout_ms);
		if (r <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			break;
		r = serve_one(fe);
		if (r < 0) {
			n = r;
			break;
		}
		n++;
	}
	pthread_mutex_unlock(&fe->chan_lock);
	return n;
}

int vhu_fe_serve_backend(struct vhu_fe *fe, int timeout_ms)
{
	int n = serve_channel(fe, timeout_ms, false);
	if (fe->iommu.mode != VHU_FE_IOMMU_OFF)
		fe_iommu_answer_misses(fe);
	return n;
}

/* ---- requests ------------------------------------------------------------ */

/*
 * Send a request and, if it has a reply of its own or REPLY_ACK is
 * negotiated, wait for the answer (serving the back-end channel meanwhile,
 * since an in-band back-end may be waiting on us). Checks the reply's
 * request, flags and size. An acknowledgement with a non-zero value is
 * -EIO (the back-end refused).
 */
int fe_request(struct vhu_fe *fe, uint32_t req, const void *payload, uint32_t size,
	       const int *fds, unsigned nfds, struct vhu_user_msg *reply, uint32_t reply_size)
{
	const struct vhu_user_request_info *ri = vhu_user_request_info(req);
	bool body = ri && ri->replies;
	bool ack = !body && fe_has_pf(fe, VHU_USER_PROTOCOL_F_REPLY_ACK);
	struct vhu_user_msg m, r;
	/* only GET_INFLIGHT_FD's reply carries an fd we keep */
	bool keep_fds = req == VHU_USER_GET_INFLIGHT_FD && reply;
	int rc;

	r.nfds = 0;
	memset(&m.hdr, 0, sizeof(m.hdr));
	m.hdr.request = req;
	m.hdr.flags = VHU_USER_VERSION | (ack ? VHU_USER_NEED_REPLY_MASK : 0);
	m.hdr.size = size;
	if (size)
		memcpy(&m.payload, payload, size);
	m.nfds = nfds;
	for (unsigned i = 0; i < nfds; i++)
		m.fds[i] = fds[i];
	pthread_mutex_lock(&fe->lock);
	rc = vhu_user_send(fe->sock, &m);
	if (rc < 0 || (!body && !ack))
		goto out;
	int64_t deadline = now_ms() + fe->cfg.timeout_ms;
	bool chan_busy = false;   /* another thread serves the channel */
	for (;;) {
		struct pollfd p[2] = { { .fd = fe->sock, .events = POLLIN }, { .fd = fe->chan, .events = POLLIN } };
		int left = (int)(deadline - now_ms());
		if (left <= 0) {
			rc = -ETIMEDOUT;
			goto out;
		}
		bool watch_chan = fe->chan >= 0 && !chan_busy;
		if (chan_busy && left > 1)
			left = 1;   /* look again soon: it may be ours to serve then */
		if (poll(p, watch_chan ? 2 : 1, left) < 0 && errno != EINTR) {
			rc = -errno;
			goto out;
		}
		chan_busy = false;
		if (watch_chan && (p[1].revents & POLLIN))
			chan_busy = serve_channel(fe, 0, true) == -EBUSY;
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			break;
	}
	rc = vhu_user_recv(fe->sock, &r, fe->cfg.timeout_ms);
	if (rc < 0)
		goto out;
	if (!keep_fds)
		vhu_user_msg_close_fds(&r);
	if (r.hdr.request != req || !(r.hdr.flags & VHU_USER_REPLY_MASK) ||
	    (r.hdr.flags & VHU_USER_VERSION_MASK) != VHU_USER_VERSION) {
		fe_log(fe, VHU_LOG_ERROR, "%s: back-end answered request %u flags 0x%x", ri ? ri->name : "?",
		       r.hdr.request, r.hdr.flags);
		rc = -EPROTO;
		goto out;
	}
	if (ack || reply_size == 8) {
		if (r.hdr.size != 8) {
			rc = -EPROTO;
			goto out;
		}
		if (ack && r.payload.u64) {
			fe_log(fe, VHU_LOG_ERROR, "%s refused by the back-end (%llu)", ri ? ri->name : "?",
			       (unsigned long long)r.payload.u64);
			rc = -EIO;
			goto out;
		}
	} else if (reply_size && r.hdr.size != reply_size) {
		fe_log(fe, VHU_LOG_ERROR, "%s: reply of %u bytes, expected %u", ri ? ri->name : "?", r.hdr.size,
		       reply_size);
		rc = r.hdr.size == 0 ? -EIO : -EPROTO;
		goto out;
	}
	if (reply)
		*reply = r;
out:
	if (rc < 0 && keep_fds)
		vhu_user_msg_close_fds(&r);
	pthread_mutex_unlock(&fe->lock);
	return rc;
}

int fe_get_u64(struct vhu_fe *fe, uint32_t req, uint64_t *v)
{
	struct vhu_user_msg r;
	int rc = fe_request(fe, req, NULL, 0, NULL, 0, &r, 8);
	if (rc == 0)
		*v = r.payload.u64;
	return rc;
}

int fe_set_u64(struct vhu_fe *fe, uint32_t req, uint64_t v)
{
	return fe_request(fe, req, &v, 8, NULL, 0, NULL, 0);
}

int fe_set_state(struct vhu_fe *fe, uint32_t req, uint32_t index, uint32_t num)
{
	struct vhu_user_vring_state s = { index, num };
	return fe_request(fe, req, &s, sizeof(s), NULL, 0, NULL, 0);
}

/* ---- connection ------------------------------------------------------- */

/* The socket to the back-end: connect to it, or accept it (server role,
 * the listening socket kept for a restarted back-end to come back to). */
/*
 * SET_LOG_BASE. The reply is one u64, but what it means differs between
 * back-ends (rust-vmm/vhost#217): vhu answers 0 or the errno of a refusal;
 * libvhost-user (qemu-storage-daemon) echoes the first field of the request,
 * the log's size; QEMU reads the reply and looks at neither. Both of those
 * are taken as success, anything else as the back-end's errno.
 */
static int send_log_base(struct vhu_fe *fe)
{
	struct vhu_user_log l = { .size = fe->log.size, .offset = 0 };
	struct vhu_user_msg r;
	int fd = fe->log_fd;
	int rc = fe_request(fe, VHU_USER_SET_LOG_BASE, &l, sizeof(l), &fd, 1, &r, 8);
	if (rc < 0)
		return rc;
	if (r.payload.u64 != 0 && r.payload.u64 != l.size) {
		fe_log(fe, VHU_LOG_ERROR, "SET_LOG_BASE refused by the back-end (%llu)", (unsigned long long)r.payload.u64);
		return -EIO;
	}
	return 0;
}

static void log_free(struct vhu_fe *fe)
{
	if (fe->log.bitmap)
		munmap(fe->log.bitmap, fe->log.size);
	if (fe->log_fd >= 0)
		close(fe->log_fd);
	fe->log = (struct vhu_dirty_log){ 0 };
	fe->log_fd = -1;
}

static int open_socket(struct vhu_fe *fe, int timeout_ms)
{
	if (fe->cfg.fd >= 0 && !fe->reconnects)
		return fe->cfg.fd;
	if (fe->cfg.fd >= 0)
		return -ENOTCONN;   /* a socket given: nothing to reconnect to */
	if (!fe->cfg.server)
		return vhu_user_connect(fe->cfg.path, timeout_ms);
	if (fe->listen_fd < 0 && (fe->listen_fd = vhu_user_listen(fe->cfg.path)) < 0) {
		int rc = fe->listen_fd;
		fe->listen_fd = -1;
		return rc;
	}
	return vhu_user_accept(fe->listen_fd, timeout_ms);
}

/* What the back-end offers, the protocol features both know, the back-end
 * channel, SET_OWNER: the session before any device state. */
static int handshake(struct vhu_fe *fe)
{
	int rc;

	fe->pf = 0;
	if ((rc = fe_get_u64(fe, VHU_USER_GET_FEATURES, &fe->offered)) < 0)
		return rc;
	if (fe->offered >> VHU_USER_F_PROTOCOL_FEATURES & 1) {
		if ((rc = fe_get_u64(fe, VHU_USER_GET_PROTOCOL_FEATURES, &fe->offered_pf)) < 0)
			return rc;
		uint64_t pf = fe->offered_pf & (FE_PF_KNOWN | (fe->cfg.doorbells ? 1ull << VHU_USER_PROTOCOL_F_HOST_NOTIFIER : 0));
		/* the spec makes INBAND depend on both of these */
		if (!(pf >> VHU_USER_PROTOCOL_F_BACKEND_REQ & 1) || !(pf >> VHU_USER_PROTOCOL_F_REPLY_ACK & 1))
			pf &= ~(1ull << VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS);
		if ((rc = fe_set_u64(fe, VHU_USER_SET_PROTOCOL_FEATURES, pf)) < 0)
			return rc;
		fe->pf = pf;   /* from here on, requests ask for acks */
	}
	if (fe_has_pf(fe, VHU_USER_PROTOCOL_F_MQ) && (rc = fe_get_u64(fe, VHU_USER_GET_QUEUE_NUM, &fe->queue_num)) < 0)
		return rc;
	if (fe_has_pf(fe, VHU_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) &&
	    (rc = fe_get_u64(fe, VHU_USER_GET_MAX_MEM_SLOTS, &fe->max_slots)) < 0)
		return rc;
	if (fe_has_pf(fe, VHU_USER_PROTOCOL_F_BACKEND_REQ)) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return -errno;
		fe->chan = sv[0];
		rc = fe_request(fe, VHU_USER_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1, NULL, 0);
		close(sv[1]);
		if (rc < 0)
			return rc;
	}
	return fe_request(fe, VHU_USER_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
}

int vhu_fe_connect(struct vhu_fe **out, const struct vhu_fe_config *cfg)
{
	struct vhu_fe *fe = calloc(1, sizeof(*fe));
	int rc;

	if (!fe)
		return -ENOMEM;
	fe->cfg = *cfg;
	if (fe->cfg.timeout_ms <= 0)
		fe->cfg.timeout_ms = 5000;
	fe->sock = fe->chan = fe->memfd = fe->listen_fd = fe->inflight_fd = fe->log_fd = -1;
	pthread_mutex_init(&fe->lock, NULL);
	pthread_mutex_init(&fe->chan_lock, NULL);
	pthread_mutex_init(&fe->alloc_lock, NULL);
	fe_iommu_init(fe);
	fe->sock = open_socket(fe, fe->cfg.timeout_ms);
	if (fe->sock < 0) {
		rc = fe->sock;
		goto fail;
	}
	if ((rc = handshake(fe)) < 0)
		goto fail;
	*out = fe;
	return 0;
fail:
	fe_log(fe, VHU_LOG_ERROR, "connecting: %s", strerror(-rc));
	vhu_fe_close(fe);
	return rc;
}

void vhu_fe_close(struct vhu_fe *fe)
{
	if (!fe)
		return;
	fe_doorbell_drop_all(fe, true);
	for (unsigned i = 0; i < fe->nq; i++) {
		struct vhu_fe_queue *q = &fe->q[i];
		vhu_drv_vq_destroy(&q->drv);
		if (q->kick >= 0)
			close(q->kick);
		if (q->call >= 0)
			close(q->call);
	}
	free(fe->q);
	free(fe->regions);
	if (fe->mem)
		munmap(fe->mem, fe->mem_size);
	if (fe->memfd >= 0)
		close(fe->memfd);
	if (fe->chan >= 0)
		close(fe->chan);
	if (fe->sock >= 0)
		close(fe->sock);
	if (fe->listen_fd >= 0)
		close(fe->listen_fd);
	if (fe->inflight_fd >= 0)
		close(fe->inflight_fd);
	log_free(fe);
	fe_iommu_free(fe);
	pthread_mutex_destroy(&fe->lock);
	pthread_mutex_destroy(&fe->chan_lock);
	pthread_mutex_destroy(&fe->alloc_lock);
	free(fe);
}

uint64_t vhu_fe_offered_features(const struct vhu_fe *fe) { return fe->offered; }
uint64_t vhu_fe_offered_protocol_features(const struct vhu_fe *fe) { return fe->offered_pf; }
uint64_t vhu_fe_protocol_features(const struct vhu_fe *fe) { return fe->pf; }
uint64_t vhu_fe_queue_num(const struct vhu_fe *fe) { return fe->queue_num; }
uint64_t vhu_fe_max_mem_slots(const struct vhu_fe *fe) { return fe->max_slots; }
uint64_t vhu_fe_features(const struct vhu_fe *fe) { return fe->features; }
bool vhu_fe_config_changed(struct vhu_fe *fe) { return atomic_exchange(&fe->config_changed, false); }

int vhu_fe_get_config(struct vhu_fe *fe, uint32_t offset, void *buf, uint32_t len)
{
	struct vhu_user_config c = { .offset = offset, .size = len };
	struct vhu_user_msg r;
	int rc;

	if (!fe_has_pf(fe, VHU_USER_PROTOCOL_F_CONFIG))
		return -ENOTSUP;
	if (len > VHU_USER_MAX_CONFIG_SIZE)
		return -EINVAL;
	/* "payload size MUST match the front-end's request"; empty is an error */
	rc = fe_request(fe, VHU_USER_GET_CONFIG, &c, VHU_USER_CONFIG_HDR_SIZE + len, NULL, 0, &r,
		     VHU_USER_CONFIG_HDR_SIZE + len);
	if (rc == 0)
		memcpy(buf, r.payload.config.region, len);
	return rc;
}

int vhu_fe_set_config(struct vhu_fe *fe, uint32_t offset, const void *buf, uint32_t len)
{
	struct vhu_user_config c = { .offset = offset, .size = len, .flags = VHU_USER_CONFIG_FLAG_WRITABLE };
	if (!fe_has_pf(fe, VHU_USER_PROTOCOL_F_CONFIG))
		return -ENOTSUP;
	if (len > VHU_USER_MAX_CONFIG_SIZE)
		return -EINVAL;
	memcpy(c.region, buf, len);
	return fe_request(fe, VHU_USER_SET_CONFIG, &c, VHU_USER_CONFIG_HDR_SIZE + len, NULL, 0, NULL, 0);
}

int vhu_fe_get_status(struct vhu_fe *fe, uint8_t *status)
{
	uint64_t v;
	int rc;
	if (!fe_has_pf(fe, VHU_USER_PROTOCOL_F_STATUS))
		return -ENOTSUP;
	rc = fe_get_u64(fe, VHU_USER_GET_STATUS, &v);
	if (rc == 0)
		*status = (uint8_t)v;
	return rc;
}

int vhu_fe_set_status(struct vhu_fe *fe, uint8_t status)
{
	if (!fe_has_pf(fe, VHU_USER_PROTOCOL_F_STATUS))
		return -ENOTSUP;
	return fe_set_u64(fe, VHU_USER_SET_STATUS, status);
}

int vhu_fe_reset_device(struct vhu_fe *fe)
{
	if (!fe_has_pf(fe, VHU_USER_PROTOCOL_F_RESET_DEVICE))
		return -ENOTSUP;
	return fe_request(fe, VHU_USER_RESET_DEVICE, NULL, 0, NULL, 0, NULL, 0);
}

/* ---- start and stop ------------------------------------------------------ */

static size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

static int register_memory(struct vhu_fe *fe)
{
	struct vhu_user_mem_region reg = { 0, fe->mem_size, (uintptr_t)fe->mem, 0 };
	int fd = fe->memfd;

	if (fe->max_slots) {
		struct vhu_user_mem_single s = { 0, reg };
		return fe_request(fe, VHU_USER_ADD_MEM_REG, &s, sizeof(s), &fd, 1, NULL, 0);
	}
	struct vhu_user_mem_table t = { .nregions = 1 };
	t.regions[0] = reg;
	return fe_request(fe, VHU_USER_SET_MEM_TABLE, &t, 8 + sizeof(reg), &fd, 1, NULL, 0);
}

static int send_queue(struct vhu_fe *fe, struct vhu_fe_queue *q, const struct vhu_vq_pos *pos);

int vhu_fe_resend_memory(struct vhu_fe *fe)
{
	if (!fe->mem)
		return -EINVAL;
	struct vhu_user_mem_table t = { .nregions = 1 };
	t.regions[0] = (struct vhu_user_mem_region){ 0, fe->mem_size, (uintptr_t)fe->mem, 0 };
	int fd = fe->memfd;
	return fe_request(fe, VHU_USER_SET_MEM_TABLE, &t, 8 + sizeof(t.regions[0]), &fd, 1, NULL, 0);
}

/* The inflight region: made by the back-end on the first start and kept
 * (GET_INFLIGHT_FD), handed back on every start (SET_INFLIGHT_FD), before
 * the rings, as QEMU's vhost-user-blk does. */
static int send_inflight(struct vhu_fe *fe, uint16_t num_queues, uint16_t queue_size)
{
	int rc;

	if (!fe_has_pf(fe, VHU_USER_PROTOCOL_F_INFLIGHT_SHMFD))
		return 0;
	if (fe->inflight_fd < 0) {
		struct vhu_user_inflight in = { .num_queues = num_queues, .queue_size = queue_size };
		struct vhu_user_msg r;
		if ((rc = fe_request(fe, VHU_USER_GET_INFLIGHT_FD, &in, sizeof(in), NULL, 0, &r, sizeof(in))) < 0)
			return rc;
		if (r.nfds != 1 || r.payload.inflight.mmap_size == 0) {
			fe_log(fe, VHU_LOG_ERROR, "GET_INFLIGHT_FD: no region in the reply");
			vhu_user_msg_close_fds(&r);
			return -EPROTO;
		}
		fe->inflight_fd = r.fds[0];
		fe->inflight = r.payload.inflight;
		fe->inflight.num_queues = num_queues;
		fe->inflight.queue_size = queue_size;
	}
	return fe_request(fe, VHU_USER_SET_INFLIGHT_FD, &fe->inflight, sizeof(fe->inflight), &fe->inflight_fd, 1,
		       NULL, 0);
}

static int start_queue(struct vhu_fe *fe, struct vhu_fe_queue *q, const struct vhu_fe_setup *s)
{
	bool packed = vhu_has_feature(fe->features, VHU_F_RING_PACKED);
	struct vhu_vq_layout l;
	uint64_t ring_addr, ind_addr = 0;
	unsigned char *ring, *ind = NULL;
	int rc;

	vhu_vq_layout(s->queue_size, packed, &l);
	ring = vhu_fe_alloc(fe, l.size, 4096, &ring_addr);
	if (s->indirect_max && vhu_has_feature(fe->features, VHU_F_INDIRECT_DESC))
		ind = vhu_fe_alloc(fe, (size_t)s->queue_size * s->indirect_max * 16, 64, &ind_addr);
	if (!ring || (s->indirect_max && vhu_has_feature(fe->features, VHU_F_INDIRECT_DESC) && !ind))
		return -ENOMEM;
	memset(ring, 0, l.size);
	struct vhu_vq_config c = {
		.num = s->queue_size, .index = (uint16_t)q->index, .features = fe->features,
		.desc = ring + l.desc_off, .driver_area = ring + l.driver_off, .device_area = ring + l.device_off,
	};
	if ((rc = vhu_drv_vq_init(&q->drv, &c, ind, ind_addr, ind ? s->indirect_max : 0)) < 0)
		return rc;
	/* as a guest's driver maps its rings (coherent, both ways) and its
	 * indirect tables (the device only reads them) */
	if (fe->iommu.mode == VHU_FE_IOMMU_DYNAMIC &&
	    ((rc = vhu_fe_iommu_map(fe, ring_addr, l.size, VHU_USER_IOTLB_PERM_RW, false)) < 0 ||
	     (ind && (rc = vhu_fe_iommu_map(fe, ind_addr, (size_t)s->queue_size * s->indirect_max * 16,
					    VHU_USER_IOTLB_PERM_RO, false)) < 0)))
		return rc;
	q->ring = c;
	if (s->notify != VHU_FE_NOTIFY_INBAND) {
		/* Polling keeps the call eventfd too and turns used-buffer
		 * notifications off instead: libvhost-user (qemu-storage-daemon
		 * 7.2) writes to the call fd even when told there is none, and
		 * its device dies on the error. */
		q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		q->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->call < 0 || q->kick < 0)
			return -errno;
		if (s->notify == VHU_FE_NOTIFY_POLL)
			vhu_drv_vq_disable_cb(&q->drv);
	}
	struct vhu_vq_pos pos;
	vhu_drv_vq_get_pos(&q->drv, &pos);
	return send_queue(fe, q, &pos);
}

/* A ring part for SET_VRING_ADDR: our user address, or behind the IOMMU
 * its IOVA (the vhost-user spec, "IOMMU support"). */
static uint64_t ring_addr(const struct vhu_fe *fe, const void *part)
{
	if (fe->iommu.mode == VHU_FE_IOMMU_OFF)
		return (uintptr_t)part;
	return fe_dev_addr(fe, (uint64_t)((const unsigned char *)part - fe->mem));
}

/* The ring's addresses, and with the dirty log on, where its used area is
 * logged: its guest address (memory is one region at guest address 0). */
static int send_vring_addr(struct vhu_fe *fe, const struct vhu_fe_queue *q)
{
	const struct vhu_vq_config *c = &q->ring;
	struct vhu_user_vring_addr a = {
		.index = q->index, .desc_user_addr = ring_addr(fe, c->desc), .avail_user_addr = ring_addr(fe, c->driver_area),
		.used_user_addr = ring_addr(fe, c->device_area),
	};
	if (fe->log.bitmap) {
		a.flags = 1u << VHU_USER_VRING_F_LOG;
		a.log_guest_addr = (uint64_t)((const unsigned char *)c->device_area - fe->mem);
	}
	return fe_request(fe, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL, 0);
}

/* Hand the back-end a ring (the first time, or again after it restarted):
 * size, base, addresses, notifiers, enable. */
static int send_queue(struct vhu_fe *fe, struct vhu_fe_queue *q, const struct vhu_vq_pos *pos)
{
	bool packed = vhu_has_feature(fe->features, VHU_F_RING_PACKED);
	const struct vhu_vq_config *c = &q->ring;
	int rc;

	if ((rc = fe_set_state(fe, VHU_USER_SET_VRING_NUM, q->index, c->num)) < 0 ||
	    (rc = fe_set_state(fe, VHU_USER_SET_VRING_BASE, q->index, vhu_vq_pos_encode(pos, packed))) < 0)
		return rc;
	if ((rc = send_vring_addr(fe, q)) < 0)
		return rc;
	switch (fe->notify) {
	case VHU_FE_NOTIFY_EVENTFD:
	case VHU_FE_NOTIFY_POLL: {
		uint64_t v = q->index;
		if ((rc = fe_request(fe, VHU_USER_SET_VRING_CALL, &v, 8, &q->call, 1, NULL, 0)) < 0 ||
		    (rc = fe_request(fe, VHU_USER_SET_VRING_KICK, &v, 8, &q->kick, 1, NULL, 0)) < 0)
			return rc;
		break;
	}
	case VHU_FE_NOTIFY_INBAND:
		/* no fds at all: an fd-less SET_VRING_KICK would mean polling;
		 * the ring starts on its first in-band VRING_KICK */
		if ((rc = fe_set_state(fe, VHU_USER_VRING_KICK, q->index, 0)) < 0)
			return rc;
		break;
	}
	if (fe->features >> VHU_USER_F_PROTOCOL_FEATURES & 1)
		rc = fe_set_state(fe, VHU_USER_SET_VRING_ENABLE, q->index, 1);
	return rc;
}

static void set_driver_ok(struct vhu_fe *fe)
{
	if (fe_has_pf(fe, VHU_USER_PROTOCOL_F_STATUS))
		vhu_fe_set_status(fe, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK |
				  VHU_STATUS_DRIVER_OK);
}

int vhu_fe_start(struct vhu_fe *fe, const struct vhu_fe_setup *s)
{
	int rc;

	if (fe->q || !s->num_queues || !s->queue_size)
		return -EINVAL;
	if (s->num_queues > 1 && s->num_queues > fe->queue_num)
		return -ERANGE;
	if (s->notify == VHU_FE_NOTIFY_INBAND && !fe_has_pf(fe, VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS))
		return -ENOTSUP;
	if ((rc = fe_iommu_setup(fe, s->iommu)) < 0)
		return rc;
	/* An eventfd kick carries no data: NOTIFICATION_DATA only with
	 * doorbells, whose store carries it (and a kick that falls back to
	 * the eventfd goes without; the ring is the device's truth). And
	 * ACCESS_PLATFORM only with this front-end as the IOMMU. */
	uint64_t never = VHU_BIT(VHU_F_ACCESS_PLATFORM) |
			 (fe_has_pf(fe, VHU_USER_PROTOCOL_F_HOST_NOTIFIER) && s->notify == VHU_FE_NOTIFY_EVENTFD
				  ? 0 : VHU_BIT(VHU_F_NOTIFICATION_DATA));
	fe->features = (s->features & fe->offered & ~never) | (fe->offered & (1ull << VHU_USER_F_PROTOCOL_FEATURES));
	if (s->iommu != VHU_FE_IOMMU_OFF)
		fe->features |= VHU_BIT(VHU_F_ACCESS_PLATFORM);
	if ((rc = fe_set_u64(fe, VHU_USER_SET_FEATURES, fe->features)) < 0)
		return rc;
	bool packed = vhu_has_feature(fe->features, VHU_F_RING_PACKED);
	struct vhu_vq_layout l;
	vhu_vq_layout(s->queue_size, packed, &l);
	size_t rings = (size_t)s->num_queues * (l.size + 4096 + (size_t)s->queue_size * s->indirect_max * 16 + 64);
	size_t page = s->hugepages ? 2u << 20 : 4096;
	fe->mem_size = align_up(rings + s->mem_size, page);
	fe->memfd = memfd_create("vhu-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING | (s->hugepages ? MFD_HUGETLB : 0));
	if (fe->memfd < 0 || ftruncate(fe->memfd, (off_t)fe->mem_size) < 0)
		return -errno;
	/* As QEMU's memfd backend: the size is final, so the back-end's
	 * mappings can never fault (a kernel without hugetlbfs sealing only
	 * loses that promise). */
	(void)fcntl(fe->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	fe->mem = mmap(NULL, fe->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, fe->memfd, 0);
	if (fe->mem == MAP_FAILED) {
		fe->mem = NULL;
		return -errno;
	}
	if ((rc = register_memory(fe)) < 0 || (rc = send_inflight(fe, s->num_queues, s->queue_size)) < 0)
		return rc;
	if (s->iommu == VHU_FE_IOMMU_STATIC &&
	    (rc = vhu_fe_iommu_map(fe, VHU_FE_IOVA_BASE, fe->mem_size, VHU_USER_IOTLB_PERM_RW, false)) < 0)
		return rc;
	fe->q = calloc(s->num_queues, sizeof(*fe->q));
	if (!fe->q)
		return -ENOMEM;
	fe->notify = s->notify;
	fe->spin_ns = s->spin_ns;
	for (unsigned i = 0; i < s->num_queues; i++) {
		fe->q[i] = (struct vhu_fe_queue){ .fe = fe, .index = i, .kick = -1, .call = -1 };
		fe->nq++;
		if ((rc = start_queue(fe, &fe->q[i], s)) < 0)
			return rc;
	}
	set_driver_ok(fe);
	return 0;
}

/* Where a restarted back-end resumes a ring. Split: the used index, as
 * QEMU restores it (virtio_queue_restore_last_avail_idx): the buffers
 * after it are taken again, or, with an inflight region, the back-end
 * rebuilds the position from it. Packed: the driver's used position for
 * both; only an inflight region can tell which slots were taken. */
static void resume_pos(const struct vhu_fe_queue *q, bool packed, struct vhu_vq_pos *pos)
{
	struct vhu_vq_pos d;
	vhu_drv_vq_get_pos(&q->drv, &d);
	if (packed) {
		*pos = (struct vhu_vq_pos){ .avail = d.used, .avail_wrap = d.used_wrap, .used = d.used,
					    .used_wrap = d.used_wrap };
		return;
	}
	const struct vhu_vring_used *u = q->ring.device_area;
	*pos = (struct vhu_vq_pos){ .avail = le16toh(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE)) };
}

static int resume(struct vhu_fe *fe)
{
	int rc;

	/* the old back-end's pages mean nothing to the new one */
	fe_doorbell_drop_all(fe, false);
	if ((rc = handshake(fe)) < 0)
		return rc;
	uint64_t lost = fe->features & ~fe->offered;
	if (lost) {
		fe_log(fe, VHU_LOG_ERROR, "the back-end no longer offers features 0x%llx", (unsigned long long)lost);
		return -EPROTO;
	}
	if (fe->inflight_fd >= 0 && !fe_has_pf(fe, VHU_USER_PROTOCOL_F_INFLIGHT_SHMFD))
		fe_log(fe, VHU_LOG_WARN, "the back-end no longer keeps an inflight region: requests it had "
			"taken are redone from the ring");
	if ((rc = fe_set_u64(fe, VHU_USER_SET_FEATURES, fe->features)) < 0 || (rc = register_memory(fe)) < 0 ||
	    (rc = send_inflight(fe, (uint16_t)fe->nq, fe->nq ? fe->q[0].ring.num : 0)) < 0)
		return rc;
	/* a migration in progress goes on: the log before the rings */
	if (fe->log.bitmap && ((rc = send_log_base(fe)) < 0 ||
			       (rc = fe_set_u64(fe, VHU_USER_SET_FEATURES, fe->features | LOG_ALL_BIT)) < 0))
		return rc;
	bool packed = vhu_has_feature(fe->features, VHU_F_RING_PACKED);
	bool region = fe->inflight_fd >= 0 && fe_has_pf(fe, VHU_USER_PROTOCOL_F_INFLIGHT_SHMFD);
	for (unsigned i = 0; i < fe->nq; i++) {
		struct vhu_vq_pos pos;
		/* without a region the back-end takes again what follows the
		 * used index: make that exactly what is outstanding */
		if (!region && (rc = vhu_drv_vq_reoffer(&fe->q[i].drv)) < 0) {
			fe_log(fe, VHU_LOG_ERROR, "queue %u: cannot offer its buffers again: %s", i, vhu_vq_strerror(rc));
			return rc;
		}
		resume_pos(&fe->q[i], packed, &pos);
		if ((rc = send_queue(fe, &fe->q[i], &pos)) < 0)
			return rc;
	}
	set_driver_ok(fe);
	/* The buffers in flight were made available before this back-end
	 * came: not every back-end looks at a ring before its first kick
	 * (libvhost-user does not), and the driver's suppression state says
	 * none is due. A notification is always allowed; send one. */
	for (unsigned i = 0; i < fe->nq; i++) {
		uint64_t one = 1;
		if (fe->notify == VHU_FE_NOTIFY_INBAND)
			rc = fe_set_state(fe, VHU_USER_VRING_KICK, i, 0);
		else
			rc = write(fe->q[i].kick, &one, 8) == 8 ? 0 : -errno;
		if (rc < 0)
			return rc;
	}
	return 0;
}

int vhu_fe_reconnect(struct vhu_fe *fe, int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms < 0 ? fe->cfg.timeout_ms : timeout_ms);
	int rc = -ETIMEDOUT;

	if (!fe->q)
		return -EINVAL;
	if (fe->vmm)
		return -ENOTSUP;   /* the VMM resumes its own rings */
	fe->reconnects++;
	for (;;) {
		if (fe->chan >= 0)
			close(fe->chan);
		if (fe->sock >= 0 && fe->sock != fe->cfg.fd)
			close(fe->sock);
		fe->chan = fe->sock = -1;
		int left = (int)(deadline - now_ms());
		if (left <= 0)
			break;
		fe->sock = open_socket(fe, left < 200 ? left : 200);
		if (fe->sock == -ENOTCONN) {
			fe->sock = -1;
			return -ENOTCONN;
		}
		if (fe->sock >= 0 && (rc = resume(fe)) == 0) {
			fe_log(fe, VHU_LOG_INFO, "reconnected to the back-end (%u so far)", fe->reconnects);
			return 0;
		}
		if (fe->sock < 0) {
			rc = fe->sock;
			fe->sock = -1;
			usleep(20000);   /* the back-end is not back yet */
		}
	}
	fe_log(fe, VHU_LOG_ERROR, "the back-end did not come back: %s", strerror(-rc));
	return rc;
}

unsigned vhu_fe_reconnects(const struct vhu_fe *fe) { return fe->reconnects; }

/* Logging on or off on the back-end: buffers (LOG_ALL), then each ring. */
static int log_switch(struct vhu_fe *fe)
{
	int rc = fe_set_u64(fe, VHU_USER_SET_FEATURES, fe->features | (fe->log.bitmap ? LOG_ALL_BIT : 0));
	for (unsigned i = 0; rc == 0 && i < fe->nq; i++)
		rc = send_vring_addr(fe, &fe->q[i]);
	return rc;
}

int vhu_fe_log_start(struct vhu_fe *fe)
{
	int rc;

	if (!fe->q)
		return -EINVAL;
	if (fe->log.bitmap)
		return -EALREADY;
	if (!fe_has_pf(fe, VHU_USER_PROTOCOL_F_LOG_SHMFD) || !(fe->offered & LOG_ALL_BIT))
		return -ENOTSUP;
	/* a whole number of pages of bitmap, as QEMU sizes its log in chunks */
	size_t size = align_up((size_t)vhu_dirty_log_size_for(fe->mem_size), 4096);
	fe->log_fd = memfd_create("vhu-dirty-log", MFD_CLOEXEC);
	if (fe->log_fd < 0 || ftruncate(fe->log_fd, (off_t)size) < 0) {
		rc = -errno;
		log_free(fe);
		return rc;
	}
	void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fe->log_fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		log_free(fe);
		return rc;
	}
	fe->log = (struct vhu_dirty_log){ map, size };
	if ((rc = send_log_base(fe)) < 0 || (rc = log_switch(fe)) < 0) {
		log_free(fe);
		log_switch(fe);   /* best effort: a back-end must not go on marking a log we dropped */
		return rc;
	}
	return 0;
}

int vhu_fe_log_stop(struct vhu_fe *fe)
{
	if (!fe->log.bitmap)
		return -ENOENT;
	struct vhu_dirty_log keep = fe->log;
	fe->log = (struct vhu_dirty_log){ 0 };   /* rings without F_LOG, features without LOG_ALL */
	int rc = log_switch(fe);
	fe->log = keep;
	log_free(fe);
	return rc;
}

const struct vhu_dirty_log *vhu_fe_dirty_log(const struct vhu_fe *fe)
{
	return fe->log.bitmap ? &fe->log : NULL;
}

int vhu_fe_stop(struct vhu_fe *fe)
{
	int rc = 0;
	for (unsigned i = 0; i < fe->nq; i++) {
		struct vhu_user_vring_state s = { i, 0 };
		struct vhu_user_msg r;
		int e = fe_request(fe, VHU_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &r, sizeof(s));
		if (e < 0 && !rc)
			rc = e;
	}
	return rc;
}

void *vhu_fe_alloc(struct vhu_fe *fe, size_t size, size_t align, uint64_t *addr)
{
	void *p = NULL;
	pthread_mutex_lock(&fe->alloc_lock);
	size_t off = align_up(fe->alloc_off, align ? align : 8);
	if (fe->mem && off + size <= fe->mem_size) {
		fe->alloc_off = off + size;
		*addr = fe_dev_addr(fe, off);    /* the one region starts at guest address 0 */
		p = fe->mem + off;
	}
	pthread_mutex_unlock(&fe->alloc_lock);
	return p;
}

/* ---- queues --------------------------------------------------------------- */

struct vhu_fe_queue *vhu_fe_queue(struct vhu_fe *fe, unsigned index)
{
	return index < fe->nq ? &fe->q[index] : NULL;
}

struct vhu_drv_vq *vhu_fe_queue_vq(struct vhu_fe_queue *q) { return &q->drv; }
int vhu_fe_queue_call_fd(struct vhu_fe_queue *q) { return q->call; }
bool vhu_fe_queue_error(struct vhu_fe_queue *q) { return atomic_load(&q->error); }

int vhu_fe_queue_kick(struct vhu_fe_queue *q)
{
	if (!vhu_drv_vq_kick_prepare(&q->drv))
		return 0;
	if (q->fe->notify == VHU_FE_NOTIFY_INBAND) {
		atomic_fetch_add_explicit(&q->kicks_inband, 1, memory_order_relaxed);
		return fe_set_state(q->fe, VHU_USER_VRING_KICK, q->index, 0);
	}
	void *db = fe_doorbell_current(q);
	if (db) {
		/* one store, as a driver writes its notify area (§4.1.5.2):
		 * the value with NOTIFICATION_DATA, else the queue index */
		if (vhu_has_feature(q->fe->features, VHU_F_NOTIFICATION_DATA))
			__atomic_store_n((uint32_t *)db, vhu_drv_vq_notification_data(&q->drv), __ATOMIC_RELEASE);
		else
			__atomic_store_n((uint16_t *)db, (uint16_t)q->index, __ATOMIC_RELEASE);
		atomic_fetch_add_explicit(&q->kicks_doorbell, 1, memory_order_relaxed);
		return 0;
	}
	atomic_fetch_add_explicit(&q->kicks_eventfd, 1, memory_order_relaxed);
	uint64_t one = 1;
	return write(q->kick, &one, 8) == 8 ? 0 : -errno;
}

/* Hybrid polling: with used-buffer notifications off, watch the ring for
 * up to spin_ns. True if a used buffer came. */
static bool spin_for_used(struct vhu_fe_queue *q, uint32_t spin_ns)
{
	struct timespec t0, t;
	vhu_drv_vq_disable_cb(&q->drv);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		for (int i = 0; i < 64; i++) {
			if (vhu_drv_vq_has_used(&q->drv))
				return true;
			vhu_cpu_relax();
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000000000ll + (t.tv_nsec - t0.tv_nsec) >= spin_ns)
			return false;
	}
}

/* The back-end closed the connection (or died): the socket reads as
 * ended. Anything else there would be a reply nobody asked for. */
static bool back_end_gone(struct vhu_fe *fe)
{
	struct pollfd p = { .fd = fe->sock, .events = POLLIN };
	char c;

	if (fe->sock < 0)
		return true;
	if (poll(&p, 1, 0) <= 0)
		return false;
	if (p.revents & (POLLHUP | POLLERR))
		return true;
	return recv(fe->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

int vhu_fe_queue_wait(struct vhu_fe_queue *q, int timeout_ms)
{
	struct vhu_fe *fe = q->fe;
	int64_t deadline = now_ms() + (timeout_ms < 0 ? fe->cfg.timeout_ms : timeout_ms);

	if (fe->notify != VHU_FE_NOTIFY_POLL && fe->spin_ns && !vhu_drv_vq_broken(&q->drv) &&
	    spin_for_used(q, fe->spin_ns))
		return 0;

	for (;;) {
		if (vhu_drv_vq_broken(&q->drv))
			return vhu_drv_vq_broken(&q->drv);
		if (atomic_load(&q->error))
			return -EIO;
		if (fe->notify == VHU_FE_NOTIFY_POLL) {
			if (vhu_drv_vq_has_used(&q->drv))
				return 0;
		} else if (vhu_drv_vq_enable_cb(&q->drv)) {
			return 0;   /* used meanwhile: no need to sleep */
		}
		int left = (int)(deadline - now_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		if (fe->notify == VHU_FE_NOTIFY_POLL) {
			/* spin on the used ring; give the CPU away only now and
			 * then (sched_yield is a system call) */
			for (int i = 0; i < 256 && !vhu_drv_vq_has_used(&q->drv); i++)
				vhu_cpu_relax();
			if (!vhu_drv_vq_has_used(&q->drv)) {
				if (back_end_gone(fe))
					return -ECONNRESET;
				/* a back-end behind our IOMMU may wait on an answer */
				if (fe->iommu.mode != VHU_FE_IOMMU_OFF && vhu_fe_serve_backend(fe, 0) < 0)
					return -ECONNRESET;
				sched_yield();
			}
		} else if (fe->notify == VHU_FE_NOTIFY_INBAND) {
			if (atomic_load(&q->inband_calls)) {
				atomic_fetch_sub(&q->inband_calls, 1);
				continue;
			}
			int r = vhu_fe_serve_backend(fe, left < 100 ? left : 100);
			if (r < 0)
				return -ECONNRESET;
		} else {
			/* the socket too: a back-end never writes there
			 * unasked, so anything on it is the back-end gone */
			struct pollfd p[4] = { { .fd = q->call, .events = POLLIN }, { .fd = fe->sock, .events = POLLIN },
					       { .fd = fe->chan, .events = POLLIN },
					       { .fd = fe_iommu_wake_fd(fe), .events = POLLIN } };
			int r = poll(p, 4, left);   /* an fd of -1 is left out */
			if (r > 0 && (p[0].revents & POLLIN)) {
				uint64_t v;
				(void)!read(q->call, &v, 8);
			}
			if (r > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && back_end_gone(fe))
				return -ECONNRESET;
			if (r > 0 && fe->chan >= 0 && (p[2].revents & (POLLIN | POLLHUP)) &&
			    vhu_fe_serve_backend(fe, 0) < 0)
				return -ECONNRESET;
			if (r > 0 && (p[3].revents & POLLIN))
				fe_iommu_answer_misses(fe);
		}
	}
}
