/* SPDX-License-Identifier: MIT */
/* The device instance: life, features, status, config space, the transport. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../common/log_internal.h"
#include "device_internal.h"
#include "vhu/virtio.h"

void vhu_device_log(struct vhu_device *dev, enum vhu_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vhu_log_emit(dev->cfg.log, dev->cfg.log_opaque, dev->cfg.log_level, level, fmt, ap);
	va_end(ap);
}

static bool config_ok(const struct vhu_device_config *cfg)
{
	return cfg->ops && cfg->ops->handle && cfg->num_queues > 0 && cfg->num_queues <= 256 &&
	       cfg->max_queue_size > 0 && cfg->max_queue_size <= VHU_VRING_MAX_SIZE && cfg->config_size <= 256 &&
	       cfg->exec <= VHU_EXEC_APP && (cfg->exec == VHU_EXEC_POLL_GROUP) == (cfg->poll_group != NULL);
}

/* The queue's place in its execution model. */
static int exec_queue_init(struct vhu_queue *q)
{
	switch (q->dev->cfg.exec) {
	case VHU_EXEC_THREAD_PER_QUEUE:
		return exec_thread_start(q);
	case VHU_EXEC_POLL_GROUP:
		return pg_add(q->dev->cfg.poll_group, q);
	default:
		q->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		return q->wake_fd < 0 ? -errno : 0;
	}
}

struct vhu_device *vhu_device_new(const struct vhu_device_config *cfg)
{
	struct vhu_device *dev;
	int r = -ENOMEM;

	if (!config_ok(cfg)) {
		errno = EINVAL;
		return NULL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->cfg = *cfg;
	dev->epoll_fd = -1;
	dev->q = calloc(cfg->num_queues, sizeof(*dev->q));
	if (!dev->q)
		goto fail;
	dev->cfg.num_queues = 0;	/* counts the queues made, for a failure half-way */
	for (uint16_t i = 0; i < cfg->num_queues; i++) {
		dq_init(dev, &dev->q[i], i);
		dev->cfg.num_queues = (uint16_t)(i + 1);
		if ((r = exec_queue_init(&dev->q[i])) < 0)
			goto fail;
	}
	if (cfg->exec == VHU_EXEC_APP && (r = exec_app_init(dev)) < 0)
		goto fail;
	return dev;
fail:
	vhu_device_free(dev);
	errno = -r;
	return NULL;
}

void vhu_device_free(struct vhu_device *dev)
{
	if (!dev)
		return;
	if (dev->q) {
		for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
			dq_pause(&dev->q[i]);
			dq_stop(&dev->q[i], NULL);
			dq_resume(&dev->q[i]);
		}
		for (unsigned i = 0; i < dev->cfg.num_queues; i++)
			dq_destroy(&dev->q[i]);
	}
	exec_app_fini(dev);
	free(dev->q);
	free(dev);
}

void *vhu_device_priv(struct vhu_device *dev) { return dev->cfg.priv; }
uint16_t vhu_device_num_queues(const struct vhu_device *dev) { return dev->cfg.num_queues; }
uint64_t vhu_device_features(const struct vhu_device *dev) { return dev->features; }
uint8_t vhu_device_status(const struct vhu_device *dev) { return (uint8_t)atomic_load(&dev->status); }

struct vhu_queue *vhu_device_queue(struct vhu_device *dev, uint16_t index)
{
	return index < dev->cfg.num_queues ? &dev->q[index] : NULL;
}

int vhu_device_config_changed(struct vhu_device *dev)
{
	if (!dev->transport.config_changed)
		return -ENOTCONN;
	return dev->transport.config_changed(dev->transport.opaque);
}

int dev_attach(struct vhu_device *dev, const struct dev_transport *t)
{
	if (dev->attached)
		return -EBUSY;
	dev->transport = *t;
	dev->attached = true;
	return 0;
}

void dev_detach(struct vhu_device *dev)
{
	dev_pause_all(dev);
	memset(&dev->transport, 0, sizeof(dev->transport));
	dev->attached = false;
	dev_resume_all(dev);
}

int dev_set_features(struct vhu_device *dev, uint64_t f)
{
	uint64_t extra = f & ~dev->cfg.features;

	if (extra) {
		dev_err(dev, "features 0x%llx were not offered", (unsigned long long)extra);
		return -EINVAL;
	}
	for (unsigned i = 0; i < dev->cfg.num_queues; i++)
		if (dq_started(&dev->q[i]) &&
		    ((f ^ dev->features) & (VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX)))) {
			dev_err(dev, "the ring format changed while queue %u runs", i);
			return -EBUSY;
		}
	dev->features = f;
	if (dev->cfg.ops->set_features)
		return dev->cfg.ops->set_features(dev, f);
	return 0;
}

void dev_set_status(struct vhu_device *dev, uint8_t s)
{
	/* keep our own NEEDS_RESET until the driver resets (status 0) */
	atomic_store(&dev->status, s | (s ? atomic_load(&dev->status) & VHU_STATUS_DEVICE_NEEDS_RESET : 0));
}

void dev_reset(struct vhu_device *dev)
{
	for (unsigned i = 0; i < dev->cfg.num_queues; i++)
		dq_reset(&dev->q[i]);
	dev->features = 0;
	atomic_store(&dev->status, 0);
	if (dev->cfg.ops->reset)
		dev->cfg.ops->reset(dev);
}

static bool config_range_ok(const struct vhu_device *dev, uint32_t offset, uint32_t len)
{
	return offset <= dev->cfg.config_size && len <= dev->cfg.config_size - offset;
}

int dev_get_config(struct vhu_device *dev, uint8_t *buf, uint32_t offset, uint32_t len)
{
	if (!config_range_ok(dev, offset, len) || !dev->cfg.ops->get_config)
		return -EINVAL;
	memset(buf, 0, len);
	return dev->cfg.ops->get_config(dev, buf, offset, len);
}

int dev_set_config(struct vhu_device *dev, const uint8_t *buf, uint32_t offset, uint32_t len, uint32_t flags)
{
	if (!config_range_ok(dev, offset, len) ||
	    (flags != VHU_CONFIG_WRITE_DRIVER && flags != VHU_CONFIG_WRITE_MIGRATION))
		return -EINVAL;
	if (!dev->cfg.ops->set_config)
		return -ENOTSUP;
	return dev->cfg.ops->set_config(dev, buf, offset, len, flags);
}

void dev_pause_all(struct vhu_device *dev)
{
	for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
		dq_pause(&dev->q[i]);
		if (dq_started(&dev->q[i]) && dev->cfg.ops->drain)
			dev->cfg.ops->drain(dev, &dev->q[i]);
	}
}

void dev_pause_all_undrained(struct vhu_device *dev)
{
	for (unsigned i = 0; i < dev->cfg.num_queues; i++)
		dq_pause(&dev->q[i]);
}

void dev_drain_all(struct vhu_device *dev)
{
	for (unsigned i = 0; i < dev->cfg.num_queues; i++)
		if (dq_started(&dev->q[i]) && dev->cfg.ops->drain)
			dev->cfg.ops->drain(dev, &dev->q[i]);
}

void dev_resume_all(struct vhu_device *dev)
{
	for (unsigned i = 0; i < dev->cfg.num_queues; i++)
		dq_resume(&dev->q[i]);
}
