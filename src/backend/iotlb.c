/* SPDX-License-Identifier: MIT */
/*
 * A guest behind an IOMMU (VIRTIO_F_ACCESS_PLATFORM; the vhost-user spec's
 * "IOMMU support"): ring and buffer addresses are I/O virtual addresses.
 * The front-end's IOTLB_MSG UPDATE and INVALIDATE fill and cut the device
 * IOTLB (vhu/iotlb.h) with every queue paused, so no worker ever uses a
 * translation the front-end has withdrawn once it has our reply; an
 * invalidation also waits for the requests in flight (drain), since their
 * buffers were translated before it and the device may still be writing
 * them. An update withdraws nothing and leaves them running: draining for
 * it made each miss wait for every request in flight (at iodepth 128 behind
 * per-request mappings, a miss cost the whole queue's latency). What is
 * missing is asked for with BACKEND_IOTLB_MSG MISS: a ring waits unstarted
 * (or, mapped before, unmapped) until its parts are mapped; a chain whose
 * buffer missed stays in its ring (the engine's -EAGAIN) and its queue is
 * woken by the next update.
 *
 * MISS goes without NEED_REPLY: QEMU answers a miss by sending UPDATE on
 * the front-end channel and waits for that reply before it would answer
 * ours, so waiting here would hold the control thread that must read the
 * UPDATE.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "backend_internal.h"
#include "vhu/iotlb.h"

static void send_miss(struct vhu_backend *be, unsigned index, uint64_t iova, int access)
{
	struct vhu_user_iotlb msg = {
		.iova = iova, .size = 1, .type = VHU_USER_IOTLB_MISS,
		.perm = access == VHU_ACCESS_WRITE ? VHU_USER_IOTLB_PERM_WO : VHU_USER_IOTLB_PERM_RO,
	};
	be_dbg(be, "queue %u: IOTLB miss at 0x%llx (%s)", index, (unsigned long long)iova,
	       access == VHU_ACCESS_WRITE ? "write" : "read");
	be->iotlb_misses++;
	be_send_backend_notice(be, VHU_USER_BACKEND_IOTLB_MSG, &msg, sizeof(msg));
}

/* [iova, iova + len) for access as one host range: every mapping on the
 * way permits it and continues the last in host memory. -EAGAIN with
 * *missing: a part is not mapped (ask); -EFAULT: refused. */
static int iova_span(struct vhu_backend *be, uint64_t iova, uint64_t len, int access, void **host, uint64_t *missing)
{
	unsigned char *start = NULL, *next = NULL;
	while (len) {
		uint64_t l = len, ua;
		int r = vhu_iotlb_lookup(&be->iotlb, iova, &l, access, &ua);
		if (r == -ENOENT) {
			*missing = iova;
			return -EAGAIN;
		}
		unsigned char *p = r < 0 ? NULL : vhu_mem_uaddr(&be->mem, ua, l);
		if (!p || (next && p != next))
			return -EFAULT;
		if (!start)
			start = p;
		next = p + l;
		iova += l;
		len -= l;
	}
	*host = start;
	return 0;
}

/* A ring part for its accesses (read, write or both); a miss is asked for. */
int be_ring_part_iova(struct vhu_backend *be, unsigned index, uint64_t iova, uint64_t len, bool read, bool write,
		      void **host)
{
	uint64_t missing = 0;
	for (int access = VHU_ACCESS_READ; access <= VHU_ACCESS_WRITE; access++) {
		if ((access == VHU_ACCESS_READ && !read) || (access == VHU_ACCESS_WRITE && !write))
			continue;
		int r = iova_span(be, iova, len, access, host, &missing);
		if (r == -EAGAIN) {
			be->vr[index].ring_wait = true;
			send_miss(be, index, missing, access);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

#define PAGE_MASK_4K (~(uint64_t)0xfff)
#define MISS_RETRY_NS 500000000ull	/* ask again for the same page after 0.5 s */

/* From a serving thread (its queue lock held): a chain waits for a mapping.
 * The control thread sends the MISS; the update that covers it wakes the
 * queue. The same page is not asked for again while the answer is on its
 * way: with two queues waiting, each update woke both, each asked again,
 * and the front-end's backlog of answers grew without end (a guest with
 * two queues behind QEMU 7.2's vIOMMU hung so). */
void be_iotlb_chain_miss(void *opaque, struct vhu_queue *q, uint64_t iova, int access)
{
	struct vhu_backend *be = opaque;
	struct be_vring *vr = &be->vr[vhu_queue_index(q)];
	uint64_t now = dev_mono_ns();
	if (atomic_load(&vr->chain_wait) && ((atomic_load(&vr->miss_iova) ^ iova) & PAGE_MASK_4K) == 0 &&
	    atomic_load(&vr->miss_access) == access && now - vr->miss_asked_ns < MISS_RETRY_NS)
		return;
	vr->miss_asked_ns = now;
	atomic_store(&vr->miss_iova, iova);
	atomic_store(&vr->miss_access, access);
	atomic_store(&vr->chain_wait, true);
	atomic_store(&vr->inband_miss, true);
	uint64_t one = 1;
	(void)!write(be->inband_fd, &one, sizeof(one));
}

/* The control thread: the misses serving threads asked for. */
void be_iotlb_send_misses(struct vhu_backend *be)
{
	for (unsigned i = 0; i < be->nq; i++)
		if (atomic_exchange(&be->vr[i].inband_miss, false))
			send_miss(be, i, atomic_load(&be->vr[i].miss_iova), atomic_load(&be->vr[i].miss_access));
}

static bool ring_overlaps(const struct vhu_backend *be, const struct be_vring *vr, uint64_t iova, uint64_t size)
{
	uint64_t dsz, asz, usz;
	be_ring_part_sizes(be, vr, &dsz, &asz, &usz);
	return vhu_iotlb_overlaps(vr->addr.desc_user_addr, dsz, iova, size) ||
	       vhu_iotlb_overlaps(vr->addr.avail_user_addr, asz, iova, size) ||
	       vhu_iotlb_overlaps(vr->addr.used_user_addr, usz, iova, size);
}

/* After the table changed (every queue paused): no window outlives it;
 * rings waiting try again, rings whose mapping went are mapped again (or
 * wait, unmapped); queues whose chains waited are woken. */
static void after_change(struct vhu_backend *be, bool update, uint64_t iova, uint64_t size)
{
	for (unsigned i = 0; i < be->nq; i++) {
		struct vhu_queue *q = &be->dev->q[i];
		struct be_vring *vr = &be->vr[i];
		if (dq_started(q))
			vhu_xlate_invalidate(&q->vq.xl);
		if (update && vr->ring_wait) {
			vr->ring_wait = false;
			int r = dq_started(q) ? be_ring_remap(be, q) : be_ring_start(be, q);
			if (r < 0)
				be_err(be, "queue %u: ring cannot start after an IOTLB update: %s", i, strerror(-r));
		} else if (!update && dq_started(q) && vr->addr_set && ring_overlaps(be, vr, iova, size)) {
			be_info(be, "queue %u: its ring's mapping was invalidated; it waits for a new one", i);
			be_ring_remap(be, q);
		}
		/* only the update that maps what the chain waits for wakes it */
		if (update && atomic_load(&vr->chain_wait) &&
		    vhu_iotlb_overlaps(atomic_load(&vr->miss_iova), 1, iova, size)) {
			atomic_store(&vr->chain_wait, false);
			dq_iotlb_updated(q);
		}
	}
}

int be_iotlb_msg(struct vhu_backend *be, const struct vhu_user_iotlb *m)
{
	int r;
	if (!be->iommu) {
		be_err(be, "IOTLB_MSG without VIRTIO_F_ACCESS_PLATFORM negotiated");
		return -EINVAL;
	}
	switch (m->type) {
	case VHU_USER_IOTLB_UPDATE:
		r = vhu_iotlb_update(&be->iotlb, m->iova, m->size, m->uaddr, m->perm);
		break;
	case VHU_USER_IOTLB_INVALIDATE:
		dev_drain_all(be->dev);
		r = vhu_iotlb_invalidate(&be->iotlb, m->iova, m->size);
		break;
	default:
		/* MISS and ACCESS_FAIL go the other way */
		be_err(be, "IOTLB_MSG of type %u refused", m->type);
		return -EINVAL;
	}
	if (r < 0) {
		be_err(be, "IOTLB %s of 0x%llx+0x%llx (perm %u) refused: %s",
		       m->type == VHU_USER_IOTLB_UPDATE ? "update" : "invalidation", (unsigned long long)m->iova,
		       (unsigned long long)m->size, m->perm, strerror(-r));
		return r;
	}
	if (m->type == VHU_USER_IOTLB_UPDATE)
		be->iotlb_updates++;
	else
		be->iotlb_invalidations++;
	be_dbg(be, "IOTLB %s 0x%llx+0x%llx -> 0x%llx perm %u (%u mappings)",
	       m->type == VHU_USER_IOTLB_UPDATE ? "update" : "invalidate", (unsigned long long)m->iova,
	       (unsigned long long)m->size, (unsigned long long)m->uaddr, m->perm, be->iotlb.n);
	after_change(be, m->type == VHU_USER_IOTLB_UPDATE, m->iova, m->size);
	return 0;
}

/* The session ends or the device resets: no mapping survives it. */
void be_iotlb_reset(struct vhu_backend *be)
{
	if (be->iotlb_updates || be->iotlb_misses)
		be_info(be, "IOTLB: %llu updates, %llu invalidations, %llu misses, %llu mappings dropped for room",
			(unsigned long long)be->iotlb_updates, (unsigned long long)be->iotlb_invalidations,
			(unsigned long long)be->iotlb_misses, (unsigned long long)be->iotlb.evictions);
	vhu_iotlb_clear(&be->iotlb);
	vhu_iotlb_init(&be->iotlb, 0);
	be->iotlb_updates = be->iotlb_invalidations = be->iotlb_misses = 0;
	for (unsigned i = 0; i < be->nq; i++) {
		be->vr[i].ring_wait = false;
		atomic_store(&be->vr[i].chain_wait, false);
		atomic_store(&be->vr[i].inband_miss, false);
	}
}
