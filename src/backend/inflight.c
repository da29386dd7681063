/* SPDX-License-Identifier: MIT */
/*
 * The inflight region as vhost-user carries it (VHOST_USER_PROTOCOL_F_
 * INFLIGHT_SHMFD): GET_INFLIGHT_FD makes one, SET_INFLIGHT_FD gives one
 * back (QEMU keeps it across our restarts and sends it before the rings),
 * and each ring started afterwards keeps its part (vhu/inflight.h).
 *
 * A region from the front-end is mapped only after its size, offset and
 * shape were checked against the file and the queues; what is in it is
 * the ring engine's to check when a ring starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_internal.h"
#include "vhu/inflight.h"

void be_inflight_unmap(struct vhu_backend *be)
{
	if (be->inflight.base)
		munmap(be->inflight.base, be->inflight.map_size);
	memset(&be->inflight, 0, sizeof(be->inflight));
}

static bool packed_ring(const struct vhu_backend *be)
{
	return vhu_has_feature(be->features, VHU_F_RING_PACKED);
}

/* Queues and size as the front-end states them: within what the device has. */
static int shape_ok(struct vhu_backend *be, const struct vhu_user_inflight *in, const char *what)
{
	if (in->num_queues == 0 || in->num_queues > be->nq || in->queue_size == 0 ||
	    in->queue_size > be->dev->cfg.max_queue_size || in->queue_size > VHU_VRING_MAX_SIZE) {
		be_err(be, "%s: %u queues of size %u refused (the device has %u of at most %u)", what,
		       in->num_queues, in->queue_size, be->nq, be->dev->cfg.max_queue_size);
		return -EINVAL;
	}
	return 0;
}

static void keep(struct vhu_backend *be, void *base, size_t size, const struct vhu_user_inflight *in)
{
	be_inflight_unmap(be);
	be->inflight.base = base;
	be->inflight.map_size = size;
	be->inflight.num_queues = in->num_queues;
	be->inflight.queue_size = in->queue_size;
}

/* A sealed memfd of num_queues regions, zeroed (version 0: fresh), laid out
 * for the ring format negotiated (QEMU sets the features first, in
 * vhost_dev_prepare_inflight). */
int be_get_inflight_fd(struct vhu_backend *be, struct vhu_user_msg *m, struct reply *rep)
{
	struct vhu_user_inflight in = m->payload.inflight;
	int r = shape_ok(be, &in, "GET_INFLIGHT_FD");

	if (r < 0)
		return r;
	size_t size = (size_t)in.num_queues * vhu_inflight_queue_size(in.queue_size, packed_ring(be));
	int fd = memfd_create("vhu-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	void *base = MAP_FAILED;
	/* sealed against resizing: neither side can make the other's
	 * mapping fault */
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0 ||
	    (base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		r = -errno;
		close(fd);
		be_err(be, "GET_INFLIGHT_FD: cannot make the region: %s", strerror(-r));
		return r;
	}
	keep(be, base, size, &in);
	rep->has_body = true;
	rep->msg.hdr.size = sizeof(in);
	rep->msg.payload.inflight = (struct vhu_user_inflight){
		.mmap_size = size, .mmap_offset = 0, .num_queues = in.num_queues, .queue_size = in.queue_size,
	};
	rep->msg.fds[0] = fd;
	rep->msg.nfds = 1;
	be_info(be, "inflight region made: %u queues of size %u, %zu bytes, %s layout", in.num_queues,
		in.queue_size, size, packed_ring(be) ? "packed" : "split");
	return 0;
}

int be_set_inflight_fd(struct vhu_backend *be, struct vhu_user_msg *m)
{
	struct vhu_user_inflight in = m->payload.inflight;
	int fd = m->fds[0];
	struct stat st;
	int r = shape_ok(be, &in, "SET_INFLIGHT_FD");

	if (r < 0)
		return r;
	/* for the format negotiated now; each ring checks its own part
	 * again when it starts, with its format and size */
	size_t need = (size_t)in.num_queues * vhu_inflight_queue_size(in.queue_size, packed_ring(be));
	long page = sysconf(_SC_PAGESIZE);
	if (fstat(fd, &st) < 0)
		return -errno;
	if (in.mmap_size < need || in.mmap_size > SIZE_MAX || in.mmap_offset % (uint64_t)page ||
	    in.mmap_offset > (uint64_t)st.st_size || in.mmap_size > (uint64_t)st.st_size - in.mmap_offset) {
		be_err(be, "SET_INFLIGHT_FD: %llu bytes at %llu refused (file %lld bytes, %zu needed)",
		       (unsigned long long)in.mmap_size, (unsigned long long)in.mmap_offset,
		       (long long)st.st_size, need);
		return -EINVAL;
	}
	void *base = mmap(NULL, (size_t)in.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)in.mmap_offset);
	if (base == MAP_FAILED) {
		r = -errno;
		be_err(be, "SET_INFLIGHT_FD: cannot map the region: %s", strerror(-r));
		return r;
	}
	if (!(fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK))
		be_info(be, "the inflight region is not sealed against shrinking: a front-end "
			"truncating it would crash this process (SIGBUS)");
	keep(be, base, (size_t)in.mmap_size, &in);
	be_info(be, "inflight region set: %u queues of size %u", in.num_queues, in.queue_size);
	return 0;
}

int be_inflight_part(struct vhu_backend *be, uint16_t index, uint16_t num, bool packed,
		     void **part, size_t *len)
{
	*part = NULL;
	*len = 0;
	if (!be->inflight.base)
		return 0;
	size_t stride = vhu_inflight_queue_size(be->inflight.queue_size, packed);
	/* QEMU's virtio-mmio offers every ring at 1024 (its QueueNumMax),
	 * whatever vhost-user-blk's queue-size, and sizes the region by
	 * queue-size: the guest's driver takes 1024 (QEMU 7.2 and 10.0 on
	 * microvm). A ring larger than its part cannot be tracked in it; it
	 * runs untracked, as QEMU leaves it, rather than not at all. */
	if (index < be->inflight.num_queues && num > be->inflight.queue_size) {
		be_warn(be, "queue %u: size %u is larger than the inflight region's %u: it runs without inflight "
			"tracking (requests in flight at a crash are not resubmitted)", index, num,
			be->inflight.queue_size);
		return 0;
	}
	if (index >= be->inflight.num_queues || ((size_t)index + 1) * stride > be->inflight.map_size) {
		be_err(be, "queue %u: size %u has no part in the inflight region (%u queues of %u, %zu bytes)",
		       index, num, be->inflight.num_queues, be->inflight.queue_size, be->inflight.map_size);
		return -EINVAL;
	}
	*part = (unsigned char *)be->inflight.base + (size_t)index * stride;
	*len = stride;
	return 0;
}
