/* SPDX-License-Identifier: MIT */
/*
 * Virtqueue memory layouts as the VIRTIO 1.x specification defines them
 * (split ring: §2.7, packed ring: §2.8). Every multi-byte field is
 * little-endian in memory; vhu reads and writes them only through the
 * ring engine, which converts and orders the accesses.
 *
 * Names carry a vhu_ / VHU_ prefix so this header can sit beside
 * <linux/virtio_ring.h> in the same translation unit.
 */
#ifndef VHU_VIRTIO_RING_H
#define VHU_VIRTIO_RING_H

#include <stdint.h>

/* Descriptor flags (split §2.7.5, packed §2.8.6). */
#define VHU_VRING_DESC_F_NEXT      1u
#define VHU_VRING_DESC_F_WRITE     2u
#define VHU_VRING_DESC_F_INDIRECT  4u
/* Packed ring only (§2.8.1): availability and use are told by these two bits
 * compared with the ring wrap counters. */
#define VHU_VRING_PACKED_DESC_F_AVAIL (1u << 7)
#define VHU_VRING_PACKED_DESC_F_USED  (1u << 15)

/* Split ring suppression flags (§2.7.7, §2.7.10). */
#define VHU_VRING_AVAIL_F_NO_INTERRUPT 1u
#define VHU_VRING_USED_F_NO_NOTIFY     1u

/* Packed ring event suppression (§2.8.10). */
#define VHU_RING_EVENT_FLAGS_ENABLE  0x0u
#define VHU_RING_EVENT_FLAGS_DISABLE 0x1u
#define VHU_RING_EVENT_FLAGS_DESC    0x2u /* only with VIRTIO_F_EVENT_IDX */
#define VHU_RING_EVENT_WRAP_SHIFT    15

/* Largest queue size either ring format allows (§2.6: 32768). */
#define VHU_VRING_MAX_SIZE 32768u

struct vhu_vring_desc {          /* split, 16 bytes, 16-byte aligned table */
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vhu_vring_avail {         /* split driver area, 2-byte aligned */
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];             /* [num], then used_event (EVENT_IDX) */
};

struct vhu_vring_used_elem {
	uint32_t id;                 /* head index of the chain */
	uint32_t len;                /* bytes written into the writable part */
};

struct vhu_vring_used {          /* split device area, 4-byte aligned */
	uint16_t flags;
	uint16_t idx;
	struct vhu_vring_used_elem ring[]; /* [num], then avail_event (EVENT_IDX) */
};

struct vhu_vring_packed_desc {   /* packed, 16 bytes, 16-byte aligned ring */
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

struct vhu_vring_packed_event {  /* packed driver/device area, 4 bytes */
	uint16_t off_wrap;           /* bits 0-14 offset, bit 15 wrap counter */
	uint16_t flags;              /* VHU_RING_EVENT_FLAGS_* */
};

_Static_assert(sizeof(struct vhu_vring_desc) == 16, "split descriptor is 16 bytes");
_Static_assert(sizeof(struct vhu_vring_used_elem) == 8, "used element is 8 bytes");
_Static_assert(sizeof(struct vhu_vring_packed_desc) == 16, "packed descriptor is 16 bytes");
_Static_assert(sizeof(struct vhu_vring_packed_event) == 4, "event suppression is 4 bytes");

/* Byte sizes of the split ring parts for a queue of num entries (§2.7),
 * including the EVENT_IDX trailer words, which are always reserved. */
static inline uint64_t vhu_vring_split_desc_size(uint32_t num) { return 16ull * num; }
static inline uint64_t vhu_vring_split_avail_size(uint32_t num) { return 6ull + 2ull * num; }
static inline uint64_t vhu_vring_split_used_size(uint32_t num) { return 6ull + 8ull * num; }
static inline uint64_t vhu_vring_packed_desc_size(uint32_t num) { return 16ull * num; }

#endif
