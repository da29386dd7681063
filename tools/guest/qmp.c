/* SPDX-License-Identifier: MIT */
/*
 * A minimal QMP client for `vhu guest --migrate-to`: connect to QEMU's
 * monitor socket, leave capabilities negotiation, run one command at a time
 * and return its reply line. QMP sends one JSON object per line; events
 * ({"event": ...}) between a command and its reply are skipped. Values are
 * read out of the reply text by key (qmp_num, qmp_str), which is all the
 * migration run needs from query-migrate.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

/* One line into q->line (without its newline); -1 on EOF, error or timeout. */
static int read_line(struct qmp *q, double deadline)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		if (nl) {
			size_t n = (size_t)(nl - q->buf);
			size_t keep = n < sizeof(q->line) - 1 ? n : sizeof(q->line) - 1;
			memcpy(q->line, q->buf, keep);
			q->line[keep] = 0;
			q->len -= n + 1;
			memmove(q->buf, nl + 1, q->len);
			return 0;
		}
		if (q->len == sizeof(q->buf))
			q->len = 0;	/* a line longer than we keep: drop it */
		int ms = (int)((deadline - guest_now()) * 1000);
		struct pollfd p = { q->fd, POLLIN, 0 };
		if (ms <= 0 || poll(&p, 1, ms) != 1)
			return -1;
		ssize_t r = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (r <= 0)
			return -1;
		q->len += (size_t)r;
	}
}

int qmp_open(struct qmp *q, const char *path, double timeout_s)
{
	double deadline = guest_now() + timeout_s;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	memset(q, 0, sizeof(*q));
	q->fd = -1;
	if (strlen(path) >= sizeof(a.sun_path)) {
		guest_err("QMP socket path too long: %s", path);
		return -1;
	}
	strcpy(a.sun_path, path);
	while ((q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0 &&
	       connect(q->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(q->fd);
		q->fd = -1;
		if (guest_now() > deadline) {
			guest_err("QEMU's monitor at %s does not answer: %s", path, strerror(errno));
			return -1;
		}
		usleep(20000);
	}
	char reply[256];
	if (q->fd < 0 || read_line(q, deadline) < 0 || !strstr(q->line, "\"QMP\"") ||
	    qmp_cmd(q, "{\"execute\": \"qmp_capabilities\"}", reply, sizeof(reply), timeout_s) < 0) {
		guest_err("no QMP greeting from %s", path);
		qmp_close(q);
		return -1;
	}
	return 0;
}

int qmp_cmd(struct qmp *q, const char *json, char *reply, size_t len, double timeout_s)
{
	double deadline = guest_now() + timeout_s;
	size_t n = strlen(json);
	if (send(q->fd, json, n, MSG_NOSIGNAL) != (ssize_t)n || send(q->fd, "\n", 1, MSG_NOSIGNAL) != 1)
		return -1;
	while (read_line(q, deadline) == 0) {
		if (strstr(q->line, "\"event\""))
			continue;
		snprintf(reply, len, "%s", q->line);
		return strstr(q->line, "\"return\"") ? 0 : -1;
	}
	snprintf(reply, len, "no reply");
	return -1;
}

void qmp_close(struct qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}

/* The number after "key": in a reply (the first such key), or -1. */
double qmp_num(const char *reply, const char *key)
{
	char pat[80];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(reply, pat);
	return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* The string after "key": in a reply, into out ("" if absent). */
void qmp_str(const char *reply, const char *key, char *out, size_t len)
{
	char pat[80];
	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	const char *p = strstr(reply, pat);
	out[0] = 0;
	if (!p)
		return;
	p += strlen(pat);
	size_t n = strcspn(p, "\"");
	snprintf(out, len, "%.*s", (int)n, p);
}
