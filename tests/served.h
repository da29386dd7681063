/* SPDX-License-Identifier: MIT */
/*
 * For tests that run the back-end library in a thread of their own: one
 * connection served to its end, and a config space of zeroes for devices
 * that have nothing to say in it.
 */
#ifndef VHU_TEST_SERVED_H
#define VHU_TEST_SERVED_H

#include <string.h>

#include "vhu/backend.h"

struct served {
	struct vhu_backend *be;
	int sock;
};

/* pthread_create(..., served_thread, &s): vhu_backend_run_conn(s.be, s.sock) */
static inline void *served_thread(void *arg)
{
	struct served *s = arg;
	vhu_backend_run_conn(s->be, s->sock);
	return NULL;
}

static inline int zero_config(struct vhu_device *dev, uint8_t *b, uint32_t o, uint32_t l)
{
	(void)dev;
	(void)o;
	memset(b, 0, l);
	return 0;
}

#endif
