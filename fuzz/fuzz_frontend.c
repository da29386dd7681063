/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the front-end facing a hostile back-end. The input is
 * the whole stream the "back-end" sends (its replies, in order), written
 * into the socket before the front-end starts; the write side is then
 * closed, so running out of replies is an end-of-file, not a wait. The
 * front-end connects, reads config and status, starts one queue and stops
 * it (tests/fe_sequence.h). Checked: no crash, no sanitizer report, no fd
 * left open. Seed: a real back-end's answers, recorded by test_frontend.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tests/fdcount.h"
#include "../tests/fe_sequence.h"

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
	(void)fe_sequence(sv[0], 20);
	close(sv[1]);
	assert(count_fds() == before);
	return 0;
}
