/* SPDX-License-Identifier: MIT */
/*
 * The "newc" cpio format the kernel unpacks as its initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte
 * ASCII header of 13 hex fields, the name and the data, each padded to 4.
 */
#include <string.h>
#include <sys/stat.h>

#include "guest.h"

static void pad4(struct cpio *c)
{
	static const char zeros[4];
	long at = ftell(c->f);
	if (at < 0 || (at & 3 && fwrite(zeros, 1, 4 - (size_t)(at & 3), c->f) != 4 - (size_t)(at & 3)))
		c->error = -1;
}

static void entry(struct cpio *c, const char *name, unsigned mode, const void *data, size_t len, unsigned rmaj,
		  unsigned rmin)
{
	size_t nlen = strlen(name) + 1;
	/* ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check;
	 * mtime 0 keeps the archive the same from run to run */
	if (fprintf(c->f, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ++c->ino, mode, 0, 0,
		    S_ISDIR(mode) ? 2 : 1, 0, (unsigned)len, 0, 0, rmaj, rmin, (unsigned)nlen, 0) < 0 ||
	    fwrite(name, 1, nlen, c->f) != nlen)
		c->error = -1;
	pad4(c);
	if (len && fwrite(data, 1, len, c->f) != len)
		c->error = -1;
	pad4(c);
}

void cpio_open(struct cpio *c, FILE *f)
{
	c->f = f;
	c->ino = 0;
	c->error = f ? 0 : -1;
}

void cpio_dir(struct cpio *c, const char *name)
{
	entry(c, name, S_IFDIR | 0755, NULL, 0, 0, 0);
}

void cpio_file(struct cpio *c, const char *name, unsigned mode, const void *data, size_t len)
{
	entry(c, name, S_IFREG | mode, data, len, 0, 0);
}

void cpio_symlink(struct cpio *c, const char *name, const char *target)
{
	entry(c, name, S_IFLNK | 0777, target, strlen(target), 0, 0);
}

void cpio_chardev(struct cpio *c, const char *name, unsigned major, unsigned minor)
{
	entry(c, name, S_IFCHR | 0600, NULL, 0, major, minor);
}

int cpio_close(struct cpio *c)
{
	entry(c, "TRAILER!!!", 0, NULL, 0, 0, 0);
	if (c->f && fclose(c->f))
		c->error = -1;
	c->f = NULL;
	return c->error;
}
