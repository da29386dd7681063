/* SPDX-License-Identifier: MIT */
/*
 * The front-end as the device's IOMMU (VIRTIO_F_ACCESS_PLATFORM, the
 * vhost-user spec's "IOMMU support"). The device sees I/O virtual
 * addresses in a window at VHU_FE_IOVA_BASE over the front-end's memory;
 * the table here is the IOMMU's state, what the window maps and how. The
 * back-end learns it as QEMU's back-ends do: it sends BACKEND_IOTLB_MSG
 * MISS, we answer with IOTLB_MSG UPDATE of the mapping that holds the
 * address (or nothing, when nothing does, as the spec says). An unmap is
 * IOTLB_MSG INVALIDATE, acknowledged (REPLY_ACK is required) before it
 * returns: from then on the back-end does not touch that memory.
 *
 * Ordering: a change of the table and the message that tells the back-end
 * are made under one lock, and an answer to a miss looks the table up and
 * sends under the same lock, so an answer can never carry a mapping that an
 * unmap already withdrew. Misses are taken by the channel and answered
 * afterwards, with no lock of the channel or the connection held: the
 * answer is a request on the connection, and the thread that took the miss
 * may be one waiting inside a request of its own.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../common/log_internal.h"
#include "frontend_internal.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"

#define PAGE_4K_MASK (~(uint64_t)0xfff)

void fe_iommu_init(struct vhu_fe *fe)
{
	struct fe_iommu *im = &fe->iommu;
	pthread_mutex_init(&im->lock, NULL);
	im->wake_fd = -1;
	/* room for the cut and the new mapping of one map call on top of
	 * the limit, so the table never evicts: it is the state, not a cache */
	vhu_iotlb_init(&im->map, FE_IOMMU_MAX_MAPPINGS + 2);
}

void fe_iommu_free(struct vhu_fe *fe)
{
	vhu_iotlb_clear(&fe->iommu.map);
	if (fe->iommu.wake_fd >= 0)
		close(fe->iommu.wake_fd);
	pthread_mutex_destroy(&fe->iommu.lock);
}

int fe_iommu_setup(struct vhu_fe *fe, enum vhu_fe_iommu mode)
{
	if (mode == VHU_FE_IOMMU_OFF)
		return 0;
	if (mode != VHU_FE_IOMMU_STATIC && mode != VHU_FE_IOMMU_DYNAMIC)
		return -EINVAL;
	if (!vhu_has_feature(fe->offered, VHU_F_ACCESS_PLATFORM)) {
		fe_log(fe, VHU_LOG_ERROR, "IOMMU: the back-end does not offer VIRTIO_F_ACCESS_PLATFORM");
		return -ENOTSUP;
	}
	/* misses come on the back-end channel; an invalidation must be
	 * acknowledged to be in force when vhu_fe_iommu_unmap returns */
	if (!fe_has_pf(fe, VHU_USER_PROTOCOL_F_BACKEND_REQ) || !fe_has_pf(fe, VHU_USER_PROTOCOL_F_REPLY_ACK)) {
		fe_log(fe, VHU_LOG_ERROR, "IOMMU: the back-end lacks BACKEND_REQ or REPLY_ACK");
		return -ENOTSUP;
	}
	if (fe->iommu.wake_fd < 0 && (fe->iommu.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	fe->iommu.mode = mode;
	return 0;
}

int fe_iommu_wake_fd(const struct vhu_fe *fe) { return fe->iommu.mode == VHU_FE_IOMMU_OFF ? -1 : fe->iommu.wake_fd; }

enum vhu_fe_iommu vhu_fe_iommu_mode(const struct vhu_fe *fe) { return fe->iommu.mode; }

static int send_iotlb(struct vhu_fe *fe, uint8_t type, uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm)
{
	struct vhu_user_iotlb m = { .iova = iova, .size = size, .uaddr = uaddr, .perm = perm, .type = type };
	struct vhu_user_msg r;
	/* IOTLB_MSG always has a reply: zero, or the back-end refused */
	int rc = fe_request(fe, VHU_USER_IOTLB_MSG, &m, sizeof(m), NULL, 0, &r, 8);
	if (rc == 0 && r.payload.u64) {
		fe_log(fe, VHU_LOG_ERROR, "IOTLB %s of 0x%llx+0x%llx refused by the back-end (%llu)",
		       type == VHU_USER_IOTLB_UPDATE ? "update" : "invalidation", (unsigned long long)iova,
		       (unsigned long long)size, (unsigned long long)r.payload.u64);
		rc = -EIO;
	}
	return rc;
}

/* [iova, iova + size) inside the window over our memory. */
static bool in_window(const struct vhu_fe *fe, uint64_t iova, uint64_t size)
{
	return size && iova >= VHU_FE_IOVA_BASE && iova - VHU_FE_IOVA_BASE <= fe->mem_size &&
	       size <= fe->mem_size - (iova - VHU_FE_IOVA_BASE);
}

static bool valid_perm(unsigned perm)
{
	return perm == VHU_USER_IOTLB_PERM_RO || perm == VHU_USER_IOTLB_PERM_WO || perm == VHU_USER_IOTLB_PERM_RW;
}

/* Cut [iova, iova + size) out of the table; if that withdrew anything,
 * the back-end drops it before this returns. Under the lock. */
static int withdraw(struct vhu_fe *fe, uint64_t iova, uint64_t size)
{
	struct fe_iommu *im = &fe->iommu;
	int cut = vhu_iotlb_invalidate(&im->map, iova, size);
	if (cut <= 0)
		return cut;
	im->st.invalidations++;
	int rc = send_iotlb(fe, VHU_USER_IOTLB_INVALIDATE, iova, size, 0, 0);
	return rc < 0 ? rc : cut;
}

/* An unanswered miss to remember (under the lock); the oldest goes when full. */
static void note_unanswered(struct fe_iommu *im, uint64_t iova)
{
	for (unsigned i = 0; i < im->nunanswered; i++)
		if (((im->unanswered[i] ^ iova) & PAGE_4K_MASK) == 0)
			return;
	if (im->nunanswered < FE_IOMMU_MISSES_PENDING) {
		im->unanswered[im->nunanswered++] = iova;
		return;
	}
	im->unanswered[im->next_unanswered] = iova;
	im->next_unanswered = (im->next_unanswered + 1) % FE_IOMMU_MISSES_PENDING;
}

/* Whether a new mapping covers an unanswered miss (those it covers are
 * forgotten: the push answers them). Under the lock. */
static bool answers_a_miss(struct fe_iommu *im, uint64_t iova, uint64_t size)
{
	bool hit = false;
	for (unsigned i = 0; i < im->nunanswered;) {
		if (im->unanswered[i] - iova < size) {
			hit = true;
			im->unanswered[i] = im->unanswered[--im->nunanswered];
			im->next_unanswered = 0;
		} else {
			i++;
		}
	}
	return hit;
}

int vhu_fe_iommu_map(struct vhu_fe *fe, uint64_t iova, uint64_t size, unsigned perm, bool push)
{
	struct fe_iommu *im = &fe->iommu;
	int rc;

	if (im->mode == VHU_FE_IOMMU_OFF)
		return -ENOTSUP;
	if (!in_window(fe, iova, size) || !valid_perm(perm))
		return -EINVAL;
	pthread_mutex_lock(&im->lock);
	if (im->map.n + 2 > FE_IOMMU_MAX_MAPPINGS) {
		rc = -ENOSPC;
		goto out;
	}
	/* a new mapping replaces what it overlaps, and the back-end must
	 * not keep the old one (it may have other permissions) */
	if ((rc = withdraw(fe, iova, size)) < 0)
		goto out;
	uint64_t uaddr = (uint64_t)(uintptr_t)fe->mem + (iova - VHU_FE_IOVA_BASE);
	if ((rc = vhu_iotlb_update(&im->map, iova, size, uaddr, perm)) < 0)
		goto out;
	if (push || answers_a_miss(im, iova, size)) {
		im->st.pushed++;
		rc = send_iotlb(fe, VHU_USER_IOTLB_UPDATE, iova, size, uaddr, (uint8_t)perm);
	}
out:
	im->st.mappings = im->map.n;
	pthread_mutex_unlock(&im->lock);
	return rc;
}

int vhu_fe_iommu_unmap(struct vhu_fe *fe, uint64_t iova, uint64_t size)
{
	struct fe_iommu *im = &fe->iommu;

	if (im->mode == VHU_FE_IOMMU_OFF)
		return -ENOTSUP;
	if (!size || iova + size < iova)
		return -EINVAL;
	pthread_mutex_lock(&im->lock);
	int rc = withdraw(fe, iova, size);
	im->st.mappings = im->map.n;
	pthread_mutex_unlock(&im->lock);
	return rc < 0 ? rc : rc == 0 ? -ENOENT : 0;
}

void vhu_fe_iommu_stats(struct vhu_fe *fe, struct vhu_fe_iommu_stats *st)
{
	pthread_mutex_lock(&fe->iommu.lock);
	pthread_mutex_lock(&fe->chan_lock);
	*st = fe->iommu.st;
	pthread_mutex_unlock(&fe->chan_lock);
	pthread_mutex_unlock(&fe->iommu.lock);
}

/* A miss to answer later; the same page asked again before the answer is
 * one answer (two queues miss on one buffer, or a back-end asks again). */
static int take_miss(struct vhu_fe *fe, const struct vhu_user_iotlb *t, bool need_reply)
{
	struct fe_iommu *im = &fe->iommu;
	if (!valid_perm(t->perm)) {
		fe_log(fe, VHU_LOG_ERROR, "IOTLB miss at 0x%llx with permissions %u refused", (unsigned long long)t->iova,
		       t->perm);
		return 1;
	}
	im->st.misses++;
	for (unsigned i = 0; i < im->npending && !need_reply; i++)
		if (((im->pending[i].iova ^ t->iova) & PAGE_4K_MASK) == 0 && im->pending[i].perm == t->perm)
			return 0;
	if (im->npending == FE_IOMMU_MISSES_PENDING) {
		/* bounded: a flood costs the back-end a retry, never our memory */
		im->st.dropped++;
		return 1;
	}
	im->pending[im->npending++] = (struct fe_iommu_miss){ t->iova, t->perm, need_reply };
	uint64_t one = 1;
	(void)!write(im->wake_fd, &one, sizeof(one));
	return need_reply ? 2 : 0;
}

int fe_iommu_backend_msg(struct vhu_fe *fe, const struct vhu_user_msg *m)
{
	const struct vhu_user_iotlb *t = &m->payload.iotlb;
	if (m->hdr.size != sizeof(*t)) {
		fe_log(fe, VHU_LOG_ERROR, "BACKEND_IOTLB_MSG of %u bytes refused", m->hdr.size);
		return 1;
	}
	if (fe->iommu.mode == VHU_FE_IOMMU_OFF) {
		fe_log(fe, VHU_LOG_ERROR, "BACKEND_IOTLB_MSG without VIRTIO_F_ACCESS_PLATFORM negotiated");
		return 1;
	}
	switch (t->type) {
	case VHU_USER_IOTLB_MISS:
		return take_miss(fe, t, m->hdr.flags & VHU_USER_NEED_REPLY_MASK);
	case VHU_USER_IOTLB_ACCESS_FAIL:
		fe->iommu.st.access_fails++;
		fe_log(fe, VHU_LOG_WARN, "the back-end reports an access fault at IOVA 0x%llx (permissions %u)",
		       (unsigned long long)t->iova, t->perm);
		return 0;
	default:
		/* UPDATE and INVALIDATE go the other way */
		fe_log(fe, VHU_LOG_ERROR, "BACKEND_IOTLB_MSG of type %u refused", t->type);
		return 1;
	}
}

static void reply_miss(struct vhu_fe *fe, uint64_t result)
{
	pthread_mutex_lock(&fe->chan_lock);
	(void)fe_chan_reply(fe, VHU_USER_BACKEND_IOTLB_MSG, result);
	pthread_mutex_unlock(&fe->chan_lock);
}

/* The mapping that holds the address, whatever its permissions: a miss
 * for a write on a read-only mapping then fails at once in the back-end
 * instead of after its wait; an address nothing maps gets no answer (the
 * vhost-user spec: "front-end sent nothing if the IOTLB miss message is
 * invalid"). */
static bool answer_one(struct vhu_fe *fe, const struct fe_iommu_miss *miss)
{
	struct fe_iommu *im = &fe->iommu;
	bool ok = false;

	pthread_mutex_lock(&im->lock);
	const struct vhu_iotlb_entry *e = vhu_iotlb_find(&im->map, miss->iova);
	if (!e) {
		im->st.unmapped++;
		note_unanswered(im, miss->iova);
		fe_log(fe, VHU_LOG_DEBUG, "IOTLB miss at 0x%llx: nothing is mapped there", (unsigned long long)miss->iova);
	} else {
		im->st.answered++;
		ok = send_iotlb(fe, VHU_USER_IOTLB_UPDATE, e->iova, e->size, e->uaddr, e->perm) == 0;
	}
	pthread_mutex_unlock(&im->lock);
	return ok;
}

void fe_iommu_answer_misses(struct vhu_fe *fe)
{
	struct fe_iommu *im = &fe->iommu;
	struct fe_iommu_miss todo[FE_IOMMU_MISSES_PENDING];
	unsigned n;

	uint64_t v;
	(void)!read(im->wake_fd, &v, sizeof(v));
	pthread_mutex_lock(&fe->chan_lock);
	n = im->npending;
	memcpy(todo, im->pending, n * sizeof(todo[0]));
	im->npending = 0;
	pthread_mutex_unlock(&fe->chan_lock);
	for (unsigned i = 0; i < n; i++) {
		bool ok = answer_one(fe, &todo[i]);
		if (todo[i].need_reply)
			reply_miss(fe, ok ? 0 : 1);
	}
}
