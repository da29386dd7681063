/* SPDX-License-Identifier: MIT */
/*
 * vhost-user framing, the message table's shape checks, and the guest
 * memory table. Every case also checks that no fd leaked.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "fdcount.h"
#include "vhu/mem.h"
#include "vhu/vhost_user.h"
#include "vhu/vu_socket.h"

static int fds_before;
static int setup(void **state)
{
	(void)state;
	fds_before = count_fds();
	return 0;
}
static int teardown(void **state)
{
	(void)state;
	assert_int_equal(count_fds(), fds_before);
	return 0;
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static struct vhu_user_msg msg(uint32_t req, uint32_t size)
{
	struct vhu_user_msg m;
	memset(&m, 0, sizeof(m));
	m.hdr.request = req;
	m.hdr.flags = VHU_USER_VERSION;
	m.hdr.size = size;
	return m;
}

static void roundtrip_with_fds(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	struct vhu_user_msg m = msg(VHU_USER_SET_VRING_KICK, 8), r;
	m.payload.u64 = 1;
	m.fds[0] = eventfd(0, EFD_CLOEXEC);
	m.nfds = 1;
	assert_int_equal(vhu_user_send(sv[0], &m), 0);
	assert_int_equal(vhu_user_recv(sv[1], &r, 1000), 0);
	assert_int_equal(r.hdr.request, VHU_USER_SET_VRING_KICK);
	assert_int_equal(r.payload.u64, 1);
	assert_int_equal(r.nfds, 1);
	/* the received fd is a working copy of the sent one */
	uint64_t one = 1, got = 0;
	assert_int_equal(write(m.fds[0], &one, 8), 8);
	assert_int_equal(read(r.fds[0], &got, 8), 8);
	assert_int_equal(got, 1);
	assert_int_equal(vhu_user_check_shape(&r, true, 0), 0);
	close(m.fds[0]);
	vhu_user_msg_close_fds(&r);
	close(sv[0]);
	close(sv[1]);
}

/* 9 fds: one more than any message may carry. The kernel drops what does
 * not fit; recv closes the rest and reports -E2BIG, and the stream stays in
 * step for the next message. */
static void too_many_fds(void **state)
{
	(void)state;
	int sv[2], fds[9];
	pair(sv);
	for (int i = 0; i < 9; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	struct vhu_user_hdr h = { VHU_USER_SET_OWNER, VHU_USER_VERSION, 0 };
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr a;
	} ctl;
	memset(&ctl, 0, sizeof(ctl));     /* the padding after 9 fds goes out too */
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	assert_int_equal(sendmsg(sv[0], &mh, 0), sizeof(h));
	for (int i = 0; i < 9; i++)
		close(fds[i]);
	struct vhu_user_msg m = msg(VHU_USER_GET_FEATURES, 0), r;
	assert_int_equal(vhu_user_send(sv[0], &m), 0);
	assert_int_equal(vhu_user_recv(sv[1], &r, 1000), -E2BIG);
	assert_int_equal(r.nfds, 0);
	assert_int_equal(vhu_user_recv(sv[1], &r, 1000), 0);
	assert_int_equal(r.hdr.request, VHU_USER_GET_FEATURES);
	close(sv[0]);
	close(sv[1]);
}

static void oversize_payload(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	/* 4000 bytes: drained, reported, the next message is intact */
	static char big[12 + 4000];
	struct vhu_user_hdr h = { VHU_USER_SET_CONFIG, VHU_USER_VERSION, 4000 };
	memcpy(big, &h, sizeof(h));
	assert_int_equal(write(sv[0], big, sizeof(big)), sizeof(big));
	struct vhu_user_msg m = msg(VHU_USER_GET_FEATURES, 0), r;
	assert_int_equal(vhu_user_send(sv[0], &m), 0);
	assert_int_equal(vhu_user_recv(sv[1], &r, 1000), -EMSGSIZE);
	assert_int_equal(vhu_user_recv(sv[1], &r, 1000), 0);
	assert_int_equal(r.hdr.request, VHU_USER_GET_FEATURES);
	/* 1 GiB claimed: not drained, the connection must go */
	h.size = 1u << 30;
	assert_int_equal(write(sv[0], &h, sizeof(h)), sizeof(h));
	assert_int_equal(vhu_user_recv(sv[1], &r, 1000), -EPROTO);
	close(sv[0]);
	close(sv[1]);
}

static void partial_and_timeouts(void **state)
{
	(void)state;
	int sv[2];
	pair(sv);
	struct vhu_user_msg r;
	/* nothing at all */
	assert_int_equal(vhu_user_recv(sv[1], &r, 50), -ETIMEDOUT);
	/* half a header, then nothing */
	struct vhu_user_hdr h = { VHU_USER_SET_FEATURES, VHU_USER_VERSION, 8 };
	assert_int_equal(write(sv[0], &h, 6), 6);
	assert_int_equal(vhu_user_recv(sv[1], &r, 50), -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);
	/* a header and a payload in pieces arrive whole */
	pair(sv);
	uint64_t v = 0x1234;
	assert_int_equal(write(sv[0], &h, 5), 5);
	assert_int_equal(write(sv[0], (char *)&h + 5, 7), 7);
	assert_int_equal(write(sv[0], &v, 3), 3);
	assert_int_equal(write(sv[0], (char *)&v + 3, 5), 5);
	assert_int_equal(vhu_user_recv(sv[1], &r, 1000), 0);
	assert_int_equal(r.payload.u64, 0x1234);
	/* the peer hangs up mid-message */
	assert_int_equal(write(sv[0], &h, 12), 12);
	close(sv[0]);
	assert_int_equal(vhu_user_recv(sv[1], &r, 1000), -ECONNRESET);
	close(sv[1]);
}

struct shape_case {
	uint32_t req, size, nfds;
	uint64_t u64;
	uint64_t pf;
	int want;
};

static void shapes(void **state)
{
	(void)state;
	const uint64_t all = (1ull << VHU_USER_PROTOCOL_F_MAX) - 1;
	const struct shape_case cases[] = {
		{ VHU_USER_GET_FEATURES, 0, 0, 0, 0, 0 },
		{ VHU_USER_GET_FEATURES, 8, 0, 0, 0, -EMSGSIZE },
		{ VHU_USER_SET_FEATURES, 4, 0, 0, 0, -EMSGSIZE },
		{ VHU_USER_SET_VRING_NUM, 8, 1, 0, 0, -EBADF },
		{ VHU_USER_SET_VRING_KICK, 8, 0, 0, 0, -EBADF },        /* fd expected */
		{ VHU_USER_SET_VRING_KICK, 8, 0, 0x100, 0, 0 },         /* polling */
		{ VHU_USER_SET_VRING_KICK, 8, 1, 0x100, 0, -EBADF },    /* NOFD with an fd */
		{ VHU_USER_SET_MEM_TABLE, 8 + 32, 1, 1, 0, 0 },
		{ VHU_USER_SET_MEM_TABLE, 8 + 32, 2, 1, 0, -EBADF },
		{ VHU_USER_SET_MEM_TABLE, 8 + 32, 1, 2, 0, -EMSGSIZE },  /* 2 regions in a 1-region payload */
		{ VHU_USER_SET_MEM_TABLE, 8 + 32 * 8, 0, 9, 0, -EMSGSIZE },
		{ VHU_USER_GET_CONFIG, 12 + 60, 0, 0, 0, -EPERM },      /* CONFIG not negotiated */
		{ VHU_USER_GET_CONFIG, 12 + 60, 0, 0, all, 0 },
		{ VHU_USER_GET_CONFIG, 8, 0, 0, all, -EMSGSIZE },
		{ VHU_USER_ADD_MEM_REG, 40, 1, 0, all, 0 },
		{ VHU_USER_ADD_MEM_REG, 40, 0, 0, all, -EBADF },
		{ VHU_USER_REM_MEM_REG, 40, 1, 0, all, 0 },             /* tolerated, closed unused */
		{ VHU_USER_REM_MEM_REG, 40, 2, 0, all, -EBADF },
		{ VHU_USER_VRING_KICK, 8, 0, 0, 0, -EPERM },
		{ 0, 0, 0, 0, all, -ENOSYS },
		{ 41, 0, 0, 0, all, -ENOSYS },
		{ 0xffffffff, 0, 0, 0, all, -ENOSYS },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vhu_user_msg m = msg(cases[i].req, cases[i].size);
		m.payload.u64 = cases[i].u64;
		m.nfds = cases[i].nfds;
		int r = vhu_user_check_shape(&m, true, cases[i].pf);
		if (r != cases[i].want)
			fail_msg("case %zu (request %u): %d, want %d", i, cases[i].req, r, cases[i].want);
	}
	/* version and reply bits */
	struct vhu_user_msg m = msg(VHU_USER_GET_FEATURES, 0);
	m.hdr.flags = 2;
	assert_int_equal(vhu_user_check_shape(&m, true, 0), -EPROTO);
	m.hdr.flags = VHU_USER_VERSION | VHU_USER_REPLY_MASK;
	assert_int_equal(vhu_user_check_shape(&m, true, 0), -EPROTO);
	/* GET_PROTOCOL_FEATURES needs the back-end to offer them */
	m = msg(VHU_USER_GET_PROTOCOL_FEATURES, 0);
	assert_int_equal(vhu_user_check_shape(&m, false, 0), -EPERM);
	/* every request has a name */
	for (uint32_t q = 1; q < VHU_USER_REQUEST_MAX; q++)
		assert_non_null(vhu_user_request_info(q)->name);
}

static int memfd_of(size_t size)
{
	int fd = memfd_create("vhu-test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static void mem_table(void **state)
{
	(void)state;
	struct vhu_mem m;
	vhu_mem_init(&m);
	struct vhu_user_mem_region a = { 0x0, 0x10000, 0x7f0000000000, 0 };
	struct vhu_user_mem_region b = { 0x100000, 0x8000, 0x7f0000100000, 0x1000 };
	assert_int_equal(vhu_mem_add(&m, &b, memfd_of(0x9000)), 0);
	assert_int_equal(vhu_mem_add(&m, &a, memfd_of(0x10000)), 0);
	/* translation, and the cut at a region's end */
	uint64_t len = 0x100;
	unsigned char *p = vhu_mem_translate(&m, 0xfff0, &len, 0);
	assert_non_null(p);
	assert_int_equal(len, 0x10);
	len = 8;
	assert_null(vhu_mem_translate(&m, 0x10000, &len, 0));   /* the hole */
	len = 8;
	assert_non_null(vhu_mem_translate(&m, 0x107ff8, &len, 0));
	len = 8;
	assert_null(vhu_mem_translate(&m, 0x108000, &len, 0));
	/* the mmap offset: guest 0x100000 is file offset 0x1000 */
	len = 1;
	unsigned char *q = vhu_mem_translate(&m, 0x100000, &len, 0);
	q[0] = 0x5a;
	assert_int_equal(((unsigned char *)m.r[1].map)[0x1000], 0x5a);
	/* ring addresses in user space, whole or not at all */
	assert_non_null(vhu_mem_uaddr(&m, 0x7f0000100000, 0x8000));
	assert_null(vhu_mem_uaddr(&m, 0x7f0000100000, 0x8001));
	/* hostile regions */
	struct vhu_user_mem_region overlap = { 0x8000, 0x10000, 0x7e0000000000, 0 };
	assert_int_equal(vhu_mem_add(&m, &overlap, memfd_of(0x10000)), -EEXIST);
	struct vhu_user_mem_region uoverlap = { 0x200000, 0x1000, 0x7f0000000800, 0 };
	assert_int_equal(vhu_mem_add(&m, &uoverlap, memfd_of(0x1000)), -EEXIST);
	struct vhu_user_mem_region wrap = { UINT64_MAX - 0x10, 0x1000, 0x1000, 0 };
	assert_int_equal(vhu_mem_add(&m, &wrap, memfd_of(0x1000)), -EINVAL);
	struct vhu_user_mem_region zero = { 0x300000, 0, 0x1000, 0 };
	assert_int_equal(vhu_mem_add(&m, &zero, memfd_of(0x1000)), -EINVAL);
	struct vhu_user_mem_region shortfile = { 0x300000, 0x4000, 0x7d0000000000, 0x1000 };
	assert_int_equal(vhu_mem_add(&m, &shortfile, memfd_of(0x4000)), -EINVAL);
	/* removal by the exact triple */
	assert_int_equal(vhu_mem_remove(&m, 0x100000, 0x7f0000100000, 0x7000), -ENOENT);
	assert_int_equal(vhu_mem_remove(&m, 0x100000, 0x7f0000100000, 0x8000), 0);
	len = 8;
	assert_null(vhu_mem_translate(&m, 0x100000, &len, 0));
	vhu_mem_clear(&m);
	assert_int_equal(m.n, 0);
}

/* A memfd that allows sealing is sealed against shrinking when mapped, so
 * the front-end cannot make guest memory accesses fault (SIGBUS) later; one
 * that does not is mapped and marked may_shrink, for the back-end to say so. */
static void mem_sealed_against_shrinking(void **state)
{
	(void)state;
	struct vhu_mem m;
	vhu_mem_init(&m);
	int sealable = memfd_create("vhu-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(sealable >= 0);
	assert_int_equal(ftruncate(sealable, 0x10000), 0);
	struct vhu_user_mem_region a = { 0x0, 0x10000, 0x7f0000000000, 0 };
	assert_int_equal(vhu_mem_add(&m, &a, dup(sealable)), 0);
	assert_false(m.r[0].may_shrink);
	assert_true(fcntl(sealable, F_GET_SEALS) & F_SEAL_SHRINK);
	assert_int_equal(ftruncate(sealable, 0x1000), -1);
	assert_int_equal(errno, EPERM);
	/* growing stays allowed: it cannot hurt a mapping */
	assert_int_equal(ftruncate(sealable, 0x20000), 0);
	close(sealable);
	struct vhu_user_mem_region b = { 0x100000, 0x1000, 0x7f0000100000, 0 };
	assert_int_equal(vhu_mem_add(&m, &b, memfd_of(0x1000)), 0);
	assert_true(m.r[1].may_shrink);
	vhu_mem_clear(&m);
}

/* Regression: accept with a zero timeout must take a pending connection
 * (it used to time out without looking, so vhu-blk never accepted QEMU). */
static void accept_pending_with_zero_timeout(void **state)
{
	(void)state;
	char path[64];
	snprintf(path, sizeof(path), "/tmp/vhu-test-%d.sock", getpid());
	int l = vhu_user_listen(path);
	assert_true(l >= 0);
	assert_int_equal(vhu_user_accept(l, 0), -ETIMEDOUT);   /* nobody there */
	int c = vhu_user_connect(path, 1000);
	assert_true(c >= 0);
	int a = vhu_user_accept(l, 0);
	assert_true(a >= 0);
	close(a);
	close(c);
	close(l);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(roundtrip_with_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(too_many_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(oversize_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(partial_and_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(shapes, setup, teardown),
		cmocka_unit_test_setup_teardown(mem_table, setup, teardown),
		cmocka_unit_test_setup_teardown(mem_sealed_against_shrinking, setup, teardown),
		cmocka_unit_test_setup_teardown(accept_pending_with_zero_timeout, setup, teardown),
	};
	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
