/* SPDX-License-Identifier: MIT */
/*
 * break_ring SOCK: a front-end that breaks its ring on purpose, for the
 * shell tests of a running back-end. It negotiates as QEMU does, maps its
 * memory and ring 0, offers one good buffer, then a head out of range, and
 * checks that the back-end signals the error eventfd and reports
 * DEVICE_NEEDS_RESET (VIRTIO §2.1.2), then disconnects. Exit 0 if it did.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "minife.h"
#include "vhu/virtio.h"

#define QSIZE 16
static const char *sock_path;

static void break_it(void **state)
{
	(void)state;
	struct fe f;
	int s = vhu_user_connect(sock_path, 3000);
	assert_true(s >= 0);
	fe_init(&f, s, FE_MEM_SIZE);
	fe_negotiate(&f, VHU_BIT(VHU_F_VERSION_1), (1ull << VHU_USER_PROTOCOL_F_REPLY_ACK) |
		     (1ull << VHU_USER_PROTOCOL_F_STATUS) | (1ull << VHU_USER_PROTOCOL_F_MQ));
	fe_mem_table(&f);
	fe_setup_ring(&f, QSIZE, true);
	struct vhu_vring_avail *av = (void *)(f.mem + f.q[0].layout.driver_off);
	av->ring[av->idx % QSIZE] = 200;	/* a head beyond the ring */
	__atomic_store_n(&av->idx, (uint16_t)(av->idx + 1), __ATOMIC_RELEASE);
	uint64_t one = 1;
	assert_int_equal(write(f.q[0].kick, &one, 8), 8);
	struct pollfd p = { .fd = f.q[0].err, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	uint64_t st = fe_req(&f, VHU_USER_GET_STATUS, NULL, 0, NULL, 0, false, NULL);
	assert_true(st & VHU_STATUS_DEVICE_NEEDS_RESET);
	printf("# broken ring reported: err fd signalled, status 0x%llx (needs reset)\n", (unsigned long long)st);
	fe_close(&f);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: break_ring SOCK\n");
		return 2;
	}
	sock_path = argv[1];
	const struct CMUnitTest tests[] = { cmocka_unit_test(break_it) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
