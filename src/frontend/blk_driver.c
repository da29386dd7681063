/* SPDX-License-Identifier: MIT */
/* virtio-blk driver on the vhost-user front-end (VIRTIO §5.2). */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "vhu/blk_driver.h"
#include "vhu/virtio.h"

#define MAX_SEG 256
/* Requests go to the ring in bursts of up to BURST, their segments laid
 * out in the queue's scratch list. */
#define BURST 64
#define SG_SCRATCH (4 * (MAX_SEG + 2))

uint64_t vhu_blk_driver_features(void)
{
	return VHU_BIT(VHU_BLK_F_SIZE_MAX) | VHU_BIT(VHU_BLK_F_SEG_MAX) | VHU_BIT(VHU_BLK_F_BLK_SIZE) |
	       VHU_BIT(VHU_BLK_F_RO) | VHU_BIT(VHU_BLK_F_FLUSH) | VHU_BIT(VHU_BLK_F_TOPOLOGY) |
	       VHU_BIT(VHU_BLK_F_MQ) | VHU_BIT(VHU_BLK_F_DISCARD) | VHU_BIT(VHU_BLK_F_WRITE_ZEROES);
}

int vhu_blk_read_info(struct vhu_fe *fe, uint64_t f, struct vhu_blk_info *in)
{
	struct vhu_blk_config c;
	int rc = vhu_fe_get_config(fe, 0, &c, offsetof(struct vhu_blk_config, max_secure_erase_sectors));

	if (rc < 0)
		return rc;
	vhu_blk_decode_info(&c, f, in);
	return 0;
}

void vhu_blk_decode_info(const struct vhu_blk_config *cp, uint64_t f, struct vhu_blk_info *in)
{
	const struct vhu_blk_config c = *cp;
	memset(in, 0, sizeof(*in));
	in->capacity = le64toh(c.capacity);
	/* fields count only when their feature is offered (§5.2.4) */
	in->blk_size = vhu_has_feature(f, VHU_BLK_F_BLK_SIZE) ? le32toh(c.blk_size) : 512;
	in->seg_max = vhu_has_feature(f, VHU_BLK_F_SEG_MAX) ? le32toh(c.seg_max) : 0;
	in->size_max = vhu_has_feature(f, VHU_BLK_F_SIZE_MAX) ? le32toh(c.size_max) : 0;
	in->num_queues = vhu_has_feature(f, VHU_BLK_F_MQ) ? le16toh(c.num_queues) : 1;
	in->read_only = vhu_has_feature(f, VHU_BLK_F_RO);
	in->flush = vhu_has_feature(f, VHU_BLK_F_FLUSH);
	in->discard = vhu_has_feature(f, VHU_BLK_F_DISCARD);
	in->write_zeroes = vhu_has_feature(f, VHU_BLK_F_WRITE_ZEROES);
	if (in->discard) {
		in->max_discard_sectors = le32toh(c.max_discard_sectors);
		in->max_discard_seg = le32toh(c.max_discard_seg);
	}
	if (in->write_zeroes) {
		in->max_write_zeroes_sectors = le32toh(c.max_write_zeroes_sectors);
		in->max_write_zeroes_seg = le32toh(c.max_write_zeroes_seg);
		in->write_zeroes_may_unmap = c.write_zeroes_may_unmap;
	}
}

struct slot_hdr {             /* in guest memory */
	struct vhu_blk_req_hdr hdr;
	uint8_t status;
	uint8_t pad[15];
};

struct blk_slot {
	void *user;
	unsigned next_free;
};

struct vhu_blk_queue {
	struct vhu_blk_ring ring;
	struct slot_hdr *hdrs;
	uint64_t hdrs_addr;
	struct blk_slot *slots;
	unsigned nslots, free_head, inflight;
	struct vhu_sg *sg;          /* a burst's segments */
};

/* The front-end's own queues: memory from its allocator, mapped once,
 * both ways, when the caller maps DMA (headers and status bytes live as
 * long as the queue, as a guest's driver keeps them in coherent memory). */
static void *fe_alloc(void *o, size_t size, size_t align, uint64_t *addr)
{
	struct vhu_fe *fe = o;
	void *p = vhu_fe_alloc(fe, size, align, addr);
	if (p && vhu_fe_iommu_mode(fe) == VHU_FE_IOMMU_DYNAMIC &&
	    vhu_fe_iommu_map(fe, *addr, size, VHU_USER_IOTLB_PERM_RW, false) < 0)
		return NULL;
	return p;
}

static struct vhu_blk_queue *queue_make(const struct vhu_blk_ring *ring,
					 void *(*alloc)(void *, size_t, size_t, uint64_t *), void *alloc_opaque)
{
	struct vhu_blk_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->ring = *ring;
	q->nslots = ring->vq->num;
	q->slots = calloc(q->nslots, sizeof(*q->slots));
	q->sg = calloc(SG_SCRATCH, sizeof(*q->sg));
	q->hdrs = alloc(alloc_opaque, q->nslots * sizeof(struct slot_hdr), 64, &q->hdrs_addr);
	if (!q->slots || !q->sg || !q->hdrs) {
		vhu_blk_queue_free(q);
		return NULL;
	}
	for (unsigned i = 0; i < q->nslots; i++)
		q->slots[i].next_free = i + 1;
	return q;
}

struct vhu_blk_queue *vhu_blk_queue_new_on(const struct vhu_blk_ring *ring)
{
	return queue_make(ring, ring->alloc, ring->opaque);
}

static int fq_kick(void *o) { return vhu_fe_queue_kick(o); }
static int fq_wait(void *o, int ms) { return vhu_fe_queue_wait(o, ms); }

struct vhu_blk_queue *vhu_blk_queue_new(struct vhu_fe *fe, unsigned index)
{
	struct vhu_fe_queue *fq = vhu_fe_queue(fe, index);
	struct vhu_blk_ring r = { fq ? vhu_fe_queue_vq(fq) : NULL, NULL, fq_kick, fq_wait, fq };
	return fq ? queue_make(&r, fe_alloc, fe) : NULL;
}

void vhu_blk_queue_free(struct vhu_blk_queue *q)
{
	if (q) {
		free(q->slots);
		free(q->sg);
		free(q);
	}
}

static bool data_in(uint32_t type)
{
	return type == VHU_BLK_T_IN || type == VHU_BLK_T_GET_ID;
}

/* Header, data segments and status of one request into sg; returns how
 * many of them are device-readable. */
static unsigned build_request(struct vhu_blk_queue *q, unsigned i, const struct vhu_blk_request *r,
			      struct vhu_sg *sg)
{
	struct slot_hdr *h = &q->hdrs[i];
	h->hdr.type = htole32(r->type);
	h->hdr.reserved = 0;
	h->hdr.sector = htole64(r->sector);
	h->status = 0xff;     /* the device must overwrite it */
	sg[0] = (struct vhu_sg){ q->hdrs_addr + i * sizeof(*h), sizeof(h->hdr) };
	memcpy(&sg[1], r->data, r->ndata * sizeof(*r->data));
	sg[1 + r->ndata] = (struct vhu_sg){ q->hdrs_addr + i * sizeof(*h) + offsetof(struct slot_hdr, status), 1 };
	return data_in(r->type) ? 1 : 1 + r->ndata;
}

int vhu_blk_submit_burst(struct vhu_blk_queue *q, const struct vhu_blk_request *reqs, unsigned n)
{
	unsigned done = 0;

	while (done < n) {
		struct vhu_drv_buf bufs[BURST];
		unsigned nb = 0, nsg = 0, i = q->free_head;
		int err = 0;
		while (done + nb < n && nb < BURST) {
			const struct vhu_blk_request *r = &reqs[done + nb];
			if (r->ndata > MAX_SEG) {
				err = -EINVAL;
				break;
			}
			if (i >= q->nslots) {
				err = -ENOSPC;
				break;
			}
			if (nsg + r->ndata + 2 > SG_SCRATCH)
				break;
			struct vhu_sg *sg = &q->sg[nsg];
			unsigned out = build_request(q, i, r, sg);
			bufs[nb++] = (struct vhu_drv_buf){ sg, (uint16_t)out, (uint16_t)(r->ndata + 2 - out),
							   &q->slots[i] };
			nsg += r->ndata + 2;
			i = q->slots[i].next_free;
		}
		int k = nb ? vhu_drv_vq_add_burst(q->ring.vq, bufs, nb) : err;
		if (k < 0)
			return done ? (int)done : k;
		/* the slots were taken from the free list in order */
		for (int j = 0; j < k; j++) {
			struct blk_slot *s = bufs[j].token;
			s->user = reqs[done + (unsigned)j].user;
			q->free_head = s->next_free;
		}
		q->inflight += (unsigned)k;
		done += (unsigned)k;
		if ((unsigned)k < nb || err)
			break;
	}
	return (int)done;
}

int vhu_blk_submit(struct vhu_blk_queue *q, uint32_t type, uint64_t sector, const struct vhu_sg *data,
		   unsigned ndata, void *user)
{
	struct vhu_blk_request r = { type, sector, data, ndata, user };
	int k = vhu_blk_submit_burst(q, &r, 1);
	return k == 1 ? 0 : k;
}

int vhu_blk_kick(struct vhu_blk_queue *q)
{
	return q->ring.kick(q->ring.opaque);
}

int vhu_blk_complete(struct vhu_blk_queue *q, struct vhu_blk_completion *c, unsigned max)
{
	unsigned n = 0;

	while (n < max) {
		void *tok[BURST];
		uint32_t len[BURST];
		int k = vhu_drv_vq_get_burst(q->ring.vq, tok, len, max - n < BURST ? max - n : BURST);
		if (k < 0)
			return n ? (int)n : k;
		for (int j = 0; j < k; j++) {
			struct blk_slot *s = tok[j];
			unsigned i = (unsigned)(s - q->slots);
			c[n].user = s->user;
			c[n].status = q->hdrs[i].status;
			c[n].len = len[j];
			s->next_free = q->free_head;
			q->free_head = i;
			n++;
		}
		q->inflight -= (unsigned)k;
		if (k < BURST)
			break;
	}
	return (int)n;
}

int vhu_blk_wait(struct vhu_blk_queue *q, int timeout_ms)
{
	return q->ring.wait(q->ring.opaque, timeout_ms);
}

unsigned vhu_blk_inflight(const struct vhu_blk_queue *q) { return q->inflight; }
