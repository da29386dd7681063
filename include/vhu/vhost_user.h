/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user protocol: every message, payload and feature bit, shared
 * by the back-end, the front-end and the tools. Numbers and layouts follow
 * the vhost-user specification ("Message Specification", "Front-end message
 * types", "Back-end message types", "Protocol features"). All numbers are in
 * the host's byte order, as the spec says.
 *
 * This header defines; src/proto/ validates (vhu_user_check_*) and frames
 * (vhu_user_send / vhu_user_recv); nothing here handles a message.
 */
#ifndef VHU_VHOST_USER_H
#define VHU_VHOST_USER_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

VHU_API_BEGIN

/* VIRTIO feature bit 30 (UNUSED in VIRTIO 1.x), reused by vhost-user to say
 * GET/SET_PROTOCOL_FEATURES are supported. */
#define VHU_USER_F_PROTOCOL_FEATURES 30
/* vhost's dirty-logging feature (VHOST_F_LOG_ALL, bit 26). */
#define VHU_USER_F_LOG_ALL 26

enum vhu_user_request {
	VHU_USER_NONE = 0,
	VHU_USER_GET_FEATURES = 1,
	VHU_USER_SET_FEATURES = 2,
	VHU_USER_SET_OWNER = 3,
	VHU_USER_RESET_OWNER = 4,
	VHU_USER_SET_MEM_TABLE = 5,
	VHU_USER_SET_LOG_BASE = 6,
	VHU_USER_SET_LOG_FD = 7,
	VHU_USER_SET_VRING_NUM = 8,
	VHU_USER_SET_VRING_ADDR = 9,
	VHU_USER_SET_VRING_BASE = 10,
	VHU_USER_GET_VRING_BASE = 11,
	VHU_USER_SET_VRING_KICK = 12,
	VHU_USER_SET_VRING_CALL = 13,
	VHU_USER_SET_VRING_ERR = 14,
	VHU_USER_GET_PROTOCOL_FEATURES = 15,
	VHU_USER_SET_PROTOCOL_FEATURES = 16,
	VHU_USER_GET_QUEUE_NUM = 17,
	VHU_USER_SET_VRING_ENABLE = 18,
	VHU_USER_SEND_RARP = 19,
	VHU_USER_NET_SET_MTU = 20,
	VHU_USER_SET_BACKEND_REQ_FD = 21,
	VHU_USER_IOTLB_MSG = 22,
	VHU_USER_SET_VRING_ENDIAN = 23,
	VHU_USER_GET_CONFIG = 24,
	VHU_USER_SET_CONFIG = 25,
	VHU_USER_CREATE_CRYPTO_SESSION = 26,
	VHU_USER_CLOSE_CRYPTO_SESSION = 27,
	VHU_USER_POSTCOPY_ADVISE = 28,
	VHU_USER_POSTCOPY_LISTEN = 29,
	VHU_USER_POSTCOPY_END = 30,
	VHU_USER_GET_INFLIGHT_FD = 31,
	VHU_USER_SET_INFLIGHT_FD = 32,
	VHU_USER_GPU_SET_SOCKET = 33,
	VHU_USER_RESET_DEVICE = 34,
	VHU_USER_VRING_KICK = 35,
	VHU_USER_GET_MAX_MEM_SLOTS = 36,
	VHU_USER_ADD_MEM_REG = 37,
	VHU_USER_REM_MEM_REG = 38,
	VHU_USER_SET_STATUS = 39,
	VHU_USER_GET_STATUS = 40,
	VHU_USER_REQUEST_MAX = 41,
};

/* Requests on the back-end channel (back-end -> front-end). */
enum vhu_user_backend_request {
	VHU_USER_BACKEND_NONE = 0,
	VHU_USER_BACKEND_IOTLB_MSG = 1,
	VHU_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
	VHU_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
	VHU_USER_BACKEND_VRING_CALL = 4,
	VHU_USER_BACKEND_VRING_ERR = 5,
	VHU_USER_BACKEND_REQUEST_MAX = 6,
};

enum vhu_user_protocol_feature {
	VHU_USER_PROTOCOL_F_MQ = 0,
	VHU_USER_PROTOCOL_F_LOG_SHMFD = 1,
	VHU_USER_PROTOCOL_F_RARP = 2,
	VHU_USER_PROTOCOL_F_REPLY_ACK = 3,
	VHU_USER_PROTOCOL_F_NET_MTU = 4,
	VHU_USER_PROTOCOL_F_BACKEND_REQ = 5,
	VHU_USER_PROTOCOL_F_CROSS_ENDIAN = 6,
	VHU_USER_PROTOCOL_F_CRYPTO_SESSION = 7,
	VHU_USER_PROTOCOL_F_PAGEFAULT = 8,
	VHU_USER_PROTOCOL_F_CONFIG = 9,
	VHU_USER_PROTOCOL_F_BACKEND_SEND_FD = 10,
	VHU_USER_PROTOCOL_F_HOST_NOTIFIER = 11,
	VHU_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12,
	VHU_USER_PROTOCOL_F_RESET_DEVICE = 13,
	VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 14,
	VHU_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
	VHU_USER_PROTOCOL_F_STATUS = 16,
	VHU_USER_PROTOCOL_F_MAX = 17,
};

/* Header flags. */
#define VHU_USER_VERSION_MASK   0x3u
#define VHU_USER_VERSION        0x1u
#define VHU_USER_REPLY_MASK     (1u << 2)
#define VHU_USER_NEED_REPLY_MASK (1u << 3)

struct vhu_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;   /* payload bytes following the header */
};

/* SET_VRING_KICK / CALL / ERR payload: bits 0-7 index, bit 8 "no fd". */
#define VHU_USER_VRING_IDX_MASK  0xffu
#define VHU_USER_VRING_NOFD_MASK (1u << 8)

struct vhu_user_vring_state {
	uint32_t index;
	uint32_t num;
};

#define VHU_USER_VRING_F_LOG 0   /* flags bit in vring_addr */
struct vhu_user_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
};

struct vhu_user_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
};

/* SET_MEM_TABLE carries at most 8 regions (one fd each). */
#define VHU_USER_MEM_TABLE_MAX 8
struct vhu_user_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vhu_user_mem_region regions[VHU_USER_MEM_TABLE_MAX];
};

/* ADD_MEM_REG / REM_MEM_REG */
struct vhu_user_mem_single {
	uint64_t padding;
	struct vhu_user_mem_region region;
};

struct vhu_user_log {
	uint64_t size;
	uint64_t offset;
};

enum vhu_user_iotlb_type {
	VHU_USER_IOTLB_MISS = 1,
	VHU_USER_IOTLB_UPDATE = 2,
	VHU_USER_IOTLB_INVALIDATE = 3,
	VHU_USER_IOTLB_ACCESS_FAIL = 4,
};
#define VHU_USER_IOTLB_PERM_RO 1u
#define VHU_USER_IOTLB_PERM_WO 2u
#define VHU_USER_IOTLB_PERM_RW 3u
struct vhu_user_iotlb {   /* struct vhost_iotlb_msg */
	uint64_t iova;
	uint64_t size;
	uint64_t uaddr;
	uint8_t perm;
	uint8_t type;
	uint8_t padding[6];
};

#define VHU_USER_CONFIG_FLAG_WRITABLE  0u
#define VHU_USER_CONFIG_FLAG_MIGRATION 1u
#define VHU_USER_CONFIG_HDR_SIZE 12u
#define VHU_USER_MAX_CONFIG_SIZE 256u
struct vhu_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[VHU_USER_MAX_CONFIG_SIZE];
};

struct vhu_user_vring_area {
	uint64_t u64;    /* bits 0-7 index, bit 8 no fd */
	uint64_t size;
	uint64_t offset;
};

struct vhu_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	/* QEMU sends sizeof of its unpacked struct, 24 bytes: the spec's 20 plus
	 * this tail. Named so that every initializer zeroes it and no stack byte
	 * crosses the socket. */
	uint32_t padding;
};

union vhu_user_payload {
	uint64_t u64;
	struct vhu_user_vring_state state;
	struct vhu_user_vring_addr addr;
	struct vhu_user_mem_table mem;
	struct vhu_user_mem_single mem_reg;
	struct vhu_user_log log;
	struct vhu_user_iotlb iotlb;
	struct vhu_user_config config;
	struct vhu_user_vring_area area;
	struct vhu_user_inflight inflight;
	uint8_t bytes[VHU_USER_CONFIG_HDR_SIZE + VHU_USER_MAX_CONFIG_SIZE];
};

/* File descriptors per message: the spec's 8-region table (and back-end
 * SEND_FD's "at most 8"). */
#define VHU_USER_MAX_FDS 8

struct vhu_user_msg {
	struct vhu_user_hdr hdr;
	union vhu_user_payload payload;
	int fds[VHU_USER_MAX_FDS];
	unsigned nfds;
};

/* Memory slots vhu offers with CONFIGURE_MEM_SLOTS (QEMU caps at 509). */
#define VHU_USER_MAX_MEM_SLOTS 509

_Static_assert(sizeof(struct vhu_user_hdr) == 12, "header");
_Static_assert(sizeof(struct vhu_user_vring_state) == 8, "vring state");
_Static_assert(sizeof(struct vhu_user_vring_addr) == 40, "vring address");
_Static_assert(sizeof(struct vhu_user_mem_region) == 32, "memory region");
_Static_assert(sizeof(struct vhu_user_mem_table) == 8 + 8 * 32, "memory table");
_Static_assert(sizeof(struct vhu_user_mem_single) == 40, "single region");
_Static_assert(sizeof(struct vhu_user_log) == 16, "log");
_Static_assert(sizeof(struct vhu_user_iotlb) == 32, "iotlb");
_Static_assert(offsetof(struct vhu_user_config, region) == VHU_USER_CONFIG_HDR_SIZE, "config header");
_Static_assert(sizeof(struct vhu_user_vring_area) == 24, "vring area");
_Static_assert(sizeof(struct vhu_user_inflight) == 24, "inflight (padded)");
_Static_assert(sizeof(union vhu_user_payload) >= VHU_USER_CONFIG_HDR_SIZE + VHU_USER_MAX_CONFIG_SIZE,
	       "room for the largest payload, a full config");

/* ---- the message table: one row per request, used by validation ------- */

/* How large a request's payload may be. */
enum vhu_user_size_rule {
	VHU_USER_SIZE_NONE,      /* 0 bytes */
	VHU_USER_SIZE_EXACT,     /* exactly .size */
	VHU_USER_SIZE_AT_LEAST,  /* .size or more (memory table, config) */
	VHU_USER_SIZE_ANY,       /* not checked (requests vhu refuses anyway) */
};

/* How many fds a request carries. */
enum vhu_user_fd_rule {
	VHU_USER_FDS_NONE,       /* none */
	VHU_USER_FDS_ONE,        /* exactly one */
	VHU_USER_FDS_VRING,      /* one, or none with the NOFD bit set */
	VHU_USER_FDS_REGIONS,    /* one per memory region */
	VHU_USER_FDS_OPTIONAL,   /* zero or one (REM_MEM_REG, SET_LOG_BASE) */
	VHU_USER_FDS_ANY,
};

struct vhu_user_request_info {
	const char *name;
	enum vhu_user_size_rule size_rule;
	uint32_t size;
	enum vhu_user_fd_rule fd_rule;
	int protocol_feature;    /* required protocol feature bit, or -1 */
	bool needs_protocol_features; /* VHOST_USER_F_PROTOCOL_FEATURES offered */
	bool replies;            /* has a reply body of its own */
};

/* Row for a front-end request, or NULL for an unknown one. */
const struct vhu_user_request_info *vhu_user_request_info(uint32_t request);
/* Name of a back-end request, or NULL. */
const char *vhu_user_backend_request_name(uint32_t request);
/* Name of a protocol feature bit, or NULL. */
const char *vhu_user_protocol_feature_name(unsigned bit);

/*
 * Check a received front-end request against its row before any handler
 * sees it: version and reply bits, payload size, fd count, and the
 * protocol feature it needs. pf_offered: the back-end offers
 * VHOST_USER_F_PROTOCOL_FEATURES; protocol_features: those negotiated.
 *   -ENOSYS    unknown request
 *   -EPROTO    wrong version, or a reply flag on a request
 *   -EMSGSIZE  payload size against the rule
 *   -EBADF     fd count against the rule
 *   -EPERM     a protocol feature the request needs is not negotiated
 */
int vhu_user_check_shape(const struct vhu_user_msg *m, bool pf_offered,
			 uint64_t protocol_features);

VHU_API_END

#endif
