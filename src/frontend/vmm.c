/* SPDX-License-Identifier: MIT */
/*
 * The front-end for a VMM (vhu/frontend_vmm.h): the guest's memory and
 * rings, described to the back-end; nothing here reads or writes them.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend_internal.h"
#include "vhu/frontend_vmm.h"
#include "vhu/virtio.h"

int vhu_fe_vmm_begin(struct vhu_fe *fe, uint16_t num_queues)
{
	uint64_t max = fe_has_pf(fe, VHU_USER_PROTOCOL_F_MQ) ? fe->queue_num : 1;

	if (fe->q || fe->vmm || !num_queues)
		return -EINVAL;
	if (num_queues > max)
		return -ERANGE;
	fe->q = calloc(num_queues, sizeof(*fe->q));
	if (!fe->q)
		return -ENOMEM;
	for (unsigned i = 0; i < num_queues; i++) {
		fe->q[i] = (struct vhu_fe_queue){ .fe = fe, .index = i, .kick = -1, .call = -1 };
		atomic_init(&fe->q[i].vmm_kick, -1);
	}
	fe->nq = num_queues;
	fe->vmm = true;
	fe->notify = VHU_FE_NOTIFY_EVENTFD;
	return 0;
}

int vhu_fe_vmm_set_features(struct vhu_fe *fe, uint64_t features)
{
	if (!fe->vmm)
		return -EINVAL;
	/* this front-end is not the device's IOMMU here (nor is the VMM, as
	 * far as vhu knows): the back-end would wait on IOTLB messages */
	uint64_t f = (features & fe->offered & ~VHU_BIT(VHU_F_ACCESS_PLATFORM)) |
		     (fe->offered & (1ull << VHU_USER_F_PROTOCOL_FEATURES));
	int rc = fe_set_u64(fe, VHU_USER_SET_FEATURES, f);
	if (rc == 0)
		fe->features = f;
	return rc;
}

static bool region_ok(const struct vhu_fe_vmm_region *r)
{
	return r->size && r->host && r->fd >= 0 && r->guest_addr + r->size > r->guest_addr &&
	       (uintptr_t)r->host + r->size > (uintptr_t)r->host && r->fd_offset + r->size > r->fd_offset;
}

static bool overlap(const struct vhu_fe_vmm_region *a, const struct vhu_fe_vmm_region *b)
{
	return a->guest_addr < b->guest_addr + b->size && b->guest_addr < a->guest_addr + a->size;
}

static struct vhu_user_mem_region wire(const struct vhu_fe_vmm_region *r)
{
	return (struct vhu_user_mem_region){ r->guest_addr, r->size, (uintptr_t)r->host, r->fd_offset };
}

static bool same(const struct vhu_fe_vmm_region *a, const struct vhu_fe_vmm_region *b)
{
	return a->guest_addr == b->guest_addr && a->size == b->size && a->host == b->host;
}

static bool in_table(const struct vhu_fe_vmm_region *t, unsigned n, const struct vhu_fe_vmm_region *r)
{
	for (unsigned i = 0; i < n; i++)
		if (same(&t[i], r))
			return true;
	return false;
}

/* CONFIGURE_MEM_SLOTS: what went, then what came (the back-end never holds
 * two regions over the same guest addresses). */
static int send_difference(struct vhu_fe *fe, const struct vhu_fe_vmm_region *r, unsigned n)
{
	int rc;
	for (unsigned i = 0; i < fe->nregions; i++) {
		if (in_table(r, n, &fe->regions[i]))
			continue;
		struct vhu_user_mem_single s = { 0, wire(&fe->regions[i]) };
		if ((rc = fe_request(fe, VHU_USER_REM_MEM_REG, &s, sizeof(s), NULL, 0, NULL, 0)) < 0)
			return rc;
	}
	for (unsigned i = 0; i < n; i++) {
		if (in_table(fe->regions, fe->nregions, &r[i]))
			continue;
		struct vhu_user_mem_single s = { 0, wire(&r[i]) };
		if ((rc = fe_request(fe, VHU_USER_ADD_MEM_REG, &s, sizeof(s), &r[i].fd, 1, NULL, 0)) < 0)
			return rc;
	}
	return 0;
}

static int send_table(struct vhu_fe *fe, const struct vhu_fe_vmm_region *r, unsigned n)
{
	struct vhu_user_mem_table t = { .nregions = n };
	int fds[VHU_USER_MEM_TABLE_MAX];
	for (unsigned i = 0; i < n; i++) {
		t.regions[i] = wire(&r[i]);
		fds[i] = r[i].fd;
	}
	return fe_request(fe, VHU_USER_SET_MEM_TABLE, &t, 8 + n * (uint32_t)sizeof(t.regions[0]), fds, n, NULL, 0);
}

int vhu_fe_vmm_set_memory(struct vhu_fe *fe, const struct vhu_fe_vmm_region *r, unsigned n)
{
	int rc;

	if (!fe->vmm || !n)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		if (!region_ok(&r[i]))
			return -EINVAL;
		for (unsigned j = 0; j < i; j++)
			if (overlap(&r[i], &r[j]))
				return -EINVAL;
	}
	if (fe->max_slots ? n > fe->max_slots : n > VHU_USER_MEM_TABLE_MAX)
		return -ENOSPC;
	struct vhu_fe_vmm_region *copy = malloc(n * sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, r, n * sizeof(*copy));
	rc = fe->max_slots ? send_difference(fe, r, n) : send_table(fe, r, n);
	if (rc < 0) {
		free(copy);
		return rc;
	}
	for (unsigned i = 0; i < n; i++)
		copy[i].fd = -1;   /* not ours */
	free(fe->regions);
	fe->regions = copy;
	fe->nregions = n;
	return 0;
}

/* The host address of a ring part: vhost-user gives ring addresses in the
 * front-end's address space. 0 when no region holds all of it. */
static uint64_t host_addr(const struct vhu_fe *fe, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < fe->nregions; i++) {
		const struct vhu_fe_vmm_region *g = &fe->regions[i];
		if (gpa >= g->guest_addr && gpa - g->guest_addr < g->size && len <= g->size - (gpa - g->guest_addr))
			return (uintptr_t)g->host + (gpa - g->guest_addr);
	}
	return 0;
}

int vhu_fe_vmm_vring_start(struct vhu_fe *fe, unsigned index, const struct vhu_fe_vmm_vring *v)
{
	bool packed = vhu_has_feature(fe->features, VHU_F_RING_PACKED);
	int rc;

	if (!fe->vmm || index >= fe->nq || !v->num)
		return -EINVAL;
	struct vhu_user_vring_addr a = {
		.index = index,
		.desc_user_addr = host_addr(fe, v->desc, 16u * v->num),
		.avail_user_addr = host_addr(fe, v->driver, packed ? 4 : 6 + 2u * v->num),
		.used_user_addr = host_addr(fe, v->device, packed ? 4 : 6 + 8u * v->num),
	};
	if (!a.desc_user_addr || !a.avail_user_addr || !a.used_user_addr) {
		fe_log(fe, VHU_LOG_ERROR, "queue %u: a ring part lies outside guest memory", index);
		return -EFAULT;
	}
	if ((rc = fe_set_state(fe, VHU_USER_SET_VRING_NUM, index, v->num)) < 0 ||
	    (rc = fe_set_state(fe, VHU_USER_SET_VRING_BASE, index, v->base)) < 0 ||
	    (rc = fe_request(fe, VHU_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL, 0)) < 0)
		return rc;
	/* an fd-less form (bit 8, VHOST_USER_VRING_NOFD_MASK) for what the
	 * caller does not give: no call fd means no notifications, no kick fd
	 * a back-end that polls */
	uint64_t call = index | (v->call_fd < 0 ? VHU_USER_VRING_NOFD_MASK : 0);
	uint64_t kick = index | (v->kick_fd < 0 ? VHU_USER_VRING_NOFD_MASK : 0);
	if ((rc = fe_request(fe, VHU_USER_SET_VRING_CALL, &call, 8, &v->call_fd, v->call_fd >= 0, NULL, 0)) < 0 ||
	    (rc = fe_request(fe, VHU_USER_SET_VRING_KICK, &kick, 8, &v->kick_fd, v->kick_fd >= 0, NULL, 0)) < 0)
		return rc;
	if (fe->features >> VHU_USER_F_PROTOCOL_FEATURES & 1 &&
	    (rc = fe_set_state(fe, VHU_USER_SET_VRING_ENABLE, index, 1)) < 0)
		return rc;
	atomic_store(&fe->q[index].vmm_kick, v->kick_fd);
	atomic_store(&fe->q[index].vmm_started, true);
	return 0;
}

int vhu_fe_vmm_vring_stop(struct vhu_fe *fe, unsigned index, uint32_t *base)
{
	struct vhu_user_vring_state s = { index, 0 };
	struct vhu_user_msg r;

	if (!fe->vmm || index >= fe->nq)
		return -EINVAL;
	atomic_store(&fe->q[index].vmm_started, false);
	int rc = fe_request(fe, VHU_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &r, sizeof(s));
	atomic_store(&fe->q[index].vmm_kick, -1);
	if (rc == 0 && base)
		*base = r.payload.state.num;
	return rc;
}

int vhu_fe_vmm_notify(struct vhu_fe *fe, unsigned index, uint32_t value)
{
	if (index >= fe->nq || !atomic_load_explicit(&fe->q[index].vmm_started, memory_order_acquire))
		return -EINVAL;
	struct vhu_fe_queue *q = &fe->q[index];
	if (fe_doorbell_store(q, value))
		return 0;
	int kick = atomic_load_explicit(&q->vmm_kick, memory_order_relaxed);
	uint64_t one = 1;
	atomic_fetch_add_explicit(&q->kicks_eventfd, 1, memory_order_relaxed);
	if (kick < 0)
		return 0;   /* a polling back-end */
	return write(kick, &one, 8) == 8 ? 0 : -errno;
}

int vhu_fe_backend_fd(const struct vhu_fe *fe) { return fe->chan; }
