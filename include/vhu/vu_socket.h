/* SPDX-License-Identifier: MIT */
/*
 * vhost-user framing over a Unix stream socket, for both roles: a message
 * is a 12-byte header, a payload and up to VHU_USER_MAX_FDS descriptors in
 * SCM_RIGHTS ancillary data that arrive with the header.
 */
#ifndef VHU_VU_SOCKET_H
#define VHU_VU_SOCKET_H

#include "vhu/visibility.h"

#include "vhu/vhost_user.h"

VHU_API_BEGIN

/* Send header, payload (hdr.size bytes) and m->fds[0 .. nfds). Retries on
 * EINTR and partial writes; MSG_NOSIGNAL, so a closed peer is -EPIPE. */
int vhu_user_send(int sock, const struct vhu_user_msg *m);

/*
 * Receive one message into *m. timeout_ms < 0 waits for ever, otherwise it
 * bounds the wait for the whole message. Received fds are close-on-exec
 * and owned by *m (vhu_user_msg_close_fds); on any error none are left open.
 *   -ECONNRESET  the peer closed the connection (also mid-message)
 *   -ETIMEDOUT   nothing, or only part of a message, within timeout_ms
 *   -E2BIG       more fds than VHU_USER_MAX_FDS (all closed; the message
 *                itself was read, so the stream stays in step)
 *   -EMSGSIZE    payload larger than any message has; it was drained if
 *                at most 64 KiB, so the stream stays in step
 *   -EPROTO      payload too large to drain: close the connection
 */
int vhu_user_recv(int sock, struct vhu_user_msg *m, int timeout_ms);
void vhu_user_msg_close_fds(struct vhu_user_msg *m);

/* Listening socket at path (a stale socket file is replaced). */
int vhu_user_listen(const char *path);
/* Accept one connection, waiting up to timeout_ms (< 0: for ever). */
int vhu_user_accept(int listen_fd, int timeout_ms);
/* Connect to path, retrying while it does not exist or refuses, for up to
 * timeout_ms. */
int vhu_user_connect(const char *path, int timeout_ms);

VHU_API_END

#endif
