/* SPDX-License-Identifier: MIT */
/*
 * virtio-mmio as a transport of the device core (vhu/mmio_device.h): the
 * model's ops as the device core's transport calls, the way the vhost-user
 * back-end makes them for its messages (each queue paused around a change
 * of it, every queue around a reset).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../device/device_internal.h"
#include "vhu/mem.h"
#include "vhu/mmio_device.h"
#include "vhu/virtio.h"

/* vhost-user's own bits and an IOMMU this transport does not have */
#define NOT_OFFERED (VHU_BIT(30) | VHU_BIT(26) | VHU_BIT(VHU_F_ACCESS_PLATFORM))

struct vhu_mmio_device {
	struct vhu_device *dev;
	struct vhu_mmio *mmio;
	struct vhu_mem mem;
	/* one kick eventfd a queue for the device's life: notifications write
	 * it from any thread, so it is never closed under them; each start
	 * hands the queue a duplicate, which the queue owns */
	int *kick;
};

static int op_set_features(void *o, uint64_t f)
{
	struct vhu_mmio_device *md = o;
	return dev_set_features(md->dev, f);
}

static int op_queue_enable(void *o, const struct vhu_mmio_ring *r)
{
	struct vhu_mmio_device *md = o;
	struct dq_ring_gpa g = { r->size, r->desc, r->driver, r->device };
	struct vhu_vq_config c;
	if (!dq_ring_map(&md->mem, &g, r->index, vhu_device_features(md->dev), &c)) {
		vhu_device_log(md->dev, VHU_LOG_ERROR, "queue %u: a ring part lies outside guest memory", r->index);
		return -EFAULT;
	}
	/* used-buffer notifications come to tr_call */
	return dq_start_local(&md->dev->q[r->index], &c, md->kick[r->index]);
}

static void op_queue_disable(void *o, uint16_t index)
{
	struct vhu_mmio_device *md = o;
	dq_stop_local(&md->dev->q[index], md->kick[index]);
}

static void op_notify(void *o, uint16_t index, uint32_t value)
{
	struct vhu_mmio_device *md = o;
	uint64_t one = 1;
	(void)value;   /* the ring is the truth; the engine checks its own position */
	(void)!write(md->kick[index], &one, 8);
}

static void op_driver_ok(void *o)
{
	struct vhu_mmio_device *md = o;
	dev_set_status(md->dev, (uint8_t)vhu_mmio_status(md->mmio) | VHU_STATUS_DRIVER_OK);
}

static void op_reset(void *o)
{
	struct vhu_mmio_device *md = o;
	dev_pause_all(md->dev);
	dev_reset(md->dev);
	dev_resume_all(md->dev);
}

static int op_config_read(void *o, uint32_t off, void *buf, uint32_t len)
{
	struct vhu_mmio_device *md = o;
	return dev_get_config(md->dev, buf, off, len);
}

static int op_config_write(void *o, uint32_t off, const void *buf, uint32_t len)
{
	struct vhu_mmio_device *md = o;
	return dev_set_config(md->dev, buf, off, len, VHU_CONFIG_WRITE_DRIVER);
}

static const struct vhu_mmio_ops device_ops = {
	.set_features = op_set_features, .queue_enable = op_queue_enable, .queue_disable = op_queue_disable,
	.notify = op_notify, .driver_ok = op_driver_ok, .reset = op_reset, .config_read = op_config_read,
	.config_write = op_config_write,
};

/* ---- the device core's transport calls ------------------------------------------- */

static void tr_call(void *o, struct vhu_queue *q)
{
	struct vhu_mmio_device *md = o;
	(void)q;
	vhu_mmio_raise(md->mmio, VHU_MMIO_INT_VRING);
}

static void tr_error(void *o, struct vhu_queue *q)
{
	struct vhu_mmio_device *md = o;
	(void)q;
	vhu_mmio_needs_reset(md->mmio);
}

static int tr_config_changed(void *o)
{
	struct vhu_mmio_device *md = o;
	vhu_mmio_config_changed(md->mmio);
	return 0;
}

/* ---- life --------------------------------------------------------------------------- */

static int map_memory(struct vhu_mmio_device *md, const struct vhu_mmio_device_config *cfg)
{
	for (unsigned i = 0; i < cfg->num_regions; i++) {
		const struct vhu_mmio_mem_region *r = &cfg->regions[i];
		/* the user address is the guest address: nothing here names
		 * memory by a VMM's pointers */
		struct vhu_user_mem_region w = { r->guest_addr, r->size, r->guest_addr, r->fd_offset };
		int fd = r->fd >= 0 ? fcntl(r->fd, F_DUPFD_CLOEXEC, 0) : -1;
		if (fd < 0)
			return -EINVAL;
		int rc = vhu_mem_add(&md->mem, &w, fd);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int vhu_mmio_device_new(struct vhu_mmio_device **out, const struct vhu_mmio_device_config *cfg)
{
	int rc;

	if (!cfg->dev || !cfg->num_regions || !cfg->regions)
		return -EINVAL;
	struct vhu_mmio_device *md = calloc(1, sizeof(*md));
	if (!md)
		return -ENOMEM;
	md->dev = cfg->dev;
	vhu_mem_init(&md->mem);
	uint16_t nq = vhu_device_num_queues(cfg->dev);
	if (!(md->kick = dq_kicks_new(nq))) {
		free(md);
		return -errno;
	}
	if ((rc = map_memory(md, cfg)) < 0)
		goto fail;
	const struct vhu_device_config *dc = &cfg->dev->cfg;
	struct vhu_mmio_config mc = {
		.device_id = cfg->device_id, .vendor_id = cfg->vendor_id, .features = dc->features & ~NOT_OFFERED,
		.num_queues = nq, .queue_size_max = cfg->queue_size_max ? cfg->queue_size_max : dc->max_queue_size,
		.config_size = dc->config_size, .ops = &device_ops, .opaque = md,
		.interrupt = cfg->interrupt, .interrupt_opaque = cfg->interrupt_opaque,
		.log = dc->log, .log_opaque = dc->log_opaque, .log_level = dc->log_level,
	};
	if (!(md->mmio = vhu_mmio_new(&mc))) {
		rc = -errno;
		goto fail;
	}
	struct dev_transport t = { .opaque = md, .call = tr_call, .error = tr_error,
				   .config_changed = tr_config_changed };
	if ((rc = dev_attach(md->dev, &t)) < 0)
		goto fail;
	*out = md;
	return 0;
fail:
	vhu_mmio_free(md->mmio);
	md->mmio = NULL;
	vhu_mem_clear(&md->mem);
	dq_kicks_free(md->kick, nq);
	free(md);
	return rc;
}

void vhu_mmio_device_free(struct vhu_mmio_device *md)
{
	if (!md)
		return;
	/* a reset stops every ring (and the device forgets the driver) */
	vhu_mmio_write(md->mmio, VHU_MMIO_STATUS, 4, 0);
	dev_detach(md->dev);
	vhu_mmio_free(md->mmio);
	vhu_mem_clear(&md->mem);
	dq_kicks_free(md->kick, vhu_device_num_queues(md->dev));
	free(md);
}

struct vhu_mmio *vhu_mmio_device_mmio(struct vhu_mmio_device *md) { return md->mmio; }
