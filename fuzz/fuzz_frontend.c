/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the front-end facing a hostile back-end. The input is
 * the whole stream the "back-end" sends (its replies, in order), written
 * into the socket before the front-end starts; the write side is then
 * closed, so running out of replies is an end-of-file, not a wait. The
 * front-end connects, reads config and status, starts one queue and stops
 * it. Checked: no crash, no sanitizer report, no fd left open.
 */
#include <assert.h>
#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tests/fdcount.h"
#include "vhu/frontend.h"
#include "vhu/virtio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int before = count_fds(), sv[2];
	if (size > 200000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	int big = 1 << 20;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	struct vhu_fe *fe = NULL;
	struct vhu_fe_config c = { .fd = sv[0], .timeout_ms = 20 };
	if (vhu_fe_connect(&fe, &c) == 0) {
		uint8_t cfg[64], st;
		(void)vhu_fe_get_config(fe, 0, cfg, sizeof(cfg));
		(void)vhu_fe_get_status(fe, &st);
		struct vhu_fe_setup s = { .features = ~0ull, .num_queues = 1, .queue_size = 8,
					  .notify = VHU_FE_NOTIFY_EVENTFD, .mem_size = 4096, .indirect_max = 4 };
		if (vhu_fe_start(fe, &s) == 0)
			(void)vhu_fe_stop(fe);
		vhu_fe_close(fe);
	}
	close(sv[1]);
	assert(count_fds() == before);
	return 0;
}
