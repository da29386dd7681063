/* SPDX-License-Identifier: MIT */
/*
 * The virtio-mmio bridge (vhu/mmio_bridge.h): the model's ops as vhost-user
 * requests, and the thread (or the caller's loop) that turns the back-end's
 * call eventfds and channel into interrupts.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vhu/mmio_bridge.h"
#include "vhu/vhost_user.h"
#include "vhu/virtio.h"
#include "vhu/vq.h"

#define EV_CHANNEL 0xfffe
#define EV_STOP 0xffff
/* vhost-user's own bits, not the guest's business (vhost-user spec,
 * "Feature bits"; VHOST_F_LOG_ALL is bit 26) */
#define NOT_FOR_GUESTS (VHU_BIT(VHU_USER_F_PROTOCOL_FEATURES) | VHU_BIT(26) | VHU_BIT(VHU_F_ACCESS_PLATFORM))

struct bridge_queue {
	int kick, call;
	bool started;
};

struct vhu_mmio_bridge {
	struct vhu_mmio_bridge_config cfg;
	struct vhu_fe *fe;
	struct vhu_mmio *mmio;
	struct bridge_queue *q;
	uint16_t nq;
	int epfd, stop_fd;
	pthread_t thread;
	bool thread_started;
	atomic_bool gone;
	pthread_mutex_t mem_lock;      /* the guest memory and whether it was sent */
	struct vhu_fe_vmm_region *regions;
	unsigned nregions;
	bool features_set;
	/* the config space as the back-end last said it was */
	pthread_mutex_t config_lock;
	uint8_t config[256];
};

static void blog(struct vhu_mmio_bridge *b, enum vhu_log_level l, const char *msg)
{
	if (b->cfg.fe.log && (int)l <= b->cfg.fe.log_level)
		b->cfg.fe.log(b->cfg.fe.log_opaque, l, msg);
}

/* ---- the model's ops ------------------------------------------------------------ */

static int send_memory(struct vhu_mmio_bridge *b)
{
	if (!b->nregions)
		return -EFAULT;
	return vhu_fe_vmm_set_memory(b->fe, b->regions, b->nregions);
}

static int refresh_config(struct vhu_mmio_bridge *b)
{
	uint8_t buf[256];
	if (!b->cfg.config_size || !(vhu_fe_protocol_features(b->fe) >> VHU_USER_PROTOCOL_F_CONFIG & 1))
		return 0;
	int rc = vhu_fe_get_config(b->fe, 0, buf, b->cfg.config_size);
	if (rc == 0) {
		pthread_mutex_lock(&b->config_lock);
		memcpy(b->config, buf, b->cfg.config_size);
		pthread_mutex_unlock(&b->config_lock);
	}
	return rc;
}

static int op_set_features(void *opaque, uint64_t features)
{
	struct vhu_mmio_bridge *b = opaque;
	int rc = vhu_fe_vmm_set_features(b->fe, features);
	if (rc == 0 && (vhu_fe_features(b->fe) & ~NOT_FOR_GUESTS) != features)
		rc = -EPROTO;   /* the back-end took less than the driver accepted */
	pthread_mutex_lock(&b->mem_lock);
	if (rc == 0 && (rc = send_memory(b)) == 0)
		b->features_set = true;
	pthread_mutex_unlock(&b->mem_lock);
	return rc;
}

static int op_queue_enable(void *opaque, const struct vhu_mmio_ring *r)
{
	struct vhu_mmio_bridge *b = opaque;
	bool packed = vhu_has_feature(vhu_fe_features(b->fe), VHU_F_RING_PACKED);
	/* a fresh ring: a packed ring's wrap counters start at 1 (§2.8.1) */
	struct vhu_vq_pos start = { .avail_wrap = packed, .used_wrap = packed };
	struct vhu_fe_vmm_vring v = {
		.num = r->size, .desc = r->desc, .driver = r->driver, .device = r->device,
		.base = vhu_vq_pos_encode(&start, packed), .kick_fd = b->q[r->index].kick, .call_fd = b->q[r->index].call,
	};
	int rc = vhu_fe_vmm_vring_start(b->fe, r->index, &v);
	if (rc == 0)
		b->q[r->index].started = true;
	return rc;
}

static void op_queue_disable(void *opaque, uint16_t index)
{
	struct vhu_mmio_bridge *b = opaque;
	if (!b->q[index].started)
		return;
	b->q[index].started = false;
	if (vhu_fe_vmm_vring_stop(b->fe, index, NULL) < 0)
		blog(b, VHU_LOG_WARN, "a ring did not stop cleanly: the back-end may have gone");
}

static void op_notify(void *opaque, uint16_t index, uint32_t value)
{
	struct vhu_mmio_bridge *b = opaque;
	(void)vhu_fe_vmm_notify(b->fe, index, value);
}

static void op_driver_ok(void *opaque)
{
	struct vhu_mmio_bridge *b = opaque;
	if (vhu_fe_protocol_features(b->fe) >> VHU_USER_PROTOCOL_F_STATUS & 1)
		(void)vhu_fe_set_status(b->fe, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK |
						       VHU_STATUS_DRIVER_OK);
}

static void op_reset(void *opaque)
{
	struct vhu_mmio_bridge *b = opaque;
	pthread_mutex_lock(&b->mem_lock);
	b->features_set = false;
	pthread_mutex_unlock(&b->mem_lock);
	/* the rings are stopped already; the back-end forgets the rest */
	if (vhu_fe_protocol_features(b->fe) >> VHU_USER_PROTOCOL_F_RESET_DEVICE & 1)
		(void)vhu_fe_reset_device(b->fe);
	else if (vhu_fe_protocol_features(b->fe) >> VHU_USER_PROTOCOL_F_STATUS & 1)
		(void)vhu_fe_set_status(b->fe, 0);
}

static int op_config_read(void *opaque, uint32_t offset, void *buf, uint32_t len)
{
	struct vhu_mmio_bridge *b = opaque;
	pthread_mutex_lock(&b->config_lock);
	memcpy(buf, b->config + offset, len);   /* the model checked the range */
	pthread_mutex_unlock(&b->config_lock);
	return 0;
}

static int op_config_write(void *opaque, uint32_t offset, const void *buf, uint32_t len)
{
	struct vhu_mmio_bridge *b = opaque;
	int rc = vhu_fe_set_config(b->fe, offset, buf, len);
	if (rc == 0)
		rc = refresh_config(b);   /* what the device made of it */
	return rc;
}

static const struct vhu_mmio_ops bridge_ops = {
	.set_features = op_set_features,
	.queue_enable = op_queue_enable,
	.queue_disable = op_queue_disable,
	.notify = op_notify,
	.driver_ok = op_driver_ok,
	.reset = op_reset,
	.config_read = op_config_read,
	.config_write = op_config_write,
};

/* ---- interrupts ------------------------------------------------------------------ */

static void back_end_gone(struct vhu_mmio_bridge *b)
{
	if (atomic_exchange(&b->gone, true))
		return;
	blog(b, VHU_LOG_ERROR, "the back-end went away: the device needs a reset");
	epoll_ctl(b->epfd, EPOLL_CTL_DEL, vhu_fe_backend_fd(b->fe), NULL);
	vhu_mmio_needs_reset(b->mmio);
}

static void serve_channel(struct vhu_mmio_bridge *b)
{
	if (vhu_fe_serve_backend(b->fe, 0) < 0) {
		back_end_gone(b);
		return;
	}
	if (vhu_fe_config_changed(b->fe) && refresh_config(b) == 0)
		vhu_mmio_config_changed(b->mmio);
	for (unsigned i = 0; i < b->nq; i++) {
		if (vhu_fe_queue_error(vhu_fe_queue(b->fe, i))) {
			blog(b, VHU_LOG_ERROR, "the back-end broke a queue: the device needs a reset");
			vhu_mmio_needs_reset(b->mmio);
		}
	}
}

int vhu_mmio_bridge_process(struct vhu_mmio_bridge *b)
{
	struct epoll_event ev[16];
	int n;

	while ((n = epoll_wait(b->epfd, ev, 16, 0)) > 0) {
		uint32_t used = 0;
		for (int i = 0; i < n; i++) {
			uint32_t what = ev[i].data.u32;
			uint64_t v;
			if (what == EV_CHANNEL)
				serve_channel(b);
			else if (what < b->nq && read(b->q[what].call, &v, 8) == 8)
				used = VHU_MMIO_INT_VRING;
		}
		/* one interrupt for all queues: the driver looks at every ring (§4.2.3.4) */
		vhu_mmio_raise(b->mmio, used);
	}
	return atomic_load(&b->gone) ? -ECONNRESET : 0;
}

int vhu_mmio_bridge_fd(const struct vhu_mmio_bridge *b) { return b->epfd; }

static void *interrupt_thread(void *arg)
{
	struct vhu_mmio_bridge *b = arg;
	struct pollfd p[2] = { { .fd = b->epfd, .events = POLLIN }, { .fd = b->stop_fd, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (p[0].revents)
			vhu_mmio_bridge_process(b);
	}
	return NULL;
}

/* ---- life ------------------------------------------------------------------------- */

static int watch(struct vhu_mmio_bridge *b, int fd, uint32_t what)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = what };
	return fd < 0 || epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static int copy_regions(struct vhu_mmio_bridge *b, const struct vhu_fe_vmm_region *r, unsigned n)
{
	struct vhu_fe_vmm_region *c = n ? malloc(n * sizeof(*c)) : NULL;
	if (n && !c)
		return -ENOMEM;
	if (n)
		memcpy(c, r, n * sizeof(*c));
	free(b->regions);
	b->regions = c;
	b->nregions = n;
	return 0;
}

static int make_queues(struct vhu_mmio_bridge *b)
{
	int rc;
	b->q = calloc(b->nq, sizeof(*b->q));
	if (!b->q)
		return -ENOMEM;
	for (unsigned i = 0; i < b->nq; i++)
		b->q[i].kick = b->q[i].call = -1;
	for (unsigned i = 0; i < b->nq; i++) {
		b->q[i].kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		b->q[i].call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (b->q[i].kick < 0 || b->q[i].call < 0)
			return -errno;
		if ((rc = watch(b, b->q[i].call, i)) < 0)
			return rc;
	}
	return 0;
}

static int build(struct vhu_mmio_bridge *b)
{
	int rc;
	uint64_t mq = vhu_fe_queue_num(b->fe);

	b->nq = b->cfg.num_queues ? b->cfg.num_queues : (uint16_t)(mq ? (mq > 1024 ? 1024 : mq) : 1);
	if ((rc = vhu_fe_vmm_begin(b->fe, b->nq)) < 0 || (rc = make_queues(b)) < 0 ||
	    (rc = watch(b, vhu_fe_backend_fd(b->fe), EV_CHANNEL)) < 0 || (rc = refresh_config(b)) < 0)
		return rc;
	uint64_t offer = vhu_fe_offered_features(b->fe) & ~NOT_FOR_GUESTS;
	if (b->cfg.features)
		offer &= b->cfg.features;
	struct vhu_mmio_config mc = {
		.device_id = b->cfg.device_id, .vendor_id = b->cfg.vendor_id, .features = offer,
		.num_queues = b->nq, .queue_size_max = b->cfg.queue_size_max ? b->cfg.queue_size_max : 256,
		.config_size = b->cfg.config_size, .ops = &bridge_ops, .opaque = b,
		.interrupt = b->cfg.interrupt, .interrupt_opaque = b->cfg.interrupt_opaque,
		.log = b->cfg.fe.log, .log_opaque = b->cfg.fe.log_opaque, .log_level = b->cfg.fe.log_level,
	};
	if (!(b->mmio = vhu_mmio_new(&mc)))
		return -errno;
	if (!b->cfg.own_loop) {
		if ((rc = pthread_create(&b->thread, NULL, interrupt_thread, b)) != 0)
			return -rc;
		b->thread_started = true;
	}
	return 0;
}

int vhu_mmio_bridge_new(struct vhu_mmio_bridge **out, const struct vhu_mmio_bridge_config *cfg)
{
	int rc;

	if (!cfg->device_id || cfg->config_size > 256 || (cfg->num_regions && !cfg->regions))
		return -EINVAL;
	struct vhu_mmio_bridge *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->cfg = *cfg;
	b->cfg.regions = NULL;
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&b->config_lock, NULL);
	pthread_mutex_init(&b->mem_lock, NULL);
	if (b->epfd < 0 || b->stop_fd < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = copy_regions(b, cfg->regions, cfg->num_regions)) < 0 || (rc = vhu_fe_connect(&b->fe, &cfg->fe)) < 0 ||
	    (rc = build(b)) < 0)
		goto fail;
	*out = b;
	return 0;
fail:
	vhu_mmio_bridge_free(b);
	return rc;
}

void vhu_mmio_bridge_free(struct vhu_mmio_bridge *b)
{
	uint64_t one = 1;
	if (!b)
		return;
	if (b->thread_started) {
		(void)!write(b->stop_fd, &one, 8);
		pthread_join(b->thread, NULL);
	}
	for (unsigned i = 0; b->q && i < b->nq; i++)
		if (b->q[i].started && !atomic_load(&b->gone))
			op_queue_disable(b, (uint16_t)i);
	vhu_mmio_free(b->mmio);
	vhu_fe_close(b->fe);
	for (unsigned i = 0; b->q && i < b->nq; i++) {
		if (b->q[i].kick >= 0)
			close(b->q[i].kick);
		if (b->q[i].call >= 0)
			close(b->q[i].call);
	}
	free(b->q);
	free(b->regions);
	if (b->epfd >= 0)
		close(b->epfd);
	if (b->stop_fd >= 0)
		close(b->stop_fd);
	pthread_mutex_destroy(&b->config_lock);
	pthread_mutex_destroy(&b->mem_lock);
	free(b);
}

struct vhu_mmio *vhu_mmio_bridge_mmio(struct vhu_mmio_bridge *b) { return b->mmio; }
struct vhu_fe *vhu_mmio_bridge_fe(struct vhu_mmio_bridge *b) { return b->fe; }

int vhu_mmio_bridge_set_memory(struct vhu_mmio_bridge *b, const struct vhu_fe_vmm_region *r, unsigned n)
{
	pthread_mutex_lock(&b->mem_lock);
	int rc = copy_regions(b, r, n);
	if (rc == 0 && b->features_set)
		rc = send_memory(b);
	pthread_mutex_unlock(&b->mem_lock);
	return rc;
}
