/* SPDX-License-Identifier: MIT */
/*
 * Two threads, one ring: a driver thread and a device thread pass millions
 * of buffers, each sleeping on an eventfd when it has nothing to do and
 * relying on the other's notification to wake it. A missed notification
 * shows as a stall (no wake-up within STALL_MS) and fails the test; the
 * contents of every buffer are checked on both sides. Run under the
 * sanitizer build too. VHU_STRESS_BUFFERS overrides the count per case.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "ringpair.h"

#define STALL_MS 10000
#define SLOT 64

struct stress {
	struct ringpair rp;
	uint16_t num;
	uint64_t total;
	int kick_fd, call_fd;
	atomic_int stop;
	pthread_mutex_t lock;   /* guards error */
	uint64_t kicks, calls, device_sleeps, driver_sleeps;
	char error[160];
};

static void fail_with(struct stress *s, const char *msg, int v)
{
	pthread_mutex_lock(&s->lock);
	if (!s->error[0])
		snprintf(s->error, sizeof(s->error), "%s (%d)", msg, v);
	pthread_mutex_unlock(&s->lock);
	s->stop = 1;
}

/* Wait for a notification; false on stall. */
static bool wait_fd(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;
	int r;

	do
		r = poll(&p, 1, STALL_MS);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return false;
	return read(fd, &v, sizeof(v)) == sizeof(v);
}

static void notify(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, sizeof(one)) != sizeof(one))
		abort();
}

static void *device_thread(void *arg)
{
	struct stress *s = arg;
	struct vhu_dev_vq *dev = &s->rp.dev;
	struct vhu_vq_elem e;
	struct iovec iov[8];

	while (!s->stop) {
		unsigned pushed = 0;
		int r;

		vhu_dev_vq_disable_notify(dev);
		while ((r = vhu_dev_vq_pop(dev, &e, iov, 8)) == 1) {
			uint64_t serial;
			if (e.out_num < 1 || iov[0].iov_len < 8 || e.in_num < 1 || iov[e.out_num].iov_len < 8) {
				fail_with(s, "device: unexpected buffer shape", (int)e.out_num);
				return NULL;
			}
			memcpy(&serial, iov[0].iov_base, 8);
			serial = ~serial;
			memcpy(iov[e.out_num].iov_base, &serial, 8);
			r = vhu_dev_vq_push(dev, &e, 8);
			if (r) {
				fail_with(s, "device: push", r);
				return NULL;
			}
			/* publish in batches, as a real device would */
			if (++pushed % 32 == 0) {
				vhu_dev_vq_flush(dev);
				if (vhu_dev_vq_should_notify(dev)) {
					s->calls++;
					notify(s->call_fd);
				}
			}
		}
		if (r < 0) {
			fail_with(s, "device: pop", r);
			return NULL;
		}
		vhu_dev_vq_flush(dev);
		if (pushed && vhu_dev_vq_should_notify(dev)) {
			s->calls++;
			notify(s->call_fd);
		}
		if (vhu_dev_vq_enable_notify(dev))
			continue;
		s->device_sleeps++;
		if (!wait_fd(s->kick_fd) && !s->stop) {
			fail_with(s, "device stalled: a kick was missed", 0);
			return NULL;
		}
	}
	return NULL;
}

static void run_driver(struct stress *s)
{
	struct vhu_drv_vq *drv = &s->rp.drv;
	uint64_t sent = 0, done = 0;
	unsigned char *base = s->rp.gm.host;
	uint64_t nslots = s->num;
	uint32_t *free_slots = calloc(nslots, sizeof(uint32_t)), nfree = 0;
	uint64_t *serial_of = calloc(nslots, sizeof(uint64_t));
	unsigned rng = 12345;

	assert_non_null(free_slots);
	for (uint32_t i = 0; i < nslots; i++)
		free_slots[nfree++] = i;
	while (done < s->total && !s->stop) {
		unsigned added = 0, limit;
		rng = rng * 1103515245u + 12345u;
		/* vary the batch so both sides often run dry and sleep */
		limit = 1 + (rng >> 16) % 64;
		while (sent < s->total && nfree) {
			uint32_t slot = free_slots[nfree - 1];
			uint64_t a = GM_DATA_BASE + (uint64_t)slot * SLOT;
			rng = rng * 1103515245u + 12345u;
			/* 1 to 3 segments: header, optional filler, reply */
			struct vhu_sg sg[3] = { { a, 8 }, { a + 8, 16 }, { a + 32, 8 } };
			unsigned mid = (rng >> 16) & 1;
			if (!mid)
				sg[1] = sg[2];
			memcpy(base + (size_t)slot * SLOT, &sent, 8);
			int r = vhu_drv_vq_add(drv, sg, 1 + mid, 1, base + (size_t)slot * SLOT);
			if (r == -ENOSPC)
				break;
			if (r) {
				fail_with(s, "driver: add", r);
				break;
			}
			serial_of[slot] = sent++;
			nfree--;
			if (++added == limit)
				break;
		}
		if (vhu_drv_vq_kick_prepare(drv)) {
			s->kicks++;
			notify(s->kick_fd);
		}
		unsigned got = 0;
		void *tok;
		uint32_t len;
		int r;
		vhu_drv_vq_disable_cb(drv);
		while ((r = vhu_drv_vq_get(drv, &tok, &len)) == 1) {
			size_t slot = (size_t)((unsigned char *)tok - base) / SLOT;
			uint64_t back;
			memcpy(&back, base + slot * SLOT + 32, 8);   /* the reply segment */
			if (len != 8 || back != ~serial_of[slot]) {
				fail_with(s, "driver: wrong reply", (int)len);
				break;
			}
			free_slots[nfree++] = (uint32_t)slot;
			done++;
			got++;
		}
		if (r < 0)
			fail_with(s, "driver: get", r);
		/* Sleep only when there is nothing to add and nothing came back. */
		if (!got && (!nfree || sent == s->total) && done < s->total) {
			if (vhu_drv_vq_enable_cb(drv))
				continue;
			s->driver_sleeps++;
			if (!wait_fd(s->call_fd))
				fail_with(s, "driver stalled: a used-buffer notification was missed", (int)(sent - done));
		}
	}
	free(free_slots);
	free(serial_of);
}

struct scase {
	const char *name;
	uint16_t num;
	uint64_t features;
};

static void run_stress(void **state)
{
	const struct scase *c = *state;
	struct stress *s = calloc(1, sizeof(*s));
	const char *env = getenv("VHU_STRESS_BUFFERS");
	pthread_t th;

	assert_non_null(s);
	pthread_mutex_init(&s->lock, NULL);
	s->num = c->num;
	s->total = env ? strtoull(env, NULL, 0) : 3000000;
	assert_int_equal(rp_init(&s->rp, c->num, c->features, (size_t)c->num * SLOT, (size_t)c->num * SLOT), 0);
	s->kick_fd = eventfd(0, EFD_CLOEXEC);
	s->call_fd = eventfd(0, EFD_CLOEXEC);
	assert_true(s->kick_fd >= 0 && s->call_fd >= 0);
	assert_int_equal(pthread_create(&th, NULL, device_thread, s), 0);
	run_driver(s);
	s->stop = 1;
	notify(s->kick_fd);
	pthread_join(th, NULL);
	close(s->kick_fd);
	close(s->call_fd);
	print_message("# %llu buffers: kicks %llu, calls %llu, device slept %llu, driver slept %llu\n",
		      (unsigned long long)s->total, (unsigned long long)s->kicks,
		      (unsigned long long)s->calls, (unsigned long long)s->device_sleeps,
		      (unsigned long long)s->driver_sleeps);
	rp_free(&s->rp);
	if (s->error[0]) {
		char msg[160];
		memcpy(msg, s->error, sizeof(msg));
		free(s);
		fail_msg("%s", msg);
	}
	free(s);
}

#define F(x) VHU_BIT(VHU_F_##x)
static const struct scase cases[] = {
	{ "split event_idx", 256, F(VERSION_1) | F(EVENT_IDX) },
	{ "split flags indirect", 256, F(VERSION_1) | F(INDIRECT_DESC) },
	{ "packed event_idx", 256, F(VERSION_1) | F(RING_PACKED) | F(EVENT_IDX) },
	{ "packed flags indirect", 256, F(VERSION_1) | F(RING_PACKED) | F(INDIRECT_DESC) },
};

int main(void)
{
	struct CMUnitTest tests[4];
	for (size_t i = 0; i < 4; i++)
		tests[i] = (struct CMUnitTest){ .name = cases[i].name, .test_func = run_stress,
						.initial_state = (void *)&cases[i] };
	return _cmocka_run_group_tests("ring_stress", tests, 4, NULL, NULL);
}
