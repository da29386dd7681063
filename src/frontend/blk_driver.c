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
	return 0;
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
	struct vhu_fe_queue *fq;
	struct slot_hdr *hdrs;
	uint64_t hdrs_gpa;
	struct blk_slot *slots;
	unsigned nslots, free_head, inflight;
};

struct vhu_blk_queue *vhu_blk_queue_new(struct vhu_fe *fe, unsigned index)
{
	struct vhu_fe_queue *fq = vhu_fe_queue(fe, index);
	struct vhu_blk_queue *q;

	if (!fq)
		return NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->fq = fq;
	q->nslots = vhu_fe_queue_vq(fq)->num;
	q->slots = calloc(q->nslots, sizeof(*q->slots));
	q->hdrs = vhu_fe_alloc(fe, q->nslots * sizeof(struct slot_hdr), 64, &q->hdrs_gpa);
	if (!q->slots || !q->hdrs) {
		vhu_blk_queue_free(q);
		return NULL;
	}
	for (unsigned i = 0; i < q->nslots; i++)
		q->slots[i].next_free = i + 1;
	return q;
}

void vhu_blk_queue_free(struct vhu_blk_queue *q)
{
	if (q) {
		free(q->slots);
		free(q);
	}
}

static bool data_in(uint32_t type)
{
	return type == VHU_BLK_T_IN || type == VHU_BLK_T_GET_ID;
}

int vhu_blk_submit(struct vhu_blk_queue *q, uint32_t type, uint64_t sector, const struct vhu_sg *data,
		   unsigned ndata, void *user)
{
	struct vhu_sg sg[MAX_SEG + 2];

	if (ndata > MAX_SEG)
		return -EINVAL;
	if (q->free_head >= q->nslots)
		return -ENOSPC;
	unsigned i = q->free_head;
	struct slot_hdr *h = &q->hdrs[i];
	h->hdr.type = htole32(type);
	h->hdr.reserved = 0;
	h->hdr.sector = htole64(sector);
	h->status = 0xff;     /* the device must overwrite it */
	sg[0] = (struct vhu_sg){ q->hdrs_gpa + i * sizeof(*h), sizeof(h->hdr) };
	memcpy(&sg[1], data, ndata * sizeof(*data));
	sg[1 + ndata] = (struct vhu_sg){ q->hdrs_gpa + i * sizeof(*h) + offsetof(struct slot_hdr, status), 1 };
	unsigned out = data_in(type) ? 1 : 1 + ndata;
	int rc = vhu_drv_vq_add(vhu_fe_queue_vq(q->fq), sg, out, ndata + 2 - out, &q->slots[i]);
	if (rc < 0)
		return rc;
	q->free_head = q->slots[i].next_free;
	q->slots[i].user = user;
	q->inflight++;
	return 0;
}

int vhu_blk_kick(struct vhu_blk_queue *q)
{
	return vhu_fe_queue_kick(q->fq);
}

int vhu_blk_complete(struct vhu_blk_queue *q, struct vhu_blk_completion *c, unsigned max)
{
	unsigned n = 0;
	while (n < max) {
		void *tok;
		uint32_t len;
		int rc = vhu_drv_vq_get(vhu_fe_queue_vq(q->fq), &tok, &len);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
		struct blk_slot *s = tok;
		unsigned i = (unsigned)(s - q->slots);
		c[n].user = s->user;
		c[n].status = q->hdrs[i].status;
		c[n].len = len;
		s->next_free = q->free_head;
		q->free_head = i;
		q->inflight--;
		n++;
	}
	return (int)n;
}

int vhu_blk_wait(struct vhu_blk_queue *q, int timeout_ms)
{
	return vhu_fe_queue_wait(q->fq, timeout_ms);
}

unsigned vhu_blk_inflight(const struct vhu_blk_queue *q) { return q->inflight; }
