/* SPDX-License-Identifier: MIT */
/*
 * Ring engine benchmark: a driver thread and a device thread, pinned to two
 * cores, stream single-descriptor buffers through a 256-entry queue in
 * batches of B, both polling (no notifications). Reported: ns per
 * descriptor (wall time / descriptors) for
 *   - vhu split and packed rings, both roles through vhu's API: one call per
 *     buffer (single: add, pop, push, get) and one call per batch and role
 *     (burst: add_burst, pop_burst, push_burst, get_burst);
 *   - minimal hand-written split and packed virtqueues: the same formats,
 *     layout, batching and publication, without the engine (no checks, no
 *     translation, no iovecs): the floor for each format;
 *   - a bare queue: two single-producer rings of 16-byte slots (requests
 *     and completions), the least any shared-memory queue can do;
 *   - a cache-line ping-pong: the cost of moving one line between the
 *     cores and back, the floor under everything.
 * Each number is the median of RUNS runs, the variants' runs interleaved. The last line is
 *   ring-vs-floor batch=64 split=R packed=R
 * with R = vhu ns/descriptor (the better of its two APIs) / minimal
 * virtqueue (same format) ns/descriptor. Built twice: ring_bench links
 * libvhu.so as programs do, ring_bench_static the static library.
 *
 * Usage: ring_bench [descriptors-per-run] [runs]
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vhu/virtio.h"
#include "vhu/vq.h"
#include "minvq.h"
#include "region.h"

#define QSIZE 256
#define DATA_BYTES (QSIZE * 64)
_Static_assert(QSIZE == MINVQ_SIZE, "the floor and vhu use one queue size");

static uint64_t per_run = 4000000;
static bool burst;   /* vhu through the burst calls */
static int runs = 5;
static int cpu_driver = 0, cpu_device = 1;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* ---- guest memory: one region, as a back-end's table lookup would see ---- */

/* ---- vhu ----------------------------------------------------------------- */
/* Each side's state on its own cache lines: the two threads must share
 * only the ring, as two processes would. */
struct vhu_run {
	_Alignas(64) struct vhu_dev_vq dev;
	_Alignas(64) struct vhu_drv_vq drv;
	_Alignas(64) unsigned batch;
	bool checked;   /* the checked virtqueue (the least a safe engine does) */
	atomic_int err; /* what the checked device stopped on */
	atomic_int go, stop;
};

static void *vhu_device(void *arg)
{
	struct vhu_run *r = arg;
	struct vhu_vq_elem e[QSIZE];
	struct vhu_vq_used u[QSIZE];
	struct iovec iov[QSIZE];
	unsigned batch = r->batch;

	pin(cpu_device);
	vhu_dev_vq_disable_notify(&r->dev);
	atomic_store(&r->go, 1);
	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		unsigned n = 0;
		if (burst) {
			int k = vhu_dev_vq_pop_burst(&r->dev, e, batch, iov, QSIZE, 1);
			for (int i = 0; i < k; i++)
				u[i] = (struct vhu_vq_used){ e[i].id, 0 };
			if (k > 0)
				vhu_dev_vq_push_burst(&r->dev, u, (unsigned)k);
			continue;
		}
		while (n < batch && vhu_dev_vq_pop(&r->dev, &e[0], iov, 4) == 1) {
			vhu_dev_vq_push(&r->dev, &e[0], 0);
			n++;
		}
		if (n)
			vhu_dev_vq_flush(&r->dev);
	}
	return NULL;
}

static void vhu_add(struct vhu_run *r, struct region *reg, int *tokens, uint64_t sent, unsigned batch)
{
	if (burst) {
		struct vhu_sg sg[QSIZE];
		struct vhu_drv_buf b[QSIZE];
		for (unsigned i = 0; i < batch; i++) {
			unsigned slot = (unsigned)(sent + i) % QSIZE;
			sg[i] = (struct vhu_sg){ reg->gpa + slot * 64u, 64 };
			b[i] = (struct vhu_drv_buf){ &sg[i], 1, 0, &tokens[slot] };
		}
		vhu_drv_vq_add_burst(&r->drv, b, batch);
	} else {
		for (unsigned i = 0; i < batch; i++) {
			unsigned slot = (unsigned)(sent + i) % QSIZE;
			struct vhu_sg sg = { reg->gpa + slot * 64u, 64 };
			vhu_drv_vq_add(&r->drv, &sg, 1, 0, &tokens[slot]);
		}
	}
	vhu_drv_vq_publish(&r->drv);
}

static unsigned vhu_get(struct vhu_run *r, unsigned batch)
{
	void *tok[QSIZE];
	uint32_t len[QSIZE];
	unsigned got = 0;

	if (burst) {
		int k = vhu_drv_vq_get_burst(&r->drv, tok, len, batch);
		return k > 0 ? (unsigned)k : 0;
	}
	while (got < batch && vhu_drv_vq_get(&r->drv, &tok[0], &len[0]) == 1)
		got++;
	return got;
}

static double run_vhu(bool packed, unsigned batch)
{
	static struct vhu_run r;
	static int tokens[QSIZE];
	/* read by the device on every descriptor: not beside the driver's
	 * stack, which it writes all the time */
	static _Alignas(64) struct region reg;
	struct vhu_vq_layout l;
	pthread_t th;
	uint64_t features = VHU_BIT(VHU_F_VERSION_1) | (packed ? VHU_BIT(VHU_F_RING_PACKED) : 0);

	vhu_vq_layout(QSIZE, packed, &l);
	unsigned char *ring = aligned_alloc(4096, l.size);
	reg.gpa = 0x100000;
	reg.size = DATA_BYTES;
	reg.host = aligned_alloc(4096, DATA_BYTES);
	memset(ring, 0, l.size);
	memset(&r, 0, sizeof(r));
	r.batch = batch;
	struct vhu_vq_config cfg = {
		.num = QSIZE, .features = features,
		.desc = ring + l.desc_off, .driver_area = ring + l.driver_off,
		.device_area = ring + l.device_off, .translate = translate, .translate_opaque = &reg,
	};
	if (vhu_dev_vq_init(&r.dev, &cfg) || vhu_drv_vq_init(&r.drv, &cfg, NULL, 0, 0)) {
		fprintf(stderr, "init failed\n");
		exit(1);
	}
	vhu_drv_vq_disable_cb(&r.drv);
	pthread_create(&th, NULL, vhu_device, &r);
	while (!atomic_load(&r.go))
		;
	uint64_t sent = 0, done = 0, inflight = 0;
	double t0 = now_ns();
	while (done < per_run) {
		if (inflight + batch <= QSIZE && sent < per_run) {
			vhu_add(&r, &reg, tokens, sent, batch);
			sent += batch;
			inflight += batch;
		}
		unsigned got = vhu_get(&r, batch);
		done += got;
		inflight -= got;
	}
	double t1 = now_ns();
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	vhu_drv_vq_destroy(&r.drv);
	vhu_dev_vq_destroy(&r.dev);
	free(ring);
	free(reg.host);
	return (t1 - t0) / (double)per_run;
}

/* ---- minimal hand-written ring ------------------------------------------- */
struct slot16 {
	uint64_t addr;
	uint32_t len;
	uint32_t id;
};

struct mini {
	_Alignas(64) struct slot16 req[QSIZE];
	_Alignas(64) struct slot16 cpl[QSIZE];
	_Alignas(64) atomic_uint req_prod;
	_Alignas(64) atomic_uint cpl_prod;
	_Alignas(64) unsigned batch;
	bool checked;   /* the checked virtqueue (the least a safe engine does) */
	atomic_int err; /* what the checked device stopped on */
	atomic_int go, stop;
};

static void *mini_device(void *arg)
{
	struct mini *m = arg;
	unsigned cons = 0, prod = 0, batch = m->batch;

	pin(cpu_device);
	atomic_store(&m->go, 1);
	while (!atomic_load_explicit(&m->stop, memory_order_relaxed)) {
		unsigned avail = atomic_load_explicit(&m->req_prod, memory_order_acquire) - cons;
		if (!avail)
			continue;
		if (avail > batch)
			avail = batch;
		for (unsigned i = 0; i < avail; i++, cons++, prod++) {
			struct slot16 s = m->req[cons % QSIZE];
			m->cpl[prod % QSIZE] = (struct slot16){ .id = s.id, .len = 0 };
		}
		atomic_store_explicit(&m->cpl_prod, prod, memory_order_release);
	}
	return NULL;
}

static double run_mini(unsigned batch)
{
	static struct mini m;
	pthread_t th;
	unsigned prod = 0, cons = 0;

	memset(&m, 0, sizeof(m));
	m.batch = batch;
	pthread_create(&th, NULL, mini_device, &m);
	while (!atomic_load(&m.go))
		;
	uint64_t sent = 0, done = 0, inflight = 0;
	volatile uint32_t sink = 0;
	double t0 = now_ns();
	while (done < per_run) {
		if (inflight + batch <= QSIZE && sent < per_run) {
			for (unsigned i = 0; i < batch; i++, prod++)
				m.req[prod % QSIZE] = (struct slot16){ 0x100000 + (prod % QSIZE) * 64u, 64, prod % QSIZE };
			atomic_store_explicit(&m.req_prod, prod, memory_order_release);
			sent += batch;
			inflight += batch;
		}
		unsigned avail = atomic_load_explicit(&m.cpl_prod, memory_order_acquire) - cons;
		if (avail > batch)
			avail = batch;
		for (unsigned i = 0; i < avail; i++, cons++)
			sink += m.cpl[cons % QSIZE].id;
		done += avail;
		inflight -= avail;
	}
	double t1 = now_ns();
	atomic_store(&m.stop, 1);
	pthread_join(th, NULL);
	(void)sink;
	return (t1 - t0) / (double)per_run;
}

/* ---- minimal hand-written virtqueues (minvq.h) -------------------------- */
struct minvq {
	struct minvq_ring r;
	_Alignas(64) unsigned batch;
	bool checked;   /* the checked virtqueue (the least a safe engine does) */
	atomic_int err; /* what the checked device stopped on */
	atomic_int go, stop;
};

static void *minvq_device(void *arg)
{
	struct minvq *q = arg;
	const struct minvq_ring r = q->r;
	unsigned batch = q->batch;
	struct minvq_device s;
	volatile uint64_t sink = 0;

	minvq_device_init(&s);
	pin(cpu_device);
	atomic_store(&q->go, 1);
	if (q->checked) {
		static struct minvq_checked_device c;
		minvq_checked_device_init(&c, MINVQ_GPA, DATA_BYTES);
		while (!atomic_load_explicit(&q->stop, memory_order_relaxed) && !c.err)
			minvq_checked_serve(&r, &c, batch);
		atomic_store(&q->err, c.err);
		s.acc = c.s.acc;
	} else {
		while (!atomic_load_explicit(&q->stop, memory_order_relaxed))
			minvq_serve(&r, &s, batch);
	}
	sink = s.acc;
	(void)sink;
	return NULL;
}

static double run_minvq_as(bool packed, unsigned batch, bool checked)
{
	static struct minvq q;
	static _Alignas(64) unsigned char host[DATA_BYTES];
	struct vhu_vq_layout l;
	pthread_t th;

	vhu_vq_layout(QSIZE, packed, &l);
	memset(&q, 0, sizeof(q));
	unsigned char *ring = aligned_alloc(4096, l.size);
	memset(ring, 0, l.size);
	q.r = (struct minvq_ring){
		.desc = (void *)(ring + l.desc_off), .pdesc = (void *)(ring + l.desc_off),
		.avail = (void *)(ring + l.driver_off), .used = (void *)(ring + l.device_off),
		.host = host, .packed = packed,
	};
	q.batch = batch;
	q.checked = checked;
	pthread_create(&th, NULL, minvq_device, &q);
	while (!atomic_load(&q.go))
		;
	const struct minvq_ring r = q.r;
	struct minvq_driver s;
	uint64_t sent = 0, done = 0, inflight = 0;
	volatile uint64_t sink = 0;
	static struct minvq_checked_driver c;
	static int tokens[QSIZE];
	void *tok[QSIZE];
	minvq_driver_init(&s);
	minvq_checked_driver_init(&c);
	for (unsigned i = 0; i < QSIZE; i++)
		tok[i] = &tokens[i];
	double t0 = now_ns();
	while (done < per_run) {
		if (inflight + batch <= QSIZE && sent < per_run) {
			if (checked)
				minvq_checked_add(&r, &c, batch, tok);
			else
				minvq_add(&r, &s, batch);
			sent += batch;
			inflight += batch;
		}
		unsigned got = checked ? minvq_checked_get(&r, &c, batch) : minvq_get(&r, &s, batch);
		done += got;
		inflight -= got;
		if (c.err || atomic_load_explicit(&q.err, memory_order_relaxed)) {
			fprintf(stderr, "ring_bench: the checked virtqueue stopped: %d/%d\n", c.err, atomic_load(&q.err));
			exit(1);
		}
	}
	double t1 = now_ns();
	sink = s.acc + c.s.acc;
	(void)sink;
	atomic_store(&q.stop, 1);
	pthread_join(th, NULL);
	free(ring);
	return (t1 - t0) / (double)per_run;
}

static double run_minvq(bool packed, unsigned batch) { return run_minvq_as(packed, batch, false); }
static double run_checked(bool packed, unsigned batch) { return run_minvq_as(packed, batch, true); }

/* ---- cache-line ping-pong ------------------------------------------------ */
static _Alignas(64) atomic_uint ball;
static uint64_t pp_rounds;

static void *pong(void *arg)
{
	(void)arg;
	pin(cpu_device);
	for (uint64_t i = 0; i < pp_rounds; i++) {
		while (atomic_load_explicit(&ball, memory_order_acquire) != 2 * i + 1)
			;
		atomic_store_explicit(&ball, 2 * i + 2, memory_order_release);
	}
	return NULL;
}

static double run_pingpong(void)
{
	pthread_t th;
	pp_rounds = per_run / 8;
	atomic_store(&ball, 0);
	pthread_create(&th, NULL, pong, NULL);
	double t0 = now_ns();
	for (uint64_t i = 0; i < pp_rounds; i++) {
		atomic_store_explicit(&ball, 2 * i + 1, memory_order_release);
		while (atomic_load_explicit(&ball, memory_order_acquire) != 2 * i + 2)
			;
	}
	double t1 = now_ns();
	pthread_join(th, NULL);
	return (t1 - t0) / (double)pp_rounds / 2.0;   /* one transfer */
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double (*fn)(bool, unsigned), bool packed, unsigned batch)
{
	double v[16];
	for (int i = 0; i < runs; i++)
		v[i] = fn(packed, batch);
	qsort(v, runs, sizeof(double), cmp_double);
	return v[runs / 2];
}

static double mini_adapter(bool packed, unsigned batch) { (void)packed; return run_mini(batch); }
static double vhu_single(bool packed, unsigned batch) { burst = false; return run_vhu(packed, batch); }
static double vhu_burst(bool packed, unsigned batch) { burst = true; return run_vhu(packed, batch); }
static double pp_adapter(bool packed, unsigned batch) { (void)packed; (void)batch; return run_pingpong(); }

int main(int argc, char **argv)
{
	static const unsigned batches[] = { 1, 4, 16, 64, 256 };
	double split64 = 0, packed64 = 0, chk_split64 = 0, chk_packed64 = 0;

	if (argc > 1)
		per_run = strtoull(argv[1], NULL, 0);
	if (argc > 2)
		runs = atoi(argv[2]);
	if (runs < 1 || runs > 16)
		runs = 5;
	pin(cpu_driver);
	printf("# vhu ring benchmark: queue %u, %llu descriptors per run, median of %d runs, cpus %d/%d\n",
	       QSIZE, (unsigned long long)per_run, runs, cpu_driver, cpu_device);
	printf("# ns per descriptor; min-* = minimal hand-written virtqueue of the same format,\n"
	       "# spsc = bare two-ring queue of 16-byte slots (no virtio format at all)\n");
	printf("cache-line ping-pong: %.1f ns per transfer\n", median(pp_adapter, false, 0));
	printf("# chk-* = the same with only the checks and bookkeeping no safe engine can skip\n"
	       "# (bench/minvq.h: a lower bound under any engine that keeps vhu's checks)\n"
	       "# vhu-*: single = one call per buffer, burst = one call per batch and role;\n"
	       "# ratios: the better vhu API / the minimal virtqueue of the same format\n");
	printf("%-6s %7s %9s %9s %9s %9s %10s %10s %9s %9s %9s %7s\n", "batch", "spsc", "min-split",
	       "chk-split", "single", "burst", "min-packed", "chk-packed", "single", "burst", "split/min", "pk/min");
	for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
		unsigned b = batches[i];
		/* the variants' runs interleaved, so that a slow spell of this
		 * shared machine falls on all of them, not on one */
		struct { double (*fn)(bool, unsigned); bool packed; } var[] = {
			{ mini_adapter, false }, { run_minvq, false }, { run_checked, false }, { vhu_single, false },
			{ vhu_burst, false }, { run_minvq, true }, { run_checked, true }, { vhu_single, true },
			{ vhu_burst, true },
		};
		enum { NV = sizeof(var) / sizeof(var[0]) };
		double v[NV][16], med[NV];
		for (int r = 0; r < runs; r++)
			for (int k = 0; k < NV; k++)
				v[k][r] = var[k].fn(var[k].packed, b);
		for (int k = 0; k < NV; k++) {
			qsort(v[k], runs, sizeof(double), cmp_double);
			med[k] = v[k][runs / 2];
		}
		double sq = med[0], ms = med[1], cs = med[2], s1 = med[3], sb = med[4];
		double mp = med[5], cp = med[6], p1 = med[7], pb = med[8];
		double rs = (s1 < sb ? s1 : sb) / ms, rp = (p1 < pb ? p1 : pb) / mp;
		printf("%-6u %7.2f %9.2f %9.2f %9.2f %9.2f %10.2f %10.2f %9.2f %9.2f %9.2f %7.2f\n", b, sq, ms, cs,
		       s1, sb, mp, cp, p1, pb, rs, rp);
		if (b == 64) {
			split64 = rs;
			packed64 = rp;
			chk_split64 = cs / ms;
			chk_packed64 = cp / mp;
		}
	}
	printf("checked-vs-floor batch=64 split=%.2f packed=%.2f\n", chk_split64, chk_packed64);
	printf("ring-vs-floor batch=64 split=%.2f packed=%.2f\n", split64, packed64);
	return 0;
}
