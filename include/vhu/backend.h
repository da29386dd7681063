/*
 * The vhost-user back-end: a transport of the device core (vhu/device.h).
 * It serves one device to one front-end at a time over a Unix socket:
 * negotiation, the memory table, the rings' addresses and fds, config
 * space, status, and the back-end channel. The device's queues run as the
 * device was made to (a thread per queue, a poll group, or the
 * application's loop); the back-end pauses a queue (takes its lock, the
 * device's drain op finishing its requests) before it changes anything the
 * queue depends on: the ring (GET_VRING_BASE), the memory table
 * (SET_MEM_TABLE, ADD/REM_MEM_REG) or the device (RESET).
 *
 * Threads: the control loop runs in the caller's thread, either
 * vhu_backend_run_listen/run_conn, or the application's own loop through
 * vhu_backend_event_fd/attach/dispatch (then one thread can serve the
 * control sockets of many back-ends).
 */
#ifndef VHU_BACKEND_H
#define VHU_BACKEND_H

#include "vhu/visibility.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhu/device.h"
#include "vhu/log.h"
#include "vhu/mem.h"
#include "vhu/vhost_user.h"
#include "vhu/vq.h"

VHU_API_BEGIN

struct vhu_backend;

/* The protocol features the library itself serves. */
#define VHU_BACKEND_PROTOCOL_FEATURES                                                     \
	((1ull << VHU_USER_PROTOCOL_F_MQ) | (1ull << VHU_USER_PROTOCOL_F_REPLY_ACK) |      \
	 (1ull << VHU_USER_PROTOCOL_F_BACKEND_REQ) | (1ull << VHU_USER_PROTOCOL_F_CONFIG) | \
	 (1ull << VHU_USER_PROTOCOL_F_RESET_DEVICE) |                                      \
	 (1ull << VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS) |                              \
	 (1ull << VHU_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | (1ull << VHU_USER_PROTOCOL_F_STATUS) | \
	 (1ull << VHU_USER_PROTOCOL_F_INFLIGHT_SHMFD) | (1ull << VHU_USER_PROTOCOL_F_LOG_SHMFD) | \
	 (1ull << VHU_USER_PROTOCOL_F_PAGEFAULT))
/* The ones a device with a request op may offer too. */
#define VHU_BACKEND_DEVICE_PROTOCOL_FEATURES                                              \
	((1ull << VHU_USER_PROTOCOL_F_RARP) | (1ull << VHU_USER_PROTOCOL_F_NET_MTU) |      \
	 (1ull << VHU_USER_PROTOCOL_F_CRYPTO_SESSION))

/* Who serves a front-end request: the back-end library, the device's
 * request op, nobody (its feature is never offered), or it is not a
 * request vhu knows. One row per request in src/backend/handlers.c. */
enum vhu_backend_serves { VHU_SERVES_UNKNOWN, VHU_SERVES_LIBRARY, VHU_SERVES_DEVICE, VHU_SERVES_NOT_OFFERED };
enum vhu_backend_serves vhu_backend_serves(uint32_t request);

struct vhu_backend_config {
	/* The device served; it must outlive the back-end, and has one
	 * transport at a time (-EBUSY). Logging goes through its hook. */
	struct vhu_device *device;
	/* offered (masked to what vhu implements). HOST_NOTIFIER, not in
	 * VHU_BACKEND_PROTOCOL_FEATURES, gives each queue a doorbell page
	 * (thread per queue only; see ARCHITECTURE.md, "Doorbells"). */
	uint64_t protocol_features;
	/* Optional. A device-specific request (vhu_backend_serves() says
	 * VHU_SERVES_DEVICE: SEND_RARP, NET_SET_MTU, crypto sessions,
	 * GPU_SET_SOCKET), already checked against the protocol's message
	 * table. It may take m's fds (set them to -1); a reply body goes in
	 * reply->payload with reply->hdr.size set (0: none, and with
	 * REPLY_ACK the return value is acked). Return 0 or -errno. The
	 * protocol features those requests need are offered only with it. */
	int (*request)(struct vhu_backend *be, struct vhu_user_msg *m, struct vhu_user_msg *reply);
	/* Optional. For an application that reaches guest memory from threads
	 * the back-end does not pause (vhu_backend_mem): called on the control
	 * thread with changing true before the memory table changes
	 * (SET_MEM_TABLE, ADD/REM_MEM_REG, the end of a session), when nothing
	 * may touch the table or the memory behind it any more, and with
	 * changing false after it (changed, or left as it was by a refused
	 * request), when it may be looked up again. Must not fail. */
	void (*memory)(struct vhu_backend *be, bool changing);
	void *opaque;                 /* the application's, for its hooks (vhu_backend_opaque) */
};

/* Create a back-end for cfg->device. Returns NULL with errno set on failure. */
struct vhu_backend *vhu_backend_new(const struct vhu_backend_config *cfg);
/* Ends the session (the device is reset) and detaches from the device. */
void vhu_backend_free(struct vhu_backend *be);
struct vhu_device *vhu_backend_device(struct vhu_backend *be);

/* Serve front-ends on a listening socket (server role) until stopped:
 * after a disconnect the device is reset and the next connection accepted.
 * Returns 0 when stopped, or a negative errno. */
int vhu_backend_run_listen(struct vhu_backend *be, int listen_fd);
/* Serve one already-connected socket (--fd, or the client role); returns
 * when the front-end disconnects or the back-end is stopped. */
int vhu_backend_run_conn(struct vhu_backend *be, int conn_fd);
/* Ask the control loop to end soon. Async-signal-safe. */
void vhu_backend_stop(struct vhu_backend *be);

/*
 * The control loop in the application's own event loop or reactor (and for
 * a device whose queues are VHU_EXEC_APP, its queues too): vhu then blocks
 * only while it reads the rest of a message that has begun to arrive. The
 * application accepts or connects the socket itself, attaches it, adds
 * vhu_backend_event_fd() (an epoll fd, readable whenever vhu has something
 * to do: a message, an in-band notice, and with VHU_EXEC_APP a kick or a
 * device completion) to its loop, and calls vhu_backend_dispatch() whenever
 * it is readable. With VHU_EXEC_APP device handlers are called from there;
 * a queue without a kick fd (polling mode) is served on every call.
 */
int vhu_backend_event_fd(const struct vhu_backend *be);
/* Start a session on a connected socket; vhu owns it from now on. -EBUSY if one is attached. */
int vhu_backend_attach(struct vhu_backend *be, int conn_fd);
/* Serve what is pending, never waiting for more. 0; -ENOTCONN with no
 * attached session; -ECONNRESET when the session ended (front-end gone or
 * dropped for a protocol error: the device is reset, the socket closed,
 * and the next may be attached). */
int vhu_backend_dispatch(struct vhu_backend *be);

/* Send BACKEND_CONFIG_CHANGE_MSG on the back-end channel, if negotiated
 * (what vhu_device_config_changed does for a device on this transport). */
int vhu_backend_config_changed(struct vhu_backend *be);
uint64_t vhu_backend_features(const struct vhu_backend *be);
/* The session's guest memory table. The address is the back-end's for its
 * life; what it holds changes only between the memory hook's two calls
 * (and is empty between sessions). */
const struct vhu_mem *vhu_backend_mem(const struct vhu_backend *be);
void *vhu_backend_opaque(const struct vhu_backend *be);
void vhu_backend_log(struct vhu_backend *be, enum vhu_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

VHU_API_END

#endif
