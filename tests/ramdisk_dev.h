/* SPDX-License-Identifier: MIT */
/*
 * A RAM disk on the device core for tests of transports: virtio-blk IN and
 * OUT of one data segment each, everything else IOERR, a config space of
 * 60 bytes whose capacity is RAM_BYTES.
 */
#ifndef VHU_TEST_RAMDISK_DEV_H
#define VHU_TEST_RAMDISK_DEV_H

#include <endian.h>
#include <string.h>
#include <sys/uio.h>

#include "vhu/device.h"
#include "vhu/virtio_blk.h"

#define RAM_BYTES (4u << 20)
static uint8_t ramdisk[RAM_BYTES];

static void ram_handle(struct vhu_device *dev, struct vhu_queue *q, unsigned events)
{
	(void)dev;
	(void)events;
	struct vhu_vq_elem e;
	struct iovec iov[8];
	int got;
	while ((got = vhu_queue_pop(q, &e, iov, 8)) != 0) {
		if (got < 0) {
			/* taken but unusable (a buffer the device cannot reach):
			 * returned with nothing written (§2.7.8 allows 0) */
			if (vhu_dev_vq_broken(vhu_queue_vq(q)))
				break;
			vhu_queue_push(q, &e, 0);
			continue;
		}
		uint8_t st = VHU_BLK_S_IOERR;
		struct vhu_blk_req_hdr h;
		uint32_t written = 0;
		if (e.out_num >= 1 && e.in_num >= 1 && iov[0].iov_len == sizeof(h) && e.out_num + e.in_num == 3) {
			memcpy(&h, iov[0].iov_base, sizeof(h));
			uint64_t sector = le64toh(h.sector), off = sector * 512;
			struct iovec *data = &iov[1];
			if (sector <= RAM_BYTES / 512 && data->iov_len <= RAM_BYTES - off) {
				if (le32toh(h.type) == VHU_BLK_T_OUT && e.out_num == 2) {
					memcpy(ramdisk + off, data->iov_base, data->iov_len);
					st = VHU_BLK_S_OK;
				} else if (le32toh(h.type) == VHU_BLK_T_IN && e.in_num == 2) {
					memcpy(data->iov_base, ramdisk + off, data->iov_len);
					written = (uint32_t)data->iov_len;
					st = VHU_BLK_S_OK;
				}
			}
		}
		/* a chain with nowhere to put a status (the fuzzers send them) */
		struct iovec *last = e.in_num ? &iov[e.out_num + e.in_num - 1] : NULL;
		if (last && last->iov_len)
			*((uint8_t *)last->iov_base + last->iov_len - 1) = st;
		vhu_queue_push(q, &e, last && last->iov_len ? written + 1 : 0);
	}
	vhu_queue_notify(q);
}

static int ram_config(struct vhu_device *dev, uint8_t *b, uint32_t off, uint32_t len)
{
	(void)dev;
	uint8_t cfg[60] = { 0 };
	uint64_t cap = htole64(RAM_BYTES / 512);
	memcpy(cfg, &cap, 8);
	memcpy(b, cfg + off, len);
	return 0;
}

__attribute__((unused)) static const struct vhu_device_ops ram_ops = { .handle = ram_handle, .get_config = ram_config };

#endif
