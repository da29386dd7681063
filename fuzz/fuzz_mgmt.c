/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: vhu-mgmt's management device (devices/mgmt/) in one process:
 * the envelope's checks, the owner's commands and the members' lifecycle
 * (create on mem: and null:, info, list, destroy, every member command on
 * live and dead ids), command buffers cut anywhere. No front-end is
 * attached, so the members' rings cannot be in memory (fuzz_admin drives
 * rings). Checked after each command: the used length fits the writable
 * part and is 0 only when no status fits, the status and qualifier are the
 * spec's, no more members than the maximum, the count of members agrees
 * with what succeeded; at the end of each input every member is destroyed
 * and the fds are back.
 *
 * Step: u8 opcode pick, u8 group pick, u8 member pick, u8 cut, u8 room,
 * u8 len, then len bytes of command data.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../devices/mgmt/mgmt_internal.h"
#include "../tests/fdcount.h"

#define MAX_MEMBERS 6

static const uint16_t opcodes[] = {
	0x0000, 0x0001, 0x0400, 0x0401, 0x0402, 0x0403, 0x0404, 0x0405, 0x0410, 0x0411, 0x0412, 0x0413, 0x0414,
	0x0415, 0x0416, 0x0417, 0x0420, 0x0421, 0x0422, 0x0424, 0x0425, 0x0426, 0x0430, 0x0431, 0x0432, 0x0433,
	0x0434, 0x0423, 0x7fff,
};

static struct mgmt *mg;
static struct vhu_poll_group *pg;
static int idle_fds;

static void quiet(void *o, enum vhu_log_level l, const char *m)
{
	(void)o, (void)l, (void)m;
}

static bool status_known(uint16_t s)
{
	return s == 0 || s == 6 || s == 11 || s == 12 || s == 16 || s == 22 || s == 28;
}

static void setup(void)
{
	struct vhu_poll_group_config pc = { .threads = 1, .log = quiet };
	pg = vhu_poll_group_new(&pc);
	struct mgmt_config c = { .max_members = MAX_MEMBERS, .max_queues = 4, .max_queue_size = 64,
				 .mem_limit = 1u << 20, .engine = BLK_ENGINE_SYNC, .pg = pg, .log = quiet };
	if (!pg || !(mg = mgmt_new(&c)))
		abort();
	idle_fds = count_fds();
}

static size_t step(const uint8_t *in, size_t left)
{
	if (left < 6)
		return left;
	uint8_t op = in[0], group = in[1], member = in[2], cut = in[3], room = in[4], len = in[5];
	size_t used_in = 6 + (len < left - 6 ? len : left - 6);
	uint8_t rd[24 + 300] = { 0 }, wr[8 + 256 + 16];
	uint16_t opcode = op < sizeof(opcodes) / 2 ? opcodes[op] : (uint16_t)(op << 8 | member);
	uint16_t gt = group % 4 == 0 ? VHU_ADMIN_GROUP_MANAGED : group % 4 == 1 ? VHU_ADMIN_GROUP_SELF : group;
	/* members 0 .. a few past the ids made so far, or anything */
	uint64_t id = member < 200 ? member % (mg->next_id + 2) : (uint64_t)member << 40;
	vhu_admin_put_le(rd, opcode, 2);
	vhu_admin_put_le(rd + 2, gt, 2);
	if (cut & 0x80)
		rd[4 + cut % 12] = 1;   /* a reserved1 byte */
	vhu_admin_put_le(rd + 16, id, 8);
	memcpy(rd + 24, in + 6, used_in - 6);
	uint32_t rlen = cut % 7 == 0 ? (uint32_t)(cut % 24) : (uint32_t)(24 + used_in - 6);
	uint32_t wlen = room % 3 == 0 ? room % 9 : room;
	memset(wr, 0xa5, sizeof(wr));
	struct iovec iov[2] = { { rd, rlen }, { wr, wlen } };
	uint32_t before = mg->n;
	uint32_t used = mgmt_command(mg, iov, 1, 1);
	if (used > wlen || (used == 0 && wlen >= 8) || (used && used < 8))
		abort();
	for (size_t i = wlen; i < sizeof(wr); i++)
		if (wr[i] != 0xa5)
			abort();   /* written past the writable part */
	if (used) {
		uint16_t st = vhu_admin_le16(wr), q = vhu_admin_le16(wr + 2);
		if (!status_known(st) || q > VHU_ADMIN_Q_TRYAGAIN || (st == 0) != (q == 0))
			abort();
		/* a header cut short reads as zeros: another command than the one written */
		if (rlen >= 24 && opcode == VHU_ADMIN_CMD_DEV_CREATE && st == 0 && mg->n != before + 1)
			abort();
		if (rlen >= 24 && opcode == VHU_ADMIN_CMD_DEV_DESTROY && st == 0 && mg->n != before - 1)
			abort();
	}
	bool lifecycle = rlen < 2 || opcode == VHU_ADMIN_CMD_DEV_CREATE || opcode == VHU_ADMIN_CMD_DEV_DESTROY;
	if (mg->n > MAX_MEMBERS || (!lifecycle && mg->n != before))
		abort();
	return used_in;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!mg)
		setup();
	for (size_t off = 0; off < size;)
		off += step(data + off, size - off);
	mgmt_members_destroy_all(mg);
	mg->next_id = 1;   /* every input starts from the same ids */
	if (mg->mem_used || count_fds() != idle_fds)
		abort();
	return 0;
}
