/* SPDX-License-Identifier: MIT */
/*
 * Booting the guest: QEMU's command line (or a libvirt domain), the bounded
 * wait for it, and the report. Only the processes started here are ever
 * signalled, and the run's temporary folder is removed on every path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

extern char **environ;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

struct argv {
	char *v[128];
	unsigned n;
};

static void arg(struct argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(struct argv *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (a->n < 127 && vasprintf(&a->v[a->n], fmt, ap) >= 0)
		a->n++;
	va_end(ap);
	a->v[a->n] = NULL;
}

static void argv_free(struct argv *a)
{
	for (unsigned i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

/* QEMU's option syntax: a ',' inside a value is written ',,'. */
static const char *qemu_escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;
	for (; *s && o + 2 < len; s++) {
		if (*s == ',')
			buf[o++] = ',';
		buf[o++] = *s;
	}
	buf[o] = 0;
	return buf;
}

/* The host's TSC rate in kHz: the kernel's own figure where it has one,
 * else the "cpu MHz" of /proc/cpuinfo; 0 if neither is there. */
static unsigned host_tsc_khz(void)
{
	unsigned khz = 0;
	FILE *f = fopen("/sys/devices/system/cpu/cpu0/tsc_freq_khz", "r");
	if (f) {
		if (fscanf(f, "%u", &khz) != 1)
			khz = 0;
		fclose(f);
	}
	if (khz || !(f = fopen("/proc/cpuinfo", "r")))
		return khz;
	char line[256];
	double mhz = 0;
	while (!mhz && fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) != 1)
			mhz = 0;
	fclose(f);
	return (unsigned)(mhz * 1000);
}

static void kernel_cmdline(const struct guest_opts *o, uint32_t seed, char *out, size_t len)
{
	int n = snprintf(out, len, "console=ttyS0 panic=-1 loglevel=4 edd=off vhu.dev=%s vhu.workload=%s vhu.seed=%u "
			 "vhu.size=%" PRIu64 " vhu.rounds=%u", o->dev->name, o->workload, seed, o->size, o->rounds);
	if (o->iommu && n >= 0 && (size_t)n < len)
		n += snprintf(out + n, len - (size_t)n, " intel_iommu=on iommu.strict=1");
	/* microvm has no PIT or HPET for the kernel to calibrate its TSC
	 * against: under TCG 4 boots in 5 hung there; told the host's rate,
	 * 12 of 12 booted */
	unsigned khz = o->mmio ? host_tsc_khz() : 0;
	if (khz && n >= 0 && (size_t)n < len)
		n += snprintf(out + n, len - (size_t)n, " tsc_early_khz=%u", khz);
	if (!strcmp(o->workload, "fio"))
		snprintf(out + n, len - (size_t)n, " vhu.fio_rw=%s vhu.fio_bs=%" PRIu64 " vhu.fio_iodepth=%u vhu.fio_runtime=%u",
			 o->rw, o->bs, o->iodepth, o->runtime);
}

static void device_props(const struct guest_opts *o, char *out, size_t len)
{
	const struct guest_device *d = o->dev;
	int n = snprintf(out, len, "%s,chardev=vhu0", o->mmio ? d->qemu_device_mmio : d->qemu_device);
#define PROP(name, fmt, ...) \
	if ((name) && n >= 0 && (size_t)n < len) \
		n += snprintf(out + n, len - (size_t)n, ",%s=" fmt, name, __VA_ARGS__)
	if (o->packed)
		PROP(d->packed, "%s", "on");
	if (o->queues > 1)
		PROP(d->queues, "%u", o->queues);
	if (o->event_idx >= 0)
		PROP(d->event_idx, "%s", o->event_idx ? "on" : "off");
	if (o->indirect >= 0)
		PROP(d->indirect, "%s", o->indirect ? "on" : "off");
	if (o->queue_size)
		PROP(d->queue_size, "%u", o->queue_size);
	if (o->iommu && n >= 0 && (size_t)n < len)
		n += snprintf(out + n, len - (size_t)n, ",iommu_platform=on,ats=on,disable-legacy=on");
#undef PROP
	for (unsigned i = 0; i < o->ndevopts && n >= 0 && (size_t)n < len; i++)
		n += snprintf(out + n, len - (size_t)n, ",%s", o->devopts[i]);
}

/*
 * A QEMU unpacked from a package into a folder (dpkg -x: ROOT/usr/bin/qemu-system-*)
 * uses that tree's firmware and modules, not the system's, which belong to
 * another version: -L for ROOT/usr/share/qemu and seabios, QEMU_MODULE_DIR.
 */
static void qemu_tree(const struct guest_opts *o, struct argv *a)
{
	const char *bin = strstr(o->qemu, "/usr/bin/");
	if (!bin || bin == o->qemu)
		return;
	int root = (int)(bin - o->qemu);
	static const char *const data[] = { "%.*s/usr/share/qemu", "%.*s/usr/share/seabios" };
	for (unsigned i = 0; i < 2; i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), data[i], root, o->qemu);
		if (is_dir(p)) {
			arg(a, "-L");
			arg(a, "%s", p);
		}
	}
	char mods[PATH_MAX];
	snprintf(mods, sizeof(mods), "%.*s/usr/lib/x86_64-linux-gnu/qemu", root, o->qemu);
	if (is_dir(mods))
		setenv("QEMU_MODULE_DIR", mods, 1);
}

/* QEMU 10.0's default microvm firmware finds no ACPI tables here, so the
 * guest finds no device: an unpacked tree's own qboot does (QEMU 7.2's
 * default works). */
static void microvm_firmware(const struct guest_opts *o, struct argv *a)
{
	const char *bin = strstr(o->qemu, "/usr/bin/");
	if (!bin || bin == o->qemu)
		return;
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%.*s/usr/share/qemu/qboot.rom", (int)(bin - o->qemu), o->qemu);
	if (access(p, R_OK) == 0) {
		arg(a, "-bios");
		arg(a, "%s", p);
	}
}

/* One QEMU process: its back-end's socket, and for a migration its monitor
 * and (destination) where the incoming state arrives. */
struct side {
	const char *sock, *qmp, *incoming;
};

static void qemu_argv(const struct guest_opts *o, const struct side *sd, const char *initrd, const char *cmdline,
		      struct argv *a)
{
	char esc[PATH_MAX * 2], dev[2048];
	arg(a, "%s", o->qemu);
	qemu_tree(o, a);
	arg(a, "-accel");
	arg(a, "%s", o->kvm ? "kvm" : "tcg");
	arg(a, "-smp");
	arg(a, "%u", o->queues);
	arg(a, "-m");
	arg(a, "%uM", o->mem_mib);
	/* the back-end maps guest memory, so it must be a shareable fd */
	arg(a, "-object");
	arg(a, "memory-backend-memfd,id=mem,size=%uM,share=on", o->mem_mib);
	arg(a, "-machine");
	/* a vIOMMU: Intel's on q35, interrupt remapping needing the split
	 * irqchip; virtio-mmio: microvm, its devices found through ACPI */
	arg(a, "%s,memory-backend=mem", o->iommu ? "q35,kernel-irqchip=split" : o->mmio ? "microvm" : "pc");
	if (o->mmio) {
		/* QEMU's virtio-mmio is legacy unless told: no packed ring then */
		arg(a, "-global");
		arg(a, "virtio-mmio.force-legacy=false");
		microvm_firmware(o, a);
	}
	static const char *const fixed[] = { "-nodefaults", "-nographic", "-no-user-config", "-serial", "stdio",
					     "-monitor", "none", "-no-reboot" };
	for (unsigned i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		arg(a, "%s", fixed[i]);
	arg(a, "-kernel");
	arg(a, "%s", o->k.boot);
	arg(a, "-initrd");
	arg(a, "%s", initrd);
	arg(a, "-append");
	arg(a, "%s", cmdline);
	arg(a, "-chardev");
	if (o->reconnect)
		arg(a, "socket,id=vhu0,path=%s,reconnect=%u", qemu_escape(sd->sock, esc, sizeof(esc)), o->reconnect);
	else
		arg(a, "socket,id=vhu0,path=%s", qemu_escape(sd->sock, esc, sizeof(esc)));
	if (sd->qmp) {
		arg(a, "-qmp");
		arg(a, "unix:%s,server=on,wait=off", qemu_escape(sd->qmp, esc, sizeof(esc)));
	}
	if (sd->incoming) {
		arg(a, "-incoming");
		arg(a, "%s", sd->incoming);
	}
	if (o->iommu) {
		arg(a, "-device");
		arg(a, "intel-iommu,intremap=on,device-iotlb=on");
	}
	device_props(o, dev, sizeof(dev));
	arg(a, "-device");
	arg(a, "%s", dev);
	for (unsigned i = 0; i < o->nqemu_args; i++)
		arg(a, "%s", o->qemu_args[i]);
}

/* ---- the run's temporary folder ------------------------------------------ */

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));) {
		char p[PATH_MAX + 256];
		if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static int spawn_to(char *const argv[], const char *out, const char *err, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

static char *slurp(const char *path)
{
	uint8_t *d;
	size_t n;
	return read_whole(path, &d, &n) < 0 ? strdup("") : (char *)d;
}

static void print_tail(const char *label, const char *text, unsigned lines)
{
	const char *p = text + strlen(text);
	unsigned seen = 0;
	while (p > text && seen <= lines)
		if (*--p == '\n')
			seen++;
	if (!*text)
		return;
	fprintf(stderr, "--- %s (last %u lines) ---\n", label, lines);
	for (; *p; p++)
		if (*p != '\r')
			fputc(*p, stderr);
	if (text[strlen(text) - 1] != '\n')
		fputc('\n', stderr);
}

/* Copy new console output to stderr (-v); `at` is how much was copied. */
static void follow(const char *path, off_t *at)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[4096];
	ssize_t n;
	while (fd >= 0 && (n = pread(fd, buf, sizeof(buf), *at)) > 0) {
		fwrite(buf, 1, (size_t)n, stderr);
		*at += n;
	}
	if (fd >= 0)
		close(fd);
}

static bool file_has(const char *path, const char *needle)
{
	char *s = slurp(path);
	bool has = strstr(s, needle) != NULL;
	free(s);
	return has;
}

/* ---- KVM that cannot run the guest --------------------------------------- */

/*
 * A KVM boot whose init does not start within this many seconds is taken
 * for a KVM that cannot run this guest (seen on nested hosts: the vCPU test
 * passes, the kernel then hangs), remembered until the host reboots, and
 * the run starts again under TCG.
 */
#define KVM_INIT_WITHIN 15

static void kvm_marker(const struct guest_opts *o, char *path, size_t len)
{
	char id[64] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (f) {
		if (!fgets(id, sizeof(id), f))
			id[0] = 0;
		fclose(f);
	}
	id[strcspn(id, "\n")] = 0;
	snprintf(path, len, "%s/kvm-hangs-%s", o->cache, id);
}

bool guest_kvm_known_broken(const struct guest_opts *o)
{
	char p[PATH_MAX + 96];
	kvm_marker(o, p, sizeof(p));
	return access(p, F_OK) == 0;
}

/* Whether a run on KVM that `vhu guest` chose itself has stalled: its init
 * (init_s, -1 until the console showed it) not started KVM_INIT_WITHIN
 * seconds after t0. */
static bool kvm_stalled(const struct guest_opts *o, double init_s, double t0)
{
	return o->kvm && o->kvm_auto && init_s < 0 && guest_now() > t0 + KVM_INIT_WITHIN;
}

/* KVM stalled a guest: remembered for this host boot, and the run goes on
 * under TCG from a new start time. */
static void kvm_give_up(struct guest_opts *o, double *t0)
{
	char p[PATH_MAX + 96];
	kvm_marker(o, p, sizeof(p));
	write_whole(p, "", 0);
	guest_err("the guest did not start under KVM within %d s; again under TCG (KVM is not tried again "
		  "until this host reboots: %s)", KVM_INIT_WITHIN, p);
	o->kvm = false;
	*t0 = guest_now();
}

/*
 * Wait for `pid` within the deadline; on timeout or a signal, TERM then KILL
 * it. With `watch_kvm`, a guest that KVM stalled (kvm_stalled) is stopped
 * too and `*stalled` set.
 */
static int wait_qemu(const struct guest_opts *o, pid_t pid, const char *console, double t0, bool watch_kvm,
		     double *init_s, bool *timed_out, bool *stalled)
{
	off_t shown = 0;
	int st = 0;
	double deadline = t0 + o->timeout, killed = 0;
	*init_s = -1;
	*timed_out = *stalled = false;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			break;
		if (o->verbose)
			follow(console, &shown);
		if (*init_s < 0 && file_has(console, "VHU-GUEST-INIT"))
			*init_s = guest_now() - t0;
		double t = guest_now();
		if (!killed && watch_kvm && kvm_stalled(o, *init_s, t0)) {
			*stalled = true;
			kill(pid, SIGTERM);
			killed = t;
		}
		if (!killed && (t > deadline || interrupted)) {
			*timed_out = !interrupted;
			kill(pid, SIGTERM);
			killed = t;
		} else if (killed && t > killed + 3) {
			kill(pid, SIGKILL);
		}
		usleep(20000);
	}
	if (o->verbose)
		follow(console, &shown);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- libvirt ------------------------------------------------------------- */

/* libvirt wants the emulator as an absolute path: search PATH as exec would. */
static void absolute_program(const char *prog, char *out, size_t len)
{
	const char *path = getenv("PATH");
	snprintf(out, len, "%s", prog);
	if (strchr(prog, '/'))
		return;
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", path ? path : "/usr/bin:/bin");
	for (char *s = copy, *dir; (dir = strsep(&s, ":"));) {
		char cand[PATH_MAX];
		if (snprintf(cand, sizeof(cand), "%s/%s", *dir ? dir : ".", prog) < (int)sizeof(cand) &&
		    access(cand, X_OK) == 0) {
			snprintf(out, len, "%s", cand);
			return;
		}
	}
}

static int libvirt_domain_xml(const struct guest_opts *o, const char *name, const char *kernel, const char *initrd,
			      const char *cmdline, const char *console, const char *xml)
{
	FILE *f = fopen(xml, "w");
	if (!f)
		return -1;
	fprintf(f, "<domain type='%s'>\n  <name>%s</name>\n  <memory unit='MiB'>%u</memory>\n  <vcpu>%u</vcpu>\n",
		o->kvm ? "kvm" : "qemu", name, o->mem_mib, o->queues);
	/* vhost-user needs guest memory the back-end can map */
	fprintf(f, "  <memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>\n  </memoryBacking>\n");
	fprintf(f, "  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n    <kernel>%s</kernel>\n"
		   "    <initrd>%s</initrd>\n    <cmdline>%s</cmdline>\n  </os>\n", kernel, initrd, cmdline);
	char emulator[PATH_MAX];
	absolute_program(o->qemu, emulator, sizeof(emulator));
	fprintf(f, "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n"
		   "  <on_crash>destroy</on_crash>\n  <devices>\n    <emulator>%s</emulator>\n", emulator);
	fprintf(f, "    <disk type='vhostuser' device='disk'>\n      <driver name='qemu' type='raw'");
	if (o->queues > 1)
		fprintf(f, " queues='%u'", o->queues);
	if (o->queue_size)
		fprintf(f, " queue_size='%u'", o->queue_size);
	if (o->packed)
		fprintf(f, " packed='on'");
	if (o->event_idx >= 0)
		fprintf(f, " event_idx='%s'", o->event_idx ? "on" : "off");
	fprintf(f, "/>\n      <source type='unix' path='%s'/>\n      <target dev='vda' bus='virtio'/>\n"
		   "    </disk>\n", o->sock);
	fprintf(f, "    <serial type='file'>\n      <source path='%s'/>\n      <target port='0'/>\n    </serial>\n"
		   "  </devices>\n</domain>\n", console);
	return fclose(f);
}

static int virsh(const char *a1, const char *a2, const char *dir, bool quiet)
{
	char out[PATH_MAX + 16], err[PATH_MAX + 16];
	snprintf(out, sizeof(out), "%s/virsh.out", dir);
	snprintf(err, sizeof(err), "%s/virsh.err", dir);
	char *argv[] = { "virsh", "-q", (char *)a1, (char *)a2, NULL };
	pid_t pid;
	int st;
	if (spawn_to(argv, out, err, &pid))
		return -1;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (rc && !quiet) {
		char *e = slurp(err);
		guest_err("virsh %s %s failed: %s", a1, a2, e);
		free(e);
	}
	return rc;
}

/* A file libvirt's QEMU (another user) can read: a link, or a copy, in the run's folder. */
static int share_file(const char *src, const char *dst)
{
	if (link(src, dst) == 0)
		return chmod(dst, 0644);
	uint8_t *d;
	size_t n;
	if (read_whole(src, &d, &n) < 0)
		return -1;
	int rc = write_whole(dst, d, n);
	free(d);
	return rc ? rc : chmod(dst, 0644);
}

/* One boot through libvirt; *stalled if KVM, chosen by us, did not start it. */
static int boot_libvirt(const struct guest_opts *o, const char *dir, const char *initrd, const char *cmdline,
			const char *console, double t0, double *init_s, bool *timed_out, bool *stalled)
{
	char name[64], xml[PATH_MAX + 16], kernel[PATH_MAX + 16], rd[PATH_MAX + 16];
	snprintf(name, sizeof(name), "vhu-guest-%d", (int)getpid());
	snprintf(xml, sizeof(xml), "%s/domain.xml", dir);
	snprintf(kernel, sizeof(kernel), "%s/kernel", dir);
	snprintf(rd, sizeof(rd), "%s/initrd", dir);
	chmod(dir, 0755);
	if (share_file(o->k.boot, kernel) < 0 || share_file(initrd, rd) < 0 ||
	    libvirt_domain_xml(o, name, kernel, rd, cmdline, console, xml) < 0) {
		guest_err("cannot prepare the libvirt domain in %s: %s", dir, strerror(errno));
		return -1;
	}
	if (o->verbose) {
		char *x = slurp(xml);
		fprintf(stderr, "%s", x);
		free(x);
	}
	if (virsh("create", xml, dir, false))
		return -1;
	*init_s = -1;
	*timed_out = *stalled = false;
	off_t shown = 0;
	/*
	 * libvirt runs QEMU with -no-shutdown, so the guest's power-off may
	 * leave the domain paused rather than gone: once the result line is
	 * on the console (the workload flushed its data before printing it),
	 * the domain gets two seconds to go, then is destroyed.
	 */
	double done = 0;
	while (virsh("domid", name, dir, true) == 0) {
		if (o->verbose)
			follow(console, &shown);
		if (*init_s < 0 && file_has(console, "VHU-GUEST-INIT"))
			*init_s = guest_now() - t0;
		if (!done && file_has(console, "VHU-GUEST-RESULT "))
			done = guest_now();
		bool late = guest_now() > t0 + o->timeout;
		*stalled = kvm_stalled(o, *init_s, t0);
		if (late || interrupted || *stalled || (done && guest_now() > done + 2)) {
			*timed_out = late && !done;
			virsh("destroy", name, dir, true);
			break;
		}
		usleep(100000);
	}
	if (o->verbose)
		follow(console, &shown);
	return 0;
}

static int run_libvirt(struct guest_opts *o, const char *dir, const char *initrd, const char *cmdline,
		       const char *console, double *t0, double *init_s, bool *timed_out)
{
	bool stalled;
	for (;;) {
		if (boot_libvirt(o, dir, initrd, cmdline, console, *t0, init_s, timed_out, &stalled) < 0)
			return -1;
		if (!stalled)
			return 0;
		kvm_give_up(o, t0);
	}
}

static int run_qemu(struct guest_opts *o, const char *initrd, const char *cmdline, const char *console,
		    const char *qerr, double *t0, double *init_s, bool *timed_out)
{
	const struct side sd = { o->sock, NULL, NULL };
	for (;;) {
		struct argv a = { 0 };
		qemu_argv(o, &sd, initrd, cmdline, &a);
		if (o->verbose) {
			for (unsigned i = 0; i < a.n; i++)
				fprintf(stderr, "%s%s", i ? " " : "# ", a.v[i]);
			fputc('\n', stderr);
		}
		pid_t pid;
		int e = spawn_to(a.v, console, qerr, &pid);
		argv_free(&a);
		if (e) {
			guest_err("cannot start %s: %s%s", o->qemu, strerror(e),
				  e == ENOENT ? " (apt-get install qemu-system-x86, or give --qemu=PATH)" : "");
			return -1;
		}
		bool stalled;
		int qrc = wait_qemu(o, pid, console, *t0, true, init_s, timed_out, &stalled);
		if (!stalled)
			return qrc;
		kvm_give_up(o, t0);
	}
}

/* ---- a live migration (--migrate-to) -------------------------------------- */

/*
 * The guest boots on a source QEMU with the back-end at o->sock, while a
 * destination QEMU of the same machine, on the back-end at o->migrate_to,
 * waits for it (-incoming). migrate_after seconds into the workload the
 * source is told to migrate (precopy, over a Unix socket in the run's
 * folder, both sides' monitors on QMP sockets there too); once it completes
 * the source quits and the guest goes on, and gives its result, on the
 * destination. A migration that fails leaves the guest on the source: its
 * result is reported, marked failed.
 */
static pid_t spawn_side(const struct guest_opts *o, const struct side *sd, const char *initrd, const char *cmdline,
			const char *console, const char *err)
{
	struct argv a = { 0 };
	pid_t pid = -1;
	qemu_argv(o, sd, initrd, cmdline, &a);
	if (o->verbose) {
		for (unsigned i = 0; i < a.n; i++)
			fprintf(stderr, "%s%s", i ? " " : "# ", a.v[i]);
		fputc('\n', stderr);
	}
	int e = spawn_to(a.v, console, err, &pid);
	argv_free(&a);
	if (e) {
		guest_err("cannot start %s: %s", o->qemu, strerror(e));
		return -1;
	}
	return pid;
}

static void stop_pid(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 150 && waitpid(pid, NULL, WNOHANG) == 0; i++)
		usleep(20000);
	if (waitpid(pid, NULL, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

static int run_migration(struct guest_opts *o, const char *dir, const char *initrd, const char *cmdline,
			 const char *const console[2], const char *const qerr[2], double *t0, double *init_s,
			 bool *timed_out, struct migration *m)
{
	char qs[PATH_MAX], qd[PATH_MAX], in[PATH_MAX + 16];
	snprintf(qs, sizeof(qs), "%s/src.qmp", dir);
	snprintf(qd, sizeof(qd), "%s/dst.qmp", dir);
	snprintf(in, sizeof(in), "unix:%s/migration.sock", dir);
	const struct side src = { o->sock, qs, NULL }, dst = { o->migrate_to, qd, in };
	pid_t ps, pd;
	double start;
	for (;;) {
		ps = spawn_side(o, &src, initrd, cmdline, console[0], qerr[0]);
		pd = ps < 0 ? -1 : spawn_side(o, &dst, initrd, cmdline, console[1], qerr[1]);
		if (pd < 0) {
			stop_pid(ps);
			return -1;
		}
		/* the workload running on the source, then migrate_after seconds */
		off_t shown = 0;
		bool stalled = false;
		start = -1;
		*init_s = -1;
		while (start < 0 && waitpid(ps, NULL, WNOHANG) == 0 && guest_now() < *t0 + o->timeout && !interrupted) {
			if (o->verbose)
				follow(console[0], &shown);
			if (*init_s < 0 && file_has(console[0], "VHU-GUEST-INIT"))
				*init_s = guest_now() - *t0;
			if (file_has(console[0], "VHU-WORKLOAD-START"))
				start = guest_now();
			if ((stalled = kvm_stalled(o, *init_s, *t0)))
				break;
			usleep(20000);
		}
		if (!stalled)
			break;
		/* both sides again under TCG: a migration needs one accelerator */
		stop_pid(ps);
		stop_pid(pd);
		kvm_give_up(o, t0);
	}
	while (start >= 0 && guest_now() < start + o->migrate_after && !interrupted)
		usleep(20000);
	if (start >= 0 && !interrupted)
		guest_migrate(o, dir, console[0], *t0, m, &interrupted);
	double ignored;
	bool stalled;
	if (m->completed) {
		waitpid(ps, NULL, 0);	/* it quit */
		return wait_qemu(o, pd, console[1], *t0, false, &ignored, timed_out, &stalled);
	}
	stop_pid(pd);
	return wait_qemu(o, ps, console[0], *t0, false, &ignored, timed_out, &stalled);
}

/* ---- the run -------------------------------------------------------------- */

static int report(struct guest_opts *o, const char *console_text, int qrc, bool timed_out, double init_s,
		  double total_s, const char *qemu_err, const struct migration *m)
{
	struct guest_result r;
	if (result_parse(&r, console_text) < 0) {
		if (timed_out)
			guest_err("the guest gave no result within --timeout=%u s", o->timeout);
		else
			guest_err("%s ended (status %d) before the guest gave a result", o->libvirt ? "libvirt's QEMU" : o->qemu,
				  qrc);
		if (m)
			guest_err("the migration: %s%s%s", m->status, m->error[0] ? ": " : "", m->error);
		print_tail("QEMU", qemu_err, 10);
		print_tail("guest console", console_text, 15);
		return 3;
	}
	result_set(&r, "qemu", "%s", o->qemu_version);
	result_set(&r, "accel", "%s", o->kvm ? "kvm" : "tcg");
	result_set(&r, "boot", "%s", o->k.pvh ? "pvh" : "bzimage");
	result_set(&r, "via", "%s", o->libvirt ? "libvirt" : "qemu");
	result_set(&r, "transport", "%s", o->mmio ? "mmio" : "pci");
	if (init_s >= 0)
		result_set(&r, "host_boot_s", "%.2f", init_s);
	result_set(&r, "host_total_s", "%.2f", total_s);
	bool guest_ok = r.ok, ok = r.ok;
	if (m) {
		result_set(&r, "migrate", "%s", m->status);
		if (m->completed) {
			result_set(&r, "migrate_at_s", "%.2f", m->at_s);
			result_set(&r, "migrate_total_ms", "%.0f", m->total_ms);
			result_set(&r, "migrate_setup_ms", "%.0f", m->setup_ms);
			result_set(&r, "migrate_downtime_ms", "%.0f", m->downtime_ms);
			result_set(&r, "migrate_transferred_mib", "%.1f", m->transferred / 1048576.0);
			if (o->postcopy)
				result_set(&r, "migrate_postcopy_requests", "%.0f", m->postcopy_requests);
			if (m->rounds_held >= 0)
				result_set(&r, "migrate_rounds_held", "%d", m->rounds_held);
		} else {
			guest_err("the migration did not complete: %s%s%s", m->status, m->error[0] ? ": " : "", m->error);
			ok = false;
		}
	}
	if (ok && o->image && result_check_image(&r, o->image) < 0)
		ok = false;
	char why[256];
	const char *unmet = o->expect ? result_unmet(&r, o->expect, why, sizeof(why)) : NULL;
	if (unmet) {
		result_set(&r, "expect", "fail");
		ok = false;
	}
	r.ok = ok;
	result_print(&r, o->json);
	if (unmet)
		guest_err("--expect %s", unmet);
	if (!guest_ok && !o->verbose)	/* what led to the guest's own failure */
		print_tail("guest console", console_text, 10);
	return ok ? 0 : 1;
}

/* "QEMU emulator version 10.0.2 (Debian ...)": the version, or "unknown". */
static void qemu_version(struct guest_opts *o)
{
	char *argv[] = { (char *)o->qemu, "--version", NULL };
	uint8_t *out;
	size_t len;
	snprintf(o->qemu_version, sizeof(o->qemu_version), "unknown");
	if (run_capture(argv, NULL, &out, &len) != 0)
		return;
	const char *v = strstr((char *)out, "version ");
	if (v)
		snprintf(o->qemu_version, sizeof(o->qemu_version), "%.*s", (int)strcspn(v + 8, " \n"), v + 8);
	free(out);
}

int guest_run(struct guest_opts *o)
{
	const char *tmp = getenv("TMPDIR");
	char dir[PATH_MAX - 32];
	snprintf(dir, sizeof(dir), "%s/vhu-guest.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		guest_err("mkdtemp %s: %s", dir, strerror(errno));
		return 3;
	}
	char console[sizeof(dir) + 16], qerr[sizeof(dir) + 16], rd[sizeof(dir) + 16];
	snprintf(console, sizeof(console), "%s/console", dir);
	snprintf(qerr, sizeof(qerr), "%s/qemu.err", dir);
	snprintf(rd, sizeof(rd), "%s/run.cpio", dir);
	const char *initrd = o->initrd;
	int rc = 3;
	if (o->script) {
		if (initramfs_with_script(o->initrd, o->script, rd) < 0)
			goto out;
		initrd = rd;
	}
	uint32_t seed;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	seed &= 0x7fffffff;
	char cmdline[1024];
	kernel_cmdline(o, seed, cmdline, sizeof(cmdline));
	qemu_version(o);

	struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	double t0 = guest_now(), init_s;
	bool timed_out;
	int qrc = -1;
	struct migration mig = { 0 };
	char console2[sizeof(dir) + 16], qerr2[sizeof(dir) + 16];
	snprintf(console2, sizeof(console2), "%s/console.src", dir);
	snprintf(qerr2, sizeof(qerr2), "%s/qemu-src.err", dir);
	if (o->libvirt) {
		if (run_libvirt(o, dir, initrd, cmdline, console, &t0, &init_s, &timed_out) < 0)
			goto restore;
	} else if (o->migrate_to) {
		const char *const consoles[2] = { console2, console }, *const errs[2] = { qerr2, qerr };
		qrc = run_migration(o, dir, initrd, cmdline, consoles, errs, &t0, &init_s, &timed_out, &mig);
		if (qrc == -1)
			goto restore;
	} else {
		qrc = run_qemu(o, initrd, cmdline, console, qerr, &t0, &init_s, &timed_out);
		if (qrc == -1)
			goto restore;
	}
	/* after a migration the guest ends on the destination (console) */
	bool on_src = o->migrate_to && !mig.completed;
	char *text = slurp(on_src ? console2 : console), *err = slurp(on_src ? qerr2 : qerr);
	rc = interrupted ? 130 : report(o, text, qrc, timed_out, init_s, guest_now() - t0, err, o->migrate_to ? &mig : NULL);
	free(text);
	free(err);
restore:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
out:
	remove_tree(dir);
	return rc;
}
