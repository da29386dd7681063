/* SPDX-License-Identifier: MIT */
/*
 * Doorbells (VHOST_USER_PROTOCOL_F_HOST_NOTIFIER): the back-end hands a
 * page per queue with BACKEND_VRING_HOST_NOTIFIER_MSG; the front-end maps
 * it and kicks by one store of the notification value into it (the queue
 * index, or with VIRTIO_F_NOTIFICATION_DATA the driver's next avail
 * position, §2.9), as a guest's driver stores into its notify area. No page
 * (none sent, or withdrawn with the "no fd" form): the kick eventfd.
 *
 * The back-end is not trusted with our process: a page is refused unless
 * it is exactly the host page size at a page-aligned offset of a file that
 * cannot shrink under us (a memfd sealed against shrinking, F_SEAL_SHRINK;
 * otherwise our store could fault with SIGBUS once the back-end truncated
 * it). The channel maps; only the queue's own thread stores, and it takes a
 * new page (unmapping the one it replaces) at its next kick, so no store
 * ever meets a mapping being removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/cpu_relax.h"
#include "frontend_internal.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* A VMM's queue: the page changes under stores from any thread. One that
 * loaded the old page has raised db_readers first (both sequentially
 * consistent), so once the count is seen at zero after the exchange no
 * store can reach the old page any more. */
static void swap_live(struct vhu_fe_queue *q, void *page)
{
	void *old = atomic_exchange(&q->db_live, page);
	while (atomic_load(&q->db_readers))
		vhu_cpu_relax();
	if (old)
		munmap(old, page_size());
}

bool fe_doorbell_store(struct vhu_fe_queue *q, uint32_t value)
{
	bool stored = false;
	atomic_fetch_add(&q->db_readers, 1);
	void *db = atomic_load(&q->db_live);
	if (db) {
		if (vhu_has_feature(q->fe->features, VHU_F_NOTIFICATION_DATA))
			__atomic_store_n((uint32_t *)db, value, __ATOMIC_RELEASE);
		else
			__atomic_store_n((uint16_t *)db, (uint16_t)q->index, __ATOMIC_RELEASE);
		stored = true;
	}
	atomic_fetch_sub(&q->db_readers, 1);
	if (stored)
		atomic_fetch_add_explicit(&q->kicks_doorbell, 1, memory_order_relaxed);
	return stored;
}

static void publish(struct vhu_fe_queue *q, void *page)
{
	if (q->fe->vmm) {
		swap_live(q, page == FE_DB_GONE ? NULL : page);
		return;
	}
	void *old = atomic_exchange(&q->db_next, page);
	if (old && old != FE_DB_GONE)
		munmap(old, page_size());   /* never taken up: nobody stored there */
}

/* A page we may store into for as long as we keep it mapped. */
static void *map_page(struct vhu_fe *fe, int fd, const struct vhu_user_vring_area *a)
{
	size_t page = page_size();
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	if (a->size != page || a->offset % page || a->offset > UINT64_MAX - page) {
		fe_log(fe, VHU_LOG_ERROR, "doorbell of %llu bytes at offset %llu refused (a page of %zu expected)",
		       (unsigned long long)a->size, (unsigned long long)a->offset, page);
		return NULL;
	}
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < a->offset + page || seals < 0 || !(seals & F_SEAL_SHRINK)) {
		fe_log(fe, VHU_LOG_ERROR, "doorbell refused: not a file sealed against shrinking that holds the page");
		return NULL;
	}
	void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)a->offset);
	if (p == MAP_FAILED) {
		fe_log(fe, VHU_LOG_ERROR, "doorbell cannot be mapped: %s", strerror(errno));
		return NULL;
	}
	return p;
}

int fe_doorbell_msg(struct vhu_fe *fe, struct vhu_user_msg *m)
{
	const struct vhu_user_vring_area *a = &m->payload.area;
	int result = 1;
	uint64_t index = a->u64 & VHU_USER_VRING_IDX_MASK;

	if (m->hdr.size != sizeof(*a) || !fe_has_pf(fe, VHU_USER_PROTOCOL_F_HOST_NOTIFIER)) {
		fe_log(fe, VHU_LOG_ERROR, "BACKEND_VRING_HOST_NOTIFIER_MSG refused (%u bytes%s)", m->hdr.size,
		       fe_has_pf(fe, VHU_USER_PROTOCOL_F_HOST_NOTIFIER) ? "" : ", HOST_NOTIFIER not negotiated");
	} else if ((a->u64 & ~(uint64_t)(VHU_USER_VRING_IDX_MASK | VHU_USER_VRING_NOFD_MASK)) || index >= fe->nq) {
		fe_log(fe, VHU_LOG_ERROR, "doorbell for queue 0x%llx refused", (unsigned long long)a->u64);
	} else if (a->u64 & VHU_USER_VRING_NOFD_MASK) {
		publish(&fe->q[index], FE_DB_GONE);   /* back to the kick eventfd */
		result = 0;
	} else if (m->nfds != 1) {
		fe_log(fe, VHU_LOG_ERROR, "doorbell for queue %llu without its file", (unsigned long long)index);
	} else {
		void *p = map_page(fe, m->fds[0], a);
		if (p) {
			publish(&fe->q[index], p);
			atomic_fetch_add(&fe->q[index].db_mapped, 1);
			result = 0;
		} else {
			atomic_fetch_add(&fe->q[index].db_refused, 1);
		}
	}
	vhu_user_msg_close_fds(m);   /* a mapping keeps what it needs */
	return result;
}

void *fe_doorbell_current(struct vhu_fe_queue *q)
{
	void *n = atomic_exchange(&q->db_next, NULL);
	if (n) {
		if (q->db_cur)
			munmap(q->db_cur, page_size());
		q->db_cur = n == FE_DB_GONE ? NULL : n;
	}
	return q->db_cur;
}

void fe_doorbell_drop_all(struct vhu_fe *fe, bool unmap_now)
{
	for (unsigned i = 0; i < fe->nq; i++) {
		struct vhu_fe_queue *q = &fe->q[i];
		publish(q, unmap_now ? NULL : FE_DB_GONE);
		if (unmap_now && q->db_cur) {
			munmap(q->db_cur, page_size());
			q->db_cur = NULL;
		}
	}
}

void vhu_fe_queue_stats(struct vhu_fe_queue *q, struct vhu_fe_queue_stats *st)
{
	*st = (struct vhu_fe_queue_stats){
		.kicks_doorbell = atomic_load(&q->kicks_doorbell), .kicks_eventfd = atomic_load(&q->kicks_eventfd),
		.kicks_inband = atomic_load(&q->kicks_inband), .doorbells_mapped = atomic_load(&q->db_mapped),
		.doorbells_refused = atomic_load(&q->db_refused),
	};
}
