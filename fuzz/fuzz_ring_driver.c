/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the driver side of the ring engine against a hostile
 * device (what vhu's front-end runs on its rings). The input chooses the
 * ring format, size and features, then runs a script: the driver adds
 * buffers (one at a time and in bursts), publishes, decides on kicks, takes used buffers and re-arms
 * notifications, while the "device" writes into the shared ring: plausible
 * used entries with ids and lengths from the input, or any byte anywhere.
 * Checked: no crash and no access outside the ring or the indirect tables
 * (ASan; the ring is allocated to its exact size); every token comes back
 * at most once and only while in flight, never with a length beyond its
 * writable part; a broken queue stays broken with the same code.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring_mode.h"
#include "vhu/vq.h"

#define MAX_NUM 64
#define IND_MAX 4
#define IND_GPA 0x40000000ull

struct token {
	bool inflight;
	uint32_t in_len;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct token tokens[MAX_NUM * 2];
	static struct vhu_vring_desc ind[MAX_NUM * IND_MAX];
	struct vhu_drv_vq vq;
	size_t p = 0;

	if (size < 3)
		return 0;
	uint8_t mode = data[0];
	struct ring_mode rm = ring_mode_of(mode, data[1], MAX_NUM);
	bool packed = rm.packed;
	uint16_t num = rm.num;
	uint64_t features = rm.features;
	p = 2;
	struct vhu_vq_layout l;
	vhu_vq_layout(num, packed, &l);
	unsigned char *ring = calloc(1, l.size);
	if (!ring)
		return 0;
	struct vhu_vq_config c = {
		.num = num, .index = 0, .features = features, .desc = ring + l.desc_off,
		.driver_area = ring + l.driver_off, .device_area = ring + l.device_off,
	};
	bool ind_on = mode & 2;
	if (vhu_drv_vq_init(&vq, &c, ind_on ? ind : NULL, ind_on ? IND_GPA : 0, ind_on ? IND_MAX : 0) < 0) {
		free(ring);
		return 0;
	}
	memset(tokens, 0, sizeof(tokens));
	unsigned next_tok = 0;
	uint16_t dev_used = 0;       /* the device's idea of its used position */
	bool dev_wrap = true;

	for (; p < size; p++) {
		uint8_t op = data[p], arg = p + 1 < size ? data[p + 1] : 0;
		switch (op % 8) {
		case 0:
		case 1: {   /* add buffers (case 1: a burst of up to four): each of
			     * 0-3 readable then 0-3 writable segments */
			unsigned out = op / 8 % 4, in = op / 32 % 4, nb = op % 8 == 1 ? 1 + op / 128 * 3 : 1;
			if (!out && !in)
				in = 1;
			struct vhu_sg sg[6];
			struct vhu_drv_buf bufs[4];
			unsigned toks[4];
			uint32_t in_len = 0;
			for (unsigned i = 0; i < out + in; i++) {
				sg[i] = (struct vhu_sg){ 0x100000 + 0x1000ull * i, 1 + arg * (i + 1) };
				if (i >= out)
					in_len += sg[i].len;
			}
			unsigned nt = 0;
			for (unsigned t = next_tok; nt < nb && !tokens[t].inflight; t = (t + 1) % (MAX_NUM * 2)) {
				toks[nt] = t;
				bufs[nt] = (struct vhu_drv_buf){ sg, (uint16_t)out, (uint16_t)in, &tokens[t] };
				nt++;
			}
			if (!nt)
				break;
			int r = nt == 1 && op % 8 == 0 ? vhu_drv_vq_add(&vq, sg, out, in, &tokens[toks[0]])
						       : vhu_drv_vq_add_burst(&vq, bufs, nt);
			if (nt == 1 && op % 8 == 0 && r == 0)
				r = 1;
			assert(r <= (int)nt);
			for (int k = 0; k < r; k++)
				tokens[toks[k]] = (struct token){ true, in_len };
			if (r > 0)
				next_tok = (toks[r - 1] + 1) % (MAX_NUM * 2);
			else if (vhu_drv_vq_broken(&vq))
				assert(r == vhu_drv_vq_broken(&vq));
			assert(vhu_drv_vq_num_free(&vq) <= num);
			p++;
			break;
		}
		case 2:
			if (op & 8)
				vhu_drv_vq_publish(&vq);
			else
				(void)vhu_drv_vq_kick_prepare(&vq);
			(void)vhu_drv_vq_notification_data(&vq);
			break;
		case 3: {   /* take used buffers, one at a time or (op & 64) in a burst */
			void *tok[8];
			uint32_t len[8];
			int r;
			unsigned want = 1u + op / 8 % 8;
			if (op & 64) {
				r = vhu_drv_vq_get_burst(&vq, tok, len, want);
				if (r < 0) {
					assert(r == vhu_drv_vq_broken(&vq));
					assert(vhu_drv_vq_get_burst(&vq, tok, len, want) == r);
					break;
				}
				assert(r <= (int)want);
				for (int k = 0; k < r; k++) {
					struct token *t = tok[k];
					assert(t >= tokens && t < tokens + MAX_NUM * 2);
					assert(t->inflight);
					assert(len[k] <= t->in_len);
					t->inflight = false;
				}
				break;
			}
			for (unsigned k = 0; k < want && (r = vhu_drv_vq_get(&vq, &tok[0], &len[0])) != 0; k++) {
				if (r < 0) {
					assert(r == vhu_drv_vq_broken(&vq));
					assert(vhu_drv_vq_get(&vq, &tok[0], &len[0]) == r);
					break;
				}
				struct token *t = tok[0];
				assert(t >= tokens && t < tokens + MAX_NUM * 2);
				assert(t->inflight);
				assert(len[0] <= t->in_len);
				t->inflight = false;
			}
			break;
		}
		case 4:   /* the device writes any byte anywhere in the ring */
			if (p + 2 < size) {
				ring[(data[p + 1] << 8 | data[p + 2]) % l.size] = op;
				p += 2;
			}
			break;
		case 5:   /* the device returns a buffer: id and length from the input */
			if (p + 2 < size) {
				uint16_t id = data[p + 1] % (num + 2u);
				uint32_t len = (uint32_t)data[p + 2] * 97u;
				if (packed) {
					struct vhu_vring_packed_desc *d = &((struct vhu_vring_packed_desc *)c.desc)[dev_used];
					d->id = id;
					d->len = len;
					uint16_t f = dev_wrap ? (VHU_VRING_PACKED_DESC_F_AVAIL | VHU_VRING_PACKED_DESC_F_USED) : 0;
					__atomic_store_n(&d->flags, f, __ATOMIC_RELEASE);
					dev_used = (uint16_t)((dev_used + 1 + op / 8 % 3) % num);
					if (dev_used < 1 + op / 8 % 3)
						dev_wrap = !dev_wrap;
				} else {
					struct vhu_vring_used *u = c.device_area;
					u->ring[dev_used % num] = (struct vhu_vring_used_elem){ id, len };
					dev_used = (uint16_t)(dev_used + 1 + (op & 8 ? op / 16 : 0));
					__atomic_store_n(&u->idx, dev_used, __ATOMIC_RELEASE);
				}
				p += 2;
			}
			break;
		case 6:
			if (op & 8)
				vhu_drv_vq_disable_cb(&vq);
			else
				(void)vhu_drv_vq_enable_cb(&vq);
			(void)vhu_drv_vq_has_used(&vq);
			break;
		case 7: {
			struct vhu_vq_pos pos;
			vhu_drv_vq_get_pos(&vq, &pos);
			assert(!packed || (pos.avail < num && pos.used < num));
			break;
		}
		}
	}
	vhu_drv_vq_destroy(&vq);
	free(ring);
	return 0;
}
