/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: an inflight region (vhost-user SET_INFLIGHT_FD) and a
 * ring, both from a hostile front-end, given to a restarting queue. The
 * input chooses the ring format and size, fills guest memory (rings,
 * indirect tables, buffers) and the region, and a script pops and pushes.
 * Checked: nothing crashes or reads out of bounds (ASan); a refused region
 * leaves the queue broken with that code; every resubmitted chain lies in
 * guest memory; and a region the engine itself kept is accepted again by
 * the next restart (a crash at that point is always recoverable).
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ring_mode.h"
#include "vhu/inflight.h"
#include "vhu/vq.h"

#define MEM (64 * 1024)
#define REGION 4096

static unsigned char mem[MEM] __attribute__((aligned(4096)));
static unsigned char region[REGION] __attribute__((aligned(64)));

static void *translate(void *opaque, uint64_t addr, uint64_t *len, int access)
{
	(void)opaque;
	(void)access;
	if (addr >= MEM)
		return NULL;
	if (*len > MEM - addr)
		*len = MEM - addr;
	return mem + addr;
}

struct held {
	struct vhu_vq_elem e;
	struct iovec iov[16];
};
static struct held held[64];

static void check_elem(const struct vhu_vq_elem *e)
{
	for (unsigned i = 0; i < (unsigned)e->out_num + e->in_num; i++) {
		unsigned char *b = e->iov[i].iov_base;
		assert(b >= mem && b + e->iov[i].iov_len <= mem + MEM);
	}
}

/* A new process: init, a stale position (as QEMU gives), the region. */
static int restart(struct vhu_dev_vq *vq, const struct vhu_vq_config *c, bool packed)
{
	struct vhu_vq_pos stale = { .avail_wrap = packed, .used_wrap = packed };
	if (vhu_dev_vq_init(vq, c) < 0)
		return -1000;
	if (!packed)
		stale.avail = ((struct vhu_vring_used *)c->device_area)->idx;
	if (vhu_dev_vq_set_pos(vq, &stale) < 0)
		return -1001;
	int r = vhu_dev_vq_inflight_attach(vq, region, vhu_inflight_queue_size(c->num, packed));
	if (r < 0)
		assert(vhu_dev_vq_broken(vq) == r);
	return r;
}

/* Pop up to n, in bursts into each element's own iovecs; returns how many are held. */
static unsigned pop_some(struct vhu_dev_vq *vq, unsigned nheld, unsigned n)
{
	static struct vhu_vq_elem es[64];
	while (n && nheld < 64) {
		unsigned want = n < 64 - nheld ? n : 64 - nheld;
		for (unsigned i = 0; i < want; i++)
			es[i].iov = held[nheld + i].iov;
		int r = vhu_dev_vq_pop_burst(vq, es, want, NULL, 0, 16);
		if (r <= 0) {
			if (r < 0 && !vhu_dev_vq_broken(vq))
				held[nheld++].e = es[0];   /* taken with a buffer error */
			break;
		}
		for (int i = 0; i < r; i++) {
			check_elem(&es[i]);
			held[nheld].e = es[i];
			held[nheld].e.iov = held[nheld].iov;
			nheld++;
		}
		n -= (unsigned)r;
	}
	return nheld;
}

/* Return the oldest m held (oldest first, as IN_ORDER wants). */
static unsigned push_some(struct vhu_dev_vq *vq, unsigned nheld, unsigned m, bool flush)
{
	struct vhu_vq_used u[64];
	if (m > nheld)
		m = nheld;
	for (unsigned i = 0; i < m; i++)
		u[i] = (struct vhu_vq_used){ held[i].e.id, 0 };
	int r = flush ? vhu_dev_vq_push_burst(vq, u, m) : 0;
	if (!flush)
		for (unsigned i = 0; i < m && vhu_dev_vq_push(vq, &held[i].e, 0) == 0; i++)
			r = (int)i + 1;
	if (r <= 0)
		return nheld;
	memmove(&held[0], &held[r], (nheld - (unsigned)r) * sizeof(held[0]));
	for (unsigned i = 0; i < nheld - (unsigned)r; i++)
		held[i].e.iov = held[i].iov;
	return nheld - (unsigned)r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhu_dev_vq vq;

	if (size < 8)
		return 0;
	struct ring_mode rm = ring_mode_of(data[0], data[1], 64);
	size_t script = size - (size - 2) / 8;   /* the last eighth is the script */
	size_t body = script - 2, rlen = body / 4 < REGION ? body / 4 : REGION;
	memset(mem, 0, sizeof(mem));
	memset(region, 0, sizeof(region));
	memcpy(region, data + 2, rlen);
	memcpy(mem, data + 2 + rlen, body - rlen < MEM ? body - rlen : MEM);
	struct vhu_vq_config c = {
		.num = rm.num, .features = rm.features,
		.desc = mem, .driver_area = mem + 0x1000, .device_area = mem + 0x2000, .translate = translate,
	};
	if (vhu_dev_vq_init(&vq, &c) < 0)
		return 0;
	vhu_dev_vq_destroy(&vq);
	int r = restart(&vq, &c, rm.packed);
	if (r < 0) {
		vhu_dev_vq_destroy(&vq);
		return 0;
	}
	unsigned nheld = 0;
	for (size_t p = script; p < size; p++) {
		uint8_t op = data[p];
		switch (op % 4) {
		case 0:
			nheld = pop_some(&vq, nheld, 1 + op / 4 % 16);
			break;
		case 1:
			nheld = push_some(&vq, nheld, 1 + op / 4 % 8, op & 0x80);
			break;
		case 2:
			vhu_dev_vq_flush(&vq);
			break;
		case 3: {   /* the process dies here; the next one starts on the region it kept */
			bool broken = vhu_dev_vq_broken(&vq);
			vhu_dev_vq_destroy(&vq);
			nheld = 0;
			r = restart(&vq, &c, rm.packed);
			assert(r >= 0 || broken);
			if (r < 0) {
				vhu_dev_vq_destroy(&vq);
				return 0;
			}
			break;
		}
		}
	}
	vhu_dev_vq_destroy(&vq);
	return 0;
}
