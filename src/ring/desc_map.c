/* SPDX-License-Identifier: MIT */
/*
 * Device side: turning descriptors into iovecs through the translation
 * callback, and reading indirect tables. Everything here treats addresses
 * and lengths as hostile.
 */
#include "vq_internal.h"

/* The general case of chain_map_add(): checks in the order the spec gives
 * them, then maps region by region. */
int chain_map_slow(struct vhu_dev_vq *vq, struct chain_map *m, uint64_t addr,
		   uint32_t len, bool write)
{
	/* §2.7.4.2 / §2.8.6: device-writable elements follow every readable one */
	if (write)
		m->seen_write = true;
	else if (m->seen_write)
		return -EILSEQ;
	/* The used length is 32 bits (§2.7.8); a longer chain cannot be
	 * accounted for. */
	if (m->out_len + m->in_len + len > UINT32_MAX)
		return -EOVERFLOW;
	if (write)
		m->in_len += len;
	else
		m->out_len += len;
	if (addr + len < addr)
		return -EFAULT;
	while (len) {
		uint64_t chunk = len;
		void *p;

		if (m->n == m->max)
			return -ENOBUFS;
		p = vhu_xlate(&vq->xl, addr, &chunk,
				  write ? VHU_ACCESS_WRITE : VHU_ACCESS_READ);
		if (!p || chunk == 0 || chunk > len)
			return -EFAULT;
		m->iov[m->n].iov_base = p;
		m->iov[m->n].iov_len = chunk;
		m->n++;
		addr += chunk;
		len -= (uint32_t)chunk;
	}
	if (!write)
		m->out_num = m->n;
	return 0;
}

/* Copy [addr, addr+len) of guest memory into buf, region by region. */
static int copy_from_guest(struct vhu_dev_vq *vq, uint64_t addr, void *buf, size_t len)
{
	unsigned char *out = buf;

	while (len) {
		uint64_t chunk = len;
		const void *p = vhu_xlate(&vq->xl, addr, &chunk, VHU_ACCESS_READ);

		if (!p || chunk == 0 || chunk > len)
			return -EFAULT;
		memcpy(out, p, chunk);
		out += chunk;
		addr += chunk;
		len -= chunk;
	}
	/* The copy above is our single read: forbid the compiler from
	 * re-reading guest memory in place of the local copy. */
	__asm__ __volatile__("" ::: "memory");
	return 0;
}

int ind_open(struct vhu_dev_vq *vq, uint64_t addr, uint32_t len, struct ind_table *t)
{
	uint64_t chunk = len;
	const void *p;

	/* §2.7.5.3.1: the table is an array of 16-byte descriptors */
	if (len == 0 || len % 16)
		return -EBADMSG;
	if (len / 16 > VHU_VQ_MAX_INDIRECT)
		return -EMSGSIZE;
	if (addr + len < addr)
		return -EFAULT;
	t->addr = addr;
	t->count = len / 16;
	p = vhu_xlate(&vq->xl, addr, &chunk, VHU_ACCESS_READ);
	if (!p || chunk == 0 || chunk > len)
		return -EFAULT;
	if (chunk == len && ((uintptr_t)p & 7) == 0) {
		t->host = p;        /* fast path: one mapping, aligned */
		return 0;
	}
	/* The table straddles regions or is misaligned: read each entry by
	 * copy. Check now that all of it is mapped, so that a bad table is
	 * reported before any of its buffers is used. */
	t->host = NULL;
	for (uint64_t a = addr + chunk, end = addr + len; a < end; a += chunk) {
		chunk = end - a;
		if (!vhu_xlate(&vq->xl, a, &chunk, VHU_ACCESS_READ) ||
		    chunk == 0 || chunk > end - a)
			return -EFAULT;
	}
	return 0;
}

int ind_read(struct vhu_dev_vq *vq, const struct ind_table *t, uint32_t i,
	     bool packed, struct desc_copy *c)
{
	if (t->host) {
		const void *d = t->host + 16u * i;
		if (packed) {
			read_packed_desc(d, c);
			c->flags = ld16(&((const struct vhu_vring_packed_desc *)d)->flags);
		} else {
			read_split_desc(d, c);
		}
		return 0;
	}
	unsigned char raw[16];
	int r = copy_from_guest(vq, t->addr + 16u * i, raw, sizeof(raw));
	if (r < 0)
		return r;
	uint64_t a; uint32_t l; uint16_t x, y;
	memcpy(&a, raw, 8); memcpy(&l, raw + 8, 4);
	memcpy(&x, raw + 12, 2); memcpy(&y, raw + 14, 2);
	c->addr = le64toh(a);
	c->len = le32toh(l);
	/* split: flags, next; packed: id, flags */
	c->flags = le16toh(packed ? y : x);
	c->next_or_id = le16toh(packed ? x : y);
	return 0;
}
