/* SPDX-License-Identifier: MIT */
/*
 * Dirty-page logging as vhost-user carries it ("Migration",
 * VHOST_USER_PROTOCOL_F_LOG_SHMFD): the front-end shares a bitmap
 * (SET_LOG_BASE), turns logging of buffer writes on and off with
 * VHOST_F_LOG_ALL in SET_FEATURES and of ring writes with VHOST_VRING_F_LOG
 * in each SET_VRING_ADDR. The ring engine does the marking
 * (vhu_dev_vq_set_log); this file maps the bitmap and tells each running
 * ring what to log where.
 *
 * QEMU may send the features and ring flags before the bitmap (a device
 * started while a migration runs: vhost_dev_start sets them, then the log
 * base), so each is kept as asked and logging starts when all it needs is
 * there. Every queue is paused and drained around SET_LOG_BASE and
 * SET_FEATURES, so a ring starts logging buffers with no chain in flight
 * whose guest addresses it did not record.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_internal.h"

void be_log_unmap(struct vhu_backend *be)
{
	if (be->log.map)
		munmap(be->log.map, be->log.map_len);
	be->log.map = NULL;
	be->log.map_len = 0;
	be->log.bitmap = (struct vhu_dirty_log){ 0 };
}

void be_log_close_fd(struct vhu_backend *be)
{
	if (be->log.fd >= 0)
		close(be->log.fd);
	be->log.fd = -1;
}

/* Where the used ring's writes are logged ("Migration": log_guest_addr,
 * which may lie outside guest memory but must lie inside the bitmap). */
static uint64_t ring_log_len(const struct vhu_backend *be, uint32_t num)
{
	return vhu_has_feature(be->features, VHU_F_RING_PACKED) ? 4 : vhu_vring_split_used_size(num);
}

/* The guest address of a front-end user address (the packed descriptor
 * ring, which vhost-user gives no guest address for). */
static bool uaddr_to_gpa(const struct vhu_mem *m, uint64_t uaddr, uint64_t len, uint64_t *gpa)
{
	for (unsigned i = 0; i < m->n; i++) {
		const struct vhu_mem_region *g = &m->r[i];
		uint64_t off = uaddr - g->uaddr;
		if (uaddr >= g->uaddr && off < g->size && len <= g->size - off) {
			*gpa = g->gpa + off;
			return true;
		}
	}
	return false;
}

static int ring_fits(struct vhu_backend *be, const struct be_vring *vr, unsigned index,
		     const struct vhu_dirty_log *log)
{
	if (!(vr->addr.flags & (1u << VHU_USER_VRING_F_LOG)) || !vr->num)
		return 0;
	if (!vhu_dirty_log_covers(log, vr->addr.log_guest_addr, ring_log_len(be, vr->num))) {
		be_err(be, "queue %u: log_guest_addr 0x%llx is outside the dirty log of %llu bytes", index,
		       (unsigned long long)vr->addr.log_guest_addr, (unsigned long long)log->size);
		return -ERANGE;
	}
	return 0;
}

int be_ring_log_check(struct vhu_backend *be, const struct be_vring *vr, unsigned index)
{
	return be->log.map ? ring_fits(be, vr, index, &be->log.bitmap) : 0;
}

int be_ring_log(struct vhu_backend *be, struct vhu_queue *q)
{
	struct be_vring *vr = &be->vr[vhu_queue_index(q)];
	bool packed = vhu_has_feature(be->features, VHU_F_RING_PACKED);
	struct vhu_vq_log_config c = { 0 };
	int r;

	if (!dq_started(q) || !q->num)
		return 0;
	if (be->log.map) {
		c.log = &be->log.bitmap;
		c.buffers = be->log_all;
		c.rings = vr->addr.flags & (1u << VHU_USER_VRING_F_LOG);
		c.device_gpa = vr->addr.log_guest_addr;
#ifdef VHU_FAULT_INJECTION
		/* debug builds only: the migration test shows it catches a back-end that does not log */
		if (getenv("VHU_FAULT_NO_DIRTY_LOG"))
			c.buffers = false;
#endif
	}
	if (c.rings) {
		if ((r = be_ring_log_check(be, vr, vhu_queue_index(q))) < 0)
			goto fail;
		if (packed && !uaddr_to_gpa(&be->mem, vr->addr.desc_user_addr, vhu_vring_packed_desc_size(vr->num),
					    &c.desc_gpa)) {
			r = -EFAULT;
			goto fail;
		}
		if (packed && !vhu_dirty_log_covers(c.log, c.desc_gpa, vhu_vring_packed_desc_size(vr->num))) {
			r = -ERANGE;
			goto fail;
		}
	}
	if ((r = vhu_dev_vq_set_log(&q->vq, &c)) == 0)
		return 0;
fail:
	/* a ring that cannot log what it writes must not go on writing */
	vhu_dev_vq_set_log(&q->vq, NULL);
	dq_fail(q, "its writes cannot be logged for migration", r);
	return r;
}

void be_log_all_rings(struct vhu_backend *be)
{
	for (unsigned i = 0; i < be->nq; i++)
		be_ring_log(be, &be->dev->q[i]);
}

/* The bitmap must cover all of guest memory ("The log covers from address
 * 0 to the maximum of guest regions") and each logged ring. */
static int log_fits(struct vhu_backend *be, const struct vhu_dirty_log *log)
{
	for (unsigned i = 0; i < be->mem.n; i++) {
		const struct vhu_mem_region *g = &be->mem.r[i];
		if (!vhu_dirty_log_covers(log, g->gpa, g->size)) {
			be_err(be, "SET_LOG_BASE: a log of %llu bytes does not cover guest memory at 0x%llx-0x%llx",
			       (unsigned long long)log->size, (unsigned long long)g->gpa,
			       (unsigned long long)(g->gpa + g->size - 1));
			return -ERANGE;
		}
	}
	return 0;
}

/*
 * The reply: QEMU (vhost_user_set_log_base, 7.2 and 10.0) sends no
 * NEED_REPLY but, with LOG_SHMFD, reads one message back and checks only
 * that it answers SET_LOG_BASE; libvhost-user answers with a u64 payload.
 * The request table marks it as replying, so process() answers every
 * SET_LOG_BASE exactly once with a u64: 0 done, else the errno (a front-end
 * that looks, as ours does, learns of a refusal; QEMU does not look, and
 * finds out from LOG_ALL, whose SET_FEATURES it sends with NEED_REPLY and
 * which a ring without a usable log refuses).
 */
int be_set_log_base(struct vhu_backend *be, struct vhu_user_msg *m)
{
	struct vhu_user_log in;
	struct stat st;
	int fd = m->nfds ? m->fds[0] : -1;
	int r = -EINVAL;

	if (!be_pf(be, VHU_USER_PROTOCOL_F_LOG_SHMFD)) {
		/* without it the log would be a front-end address we cannot reach */
		be_err(be, "SET_LOG_BASE without LOG_SHMFD negotiated");
		r = -ENOTSUP;
		goto refuse;
	}
	if (m->hdr.size != sizeof(in) || fd < 0) {
		be_err(be, "SET_LOG_BASE: %u bytes and %u fds, not a log description and its fd", m->hdr.size,
		       m->nfds);
		goto refuse;
	}
	memcpy(&in, &m->payload, sizeof(in));
	if (in.size == 0 || in.offset + in.size < in.offset || in.offset + in.size > SIZE_MAX ||
	    fstat(fd, &st) < 0 || (uint64_t)st.st_size < in.offset + in.size) {
		be_err(be, "SET_LOG_BASE: size %llu at offset %llu does not fit the file",
		       (unsigned long long)in.size, (unsigned long long)in.offset);
		goto refuse;
	}
	struct vhu_dirty_log fresh = { .size = in.size };
	size_t len = (size_t)(in.offset + in.size);
	void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		r = -errno;
		be_err(be, "SET_LOG_BASE: the log cannot be mapped: %s", strerror(-r));
		goto refuse;
	}
	fresh.bitmap = (uint8_t *)map + in.offset;
	if ((r = log_fits(be, &fresh)) < 0) {
		munmap(map, len);
		goto refuse;
	}
	for (unsigned i = 0; i < be->nq; i++)
		if ((r = ring_fits(be, &be->vr[i], i, &fresh)) < 0) {
			munmap(map, len);
			goto refuse;
		}
	/* every queue is paused: the rings move to the new bitmap (each
	 * flushing what it batched for the old one), then the old goes */
	void *old_map = be->log.map;
	size_t old_len = be->log.map_len;
	be->log.map = map;
	be->log.map_len = len;
	be->log.bitmap = fresh;
	be_log_all_rings(be);
	if (old_map)
		munmap(old_map, old_len);
	be_dbg(be, "dirty log: %llu bytes at offset %llu", (unsigned long long)in.size,
	       (unsigned long long)in.offset);
	return 0;
refuse:
	/* Keeping the old bitmap would have the rings mark a log the
	 * front-end no longer reads: their marks lost, silently. None is
	 * better: a ring that was logging fails (be_ring_log). */
	for (unsigned i = 0; be->log.map && i < be->nq; i++) {
		struct vhu_queue *q = &be->dev->q[i];
		if (dq_started(q) && q->num && q->vq.log) {
			vhu_dev_vq_set_log(&q->vq, NULL);
			dq_fail(q, "its dirty log was replaced by one that cannot be used", r);
		}
	}
	be_log_unmap(be);
	return r;
}

/* An eventfd to tell the front-end the log changed. QEMU's vhost-user
 * reads the bitmap on its own schedule and never waits on it; vhu keeps
 * it, as the spec's "optional" message allows, and does not signal it
 * (libvhost-user's write per logged page is a cost for nobody). */
int be_set_log_fd(struct vhu_backend *be, struct vhu_user_msg *m)
{
	if (!be_pf(be, VHU_USER_PROTOCOL_F_LOG_SHMFD))
		return -ENOTSUP;
	be_log_close_fd(be);
	be->log.fd = m->fds[0];
	m->fds[0] = -1;
	return 0;
}
