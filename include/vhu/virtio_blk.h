/* SPDX-License-Identifier: MIT */
/* virtio-blk wire format (VIRTIO §5.2), shared by vhu-blk and the
 * front-end's block driver. Little-endian, as in the spec. */
#ifndef VHU_VIRTIO_BLK_H
#define VHU_VIRTIO_BLK_H

#include <stdint.h>

#define VHU_BLK_F_SIZE_MAX      1
#define VHU_BLK_F_SEG_MAX       2
#define VHU_BLK_F_GEOMETRY      4
#define VHU_BLK_F_RO            5
#define VHU_BLK_F_BLK_SIZE      6
#define VHU_BLK_F_FLUSH         9
#define VHU_BLK_F_TOPOLOGY      10
#define VHU_BLK_F_CONFIG_WCE    11
#define VHU_BLK_F_MQ            12
#define VHU_BLK_F_DISCARD       13
#define VHU_BLK_F_WRITE_ZEROES  14

#define VHU_BLK_T_IN            0
#define VHU_BLK_T_OUT           1
#define VHU_BLK_T_FLUSH         4
#define VHU_BLK_T_GET_ID        8
#define VHU_BLK_T_GET_LIFETIME  10
#define VHU_BLK_T_DISCARD       11
#define VHU_BLK_T_WRITE_ZEROES  13
#define VHU_BLK_T_SECURE_ERASE  14

#define VHU_BLK_S_OK     0
#define VHU_BLK_S_IOERR  1
#define VHU_BLK_S_UNSUPP 2

#define VHU_BLK_SECTOR_SIZE 512u
#define VHU_BLK_ID_BYTES    20u

struct vhu_blk_config {
	uint64_t capacity;          /* in 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	struct {
		uint16_t cylinders;
		uint8_t heads;
		uint8_t sectors;
	} geometry;
	uint32_t blk_size;
	struct {
		uint8_t physical_block_exp;
		uint8_t alignment_offset;
		uint16_t min_io_size;
		uint32_t opt_io_size;
	} topology;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
	uint32_t max_secure_erase_sectors;
	uint32_t max_secure_erase_seg;
	uint32_t secure_erase_sector_alignment;
} __attribute__((packed));

struct vhu_blk_req_hdr {
	uint32_t type;
	uint32_t reserved;   /* ioprio in legacy */
	uint64_t sector;
};

struct vhu_blk_discard_wz {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;      /* bit 0: unmap (write zeroes only) */
};

_Static_assert(sizeof(struct vhu_blk_config) == 72, "virtio_blk_config up to secure erase");
_Static_assert(sizeof(struct vhu_blk_req_hdr) == 16, "request header");
_Static_assert(sizeof(struct vhu_blk_discard_wz) == 16, "discard/write-zeroes segment");

#endif
