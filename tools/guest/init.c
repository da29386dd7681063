/* SPDX-License-Identifier: MIT */
/*
 * vhu-guest-init: PID 1 of the throw-away guest that `vhu guest` boots.
 * Statically linked, it needs nothing but the kernel: it mounts the pseudo
 * file systems, loads the modules the host listed in /etc/vhu-modules,
 * waits for the device under test, runs one workload and prints one line
 *     VHU-GUEST-RESULT ok|fail key=value ...
 * on the console, then powers the guest off. Its parameters come from the
 * kernel command line (vhu.KEY=VALUE), so the cached initramfs serves any run.
 *
 * Workloads (vhu.workload=):
 *   verify  the self-describing pattern (pattern.h) written with O_DIRECT,
 *           flushed with fsync, read back with O_DIRECT and compared; one
 *           worker per queue, each pinned to its own vCPU, so every queue
 *           carries I/O; with vhu.rounds=N > 1, N rounds of it (a new seed
 *           each) whose reads land in buffers kept across rounds and checked
 *           again before the next round reads: what a live migration must
 *           carry (see keep_rounds);
 *   fio     /usr/bin/fio (copied in with its libraries by the host);
 *   run     /bin/sh /vhu/run.sh with VHU_DEV set to the device node;
 *   none    only probe the device and report what was negotiated.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

#define TAIL_BYTES (1u << 20)	/* also written at the end of the disk: the last sectors must work too */
#define CHUNK (256u << 10)	/* one O_DIRECT request: larger than a ring's worth of 4 KiB segments */
#define MAX_WORKERS 16

static char result[4096];

static void add(const char *fmt, ...)
{
	size_t n = strlen(result);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(result + n, sizeof(result) - n, fmt, ap);
	va_end(ap);
}

static void finish(bool ok)
{
	double up = 0;
	FILE *f = fopen("/proc/uptime", "r");
	if (f) {
		if (fscanf(f, "%lf", &up) != 1)
			up = 0;
		fclose(f);
	}
	printf("\nVHU-GUEST-RESULT %s%s guest_uptime_s=%.2f\n", ok ? "ok" : "fail", result, up);
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static void fail(const char *stage, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	for (char *p = why; *p; p++)	/* one token: the result line is space-separated */
		if (*p == ' ')
			*p = '_';
	add(" stage=%s err=%s", stage, why);
	finish(false);
}

static const char *param(const char *key, const char *dflt)
{
	static char cmdline[4096];
	static char value[256];
	if (!cmdline[0]) {
		int fd = open("/proc/cmdline", O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, cmdline, sizeof(cmdline) - 1) : -1;
		cmdline[n > 0 ? n : 0] = 0;
		if (fd >= 0)
			close(fd);
	}
	char pat[64];
	snprintf(pat, sizeof(pat), "vhu.%s=", key);
	for (const char *p = cmdline; (p = strstr(p, pat)); p++) {
		if (p != cmdline && p[-1] != ' ')
			continue;
		p += strlen(pat);
		size_t n = strcspn(p, " \n");
		if (n >= sizeof(value))
			n = sizeof(value) - 1;
		memcpy(value, p, n);
		value[n] = 0;
		return value;
	}
	return dflt;
}

static uint64_t param_u64(const char *key, uint64_t dflt)
{
	const char *v = param(key, NULL);
	return v ? strtoull(v, NULL, 0) : dflt;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return true;
}

/* ---- modules ------------------------------------------------------------- */

static void load_modules(void)
{
	FILE *f = fopen("/etc/vhu-modules", "r");
	char name[256], path[300];
	if (!f)
		return;
	while (fgets(name, sizeof(name), f)) {
		name[strcspn(name, "\n")] = 0;
		if (!name[0])
			continue;
		snprintf(path, sizeof(path), "/lib/modules/%s", name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fail("modules", "open_%s:_%s", name, strerror(errno));
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			fail("modules", "load_%s:_%s", name, strerror(errno));
		close(fd);
	}
	fclose(f);
}

/* ---- the block device ---------------------------------------------------- */

struct blk {
	char node[32];
	uint64_t bytes;
	unsigned queues;
};

static void wait_block(struct blk *b)
{
	const char *name = param("disk", "vda");
	char sys[128];
	snprintf(b->node, sizeof(b->node), "/dev/%s", name);
	double deadline = now() + 20;
	struct stat st;
	while (stat(b->node, &st) < 0 || !S_ISBLK(st.st_mode)) {
		if (now() > deadline)
			fail("probe", "no_%s_after_20_s", b->node);
		usleep(20000);
	}
	char v[128], feat[128];
	snprintf(sys, sizeof(sys), "/sys/block/%s/size", name);
	b->bytes = read_file(sys, v, sizeof(v)) ? strtoull(v, NULL, 10) * 512 : 0;
	snprintf(sys, sizeof(sys), "/sys/block/%s/mq", name);
	DIR *d = opendir(sys);
	for (struct dirent *e; d && (e = readdir(d));)
		b->queues += e->d_name[0] != '.';
	if (d)
		closedir(d);
	snprintf(sys, sizeof(sys), "/sys/block/%s/device/features", name);
	if (!read_file(sys, feat, sizeof(feat)))
		feat[0] = 0;
	/* The virtio core's view: one character per feature bit, bit 0 first. */
	uint64_t bits = 0;
	for (unsigned i = 0; i < 64 && feat[i]; i++)
		bits |= (uint64_t)(feat[i] == '1') << i;
	snprintf(sys, sizeof(sys), "/sys/block/%s/ro", name);
	bool ro = read_file(sys, v, sizeof(v)) && v[0] == '1';
	/* behind an IOMMU: the virtio device's PCI parent is in an IOMMU group */
	snprintf(sys, sizeof(sys), "/sys/block/%s/device/../iommu_group", name);
	bool iommu = access(sys, F_OK) == 0;
	add(" device=blk disk_bytes=%" PRIu64 " queues=%u packed=%u event_idx=%u indirect=%u ro=%u features=0x%016" PRIx64
	    " access_platform=%u iommu=%u",
	    b->bytes, b->queues, (unsigned)(bits >> 34 & 1), (unsigned)(bits >> 29 & 1),
	    (unsigned)(bits >> 28 & 1), ro, bits, (unsigned)(bits >> 33 & 1), iommu);
}

/* ---- verify -------------------------------------------------------------- */

struct span {
	uint64_t off, len;
};

/*
 * Worker `w` of `n` does every n-th chunk of each span, pinned to vCPU w,
 * so that with one queue per vCPU each queue carries its share. Returns 0,
 * or writes a one-token reason into `why` (the parent reads it from a pipe).
 */
static int worker(const char *node, bool writing, const struct span *spans, unsigned nspans, unsigned w,
		  unsigned n, uint32_t seed, char *why, size_t why_len)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(w, &set);
	sched_setaffinity(0, sizeof(set), &set);	/* best effort: fewer vCPUs than workers is fine */
	int fd = open(node, (writing ? O_WRONLY : O_RDONLY) | O_DIRECT);
	if (fd < 0) {
		snprintf(why, why_len, "open:%s", strerror(errno));
		return -1;
	}
	uint8_t *buf = aligned_alloc(4096, CHUNK);
	int rc = 0;
	uint64_t k = 0;
	for (unsigned s = 0; s < nspans && !rc; s++) {
		for (uint64_t o = 0; o < spans[s].len && !rc; o += CHUNK, k++) {
			if (k % n != w)
				continue;
			uint64_t off = spans[s].off + o, len = spans[s].len - o < CHUNK ? spans[s].len - o : CHUNK;
			uint64_t lba = off / VHU_PATTERN_SECTOR;
			ssize_t r;
			if (writing) {
				vhu_pattern_fill(buf, len, lba, seed);
				r = pwrite(fd, buf, len, (off_t)off);
			} else {
				memset(buf, 0, len);
				r = pread(fd, buf, len, (off_t)off);
			}
			if (r != (ssize_t)len) {
				snprintf(why, why_len, "%s_at_%" PRIu64 ":%s", writing ? "write" : "read", off,
					 r < 0 ? strerror(errno) : "short");
				rc = -1;
				break;
			}
			uint64_t tag_lba;
			uint32_t tag_seed;
			uint64_t bad = writing ? len : vhu_pattern_check(buf, len, lba, seed, &tag_lba, &tag_seed);
			if (bad < len) {
				uint64_t at = off + bad, sector = at / VHU_PATTERN_SECTOR;
				char origin[64];
				if (tag_lba == UINT64_MAX)
					snprintf(origin, sizeof(origin), "untagged");
				else if (tag_lba == sector && tag_seed == seed)
					snprintf(origin, sizeof(origin), "right_tag_wrong_data");
				else
					snprintf(origin, sizeof(origin), "sector_of_lba_%" PRIu64 "_run_%u", tag_lba, tag_seed);
				snprintf(why, why_len, "mismatch_at_byte_%" PRIu64 "_(lba_%" PRIu64 "):%s", at, sector,
					 origin);
				rc = -1;
			}
		}
	}
	/* fsync on the block device: the driver sends VIRTIO_BLK_T_FLUSH */
	if (!rc && writing && fsync(fd) < 0) {
		snprintf(why, why_len, "fsync:%s", strerror(errno));
		rc = -1;
	}
	free(buf);
	close(fd);
	return rc;
}

/*
 * Rounds for a migration (vhu.rounds): worker w of n writes its chunks with
 * the round's seed, reads them back with O_DIRECT into its own buffers kept
 * for the whole run, chunk k into slot (k + round) % slots, and checks each
 * as it lands; before the next round reads, and at the end, it checks every
 * slot again. Only the device writes those buffers after the first touch, so
 * a page the device wrote during a migration and its log did not mark
 * arrives on the destination holding another chunk's (or round's) data, and
 * the second check names it.
 */
struct kept {
	uint64_t off, len, lba;
	uint32_t seed;
};

static int check_kept(const uint8_t *slots, const struct kept *k, uint64_t nslots, char *why, size_t why_len)
{
	for (uint64_t i = 0; i < nslots; i++) {
		uint64_t tag_lba;
		uint32_t tag_seed;
		if (!k[i].len)
			continue;
		uint64_t bad = vhu_pattern_check(slots + i * CHUNK, k[i].len, k[i].lba, k[i].seed, &tag_lba, &tag_seed);
		if (bad < k[i].len) {
			snprintf(why, why_len, "kept_buffer_changed_at_byte_%" PRIu64 "_of_chunk_at_%" PRIu64
				 ":holds_lba_%" PRIu64 "_run_%u", bad, k[i].off,
				 tag_lba == UINT64_MAX ? 0 : tag_lba, tag_lba == UINT64_MAX ? 0 : tag_seed);
			return -1;
		}
	}
	return 0;
}

static int keep_rounds(const char *node, const struct span *spans, unsigned nspans, unsigned w, unsigned n,
		       uint32_t seed, unsigned rounds, char *why, size_t why_len)
{
	uint64_t nslots = 0, k = 0;
	for (unsigned s = 0; s < nspans; s++)
		for (uint64_t o = 0; o < spans[s].len; o += CHUNK, k++)
			nslots += k % n == w;
	int wfd = open(node, O_WRONLY | O_DIRECT), rfd = open(node, O_RDONLY | O_DIRECT);
	uint8_t *slots = aligned_alloc(4096, (nslots ? nslots : 1) * CHUNK), *wbuf = aligned_alloc(4096, CHUNK);
	struct kept *kept = calloc(nslots ? nslots : 1, sizeof(*kept));
	if (wfd < 0 || rfd < 0 || !slots || !wbuf || !kept) {
		snprintf(why, why_len, "setup:%s", strerror(errno));
		return -1;
	}
	memset(slots, 0, nslots * CHUNK);	/* faulted in now, before any migration starts */
	int rc = 0;
	for (unsigned r = 0; r < rounds && !rc; r++) {
		uint32_t rs = (seed + r) & 0x7fffffff;
		for (int pass = 0; pass < 2 && !rc; pass++) {
			if (pass == 1 && (rc = check_kept(slots, kept, nslots, why, why_len)) < 0)
				break;
			uint64_t mine = 0;
			k = 0;
			for (unsigned s = 0; s < nspans && !rc; s++)
				for (uint64_t o = 0; o < spans[s].len && !rc; o += CHUNK, k++) {
					if (k % n != w)
						continue;
					uint64_t off = spans[s].off + o, lba = off / VHU_PATTERN_SECTOR;
					uint64_t len = spans[s].len - o < CHUNK ? spans[s].len - o : CHUNK;
					uint64_t slot = (mine++ + r) % nslots;
					uint8_t *buf = pass ? slots + slot * CHUNK : wbuf;
					if (!pass)
						vhu_pattern_fill(wbuf, len, lba, rs);
					ssize_t got = pass ? pread(rfd, buf, len, (off_t)off) : pwrite(wfd, buf, len, (off_t)off);
					if (got != (ssize_t)len) {
						snprintf(why, why_len, "round_%u_%s_at_%" PRIu64 ":%s", r, pass ? "read" : "write",
							 off, got < 0 ? strerror(errno) : "short");
						rc = -1;
						break;
					}
					if (!pass)
						continue;
					kept[slot] = (struct kept){ off, len, lba, rs };
					if ((rc = check_kept(slots + slot * CHUNK, &kept[slot], 1, why, why_len)) < 0)
						break;
				}
			if (!pass && !rc && fsync(wfd) < 0) {
				snprintf(why, why_len, "round_%u_fsync:%s", r, strerror(errno));
				rc = -1;
			}
		}
		if (w == 0 && !rc)
			printf("VHU-ROUND %u\n", r + 1);
	}
	if (!rc)
		rc = check_kept(slots, kept, nslots, why, why_len);
	free(kept);
	free(wbuf);
	free(slots);
	close(wfd);
	close(rfd);
	return rc;
}

/* Run `n` workers in child processes; on failure `why` holds the first reason. */
static bool run_workers(const char *node, bool writing, const struct span *spans, unsigned nspans, unsigned n,
			uint32_t seed, unsigned rounds, char *why, size_t why_len)
{
	int pipes[MAX_WORKERS][2];
	pid_t pids[MAX_WORKERS];
	for (unsigned w = 0; w < n; w++) {
		if (pipe(pipes[w]) < 0)
			fail("verify", "pipe:%s", strerror(errno));
		pids[w] = fork();
		if (pids[w] == 0) {
			char msg[256] = "";
			int rc = rounds > 1 ? keep_rounds(node, spans, nspans, w, n, seed, rounds, msg, sizeof(msg))
					    : worker(node, writing, spans, nspans, w, n, seed, msg, sizeof(msg));
			if (write(pipes[w][1], msg, strlen(msg)) < 0)
				_exit(2);
			_exit(rc ? 1 : 0);
		}
		close(pipes[w][1]);
	}
	bool ok = true;
	for (unsigned w = 0; w < n; w++) {
		char msg[256];
		ssize_t m = read(pipes[w][0], msg, sizeof(msg) - 1);
		msg[m > 0 ? m : 0] = 0;
		close(pipes[w][0]);
		int st;
		waitpid(pids[w], &st, 0);
		if ((!WIFEXITED(st) || WEXITSTATUS(st)) && ok) {
			ok = false;
			snprintf(why, why_len, "%s", msg[0] ? msg : "worker_died");
		}
	}
	return ok;
}

static void workload_verify(const struct blk *b)
{
	uint64_t size = param_u64("size", 8u << 20);
	uint32_t seed = (uint32_t)param_u64("seed", 1);
	unsigned rounds = (unsigned)param_u64("rounds", 1);
	if (b->bytes < size + TAIL_BYTES)
		fail("verify", "disk_of_%" PRIu64 "_bytes_needs_%" PRIu64, b->bytes, size + TAIL_BYTES);
	/* the head, and the last MiB of the disk (4 KiB-aligned) */
	struct span spans[2] = { { 0, size }, { (b->bytes - TAIL_BYTES) & ~4095ull, TAIL_BYTES } };
	unsigned n = b->queues ? b->queues : 1;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus > 0 && n > (unsigned)cpus)
		n = (unsigned)cpus;
	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	char why[256];
	double mib = (size + TAIL_BYTES) / 1048576.0;
	if (rounds > 1) {
		double t0 = now();
		printf("VHU-WORKLOAD-START\n");
		if (!run_workers(b->node, false, spans, 2, n, seed, rounds, why, sizeof(why)))
			fail("rounds", "%s", why);
		/* the image holds the last round's data */
		add(" workload=verify seed=%u size=%" PRIu64 " tail_off=%" PRIu64 " workers=%u rounds=%u MiBps=%.1f",
		    (seed + rounds - 1) & 0x7fffffff, size, spans[1].off, n, rounds, 2 * mib * rounds / (now() - t0));
		return;
	}
	double t0 = now();
	if (!run_workers(b->node, true, spans, 2, n, seed, 1, why, sizeof(why)))
		fail("write", "%s", why);
	double t1 = now();
	int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (dc >= 0) {
		if (write(dc, "3", 1) < 0)
			(void)0;	/* O_DIRECT reads bypass the cache anyway */
		close(dc);
	}
	if (!run_workers(b->node, false, spans, 2, n, seed, 1, why, sizeof(why)))
		fail("read", "%s", why);
	double t2 = now();
	add(" workload=verify seed=%u size=%" PRIu64 " tail_off=%" PRIu64 " workers=%u write_MiBps=%.1f read_MiBps=%.1f",
	    seed, size, spans[1].off, n, mib / (t1 - t0), mib / (t2 - t1));
}

/* ---- fio and scripts ----------------------------------------------------- */

static int spawn(char *const argv[], int out_fd)
{
	pid_t p = fork();
	if (p == 0) {
		if (out_fd >= 0) {
			dup2(out_fd, 1);
			close(out_fd);
		}
		execve(argv[0], argv, environ);
		fprintf(stderr, "vhu-guest-init: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int st = 0;
	if (out_fd >= 0)
		close(out_fd);
	if (p < 0 || waitpid(p, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Terse version 3: field 5 errors, 8/49 read/write IOPS, 40/81 total latency mean (us). */
static void parse_fio(const char *out)
{
	char copy[8192];
	snprintf(copy, sizeof(copy), "%s", out);
	const char *f[140] = { 0 };
	unsigned n = 1;
	for (char *p = copy, *s; n < 140 && (s = strsep(&p, ";"));)
		f[n++] = s;
	if (n < 90 || strcmp(f[1], "3"))
		fail("fio", "no_terse_output");
	if (strtol(f[5], NULL, 10))
		fail("fio", "fio_error_%s", f[5]);
	/* clat percentiles are "P%=usec" in fields 18-37 (read) and 59-78 (write) */
	double p50 = 0, p99 = 0;
	for (unsigned i = 18; i <= 37; i++) {
		if (!strncmp(f[i], "50.000000%=", 11))
			p50 = atof(f[i] + 11);
		if (!strncmp(f[i], "99.000000%=", 11))
			p99 = atof(f[i] + 11);
	}
	add(" workload=fio read_iops=%s write_iops=%s read_lat_us=%s write_lat_us=%s read_clat_p50_us=%.0f "
	    "read_clat_p99_us=%.0f",
	    f[8], f[49], f[40], f[81], p50, p99);
}

static void workload_fio(const struct blk *b)
{
	char fn[64], rw[48], bs[48], qd[48], rt[48], jobs[48];
	snprintf(fn, sizeof(fn), "--filename=%s", b->node);
	snprintf(rw, sizeof(rw), "--rw=%s", param("fio_rw", "randrw"));
	snprintf(bs, sizeof(bs), "--bs=%s", param("fio_bs", "4k"));
	snprintf(qd, sizeof(qd), "--iodepth=%s", param("fio_iodepth", "32"));
	snprintf(rt, sizeof(rt), "--runtime=%s", param("fio_runtime", "5"));
	snprintf(jobs, sizeof(jobs), "--numjobs=%u", b->queues ? b->queues : 1);
	char *argv[] = { "/usr/bin/fio", "--name=vhu", fn, rw, bs, qd, rt, jobs, "--time_based", "--direct=1",
			 "--ioengine=libaio", "--group_reporting", "--output-format=terse", "--terse-version=3", NULL };
	char tmp[] = "/tmp/fio.XXXXXX";
	int fd = mkstemp(tmp);
	if (fd < 0)
		fail("fio", "mkstemp:%s", strerror(errno));
	int rc = spawn(argv, dup(fd));
	char out[8192];
	ssize_t m = pread(fd, out, sizeof(out) - 1, 0);
	out[m > 0 ? m : 0] = 0;
	close(fd);
	if (rc)
		fail("fio", "exit_%d", rc);
	parse_fio(out);
}

static void workload_run(const struct blk *b)
{
	setenv("VHU_DEV", b->node, 1);
	char *argv[] = { "/bin/sh", "/vhu/run.sh", NULL };
	int rc = spawn(argv, -1);
	add(" workload=run script_rc=%d", rc);
	if (rc)
		fail("run", "script_exit_%d", rc);
}

int main(void)
{
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("tmpfs", "/tmp", "tmpfs", 0, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	setenv("PATH", "/bin:/usr/bin", 1);
	char ld[4096];
	if (read_file("/etc/vhu-ld-path", ld, sizeof(ld)) && ld[0])	/* fio's libraries */
		setenv("LD_LIBRARY_PATH", ld, 1);
	printf("VHU-GUEST-INIT\n");
	struct utsname u;
	if (uname(&u) == 0)
		add(" kernel=%s", u.release);
	load_modules();
	/* one device kind today; the host's device table names it */
	const char *dev = param("dev", "blk");
	if (strcmp(dev, "blk"))
		fail("init", "unknown_device_%s", dev);
	struct blk b = { 0 };
	wait_block(&b);
	const char *w = param("workload", "verify");
	if (!strcmp(w, "verify"))
		workload_verify(&b);
	else if (!strcmp(w, "fio"))
		workload_fio(&b);
	else if (!strcmp(w, "run"))
		workload_run(&b);
	else if (strcmp(w, "none"))
		fail("init", "unknown_workload_%s", w);
	finish(true);
}
