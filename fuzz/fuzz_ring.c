/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the device side of the ring engine against a hostile
 * driver. The input chooses the ring format and size, fills guest memory
 * (which holds the rings, the indirect tables and the buffers) and runs an
 * operation script: pop, push, flush, notify decisions, suppression,
 * notification data, save/restore. Checked: nothing crashes or reads out of
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
		case 0:
		case 1: {   /* pop */
			if (nheld == 64)
				break;
			struct held *h = &held[nheld];
			int r = vhu_dev_vq_pop(&vq, &h->e, h->iov, 1 + op / 8 % 64);
			if (r == 1 || (r < 0 && !vhu_dev_vq_broken(&vq))) {
				/* every segment inside guest memory, lengths add up */
				uint64_t out = 0, in = 0;
				if (r == 1) {
					for (unsigned i = 0; i < h->e.out_num + h->e.in_num; i++) {
						unsigned char *b = h->iov[i].iov_base;
						assert(b >= mem && b + h->iov[i].iov_len <= mem + MEM);
						assert(!(b < mem + HOLE_END && b + h->iov[i].iov_len > mem + HOLE_START));
						if (i < h->e.out_num)
							out += h->iov[i].iov_len;
						else
							in += h->iov[i].iov_len;
					}
					assert(out == h->e.out_len && in == h->e.in_len);
					assert(out + in <= UINT32_MAX);
				}
				nheld++;
			}
			if (r < 0 && vhu_dev_vq_broken(&vq))
				assert(vhu_dev_vq_pop(&vq, &held[nheld < 64 ? nheld : 0].e, held[0].iov, 64) == r);
			break;
		}
		case 2: {   /* push one held (in order if IN_ORDER) */
			if (!nheld)
				break;
			unsigned k = (features & VHU_BIT(VHU_F_IN_ORDER)) ? 0 : op / 8 % nheld;
			struct held *h = &held[k];
			uint32_t len = h->e.in_len ? (uint32_t)((op / 8) % (h->e.in_len + 1)) : 0;
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
	return 0;
}
