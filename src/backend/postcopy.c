/* SPDX-License-Identifier: MIT */
/*
 * Postcopy live migration (vhost-user "Migration", PAGEFAULT): the guest
 * runs on the destination before all its memory has arrived, so the
 * back-end must not read a page that is not there yet, nor see it as
 * zeroes. It opens a userfaultfd and hands it to the front-end
 * (POSTCOPY_ADVISE); from POSTCOPY_LISTEN on, every region it maps is
 * registered with it (missing pages), and a thread of ours that touches a
 * page not yet copied sleeps in the kernel until the front-end has placed
 * the page in the shared memory and woken it through that fd. POSTCOPY_END
 * unregisters and closes it.
 *
 * Ordering with QEMU (hw/virtio/vhost-user.c, 7.2 and 10.0): a memory table
 * sent while listening (SET_MEM_TABLE, or one ADD_MEM_REG per region) is
 * answered with the same table carrying our mapping address of each region,
 * which QEMU needs to turn a fault address into a guest page; QEMU then
 * sends one 8-byte acknowledgement (the last request's code, no
 * NEED_REPLY; after ADD_MEM_REG one for all the regions, whatever
 * libvhost-user waits for) and only then may the device touch the memory.
 * The queues are paused around every table change, so none touches it
 * before the acknowledgement has been read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend_internal.h"

#if defined(__linux__) && __has_include(<linux/userfaultfd.h>)
#include <linux/userfaultfd.h>
#define HAVE_UFFD 1
#endif

#ifdef HAVE_UFFD
/* A userfaultfd that can serve shared memory (memfd, shmem, hugetlbfs). */
static int uffd_open(void)
{
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (!(api.features & UFFD_FEATURE_MISSING_SHMEM)) {
		close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

static int uffd_register(int uffd, const struct vhu_mem_region *g)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)g->map, .len = g->map_len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	return ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

static void uffd_unregister(int uffd, const struct vhu_mem_region *g)
{
	struct uffdio_range range = { .start = (uintptr_t)g->map, .len = g->map_len };
	(void)ioctl(uffd, UFFDIO_UNREGISTER, &range);
}
#else
static int uffd_open(void) { return -EOPNOTSUPP; }
static int uffd_register(int uffd, const struct vhu_mem_region *g) { (void)uffd; (void)g; return -EOPNOTSUPP; }
static void uffd_unregister(int uffd, const struct vhu_mem_region *g) { (void)uffd; (void)g; }
#endif

int be_postcopy_probe(void)
{
	int fd = uffd_open();
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int be_postcopy_advise(struct vhu_backend *be, struct reply *rep)
{
	int fd;

	be_postcopy_end(be);
	if ((fd = uffd_open()) < 0) {
		be_err(be, "POSTCOPY_ADVISE: no userfaultfd: %s", strerror(-fd));
		return fd;
	}
	int theirs = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (theirs < 0) {
		close(fd);
		return -errno;
	}
	be->postcopy.uffd = fd;
	/* QEMU wants the fd and no payload */
	rep->has_body = true;
	rep->msg.hdr.size = 0;
	rep->msg.fds[0] = theirs;
	rep->msg.nfds = 1;
	be_info(be, "postcopy advised: userfaultfd handed to the front-end");
	return 0;
}

/* Register every region mapped now; those mapped later are registered as
 * they come (be_postcopy_mapped). */
int be_postcopy_listen(struct vhu_backend *be)
{
	int r;

	if (be->postcopy.uffd < 0) {
		be_err(be, "POSTCOPY_LISTEN without POSTCOPY_ADVISE");
		return -EINVAL;
	}
	for (unsigned i = 0; i < be->mem.n; i++)
		if ((r = uffd_register(be->postcopy.uffd, &be->mem.r[i])) < 0) {
			be_err(be, "POSTCOPY_LISTEN: region at 0x%llx cannot be registered: %s",
			       (unsigned long long)be->mem.r[i].gpa, strerror(-r));
			return r;
		}
	be->postcopy.listening = true;
	be_info(be, "postcopy listening: %u regions registered", be->mem.n);
	return 0;
}

void be_postcopy_end(struct vhu_backend *be)
{
	if (be->postcopy.uffd < 0)
		return;
	for (unsigned i = 0; be->postcopy.listening && i < be->mem.n; i++)
		uffd_unregister(be->postcopy.uffd, &be->mem.r[i]);
	close(be->postcopy.uffd);
	be->postcopy.uffd = -1;
	be->postcopy.listening = false;
	be->postcopy.await_ack = false;
}

int be_postcopy_register(struct vhu_backend *be, const struct vhu_mem *mem)
{
	int r;

#ifdef VHU_FAULT_INJECTION
	/* debug builds only: the postcopy test shows it catches a back-end that does not register */
	if (getenv("VHU_FAULT_NO_POSTCOPY_REGISTER"))
		return 0;
#endif
	for (unsigned i = 0; i < mem->n; i++)
		if ((r = uffd_register(be->postcopy.uffd, &mem->r[i])) < 0) {
			be_err(be, "postcopy: region at 0x%llx cannot be registered: %s",
			       (unsigned long long)mem->r[i].gpa, strerror(-r));
			return r;
		}
	return 0;
}

/* The table as asked, each region's userspace address replaced by ours. */
void be_postcopy_reply_table(struct vhu_backend *be, const struct vhu_user_msg *m, struct reply *rep)
{
	rep->has_body = true;
	rep->msg.hdr.size = m->hdr.size;
	memcpy(&rep->msg.payload, &m->payload, m->hdr.size);
	struct vhu_user_mem_region *out = m->hdr.request == VHU_USER_SET_MEM_TABLE
						  ? rep->msg.payload.mem.regions
						  : &rep->msg.payload.mem_reg.region;
	unsigned n = m->hdr.request == VHU_USER_SET_MEM_TABLE ? m->payload.mem.nregions : 1;
	for (unsigned i = 0; i < n; i++)
		for (unsigned k = 0; k < be->mem.n; k++)
			if (be->mem.r[k].gpa == out[i].guest_phys_addr)
				out[i].userspace_addr = (uintptr_t)be->mem.r[k].host;
	be->postcopy.await_ack = true;
}

bool be_postcopy_take_ack(struct vhu_backend *be, const struct vhu_user_msg *m)
{
	uint32_t q = m->hdr.request;
	if (!be->postcopy.await_ack || m->hdr.size != 8 ||
	    (q != 0 && q != VHU_USER_SET_MEM_TABLE && q != VHU_USER_ADD_MEM_REG && q != VHU_USER_REM_MEM_REG))
		return false;
	be->postcopy.await_ack = false;
	if (m->payload.u64)
		be_err(be, "postcopy: the front-end could not take our memory table (%llu)",
		       (unsigned long long)m->payload.u64);
	else
		be_dbg(be, "postcopy: memory table acknowledged");
	return true;
}
