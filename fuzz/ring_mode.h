/* SPDX-License-Identifier: MIT */
/* The first two input bytes of the ring fuzzers: ring format, features and
 * size. mode bits: 1 packed, 2 INDIRECT_DESC, 4 EVENT_IDX, 8 IN_ORDER,
 * 16 NOTIFY_ON_EMPTY, 32 NOTIFICATION_DATA. Split sizes are powers of two
 * up to 64, packed ones 1 to max_packed. */
#ifndef VHU_FUZZ_RING_MODE_H
#define VHU_FUZZ_RING_MODE_H

#include <stdbool.h>
#include <stdint.h>

#include "vhu/virtio.h"

struct ring_mode {
	bool packed;
	uint16_t num;
	uint64_t features;
};

static inline struct ring_mode ring_mode_of(uint8_t mode, uint8_t size, uint16_t max_packed)
{
	struct ring_mode m = { .packed = mode & 1 };
	m.num = m.packed ? (uint16_t)(1 + size % max_packed) : (uint16_t)(1u << (size % 7));
	m.features = VHU_BIT(VHU_F_VERSION_1) | (m.packed ? VHU_BIT(VHU_F_RING_PACKED) : 0) |
		     ((mode & 2) ? VHU_BIT(VHU_F_INDIRECT_DESC) : 0) | ((mode & 4) ? VHU_BIT(VHU_F_EVENT_IDX) : 0) |
		     ((mode & 8) ? VHU_BIT(VHU_F_IN_ORDER) : 0) | ((mode & 16) ? VHU_BIT(VHU_F_NOTIFY_ON_EMPTY) : 0) |
		     ((mode & 32) ? VHU_BIT(VHU_F_NOTIFICATION_DATA) : 0);
	return m;
}

#endif
