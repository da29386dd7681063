/* SPDX-License-Identifier: MIT */
/*
 * vhu: probe, verify and benchmark any vhost-user-blk back-end.
 *   vhu probe SOCK [--json]
 *   vhu verify SOCK [--size=BYTES] [--queues=N] [--ring=split|packed] [--notify=eventfd|inband|poll]
 *                   [--iommu=off|static|dynamic]
 *   vhu bench SOCK [--rw=read|write|randread|randwrite|randrw] [--bs=BYTES] [--iodepth=N]
 *                  [--queues=N] [--runtime=SECONDS] [--ring=...] [--notify=...] [--spin-us=N] [--json]
 *   vhu guest SOCK [options]   (tools/guest/: a real Linux guest against the back-end)
 *   vhu admin SOCK ...         (tools/admin.c: a management device's commands)
 *   probe, verify and bench take --member=ID: a managed device of a management device
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "guest/guest.h"
#include "opts.h"
#include "vhu/blk_driver.h"
#include "vhu/virtio.h"

struct opts {
	const char *sock;
	bool json, server, packed, reconnect, no_event_idx, dirty_log, doorbell;
	enum vhu_fe_notify notify;
	enum vhu_fe_iommu iommu;
	unsigned queues, iodepth, runtime, queue_size, verbose, spin_us;
	uint64_t size, bs;
	const char *rw;
	const char *plot;
	uint64_t member;          /* a managed device of the management device at sock; 0: none */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int connect_fe(const struct opts *o, struct vhu_fe **fe)
{
	struct vhu_fe_config c = { .path = o->sock, .server = o->server, .fd = -1, .timeout_ms = 5000,
				   .log = opt_log_stderr, .log_level = VHU_LOG_WARN + (int)o->verbose,
				   .doorbells = o->doorbell };
	int rc = vhu_fe_connect(fe, &c);
	if (rc < 0)
		fprintf(stderr, "vhu: cannot talk to %s: %s\n", o->sock, strerror(-rc));
	return rc;
}

/* ---- probe ------------------------------------------------------------- */

static const char *feature_name(unsigned bit)
{
	static const char *const common[64] = {
		[24] = "NOTIFY_ON_EMPTY", [26] = "LOG_ALL", [27] = "ANY_LAYOUT", [28] = "INDIRECT_DESC",
		[29] = "EVENT_IDX", [30] = "PROTOCOL_FEATURES", [32] = "VERSION_1", [33] = "ACCESS_PLATFORM",
		[34] = "RING_PACKED", [35] = "IN_ORDER", [36] = "ORDER_PLATFORM", [37] = "SR_IOV",
		[38] = "NOTIFICATION_DATA", [39] = "NOTIF_CONFIG_DATA", [40] = "RING_RESET", [41] = "ADMIN_VQ",
		/* virtio-blk */
		[1] = "BLK_SIZE_MAX", [2] = "BLK_SEG_MAX", [4] = "BLK_GEOMETRY", [5] = "BLK_RO",
		[6] = "BLK_BLK_SIZE", [9] = "BLK_FLUSH", [10] = "BLK_TOPOLOGY", [11] = "BLK_CONFIG_WCE",
		[12] = "BLK_MQ", [13] = "BLK_DISCARD", [14] = "BLK_WRITE_ZEROES", [15] = "BLK_LIFETIME",
		[16] = "BLK_SECURE_ERASE",
	};
	return bit < 64 ? common[bit] : NULL;
}

static void print_bits(FILE *f, uint64_t v, const char *(*name)(unsigned), bool json)
{
	bool first = true;
	for (unsigned b = 0; b < 64; b++) {
		if (!(v >> b & 1))
			continue;
		const char *n = name(b);
		char tmp[16];
		if (!n) {
			snprintf(tmp, sizeof(tmp), "bit%u", b);
			n = tmp;
		}
		fprintf(f, json ? "%s\"%s\"" : "%s%s", first ? "" : json ? ", " : " ", n);
		first = false;
	}
}

/* probe --member: what the managed device offers, through admin commands */
static int probe_member(const struct opts *o)
{
	struct admin_session s;
	struct vhu_admin_create c;
	uint8_t st = 0;
	if (admin_session_open(&s, o->sock, o->server, o->verbose, 0) < 0)
		return 1;
	int rc = vhu_admin_dev_info(s.ad, o->member, &c);
	if (rc == 0)
		rc = vhu_admin_status_get(s.ad, o->member, &st);
	if (rc < 0) {
		fprintf(stderr, "vhu: member %" PRIu64 ": %s (qualifier %u)\n", o->member, strerror(-rc),
			vhu_admin_qualifier(s.ad));
		admin_session_close(&s);
		return 1;
	}
	if (o->json)
		printf("{\"socket\": \"%s\", \"member\": %" PRIu64 ", \"device_type\": %u, \"capacity_sectors\": %" PRIu64
		       ", \"blk_size\": %u, \"num_queues\": %u, \"queue_size_max\": %u, \"read_only\": %s, "
		       "\"backing\": \"%s\", \"status\": %u}\n", o->sock, o->member, c.device_type, c.capacity, c.blk_size,
		       c.num_queues, c.queue_size_max, (c.flags & VHU_ADMIN_CREATE_READ_ONLY) ? "true" : "false",
		       c.backing, st);
	else
		printf("management device  %s\nmember             %" PRIu64 "\ndevice type        %u (blk)\n"
		       "capacity           %" PRIu64 " sectors (%.1f MiB)\nblock size         %u\nqueues             %u, of up to %u\n"
		       "read-only          %s\nbacking            %s\nstatus             0x%02x\n", o->sock, o->member,
		       c.device_type, c.capacity, c.capacity / 2048.0, c.blk_size, c.num_queues, c.queue_size_max,
		       (c.flags & VHU_ADMIN_CREATE_READ_ONLY) ? "yes" : "no", c.backing, st);
	admin_session_close(&s);
	return 0;
}

static int cmd_probe(const struct opts *o)
{
	struct vhu_fe *fe;
	struct vhu_blk_info bi;
	uint8_t status = 0;
	if (o->member)
		return probe_member(o);
	int rc = connect_fe(o, &fe);

	if (rc < 0)
		return 1;
	uint64_t f = vhu_fe_offered_features(fe), pf = vhu_fe_offered_protocol_features(fe);
	int crc = vhu_blk_read_info(fe, f, &bi);
	int src = vhu_fe_get_status(fe, &status);
	if (o->json) {
		printf("{\n  \"socket\": \"%s\",\n  \"features\": \"0x%016" PRIx64 "\",\n  \"feature_names\": [", o->sock, f);
		print_bits(stdout, f, feature_name, true);
		printf("],\n  \"protocol_features\": \"0x%" PRIx64 "\",\n  \"protocol_feature_names\": [", pf);
		print_bits(stdout, pf, vhu_user_protocol_feature_name, true);
		printf("],\n  \"queues\": %" PRIu64 ",\n  \"max_mem_slots\": %" PRIu64 ",\n", vhu_fe_queue_num(fe),
		       vhu_fe_max_mem_slots(fe));
		if (src == 0)
			printf("  \"status\": %u,\n", status);
		if (crc == 0)
			printf("  \"blk\": {\"capacity_sectors\": %" PRIu64 ", \"capacity_bytes\": %" PRIu64
			       ", \"blk_size\": %u, \"seg_max\": %u, \"size_max\": %u, \"num_queues\": %u, "
			       "\"read_only\": %s, \"flush\": %s, \"discard\": %s, \"max_discard_sectors\": %u, "
			       "\"max_discard_seg\": %u, \"write_zeroes\": %s, \"max_write_zeroes_sectors\": %u, "
			       "\"max_write_zeroes_seg\": %u},\n",
			       bi.capacity, bi.capacity * 512, bi.blk_size, bi.seg_max, bi.size_max, bi.num_queues,
			       bi.read_only ? "true" : "false", bi.flush ? "true" : "false", bi.discard ? "true" : "false",
			       bi.max_discard_sectors, bi.max_discard_seg, bi.write_zeroes ? "true" : "false",
			       bi.max_write_zeroes_sectors, bi.max_write_zeroes_seg);
		printf("  \"config_readable\": %s\n}\n", crc == 0 ? "true" : "false");
	} else {
		printf("back-end           %s\n", o->sock);
		printf("features           0x%016" PRIx64 "\n                   ", f);
		print_bits(stdout, f, feature_name, false);
		printf("\nprotocol features  0x%" PRIx64 "\n                   ", pf);
		print_bits(stdout, pf, vhu_user_protocol_feature_name, false);
		printf("\nqueues             %" PRIu64 "\nmax memory slots   %" PRIu64 "\n", vhu_fe_queue_num(fe),
		       vhu_fe_max_mem_slots(fe));
		if (src == 0)
			printf("status             0x%02x\n", status);
		if (crc == 0) {
			printf("capacity           %" PRIu64 " sectors (%.1f MiB)\n", bi.capacity, bi.capacity / 2048.0);
			printf("block size         %u\nsegments           max %u, each at most %u bytes\n", bi.blk_size,
			       bi.seg_max, bi.size_max);
			printf("queues (config)    %u\nread-only          %s\nflush              %s\n", bi.num_queues,
			       bi.read_only ? "yes" : "no", bi.flush ? "yes" : "no");
			if (bi.discard)
				printf("discard            up to %u sectors x %u segments\n", bi.max_discard_sectors,
				       bi.max_discard_seg);
			if (bi.write_zeroes)
				printf("write zeroes       up to %u sectors x %u segments%s\n", bi.max_write_zeroes_sectors,
				       bi.max_write_zeroes_seg, bi.write_zeroes_may_unmap ? ", may unmap" : "");
		} else {
			printf("config             not readable (%s)\n", strerror(-crc));
		}
	}
	vhu_fe_close(fe);
	return 0;
}

/* ---- device set-up shared by verify and bench --------------------------- */

struct dev {
	struct vhu_fe *fe;
	struct vhu_blk_info info;
	struct vhu_blk_queue **q;
	unsigned nq;
	struct admin_session admin;   /* --member: the management device */
	struct admin_member member;
};

/* --member: the managed device's queues over the management device's
 * front-end, whose memory holds its rings and buffers. */
static int member_open(const struct opts *o, struct dev *d, size_t buf_mem)
{
	if (o->iommu != VHU_FE_IOMMU_OFF || o->dirty_log || o->doorbell || o->notify != VHU_FE_NOTIFY_EVENTFD ||
	    o->packed) {
		fprintf(stderr, "vhu: --member takes none of --iommu, --dirty-log, --notify, --ring=packed\n");
		return -1;
	}
	size_t rings = (size_t)o->queues * (o->queue_size * 64 + 8192);
	if (admin_session_open(&d->admin, o->sock, o->server, o->verbose, buf_mem + rings) < 0)
		return -1;
	d->fe = d->admin.fe;
	d->nq = o->queues;
	d->q = calloc(d->nq, sizeof(*d->q));
	/* rings no larger than the member takes (the default 256 may be more) */
	struct vhu_admin_create made;
	int rc = vhu_admin_dev_info(d->admin.ad, o->member, &made);
	if (rc < 0) {
		fprintf(stderr, "vhu: member %" PRIu64 ": %s (qualifier %u)\n", o->member, strerror(-rc),
			vhu_admin_qualifier(d->admin.ad));
		return -1;
	}
	unsigned qsize = o->queue_size < made.queue_size_max ? o->queue_size : made.queue_size_max;
	if (o->iodepth > qsize) {
		fprintf(stderr, "vhu: member %" PRIu64 " takes rings of up to %u: --iodepth=%u does not fit\n",
			o->member, made.queue_size_max, o->iodepth);
		return -1;
	}
	struct vhu_admin_dev_setup s = {
		.features = (o->no_event_idx ? 0 : VHU_BIT(VHU_F_EVENT_IDX)) | VHU_BIT(VHU_F_INDIRECT_DESC) |
			    vhu_blk_driver_features(),
		.num_queues = (uint16_t)o->queues, .queue_size = (uint16_t)qsize,
	};
	return d->q ? admin_member_open(&d->admin, o->member, &s, &d->member, &d->info, d->q) : -1;
}

static int dev_open(const struct opts *o, struct dev *d, size_t buf_mem)
{
	memset(d, 0, sizeof(*d));
	if (o->member)
		return member_open(o, d, buf_mem);
	if (connect_fe(o, &d->fe) < 0)
		return -1;
	uint64_t offered = vhu_fe_offered_features(d->fe);
	int rc = vhu_blk_read_info(d->fe, offered, &d->info);
	if (rc < 0) {
		fprintf(stderr, "vhu: cannot read the block device's config: %s\n", strerror(-rc));
		return -1;
	}
	if (o->packed && !vhu_has_feature(offered, VHU_F_RING_PACKED)) {
		fprintf(stderr, "vhu: the back-end does not offer the packed ring\n");
		return -1;
	}
	struct vhu_fe_setup s = {
		.features = VHU_BIT(VHU_F_VERSION_1) | (o->no_event_idx ? 0 : VHU_BIT(VHU_F_EVENT_IDX)) |
			    VHU_BIT(VHU_F_INDIRECT_DESC) |
			    (o->packed ? VHU_BIT(VHU_F_RING_PACKED) : 0) | vhu_blk_driver_features() |
			    (o->doorbell ? VHU_BIT(VHU_F_NOTIFICATION_DATA) : 0),
		.num_queues = (uint16_t)o->queues, .queue_size = (uint16_t)o->queue_size, .notify = o->notify,
		.mem_size = buf_mem + (size_t)o->queues * o->queue_size * 64, .indirect_max = 8,
		.spin_ns = o->spin_us * 1000u, .iommu = o->iommu,
	};
	if ((rc = vhu_fe_start(d->fe, &s)) < 0) {
		fprintf(stderr, "vhu: cannot start the device: %s\n", strerror(-rc));
		return -1;
	}
	/* as a VMM does while it migrates the guest */
	if (o->dirty_log && (rc = vhu_fe_log_start(d->fe)) < 0) {
		fprintf(stderr, "vhu: the back-end cannot log dirty pages: %s\n", strerror(-rc));
		return -1;
	}
	d->nq = o->queues;
	d->q = calloc(d->nq, sizeof(*d->q));
	for (unsigned i = 0; i < d->nq; i++)
		if (!(d->q[i] = vhu_blk_queue_new(d->fe, i)))
			return -1;
	return 0;
}

static void dev_close(struct dev *d)
{
	if (d->member.dev || d->admin.fe) {
		admin_member_close(&d->member, d->q, d->nq);
		free(d->q);
		admin_session_close(&d->admin);
		return;
	}
	if (d->fe)
		vhu_fe_stop(d->fe);
	for (unsigned i = 0; i < d->nq; i++)
		vhu_blk_queue_free(d->q[i]);
	free(d->q);
	vhu_fe_close(d->fe);
}

/* --iommu=dynamic: a buffer is mapped for one request, the way its data
 * goes, and unmapped when the request completes, as a guest's DMA API does
 * in strict mode; the back-end learns each mapping by a miss. */
static int dma_map(struct dev *d, uint64_t addr, uint64_t len, bool to_device)
{
	if (vhu_fe_iommu_mode(d->fe) != VHU_FE_IOMMU_DYNAMIC)
		return 0;
	int rc = vhu_fe_iommu_map(d->fe, addr, len, to_device ? VHU_USER_IOTLB_PERM_RO : VHU_USER_IOTLB_PERM_WO, false);
	if (rc < 0)
		fprintf(stderr, "vhu: cannot map 0x%" PRIx64 ": %s\n", addr, strerror(-rc));
	return rc;
}

static int dma_unmap(struct dev *d, uint64_t addr, uint64_t len)
{
	if (vhu_fe_iommu_mode(d->fe) != VHU_FE_IOMMU_DYNAMIC)
		return 0;
	int rc = vhu_fe_iommu_unmap(d->fe, addr, len);
	if (rc < 0)
		fprintf(stderr, "vhu: cannot unmap 0x%" PRIx64 ": %s\n", addr, strerror(-rc));
	return rc;
}

/* --notify=doorbell: how the kicks went, and whether the values carried
 * notification data. */
static void print_kicks(struct dev *d)
{
	struct vhu_fe_queue_stats t = { 0 };
	for (unsigned i = 0; i < d->nq; i++) {
		struct vhu_fe_queue_stats st;
		vhu_fe_queue_stats(vhu_fe_queue(d->fe, i), &st);
		t.kicks_doorbell += st.kicks_doorbell;
		t.kicks_eventfd += st.kicks_eventfd;
		t.doorbells_mapped += st.doorbells_mapped;
		t.doorbells_refused += st.doorbells_refused;
	}
	printf("  kicks: %" PRIu64 " by doorbell, %" PRIu64 " by eventfd; %" PRIu64 " doorbell pages mapped, %" PRIu64
	       " refused; notification data %s\n", t.kicks_doorbell, t.kicks_eventfd, t.doorbells_mapped,
	       t.doorbells_refused, vhu_has_feature(vhu_fe_features(d->fe), VHU_F_NOTIFICATION_DATA) ? "on" : "off");
}

static const char *iommu_name(enum vhu_fe_iommu m)
{
	return m == VHU_FE_IOMMU_STATIC ? "static" : m == VHU_FE_IOMMU_DYNAMIC ? "dynamic" : "off";
}

/* Wait for and collect completions; returns the count or -1. */
static int reap(struct vhu_blk_queue *q, struct vhu_blk_completion *c, unsigned max)
{
	int n = vhu_blk_complete(q, c, max);
	while (n == 0) {
		int rc = vhu_blk_wait(q, -1);
		if (rc < 0) {
			fprintf(stderr, "vhu: waiting for the back-end: %s\n", strerror(-rc));
			return -1;
		}
		n = vhu_blk_complete(q, c, max);
	}
	if (n < 0)
		fprintf(stderr, "vhu: the back-end returned a bad used buffer: %s\n", vhu_vq_strerror(n));
	return n;
}

/* ---- verify -------------------------------------------------------------- */

#define VBLK 4096u
#define VMAGIC 0x5648552d56455249ull   /* "VHU-VERI" */

struct vhdr {
	uint64_t magic, offset, generation;
	uint32_t sum, pad;
};

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void fill_block(unsigned char *b, uint64_t off, uint64_t gen)
{
	struct vhdr h = { VMAGIC, off, gen, 0, 0 };
	uint64_t x = off * 0x9e3779b97f4a7c15ull ^ gen;
	for (size_t i = sizeof(h); i < VBLK; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		b[i] = (unsigned char)x;
	}
	h.sum = fnv1a(b + sizeof(h), VBLK - sizeof(h));
	memcpy(b, &h, sizeof(h));
}

/* What a block read back says about itself, when it is not what was written. */
static void report_mismatch(const unsigned char *got, uint64_t off, uint64_t gen)
{
	struct vhdr h;
	memcpy(&h, got, sizeof(h));
	if (h.magic == VMAGIC && h.offset != off)
		printf("offset %" PRIu64 ": holds the block written for offset %" PRIu64 "\n", off, h.offset);
	else if (h.magic == VMAGIC && h.generation != gen)
		printf("offset %" PRIu64 ": holds a block from another run\n", off);
	else if (h.magic == VMAGIC && h.sum != fnv1a(got + sizeof(h), VBLK - sizeof(h)))
		printf("offset %" PRIu64 ": checksum mismatch\n", off);
	else
		printf("offset %" PRIu64 ": not what was written\n", off);
}

struct vslots {
	unsigned char **buf;
	uint64_t *gpa, *blk;
	unsigned *free, nfree;
};

/* Write every block of [0, size), read each back, compare. */
static int cmd_verify(const struct opts *o)
{
	struct dev d;
	unsigned depth = o->iodepth;

	if (dev_open(o, &d, (size_t)o->queues * depth * VBLK * 2) < 0)
		return 1;
	uint64_t size = o->size < d.info.capacity * 512 ? o->size : d.info.capacity * 512;
	uint64_t nblk = size / VBLK, gen = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32), bad = 0;
	struct vslots *vs = calloc(d.nq, sizeof(*vs));
	for (unsigned qi = 0; qi < d.nq; qi++) {
		vs[qi].buf = calloc(depth, sizeof(*vs[qi].buf));
		vs[qi].gpa = calloc(depth, sizeof(uint64_t));
		vs[qi].blk = calloc(depth, sizeof(uint64_t));
		vs[qi].free = calloc(depth, sizeof(unsigned));
		for (unsigned k = 0; k < depth; k++) {
			vs[qi].buf[k] = vhu_fe_alloc(d.fe, VBLK, 4096, &vs[qi].gpa[k]);
			vs[qi].free[vs[qi].nfree++] = k;
		}
	}
	double t0 = now_s();
	for (int pass = 0; pass < 2 && !bad; pass++) {
		bool writing = pass == 0;
		uint64_t next = 0, done = 0;
		while (done < nblk) {
			for (unsigned qi = 0; qi < d.nq; qi++) {
				struct vhu_blk_queue *q = d.q[qi];
				struct vslots *v = &vs[qi];
				while (next < nblk && v->nfree) {
					unsigned k = v->free[v->nfree - 1];
					uint64_t off = next * VBLK;
					if (writing)
						fill_block(v->buf[k], off, gen);
					else
						memset(v->buf[k], 0, VBLK);
					struct vhu_sg sg = { v->gpa[k], VBLK };
					if (dma_map(&d, v->gpa[k], VBLK, writing) < 0)
						return 1;
					if (vhu_blk_submit(q, writing ? VHU_BLK_T_OUT : VHU_BLK_T_IN, off / 512, &sg, 1,
							   (void *)(uintptr_t)(k + 1)) < 0) {
						dma_unmap(&d, v->gpa[k], VBLK);
						break;
					}
					v->blk[k] = next++;
					v->nfree--;
				}
				if (!vhu_blk_inflight(q))
					continue;
				vhu_blk_kick(q);
				struct vhu_blk_completion c[64];
				int n = reap(q, c, 64);
				if (n < 0)
					return 1;
				for (int i = 0; i < n; i++) {
					unsigned k = (unsigned)(uintptr_t)c[i].user - 1;
					uint64_t off = v->blk[k] * VBLK;
					if (dma_unmap(&d, v->gpa[k], VBLK) < 0)
						return 1;
					v->free[v->nfree++] = k;
					done++;
					if (c[i].status != VHU_BLK_S_OK) {
						printf("offset %" PRIu64 ": %s failed, status %u\n", off, writing ? "write" : "read",
						       c[i].status);
						bad++;
					} else if (!writing) {
						unsigned char want[VBLK];
						fill_block(want, off, gen);
						if (memcmp(want, v->buf[k], VBLK)) {
							bad++;
							report_mismatch(v->buf[k], off, gen);
						}
					}
				}
			}
		}
	}
	double t = now_s() - t0;
	printf("verify %s: %" PRIu64 " blocks of %u bytes written and read back in %.2f s, %" PRIu64 " mismatches\n",
	       bad ? "FAILED" : "ok", nblk, VBLK, t, bad);
	if (o->doorbell)
		print_kicks(&d);
	dev_close(&d);
	for (unsigned qi = 0; qi < d.nq; qi++) {
		free(vs[qi].buf);
		free(vs[qi].gpa);
		free(vs[qi].blk);
		free(vs[qi].free);
	}
	free(vs);
	return bad ? 1 : 0;
}

/* ---- verify --reconnect ------------------------------------------------------- */

/*
 * Random writes and reads of whole blocks for --runtime seconds, carried on
 * across back-end restarts: a wait that finds the back-end gone reconnects
 * (vhu_fe_reconnect) and the requests in flight stay in flight, to be
 * completed by the new process. Each block's last acknowledged write is
 * remembered; a read (never while a write to its block is in flight) must
 * return exactly it, and at the end every block written is read back once.
 */
struct rslot {
	unsigned char *buf;
	uint64_t gpa, blk, gen;
	bool writing;
};

struct rstate {
	struct dev *d;
	uint64_t nblk, *acked, next_gen, rng;
	bool *busy;
	struct rslot **slot;
	unsigned **free, *nfree;
	uint64_t writes, reads, bad, failed, carried;
	unsigned reconnects;
	unsigned fruitless;   /* reconnects in a row with no completion between them */
};

static uint64_t rs_rand(struct rstate *s)
{
	s->rng ^= s->rng << 13, s->rng ^= s->rng >> 7, s->rng ^= s->rng << 17;
	return s->rng;
}

/* What a round submits: random writes and reads, nothing (draining), or
 * the final reads of every block written, in order. */
enum rs_mode { RS_RUN, RS_DRAIN, RS_FINAL };

/* A block for the next request: one not busy, or the next written one. */
static bool rs_pick(struct rstate *s, enum rs_mode mode, uint64_t *cursor, uint64_t *blk)
{
	if (mode == RS_DRAIN)
		return false;
	if (mode == RS_FINAL) {
		while (*cursor < s->nblk && (!s->acked[*cursor] || s->busy[*cursor]))
			++*cursor;
		if (*cursor >= s->nblk)
			return false;
		*blk = (*cursor)++;
		return true;
	}
	for (int tries = 0; tries < 8; tries++) {
		*blk = rs_rand(s) % s->nblk;
		if (!s->busy[*blk])
			return true;
	}
	return false;
}

static void rs_submit(struct rstate *s, unsigned qi, enum rs_mode mode, uint64_t *cursor)
{
	struct vhu_blk_queue *q = s->d->q[qi];

	while (s->nfree[qi]) {
		uint64_t blk;
		if (!rs_pick(s, mode, cursor, &blk))
			break;
		unsigned k = s->free[qi][s->nfree[qi] - 1];
		struct rslot *sl = &s->slot[qi][k];
		sl->blk = blk;
		sl->writing = mode == RS_RUN && (!s->acked[blk] || rs_rand(s) % 2);
		if (sl->writing) {
			sl->gen = ++s->next_gen;
			fill_block(sl->buf, blk * VBLK, sl->gen);
		} else {
			memset(sl->buf, 0, VBLK);
		}
		struct vhu_sg sg = { sl->gpa, VBLK };
		if (vhu_blk_submit(q, sl->writing ? VHU_BLK_T_OUT : VHU_BLK_T_IN, blk * VBLK / 512, &sg, 1,
				   (void *)(uintptr_t)(k + 1)) < 0)
			break;
		s->busy[blk] = true;
		s->nfree[qi]--;
	}
}

static void rs_complete(struct rstate *s, unsigned qi, const struct vhu_blk_completion *c)
{
	unsigned k = (unsigned)(uintptr_t)c->user - 1;
	struct rslot *sl = &s->slot[qi][k];
	uint64_t off = sl->blk * VBLK;

	s->free[qi][s->nfree[qi]++] = k;
	s->busy[sl->blk] = false;
	if (c->status != VHU_BLK_S_OK) {
		printf("offset %" PRIu64 ": %s failed, status %u\n", off, sl->writing ? "write" : "read", c->status);
		s->failed++;
	} else if (sl->writing) {
		s->acked[sl->blk] = sl->gen;   /* acknowledged: it must survive anything now */
		s->writes++;
	} else {
		unsigned char want[VBLK];
		fill_block(want, off, s->acked[sl->blk]);
		s->reads++;
		if (memcmp(want, sl->buf, VBLK)) {
			s->bad++;
			report_mismatch(sl->buf, off, s->acked[sl->blk]);
		}
	}
}

static unsigned rs_inflight(const struct rstate *s)
{
	unsigned n = 0;
	for (unsigned qi = 0; qi < s->d->nq; qi++)
		n += vhu_blk_inflight(s->d->q[qi]);
	return n;
}

/* One round on queue qi: submit, kick, collect; reconnects if the
 * back-end is gone. -1 when it does not come back or answers wrongly. */
static int rs_round(struct rstate *s, unsigned qi, enum rs_mode mode, uint64_t *cursor)
{
	struct vhu_blk_queue *q = s->d->q[qi];
	struct vhu_blk_completion c[64];

	rs_submit(s, qi, mode, cursor);
	if (!vhu_blk_inflight(q))
		return 0;
	int rc = vhu_blk_kick(q);
	int n = rc < 0 ? 0 : vhu_blk_complete(q, c, 64);
	while (rc >= 0 && n == 0) {
		if ((rc = vhu_blk_wait(q, -1)) >= 0)
			n = vhu_blk_complete(q, c, 64);
	}
	if (n < 0) {
		fprintf(stderr, "vhu: the back-end returned a bad used buffer: %s\n", vhu_vq_strerror(n));
		return -1;
	}
	if (rc == -ETIMEDOUT) {
		/* connected, and sitting on requests: a back-end that lost them */
		printf("%u requests in flight got no answer from a connected back-end: lost\n", vhu_blk_inflight(q));
		s->failed += vhu_blk_inflight(q);
		return -1;
	}
	if (rc < 0) {
		unsigned held = rs_inflight(s);
		if (rc != -ECONNRESET)
			fprintf(stderr, "vhu: waiting for the back-end: %s; reconnecting\n", strerror(-rc));
		/* a back-end that comes back only to fail the queue again is not
		 * restarting: stop rather than reconnect for ever */
		if (++s->fruitless > 10) {
			fprintf(stderr, "vhu: %u reconnects in a row without a single completion: giving up\n",
				s->fruitless - 1);
			return -1;
		}
		if ((rc = vhu_fe_reconnect(s->d->fe, 30000)) < 0) {
			fprintf(stderr, "vhu: the back-end did not come back: %s\n", strerror(-rc));
			return -1;
		}
		s->reconnects++;
		s->carried += held;
		/* the ring may already hold answers; kick the restarted back-end */
		for (unsigned i = 0; i < s->d->nq; i++)
			vhu_blk_kick(s->d->q[i]);
		return 0;
	}
	if (n > 0)
		s->fruitless = 0;
	for (int i = 0; i < n; i++)
		rs_complete(s, qi, &c[i]);
	return 0;
}

static int rs_setup(struct rstate *s, struct dev *d, const struct opts *o)
{
	uint64_t size = o->size < d->info.capacity * 512 ? o->size : d->info.capacity * 512;
	memset(s, 0, sizeof(*s));
	s->d = d;
	s->nblk = size / VBLK;
	s->rng = (uint64_t)time(NULL) * 2654435761u | 1;
	s->next_gen = (uint64_t)time(NULL) << 20;
	s->acked = calloc(s->nblk, sizeof(*s->acked));
	s->busy = calloc(s->nblk, sizeof(*s->busy));
	s->slot = calloc(d->nq, sizeof(*s->slot));
	s->free = calloc(d->nq, sizeof(*s->free));
	s->nfree = calloc(d->nq, sizeof(*s->nfree));
	if (!s->nblk || !s->acked || !s->busy || !s->slot || !s->free || !s->nfree)
		return -1;
	for (unsigned qi = 0; qi < d->nq; qi++) {
		s->slot[qi] = calloc(o->iodepth, sizeof(**s->slot));
		s->free[qi] = calloc(o->iodepth, sizeof(**s->free));
		if (!s->slot[qi] || !s->free[qi])
			return -1;
		for (unsigned k = 0; k < o->iodepth; k++) {
			if (!(s->slot[qi][k].buf = vhu_fe_alloc(d->fe, VBLK, 4096, &s->slot[qi][k].gpa)))
				return -1;
			s->free[qi][s->nfree[qi]++] = k;
		}
	}
	return 0;
}

static void rs_free(struct rstate *s)
{
	for (unsigned qi = 0; s->slot && qi < s->d->nq; qi++) {
		free(s->slot[qi]);
		free(s->free[qi]);
	}
	free(s->slot);
	free(s->free);
	free(s->nfree);
	free(s->acked);
	free(s->busy);
}

static int cmd_verify_reconnect(const struct opts *o)
{
	struct dev d;
	struct rstate s;
	int ret = 1;

	if (dev_open(o, &d, (size_t)o->queues * o->iodepth * VBLK * 2) < 0)
		return 1;
	if (rs_setup(&s, &d, o) < 0) {
		fprintf(stderr, "vhu: out of memory\n");
		goto out;
	}
	bool inflight = vhu_fe_protocol_features(d.fe) >> VHU_USER_PROTOCOL_F_INFLIGHT_SHMFD & 1;
	double t0 = now_s();
	uint64_t cursor = 0;
	/* the run, its requests drained, then every block written read back */
	for (enum rs_mode mode = RS_RUN; mode <= RS_FINAL; mode++) {
		for (;;) {
			if (mode == RS_RUN && now_s() - t0 >= o->runtime)
				break;
			if (mode != RS_RUN && !rs_inflight(&s) && (mode == RS_DRAIN || cursor >= s.nblk))
				break;
			for (unsigned qi = 0; qi < d.nq; qi++)
				if (rs_round(&s, qi, mode, &cursor) < 0) {
					s.failed += !s.failed;
					goto out_report;
				}
		}
	}
out_report:;
	bool good = !s.bad && !s.failed;
	printf("verify --reconnect %s: %" PRIu64 " writes and %" PRIu64 " reads of %u bytes verified in %.1f s; "
	       "%u reconnects, %" PRIu64 " requests in flight across them all completed (inflight region: %s); "
	       "%" PRIu64 " failed, %" PRIu64 " mismatches\n",
	       good ? "ok" : "FAILED", s.writes, s.reads, VBLK, now_s() - t0, s.reconnects, s.carried,
	       inflight ? "yes" : "no", s.failed, s.bad);
	ret = good ? 0 : 1;
out:
	dev_close(&d);
	rs_free(&s);
	return ret;
}

/* ---- bench ----------------------------------------------------------------- */

/* Log-linear latency histogram: 16 sub-buckets per power of two of ns. */
#define HBUCKETS (64 * 16)
static unsigned hbucket(uint64_t ns)
{
	if (ns < 16)
		return (unsigned)ns;
	unsigned e = 63 - (unsigned)__builtin_clzll(ns);
	return (e - 3) * 16 + (unsigned)((ns >> (e - 4)) & 15);
}
static uint64_t hvalue(unsigned b)
{
	if (b < 16)
		return b;
	unsigned e = b / 16 + 3, m = b % 16;
	return (1ull << e) + ((uint64_t)m << (e - 4));
}

struct worker {
	const struct opts *o;
	struct dev *d;
	unsigned qi;
	atomic_uint_fast64_t ios, bytes;
	uint64_t hist[HBUCKETS];
	int failed;
};

static atomic_bool stop_bench;

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *bench_thread(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	struct vhu_blk_queue *q = w->d->q[w->qi];
	uint64_t span = (o->size < w->d->info.capacity * 512 ? o->size : w->d->info.capacity * 512) / o->bs;
	bool rnd = !strncmp(o->rw, "rand", 4), mixed = !strcmp(o->rw, "randrw");
	bool wr = strstr(o->rw, "write") != NULL;
	uint64_t seq = span * w->qi / w->d->nq, seed = 0x1234567ull + w->qi;
	uint64_t *t_sub = calloc(o->iodepth, sizeof(uint64_t)), *gpa = calloc(o->iodepth, sizeof(uint64_t));
	unsigned *free_k = calloc(o->iodepth, sizeof(unsigned)), nfree = 0;
	struct vhu_sg *sgs = calloc(o->iodepth, sizeof(*sgs));
	struct vhu_blk_request *reqs = calloc(o->iodepth, sizeof(*reqs));

	for (unsigned k = 0; k < o->iodepth; k++) {
		if (!vhu_fe_alloc(w->d->fe, o->bs, 4096, &gpa[k])) {
			w->failed = 1;
			return NULL;
		}
		free_k[nfree++] = k;
	}
	while (!atomic_load_explicit(&stop_bench, memory_order_relaxed)) {
		/* everything free goes to the ring in one burst */
		unsigned nreq = 0;
		uint64_t t0 = now_ns();
		while (nreq < nfree) {
			unsigned k = free_k[nfree - 1 - nreq];
			uint64_t blk = rnd ? rng_next(&seed) % span : seq++ % span;
			bool this_wr = mixed ? (rng_next(&seed) & 1) : wr;
			if (dma_map(w->d, gpa[k], o->bs, this_wr) < 0) {
				w->failed = 1;
				break;
			}
			sgs[nreq] = (struct vhu_sg){ gpa[k], (uint32_t)o->bs };
			reqs[nreq] = (struct vhu_blk_request){ this_wr ? VHU_BLK_T_OUT : VHU_BLK_T_IN,
							       blk * o->bs / 512, &sgs[nreq], 1,
							       (void *)(uintptr_t)(k + 1) };
			t_sub[k] = t0;
			nreq++;
		}
		int queued = nreq ? vhu_blk_submit_burst(q, reqs, nreq) : 0;
		for (unsigned i = queued > 0 ? (unsigned)queued : 0; i < nreq; i++)
			dma_unmap(w->d, sgs[i].addr, o->bs);   /* not queued */
		if (queued > 0)
			nfree -= (unsigned)queued;
		if (w->failed)
			break;
		vhu_blk_kick(q);
		struct vhu_blk_completion c[256];
		int n = reap(q, c, 256);
		if (n < 0) {
			w->failed = 1;
			break;
		}
		uint64_t t = now_ns();
		for (int i = 0; i < n; i++) {
			unsigned k = (unsigned)(uintptr_t)c[i].user - 1;
			if (c[i].status != VHU_BLK_S_OK || dma_unmap(w->d, gpa[k], o->bs) < 0)
				w->failed = 1;
			w->hist[hbucket(t - t_sub[k])]++;
			free_k[nfree++] = k;
		}
		atomic_fetch_add_explicit(&w->ios, (uint64_t)n, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->bytes, (uint64_t)n * o->bs, memory_order_relaxed);
	}
	/* let the requests in flight finish */
	while (vhu_blk_inflight(q)) {
		struct vhu_blk_completion c[256];
		int n = reap(q, c, 256);
		if (n < 0)
			break;
		for (int i = 0; i < n; i++)
			dma_unmap(w->d, gpa[(uintptr_t)c[i].user - 1], o->bs);
	}
	free(t_sub);
	free(gpa);
	free(free_k);
	free(sgs);
	free(reqs);
	return NULL;
}

static uint64_t percentile(const uint64_t *h, uint64_t total, double p)
{
	uint64_t want = (uint64_t)(total * p), seen = 0;
	for (unsigned b = 0; b < HBUCKETS; b++) {
		seen += h[b];
		if (seen > want)
			return hvalue(b);
	}
	return 0;
}

/* The latency distribution as a PNG, drawn by gnuplot from the histogram. */
static int plot_latency(const struct opts *o, const uint64_t *hist, uint64_t ios, double iops)
{
	char data[] = "/tmp/vhu-plot-XXXXXX";
	int fd = mkstemp(data);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f || !ios) {
		fprintf(stderr, "vhu: cannot write the plot data\n");
		return -1;
	}
	for (unsigned b = 0; b < HBUCKETS; b++)
		if (hist[b])
			fprintf(f, "%.3f %.6f\n", hvalue(b) / 1e3, 100.0 * hist[b] / ios);
	fclose(f);
	FILE *g = popen("gnuplot", "w");
	if (!g) {
		fprintf(stderr, "vhu: --plot needs gnuplot\n");
		unlink(data);
		return -1;
	}
	fprintf(g, "set terminal png size 900,500\nset output '%s'\n"
		   "set title 'vhu bench %s bs=%llu iodepth=%u: %.0f IOPS'\n"
		   "set xlabel 'latency (us)'\nset ylabel 'share of I/Os (%%)'\nset logscale x\nset grid\n"
		   "plot '%s' using 1:2 with impulses lw 3 title 'latency distribution'\n",
		o->plot, o->rw, (unsigned long long)o->bs, o->iodepth, iops, data);
	int rc = pclose(g);
	unlink(data);
	if (rc != 0) {
		fprintf(stderr, "vhu: gnuplot failed (is it installed?)\n");
		return -1;
	}
	if (!o->json)
		printf("  latency plot written to %s\n", o->plot);
	return 0;
}

static int cmd_bench(const struct opts *o)
{
	struct dev d;
	if (dev_open(o, &d, (size_t)o->queues * o->iodepth * o->bs + 4096) < 0)
		return 1;
	struct worker *w = calloc(d.nq, sizeof(*w));
	pthread_t *th = calloc(d.nq, sizeof(*th));
	atomic_store(&stop_bench, false);
	double t0 = now_s();
	for (unsigned i = 0; i < d.nq; i++) {
		w[i].o = o;
		w[i].d = &d;
		w[i].qi = i;
		pthread_create(&th[i], NULL, bench_thread, &w[i]);
	}
	uint64_t last = 0, dirty = 0;
	for (unsigned s = 1; s <= o->runtime; s++) {
		sleep(1);
		/* a migration's pass: read and clear the log */
		if (o->dirty_log)
			dirty += vhu_dirty_log_take(vhu_fe_dirty_log(d.fe), NULL);
		uint64_t ios = 0;
		for (unsigned i = 0; i < d.nq; i++)
			ios += atomic_load(&w[i].ios);
		if (!o->json)
			fprintf(stderr, "\r[%3u/%u s] %.0f IOPS, %.1f MB/s   ", s, o->runtime, (double)(ios - last),
				(double)(ios - last) * o->bs / 1e6);
		last = ios;
	}
	atomic_store(&stop_bench, true);
	for (unsigned i = 0; i < d.nq; i++)
		pthread_join(th[i], NULL);
	double t = now_s() - t0;
	if (o->dirty_log)
		dirty += vhu_dirty_log_take(vhu_fe_dirty_log(d.fe), NULL);
	if (!o->json)
		fprintf(stderr, "\n");
	uint64_t hist[HBUCKETS] = { 0 }, ios = 0, bytes = 0;
	int failed = 0;
	for (unsigned i = 0; i < d.nq; i++) {
		ios += w[i].ios;
		bytes += w[i].bytes;
		failed |= w[i].failed;
		for (unsigned b = 0; b < HBUCKETS; b++)
			hist[b] += w[i].hist[b];
	}
	double iops = ios / t, mbps = bytes / t / 1e6;
	uint64_t p50 = percentile(hist, ios, 0.5), p99 = percentile(hist, ios, 0.99),
		 p999 = percentile(hist, ios, 0.999);
	const char *ring = o->packed ? "packed" : "split";
	const char *notify = o->notify == VHU_FE_NOTIFY_POLL ? "poll" : o->notify == VHU_FE_NOTIFY_INBAND ? "inband" : o->doorbell ? "doorbell" : "eventfd";
	struct vhu_fe_queue_stats kicks = { 0 };
	for (unsigned i = 0; i < d.nq && !o->member; i++) {
		struct vhu_fe_queue_stats st;
		vhu_fe_queue_stats(vhu_fe_queue(d.fe, i), &st);
		kicks.kicks_doorbell += st.kicks_doorbell;
		kicks.kicks_eventfd += st.kicks_eventfd;
		kicks.kicks_inband += st.kicks_inband;
	}
	if (o->json) {
		printf("{\"rw\": \"%s\", \"bs\": %" PRIu64 ", \"iodepth\": %u, \"queues\": %u, \"ring\": \"%s\", "
		       "\"notify\": \"%s\", \"spin_us\": %u, \"seconds\": %.3f, \"ios\": %" PRIu64 ", \"iops\": %.0f, \"mbps\": %.2f, "
		       "\"lat_ns\": {\"p50\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"p999\": %" PRIu64 "}, "
		       "\"dirty_log\": %s, \"dirty_pages\": %" PRIu64 ", \"iommu\": \"%s\", "
		       "\"kicks\": {\"doorbell\": %" PRIu64 ", \"eventfd\": %" PRIu64 ", \"inband\": %" PRIu64 "}, \"errors\": %s}\n",
		       o->rw, o->bs, o->iodepth, d.nq, ring, notify, o->spin_us, t, ios, iops, mbps, p50, p99, p999,
		       o->dirty_log ? "true" : "false", dirty, iommu_name(o->iommu), kicks.kicks_doorbell,
		       kicks.kicks_eventfd, kicks.kicks_inband, failed ? "true" : "false");
	} else {
		printf("%s bs=%" PRIu64 " iodepth=%u queues=%u ring=%s notify=%s", o->rw, o->bs, o->iodepth, d.nq, ring,
		       notify);
		if (o->spin_us && o->notify != VHU_FE_NOTIFY_POLL)
			printf(" spin=%uus", o->spin_us);
		if (o->iommu != VHU_FE_IOMMU_OFF)
			printf(" iommu=%s", iommu_name(o->iommu));
		printf(": %" PRIu64 " I/Os in %.2f s\n", ios, t);
		printf("  IOPS %.0f   %.2f MB/s\n  latency p50 %.1f us   p99 %.1f us   p99.9 %.1f us\n", iops, mbps,
		       p50 / 1e3, p99 / 1e3, p999 / 1e3);
		if (o->dirty_log)
			printf("  dirty log on: %" PRIu64 " pages logged, taken once a second\n", dirty);
		printf("  latency histogram (us: share of I/Os)\n");
		uint64_t step = 0;
		for (unsigned b = 0; b < HBUCKETS; b += 16) {
			uint64_t n = 0;
			for (unsigned k = b; k < b + 16; k++)
				n += hist[k];
			if (!n)
				continue;
			step = hvalue(b);
			printf("  %10.1f+ %6.2f%% ", step / 1e3, 100.0 * n / ios);
			for (unsigned s = 0; s < 50 * n / ios; s++)
				putchar('#');
			putchar('\n');
		}
		if (failed)
			printf("  some requests FAILED\n");
	}
	if (o->plot && plot_latency(o, hist, ios, iops) < 0)
		failed = 1;
	dev_close(&d);
	free(w);
	free(th);
	return failed ? 1 : 0;
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: vhu probe SOCK [--json]\n"
		   "       vhu verify SOCK [--size=BYTES] [--queues=N] [--iodepth=N] [--ring=split|packed]\n"
		   "                       [--notify=eventfd|inband|poll]\n"
		   "       vhu verify SOCK --reconnect [--runtime=SECONDS] [options as above]\n"
		   "                       write and verify across back-end restarts, reconnecting each time\n"
		   "       vhu bench SOCK [--rw=read|write|randread|randwrite|randrw] [--bs=BYTES] [--iodepth=N]\n"
		   "                      [--queues=N] [--runtime=SECONDS] [--size=BYTES] [--ring=...] [--notify=...]\n"
		   "                      [--json] [--plot=FILE.png]\n"
		   "  --server          listen at SOCK and wait for the back-end to connect\n"
		   "  --queue-size=N    ring size (default 256)\n"
		   "  --spin-us=N       eventfd and inband: watch the used ring N us before sleeping (default 0)\n"
		   "  --event-idx=on|off  negotiate VIRTIO_F_EVENT_IDX (default on)\n"
		   "  --iommu=MODE      verify, bench: be the device's IOMMU (VIRTIO_F_ACCESS_PLATFORM): static\n"
		   "                    maps all memory once; dynamic maps each buffer for its request and\n"
		   "                    unmaps it after, as a guest in strict mode (default off)\n"
		   "  --dirty-log       verify, bench: the back-end logs the pages it writes, as during a live\n"
		   "                    migration (LOG_SHMFD); bench takes the log once a second\n"
		   "  --member=ID       probe, verify, bench: managed device ID of the management device at SOCK\n"
		   "       vhu guest SOCK [options]   a Linux guest under QEMU against the back-end (vhu guest --help)\n"
		   "       vhu admin SOCK caps|list|backings|create blk ...|show ID|destroy ID   (vhu admin --help)\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' }, { "server", no_argument, NULL, 'S' },
		{ "size", required_argument, NULL, 's' }, { "queues", required_argument, NULL, 'q' },
		{ "iodepth", required_argument, NULL, 'd' }, { "ring", required_argument, NULL, 'r' },
		{ "notify", required_argument, NULL, 'n' }, { "rw", required_argument, NULL, 'w' },
		{ "bs", required_argument, NULL, 'b' }, { "runtime", required_argument, NULL, 't' },
		{ "queue-size", required_argument, NULL, 'z' }, { "verbose", no_argument, NULL, 'v' },
		{ "plot", required_argument, NULL, 'P' }, { "spin-us", required_argument, NULL, 'u' },
		{ "reconnect", no_argument, NULL, 'R' }, { "event-idx", required_argument, NULL, 'E' },
		{ "dirty-log", no_argument, NULL, 'D' }, { "iommu", required_argument, NULL, 'I' },
		{ "member", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	struct opts o = { .queues = 1, .iodepth = 16, .runtime = 5, .queue_size = 256, .size = 16u << 20,
			  .bs = 4096, .rw = "randread", .notify = VHU_FE_NOTIFY_EVENTFD };
	if (argc < 3) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "guest"))
		return vhu_guest_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "admin"))
		return vhu_admin_main(argc - 1, argv + 1);
	if (strcmp(cmd, "probe") && strcmp(cmd, "verify") && strcmp(cmd, "bench"))
		return opt_refuse("vhu", cmd, NULL, "no such command (probe, verify, bench, guest, admin)");
	o.sock = argv[2];
	optind = 3;
	opterr = 0;
	int c, rc = 0;
	long v;
	bool ok = true;
	while (!rc && (c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
		switch (c) {
		case 'j': o.json = true; break;
		case 'S': o.server = true; break;
		case 'R': o.reconnect = true; break;
		case 'D': o.dirty_log = true; break;
		case 'I':
			if (!strcmp(optarg, "static"))
				o.iommu = VHU_FE_IOMMU_STATIC;
			else if (!strcmp(optarg, "dynamic"))
				o.iommu = VHU_FE_IOMMU_DYNAMIC;
			else if (strcmp(optarg, "off"))
				rc = opt_refuse("vhu", "--iommu", optarg, "takes off, static or dynamic");
			break;
		case 'E':
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				rc = opt_refuse("vhu", "--event-idx", optarg, "takes on or off");
			o.no_event_idx = !strcmp(optarg, "off");
			break;
		case 's':
			o.size = opt_size(optarg, &ok);
			if (!ok || o.size < 4096 || o.size % 4096)
				rc = opt_refuse("vhu", "--size", optarg, "takes a multiple of 4096 (k, M, G allowed)");
			break;
		case 'q': if (!(rc = opt_number("vhu", "--queues", optarg, 1, 64, &v))) o.queues = (unsigned)v; break;
		case 'd': if (!(rc = opt_number("vhu", "--iodepth", optarg, 1, 1024, &v))) o.iodepth = (unsigned)v; break;
		case 'r':
			if (strcmp(optarg, "split") && strcmp(optarg, "packed"))
				rc = opt_refuse("vhu", "--ring", optarg, "takes split or packed");
			o.packed = !strcmp(optarg, "packed");
			break;
		case 'n':
			if (!strcmp(optarg, "eventfd"))
				o.notify = VHU_FE_NOTIFY_EVENTFD;
			else if (!strcmp(optarg, "inband"))
				o.notify = VHU_FE_NOTIFY_INBAND;
			else if (!strcmp(optarg, "doorbell"))
				o.notify = VHU_FE_NOTIFY_EVENTFD, o.doorbell = true;
			else if (!strcmp(optarg, "poll"))
				o.notify = VHU_FE_NOTIFY_POLL;
			else
				rc = opt_refuse("vhu", "--notify", optarg, "takes eventfd, doorbell, inband or poll");
			break;
		case 'w': {
			static const char *const modes[] = { "read", "write", "randread", "randwrite", "randrw" };
			ok = false;
			for (unsigned i = 0; i < 5; i++)
				ok |= !strcmp(optarg, modes[i]);
			if (!ok)
				rc = opt_refuse("vhu", "--rw", optarg, "takes read, write, randread, randwrite or randrw");
			o.rw = optarg;
			break;
		}
		case 'b':
			o.bs = opt_size(optarg, &ok);
			if (!ok || !o.bs || o.bs % 512 || o.bs > (1u << 20))
				rc = opt_refuse("vhu", "--bs", optarg, "takes a multiple of 512 up to 1M");
			break;
		case 't': if (!(rc = opt_number("vhu", "--runtime", optarg, 1, 86400, &v))) o.runtime = (unsigned)v; break;
		case 'z':
			if (!(rc = opt_number("vhu", "--queue-size", optarg, 2, 32768, &v)))
				o.queue_size = (unsigned)v;
			break;
		case 'M':
			if (!(rc = opt_number("vhu", "--member", optarg, 1, LONG_MAX, &v)))
				o.member = (uint64_t)v;
			break;
		case 'v': o.verbose++; break;
		case 'P': o.plot = optarg; break;
		case 'u': if (!(rc = opt_number("vhu", "--spin-us", optarg, 0, 1000000, &v))) o.spin_us = (unsigned)v; break;
		case 'h': usage(stdout); return 0;
		default:
			rc = opt_getopt_error("vhu", argv[optind - 1], lo);
		}
	}
	if (rc)
		return rc;
	if (optind != argc)
		return opt_refuse("vhu", argv[optind], NULL, "not an option (options are --name=value)");
	if (o.iodepth > o.queue_size)
		return opt_refuse("vhu", "--iodepth", NULL, "cannot be more than --queue-size");
	/* a back-end that comes back learns the static window again by its
	 * misses; per-request mappings are not carried across a restart here */
	if (o.reconnect && o.iommu == VHU_FE_IOMMU_DYNAMIC)
		return opt_refuse("vhu", "--iommu", "dynamic", "does not combine with --reconnect (static does)");
	if (!strcmp(cmd, "probe"))
		return cmd_probe(&o);
	if (o.member && o.reconnect)
		return opt_refuse("vhu", "--reconnect", NULL, "does not combine with --member");
	if (!strcmp(cmd, "verify"))
		return o.reconnect ? cmd_verify_reconnect(&o) : cmd_verify(&o);
	return cmd_bench(&o);
}
