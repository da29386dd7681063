/* SPDX-License-Identifier: MIT */
/*
 * Group administration commands on the wire: the merged VIRTIO envelope
 * (struct virtio_admin_cmd, "Group administration commands"), its status
 * codes, and vhu's admin-virtqueue transport of docs/admin-transport.md
 * (a management device whose commands create and drive managed devices).
 * Plain definitions, and the two steps every admin queue takes for a
 * buffer: the command out of its device-readable part, and the status and
 * result into its device-writable part, both with the spec's truncation
 * rules. Everything here is little-endian on the wire.
 */
#ifndef VHU_ADMIN_H
#define VHU_ADMIN_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

VHU_API_BEGIN

/* ---- the merged envelope ----------------------------------------------------- */

struct vhu_admin_cmd_hdr {           /* device-readable, then command_specific_data */
	uint16_t opcode;
	uint16_t group_type;
	uint8_t reserved1[12];
	uint64_t group_member_id;
};

struct vhu_admin_cmd_status {        /* device-writable, then command_specific_result */
	uint16_t status;
	uint16_t status_qualifier;
	uint8_t reserved2[4];
};

#define VHU_ADMIN_GROUP_SELF    0x0000u
#define VHU_ADMIN_GROUP_SRIOV   0x0001u
#define VHU_ADMIN_GROUP_MANAGED 0x8000u   /* docs/admin-transport.md, section 3 */

enum vhu_admin_status {
	VHU_ADMIN_STATUS_OK = 0,
	VHU_ADMIN_STATUS_ENXIO = 6,
	VHU_ADMIN_STATUS_EAGAIN = 11,
	VHU_ADMIN_STATUS_ENOMEM = 12,
	VHU_ADMIN_STATUS_EBUSY = 16,
	VHU_ADMIN_STATUS_EINVAL = 22,
	VHU_ADMIN_STATUS_ENOSPC = 28,
};

enum vhu_admin_qualifier {
	VHU_ADMIN_Q_OK = 0,
	VHU_ADMIN_Q_INVALID_COMMAND = 1,
	VHU_ADMIN_Q_INVALID_OPCODE = 2,
	VHU_ADMIN_Q_INVALID_FIELD = 3,
	VHU_ADMIN_Q_INVALID_GROUP = 4,
	VHU_ADMIN_Q_INVALID_MEMBER = 5,
	VHU_ADMIN_Q_NORESOURCE = 6,
	VHU_ADMIN_Q_TRYAGAIN = 7,
};

/* ---- opcodes (merged, then docs/admin-transport.md section 4) ---------------- */

enum vhu_admin_opcode {
	VHU_ADMIN_CMD_LIST_QUERY = 0x0000,
	VHU_ADMIN_CMD_LIST_USE = 0x0001,
	VHU_ADMIN_CMD_MGMT_CAPS_GET = 0x0400,
	VHU_ADMIN_CMD_DEV_CREATE = 0x0401,
	VHU_ADMIN_CMD_DEV_DESTROY = 0x0402,
	VHU_ADMIN_CMD_DEV_LIST = 0x0403,
	VHU_ADMIN_CMD_DEV_INFO_GET = 0x0404,
	VHU_ADMIN_CMD_BACKING_LIST = 0x0405,
	VHU_ADMIN_CMD_DEV_FEATURES_GET = 0x0410,
	VHU_ADMIN_CMD_DRV_FEATURES_SET = 0x0411,
	VHU_ADMIN_CMD_DRV_FEATURES_GET = 0x0412,
	VHU_ADMIN_CMD_STATUS_SET = 0x0413,
	VHU_ADMIN_CMD_STATUS_GET = 0x0414,
	VHU_ADMIN_CMD_CONFIG_GENERATION_GET = 0x0415,
	VHU_ADMIN_CMD_CONFIG_GET = 0x0416,
	VHU_ADMIN_CMD_CONFIG_SET = 0x0417,
	VHU_ADMIN_CMD_VQ_SET = 0x0420,
	VHU_ADMIN_CMD_VQ_GET = 0x0421,
	VHU_ADMIN_CMD_VQ_ENABLE_SET = 0x0422,
	VHU_ADMIN_CMD_VQ_NOTIFY = 0x0424,
	VHU_ADMIN_CMD_VQ_INTERRUPT_SET = 0x0425,
	VHU_ADMIN_CMD_CONFIG_INTERRUPT_SET = 0x0426,
	VHU_ADMIN_CMD_MMU_ENABLE = 0x0430,
	VHU_ADMIN_CMD_MMU_ASID_SET = 0x0431,
	VHU_ADMIN_CMD_MMU_MAP = 0x0432,
	VHU_ADMIN_CMD_MMU_UNMAP = 0x0433,
	VHU_ADMIN_CMD_MMU_ERR_GET = 0x0434,
};
/* LIST_QUERY / LIST_USE bitmaps: enough 64-bit words for every opcode above */
#define VHU_ADMIN_OPCODE_WORDS ((0x0434 / 64) + 1)

/* ---- command data and results (docs/admin-transport.md) ---------------------- */

struct vhu_admin_caps {
	uint64_t device_types;
	uint32_t max_members, members;
	uint16_t max_queues, max_queue_size;
	uint32_t mmu_max_mappings;
	uint32_t max_asids;
	uint32_t backings;
};

#define VHU_ADMIN_BACKING_NAME 64
#define VHU_ADMIN_CREATE_READ_ONLY 1u

struct vhu_admin_create {
	uint16_t device_type;
	uint16_t num_queues;
	uint16_t queue_size_max;
	uint16_t flags;
	uint32_t blk_size;
	uint32_t reserved;
	uint64_t capacity;
	char backing[VHU_ADMIN_BACKING_NAME];
};

struct vhu_admin_vq {
	uint16_t queue;
	uint16_t size;
	uint8_t reserved[4];
	uint64_t desc, driver, device;
};

struct vhu_admin_vq_state {
	uint16_t queue;
	uint16_t size_max, size;
	uint8_t enabled;
	uint8_t reserved;
	uint64_t desc, driver, device;
	uint64_t reserved2;
};

#define VHU_ADMIN_MMU_READ  1u
#define VHU_ADMIN_MMU_WRITE 2u

struct vhu_admin_mmu_map {
	uint32_t asid;
	uint32_t flags;
	uint64_t iova, size;
	uint64_t dma;
};

struct vhu_admin_mmu_err {
	uint32_t reason;                 /* 1 not mapped, 2 permission */
	uint16_t queue;
	uint16_t reserved;
	uint32_t asid, flags;
	uint64_t iova;
};

enum vhu_admin_event_type {
	VHU_ADMIN_EVENT_USED = 1,
	VHU_ADMIN_EVENT_CONFIG = 2,
	VHU_ADMIN_EVENT_NEEDS_RESET = 3,
};

struct vhu_admin_event {
	uint64_t member;
	uint16_t type;
	uint16_t queue;
	uint32_t reserved;
};

/* The management device's config space (docs/admin-transport.md section 3). */
struct vhu_mgmt_config {
	uint16_t admin_queue_index;
	uint16_t admin_queue_num;
	uint16_t event_queue_index;
	uint16_t reserved;
	uint32_t max_members;
};

#define VHU_MGMT_DEVICE_ID 0xfff0u
#define VHU_STATUS_DEVICE_MMU_FAIL 32u   /* the RFC's status bit */

/* ---- taking a command, giving its result ----------------------------------- */

/* The largest command data the device reads (CONFIG_SET: 8 bytes and a
 * config space of 256); readable bytes beyond it are ignored, as any beyond
 * a command's own structure are. */
#define VHU_ADMIN_DATA_MAX 264u

/* A command as the device reads it: copied out of guest memory before any
 * result is written, so parts that overlap cannot change what it said. */
struct vhu_admin_req {
	uint16_t opcode, group_type;
	uint64_t member;
	bool reserved_set;               /* reserved1 was not all zeros */
	uint32_t data_len;               /* readable bytes after the header (up to VHU_ADMIN_DATA_MAX) */
	uint8_t data[VHU_ADMIN_DATA_MAX];   /* and zeros after them */
	uint32_t result_room;            /* writable bytes after the status */
};

/* The command in a buffer of out readable then in writable iovecs (a
 * chain the engine popped). 0, or -EINVAL (INVALID_COMMAND: no readable
 * part, no writable part, or a writable part of fewer than 8 bytes: no
 * room for a status). A header shorter than 24 bytes reads as zero-extended
 * (the merged rule). */
int vhu_admin_take(const struct iovec *iov, unsigned out, unsigned in, struct vhu_admin_req *req);

/* Write the status and as much of the result as the writable part holds
 * (the merged rule: the rest is dropped), reserved bytes zeroed; returns
 * the used length: 8 + result bytes written, 0 without room for a status. */
uint32_t vhu_admin_give(const struct iovec *iov, unsigned out, unsigned in, uint16_t status, uint16_t qualifier,
			const void *result, uint32_t len);

/* Little-endian field reads from a command's (zero-extended) data. */
static inline uint16_t vhu_admin_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t vhu_admin_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t vhu_admin_le64(const uint8_t *p)
{
	return (uint64_t)vhu_admin_le32(p) | (uint64_t)vhu_admin_le32(p + 4) << 32;
}

static inline void vhu_admin_put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

/* struct vhu_admin_create on the wire (88 bytes, section 4.2): DEV_CREATE's
 * data, DEV_INFO_GET's result. Decoding zero-extends nothing: give it 88. */
#define VHU_ADMIN_CREATE_SIZE 88u
void vhu_admin_create_encode(const struct vhu_admin_create *c, uint8_t *out);
void vhu_admin_create_decode(const uint8_t *in, struct vhu_admin_create *c);

/* Opcode bitmaps of LIST_QUERY / LIST_USE (docs: "struct virtio_admin_cmd_list"). */
static inline bool vhu_admin_list_has(const uint64_t *words, unsigned nwords, uint16_t opcode)
{
	return opcode / 64u < nwords && (words[opcode / 64u] >> (opcode % 64u) & 1);
}

VHU_API_END

#endif
