/* SPDX-License-Identifier: MIT */
/* Rules shared by both ring formats and both roles. */
#include <stdint.h>

#include "vq_internal.h"

struct vhu_vq_flags vq_flags_from(uint64_t features)
{
	return (struct vhu_vq_flags){
		.event_idx = vhu_has_feature(features, VHU_F_EVENT_IDX),
		.indirect = vhu_has_feature(features, VHU_F_INDIRECT_DESC),
		.in_order = vhu_has_feature(features, VHU_F_IN_ORDER),
		.notify_on_empty = vhu_has_feature(features, VHU_F_NOTIFY_ON_EMPTY),
		.notification_data = vhu_has_feature(features, VHU_F_NOTIFICATION_DATA),
	};
}

static bool aligned(const void *p, uintptr_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

int vq_config_check(const struct vhu_vq_config *cfg, bool device)
{
	bool packed = vhu_has_feature(cfg->features, VHU_F_RING_PACKED);

	if (cfg->num == 0 || cfg->num > VHU_VRING_MAX_SIZE)
		return -EINVAL;
	/* §2.7: split Queue Size is a power of 2; packed need not be (§2.8.10.1) */
	if (!packed && (cfg->num & (cfg->num - 1)))
		return -EINVAL;
	if (!cfg->desc || !cfg->driver_area || !cfg->device_area)
		return -EINVAL;
	/* Alignment tables of §2.7 and §2.8.10.1; the engine's atomic accesses
	 * also rely on natural alignment. */
	if (!aligned(cfg->desc, 16))
		return -EINVAL;
	if (packed ? !aligned(cfg->driver_area, 4) || !aligned(cfg->device_area, 4)
		   : !aligned(cfg->driver_area, 2) || !aligned(cfg->device_area, 4))
		return -EINVAL;
	if (device && !cfg->translate && !cfg->mem)
		return -EINVAL;
	if (device && cfg->iotlb && !cfg->mem)	/* an IOTLB leads to user addresses: a region table maps those */
		return -EINVAL;
	return 0;
}

bool vhu_vring_packed_need_event(uint16_t num, uint16_t off_wrap,
				 uint16_t old_off, bool old_wrap, uint32_t n)
{
	uint32_t off = off_wrap & 0x7fffu;
	bool wrap = off_wrap >> VHU_RING_EVENT_WRAP_SHIFT;
	uint32_t dist;

	if (n == 0)
		return false;
	/* An offset the ring does not have can never be crossed; a peer asking
	 * for it is broken, and a spurious notification is the safe answer. */
	if (off >= num)
		return true;
	/* Slots from old to the next slot with this offset and lap parity. */
	if (wrap == old_wrap)
		dist = off >= old_off ? off - old_off : 2u * num - old_off + off;
	else
		dist = (uint32_t)num - old_off + off;
	return dist < n;
}

uint32_t vhu_vq_pos_encode(const struct vhu_vq_pos *pos, bool packed)
{
	if (!packed)
		return pos->avail;
	return (uint32_t)(pos->avail & 0x7fff) | (uint32_t)pos->avail_wrap << 15 |
	       (uint32_t)(pos->used & 0x7fff) << 16 | (uint32_t)pos->used_wrap << 31;
}

int vhu_vq_pos_decode(uint32_t base, bool packed, uint16_t num, struct vhu_vq_pos *pos)
{
	if (!packed) {
		if (base > 0xffff)
			return -EINVAL;
		*pos = (struct vhu_vq_pos){ .avail = (uint16_t)base };
		return 0;
	}
	*pos = (struct vhu_vq_pos){
		.avail = base & 0x7fff,
		.avail_wrap = (base >> 15) & 1,
		.used = (base >> 16) & 0x7fff,
		.used_wrap = base >> 31,
	};
	if (num && (pos->avail >= num || pos->used >= num))
		return -EINVAL;
	return 0;
}

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

void vhu_vq_layout(uint16_t num, bool packed, struct vhu_vq_layout *l)
{
	const size_t line = 64;

	l->desc_off = 0;
	l->driver_off = align_up(16u * (size_t)num, line);
	if (packed) {
		l->device_off = l->driver_off + line;
		l->size = align_up(l->device_off + sizeof(struct vhu_vring_packed_event), 4096);
	} else {
		l->device_off = align_up(l->driver_off + vhu_vring_split_avail_size(num), line);
		l->size = align_up(l->device_off + vhu_vring_split_used_size(num), 4096);
	}
}

const char *vhu_vq_strerror(int err)
{
	switch (-err) {
	case 0: return "no error";
	case EFAULT: return "buffer or indirect table outside guest memory";
	case EAGAIN: return "the IOTLB has no mapping for a buffer yet (chain left in the ring)";
	case EOVERFLOW: return "total length exceeds 32 bits";
	case ENOBUFS: return "more segments than the caller's iovec array";
	case EILSEQ: return "device-readable descriptor after a device-writable one";
	case EDOM: return "index moved more than the queue size";
	case ERANGE: return "index or buffer id out of range";
	case ELOOP: return "descriptor chain loops";
	case E2BIG: return "descriptor chain longer than the queue";
	case EPROTO: return "INDIRECT combined with NEXT or inside a chain";
	case EMLINK: return "INDIRECT inside an indirect table";
	case EBADMSG: return "indirect table length not a non-zero multiple of 16";
	case EMSGSIZE: return "indirect table too long";
	case EOPNOTSUPP: return "INDIRECT without VIRTIO_F_INDIRECT_DESC";
	case ENOENT: return "buffer id not in flight";
	case EEXIST: return "buffer id offered again while the device holds it";
	case ESHUTDOWN: return "queue destroyed";
	case ENXIO: return "notification for another queue";
	case EBADE: return "notification data disagrees with the ring";
	case ENOSPC: return "ring full";
	case EINVAL: return "invalid argument";
	default: return "unknown ring error";
	}
}
