/* SPDX-License-Identifier: MIT */
/* vhost-user framing: SCM_RIGHTS, partial I/O, EINTR, bounded waits. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vhu/vu_socket.h"

#define DRAIN_MAX (64 * 1024)

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is readable or the deadline passes (deadline < 0: never). */
static int wait_readable(int fd, int64_t deadline)
{
	for (;;) {
		int t = -1;
		if (deadline >= 0) {
			/* a deadline already passed still gets one look */
			int64_t left = deadline - now_ms();
			t = left <= 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, t);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

void vhu_user_msg_close_fds(struct vhu_user_msg *m)
{
	for (unsigned i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
}

int vhu_user_send(int sock, const struct vhu_user_msg *m)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHU_USER_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	size_t total = sizeof(m->hdr) + m->hdr.size, done = 0;

	if (m->hdr.size > sizeof(m->payload) || m->nfds > VHU_USER_MAX_FDS)
		return -EINVAL;
	while (done < total) {
		struct iovec iov[2];
		int niov = 0;
		if (done < sizeof(m->hdr)) {
			iov[niov].iov_base = (char *)&m->hdr + done;
			iov[niov++].iov_len = sizeof(m->hdr) - done;
			if (m->hdr.size) {
				iov[niov].iov_base = (void *)&m->payload;
				iov[niov++].iov_len = m->hdr.size;
			}
		} else {
			iov[niov].iov_base = (char *)&m->payload + (done - sizeof(m->hdr));
			iov[niov++].iov_len = total - done;
		}
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = niov };
		/* the fds travel with the first byte */
		if (done == 0 && m->nfds) {
			memset(&ctl, 0, sizeof(ctl));
			mh.msg_control = ctl.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * m->nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * m->nfds);
			memcpy(CMSG_DATA(c), m->fds, sizeof(int) * m->nfds);
		}
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = { .fd = sock, .events = POLLOUT };
				poll(&p, 1, 1000);
				continue;
			}
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes (no fds expected any more). */
static int read_full(int sock, void *buf, size_t len, int64_t deadline)
{
	char *p = buf;
	while (len) {
		ssize_t n = recv(sock, p, len, MSG_DONTWAIT);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			int r = wait_readable(sock, deadline);
			if (r < 0)
				return r;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int vhu_user_recv(int sock, struct vhu_user_msg *m, int timeout_ms)
{
	/*
	 * Room for one fd more than a message may carry: a message with too
	 * many is then seen as such from what arrived, not only from
	 * MSG_CTRUNC, which not every recvmsg reports (qemu-user's does not).
	 */
	union {
		char buf[CMSG_SPACE(sizeof(int) * (VHU_USER_MAX_FDS + 1))];
		struct cmsghdr align;
	} ctl;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int err = 0, r;
	ssize_t n;

	m->nfds = 0;
	memset(&m->hdr, 0, sizeof(m->hdr));
	/* Read first and wait only if nothing is there: a front-end sends
	 * its messages in runs (QEMU's stop: three without waiting), and a
	 * poll before every read was two system calls more per message. */
	for (;;) {
		struct iovec iov = { .iov_base = &m->hdr, .iov_len = sizeof(m->hdr) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = wait_readable(sock, deadline)) < 0)
				return r;
			continue;
		}
		if (n < 0)
			return -errno;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			unsigned k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int fds[VHU_USER_MAX_FDS + 1];
			if (k > VHU_USER_MAX_FDS + 1)
				k = VHU_USER_MAX_FDS + 1;
			memcpy(fds, CMSG_DATA(c), k * sizeof(int));
			for (unsigned i = 0; i < k; i++) {
				if (m->nfds < VHU_USER_MAX_FDS) {
					m->fds[m->nfds++] = fds[i];
				} else {
					close(fds[i]);
					err = -E2BIG;
				}
			}
		}
		/* The kernel drops fds beyond our control buffer and says so. */
		if (mh.msg_flags & MSG_CTRUNC)
			err = -E2BIG;
		break;
	}
	if (n == 0) {
		vhu_user_msg_close_fds(m);
		return -ECONNRESET;
	}
	if ((size_t)n < sizeof(m->hdr)) {
		r = read_full(sock, (char *)&m->hdr + n, sizeof(m->hdr) - (size_t)n, deadline);
		if (r < 0)
			goto fail;
	}
	if (m->hdr.size > sizeof(m->payload)) {
		if (m->hdr.size > DRAIN_MAX) {
			r = -EPROTO;
			goto fail;
		}
		/* read and drop it so the next header is where it belongs */
		char sink[4096];
		for (uint32_t left = m->hdr.size; left;) {
			uint32_t c = left < sizeof(sink) ? left : sizeof(sink);
			r = read_full(sock, sink, c, deadline);
			if (r < 0)
				goto fail;
			left -= c;
		}
		r = -EMSGSIZE;
		goto fail;
	}
	if (m->hdr.size) {
		r = read_full(sock, &m->payload, m->hdr.size, deadline);
		if (r < 0)
			goto fail;
	}
	/* what the peer did not send reads as zero, never as stale bytes */
	memset((char *)&m->payload + m->hdr.size, 0, sizeof(m->payload) - m->hdr.size);
	if (err) {
		r = err;
		goto fail;
	}
	return 0;
fail:
	vhu_user_msg_close_fds(m);
	return r;
}

int vhu_user_listen(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int vhu_user_accept(int listen_fd, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	for (;;) {
		int r = wait_readable(listen_fd, deadline);
		if (r < 0)
			return r;
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			return -errno;
	}
}

int vhu_user_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		int e = errno;
		close(fd);
		if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN) || now_ms() >= deadline)
			return -e;
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}
