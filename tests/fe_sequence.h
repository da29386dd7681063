/* SPDX-License-Identifier: MIT */
/*
 * The front-end calls fuzz_frontend makes against a hostile back-end, shared
 * with the test that records a real back-end's answers to them as that
 * fuzzer's seed (test_frontend): connect, read config and status, start one
 * queue, stop it.
 */
#ifndef VHU_TEST_FE_SEQUENCE_H
#define VHU_TEST_FE_SEQUENCE_H

#include "vhu/frontend.h"

/* Returns 0, or the first call's error. fd is the connection (consumed). */
static inline int fe_sequence(int fd, int timeout_ms)
{
	struct vhu_fe *fe = NULL;
	struct vhu_fe_config c = { .fd = fd, .timeout_ms = timeout_ms };
	int r = vhu_fe_connect(&fe, &c);
	if (r)
		return r;
	uint8_t cfg[64], st;
	int rc = vhu_fe_get_config(fe, 0, cfg, sizeof(cfg));
	int rs = vhu_fe_get_status(fe, &st);
	struct vhu_fe_setup s = { .features = ~0ull, .num_queues = 1, .queue_size = 8,
				  .notify = VHU_FE_NOTIFY_EVENTFD, .mem_size = 4096, .indirect_max = 4 };
	int rst = vhu_fe_start(fe, &s);
	int rsp = rst ? 0 : vhu_fe_stop(fe);
	vhu_fe_close(fe);
	return rc ? rc : rs ? rs : rst ? rst : rsp;
}

#endif
