/* SPDX-License-Identifier: MIT */
/* Open file descriptors of this process, for leak checks in tests and fuzzers. */
#ifndef VHU_TEST_FDCOUNT_H
#define VHU_TEST_FDCOUNT_H

#include <dirent.h>

static inline int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

#endif
