/* SPDX-License-Identifier: MIT */
/* A driver-side and a device-side queue over one ring in plain memory. */
#ifndef VHU_TEST_RINGPAIR_H
#define VHU_TEST_RINGPAIR_H

#include "guestmem.h"
#include "vhu/virtio.h"
#include "vhu/vq.h"

#define RP_IND_MAX 16

struct ringpair {
	struct guestmem gm;
	void *ring;
	struct vhu_vq_layout layout;
	struct vhu_vq_config cfg;
	struct vhu_drv_vq drv;
	struct vhu_dev_vq dev;
};

/* data_bytes of guest memory in regions of region_size; features as
 * negotiated. Returns 0 or a negative errno. */
int rp_init(struct ringpair *rp, uint16_t num, uint64_t features,
	    size_t data_bytes, size_t region_size);
void rp_free(struct ringpair *rp);

#endif
