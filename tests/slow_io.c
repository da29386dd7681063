/* SPDX-License-Identifier: MIT */
/*
 * A slow disk, for crash tests: an LD_PRELOAD shim that sleeps
 * VHU_SLOW_US microseconds in every preadv/pwritev before doing it, so that
 * a back-end (vhu-blk --engine=threads) killed at a random moment almost
 * always holds requests it has taken and not completed, which the restarted
 * one must resubmit. Test code only.
 */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static void slow(void)
{
	const char *s = getenv("VHU_SLOW_US");
	long us = s ? strtol(s, NULL, 0) : 0;
	if (us > 0) {
		struct timespec t = { us / 1000000, us % 1000000 * 1000 };
		nanosleep(&t, NULL);
	}
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	slow();
	return NEXT(preadv)(fd, iov, n, off);
}

ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
	slow();
	return NEXT(preadv64)(fd, iov, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	slow();
	return NEXT(pwritev)(fd, iov, n, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off)
{
	slow();
	return NEXT(pwritev64)(fd, iov, n, off);
}
