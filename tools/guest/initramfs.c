/* SPDX-License-Identifier: MIT */
/*
 * The guest's initramfs: vhu-guest-init as /init, busybox-static for the
 * shell and tools a --run script wants, the kernel's own modules for the
 * device (decompressed: the guest loads them with finit_module and need
 * not have the kernel's decompressor), and for the fio workload fio with
 * every library `ldd` names. Uncompressed, so TCG spends no time inflating
 * it. Cached under a key of everything that goes in.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest.h"

#define BUSYBOX "/bin/busybox"
#define FIO "/usr/bin/fio"
#define FORMAT 1	/* bump when the layout changes: old cached archives are not reused */

static uint64_t hash_file_id(uint64_t h, const char *path)
{
	struct stat st;
	h = fnv1a64(h, path, strlen(path) + 1);
	if (stat(path, &st) == 0) {
		h = fnv1a64(h, &st.st_size, sizeof(st.st_size));
		h = fnv1a64(h, &st.st_mtime, sizeof(st.st_mtime));
	}
	return h;
}

/* A module as a plain ELF object: .ko, or .ko.xz/.zst/.gz through its tool. */
static int add_module(struct cpio *c, const struct guest_kernel *k, const char *rel, char *name, size_t len)
{
	char src[PATH_MAX + 256];
	snprintf(src, sizeof(src), "%s/%s", k->moddir, rel);
	const char *b = strrchr(rel, '/');
	b = b ? b + 1 : rel;
	size_t n = strstr(b, ".ko") ? (size_t)(strstr(b, ".ko") - b) : strlen(b);
	snprintf(name, len, "%.*s.ko", (int)n, b);
	const char *ext = b + n + 3;
	const char *tool = !strcmp(ext, ".xz") ? "xz" : !strcmp(ext, ".zst") ? "zstd" : !strcmp(ext, ".gz") ? "gzip" : NULL;
	uint8_t *data;
	size_t dlen;
	int rc;
	if (tool) {
		char *argv[] = { (char *)tool, "-dc", src, NULL };
		rc = run_capture(argv, NULL, &data, &dlen) == 0 ? 0 : -1;
	} else {
		rc = read_whole(src, &data, &dlen);
	}
	if (rc < 0) {
		guest_err("module %s: cannot read%s%s", src, tool ? " with " : "", tool ? tool : "");
		return -1;
	}
	char dst[PATH_MAX];
	snprintf(dst, sizeof(dst), "lib/modules/%s", name);
	cpio_file(c, dst, 0644, data, dlen);
	free(data);
	return 0;
}

static int add_host_file(struct cpio *c, const char *host, const char *name, unsigned mode)
{
	uint8_t *data;
	size_t len;
	if (read_whole(host, &data, &len) < 0) {
		guest_err("%s: %s", host, strerror(errno));
		return -1;
	}
	cpio_file(c, name, mode, data, len);
	free(data);
	return 0;
}

/* Every folder on the way to `path` (relative), once. */
static void add_parents(struct cpio *c, const char *path, char seen[][PATH_MAX], unsigned *nseen)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		bool have = false;
		for (unsigned i = 0; i < *nseen && !have; i++)
			have = !strcmp(seen[i], p);
		if (!have && *nseen < 64) {
			snprintf(seen[(*nseen)++], PATH_MAX, "%s", p);
			cpio_dir(c, p);
		}
		*s = '/';
	}
}

/* fio and its libraries at the paths ldd gives, plus the folders for LD_LIBRARY_PATH. */
static int add_fio(struct cpio *c, char *ld, size_t ld_len)
{
	char *argv[] = { "ldd", FIO, NULL };
	uint8_t *out;
	size_t len;
	if (access(FIO, X_OK) < 0) {
		guest_err("the fio workload needs %s (apt-get install fio)", FIO);
		return -1;
	}
	if (run_capture(argv, NULL, &out, &len) != 0) {
		guest_err("ldd %s failed", FIO);
		return -1;
	}
	char *text = (char *)out;
	static char seen[64][PATH_MAX];
	unsigned nseen = 0;
	int rc = add_host_file(c, FIO, "usr/bin/fio", 0755);
	ld[0] = 0;
	for (char *s = text, *l; !rc && (l = strsep(&s, "\n"));) {
		/* "\tlibX.so.1 => /lib/x/libX.so.1 (0x...)" or "\t/lib64/ld-linux-x86-64.so.2 (0x...)" */
		char *arrow = strstr(l, "=> "), *path = arrow ? arrow + 3 : l + strspn(l, " \t");
		path[strcspn(path, " (")] = 0;
		if (path[0] != '/')
			continue;
		add_parents(c, path + 1, seen, &nseen);
		rc = add_host_file(c, path, path + 1, 0755);
		char *slash = strrchr(path, '/');
		*slash = 0;
		if (arrow && !strstr(ld, path) && strlen(ld) + strlen(path) + 2 < ld_len)
			snprintf(ld + strlen(ld), ld_len - strlen(ld), "%s%s", ld[0] ? ":" : "", path);
	}
	free(text);
	return rc;
}

static int add_busybox(struct cpio *c)
{
	char *argv[] = { BUSYBOX, "--list", NULL };
	uint8_t *out;
	size_t len;
	if (run_capture(argv, NULL, &out, &len) != 0) {
		guest_err("%s --list failed: the guest needs busybox-static (apt-get install busybox-static)", BUSYBOX);
		return -1;
	}
	int rc = add_host_file(c, BUSYBOX, "bin/busybox", 0755);
	char *text = (char *)out;
	for (char *s = text, *l; !rc && (l = strsep(&s, "\n"));) {
		char name[128];
		if (!*l || !strcmp(l, "busybox") || strchr(l, '/'))
			continue;
		snprintf(name, sizeof(name), "bin/%s", l);
		cpio_symlink(c, name, "busybox");
	}
	free(text);
	return rc;
}

static int build(const struct guest_kernel *k, const struct initramfs_spec *s, const char *path)
{
	char ld[4096] = "";
	char tmp[PATH_MAX + 32];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	struct cpio c;
	cpio_open(&c, fopen(tmp, "wb"));
	static const char *const dirs[] = { "bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp",
					    "usr", "usr/bin", "vhu" };
	for (unsigned i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		cpio_dir(&c, dirs[i]);
	/* init's stdio before devtmpfs is mounted */
	cpio_chardev(&c, "dev/console", 5, 1);
	int rc = add_host_file(&c, s->init, "init", 0755);
	if (!rc)
		rc = add_busybox(&c);
	char **files = NULL;
	size_t n = 0;
	if (!rc)
		rc = guest_modules_resolve(k, s->modules, &files, &n);
	char order[8192] = "";
	for (size_t i = 0; i < n && !rc; i++) {
		char name[256];
		rc = add_module(&c, k, files[i], name, sizeof(name));
		snprintf(order + strlen(order), sizeof(order) - strlen(order), "%s\n", name);
	}
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	if (!rc)
		cpio_file(&c, "etc/vhu-modules", 0644, order, strlen(order));
	if (!rc && s->fio)
		rc = add_fio(&c, ld, sizeof(ld));
	if (!rc)	/* the guest's LD_LIBRARY_PATH for fio */
		cpio_file(&c, "etc/vhu-ld-path", 0644, ld, strlen(ld));
	if (cpio_close(&c) < 0 && !rc) {
		guest_err("cannot write %s: %s", tmp, strerror(errno));
		rc = -1;
	}
	if (!rc && rename(tmp, path) < 0)
		rc = -1;
	if (rc)
		unlink(tmp);
	return rc;
}

int initramfs_get(const struct guest_kernel *k, const struct initramfs_spec *s, const char *cache, char *path,
		  size_t len)
{
	unsigned format = FORMAT;
	uint64_t h = fnv1a64(0, &format, sizeof(format));
	h = fnv1a64(h, k->moddir, strlen(k->moddir) + 1);
	h = hash_file_id(h, s->init);
	h = hash_file_id(h, BUSYBOX);
	for (const char *const *m = s->modules; *m; m++)
		h = fnv1a64(h, *m, strlen(*m) + 1);
	if (s->fio)
		h = hash_file_id(h, FIO);
	snprintf(path, len, "%s/initramfs-%s-%016" PRIx64 ".cpio", cache, k->version, h);
	if (access(path, R_OK) == 0)
		return 0;
	return build(k, s, path);
}

int initramfs_with_script(const char *base, const char *script, const char *out)
{
	uint8_t *b, *sc;
	size_t blen, slen;
	if (read_whole(script, &sc, &slen) < 0) {
		guest_err("--run=%s: %s", script, strerror(errno));
		return -1;
	}
	if (read_whole(base, &b, &blen) < 0) {
		free(sc);
		return -1;
	}
	/* The kernel unpacks concatenated archives in turn (buffer-format.rst). */
	FILE *f = fopen(out, "wb");
	bool ok = f && fwrite(b, 1, blen, f) == blen;
	free(b);
	struct cpio c;
	cpio_open(&c, f);
	cpio_file(&c, "vhu/run.sh", 0755, sc, slen);
	free(sc);
	int rc = cpio_close(&c) < 0 || !ok ? -1 : 0;
	if (rc)
		guest_err("cannot write %s: %s", out, strerror(errno));
	return rc;
}
