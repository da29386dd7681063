/* SPDX-License-Identifier: MIT */
/*
 * The front-end facing a bad back-end: silent, answering the wrong request,
 * with the wrong size or flags, hanging up. Each must end in a clear error
 * within the timeout, never a hang, and leave no fd behind.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "minife.h"
#include "vhu/frontend.h"
#include "vhu/virtio.h"

enum misbehaviour { SILENT, WRONG_REQUEST, WRONG_SIZE, NO_REPLY_FLAG, HANG_UP };

struct fake {
	int sock;
	enum misbehaviour how;
};

/* Answers GET_FEATURES badly (or not at all), then waits for the close. */
static void *fake_backend(void *arg)
{
	struct fake *f = arg;
	struct vhu_user_msg m, r;

	if (vhu_user_recv(f->sock, &m, 2000) == 0) {
		vhu_user_msg_close_fds(&m);
		memset(&r, 0, sizeof(r));
		r.hdr = (struct vhu_user_hdr){ m.hdr.request, VHU_USER_VERSION | VHU_USER_REPLY_MASK, 8 };
		r.payload.u64 = 1ull << VHU_F_VERSION_1;
		switch (f->how) {
		case SILENT:
			break;
		case WRONG_REQUEST:
			r.hdr.request = VHU_USER_GET_QUEUE_NUM;
			vhu_user_send(f->sock, &r);
			break;
		case WRONG_SIZE:
			r.hdr.size = 4;
			vhu_user_send(f->sock, &r);
			break;
		case NO_REPLY_FLAG:
			r.hdr.flags = VHU_USER_VERSION;
			vhu_user_send(f->sock, &r);
			break;
		case HANG_UP:
			break;
		}
	}
	if (f->how == HANG_UP) {
		close(f->sock);
		return NULL;
	}
	/* hold the line until the front-end gives up */
	char c;
	while (read(f->sock, &c, 1) > 0)
		;
	close(f->sock);
	return NULL;
}

static void expect(enum misbehaviour how, int want)
{
	int before = count_fds(), sv[2];
	struct fake f = { .how = how };
	pthread_t th;
	struct timespec t0, t1;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f.sock = sv[1];
	assert_int_equal(pthread_create(&th, NULL, fake_backend, &f), 0);
	struct vhu_fe *fe = NULL;
	struct vhu_fe_config c = { .fd = sv[0], .timeout_ms = 300 };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = vhu_fe_connect(&fe, &c);   /* closes sv[0] on failure */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(rc, want);
	assert_null(fe);
	double took = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(took < 1.0);
	pthread_join(th, NULL);
	assert_int_equal(count_fds(), before);
}

static void silent(void **s) { (void)s; expect(SILENT, -ETIMEDOUT); }
static void wrong_request(void **s) { (void)s; expect(WRONG_REQUEST, -EPROTO); }
static void wrong_size(void **s) { (void)s; expect(WRONG_SIZE, -EPROTO); }
static void no_reply_flag(void **s) { (void)s; expect(NO_REPLY_FLAG, -EPROTO); }
static void hang_up(void **s) { (void)s; expect(HANG_UP, -ECONNRESET); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(silent),
		cmocka_unit_test(wrong_request),
		cmocka_unit_test(wrong_size),
		cmocka_unit_test(no_reply_flag),
		cmocka_unit_test(hang_up),
	};
	return cmocka_run_group_tests_name("frontend", tests, NULL, NULL);
}
