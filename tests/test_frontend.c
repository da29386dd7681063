/* SPDX-License-Identifier: MIT */
/*
 * The front-end facing a bad back-end: silent, answering the wrong request,
 * with the wrong size or flags, hanging up. Each must end in a clear error
 * within the timeout, never a hang, and leave no fd behind. And facing a
 * good one (the back-end library) through a relay that records what the
 * back-end answers: with VHU_FUZZ_SEED_DIR set, that is fuzz_frontend's seed;
 * the back-end must not find the front-end's guest memory unsealed.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fe_sequence.h"
#include "minife.h"
#include "served.h"
#include "vhu/backend.h"
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

/* ---- a good back-end, its answers recorded --------------------------- */

static void drop_all(struct vhu_device *dev, struct vhu_queue *q, unsigned ev)
{
	struct vhu_vq_elem e;
	struct iovec iov[8];
	int r;
	(void)dev;
	(void)ev;
	while ((r = vhu_queue_pop(q, &e, iov, 8)) > 0)
		vhu_queue_push(q, &e, 0);
	vhu_queue_notify(q);
}
static const struct vhu_device_ops quiet_ops = { .handle = drop_all, .get_config = zero_config };

static bool unsealed_memory_reported;
static void watch_log(void *opaque, enum vhu_log_level level, const char *msg)
{
	(void)opaque;
	(void)level;
	if (strstr(msg, "not sealed"))
		unsealed_memory_reported = true;
}

struct relay {
	int fe_side, be_side;
	unsigned char rec[65536];   /* the back-end's messages, as sent */
	size_t len;
};

/* Whole messages both ways (fds included); the back-end's are recorded. */
static void *relay_thread(void *arg)
{
	struct relay *r = arg;
	struct vhu_user_msg m;
	for (;;) {
		struct pollfd p[2] = { { .fd = r->fe_side, .events = POLLIN }, { .fd = r->be_side, .events = POLLIN } };
		if (poll(p, 2, 5000) <= 0)
			break;
		bool from_be = !(p[0].revents & (POLLIN | POLLHUP));
		if (vhu_user_recv(from_be ? r->be_side : r->fe_side, &m, 1000) < 0)
			break;
		if (from_be && r->len + 12 + m.hdr.size <= sizeof(r->rec)) {
			memcpy(r->rec + r->len, &m.hdr, 12);
			memcpy(r->rec + r->len + 12, &m.payload, m.hdr.size);
			r->len += 12 + m.hdr.size;
		}
		int s = vhu_user_send(from_be ? r->fe_side : r->be_side, &m);
		vhu_user_msg_close_fds(&m);
		if (s < 0)
			break;
	}
	/* either side gone: end the other's connection too */
	shutdown(r->fe_side, SHUT_RDWR);
	shutdown(r->be_side, SHUT_RDWR);
	return NULL;
}

static void good_backend_recorded(void **state)
{
	(void)state;
	int before = count_fds(), a[2], b[2];
	static struct relay r;
	struct vhu_device_config dc = {
		.ops = &quiet_ops, .num_queues = 1, .max_queue_size = 256, .config_size = 64,
		.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_F_INDIRECT_DESC),
		.log = watch_log, .log_level = VHU_LOG_INFO,
	};
	struct vhu_device *dev = vhu_device_new(&dc);
	assert_non_null(dev);
	struct vhu_backend_config c = {
		.device = dev,
		.protocol_features = (1ull << VHU_USER_PROTOCOL_F_MQ) | (1ull << VHU_USER_PROTOCOL_F_REPLY_ACK) |
				     (1ull << VHU_USER_PROTOCOL_F_CONFIG) | (1ull << VHU_USER_PROTOCOL_F_STATUS),
	};
	struct served sv = { .be = vhu_backend_new(&c) };
	assert_non_null(sv.be);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	r = (struct relay){ .fe_side = a[1], .be_side = b[0] };
	sv.sock = b[1];
	pthread_t rt, st;
	assert_int_equal(pthread_create(&st, NULL, served_thread, &sv), 0);
	assert_int_equal(pthread_create(&rt, NULL, relay_thread, &r), 0);
	assert_int_equal(fe_sequence(a[0], 3000), 0);
	pthread_join(rt, NULL);
	pthread_join(st, NULL);
	close(a[1]);
	close(b[0]);
	vhu_backend_free(sv.be);
	vhu_device_free(dev);
	assert_true(r.len > 0);
	/* the front-end seals its guest memory, as QEMU's memfd backend does */
	assert_false(unsealed_memory_reported);
	const char *dir = getenv("VHU_FUZZ_SEED_DIR");
	if (dir) {
		char path[512];
		snprintf(path, sizeof(path), "%s/test_frontend-good-backend.bin", dir);
		FILE *f = fopen(path, "we");
		assert_non_null(f);
		assert_int_equal(fwrite(r.rec, 1, r.len, f), r.len);
		fclose(f);
	}
	assert_int_equal(count_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(silent),
		cmocka_unit_test(wrong_request),
		cmocka_unit_test(wrong_size),
		cmocka_unit_test(no_reply_flag),
		cmocka_unit_test(hang_up),
		cmocka_unit_test(good_backend_recorded),
	};
	return cmocka_run_group_tests_name("frontend", tests, NULL, NULL);
}
