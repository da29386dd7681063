/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user message table: for each front-end request its payload
 * size rule, fd rule, the protocol feature it needs and whether it has a
 * reply body ("Front-end message types" of the spec).
 */
#include <errno.h>
#include <stddef.h>

#include "vhu/vhost_user.h"

/* R(request, name, size rule, size, fd rule, protocol feature or -1,
 *   needs VHOST_USER_F_PROTOCOL_FEATURES, has a reply body) */
#define R(req, nm, ...) [req] = { nm, __VA_ARGS__ }
#define PF(x) VHU_USER_PROTOCOL_F_##x
#define S_NONE VHU_USER_SIZE_NONE, 0
#define S_U64 VHU_USER_SIZE_EXACT, 8
#define S_STATE VHU_USER_SIZE_EXACT, sizeof(struct vhu_user_vring_state)

static const struct vhu_user_request_info table[VHU_USER_REQUEST_MAX] = {
	R(VHU_USER_GET_FEATURES, "GET_FEATURES", S_NONE, VHU_USER_FDS_NONE, -1, false, true),
	R(VHU_USER_SET_FEATURES, "SET_FEATURES", S_U64, VHU_USER_FDS_NONE, -1, false, false),
	R(VHU_USER_SET_OWNER, "SET_OWNER", S_NONE, VHU_USER_FDS_NONE, -1, false, false),
	R(VHU_USER_RESET_OWNER, "RESET_OWNER", S_NONE, VHU_USER_FDS_NONE, -1, false, false),
	/* QEMU sends the whole 8-region table whatever nregions says; the
	 * handler checks nregions against what arrived. */
	R(VHU_USER_SET_MEM_TABLE, "SET_MEM_TABLE", VHU_USER_SIZE_AT_LEAST, 8, VHU_USER_FDS_REGIONS, -1, false, false),
	R(VHU_USER_SET_LOG_BASE, "SET_LOG_BASE", VHU_USER_SIZE_ANY, 0, VHU_USER_FDS_OPTIONAL, -1, false, true),
	R(VHU_USER_SET_LOG_FD, "SET_LOG_FD", S_NONE, VHU_USER_FDS_ONE, -1, false, false),
	R(VHU_USER_SET_VRING_NUM, "SET_VRING_NUM", S_STATE, VHU_USER_FDS_NONE, -1, false, false),
	R(VHU_USER_SET_VRING_ADDR, "SET_VRING_ADDR", VHU_USER_SIZE_EXACT, sizeof(struct vhu_user_vring_addr),
	  VHU_USER_FDS_NONE, -1, false, false),
	R(VHU_USER_SET_VRING_BASE, "SET_VRING_BASE", S_STATE, VHU_USER_FDS_NONE, -1, false, false),
	R(VHU_USER_GET_VRING_BASE, "GET_VRING_BASE", S_STATE, VHU_USER_FDS_NONE, -1, false, true),
	R(VHU_USER_SET_VRING_KICK, "SET_VRING_KICK", S_U64, VHU_USER_FDS_VRING, -1, false, false),
	R(VHU_USER_SET_VRING_CALL, "SET_VRING_CALL", S_U64, VHU_USER_FDS_VRING, -1, false, false),
	R(VHU_USER_SET_VRING_ERR, "SET_VRING_ERR", S_U64, VHU_USER_FDS_VRING, -1, false, false),
	R(VHU_USER_GET_PROTOCOL_FEATURES, "GET_PROTOCOL_FEATURES", S_NONE, VHU_USER_FDS_NONE, -1, true, true),
	R(VHU_USER_SET_PROTOCOL_FEATURES, "SET_PROTOCOL_FEATURES", S_U64, VHU_USER_FDS_NONE, -1, true, false),
	R(VHU_USER_GET_QUEUE_NUM, "GET_QUEUE_NUM", S_NONE, VHU_USER_FDS_NONE, PF(MQ), true, true),
	R(VHU_USER_SET_VRING_ENABLE, "SET_VRING_ENABLE", S_STATE, VHU_USER_FDS_NONE, -1, true, false),
	R(VHU_USER_SEND_RARP, "SEND_RARP", S_U64, VHU_USER_FDS_NONE, PF(RARP), true, false),
	R(VHU_USER_NET_SET_MTU, "NET_SET_MTU", S_U64, VHU_USER_FDS_NONE, PF(NET_MTU), true, false),
	R(VHU_USER_SET_BACKEND_REQ_FD, "SET_BACKEND_REQ_FD", S_NONE, VHU_USER_FDS_ONE, PF(BACKEND_REQ), true, false),
	R(VHU_USER_IOTLB_MSG, "IOTLB_MSG", VHU_USER_SIZE_EXACT, sizeof(struct vhu_user_iotlb), VHU_USER_FDS_NONE,
	  -1, false, true),
	R(VHU_USER_SET_VRING_ENDIAN, "SET_VRING_ENDIAN", S_STATE, VHU_USER_FDS_NONE, PF(CROSS_ENDIAN), true, false),
	R(VHU_USER_GET_CONFIG, "GET_CONFIG", VHU_USER_SIZE_AT_LEAST, VHU_USER_CONFIG_HDR_SIZE, VHU_USER_FDS_NONE,
	  PF(CONFIG), true, true),
	R(VHU_USER_SET_CONFIG, "SET_CONFIG", VHU_USER_SIZE_AT_LEAST, VHU_USER_CONFIG_HDR_SIZE, VHU_USER_FDS_NONE,
	  PF(CONFIG), true, false),
	R(VHU_USER_CREATE_CRYPTO_SESSION, "CREATE_CRYPTO_SESSION", VHU_USER_SIZE_ANY, 0, VHU_USER_FDS_NONE,
	  PF(CRYPTO_SESSION), true, true),
	R(VHU_USER_CLOSE_CRYPTO_SESSION, "CLOSE_CRYPTO_SESSION", S_U64, VHU_USER_FDS_NONE, PF(CRYPTO_SESSION),
	  true, false),
	R(VHU_USER_POSTCOPY_ADVISE, "POSTCOPY_ADVISE", S_NONE, VHU_USER_FDS_NONE, PF(PAGEFAULT), true, true),
	R(VHU_USER_POSTCOPY_LISTEN, "POSTCOPY_LISTEN", S_NONE, VHU_USER_FDS_NONE, PF(PAGEFAULT), true, false),
	R(VHU_USER_POSTCOPY_END, "POSTCOPY_END", S_NONE, VHU_USER_FDS_NONE, PF(PAGEFAULT), true, true),
	R(VHU_USER_GET_INFLIGHT_FD, "GET_INFLIGHT_FD", VHU_USER_SIZE_EXACT, sizeof(struct vhu_user_inflight),
	  VHU_USER_FDS_NONE, PF(INFLIGHT_SHMFD), true, true),
	R(VHU_USER_SET_INFLIGHT_FD, "SET_INFLIGHT_FD", VHU_USER_SIZE_EXACT, sizeof(struct vhu_user_inflight),
	  VHU_USER_FDS_ONE, PF(INFLIGHT_SHMFD), true, false),
	R(VHU_USER_GPU_SET_SOCKET, "GPU_SET_SOCKET", S_NONE, VHU_USER_FDS_ONE, -1, true, false),
	R(VHU_USER_RESET_DEVICE, "RESET_DEVICE", S_NONE, VHU_USER_FDS_NONE, PF(RESET_DEVICE), true, false),
	R(VHU_USER_VRING_KICK, "VRING_KICK", S_STATE, VHU_USER_FDS_NONE, PF(INBAND_NOTIFICATIONS), true, false),
	R(VHU_USER_GET_MAX_MEM_SLOTS, "GET_MAX_MEM_SLOTS", S_NONE, VHU_USER_FDS_NONE, PF(CONFIGURE_MEM_SLOTS),
	  true, true),
	R(VHU_USER_ADD_MEM_REG, "ADD_MEM_REG", VHU_USER_SIZE_EXACT, sizeof(struct vhu_user_mem_single),
	  VHU_USER_FDS_ONE, PF(CONFIGURE_MEM_SLOTS), true, false),
	R(VHU_USER_REM_MEM_REG, "REM_MEM_REG", VHU_USER_SIZE_EXACT, sizeof(struct vhu_user_mem_single),
	  VHU_USER_FDS_OPTIONAL, PF(CONFIGURE_MEM_SLOTS), true, false),
	R(VHU_USER_SET_STATUS, "SET_STATUS", S_U64, VHU_USER_FDS_NONE, PF(STATUS), true, false),
	R(VHU_USER_GET_STATUS, "GET_STATUS", S_NONE, VHU_USER_FDS_NONE, PF(STATUS), true, true),
};

const struct vhu_user_request_info *vhu_user_request_info(uint32_t request)
{
	if (request == 0 || request >= VHU_USER_REQUEST_MAX)
		return NULL;
	return &table[request];
}

const char *vhu_user_backend_request_name(uint32_t request)
{
	static const char *const names[VHU_USER_BACKEND_REQUEST_MAX] = {
		[VHU_USER_BACKEND_IOTLB_MSG] = "BACKEND_IOTLB_MSG",
		[VHU_USER_BACKEND_CONFIG_CHANGE_MSG] = "BACKEND_CONFIG_CHANGE_MSG",
		[VHU_USER_BACKEND_VRING_HOST_NOTIFIER_MSG] = "BACKEND_VRING_HOST_NOTIFIER_MSG",
		[VHU_USER_BACKEND_VRING_CALL] = "BACKEND_VRING_CALL",
		[VHU_USER_BACKEND_VRING_ERR] = "BACKEND_VRING_ERR",
	};
	return request < VHU_USER_BACKEND_REQUEST_MAX ? names[request] : NULL;
}

const char *vhu_user_protocol_feature_name(unsigned bit)
{
	static const char *const names[VHU_USER_PROTOCOL_F_MAX] = {
		"MQ", "LOG_SHMFD", "RARP", "REPLY_ACK", "NET_MTU", "BACKEND_REQ",
		"CROSS_ENDIAN", "CRYPTO_SESSION", "PAGEFAULT", "CONFIG", "BACKEND_SEND_FD",
		"HOST_NOTIFIER", "INFLIGHT_SHMFD", "RESET_DEVICE", "INBAND_NOTIFICATIONS",
		"CONFIGURE_MEM_SLOTS", "STATUS",
	};
	return bit < VHU_USER_PROTOCOL_F_MAX ? names[bit] : NULL;
}

int vhu_user_check_shape(const struct vhu_user_msg *m, bool pf_offered,
			 uint64_t protocol_features)
{
	const struct vhu_user_request_info *ri = vhu_user_request_info(m->hdr.request);
	uint32_t size = m->hdr.size;

	if (!ri)
		return -ENOSYS;
	if ((m->hdr.flags & VHU_USER_VERSION_MASK) != VHU_USER_VERSION ||
	    (m->hdr.flags & VHU_USER_REPLY_MASK))
		return -EPROTO;
	switch (ri->size_rule) {
	case VHU_USER_SIZE_NONE:
		if (size != 0)
			return -EMSGSIZE;
		break;
	case VHU_USER_SIZE_EXACT:
		if (size != ri->size)
			return -EMSGSIZE;
		break;
	case VHU_USER_SIZE_AT_LEAST:
		if (size < ri->size || size > sizeof(m->payload))
			return -EMSGSIZE;
		break;
	case VHU_USER_SIZE_ANY:
		if (size > sizeof(m->payload))
			return -EMSGSIZE;
		break;
	}
	switch (ri->fd_rule) {
	case VHU_USER_FDS_NONE:
		if (m->nfds)
			return -EBADF;
		break;
	case VHU_USER_FDS_ONE:
		if (m->nfds != 1)
			return -EBADF;
		break;
	case VHU_USER_FDS_VRING:
		if (m->nfds != ((m->payload.u64 & VHU_USER_VRING_NOFD_MASK) ? 0u : 1u))
			return -EBADF;
		break;
	case VHU_USER_FDS_REGIONS: {
		uint32_t n = m->payload.mem.nregions;
		if (n > VHU_USER_MEM_TABLE_MAX || size < 8 + n * sizeof(struct vhu_user_mem_region))
			return -EMSGSIZE;
		if (m->nfds != n)
			return -EBADF;
		break;
	}
	case VHU_USER_FDS_OPTIONAL:
		if (m->nfds > 1)
			return -EBADF;
		break;
	case VHU_USER_FDS_ANY:
		break;
	}
	if (ri->needs_protocol_features && !pf_offered)
		return -EPERM;
	if (ri->protocol_feature >= 0 && !(protocol_features >> ri->protocol_feature & 1))
		return -EPERM;
	return 0;
}
