/* SPDX-License-Identifier: MIT */
/* Rings as vhost-user gives them: mapped through the memory table, started
 * with their kick, and the device core's notices sent in-band. */
#include <errno.h>
#include <unistd.h>

#include "backend_internal.h"

void be_ring_part_sizes(const struct vhu_backend *be, const struct be_vring *vr, uint64_t *dsz, uint64_t *asz,
			uint64_t *usz)
{
	bool packed = vhu_has_feature(vhu_device_features(be->dev), VHU_F_RING_PACKED);
	*dsz = packed ? vhu_vring_packed_desc_size(vr->num) : vhu_vring_split_desc_size(vr->num);
	*asz = packed ? 4 : vhu_vring_split_avail_size(vr->num);
	*usz = packed ? 4 : vhu_vring_split_used_size(vr->num);
}

/* Host addresses of the ring parts from the front-end's user addresses;
 * each part must lie whole inside one region. */
static int map_ring(struct vhu_backend *be, struct vhu_queue *q, struct vhu_vq_config *c)
{
	struct be_vring *vr = &be->vr[vhu_queue_index(q)];
	uint64_t f = vhu_device_features(be->dev), dsz, asz, usz;
	bool packed = vhu_has_feature(f, VHU_F_RING_PACKED);
	be_ring_part_sizes(be, vr, &dsz, &asz, &usz);

	*c = (struct vhu_vq_config){
		.num = (uint16_t)vr->num, .index = vhu_queue_index(q), .features = f,
		.mem = &be->mem, .iotlb = be->iommu ? &be->iotlb : NULL,
	};
	if (be->iommu) {
		/* IOVAs: the device reads the driver's parts and writes its own
		 * (packed: the descriptor ring both) */
		unsigned i = c->index;
		int r;
		if ((r = be_ring_part_iova(be, i, vr->addr.desc_user_addr, dsz, true, packed, &c->desc)) < 0 ||
		    (r = be_ring_part_iova(be, i, vr->addr.avail_user_addr, asz, true, false, &c->driver_area)) < 0 ||
		    (r = be_ring_part_iova(be, i, vr->addr.used_user_addr, usz, packed, true, &c->device_area)) < 0) {
			if (r != -EAGAIN)
				be_err(be, "queue %u: ring addresses outside what the IOMMU maps", i);
			return r;
		}
		return 0;
	}
	c->desc = vhu_mem_uaddr(&be->mem, vr->addr.desc_user_addr, dsz);
	c->driver_area = vhu_mem_uaddr(&be->mem, vr->addr.avail_user_addr, asz);
	c->device_area = vhu_mem_uaddr(&be->mem, vr->addr.used_user_addr, usz);
	if (!c->desc || !c->driver_area || !c->device_area) {
		be_err(be, "queue %u: ring addresses outside guest memory", c->index);
		return -EFAULT;
	}
	return 0;
}

int be_ring_start(struct vhu_backend *be, struct vhu_queue *q)
{
	struct be_vring *vr = &be->vr[vhu_queue_index(q)];
	struct vhu_vq_config c;
	int r;

	if (dq_started(q))
		return 0;
	if (!vr->num || !vr->addr_set) {
		be_err(be, "queue %u: started before its size and addresses were set", vhu_queue_index(q));
		return -EINVAL;
	}
	if ((r = map_ring(be, q, &c)) == -EAGAIN)
		return 0;	/* it waits for the IOTLB: started by the update */
	if (r < 0)
		return r;
	/* §"Ring states": without VHOST_USER_F_PROTOCOL_FEATURES a started
	 * ring is enabled at once; with it, SET_VRING_ENABLE decides. */
	void *part;
	size_t part_len;
	if ((r = be_inflight_part(be, c.index, c.num, vhu_has_feature(c.features, VHU_F_RING_PACKED),
				  &part, &part_len)) < 0)
		return r;
	if (!be_pf_negotiated_base(be))
		dq_set_enabled(q, true);
	if ((r = dq_start(q, &c, &vr->base, part, part_len)) < 0)
		return r;
	be_ring_log(be, q);   /* a ring that cannot log fails; the start was valid */
	be_doorbell_ring_started(be, q);
	return 0;
}

int be_ring_remap(struct vhu_backend *be, struct vhu_queue *q)
{
	struct vhu_vq_config c;

	if (!dq_started(q))
		return 0;
	int r = map_ring(be, q, &c);
	if (r == -EAGAIN)
		return dq_remap(q, NULL);	/* unmapped until the IOTLB maps it again */
	if (r < 0 || (r = dq_remap(q, &c)) < 0)
		return r;
	be_ring_log(be, q);   /* the rings' guest addresses may have moved */
	return 0;
}

static void inband(struct vhu_backend *be, atomic_bool *flag)
{
	/* The control thread sends it: a thread holding a queue lock must
	 * never wait on the front-end (which may itself be waiting for the
	 * control thread, which needs that lock). Without the feature the
	 * front-end polls the used ring. */
	if (!be_pf(be, VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS))
		return;
	atomic_store(flag, true);
	uint64_t one = 1;
	(void)!write(be->inband_fd, &one, sizeof(one));
}

static void call_inband(void *opaque, struct vhu_queue *q)
{
	struct vhu_backend *be = opaque;
	inband(be, &be->vr[vhu_queue_index(q)].inband_call);
}

static void error_inband(void *opaque, struct vhu_queue *q)
{
	struct vhu_backend *be = opaque;
	inband(be, &be->vr[vhu_queue_index(q)].inband_err);
}

static int config_changed(void *opaque)
{
	struct vhu_backend *be = opaque;
	if (!be_pf(be, VHU_USER_PROTOCOL_F_CONFIG) || !be_pf(be, VHU_USER_PROTOCOL_F_BACKEND_REQ))
		return -ENOTSUP;
	return be_send_backend_msg(be, VHU_USER_BACKEND_CONFIG_CHANGE_MSG, NULL, 0);
}

const struct dev_transport be_transport = {
	.call = call_inband,
	.error = error_inband,
	.iotlb_miss = be_iotlb_chain_miss,
	.config_changed = config_changed,
	.doorbell = be_doorbell_wish,
};
