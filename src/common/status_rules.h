/* SPDX-License-Identifier: MIT */
/*
 * The driver's status writes (VIRTIO §2.1, §3.1.1), for transports whose
 * driver writes the status byte directly (virtio-mmio, the admin
 * transport): bits are set in order, never cleared but by writing 0, and
 * only the driver's own bits (NEEDS_RESET and the reserved bits are the
 * device's). FAILED may come at any time.
 */
#ifndef VHU_STATUS_RULES_H
#define VHU_STATUS_RULES_H

#include <stdint.h>

#include "vhu/virtio.h"

#define VHU_DRIVER_STATUS_BITS                                                                    \
	(VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK | VHU_STATUS_DRIVER_OK | \
	 VHU_STATUS_FAILED)

/* Why a non-zero write v over the driver's bits cur is refused, or NULL. */
static inline const char *vhu_status_write_refused(uint8_t cur, uint32_t v)
{
	if (v & ~(uint32_t)VHU_DRIVER_STATUS_BITS)
		return "sets bits a driver may not set";
	if (cur & ~v)
		return "clears bits without a reset";
	uint32_t add = v & ~(uint32_t)cur;
	if (((add & VHU_STATUS_DRIVER) && !(v & VHU_STATUS_ACKNOWLEDGE)) ||
	    ((add & VHU_STATUS_FEATURES_OK) && !(v & VHU_STATUS_DRIVER)) ||
	    ((add & VHU_STATUS_DRIVER_OK) && !(v & VHU_STATUS_FEATURES_OK)))
		return "skips a step of the initialisation";
	return NULL;
}

#endif
