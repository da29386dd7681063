/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the back-end's session state machine, fed a sequence of
 * messages from the input, with fd placeholders that the harness turns into
 * real memfds (1 MiB, whose contents come from the input, so memory tables
 * map real memory and rings can hold real descriptors) and eventfds. The
 * stream is written into a socketpair, the write side closed, and
 * vhu_backend_run_conn() serves it to the end; the queue workers of a small
 * device run the rings meanwhile. Checked: no crash, no sanitizer report,
 * and no fd left open after the session (the back-end lives on across
 * inputs, as it does across reconnects).
 *
 * Message encoding, repeated: request (1 byte), flags (1), size (2, LE),
 * payload (size bytes), fds (1 byte: count in bits 0-1, bit 2+i set: fd i
 * is an eventfd, else a memfd).
 */
#include <assert.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tests/fdcount.h"
#include "vhu/backend.h"
#include "vhu/virtio.h"
#include "vhu/vu_socket.h"

#define GUEST (1u << 20)

static void handle(struct vhu_device *dev, struct vhu_queue *q, unsigned ev)
{
	struct vhu_vq_elem e;
	struct iovec iov[32];
	int r;
	(void)dev;
	(void)ev;
	while ((r = vhu_queue_pop(q, &e, iov, 32)) != 0) {
		if (r < 0 && vhu_dev_vq_broken(vhu_queue_vq(q)))
			break;
		/* touch every byte the device may write, as a device would */
		if (r == 1)
			for (unsigned i = e.out_num; i < e.out_num + e.in_num; i++)
				memset(iov[i].iov_base, 0x5a, iov[i].iov_len);
		vhu_queue_push(q, &e, r == 1 ? (uint32_t)e.in_len : 0);
	}
	vhu_queue_notify(q);
}

static uint8_t config[32];
static int get_config(struct vhu_device *dev, uint8_t *b, uint32_t o, uint32_t l)
{
	(void)dev;
	memcpy(b, config + o, l);
	return 0;
}
static int set_config(struct vhu_device *dev, const uint8_t *b, uint32_t o, uint32_t l, uint32_t f)
{
	(void)dev;
	(void)f;
	memcpy(config + o, b, l);
	return 0;
}
static const struct vhu_device_ops ops = { .handle = handle, .get_config = get_config, .set_config = set_config };

static struct vhu_backend *be;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!be) {
		struct vhu_device_config d = {
			.ops = &ops, .num_queues = 2, .max_queue_size = 256,
			/* ACCESS_PLATFORM: IOTLB messages mixed with rings at IOVAs */
			.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) |
				    VHU_BIT(VHU_F_INDIRECT_DESC) | VHU_BIT(VHU_F_ACCESS_PLATFORM),
			.config_size = sizeof(config),
		};
		struct vhu_device *dev = vhu_device_new(&d);
		assert(dev);
		struct vhu_backend_config c = { .device = dev, .protocol_features = ~0ull };
		be = vhu_backend_new(&c);
		assert(be);
	}
	int before = count_fds(), sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	int bufsz = 1 << 20;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	/* a guest memory image from the input, shared by every memfd */
	int memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	if (ftruncate(memfd, GUEST) == 0 && size)
		(void)!pwrite(memfd, data, size < GUEST ? size : GUEST, 0);
	/* every page present: after POSTCOPY_LISTEN a missing one would put
	 * the thread touching it to sleep until a front-end placed it, and
	 * this one never does */
	(void)!fallocate(memfd, 0, 0, GUEST);
	size_t p = 0;
	for (unsigned nmsg = 0; p + 5 <= size && nmsg < 64; nmsg++) {
		struct vhu_user_msg m;
		memset(&m, 0, sizeof(m));
		m.hdr.request = data[p];
		m.hdr.flags = data[p + 1];
		uint32_t sz = (uint32_t)(data[p + 2] | data[p + 3] << 8);
		p += 4;
		if (sz > sizeof(m.payload))
			sz = sizeof(m.payload);
		if (sz > size - p)
			sz = (uint32_t)(size - p);
		m.hdr.size = sz;
		memcpy(&m.payload, data + p, sz);
		p += sz;
		uint8_t fds = p < size ? data[p++] : 0;
		m.nfds = fds & 3;
		for (unsigned i = 0; i < m.nfds; i++)
			m.fds[i] = (fds >> (2 + i) & 1) ? eventfd(0, EFD_CLOEXEC) : dup(memfd);
		int r = vhu_user_send(sv[0], &m);
		for (unsigned i = 0; i < m.nfds; i++)
			close(m.fds[i]);
		if (r < 0)
			break;
	}
	shutdown(sv[0], SHUT_WR);
	vhu_backend_run_conn(be, sv[1]);   /* serves to EOF, resets, closes sv[1] */
	close(sv[0]);
	close(memfd);
	assert(count_fds() == before);
	return 0;
}
