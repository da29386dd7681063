/* SPDX-License-Identifier: MIT */
/* vhost-user front-end: connection, negotiation, memory, rings, waits. */
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
#include "vhu/frontend.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"

/* Protocol features this front-end knows how to use. */
#define FE_PF_KNOWN                                                             \
	((1ull << VHU_USER_PROTOCOL_F_MQ) | (1ull << VHU_USER_PROTOCOL_F_REPLY_ACK) | \
	 (1ull << VHU_USER_PROTOCOL_F_BACKEND_REQ) | (1ull << VHU_USER_PROTOCOL_F_CONFIG) | \
	 (1ull << VHU_USER_PROTOCOL_F_RESET_DEVICE) |                           \
	 (1ull << VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS) |                   \
	 (1ull << VHU_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | (1ull << VHU_USER_PROTOCOL_F_STATUS))

struct vhu_fe_queue {
	struct vhu_fe *fe;
	unsigned index;
	struct vhu_drv_vq drv;
	int kick, call;
	atomic_uint inband_calls;
	atomic_bool error;
};

struct vhu_fe {
	struct vhu_fe_config cfg;
	int sock, chan;
	pthread_mutex_t lock;       /* requests on sock */
	pthread_mutex_t chan_lock;  /* the back-end channel */
	uint64_t offered, offered_pf, pf, features, queue_num, max_slots;
	atomic_bool config_changed;
	int memfd;
	unsigned char *mem;
	size_t mem_size, alloc_off;
	pthread_mutex_t alloc_lock;
	struct vhu_fe_queue *q;
	unsigned nq;
	enum vhu_fe_notify notify;
	uint32_t spin_ns;
};

static void fe_log(struct vhu_fe *fe, enum vhu_log_level l, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fe_log(struct vhu_fe *fe, enum vhu_log_level l, const char *fmt, ...)
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

static bool has_pf(const struct vhu_fe *fe, unsigned bit) { return fe->pf >> bit & 1; }

/* ---- the back-end channel ---------------------------------------------- */

static int serve_one(struct vhu_fe *fe)
{
	struct vhu_user_msg m, r;
	int rc = vhu_user_recv(fe->chan, &m, fe->cfg.timeout_ms);
	uint64_t result = 0;

	if (rc < 0)
		return rc;
	vhu_user_msg_close_fds(&m);
	uint32_t idx = m.payload.state.index;
	switch (m.hdr.request) {
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
	default:
		fe_log(fe, VHU_LOG_WARN, "back-end request %u not supported", m.hdr.request);
		result = 1;
	}
	if (m.hdr.flags & VHU_USER_NEED_REPLY_MASK) {
		memset(&r, 0, sizeof(r));
		r.hdr = (struct vhu_user_hdr){ m.hdr.request, VHU_USER_VERSION | VHU_USER_REPLY_MASK, 8 };
		r.payload.u64 = result;
		rc = vhu_user_send(fe->chan, &r);
		if (rc < 0)
			return rc;
	}
	return 1;
}

int vhu_fe_serve_backend(struct vhu_fe *fe, int timeout_ms)
{
	int n = 0;

	if (fe->chan < 0)
		return 0;
	pthread_mutex_lock(&fe->chan_lock);
	for (;;) {
		struct pollfd p = { .fd = fe->chan, .events = POLLIN };
		int r = poll(&p, 1, n ? 0 : timeout_ms);
		if (r <= 0)
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

/* ---- requests ------------------------------------------------------------ */

/*
 * Send a request and, if it has a reply of its own or REPLY_ACK is
 * negotiated, wait for the answer (serving the back-end channel meanwhile,
 * since an in-band back-end may be waiting on us). Checks the reply's
 * request, flags and size. An acknowledgement with a non-zero value is
 * -EIO (the back-end refused).
 */
static int request(struct vhu_fe *fe, uint32_t req, const void *payload, uint32_t size,
		   const int *fds, unsigned nfds, struct vhu_user_msg *reply, uint32_t reply_size)
{
	const struct vhu_user_request_info *ri = vhu_user_request_info(req);
	bool body = ri && ri->replies;
	bool ack = !body && has_pf(fe, VHU_USER_PROTOCOL_F_REPLY_ACK);
	struct vhu_user_msg m, r;
	int rc;

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
	for (;;) {
		struct pollfd p[2] = { { .fd = fe->sock, .events = POLLIN }, { .fd = fe->chan, .events = POLLIN } };
		int left = (int)(deadline - now_ms());
		if (left <= 0) {
			rc = -ETIMEDOUT;
			goto out;
		}
		if (poll(p, fe->chan >= 0 ? 2 : 1, left) < 0 && errno != EINTR) {
			rc = -errno;
			goto out;
		}
		if (fe->chan >= 0 && (p[1].revents & POLLIN))
			vhu_fe_serve_backend(fe, 0);
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			break;
	}
	rc = vhu_user_recv(fe->sock, &r, fe->cfg.timeout_ms);
	if (rc < 0)
		goto out;
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
	pthread_mutex_unlock(&fe->lock);
	return rc;
}

static int get_u64(struct vhu_fe *fe, uint32_t req, uint64_t *v)
{
	struct vhu_user_msg r;
	int rc = request(fe, req, NULL, 0, NULL, 0, &r, 8);
	if (rc == 0)
		*v = r.payload.u64;
	return rc;
}

static int set_u64(struct vhu_fe *fe, uint32_t req, uint64_t v)
{
	return request(fe, req, &v, 8, NULL, 0, NULL, 0);
}

static int set_state(struct vhu_fe *fe, uint32_t req, uint32_t index, uint32_t num)
{
	struct vhu_user_vring_state s = { index, num };
	return request(fe, req, &s, sizeof(s), NULL, 0, NULL, 0);
}

/* ---- connection ------------------------------------------------------- */

int vhu_fe_connect(struct vhu_fe **out, const struct vhu_fe_config *cfg)
{
	struct vhu_fe *fe = calloc(1, sizeof(*fe));
	int rc;

	if (!fe)
		return -ENOMEM;
	fe->cfg = *cfg;
	if (fe->cfg.timeout_ms <= 0)
		fe->cfg.timeout_ms = 5000;
	fe->sock = fe->chan = fe->memfd = -1;
	pthread_mutex_init(&fe->lock, NULL);
	pthread_mutex_init(&fe->chan_lock, NULL);
	pthread_mutex_init(&fe->alloc_lock, NULL);
	if (cfg->fd >= 0) {
		fe->sock = cfg->fd;
	} else if (cfg->server) {
		int l = vhu_user_listen(cfg->path);
		if (l < 0) {
			rc = l;
			goto fail;
		}
		fe->sock = vhu_user_accept(l, fe->cfg.timeout_ms);
		close(l);
	} else {
		fe->sock = vhu_user_connect(cfg->path, fe->cfg.timeout_ms);
	}
	if (fe->sock < 0) {
		rc = fe->sock;
		goto fail;
	}
	if ((rc = get_u64(fe, VHU_USER_GET_FEATURES, &fe->offered)) < 0)
		goto fail;
	if (fe->offered >> VHU_USER_F_PROTOCOL_FEATURES & 1) {
		if ((rc = get_u64(fe, VHU_USER_GET_PROTOCOL_FEATURES, &fe->offered_pf)) < 0)
			goto fail;
		uint64_t pf = fe->offered_pf & FE_PF_KNOWN;
		/* the spec makes INBAND depend on both of these */
		if (!(pf >> VHU_USER_PROTOCOL_F_BACKEND_REQ & 1) || !(pf >> VHU_USER_PROTOCOL_F_REPLY_ACK & 1))
			pf &= ~(1ull << VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS);
		if ((rc = set_u64(fe, VHU_USER_SET_PROTOCOL_FEATURES, pf)) < 0)
			goto fail;
		fe->pf = pf;   /* from here on, requests ask for acks */
	}
	if (has_pf(fe, VHU_USER_PROTOCOL_F_MQ) && (rc = get_u64(fe, VHU_USER_GET_QUEUE_NUM, &fe->queue_num)) < 0)
		goto fail;
	if (has_pf(fe, VHU_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) &&
	    (rc = get_u64(fe, VHU_USER_GET_MAX_MEM_SLOTS, &fe->max_slots)) < 0)
		goto fail;
	if (has_pf(fe, VHU_USER_PROTOCOL_F_BACKEND_REQ)) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			rc = -errno;
			goto fail;
		}
		fe->chan = sv[0];
		rc = request(fe, VHU_USER_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1, NULL, 0);
		close(sv[1]);
		if (rc < 0)
			goto fail;
	}
	if ((rc = request(fe, VHU_USER_SET_OWNER, NULL, 0, NULL, 0, NULL, 0)) < 0)
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
	for (unsigned i = 0; i < fe->nq; i++) {
		struct vhu_fe_queue *q = &fe->q[i];
		vhu_drv_vq_destroy(&q->drv);
		if (q->kick >= 0)
			close(q->kick);
		if (q->call >= 0)
			close(q->call);
	}
	free(fe->q);
	if (fe->mem)
		munmap(fe->mem, fe->mem_size);
	if (fe->memfd >= 0)
		close(fe->memfd);
	if (fe->chan >= 0)
		close(fe->chan);
	if (fe->sock >= 0)
		close(fe->sock);
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

	if (!has_pf(fe, VHU_USER_PROTOCOL_F_CONFIG))
		return -ENOTSUP;
	if (len > VHU_USER_MAX_CONFIG_SIZE)
		return -EINVAL;
	/* "payload size MUST match the front-end's request"; empty is an error */
	rc = request(fe, VHU_USER_GET_CONFIG, &c, VHU_USER_CONFIG_HDR_SIZE + len, NULL, 0, &r,
		     VHU_USER_CONFIG_HDR_SIZE + len);
	if (rc == 0)
		memcpy(buf, r.payload.config.region, len);
	return rc;
}

int vhu_fe_set_config(struct vhu_fe *fe, uint32_t offset, const void *buf, uint32_t len)
{
	struct vhu_user_config c = { .offset = offset, .size = len, .flags = VHU_USER_CONFIG_FLAG_WRITABLE };
	if (!has_pf(fe, VHU_USER_PROTOCOL_F_CONFIG))
		return -ENOTSUP;
	if (len > VHU_USER_MAX_CONFIG_SIZE)
		return -EINVAL;
	memcpy(c.region, buf, len);
	return request(fe, VHU_USER_SET_CONFIG, &c, VHU_USER_CONFIG_HDR_SIZE + len, NULL, 0, NULL, 0);
}

int vhu_fe_get_status(struct vhu_fe *fe, uint8_t *status)
{
	uint64_t v;
	int rc;
	if (!has_pf(fe, VHU_USER_PROTOCOL_F_STATUS))
		return -ENOTSUP;
	rc = get_u64(fe, VHU_USER_GET_STATUS, &v);
	if (rc == 0)
		*status = (uint8_t)v;
	return rc;
}

int vhu_fe_set_status(struct vhu_fe *fe, uint8_t status)
{
	if (!has_pf(fe, VHU_USER_PROTOCOL_F_STATUS))
		return -ENOTSUP;
	return set_u64(fe, VHU_USER_SET_STATUS, status);
}

int vhu_fe_reset_device(struct vhu_fe *fe)
{
	if (!has_pf(fe, VHU_USER_PROTOCOL_F_RESET_DEVICE))
		return -ENOTSUP;
	return request(fe, VHU_USER_RESET_DEVICE, NULL, 0, NULL, 0, NULL, 0);
}

/* ---- start and stop ------------------------------------------------------ */

static size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

static int register_memory(struct vhu_fe *fe)
{
	struct vhu_user_mem_region reg = { 0, fe->mem_size, (uintptr_t)fe->mem, 0 };
	int fd = fe->memfd;

	if (fe->max_slots) {
		struct vhu_user_mem_single s = { 0, reg };
		return request(fe, VHU_USER_ADD_MEM_REG, &s, sizeof(s), &fd, 1, NULL, 0);
	}
	struct vhu_user_mem_table t = { .nregions = 1 };
	t.regions[0] = reg;
	return request(fe, VHU_USER_SET_MEM_TABLE, &t, 8 + sizeof(reg), &fd, 1, NULL, 0);
}

static int start_queue(struct vhu_fe *fe, struct vhu_fe_queue *q, const struct vhu_fe_setup *s)
{
	bool packed = vhu_has_feature(fe->features, VHU_F_RING_PACKED);
	struct vhu_vq_layout l;
	uint64_t ring_gpa, ind_gpa = 0;
	unsigned char *ring, *ind = NULL;
	int rc;

	vhu_vq_layout(s->queue_size, packed, &l);
	ring = vhu_fe_alloc(fe, l.size, 4096, &ring_gpa);
	if (s->indirect_max && vhu_has_feature(fe->features, VHU_F_INDIRECT_DESC))
		ind = vhu_fe_alloc(fe, (size_t)s->queue_size * s->indirect_max * 16, 64, &ind_gpa);
	if (!ring || (s->indirect_max && vhu_has_feature(fe->features, VHU_F_INDIRECT_DESC) && !ind))
		return -ENOMEM;
	memset(ring, 0, l.size);
	struct vhu_vq_config c = {
		.num = s->queue_size, .index = (uint16_t)q->index, .features = fe->features,
		.desc = ring + l.desc_off, .driver_area = ring + l.driver_off, .device_area = ring + l.device_off,
	};
	if ((rc = vhu_drv_vq_init(&q->drv, &c, ind, ind_gpa, ind ? s->indirect_max : 0)) < 0)
		return rc;
	struct vhu_vq_pos pos;
	vhu_drv_vq_get_pos(&q->drv, &pos);
	if ((rc = set_state(fe, VHU_USER_SET_VRING_NUM, q->index, s->queue_size)) < 0 ||
	    (rc = set_state(fe, VHU_USER_SET_VRING_BASE, q->index, vhu_vq_pos_encode(&pos, packed))) < 0)
		return rc;
	struct vhu_user_vring_addr a = {
		.index = q->index, .desc_user_addr = (uintptr_t)c.desc, .avail_user_addr = (uintptr_t)c.driver_area,
		.used_user_addr = (uintptr_t)c.device_area,
	};
	if ((rc = request(fe, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL, 0)) < 0)
		return rc;
	switch (s->notify) {
	case VHU_FE_NOTIFY_EVENTFD:
	case VHU_FE_NOTIFY_POLL: {
		/* Polling keeps the call eventfd too and turns used-buffer
		 * notifications off instead: libvhost-user (qemu-storage-daemon
		 * 7.2) writes to the call fd even when told there is none, and
		 * its device dies on the error. */
		q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		q->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->call < 0 || q->kick < 0)
			return -errno;
		uint64_t v = q->index;
		if ((rc = request(fe, VHU_USER_SET_VRING_CALL, &v, 8, &q->call, 1, NULL, 0)) < 0 ||
		    (rc = request(fe, VHU_USER_SET_VRING_KICK, &v, 8, &q->kick, 1, NULL, 0)) < 0)
			return rc;
		if (s->notify == VHU_FE_NOTIFY_POLL)
			vhu_drv_vq_disable_cb(&q->drv);
		break;
	}
	case VHU_FE_NOTIFY_INBAND:
		/* no fds at all: an fd-less SET_VRING_KICK would mean polling;
		 * the ring starts on its first in-band VRING_KICK */
		if ((rc = set_state(fe, VHU_USER_VRING_KICK, q->index, 0)) < 0)
			return rc;
		break;
	}
	if (fe->features >> VHU_USER_F_PROTOCOL_FEATURES & 1)
		rc = set_state(fe, VHU_USER_SET_VRING_ENABLE, q->index, 1);
	return rc;
}

int vhu_fe_start(struct vhu_fe *fe, const struct vhu_fe_setup *s)
{
	int rc;

	if (fe->q || !s->num_queues || !s->queue_size)
		return -EINVAL;
	if (s->num_queues > 1 && s->num_queues > fe->queue_num)
		return -ERANGE;
	if (s->notify == VHU_FE_NOTIFY_INBAND && !has_pf(fe, VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS))
		return -ENOTSUP;
	/* vhost-user kicks carry no data: NOTIFICATION_DATA cannot work */
	fe->features = (s->features & fe->offered & ~VHU_BIT(VHU_F_NOTIFICATION_DATA)) |
		       (fe->offered & (1ull << VHU_USER_F_PROTOCOL_FEATURES));
	if ((rc = set_u64(fe, VHU_USER_SET_FEATURES, fe->features)) < 0)
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
	if ((rc = register_memory(fe)) < 0)
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
	if (has_pf(fe, VHU_USER_PROTOCOL_F_STATUS))
		vhu_fe_set_status(fe, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK |
				  VHU_STATUS_DRIVER_OK);
	return 0;
}

int vhu_fe_stop(struct vhu_fe *fe)
{
	int rc = 0;
	for (unsigned i = 0; i < fe->nq; i++) {
		struct vhu_user_vring_state s = { i, 0 };
		struct vhu_user_msg r;
		int e = request(fe, VHU_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &r, sizeof(s));
		if (e < 0 && !rc)
			rc = e;
	}
	return rc;
}

void *vhu_fe_alloc(struct vhu_fe *fe, size_t size, size_t align, uint64_t *gpa)
{
	void *p = NULL;
	pthread_mutex_lock(&fe->alloc_lock);
	size_t off = align_up(fe->alloc_off, align ? align : 8);
	if (fe->mem && off + size <= fe->mem_size) {
		fe->alloc_off = off + size;
		*gpa = off;    /* the one region starts at guest address 0 */
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
	if (q->fe->notify == VHU_FE_NOTIFY_INBAND)
		return set_state(q->fe, VHU_USER_VRING_KICK, q->index, 0);
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
			if (!vhu_drv_vq_has_used(&q->drv))
				sched_yield();
		} else if (fe->notify == VHU_FE_NOTIFY_INBAND) {
			if (atomic_load(&q->inband_calls)) {
				atomic_fetch_sub(&q->inband_calls, 1);
				continue;
			}
			int r = vhu_fe_serve_backend(fe, left < 100 ? left : 100);
			if (r < 0)
				return r;
		} else {
			struct pollfd p[2] = { { .fd = q->call, .events = POLLIN }, { .fd = fe->chan, .events = POLLIN } };
			int r = poll(p, fe->chan >= 0 ? 2 : 1, left);
			if (r > 0 && (p[0].revents & POLLIN)) {
				uint64_t v;
				(void)!read(q->call, &v, 8);
			}
			if (r > 0 && fe->chan >= 0 && (p[1].revents & POLLIN))
				vhu_fe_serve_backend(fe, 0);
		}
	}
}
