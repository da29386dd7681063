/* SPDX-License-Identifier: MIT */
/*
 * The cost of one virtio-mmio notification, from the trapped QUEUE_NOTIFY
 * write to the back-end seeing the kick (issue 16, after the Xen ioeventfd
 * patch's argument): the write goes through vhu's model (vhu_mmio_write,
 * its lock-free notify path) to a device whose notify does what the bridge's
 * does, in three ways:
 *   direct    the trapping thread writes the back-end's kick eventfd
 *             (vhu_mmio_bridge: no relay thread);
 *   relay     the trapping thread writes an eventfd a second thread of the
 *             device model sleeps on, which writes the kick eventfd: the
 *             extra hop of a model that relays kicks;
 *   doorbell  one store of the value into the back-end's doorbell page, which
 *             a polling back-end thread watches (vhu's device core polls a
 *             live doorbell, napping 20-320 us between looks: the figure
 *             here is what a look costs once it comes, not the nap).
 * The back-end is a thread of this program sleeping on the kick eventfd
 * (read(2)), as a vhost-user queue thread sleeps on it, or spinning on the
 * page. It takes the time when it wakes, then lets the trapping thread go
 * on (an ack eventfd), so one notification is in flight at a time.
 * Reported per notification: the median and mean latency, the time the
 * trapping thread spends in the write, and the context switches of the
 * kick's path (the relay and back-end threads, getrusage RUSAGE_THREAD);
 * the trapping thread's wait for the ack is the harness, the same in every
 * mode, and counted apart.
 *   usage: mmio_notify [NOTIFICATIONS] [ROUNDS]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../src/common/cpu_relax.h"
#include "vhu/mmio.h"
#include "vhu/virtio.h"

enum mode { DIRECT, RELAY, DOORBELL, MODES };
static const char *const mode_name[MODES] = { "direct", "relay", "doorbell" };
#define EMPTY 0xffffffffu

struct run {
	enum mode mode;
	int kick, relay, ack;
	uint32_t *page;
	unsigned n;
	uint64_t *lat;
	_Atomic uint64_t t0;
	atomic_bool stop;
	long path_switches;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long switches(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw + ru.ru_nivcsw;
}

static void efd_write(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, 8) != 8)
		abort();
}

static void efd_read(int fd)
{
	uint64_t v;
	while (read(fd, &v, 8) != 8)
		if (errno != EINTR)
			abort();
}

static void *backend(void *arg)
{
	struct run *r = arg;
	long s0 = switches();
	for (unsigned i = 0;; i++) {
		if (r->mode == DOORBELL) {
			while (__atomic_load_n(r->page, __ATOMIC_ACQUIRE) == EMPTY)
				vhu_cpu_relax();
			__atomic_store_n(r->page, EMPTY, __ATOMIC_RELAXED);
		} else {
			efd_read(r->kick);
		}
		uint64_t t = now_ns();
		if (atomic_load(&r->stop))
			break;
		if (i < r->n)
			r->lat[i] = t - atomic_load(&r->t0);
		efd_write(r->ack);
	}
	__atomic_fetch_add(&r->path_switches, switches() - s0, __ATOMIC_RELAXED);
	return NULL;
}

static void *relay(void *arg)
{
	struct run *r = arg;
	long s0 = switches();
	for (;;) {
		efd_read(r->relay);
		if (atomic_load(&r->stop))
			break;
		efd_write(r->kick);
	}
	__atomic_fetch_add(&r->path_switches, switches() - s0, __ATOMIC_RELAXED);
	return NULL;
}

/* the device's side of the model: notify is the one op that matters */
static int ok_features(void *o, uint64_t f) { (void)o; (void)f; return 0; }
static int ok_enable(void *o, const struct vhu_mmio_ring *q) { (void)o; (void)q; return 0; }
static void no_disable(void *o, uint16_t i) { (void)o; (void)i; }
static void notify(void *o, uint16_t index, uint32_t value)
{
	struct run *r = o;
	(void)index;
	switch (r->mode) {
	case DIRECT: efd_write(r->kick); break;
	case RELAY: efd_write(r->relay); break;
	default: __atomic_store_n(r->page, value, __ATOMIC_RELEASE);
	}
}
static const struct vhu_mmio_ops ops = { .set_features = ok_features, .queue_enable = ok_enable,
					 .queue_disable = no_disable, .notify = notify };

static struct vhu_mmio *ready_model(struct run *r)
{
	struct vhu_mmio_config c = { .device_id = 2, .num_queues = 1, .queue_size_max = 256, .ops = &ops, .opaque = r };
	struct vhu_mmio *m = vhu_mmio_new(&c);
	if (!m)
		abort();
	vhu_mmio_write(m, VHU_MMIO_STATUS, 4, VHU_STATUS_ACKNOWLEDGE);
	vhu_mmio_write(m, VHU_MMIO_STATUS, 4, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER);
	vhu_mmio_write(m, VHU_MMIO_DRIVER_FEATURES_SEL, 4, 1);
	vhu_mmio_write(m, VHU_MMIO_DRIVER_FEATURES, 4, 1);   /* VERSION_1 */
	vhu_mmio_write(m, VHU_MMIO_STATUS, 4, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK);
	vhu_mmio_write(m, VHU_MMIO_QUEUE_SIZE, 4, 256);
	vhu_mmio_write(m, VHU_MMIO_QUEUE_DESC_LOW, 4, 0x10000);
	vhu_mmio_write(m, VHU_MMIO_QUEUE_DRIVER_LOW, 4, 0x11000);
	vhu_mmio_write(m, VHU_MMIO_QUEUE_DEVICE_LOW, 4, 0x12000);
	vhu_mmio_write(m, VHU_MMIO_QUEUE_READY, 4, 1);
	vhu_mmio_write(m, VHU_MMIO_STATUS, 4, 0xf);
	if (vhu_mmio_read(m, VHU_MMIO_STATUS, 4) != 0xf)
		abort();
	return m;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct result { double p50, mean, write_ns, path, harness; };

static struct result measure(enum mode mode, unsigned n)
{
	struct run r = { .mode = mode, .n = n };
	r.kick = eventfd(0, EFD_CLOEXEC);
	r.relay = eventfd(0, EFD_CLOEXEC);
	r.ack = eventfd(0, EFD_CLOEXEC);
	r.page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	r.lat = calloc(n, sizeof(*r.lat));
	if (r.kick < 0 || r.relay < 0 || r.ack < 0 || r.page == MAP_FAILED || !r.lat)
		abort();
	*r.page = EMPTY;
	struct vhu_mmio *m = ready_model(&r);
	pthread_t tb, tr;
	pthread_create(&tb, NULL, backend, &r);
	if (mode == RELAY)
		pthread_create(&tr, NULL, relay, &r);
	usleep(10000);
	uint64_t in_write = 0;
	long h0 = switches();
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		atomic_store(&r.t0, t0);
		vhu_mmio_write(m, VHU_MMIO_QUEUE_NOTIFY, 4, 0);
		in_write += now_ns() - t0;
		efd_read(r.ack);
	}
	long harness = switches() - h0;
	atomic_store(&r.stop, true);
	if (mode == DOORBELL)
		__atomic_store_n(r.page, 0, __ATOMIC_RELEASE);
	else
		efd_write(r.kick);
	if (mode == RELAY)
		efd_write(r.relay);
	pthread_join(tb, NULL);
	if (mode == RELAY)
		pthread_join(tr, NULL);
	double sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += (double)r.lat[i];
	qsort(r.lat, n, sizeof(*r.lat), cmp_u64);
	struct result res = { (double)r.lat[n / 2], sum / n, (double)in_write / n, (double)r.path_switches / n,
			      (double)harness / n };
	vhu_mmio_free(m);
	munmap(r.page, 4096);
	free(r.lat);
	close(r.kick);
	close(r.relay);
	close(r.ack);
	return res;
}

int main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 100000, rounds = argc > 2 ? (unsigned)atoi(argv[2]) : 3;
	if (!n || !rounds)
		return 2;
	printf("# %u notifications a run, %u rounds, modes interleaved; ns per notification\n", n, rounds);
	printf("%-9s %5s %10s %10s %10s %14s %16s\n", "mode", "round", "p50", "mean", "in-write", "path-switches",
	       "harness-switches");
	struct result best[MODES];
	for (unsigned k = 0; k < rounds; k++) {
		for (int mode = 0; mode < MODES; mode++) {
			struct result x = measure((enum mode)mode, n);
			printf("%-9s %5u %10.0f %10.0f %10.0f %14.2f %16.2f\n", mode_name[mode], k, x.p50, x.mean, x.write_ns,
			       x.path, x.harness);
			if (!k || x.p50 < best[mode].p50)
				best[mode] = x;
		}
	}
	printf("# best round by p50: direct %.0f ns, relay %.0f ns (%.2fx direct), doorbell %.0f ns (direct is %.0fx it)\n",
	       best[DIRECT].p50, best[RELAY].p50, best[RELAY].p50 / best[DIRECT].p50, best[DOORBELL].p50,
	       best[DIRECT].p50 / best[DOORBELL].p50);
	return 0;
}
