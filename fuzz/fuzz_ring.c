/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the device side of the ring engine against a hostile
 * driver. The input chooses the ring format and size, fills guest memory
 * (which holds the rings, the indirect tables and the buffers) and runs an
 * operation script: pop and push, one at a time and in bursts, flush,
 * notify decisions, suppression, notification data, save/restore. Checked: nothing crashes or reads out of
 * bounds (ASan), every iovec lies inside guest memory, lengths add up, a
 * broken queue stays broken.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ring_mode.h"
#include "vhu/vq.h"

#define MEM (64 * 1024)
#define HOLE_START 0x8000     /* guest addresses in [HOLE_START, HOLE_END) are unmapped */
#define HOLE_END 0x9000

static unsigned char mem[MEM] __attribute__((aligned(4096)));

static void *translate(void *opaque, uint64_t addr, uint64_t *len, int access)
{
	(void)opaque;
	(void)access;
	if (addr >= MEM || (addr >= HOLE_START && addr < HOLE_END))
		return NULL;
	uint64_t end = addr < HOLE_START ? HOLE_START : MEM;
	if (*len > end - addr)
		*len = end - addr;
	return mem + addr;
}

struct held {
	struct vhu_vq_elem e;
	struct iovec iov[64];
};

/* every segment inside guest memory, lengths add up */
static void check_elem(const struct vhu_vq_elem *e)
{
	uint64_t out = 0, in = 0;
	for (unsigned i = 0; i < (unsigned)e->out_num + e->in_num; i++) {
		unsigned char *b = e->iov[i].iov_base;
		assert(b >= mem && b + e->iov[i].iov_len <= mem + MEM);
		assert(!(b < mem + HOLE_END && b + e->iov[i].iov_len > mem + HOLE_START));
		if (i < e->out_num)
			out += e->iov[i].iov_len;
		else
			in += e->iov[i].iov_len;
	}
	assert(out == e->out_len && in == e->in_len);
	assert(out + in <= UINT32_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct held held[64];
	struct vhu_dev_vq vq;
	size_t p = 0;

	if (size < 4)
		return 0;
	struct ring_mode rm = ring_mode_of(data[0], data[1], 64);
	uint16_t num = rm.num;
	uint64_t features = rm.features;
	p = 2;
	/* guest memory: the rest of the input up to the script marker */
	size_t script = size - (size - p) / 4;   /* last quarter is the script */
	memset(mem, 0, sizeof(mem));
	memcpy(mem, data + p, script - p < MEM ? script - p : MEM);
	struct vhu_vq_config c = {
		.num = num, .index = 0, .features = features,
		.desc = mem, .driver_area = mem + 0x1000, .device_area = mem + 0x2000,
		.translate = translate,
	};
	if (vhu_dev_vq_init(&vq, &c) < 0)
		return 0;
	unsigned nheld = 0;
	for (p = script; p < size; p++) {
		uint8_t op = data[p];
		switch (op % 8) {
		case 0: {   /* pop */
			if (nheld == 64)
				break;
			struct held *h = &held[nheld];
			int r = vhu_dev_vq_pop(&vq, &h->e, h->iov, 1 + op / 8 % 64);
			if (r == 1)
				check_elem(&h->e);
			if (r == 1 || (r < 0 && !vhu_dev_vq_broken(&vq)))
				nheld++;
			if (r < 0 && vhu_dev_vq_broken(&vq))
				assert(vhu_dev_vq_pop(&vq, &held[nheld < 64 ? nheld : 0].e, held[0].iov, 64) == r);
			break;
		}
		case 1: {   /* pop a burst into one iovec array, or each into its own */
			static struct vhu_vq_elem es[64];
			static struct iovec iovs[256];
			unsigned want = 1 + op / 8 % 16, iov_max = 1 + op / 64 % 4 * 5;
			bool own = op & 0x20;
			if (want > 64 - nheld)
				want = 64 - nheld;
			if (!want)
				break;
			for (unsigned i = 0; i < want; i++)
				es[i].iov = held[nheld + i].iov;
			int r = vhu_dev_vq_pop_burst(&vq, es, want, own ? NULL : iovs, 256, iov_max);
			assert(r <= (int)want);
			if (r < 0 && vhu_dev_vq_broken(&vq)) {
				assert(vhu_dev_vq_pop_burst(&vq, es, want, iovs, 256, 64) == r);
				break;
			}
			unsigned got = r < 0 ? 1 : (unsigned)r;
			for (unsigned i = 0; i < got; i++) {
				struct held *h = &held[nheld++];
				if (r > 0)
					check_elem(&es[i]);
				/* the element's iovecs lie in the array it was given */
				unsigned n = (unsigned)es[i].out_num + es[i].in_num;
				assert(n <= iov_max);
				if (!own)
					assert(es[i].iov >= iovs && es[i].iov + n <= iovs + 256);
				memmove(h->iov, es[i].iov, n * sizeof(h->iov[0]));
				h->e = es[i];
				h->e.iov = h->iov;
			}
			break;
		}
		case 2: {   /* push one held (in order if IN_ORDER) */
			if (!nheld)
				break;
			unsigned k = (features & VHU_BIT(VHU_F_IN_ORDER)) ? 0 : op / 8 % nheld;
			struct held *h = &held[k];
			uint32_t len = h->e.in_len ? (uint32_t)((op / 8) % ((uint64_t)h->e.in_len + 1)) : 0;
			vhu_dev_vq_push(&vq, &h->e, len);
			held[k] = held[--nheld];
			/* keep order for IN_ORDER: shift instead */
			if (k == 0 && nheld && (features & VHU_BIT(VHU_F_IN_ORDER))) {
				struct held last = held[0];
				memmove(&held[0], &held[1], (nheld - 1) * sizeof(held[0]));
				held[nheld - 1] = last;
			}
			for (unsigned i = 0; i < nheld; i++)
				held[i].e.iov = held[i].iov;
			break;
		}
		case 3:
			if ((op & 0x40) && nheld) {
				/* push a burst of the held ones, oldest first */
				struct vhu_vq_used u[64];
				unsigned m = 1 + op / 8 % nheld;
				uint32_t before = vhu_dev_vq_inflight(&vq);
				for (unsigned i = 0; i < m; i++)
					u[i] = (struct vhu_vq_used){ held[i].e.id,
						held[i].e.in_len ? (uint32_t)(op % ((uint64_t)held[i].e.in_len + 1)) : 0 };
				int r = vhu_dev_vq_push_burst(&vq, u, m);
				if (r >= 0) {
					assert(r <= (int)m);
					if (!(features & VHU_BIT(VHU_F_RING_PACKED)))
						assert(vhu_dev_vq_inflight(&vq) == before - (uint32_t)r);
					memmove(&held[0], &held[r], (nheld - (unsigned)r) * sizeof(held[0]));
					nheld -= (unsigned)r;
					for (unsigned i = 0; i < nheld; i++)
						held[i].e.iov = held[i].iov;
				}
				break;
			}
			vhu_dev_vq_flush(&vq);
			(void)vhu_dev_vq_should_notify(&vq);
			break;
		case 4:
			if (op & 8)
				vhu_dev_vq_disable_notify(&vq);
			else
				(void)vhu_dev_vq_enable_notify(&vq);
			break;
		case 5:
			(void)vhu_dev_vq_notification_data(&vq, (uint32_t)op << 16 | (uint32_t)op << 24);
			break;
		case 6: {   /* save and restore */
			struct vhu_vq_pos pos;
			vhu_dev_vq_flush(&vq);
			vhu_dev_vq_get_pos(&vq, &pos);
			if (!nheld)
				(void)vhu_dev_vq_set_pos(&vq, &pos);
			break;
		}
		case 7:   /* the driver writes into its ring meanwhile */
			if (p + 2 < size) {
				mem[(data[p + 1] << 8 | data[p + 2]) % 0x3000] = op;
				p += 2;
			}
			break;
		}
	}
	vhu_dev_vq_destroy(&vq);
	return 0;
}
