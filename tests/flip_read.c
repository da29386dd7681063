/* SPDX-License-Identifier: MIT */
/*
 * A back-end that corrupts data, for proving that `vhu guest` notices: an
 * LD_PRELOAD shim over pread/preadv that flips one bit of every read that
 * covers byte VHU_FLIP_OFFSET of a file. It goes under any back-end that
 * reads with these calls (vhu-blk --engine=threads or sync,
 * qemu-storage-daemon with aio=threads); the image itself stays right, so
 * only the guest's read-back can catch it. Test code only.
 */
/* the shim defines both the plain and the 64 names: no header redirection */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long long flip_at(void)
{
	const char *s = getenv("VHU_FLIP_OFFSET");
	return s ? strtoll(s, NULL, 0) : -1;
}

static void flip(const struct iovec *iov, int n, off_t off, ssize_t got)
{
	long long at = flip_at();
	if (at < 0 || got <= 0 || at < off || at >= off + got)
		return;
	long long skip = at - off;
	for (int i = 0; i < n; i++) {
		if ((size_t)skip < iov[i].iov_len) {
			((uint8_t *)iov[i].iov_base)[skip] ^= 0x01;
			return;
		}
		skip -= (long long)iov[i].iov_len;
	}
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	ssize_t r = NEXT(preadv)(fd, iov, n, off);
	flip(iov, n, off, r);
	return r;
}

ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
	ssize_t r = NEXT(preadv64)(fd, iov, n, off);
	flip(iov, n, off, r);
	return r;
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
	ssize_t r = NEXT(pread)(fd, buf, len, off);
	struct iovec v = { buf, len };
	flip(&v, 1, off, r);
	return r;
}

ssize_t pread64(int fd, void *buf, size_t len, off64_t off)
{
	ssize_t r = NEXT(pread64)(fd, buf, len, off);
	struct iovec v = { buf, len };
	flip(&v, 1, off, r);
	return r;
}
