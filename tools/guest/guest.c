/* SPDX-License-Identifier: MIT */
/*
 * vhu guest SOCK [options]: boot a throw-away Linux guest under QEMU (KVM
 * where it works, TCG elsewhere) whose device is a vhost-user device on the
 * back-end listening at SOCK, run a workload in it, print one result line.
 * Exit status: 0 the workload passed, 1 it failed (or the host check or an
 * --expect did), 2 usage, 3 no result (QEMU missing or failing, timeout).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"
#include "../opts.h"

extern char **environ;

/*
 * What each vhost-user device kind needs: the QEMU front-end device, the
 * guest modules, and the names of its properties for the options a
 * back-end author varies (NULL: the device has no such property). A new
 * kind is one row here plus its probe in the guest's init.
 */
static const struct guest_device devices[] = {
	{
		.name = "blk",
		.qemu_device = "vhost-user-blk-pci", .qemu_device_mmio = "vhost-user-blk",
		.modules = (const char *const[]){ "virtio_pci", "virtio_mmio", "virtio_blk", NULL },
		.packed = "packed", .queues = "num-queues", .event_idx = "event_idx",
		.indirect = "indirect_desc", .queue_size = "queue-size",
	},
};

static const struct guest_device *find_device(const char *name)
{
	for (unsigned i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
		if (!strcmp(devices[i].name, name))
			return &devices[i];
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vhu guest SOCK [options]\n"
		"  boots a Linux guest under QEMU with a vhost-user device on the back-end at SOCK,\n"
		"  runs a workload in it and prints one result line (exit 0 only if it passed)\n"
		"device:\n"
		"  --device=blk          the device kind (default blk)\n"
		"  --packed              packed virtqueues\n"
		"  --queues=N            virtqueues, and as many vCPUs (default 1)\n"
		"  --event-idx=on|off    --indirect=on|off     --queue-size=N\n"
		"  --device-opt=K=V      passed to QEMU's -device (repeatable)\n"
		"  --reconnect=S         chardev reconnect after S seconds\n"
		"workload:\n"
		"  --workload=verify     (default) a self-describing pattern written with O_DIRECT,\n"
		"                        fsync'ed, read back and compared in the guest\n"
		"    --size=BYTES        how much (default 8M; plus 1 MiB at the end of the disk)\n"
		"    --image=PATH        afterwards check the back-end's image from the host too\n"
		"    --rounds=N          N rounds, a new seed each, read into buffers kept and checked\n"
		"                        again across rounds (what a live migration must carry)\n"
		"  --workload=fio        fio in the guest: --rw=MODE --bs=BYTES --iodepth=N --runtime=S\n"
		"  --run=SCRIPT          a shell script run in the guest ($VHU_DEV is the device)\n"
		"  --workload=none       only report what the guest driver negotiated\n"
		"  --expect=K=V[,K=V]    fail unless the result says so (e.g. packed=1,queues=2)\n"
		"machine:\n"
		"  --mem=MiB             guest memory (default 256)\n"
		"  --qemu=PATH           --kernel=PATH   --modules=DIR\n"
		"  --qemu-arg=ARG        one more argument for QEMU, after vhu's own (repeatable; both\n"
		"                        QEMUs of a migration), e.g. --qemu-arg=-trace --qemu-arg=vhost_*\n"
		"  --boot=pvh|bzimage    pvh (default): the kernel's vmlinux through its PVH entry, where\n"
		"                        it has one; bzimage: SeaBIOS and the compressed kernel\n"
		"  --accel=auto|kvm|tcg  auto (default): KVM if a test vCPU runs on it, else TCG; a guest\n"
		"                        that does not start under KVM in 15 s is run again under TCG\n"
		"  --libvirt             define and boot the guest through libvirt (virsh) instead\n"
		"  --migrate-to=SOCK2    live-migrate the guest (precopy) to a second QEMU on the back-end\n"
		"                        at SOCK2, --migrate-after=S seconds into the workload (default 1);\n"
		"                        the result gains migrate=completed and the downtime QEMU measured\n"
		"  --postcopy            with --migrate-to: postcopy (the guest moves at once, its pages\n"
		"                        follow on demand; the back-ends need PAGEFAULT)\n"
		"  --iommu               put the device behind a vIOMMU (q35, intel-iommu with interrupt\n"
		"                        remapping and device IOTLB, iommu_platform=on,ats=on, the guest\n"
		"                        booted with intel_iommu=on): the back-end sees I/O virtual\n"
		"                        addresses and IOTLB messages; the result gains iommu=1\n"
		"  --transport=mmio      the device on virtio-mmio: QEMU's microvm machine (ACPI, a\n"
		"                        modern device), instead of virtio-pci on pc (default pci)\n"
		"  --migrate-hold=N      with --rounds: hold the migration once 7/8 of RAM's first pass is\n"
		"                        sent, until the guest ran N more rounds (default 2; 0: no hold),\n"
		"                        so kept buffers are rewritten by the device after QEMU copied them\n"
		"  --timeout=S           the whole run (default 120)\n"
		"  --json                the result as a JSON object\n"
		"  -v, --verbose         copy the guest console to stderr\n");
}

static int bad(const char *opt, const char *why)
{
	return opt_refuse("vhu guest", opt, NULL, why);
}

static int number(const char *opt, const char *s, long lo, long hi, long *out)
{
	return opt_number("vhu guest", opt, s, lo, hi, out);
}

static int on_off(const char *opt, const char *s, int *out)
{
	if (!strcmp(s, "on") || !strcmp(s, "off")) {
		*out = !strcmp(s, "on");
		return 0;
	}
	return opt_refuse("vhu guest", opt, s, "takes on or off");
}

static int parse(int argc, char **argv, struct guest_opts *o)
{
	enum { O_PACKED = 256, O_QUEUES, O_EVIDX, O_INDIRECT, O_QSIZE, O_MEM, O_QEMU, O_KERNEL, O_MODULES,
	       O_DEVOPT, O_RECONNECT, O_TIMEOUT, O_JSON, O_WORKLOAD, O_RUN, O_SIZE, O_IMAGE, O_RW, O_BS,
	       O_IODEPTH, O_RUNTIME, O_EXPECT, O_DEVICE, O_LIBVIRT, O_ACCEL, O_BOOT, O_ROUNDS, O_MIGRATE_TO,
	       O_MIGRATE_AFTER, O_POSTCOPY, O_MIGRATE_HOLD, O_IOMMU, O_TRANSPORT, O_QEMU_ARG };
	static const struct option lo[] = {
		{ "packed", no_argument, NULL, O_PACKED }, { "queues", required_argument, NULL, O_QUEUES },
		{ "event-idx", required_argument, NULL, O_EVIDX }, { "indirect", required_argument, NULL, O_INDIRECT },
		{ "queue-size", required_argument, NULL, O_QSIZE }, { "mem", required_argument, NULL, O_MEM },
		{ "qemu", required_argument, NULL, O_QEMU }, { "kernel", required_argument, NULL, O_KERNEL },
		{ "modules", required_argument, NULL, O_MODULES }, { "device-opt", required_argument, NULL, O_DEVOPT },
		{ "reconnect", required_argument, NULL, O_RECONNECT }, { "timeout", required_argument, NULL, O_TIMEOUT },
		{ "json", no_argument, NULL, O_JSON }, { "workload", required_argument, NULL, O_WORKLOAD },
		{ "run", required_argument, NULL, O_RUN }, { "size", required_argument, NULL, O_SIZE },
		{ "image", required_argument, NULL, O_IMAGE }, { "rw", required_argument, NULL, O_RW },
		{ "bs", required_argument, NULL, O_BS }, { "iodepth", required_argument, NULL, O_IODEPTH },
		{ "runtime", required_argument, NULL, O_RUNTIME }, { "expect", required_argument, NULL, O_EXPECT },
		{ "device", required_argument, NULL, O_DEVICE }, { "libvirt", no_argument, NULL, O_LIBVIRT },
		{ "accel", required_argument, NULL, O_ACCEL }, { "boot", required_argument, NULL, O_BOOT },
		{ "rounds", required_argument, NULL, O_ROUNDS }, { "migrate-to", required_argument, NULL, O_MIGRATE_TO },
		{ "migrate-after", required_argument, NULL, O_MIGRATE_AFTER }, { "postcopy", no_argument, NULL, O_POSTCOPY },
		{ "migrate-hold", required_argument, NULL, O_MIGRATE_HOLD }, { "iommu", no_argument, NULL, O_IOMMU },
		{ "transport", required_argument, NULL, O_TRANSPORT }, { "qemu-arg", required_argument, NULL, O_QEMU_ARG },
		{ "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' }, { 0 },
	};
	long v;
	int c, rc = 0;
	bool ok;
	opterr = 0;
	while (!rc && (c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
		switch (c) {
		case O_PACKED: o->packed = 1; break;
		case O_QUEUES: if (!(rc = number("--queues", optarg, 1, 16, &v))) o->queues = (unsigned)v; break;
		case O_EVIDX: rc = on_off("--event-idx", optarg, &o->event_idx); break;
		case O_INDIRECT: rc = on_off("--indirect", optarg, &o->indirect); break;
		case O_QSIZE:
			if (!(rc = number("--queue-size", optarg, 2, 32768, &v)) && (v & (v - 1)))
				rc = bad("--queue-size", "QEMU takes a power of two");
			o->queue_size = (unsigned)v;
			break;
		case O_MEM: if (!(rc = number("--mem", optarg, 64, 65536, &v))) o->mem_mib = (unsigned)v; break;
		case O_QEMU: o->qemu = optarg; break;
		case O_QEMU_ARG:
			if (o->nqemu_args == sizeof(o->qemu_args) / sizeof(o->qemu_args[0]))
				rc = bad("--qemu-arg", "at most 32");
			else
				o->qemu_args[o->nqemu_args++] = optarg;
			break;
		case O_KERNEL: o->kernel = optarg; break;
		case O_MODULES: o->modules = optarg; break;
		case O_DEVOPT:
			if (!strchr(optarg, '=') || o->ndevopts == 16)
				rc = bad("--device-opt", strchr(optarg, '=') ? "at most 16" : "takes KEY=VALUE");
			else
				o->devopts[o->ndevopts++] = optarg;
			break;
		case O_RECONNECT: if (!(rc = number("--reconnect", optarg, 1, 3600, &v))) o->reconnect = (unsigned)v; break;
		case O_TIMEOUT: if (!(rc = number("--timeout", optarg, 1, 86400, &v))) o->timeout = (unsigned)v; break;
		case O_JSON: o->json = true; break;
		case O_WORKLOAD:
			if (strcmp(optarg, "verify") && strcmp(optarg, "fio") && strcmp(optarg, "none"))
				rc = bad("--workload", "takes verify, fio or none (a script: --run=SCRIPT)");
			o->workload = optarg;
			break;
		case O_RUN: o->script = optarg; o->workload = "run"; break;
		case O_SIZE:
			o->size = opt_size(optarg, &ok);
			if (!ok || !o->size || o->size % (1u << 20) || o->size > (64ull << 30))
				rc = bad("--size", "takes a whole number of MiB (e.g. 8M), at most 64G");
			break;
		case O_IMAGE: o->image = optarg; break;
		case O_RW:
			if (strcmp(optarg, "read") && strcmp(optarg, "write") && strcmp(optarg, "randread") &&
			    strcmp(optarg, "randwrite") && strcmp(optarg, "randrw") && strcmp(optarg, "rw"))
				rc = bad("--rw", "takes read, write, rw, randread, randwrite or randrw");
			o->rw = optarg;
			break;
		case O_BS:
			o->bs = opt_size(optarg, &ok);
			if (!ok || !o->bs || o->bs % 512 || o->bs > (16u << 20))
				rc = bad("--bs", "takes a multiple of 512 up to 16M");
			break;
		case O_IODEPTH: if (!(rc = number("--iodepth", optarg, 1, 4096, &v))) o->iodepth = (unsigned)v; break;
		case O_RUNTIME: if (!(rc = number("--runtime", optarg, 1, 3600, &v))) o->runtime = (unsigned)v; break;
		case O_EXPECT: o->expect = optarg; break;
		case O_DEVICE:
			if (!(o->dev = find_device(optarg)))
				rc = bad("--device", "only blk is known (vhost-user-blk-pci)");
			break;
		case O_LIBVIRT: o->libvirt = true; break;
		case O_BOOT:
			if (strcmp(optarg, "pvh") && strcmp(optarg, "bzimage"))
				rc = bad("--boot", "takes pvh or bzimage");
			o->bzimage = !strcmp(optarg, "bzimage");
			break;
		case O_ACCEL:
			if (strcmp(optarg, "auto") && strcmp(optarg, "kvm") && strcmp(optarg, "tcg"))
				rc = bad("--accel", "takes auto, kvm or tcg");
			o->accel = optarg;
			break;
		case O_ROUNDS: if (!(rc = number("--rounds", optarg, 1, 100000, &v))) o->rounds = (unsigned)v; break;
		case O_MIGRATE_TO: o->migrate_to = optarg; break;
		case O_POSTCOPY: o->postcopy = true; break;
		case O_IOMMU: o->iommu = true; break;
		case O_TRANSPORT:
			if (strcmp(optarg, "pci") && strcmp(optarg, "mmio"))
				rc = bad("--transport", "takes pci or mmio");
			o->mmio = !strcmp(optarg, "mmio");
			break;
		case O_MIGRATE_HOLD:
			if (!(rc = number("--migrate-hold", optarg, 0, 1000, &v)))
				o->migrate_hold = (unsigned)v;
			break;
		case O_MIGRATE_AFTER:
			if (!(rc = number("--migrate-after", optarg, 0, 3600, &v)))
				o->migrate_after = (double)v;
			break;
		case 'v': o->verbose = true; break;
		case 'h': usage(stdout); return 1;
		default:
			return opt_getopt_error("vhu guest", argv[optind - 1], lo);
		}
	}
	if (rc)
		return rc;
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	o->sock = argv[optind];
	if (o->image && strcmp(o->workload, "verify"))
		return bad("--image", "goes with the verify workload");
	if (o->rounds > 1 && strcmp(o->workload, "verify"))
		return bad("--rounds", "goes with the verify workload");
	if (o->postcopy && !o->migrate_to)
		return bad("--postcopy", "goes with --migrate-to");
	if (o->migrate_to && o->libvirt)
		return bad("--migrate-to", "drives two QEMU processes itself, not through libvirt");
	if (o->migrate_to && !strcmp(o->migrate_to, o->sock))
		return bad("--migrate-to", "needs a second back-end: the destination cannot share the source's socket");
	if (o->libvirt && o->iommu)
		return bad("--iommu", "builds QEMU's command line itself, not a libvirt domain");
	if (o->mmio && (o->iommu || o->libvirt))
		return bad("--transport=mmio", o->iommu ? "has no vIOMMU here (microvm)" : "builds QEMU's command line itself");
	if (o->libvirt && (o->ndevopts || o->indirect >= 0 || o->reconnect))
		return bad("--libvirt", "libvirt's vhostuser disk has no --device-opt, --indirect or --reconnect");
	if (o->libvirt && o->nqemu_args)
		return bad("--qemu-arg", "libvirt builds QEMU's command line itself");
	return 0;
}

/*
 * KVM only where it really works. Some hosts (nested, or with KVM half
 * there) open /dev/kvm and create VMs whose vCPUs then never run, so the
 * probe runs one: a real-mode vCPU at a page holding HLT must exit with
 * KVM_EXIT_HLT. In a child, bounded to two seconds, since a broken KVM_RUN
 * may simply not return.
 */
#if defined(__x86_64__)
static int kvm_run_hlt(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0 || ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return 1;
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	uint8_t *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (vm < 0 || mem == MAP_FAILED)
		return 1;
	mem[0] = 0xf4;	/* hlt */
	struct kvm_userspace_memory_region region = { .guest_phys_addr = 0x1000, .memory_size = 4096,
						      .userspace_addr = (uintptr_t)mem };
	int vcpu = ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0 ? -1 : ioctl(vm, KVM_CREATE_VCPU, 0);
	int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || size <= 0)
		return 1;
	struct kvm_run *run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	struct kvm_sregs sregs;
	if (run == MAP_FAILED || ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return 1;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0 ||
	    ioctl(vcpu, KVM_RUN, 0) < 0)
		return 1;
	return run->exit_reason == KVM_EXIT_HLT ? 0 : 1;
}

#else
static int kvm_run_hlt(void)
{
	return 1;	/* the probe's vCPU set-up is x86's; vhu guest boots x86-64 guests only */
}
#endif

static bool kvm_works(void)
{
	if (access("/dev/kvm", R_OK | W_OK) < 0)
		return false;
	pid_t pid = fork();
	if (pid == 0)
		_exit(kvm_run_hlt());
	if (pid < 0)
		return false;
	int st = 0;
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) && WEXITSTATUS(st) == 0;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return false;
}

static void cache_dir(char *out, size_t len)
{
	const char *c = getenv("VHU_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
	if (c && *c)
		snprintf(out, len, "%s", c);
	else if (x && *x)
		snprintf(out, len, "%s/vhu", x);
	else
		snprintf(out, len, "%s/.cache/vhu", h && *h ? h : "/tmp");
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", out);
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		mkdir(p, 0755);
		*s = '/';
	}
	mkdir(p, 0700);
}

/*
 * vhu-guest-init: $VHU_GUEST_INIT; beside this program (a build tree); in
 * ../libexec/vhu beside it (an installed tree, wherever it was moved); or
 * where the build meant to install it.
 */
static int find_init(char *out, size_t len)
{
	const char *env = getenv("VHU_GUEST_INIT");
	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, R_OK) == 0 ? 0 : (guest_err("VHU_GUEST_INIT=%s: %s", env, strerror(errno)), -1);
	}
	char self[PATH_MAX - 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		*strrchr(self, '/') = 0;
		static const char *const rel[] = { "%s/vhu-guest-init", "%s/../libexec/vhu/vhu-guest-init" };
		for (unsigned i = 0; i < 2; i++) {
			snprintf(out, len, rel[i], self);
			if (access(out, R_OK) == 0)
				return 0;
		}
	}
	snprintf(out, len, "%s/vhu-guest-init", VHU_LIBEXECDIR);
	if (access(out, R_OK) == 0)
		return 0;
	guest_err("vhu-guest-init is neither beside %s, nor in ../libexec/vhu, nor in %s (set VHU_GUEST_INIT)",
		  n > 0 ? self : "vhu", VHU_LIBEXECDIR);
	return -1;
}

static void set_defaults(struct guest_opts *o)
{
	*o = (struct guest_opts){ .dev = &devices[0], .queues = 1, .event_idx = -1, .indirect = -1,
				  .mem_mib = 0, .timeout = 120, .workload = "verify", .size = 8u << 20,
				  .rw = "randrw", .bs = 4096, .iodepth = 32, .runtime = 5, .accel = "auto",
				  .rounds = 1, .migrate_after = 1,
				  .migrate_hold = 2 };
	o->qemu = "qemu-system-x86_64";
}

int vhu_guest_main(int argc, char **argv)
{
	struct guest_opts o;
	set_defaults(&o);
	int rc = parse(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : rc;
#if !defined(__x86_64__)
	/* the machine (pc), the PVH boot and the ttyS0 console are x86-64's */
	guest_err("boots x86-64 guests on x86-64 hosts only, for now");
	return 3;
#endif
	struct stat st;
	if (stat(o.sock, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		guest_err("%s is not a socket: is the back-end listening there? (%s)", o.sock,
			  errno ? strerror(errno) : "not a socket");
		return 3;
	}
	if (o.libvirt && !(st.st_mode & S_IWOTH))
		guest_err("note: libvirt's QEMU runs as another user (libvirt-qemu on Debian), and connecting needs "
			  "write permission on %s (chmod o+rw)", o.sock);
	if (!o.mem_mib)
		o.mem_mib = !strcmp(o.workload, "fio") ? 768 : 256;
	cache_dir(o.cache, sizeof(o.cache));
	char init[PATH_MAX];
	if (find_init(init, sizeof(init)) < 0 || guest_kernel_find(&o.k, o.kernel, o.modules, o.cache, !o.bzimage) < 0)
		return 3;
	struct initramfs_spec spec = { .init = init, .modules = o.dev->modules, .fio = !strcmp(o.workload, "fio") };
	if (initramfs_get(&o.k, &spec, o.cache, o.initrd, sizeof(o.initrd)) < 0)
		return 3;
	o.kvm_auto = !strcmp(o.accel, "auto");
	o.kvm = !strcmp(o.accel, "kvm") || (o.kvm_auto && !guest_kvm_known_broken(&o) && kvm_works());
	return guest_run(&o);
}
