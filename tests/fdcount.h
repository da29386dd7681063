/* SPDX-License-Identifier: MIT */
/* Open file descriptors of a process, for leak checks in tests and fuzzers. */
#ifndef VHU_TEST_FDCOUNT_H
#define VHU_TEST_FDCOUNT_H

#include <dirent.h>
#include <stdio.h>
#include <sys/types.h>

/* Entries of an fd directory (. and .. included, so compare counts only);
 * -1 if it cannot be read (the process is gone). */
static inline int count_fds_in(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static inline int count_fds(void)
{
	return count_fds_in("/proc/self/fd");
}

static inline int count_fds_of(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	return count_fds_in(path);
}

#endif
