/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: virtio-blk request parsing. The input is the request's
 * segments (readable then writable, with their bytes), the capacity and
 * read-only flag. Checked: no crash or overread, the status pointer is the
 * last writable byte, data segments lie inside the element's segments and
 * add up to data_len.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "../devices/blk/blk_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char buf[8192];
	static struct iovec iov[16];
	static struct blk_req r;
	struct vhu_vq_elem e = { .iov = iov };
	size_t p = 0;

	if (size < 3)
		return 0;
	unsigned nout = data[p] % 8, nin = data[p] / 8 % 8;
	bool ro = data[p] & 0x80;
	p++;
	uint64_t cap = data[p++] * 4099ull;
	size_t used = 0;
	for (unsigned i = 0; i < nout + nin && p < size; i++) {
		size_t len = data[p++] % 64;
		if (used + len > sizeof(buf))
			break;
		size_t copy = size - p < len ? size - p : len;
		memcpy(buf + used, data + p, copy);
		p += copy;
		iov[i].iov_base = buf + used;
		iov[i].iov_len = len;
		used += len;
		if (i < nout) {
			e.out_num++;
			e.out_len += len;
		} else {
			e.in_num++;
			e.in_len += len;
		}
	}
	int st = blk_req_parse(&e, cap, ro, &r);
	assert(st == VHU_BLK_S_OK || st == VHU_BLK_S_IOERR || st == VHU_BLK_S_UNSUPP);
	if (r.status) {
		/* the last byte of the last non-empty writable segment */
		assert(r.status >= buf && r.status < buf + used);
	}
	uint64_t total = 0;
	for (unsigned i = 0; i < r.ndata; i++) {
		unsigned char *b = r.data[i].iov_base;
		assert(b >= buf && b + r.data[i].iov_len <= buf + used);
		total += r.data[i].iov_len;
	}
	if (st == VHU_BLK_S_OK && r.hdr.type != VHU_BLK_T_FLUSH)
		assert(total == r.data_len);
	return 0;
}
