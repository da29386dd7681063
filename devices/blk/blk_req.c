/* SPDX-License-Identifier: MIT */
/* virtio-blk request parsing (VIRTIO §5.2.6). Everything in the request
 * comes from the driver and is checked here. */
#include <endian.h>
#include <string.h>

#include "blk_req.h"

uint64_t blk_iov_copy_from(const struct iovec *iov, unsigned n, void *buf, uint64_t len)
{
	uint64_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		uint64_t c = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		memcpy((char *)buf + done, iov[i].iov_base, c);
		done += c;
	}
	return done;
}

uint64_t blk_iov_copy_to(const struct iovec *iov, unsigned n, const void *buf, uint64_t len)
{
	uint64_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		uint64_t c = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		memcpy(iov[i].iov_base, (const char *)buf + done, c);
		done += c;
	}
	return done;
}

/* Take [skip, skip + len) of iov[0..n) into out, splitting at the edges. */
static int slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
		 struct iovec *out, unsigned *nout)
{
	*nout = 0;
	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		uint64_t c = l - skip < len ? l - skip : len;
		if (*nout == BLK_MAX_IOV)
			return -1;
		out[*nout].iov_base = (char *)iov[i].iov_base + skip;
		out[*nout].iov_len = c;
		(*nout)++;
		len -= c;
		skip = 0;
	}
	return 0;
}

/* The readable data after the header, for the requests that change the
 * disk (OUT, DISCARD, WRITE_ZEROES). */
static int take_out_data(const struct vhu_vq_elem *e, bool read_only, uint64_t len, struct blk_req *r)
{
	if (read_only)
		return VHU_BLK_S_IOERR;
	if (slice(e->iov, e->out_num, sizeof(struct vhu_blk_req_hdr), len, r->data, &r->ndata) < 0)
		return VHU_BLK_S_IOERR;
	r->data_len = len;
	return VHU_BLK_S_OK;
}

int blk_req_parse(const struct vhu_vq_elem *e, uint64_t capacity, bool read_only, struct blk_req *r)
{
	const struct iovec *out = e->iov, *in = e->iov + e->out_num;
	struct vhu_blk_req_hdr h;

	r->status = NULL;
	r->ndata = 0;
	r->data_len = 0;
	r->used_len = 0;
	/* §5.2.6: the status byte is the last device-writable byte */
	if (e->in_len == 0)
		return VHU_BLK_S_IOERR;
	for (unsigned i = e->in_num; i-- > 0;)
		if (in[i].iov_len) {
			r->status = (uint8_t *)in[i].iov_base + in[i].iov_len - 1;
			break;
		}
	r->used_len = 1;
	if (e->out_len < sizeof(h))
		return VHU_BLK_S_IOERR;
	blk_iov_copy_from(out, e->out_num, &h, sizeof(h));
	r->hdr.type = le32toh(h.type);
	r->hdr.sector = le64toh(h.sector);

	uint64_t out_data = e->out_len - sizeof(h), in_data = e->in_len - 1;
	switch (r->hdr.type) {
	case VHU_BLK_T_IN:
		if (out_data || in_data % VHU_BLK_SECTOR_SIZE)
			return VHU_BLK_S_IOERR;
		if (slice(in, e->in_num, 0, in_data, r->data, &r->ndata) < 0)
			return VHU_BLK_S_IOERR;
		r->data_len = in_data;
		break;
	case VHU_BLK_T_OUT:
		if (in_data || out_data % VHU_BLK_SECTOR_SIZE)
			return VHU_BLK_S_IOERR;
		if (take_out_data(e, read_only, out_data, r) != VHU_BLK_S_OK)
			return VHU_BLK_S_IOERR;
		break;
	case VHU_BLK_T_FLUSH:
		return VHU_BLK_S_OK;
	case VHU_BLK_T_GET_ID:
		/* §5.2.6.1: data is 20 bytes */
		if (in_data < VHU_BLK_ID_BYTES)
			return VHU_BLK_S_IOERR;
		slice(in, e->in_num, 0, VHU_BLK_ID_BYTES, r->data, &r->ndata);
		r->data_len = VHU_BLK_ID_BYTES;
		return VHU_BLK_S_OK;
	case VHU_BLK_T_DISCARD:
	case VHU_BLK_T_WRITE_ZEROES:
		if (in_data || out_data == 0 || out_data % sizeof(struct vhu_blk_discard_wz) ||
		    out_data / sizeof(struct vhu_blk_discard_wz) > BLK_MAX_DWZ_SEG)
			return VHU_BLK_S_IOERR;
		return take_out_data(e, read_only, out_data, r);
	default:
		return VHU_BLK_S_UNSUPP;
	}
	/* IN / OUT: inside the disk, without overflow */
	uint64_t n = r->data_len / VHU_BLK_SECTOR_SIZE;
	if (r->hdr.sector > capacity || n > capacity - r->hdr.sector)
		return VHU_BLK_S_IOERR;
	return VHU_BLK_S_OK;
}
