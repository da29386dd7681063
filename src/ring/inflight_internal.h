/* SPDX-License-Identifier: MIT */
/*
 * The ring engine's side of the vhost-user inflight region ("Inflight I/O
 * tracking"): what pop, push and publish write there, in an order that
 * leaves a region a new process can recover from whatever instruction the
 * old one died at (the recovery is inflight.c's).
 *
 * While running, the engine only writes the region: every decision is made
 * on private state (free list, batches, counters), so a front-end that
 * scribbles on the shared region can corrupt only what a restart would
 * read, which is then checked before use.
 *
 * Values are in host byte order (both ends are on one host; QEMU and the
 * other back-ends do the same). A store that makes earlier ones count (the
 * inflight flag, a list head, an old_* commit) is a release store, so that
 * neither the compiler nor the CPU can let it overtake them.
 */
#ifndef VHU_INFLIGHT_INTERNAL_H
#define VHU_INFLIGHT_INTERNAL_H

#include "vhu/inflight.h"
#include "vq_internal.h"

/* Tests build the engine with a hook between the stores, to stop it there
 * as a crash would (tests/test_inflight.c). */
#ifdef VHU_INFLIGHT_STEP_HOOK
void vhu_inflight_step_hook(void);
#define IFL_STEP() vhu_inflight_step_hook()
#else
#define IFL_STEP() ((void)0)
#endif

#define IFL_ST(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define IFL_ST_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

struct vhu_dev_inflight {
	union {
		struct vhu_inflight_split_queue *split;
		struct vhu_inflight_packed_queue *pk;
	} r;
	uint16_t num;
	uint64_t counter;          /* the next request's place in the order */
	/* requests of the dead process, to be popped again, in order */
	uint16_t *resub;           /* split: heads; packed: buffer ids */
	uint16_t *resub_pos;       /* the position each held (IN_ORDER push) */
	unsigned resub_n, resub_next;
	/* used heads (split) or head entries (packed) not yet published */
	uint16_t *batch;
	unsigned batch_n;
	/* packed: the free list and each held chain's entries, by buffer id */
	uint16_t *next;
	uint16_t free_head;
	uint16_t *head_of, *last_of;
	struct desc_copy *copy;    /* resubmission: each entry's descriptor */
	uint16_t used_idx;         /* the used position with the open batch */
	bool used_wrap;
	uint16_t old_used_idx;     /* and without it */
	bool old_used_wrap;
	bool open;                 /* pushes since the last publish */
};

/* ---- split ---------------------------------------------------------------- */

/* Taking head: its place in the order, then the flag that makes it count. */
static inline __attribute__((always_inline)) void ifl_split_take(struct vhu_dev_inflight *f, uint16_t head)
{
	struct vhu_inflight_split_desc *d = &f->r.split->desc[head];

	IFL_ST(&d->counter, f->counter++);
	IFL_STEP();
	IFL_ST_REL(&d->inflight, 1);
	IFL_STEP();
}

/* Used (not yet published): onto the last batch's list. */
static inline void ifl_split_push(struct vhu_dev_inflight *f, uint16_t head)
{
	struct vhu_inflight_split_queue *q = f->r.split;

	IFL_ST(&q->desc[head].next, q->last_batch_head);
	IFL_STEP();
	IFL_ST_REL(&q->last_batch_head, head);
	IFL_STEP();
	f->batch[f->batch_n++] = head;
}

/* used->idx was just stored: the batch is the driver's, settle it. A crash
 * before used_idx matches leaves a batch the recovery settles the same way. */
void ifl_split_published(struct vhu_dev_inflight *f, uint16_t used_idx);

/* ---- packed --------------------------------------------------------------- */

/* Taking the chain of ndesc slots at pos with buffer id: each descriptor
 * copied into an entry off the free list, the head's count, last and order,
 * then the flag, then the free list moves past it. A crash before the free
 * list moved leaves the head in it, and the recovery clears free entries. */
void ifl_packed_take(struct vhu_dev_inflight *f, const struct vhu_vring_packed_desc *ring,
		     uint16_t pos, uint16_t ndesc, uint16_t id);

/* Buffer id used (ndesc slots), not yet published: the used position the
 * region records moves first, so that a crash after the free list changed
 * shows a batch in progress and is rolled back. */
void ifl_packed_push(struct vhu_dev_inflight *f, uint16_t id, uint16_t ndesc);

/* The batch's first used descriptor was just flagged: clear the heads and
 * commit the old_* triple. */
void ifl_packed_published(struct vhu_dev_inflight *f);

/* ---- resubmission (inflight.c) ---------------------------------------------- */

int ifl_pop_resubmitted(struct vhu_dev_vq *vq, struct vhu_vq_elem *elems, unsigned n,
			struct iovec *iov, unsigned iov_len, unsigned iov_max);

/* The format's mapping of one chain into *m (split_dev.c, packed_dev.c):
 * 0 or a buffer error; a malformed chain's code in *ring_err. */
int split_dev_map_head(struct vhu_dev_vq *vq, uint16_t head, struct chain_map *m, int *ring_err);
/* packed: the chain of n entries from head, linked by next, as copied */
int packed_dev_map_copies(struct vhu_dev_vq *vq, const struct desc_copy *copy, const uint16_t *next,
			  uint16_t head, unsigned n, struct chain_map *m, int *ring_err);

void ifl_free(struct vhu_dev_inflight *f);

#endif
