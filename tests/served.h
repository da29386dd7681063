/* SPDX-License-Identifier: MIT */
/*
 * For tests that run the back-end library in a thread of their own: one
 * connection served to its end, and a config space of zeroes for devices
 * that have nothing to say in it.
 */
#ifndef VHU_TEST_SERVED_H
#define VHU_TEST_SERVED_H

#include <stdatomic.h>
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

/* A device for tests that look only at the data path: it fills every
 * writable byte with SERVED_WRITTEN and counts chains it could not map
 * (returned with nothing written). */
#define SERVED_WRITTEN 0x5a
static atomic_uint served_faults;

static inline void served_fill(struct vhu_device *dev, struct vhu_queue *q, unsigned ev)
{
	(void)dev;
	(void)ev;
	struct vhu_vq_elem e;
	struct iovec iov[16];
	int r;
	while ((r = vhu_queue_pop(q, &e, iov, 16)) != 0) {
		if (r < 0)
			atomic_fetch_add(&served_faults, 1);
		else
			for (unsigned i = e.out_num; i < (unsigned)e.out_num + e.in_num; i++)
				memset(iov[i].iov_base, SERVED_WRITTEN, iov[i].iov_len);
		vhu_queue_push(q, &e, r > 0 ? e.in_len : 0);
	}
	vhu_queue_notify(q);
}

__attribute__((unused)) static const struct vhu_device_ops served_filler = { .handle = served_fill,
									     .get_config = zero_config };

#endif
