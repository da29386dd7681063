/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the admin transport's command path and a managed device's
 * lifecycle. Each input is a sequence of steps against one member (a RAM
 * disk on the device core, application-driven so every run is one thread
 * and repeats exactly): commands in buffers of any layout (the readable
 * part cut anywhere, any writable room, reserved bytes, any opcode, any
 * data), through vhu_admin_take and vhu_admin_member_command; stores of
 * fuzz bytes into guest memory (so rings set up by VQ_SET hold whatever the
 * input says); and rounds of vhu_device_process, which serve the rings.
 * Checked after each step: the used length is 0 only when no status fits,
 * the status is one the spec defines and the qualifier too, the member's
 * status has only bits a driver or the device may set, and nothing is
 * written outside the writable part.
 *
 * Step: u8 kind, then per kind (see the switch).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../tests/ramdisk_dev.h"
#include "vhu/admin_member.h"
#include "vhu/virtio.h"

#define GPA 0x10000000ull
#define MEM (256u << 10)

static unsigned events;
static void on_event(void *o, uint64_t member, uint16_t type, uint16_t queue)
{
	(void)o;
	(void)queue;
	if (member != 1 || type < 1 || type > 3)
		abort();
	events++;
}

static const uint16_t opcodes[] = {
	0x0410, 0x0411, 0x0412, 0x0413, 0x0414, 0x0415, 0x0416, 0x0417, 0x0420, 0x0421, 0x0422, 0x0424, 0x0425,
	0x0426, 0x0430, 0x0401, 0x0000, 0x7fff, 0x0431, 0x0432, 0x0433, 0x0434,
};

static bool status_known(uint16_t s)
{
	return s == 0 || s == 6 || s == 11 || s == 12 || s == 16 || s == 22 || s == 28;
}

/* One command: u8 opcode pick, u8 cut, u8 room, u8 len, then len data bytes. */
static size_t command(struct vhu_admin_member *m, const uint8_t *in, size_t left)
{
	if (left < 4)
		return left;
	uint8_t pick = in[0], cut = in[1], room = in[2], len = in[3] % 41;
	if (left < 4u + len)
		return left;
	uint8_t rd[24 + 40] = { 0 }, wr[8 + 256 + 16];
	uint16_t op = opcodes[pick % (sizeof(opcodes) / sizeof(opcodes[0]))];
	rd[0] = (uint8_t)op;
	rd[1] = (uint8_t)(op >> 8);
	rd[2] = 0x00;
	rd[3] = 0x80;
	rd[16] = 1;
	if (pick & 0x80)
		rd[5] = 1;   /* a reserved byte */
	memcpy(rd + 24, in + 4, len);
	size_t total = 24 + len, a = cut % (total + 1);
	size_t w = room % 200 < 20 ? room % 12 : room;   /* often too little room */
	memset(wr, 0xcd, sizeof(wr));
	struct iovec iov[3] = { { rd, a }, { rd + a, total - a }, { wr, w } };
	struct vhu_admin_req req;
	if (vhu_admin_take(iov, 2, 1, &req) == 0) {
		uint32_t used = vhu_admin_member_command(m, &req, iov, 2, 1);
		if (used < 8 || used > w || !status_known((uint16_t)(wr[0] | wr[1] << 8)) || (wr[2] | wr[3] << 8) > 7)
			abort();
	} else if (w >= 8) {
		abort();   /* only a part without room for a status is refused */
	}
	for (size_t i = w; i < sizeof(wr); i++)
		if (wr[i] != 0xcd)
			abort();
	return 4u + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int memfd = -1;
	static unsigned char *mem;
	if (memfd < 0) {
		memfd = memfd_create("fuzz-admin", MFD_CLOEXEC);
		if (memfd < 0 || ftruncate(memfd, MEM) < 0)
			abort();
		mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
		if (mem == MAP_FAILED)
			abort();
	}
	memset(mem, 0, MEM);
	struct vhu_mem gm;
	vhu_mem_init(&gm);
	struct vhu_user_mem_region reg = { GPA, MEM, (uintptr_t)mem, 0 };
	if (vhu_mem_add(&gm, &reg, dup(memfd)) < 0)
		abort();
	struct vhu_device_config dc = {
		.ops = &ram_ops, .num_queues = 2, .max_queue_size = 64, .config_size = 60, .exec = VHU_EXEC_APP,
		.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) |
			    VHU_BIT(VHU_F_INDIRECT_DESC),
	};
	struct vhu_device *dev = vhu_device_new(&dc);
	struct vhu_admin_member *m = NULL;
	struct vhu_admin_member_config mc = { .dev = dev, .id = 1, .mem = &gm, .event = on_event };
	if (!dev || vhu_admin_member_new(&m, &mc) < 0)
		abort();
	for (size_t at = 0; at < size;) {
		uint8_t kind = data[at++] % 4;
		if (kind <= 1) {
			at += command(m, data + at, size - at);
		} else if (kind == 2 && size - at >= 3) {
			/* store: u16 offset (in 64-byte units), u8 length, bytes */
			size_t off = ((size_t)(data[at] | data[at + 1] << 8) * 64) % MEM, len = data[at + 2];
			at += 3;
			if (len > size - at)
				len = size - at;
			if (len > MEM - off)
				len = MEM - off;
			memcpy(mem + off, data + at, len);
			at += len;
		} else {
			vhu_device_process(dev);
		}
		uint8_t st = vhu_device_status(dev);
		if (st & 0x30)
			abort();
	}
	if (getenv("FUZZ_ADMIN_DEBUG"))   /* what a seed reached */
		fprintf(stderr, "events %u, status 0x%x\n", events, vhu_device_status(dev));
	vhu_admin_member_free(m);
	vhu_device_free(dev);
	vhu_mem_clear(&gm);
	return 0;
}
