/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel: which one, where its modules are, and the uncompressed
 * vmlinux QEMU can boot through the PVH entry point. Under TCG, SeaBIOS,
 * the bzImage's real-mode setup and its self-decompression cost seconds a
 * boot; Debian's x86 kernels have CONFIG_PVH=y, so QEMU can jump straight
 * into the ELF vmlinux if it has the XEN_ELFNOTE_PHYS32_ENTRY note.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest.h"

/* The newest /boot/vmlinuz-VERSION whose /lib/modules/VERSION exists. */
static int newest_boot_kernel(char *path, size_t len)
{
	DIR *d = opendir("/boot");
	char best[NAME_MAX + 1] = "";
	for (struct dirent *e; d && (e = readdir(d));) {
		char mods[PATH_MAX];
		if (strncmp(e->d_name, "vmlinuz-", 8))
			continue;
		snprintf(mods, sizeof(mods), "/lib/modules/%s", e->d_name + 8);
		if (is_dir(mods) && (!best[0] || strverscmp(e->d_name, best) > 0))
			snprintf(best, sizeof(best), "%s", e->d_name);
	}
	if (d)
		closedir(d);
	if (!best[0])
		return -1;
	snprintf(path, len, "/boot/%s", best);
	return 0;
}

/* Modules beside a kernel unpacked elsewhere (dpkg -x tree: boot/ and lib/modules/). */
static void find_moddir(struct guest_kernel *k)
{
	char copy[PATH_MAX], cand[PATH_MAX + 160];
	snprintf(copy, sizeof(copy), "%s", k->image);
	const char *dir = dirname(copy);
	/* beside the kernel (ROOT/boot and ROOT/lib/modules), then the system's */
	const char *const roots[] = { "/..", "/../usr", NULL };
	for (unsigned i = 0; i < 3; i++) {
		snprintf(cand, sizeof(cand), "%s%s/lib/modules/%s", roots[i] ? dir : "", roots[i] ? roots[i] : "",
			 k->version);
		if (is_dir(cand) && realpath(cand, k->moddir))
			return;
	}
	k->moddir[0] = 0;
}

static bool elf_has_pvh_note(const uint8_t *p, size_t len)
{
	if (len < sizeof(Elf64_Ehdr) || memcmp(p, ELFMAG, SELFMAG) || p[EI_CLASS] != ELFCLASS64)
		return false;
	const Elf64_Ehdr *eh = (const void *)p;
	if (eh->e_phoff > len || eh->e_phnum > (len - eh->e_phoff) / sizeof(Elf64_Phdr))
		return false;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const void *)(p + eh->e_phoff + i * sizeof(Elf64_Phdr));
		if (ph->p_type != PT_NOTE || ph->p_offset > len || ph->p_filesz > len - ph->p_offset)
			continue;
		for (uint64_t o = 0; o + sizeof(Elf64_Nhdr) <= ph->p_filesz;) {
			const Elf64_Nhdr *nh = (const void *)(p + ph->p_offset + o);
			uint64_t name = (nh->n_namesz + 3u) & ~3u, desc = (nh->n_descsz + 3u) & ~3u;
			/* XEN_ELFNOTE_PHYS32_ENTRY (18) in the "Xen" namespace */
			if (nh->n_type == 18 && nh->n_namesz == 4 &&
			    o + sizeof(*nh) + 4 <= ph->p_filesz && !memcmp(nh + 1, "Xen", 4))
				return true;
			o += sizeof(*nh) + name + desc;
		}
	}
	return false;
}

/*
 * The bzImage's protected-mode payload (boot protocol 2.08+: payload_offset
 * and payload_length at 0x248/0x24c, counted from the end of the setup
 * sectors), decompressed by the tool its magic names.
 */
static int extract_vmlinux(const struct guest_kernel *k, const char *out)
{
	uint8_t *img, *elf = NULL;
	size_t len, elf_len = 0;
	if (read_whole(k->image, &img, &len) < 0)
		return -1;
	int rc = -1;
	if (len < 0x250 || memcmp(img + 0x202, "HdrS", 4) || (img[0x206] | img[0x207] << 8) < 0x208)
		goto out;
	unsigned setup = img[0x1f1] ? img[0x1f1] : 4;
	uint32_t poff, plen;
	memcpy(&poff, img + 0x248, 4);
	memcpy(&plen, img + 0x24c, 4);
	uint64_t at = (uint64_t)(setup + 1) * 512 + poff;
	if (at > len || plen > len - at || plen < 6)
		goto out;
	static const struct {
		const char *magic;
		unsigned n;
		const char *tool;
	} kinds[] = {
		{ "\xfd" "7zXZ", 5, "xz" }, { "\x28\xb5\x2f\xfd", 4, "zstd" }, { "\x1f\x8b", 2, "gzip" },
		{ "\x02\x21\x4c\x18", 4, "lz4" }, { "BZh", 3, "bzip2" },
	};
	const char *tool = NULL;
	for (unsigned i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!memcmp(img + at, kinds[i].magic, kinds[i].n))
			tool = kinds[i].tool;
	char payload[PATH_MAX + 16];
	snprintf(payload, sizeof(payload), "%s.payload", out);
	/* the build appends the uncompressed size (4 bytes, arch/x86/boot/compressed's
	 * *_with_size rules) after the stream: the decompressor gets the stream alone */
	if (!tool || write_whole(payload, img + at, plen - 4) < 0)
		goto out;
	char *argv[] = { (char *)tool, "-dc", payload, NULL };
	int st = run_capture(argv, NULL, &elf, &elf_len);
	unlink(payload);
	if (st == 0 && elf && elf_has_pvh_note(elf, elf_len) && write_atomic(out, elf, elf_len) == 0)
		rc = 0;
out:
	free(elf);
	free(img);
	return rc;
}

int guest_kernel_find(struct guest_kernel *k, const char *kernel, const char *modules, const char *cache, bool pvh)
{
	memset(k, 0, sizeof(*k));
	if (kernel)
		snprintf(k->image, sizeof(k->image), "%s", kernel);
	else if (newest_boot_kernel(k->image, sizeof(k->image)) < 0) {
		guest_err("no kernel: /boot has no vmlinuz-VERSION with /lib/modules/VERSION "
			  "(apt-get install linux-image-amd64, or give --kernel=PATH)");
		return -1;
	}
	struct stat st;
	if (stat(k->image, &st) < 0 || !S_ISREG(st.st_mode)) {
		guest_err("kernel %s: %s", k->image, strerror(errno ? errno : EINVAL));
		return -1;
	}
	const char *base = strrchr(k->image, '/');
	base = base ? base + 1 : k->image;
	snprintf(k->version, sizeof(k->version), "%.127s", strncmp(base, "vmlinuz-", 8) ? base : base + 8);
	if (modules)
		snprintf(k->moddir, sizeof(k->moddir), "%s", modules);
	else
		find_moddir(k);
	if (!k->moddir[0] || !is_dir(k->moddir)) {
		guest_err("kernel %s: no module folder (looked for lib/modules/%s beside it and in /; give --modules=DIR)",
			  k->image, k->version);
		return -1;
	}
	/* cached by the kernel's identity: path, size and modification time */
	uint64_t h = fnv1a64(0, k->image, strlen(k->image));
	h = fnv1a64(h, &st.st_size, sizeof(st.st_size));
	h = fnv1a64(h, &st.st_mtime, sizeof(st.st_mtime));
	snprintf(k->boot, sizeof(k->boot), "%s/vmlinux-%s-%016" PRIx64, cache, k->version, h);
	k->pvh = pvh && (access(k->boot, R_OK) == 0 || extract_vmlinux(k, k->boot) == 0);
	if (!k->pvh)	/* not fatal: boot the bzImage the slow way */
		snprintf(k->boot, sizeof(k->boot), "%s", k->image);
	return 0;
}

static bool same_module(const char *path, const char *name)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	size_t n = strcspn(b, ".");
	if (n != strlen(name) || strncmp(b + n, ".ko", 3))
		return false;
	for (size_t i = 0; i < n; i++)	/* modprobe treats - and _ alike */
		if (b[i] != name[i] && !((b[i] == '-' || b[i] == '_') && (name[i] == '-' || name[i] == '_')))
			return false;
	return true;
}

static bool listed(char **files, size_t n, const char *f)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(files[i], f))
			return true;
	return false;
}

static int add_file(char ***files, size_t *n, const char *f)
{
	if (listed(*files, *n, f))
		return 0;
	char **bigger = realloc(*files, (*n + 1) * sizeof(char *));
	if (!bigger || !(bigger[*n] = strdup(f)))
		return -1;
	*files = bigger;
	(*n)++;
	return 0;
}

/* True if `name` is built into the kernel (modules.builtin lists it). */
static bool builtin(const struct guest_kernel *k, const char *name)
{
	char p[PATH_MAX + 32], line[512];
	snprintf(p, sizeof(p), "%s/modules.builtin", k->moddir);
	FILE *f = fopen(p, "r");
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		found = same_module(line, name);
	}
	if (f)
		fclose(f);
	return found;
}

int guest_modules_resolve(const struct guest_kernel *k, const char *const *names, char ***files, size_t *n)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/modules.dep", k->moddir);
	uint8_t *dep;
	size_t len;
	*files = NULL;
	*n = 0;
	if (read_whole(p, &dep, &len) < 0) {
		guest_err("%s: %s", p, strerror(errno));
		return -1;
	}
	char *text = (char *)dep;
	int rc = 0;
	for (; *names && !rc; names++) {
		if (builtin(k, *names))
			continue;
		/* "path: dep dep ...": modprobe loads the dependencies last to first */
		char *line = NULL;
		for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
			size_t colon = strcspn(l, ":\n");
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%.*s", (int)colon, l);
			if (l[colon] == ':' && same_module(path, *names)) {
				line = l;
				break;
			}
		}
		if (!line) {
			guest_err("module %s is neither in %s nor built in", *names, p);
			rc = -1;
			break;
		}
		size_t end = strcspn(line, "\n"), colon = strcspn(line, ":");
		char *deps[64];
		unsigned nd = 0;
		char buf[4096];
		snprintf(buf, sizeof(buf), "%.*s", (int)(end - colon - 1), line + colon + 1);
		for (char *s = buf, *t; nd < 64 && (t = strsep(&s, " "));)
			if (*t)
				deps[nd++] = t;
		while (nd && !rc)
			rc = add_file(files, n, deps[--nd]);
		snprintf(buf, sizeof(buf), "%.*s", (int)colon, line);
		if (!rc)
			rc = add_file(files, n, buf);
	}
	free(text);
	return rc;
}
