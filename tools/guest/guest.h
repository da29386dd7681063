/* SPDX-License-Identifier: MIT */
/*
 * `vhu guest`: boot a throw-away Linux guest under QEMU with a vhost-user
 * device on a back-end's socket, run a workload in it, report one line.
 * Internal to the vhu command (tools/), not part of libvhu.
 */
#ifndef VHU_TOOLS_GUEST_H
#define VHU_TOOLS_GUEST_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- errors: every message names what failed ---------------------------- */
void guest_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- processes (run.c) --------------------------------------------------- */
/*
 * Run argv[0] (searched in PATH) with stdin from `in` (NULL: /dev/null),
 * collect its stdout into a malloc'd buffer. Returns the exit status
 * (0..255, 128+signal), or -1 if it could not run. Like read_whole's, the
 * buffer has a NUL after its `len` bytes, so text output is a C string.
 */
int run_capture(char *const argv[], const char *in, uint8_t **out, size_t *out_len);
int read_whole(const char *path, uint8_t **out, size_t *len);
int write_whole(const char *path, const void *data, size_t len);
/* Write to a temporary name beside `path`, then rename: concurrent runs never see a torn file. */
int write_atomic(const char *path, const void *data, size_t len);
uint64_t fnv1a64(uint64_t h, const void *p, size_t n);
bool is_dir(const char *path);

/* ---- cpio "newc" archives (cpio.c) --------------------------------------- */
struct cpio {
	FILE *f;
	unsigned ino;
	int error;
};
void cpio_open(struct cpio *c, FILE *f);
void cpio_dir(struct cpio *c, const char *name);
void cpio_file(struct cpio *c, const char *name, unsigned mode, const void *data, size_t len);
void cpio_symlink(struct cpio *c, const char *name, const char *target);
void cpio_chardev(struct cpio *c, const char *name, unsigned major, unsigned minor);
int cpio_close(struct cpio *c);	/* writes the trailer; 0 or -1 */

/* ---- the guest kernel (boot.c) ------------------------------------------- */
struct guest_kernel {
	char image[PATH_MAX];	/* the kernel as given (bzImage) */
	char boot[PATH_MAX];	/* what QEMU boots: the extracted vmlinux (PVH) or the image */
	char moddir[PATH_MAX];	/* /lib/modules/VERSION or the --modules folder */
	char version[128];
	bool pvh;
};
/* pvh: boot the extracted vmlinux where it can be had (else, or if false, the bzImage) */
int guest_kernel_find(struct guest_kernel *k, const char *kernel, const char *modules, const char *cache, bool pvh);
/* The module files (relative to moddir) to load for `names`, dependencies first. */
int guest_modules_resolve(const struct guest_kernel *k, const char *const *names, char ***files, size_t *n);

/* ---- the initramfs (initramfs.c) ----------------------------------------- */
struct initramfs_spec {
	const char *init;	/* the vhu-guest-init binary */
	const char *const *modules;
	bool fio;		/* copy fio and its libraries in */
};
/* Build (or find in the cache) the initramfs; its path goes to `path`. */
int initramfs_get(const struct guest_kernel *k, const struct initramfs_spec *s, const char *cache, char *path,
		  size_t len);
/* A second archive holding one script as /vhu/run.sh, appended to `base` into `out`. */
int initramfs_with_script(const char *base, const char *script, const char *out);

/* ---- QEMU's monitor (qmp.c) ---------------------------------------------- */
struct qmp {
	int fd;
	size_t len;
	char buf[65536];
	char line[65536];
};
/* Connect (retrying until timeout_s: QEMU creates the socket as it starts), negotiate. */
int qmp_open(struct qmp *q, const char *path, double timeout_s);
/* Run one command; its reply line into reply. 0 for a "return", -1 for an error or none. */
int qmp_cmd(struct qmp *q, const char *json, char *reply, size_t len, double timeout_s);
void qmp_close(struct qmp *q);
double qmp_num(const char *reply, const char *key);
void qmp_str(const char *reply, const char *key, char *out, size_t len);

/* ---- the command (guest.c, qemu.c, result.c, migrate.c) ---------------------------- */
struct guest_device {
	const char *name;		/* --device= */
	const char *qemu_device;	/* QEMU's -device driver (virtio-pci) */
	const char *qemu_device_mmio;	/* the same on the virtio-mmio bus (microvm) */
	const char *const *modules;	/* the guest driver, loaded with its dependencies */
	const char *packed, *queues, *event_idx, *indirect, *queue_size;	/* property names */
};

struct guest_opts {
	const struct guest_device *dev;
	const char *sock, *qemu, *kernel, *modules, *workload, *script, *image, *rw, *expect, *accel;
	const char *devopts[16];
	const char *qemu_args[32];	/* --qemu-arg: appended to every QEMU this run starts */
	unsigned nqemu_args;
	unsigned ndevopts, queues, queue_size, mem_mib, reconnect, timeout, iodepth, runtime, rounds;
	const char *migrate_to;		/* --migrate-to: the second back-end's socket */
	double migrate_after;		/* seconds into the workload */
	bool postcopy;			/* --postcopy: switch to postcopy once precopy runs */
	unsigned migrate_hold;		/* --migrate-hold: rounds held after RAM's first pass */
	bool iommu;			/* --iommu: the device behind QEMU's Intel vIOMMU */
	bool mmio;			/* --transport=mmio: microvm, the device on virtio-mmio */
	int packed, event_idx, indirect;	/* -1: QEMU's default */
	uint64_t size, bs;
	bool json, verbose, libvirt, kvm, kvm_auto, bzimage;
	char cache[PATH_MAX], initrd[PATH_MAX], qemu_version[32];
	struct guest_kernel k;
};

int vhu_guest_main(int argc, char **argv);
int guest_run(struct guest_opts *o);	/* boots, waits, reports; the exit status */
bool guest_kvm_known_broken(const struct guest_opts *o);

/* The result line's key=value pairs. */
struct guest_result {
	bool ok;
	unsigned n;
	char *key[64], *val[64];
	char line[4096];
};
int result_parse(struct guest_result *r, const char *console);	/* 0, or -1: no result line */
const char *result_get(const struct guest_result *r, const char *key);
void result_set(struct guest_result *r, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void result_print(const struct guest_result *r, bool json);
/* --expect=K=V,...: the first pair the result does not hold, or NULL */
const char *result_unmet(const struct guest_result *r, const char *expect, char *buf, size_t len);
/* The verify workload's data in the back-end's image: 0, or -1 with the reason in the result. */
int result_check_image(struct guest_result *r, const char *image);

/* One live migration as QEMU reported it (migrate.c). */
struct migration {
	char status[32], error[256];
	double at_s, total_ms, downtime_ms, setup_ms, postcopy_requests, transferred;
	int rounds_held;	/* guest rounds run after RAM's first pass, before the switch; -1: no hold */
	bool completed;
};
/*
 * Migrate the guest from the source QEMU (monitor at dir/src.qmp, console at
 * `console`) to the destination waiting at dir/migration.sock, and follow it
 * to its end; stops early when *stop becomes nonzero.
 */
void guest_migrate(const struct guest_opts *o, const char *dir, const char *console, double t0,
		   struct migration *m, const volatile sig_atomic_t *stop);
double guest_now(void);	/* CLOCK_MONOTONIC seconds */

#endif
