/* SPDX-License-Identifier: MIT */
/* Parsing a virtio-blk request out of a virtqueue element (pure logic). */
#ifndef VHU_BLK_REQ_H
#define VHU_BLK_REQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vhu/virtio_blk.h"
#include "vhu/vq.h"

#define BLK_MAX_SEG 256       /* seg_max: data segments one request may have */
/* iovecs of one request: every segment may straddle two regions, plus
 * header and status */
#define BLK_MAX_IOV (2 * BLK_MAX_SEG + 4)
#define BLK_MAX_DWZ_SEG 32    /* discard / write-zeroes segments */

struct blk_req {
	struct vhu_blk_req_hdr hdr;
	uint8_t *status;          /* the last writable byte; NULL: cannot answer */
	struct iovec data[BLK_MAX_IOV];
	unsigned ndata;
	uint64_t data_len;
	uint32_t used_len;        /* what to report when the request is done */
};

/*
 * Split e into header, data and status. Returns VHU_BLK_S_OK, or the status
 * to answer with at once (IOERR for a malformed request, UNSUPP for an
 * unknown type). status is NULL only when there is no writable byte at all;
 * such a buffer is returned with length 0. Checks: header present, status
 * present, data direction right for the type, sizes in whole sectors,
 * range inside capacity, read-only.
 */
int blk_req_parse(const struct vhu_vq_elem *e, uint64_t capacity_sectors, bool read_only,
		  struct blk_req *r);

/* Copy n bytes from the data iovecs starting at offset into buf. */
uint64_t blk_iov_copy_from(const struct iovec *iov, unsigned n, void *buf, uint64_t len);
uint64_t blk_iov_copy_to(const struct iovec *iov, unsigned n, const void *buf, uint64_t len);

#endif
