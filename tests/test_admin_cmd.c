/* SPDX-License-Identifier: MIT */
/*
 * The admin command envelope (vhu/admin.h): taking a command out of any
 * split of its readable part, the merged spec's zero-extension of short
 * parts and truncation of long ones, hostile layouts (no readable part, no
 * writable part, no room for a status, reserved bytes set, parts that
 * overlap), and giving a status and result back into any split of the
 * writable part.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vhu/admin.h"

/* A command's readable bytes: header and data. */
static size_t command(uint8_t *b, uint16_t opcode, uint16_t group, uint64_t member, const void *data, size_t len)
{
	memset(b, 0, 24);
	b[0] = (uint8_t)opcode;
	b[1] = (uint8_t)(opcode >> 8);
	b[2] = (uint8_t)group;
	b[3] = (uint8_t)(group >> 8);
	for (int i = 0; i < 8; i++)
		b[16 + i] = (uint8_t)(member >> 8 * i);
	if (len)
		memcpy(b + 24, data, len);
	return 24 + len;
}

/* Cut n bytes at p into iovecs at the given cut points (ascending). */
static unsigned split(struct iovec *iov, uint8_t *p, size_t n, const size_t *cuts, unsigned ncuts)
{
	size_t at = 0;
	unsigned k = 0;
	for (unsigned i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		iov[k++] = (struct iovec){ p + at, end - at };
		at = end;
	}
	return k;
}

static void takes_any_split(void **state)
{
	(void)state;
	uint8_t rd[64], wr[64];
	uint8_t data[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	size_t n = command(rd, VHU_ADMIN_CMD_CONFIG_GET, VHU_ADMIN_GROUP_MANAGED, 0x1122334455667788ull, data, 12);
	/* every way of cutting the readable part in three */
	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b++) {
			struct iovec iov[4];
			size_t cuts[2] = { a, b };
			unsigned out = split(iov, rd, n, cuts, 2);
			iov[out] = (struct iovec){ wr, 40 };
			struct vhu_admin_req r;
			assert_int_equal(vhu_admin_take(iov, out, 1, &r), 0);
			assert_int_equal(r.opcode, VHU_ADMIN_CMD_CONFIG_GET);
			assert_int_equal(r.group_type, VHU_ADMIN_GROUP_MANAGED);
			assert_int_equal(r.member, 0x1122334455667788ull);
			assert_false(r.reserved_set);
			assert_int_equal(r.data_len, 12);
			assert_memory_equal(r.data, data, 12);
			assert_int_equal(r.data[12], 0);
			assert_int_equal(r.result_room, 32);
		}
	}
}

static void short_and_long_parts(void **state)
{
	(void)state;
	uint8_t rd[400], wr[16];
	struct vhu_admin_req r;
	/* a header cut short: what is missing reads as zero */
	size_t n = command(rd, 0x0421, 0x8000, 7, NULL, 0);
	struct iovec iov[2] = { { rd, 3 }, { wr, 8 } };
	assert_int_equal(vhu_admin_take(iov, 1, 1, &r), 0);
	assert_int_equal(r.opcode, 0x0421);
	assert_int_equal(r.group_type, 0x0000);   /* its second byte was cut */
	assert_int_equal(r.member, 0);
	assert_int_equal(r.data_len, 0);
	assert_int_equal(r.result_room, 0);
	/* data longer than any command's: the rest is ignored */
	uint8_t big[376];
	for (unsigned i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i + 1);
	n = command(rd, VHU_ADMIN_CMD_CONFIG_SET, VHU_ADMIN_GROUP_MANAGED, 1, big, sizeof(big));
	iov[0] = (struct iovec){ rd, n };
	assert_int_equal(vhu_admin_take(iov, 1, 1, &r), 0);
	assert_int_equal(r.data_len, VHU_ADMIN_DATA_MAX);
	assert_memory_equal(r.data, big, VHU_ADMIN_DATA_MAX);
}

static void hostile_layouts(void **state)
{
	(void)state;
	uint8_t rd[32], wr[32];
	struct vhu_admin_req r;
	command(rd, 0, 0, 0, NULL, 0);
	struct iovec only_readable[1] = { { rd, 24 } };
	struct iovec only_writable[1] = { { wr, 32 } };
	struct iovec tiny_status[3] = { { rd, 24 }, { wr, 4 }, { wr + 4, 3 } };
	struct iovec empty_writable[2] = { { rd, 24 }, { wr, 0 } };
	assert_int_equal(vhu_admin_take(only_readable, 1, 0, &r), -EINVAL);
	assert_int_equal(vhu_admin_take(only_writable, 0, 1, &r), -EINVAL);
	assert_int_equal(vhu_admin_take(tiny_status, 1, 2, &r), -EINVAL);
	assert_int_equal(vhu_admin_take(empty_writable, 1, 1, &r), -EINVAL);
	/* and nothing can be given back where a status does not fit */
	memset(wr, 0xee, sizeof(wr));
	assert_int_equal(vhu_admin_give(tiny_status, 1, 2, VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_COMMAND, NULL, 0),
			 0);
	assert_int_equal(wr[0], 0xee);
	/* reserved bytes of the header set: taken, and flagged for the device to refuse */
	rd[9] = 1;
	struct iovec ok[2] = { { rd, 24 }, { wr, 8 } };
	assert_int_equal(vhu_admin_take(ok, 1, 1, &r), 0);
	assert_true(r.reserved_set);
}

/* The readable and writable parts are the same memory: the command is read
 * whole before anything is written, so the result cannot change it. */
static void overlapping_parts(void **state)
{
	(void)state;
	uint8_t buf[64];
	uint64_t v = 0xa5a5a5a5a5a5a5a5ull;
	size_t n = command(buf, VHU_ADMIN_CMD_DRV_FEATURES_SET, VHU_ADMIN_GROUP_MANAGED, 3, &v, 8);
	struct iovec iov[2] = { { buf, n }, { buf, n } };
	struct vhu_admin_req r;
	assert_int_equal(vhu_admin_take(iov, 1, 1, &r), 0);
	uint64_t res = 0x0102030405060708ull;
	assert_int_equal(vhu_admin_give(iov, 1, 1, VHU_ADMIN_STATUS_OK, 0, &res, 8), 16);
	assert_int_equal(r.opcode, VHU_ADMIN_CMD_DRV_FEATURES_SET);
	assert_int_equal(r.member, 3);
	assert_int_equal(vhu_admin_le64(r.data), v);
}

static void gives_into_any_split(void **state)
{
	(void)state;
	uint8_t rd[24], wr[64];
	uint8_t result[20];
	for (unsigned i = 0; i < sizeof(result); i++)
		result[i] = (uint8_t)(0x40 + i);
	command(rd, 0, 0, 0, NULL, 0);
	for (size_t a = 0; a <= 28; a++) {
		memset(wr, 0xee, sizeof(wr));
		struct iovec iov[4] = { { rd, 24 } };
		size_t cuts[1] = { a };
		unsigned in = split(iov + 1, wr, 28, cuts, 1);
		assert_int_equal(vhu_admin_give(iov, 1, in, VHU_ADMIN_STATUS_OK, 0, result, 20), 28);
		assert_int_equal(vhu_admin_le16(wr), 0);
		assert_int_equal(vhu_admin_le16(wr + 2), 0);
		assert_int_equal(vhu_admin_le32(wr + 4), 0);   /* reserved2 zeroed */
		assert_memory_equal(wr + 8, result, 20);
		assert_int_equal(wr[28], 0xee);
	}
	/* a result larger than the room: truncated (the merged rule) */
	memset(wr, 0xee, sizeof(wr));
	struct iovec iov[2] = { { rd, 24 }, { wr, 13 } };
	assert_int_equal(vhu_admin_give(iov, 1, 1, VHU_ADMIN_STATUS_OK, 0, result, 20), 13);
	assert_memory_equal(wr + 8, result, 5);
	assert_int_equal(wr[13], 0xee);
	/* a failure: the status and qualifier, no result */
	memset(wr, 0xee, sizeof(wr));
	iov[1].iov_len = 40;
	assert_int_equal(vhu_admin_give(iov, 1, 1, VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_MEMBER, result, 20), 8);
	assert_int_equal(vhu_admin_le16(wr), VHU_ADMIN_STATUS_EINVAL);
	assert_int_equal(vhu_admin_le16(wr + 2), VHU_ADMIN_Q_INVALID_MEMBER);
	assert_int_equal(wr[8], 0xee);
}

static void opcode_lists(void **state)
{
	(void)state;
	uint64_t words[VHU_ADMIN_OPCODE_WORDS] = { 0 };
	assert_int_equal(VHU_ADMIN_OPCODE_WORDS, 17);
	words[0] = 3;
	words[VHU_ADMIN_CMD_MMU_ERR_GET / 64] |= 1ull << (VHU_ADMIN_CMD_MMU_ERR_GET % 64);
	assert_true(vhu_admin_list_has(words, VHU_ADMIN_OPCODE_WORDS, VHU_ADMIN_CMD_LIST_QUERY));
	assert_true(vhu_admin_list_has(words, VHU_ADMIN_OPCODE_WORDS, VHU_ADMIN_CMD_LIST_USE));
	assert_true(vhu_admin_list_has(words, VHU_ADMIN_OPCODE_WORDS, VHU_ADMIN_CMD_MMU_ERR_GET));
	assert_false(vhu_admin_list_has(words, VHU_ADMIN_OPCODE_WORDS, VHU_ADMIN_CMD_MMU_UNMAP));
	assert_false(vhu_admin_list_has(words, VHU_ADMIN_OPCODE_WORDS, 0x7fff));   /* past the words */
	assert_false(vhu_admin_list_has(words, 1, VHU_ADMIN_CMD_MMU_ERR_GET));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(takes_any_split),
		cmocka_unit_test(short_and_long_parts),
		cmocka_unit_test(hostile_layouts),
		cmocka_unit_test(overlapping_parts),
		cmocka_unit_test(gives_into_any_split),
		cmocka_unit_test(opcode_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
