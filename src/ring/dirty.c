/* SPDX-License-Identifier: MIT */
/*
 * Dirty-page logging of a device-side queue (vhu_dev_vq_set_log): the guest
 * ranges of each chain's writable buffers recorded when it is popped, the
 * bytes a push reports written marked along them, the ring's own stores
 * marked where they happen (dev_log_ring), and the batch ORed into the
 * shared bitmap before each publishing store.
 */
#include <stdlib.h>

#include "vq_internal.h"
#include "vhu/mem.h"

/* Chains the device took without their writable ranges recorded. Those an
 * inflight region recovered and the device has not popped again are not
 * among them: their pop, still to come, records them. */
static bool holds_unrecorded_chains(const struct vhu_dev_vq *vq)
{
	unsigned held = 0;
	for (unsigned i = 0; i < vq->num; i++)
		held += vq->chain[i].ndesc != 0;
	return held > vhu_dev_vq_resubmit_pending(vq);
}

static void free_records(struct vhu_dev_vq_log *l, uint16_t num)
{
	if (!l->rec)
		return;
	for (unsigned i = 0; i < num; i++)
		free(l->rec[i].seg);
	free(l->rec);
	l->rec = NULL;
}

void dev_log_free(struct vhu_dev_vq *vq)
{
	struct vhu_dev_vq_log *l = vq->log;
	if (!l)
		return;
	vhu_dirty_cache_flush(&l->cache);
	free_records(l, vq->num);
	free(l);
	vq->log = NULL;
}

int vhu_dev_vq_set_log(struct vhu_dev_vq *vq, const struct vhu_vq_log_config *c)
{
	if (!vq->chain)
		return -ESHUTDOWN;
	if (!c || !c->log || (!c->buffers && !c->rings)) {
		dev_log_free(vq);
		return 0;
	}
	struct vhu_dev_vq_log *l = vq->log;
	bool need_records = c->buffers && !(l && l->rec);
	if (c->buffers && !vq->xl.mem)
		return -EOPNOTSUPP;
	/* a chain popped unrecorded would have its writes lost */
	if (need_records && holds_unrecorded_chains(vq))
		return -EBUSY;
	bool fresh = !l;
	if (fresh && !(l = calloc(1, sizeof(*l))))
		return -ENOMEM;
	if (need_records && !(l->rec = calloc(vq->num, sizeof(*l->rec)))) {
		if (fresh)
			free(l);
		return -ENOMEM;
	}
	if (!c->buffers)
		free_records(l, vq->num);
	if (fresh || l->cache.log != c->log) {
		vhu_dirty_cache_flush(&l->cache);   /* what was batched goes to the log it was for */
		vhu_dirty_cache_init(&l->cache, c->log);
	}
	l->buffers = c->buffers;
	l->rings = c->rings;
	l->desc_gpa = c->desc_gpa;
	l->device_gpa = c->device_gpa;
	vq->log = l;
	return 0;
}

/* The guest address of host range [p, p + len), which a translation of
 * this queue's region table produced, so one region holds all of it. */
static bool host_to_gpa(struct vhu_dev_vq_log *l, const struct vhu_mem *m, const void *p, size_t len,
			uint64_t *gpa)
{
	const unsigned char *h = p;

	for (unsigned k = 0; k < m->n; k++) {
		unsigned i = (l->last_region + k) % m->n;
		const struct vhu_mem_region *g = &m->r[i];
		if (h >= g->host && (uint64_t)(h - g->host) < g->size && len <= g->size - (uint64_t)(h - g->host)) {
			l->last_region = i;
			*gpa = g->gpa + (uint64_t)(h - g->host);
			return true;
		}
	}
	return false;
}

static bool rec_append(struct log_rec *r, uint64_t gpa, uint64_t len)
{
	if (r->n && r->seg[r->n - 1].gpa + r->seg[r->n - 1].len == gpa) {
		r->seg[r->n - 1].len += len;   /* contiguous in the guest: one range */
		return true;
	}
	if (r->n == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : 4;
		struct log_seg *s = realloc(r->seg, cap * sizeof(*s));
		if (!s)
			return false;
		r->seg = s;
		r->cap = cap;
	}
	r->seg[r->n++] = (struct log_seg){ gpa, len };
	return true;
}

static void record(struct vhu_dev_vq *vq, struct vhu_dev_vq_log *l, const struct vhu_vq_elem *e)
{
	struct log_rec *r = &l->rec[e->id];

	r->n = 0;
	for (unsigned i = e->out_num; i < (unsigned)e->out_num + e->in_num; i++) {
		uint64_t gpa;
		if (!e->iov[i].iov_len)
			continue;
		if (!host_to_gpa(l, vq->xl.mem, e->iov[i].iov_base, e->iov[i].iov_len, &gpa)) {
			/* cannot happen with the table that mapped it; never log less */
			l->cache.outside++;
			continue;
		}
		if (!rec_append(r, gpa, e->iov[i].iov_len))
			l->nomem = true;
	}
}

void dev_log_popped(struct vhu_dev_vq *vq, const struct vhu_vq_elem *elems, int n)
{
	struct vhu_dev_vq_log *l = vq->log;

	if (!l->rec)
		return;
	if (n < 0) {
		/* a chain taken with unusable buffers: the device writes none */
		bool taken = n == -EFAULT || n == -EOVERFLOW || n == -ENOBUFS || n == -EILSEQ;
		if (taken && elems[0].id < vq->num)
			l->rec[elems[0].id].n = 0;
		return;
	}
	for (int k = 0; k < n; k++)
		record(vq, l, &elems[k]);
}

void dev_log_pushed(struct vhu_dev_vq *vq, const struct vhu_vq_used *u, unsigned n)
{
	struct vhu_dev_vq_log *l = vq->log;

	if (!l->rec)
		return;
	for (unsigned k = 0; k < n; k++) {
		/* what the push would refuse is not logged, and stops it */
		if (!dev_used_ok(vq->chain, vq->num, u[k].id, u[k].len))
			return;
		const struct log_rec *r = &l->rec[u[k].id];
		uint64_t left = u[k].len;
		for (uint32_t i = 0; i < r->n && left; i++) {
			uint64_t part = r->seg[i].len < left ? r->seg[i].len : left;
			vhu_dirty_cache_add(&l->cache, r->seg[i].gpa, part);
			left -= part;
		}
	}
}

bool dev_log_flush(struct vhu_dev_vq *vq)
{
	struct vhu_dev_vq_log *l = vq->log;

	vhu_dirty_cache_flush(&l->cache);
	if (__builtin_expect(!l->cache.outside && !l->nomem, 1))
		return true;
	if (!vq->broken)
		vq->broken = l->nomem ? -ENOMEM : -EFBIG;
	l->cache.outside = 0;
	l->nomem = false;
	return false;
}
