/* SPDX-License-Identifier: MIT */
#include "ringpair.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int rp_init(struct ringpair *rp, uint16_t num, uint64_t features,
	    size_t data_bytes, size_t region_size)
{
	bool packed = vhu_has_feature(features, VHU_F_RING_PACKED);
	size_t ind_bytes = (size_t)num * RP_IND_MAX * 16;
	int r;

	memset(rp, 0, sizeof(*rp));
	if (gm_init(&rp->gm, data_bytes, region_size, ind_bytes, num * 7u + 1) < 0)
		return -ENOMEM;
	vhu_vq_layout(num, packed, &rp->layout);
	rp->ring = aligned_alloc(4096, rp->layout.size);
	if (!rp->ring)
		return -ENOMEM;
	memset(rp->ring, 0, rp->layout.size);
	unsigned char *base = rp->ring;
	rp->cfg = (struct vhu_vq_config){
		.num = num, .index = 3, .features = features,
		.desc = base + rp->layout.desc_off,
		.driver_area = base + rp->layout.driver_off,
		.device_area = base + rp->layout.device_off,
		.translate = gm_translate, .translate_opaque = &rp->gm,
	};
	r = vhu_drv_vq_init(&rp->drv, &rp->cfg, rp->gm.ind, GM_IND_BASE, RP_IND_MAX);
	if (r < 0)
		return r;
	return vhu_dev_vq_init(&rp->dev, &rp->cfg);
}

void rp_free(struct ringpair *rp)
{
	vhu_dev_vq_destroy(&rp->dev);
	vhu_drv_vq_destroy(&rp->drv);
	free(rp->ring);
	gm_free(&rp->gm);
}
