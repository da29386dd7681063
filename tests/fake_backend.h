/* SPDX-License-Identifier: MIT */
/*
 * A scripted back-end for tests of vhu's front-end library: it answers the
 * handshake and acknowledges every request (offering what the test sets in
 * features and pf), keeps its end of the back-end channel, records the
 * IOTLB messages it gets, and lets the test send anything on the channel
 * (fake_chan_send), hostile or not. Include after cmocka.h.
 */
#ifndef VHU_TEST_FAKE_BACKEND_H
#define VHU_TEST_FAKE_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vhu/frontend.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"

struct fake {
	int sock, chan;
	uint64_t features, pf;
	pthread_mutex_t lock;
	atomic_bool miss_before_reply;   /* send an IOTLB miss on the channel before the next reply */
	struct vhu_user_iotlb got[16];   /* the first IOTLB messages it was sent */
	unsigned ngot;                   /* and how many in all */
};

static inline void *fake_backend(void *arg)
{
	struct fake *f = arg;
	struct vhu_user_msg m, r;

	while (vhu_user_recv(f->sock, &m, 10000) == 0) {
		memset(&r, 0, sizeof(r));
		r.hdr = (struct vhu_user_hdr){ m.hdr.request, VHU_USER_VERSION | VHU_USER_REPLY_MASK, 8 };
		bool reply = m.hdr.flags & VHU_USER_NEED_REPLY_MASK;
		switch (m.hdr.request) {
		case VHU_USER_GET_FEATURES:
			r.payload.u64 = f->features;
			reply = true;
			break;
		case VHU_USER_GET_PROTOCOL_FEATURES:
			r.payload.u64 = f->pf;
			reply = true;
			break;
		case VHU_USER_SET_BACKEND_REQ_FD:
			f->chan = m.fds[0];
			m.nfds = 0;
			break;
		case VHU_USER_IOTLB_MSG:
			reply = true;   /* always answered (the spec) */
			pthread_mutex_lock(&f->lock);
			if (f->ngot < 16)
				f->got[f->ngot] = m.payload.iotlb;
			f->ngot++;
			pthread_mutex_unlock(&f->lock);
			break;
		}
		vhu_user_msg_close_fds(&m);
		if (reply && atomic_exchange(&f->miss_before_reply, false)) {
			struct vhu_user_msg x;
			memset(&x, 0, sizeof(x));
			x.hdr = (struct vhu_user_hdr){ VHU_USER_BACKEND_IOTLB_MSG, VHU_USER_VERSION, sizeof(x.payload.iotlb) };
			x.payload.iotlb = (struct vhu_user_iotlb){ .iova = VHU_FE_IOVA_BASE + 8192, .size = 1,
								   .perm = VHU_USER_IOTLB_PERM_RO, .type = VHU_USER_IOTLB_MISS };
			vhu_user_send(f->chan, &x);
		}
		if (reply)
			vhu_user_send(f->sock, &r);
	}
	return NULL;
}

/* Send a back-end request of size bytes (payload: len bytes, and fd if
 * >= 0) on the channel and serve it (as an application's loop would);
 * with need_reply, the front-end's answer. */
static inline int64_t fake_chan_send(struct fake *f, struct vhu_fe *fe, uint32_t request, uint32_t size,
				     const void *payload, size_t len, int fd, bool need_reply)
{
	struct vhu_user_msg m, r;
	memset(&m, 0, sizeof(m));
	m.hdr = (struct vhu_user_hdr){ request, VHU_USER_VERSION | (need_reply ? VHU_USER_NEED_REPLY_MASK : 0), size };
	memcpy(&m.payload, payload, len);
	if (fd >= 0) {
		m.nfds = 1;
		m.fds[0] = fd;
	}
	assert_int_equal(vhu_user_send(f->chan, &m), 0);
	vhu_fe_serve_backend(fe, 200);
	if (!need_reply)
		return 0;
	assert_int_equal(vhu_user_recv(f->chan, &r, 2000), 0);
	assert_int_equal(r.hdr.request, request);
	assert_true(r.hdr.flags & VHU_USER_REPLY_MASK);
	assert_int_equal(r.hdr.size, 8);
	return (int64_t)r.payload.u64;
}

static inline unsigned fake_iotlb_seen(struct fake *f)
{
	pthread_mutex_lock(&f->lock);
	unsigned n = f->ngot;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* A front-end connected to the fake and started: one queue of 16, with the
 * IOMMU as asked, and doorbells (HOST_NOTIFIER offered and negotiated). */
static inline void fake_up(struct fake *f, pthread_t *th, struct vhu_fe **fe, enum vhu_fe_iommu mode, bool doorbells)
{
	int sv[2];
	*f = (struct fake){
		.chan = -1,
		.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_ACCESS_PLATFORM) | (1ull << VHU_USER_F_PROTOCOL_FEATURES),
		.pf = (1ull << VHU_USER_PROTOCOL_F_BACKEND_REQ) | (1ull << VHU_USER_PROTOCOL_F_REPLY_ACK) |
		      (doorbells ? 1ull << VHU_USER_PROTOCOL_F_HOST_NOTIFIER : 0),
	};
	pthread_mutex_init(&f->lock, NULL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->sock = sv[1];
	assert_int_equal(pthread_create(th, NULL, fake_backend, f), 0);
	struct vhu_fe_config fc = { .fd = sv[0], .timeout_ms = 3000, .doorbells = doorbells };
	assert_int_equal(vhu_fe_connect(fe, &fc), 0);
	struct vhu_fe_setup su = { .features = f->features, .num_queues = 1, .queue_size = 16,
				   .mem_size = 1 << 20, .notify = VHU_FE_NOTIFY_EVENTFD, .iommu = mode };
	assert_int_equal(vhu_fe_start(*fe, &su), 0);
	assert_true(f->chan >= 0);
}

static inline void fake_down(struct fake *f, pthread_t th, struct vhu_fe *fe)
{
	vhu_fe_close(fe);
	pthread_join(th, NULL);
	close(f->sock);
	close(f->chan);
	pthread_mutex_destroy(&f->lock);
}

#endif
