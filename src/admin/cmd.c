/* SPDX-License-Identifier: MIT */
/*
 * Taking a group administration command out of its buffer and giving its
 * result back (vhu/admin.h), with the merged spec's rules for parts shorter
 * or longer than a command's structures ("Administration Virtqueues").
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "vhu/admin.h"

_Static_assert(sizeof(struct vhu_admin_cmd_hdr) == 24, "admin command header");
_Static_assert(sizeof(struct vhu_admin_cmd_status) == 8, "admin command status");
_Static_assert(sizeof(struct vhu_admin_caps) == 32, "caps");
_Static_assert(sizeof(struct vhu_admin_create) == 88, "create");
_Static_assert(sizeof(struct vhu_admin_vq) == 32, "vq");
_Static_assert(sizeof(struct vhu_admin_vq_state) == 40, "vq state");
_Static_assert(sizeof(struct vhu_admin_mmu_map) == 32, "mmu map");
_Static_assert(sizeof(struct vhu_admin_mmu_err) == 24, "mmu err");
_Static_assert(sizeof(struct vhu_admin_event) == 16, "event");
_Static_assert(sizeof(struct vhu_mgmt_config) == 12, "management config");

/* Copy up to len bytes between buf and the iovecs from byte skip of them
 * on (into them if out): how many. */
static size_t copy_iov(const struct iovec *iov, unsigned n, size_t skip, uint8_t *buf, size_t len, bool out)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		size_t k = l - skip < len - done ? l - skip : len - done;
		uint8_t *at = (uint8_t *)iov[i].iov_base + skip;
		memcpy(out ? at : buf + done, out ? buf + done : at, k);
		done += k;
		skip = 0;
	}
	return done;
}

static size_t total(const struct iovec *iov, unsigned n)
{
	size_t t = 0;
	for (unsigned i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

int vhu_admin_take(const struct iovec *iov, unsigned out, unsigned in, struct vhu_admin_req *req)
{
	uint8_t hdr[sizeof(struct vhu_admin_cmd_hdr)] = { 0 };

	memset(req, 0, sizeof(*req));
	size_t room = total(iov + out, in);
	if (!out || !in || room < sizeof(struct vhu_admin_cmd_status))
		return -EINVAL;
	copy_iov(iov, out, 0, hdr, sizeof(hdr), false);   /* short: zero-extended */
	req->opcode = vhu_admin_le16(hdr);
	req->group_type = vhu_admin_le16(hdr + 2);
	for (unsigned i = 4; i < 16; i++)
		req->reserved_set |= hdr[i] != 0;
	req->member = vhu_admin_le64(hdr + 16);
	req->data_len = (uint32_t)copy_iov(iov, out, sizeof(hdr), req->data, sizeof(req->data), false);
	room -= sizeof(struct vhu_admin_cmd_status);
	req->result_room = room > UINT32_MAX ? UINT32_MAX : (uint32_t)room;
	return 0;
}

uint32_t vhu_admin_give(const struct iovec *iov, unsigned out, unsigned in, uint16_t status, uint16_t qualifier,
			const void *result, uint32_t len)
{
	const struct iovec *w = iov + out;
	struct vhu_admin_cmd_status st = { htole16(status), htole16(qualifier), { 0 } };

	if (total(w, in) < sizeof(st))
		return 0;
	copy_iov(w, in, 0, (uint8_t *)&st, sizeof(st), true);
	/* a failed command has no result (the merged spec defines none) */
	size_t put = status == VHU_ADMIN_STATUS_OK && result ? copy_iov(w, in, sizeof(st), (uint8_t *)(uintptr_t)result, len, true) : 0;
	return (uint32_t)(sizeof(st) + put);
}

void vhu_admin_create_encode(const struct vhu_admin_create *c, uint8_t *p)
{
	memset(p, 0, VHU_ADMIN_CREATE_SIZE);
	vhu_admin_put_le(p, c->device_type, 2);
	vhu_admin_put_le(p + 2, c->num_queues, 2);
	vhu_admin_put_le(p + 4, c->queue_size_max, 2);
	vhu_admin_put_le(p + 6, c->flags, 2);
	vhu_admin_put_le(p + 8, c->blk_size, 4);
	vhu_admin_put_le(p + 12, c->reserved, 4);
	vhu_admin_put_le(p + 16, c->capacity, 8);
	memcpy(p + 24, c->backing, sizeof(c->backing));
}

void vhu_admin_create_decode(const uint8_t *p, struct vhu_admin_create *c)
{
	*c = (struct vhu_admin_create){
		.device_type = vhu_admin_le16(p), .num_queues = vhu_admin_le16(p + 2),
		.queue_size_max = vhu_admin_le16(p + 4), .flags = vhu_admin_le16(p + 6),
		.blk_size = vhu_admin_le32(p + 8), .reserved = vhu_admin_le32(p + 12),
		.capacity = vhu_admin_le64(p + 16),
	};
	memcpy(c->backing, p + 24, sizeof(c->backing));
}
