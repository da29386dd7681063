/* SPDX-License-Identifier: MIT */
/*
 * The management device (docs/admin-transport.md sections 2 to 4): the
 * envelope's checks in the specified order, the owner's commands, and the
 * member's handed to its admin member; the event queue in event.c, the
 * members in members.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mgmt_internal.h"
#include "vhu/virtio.h"

#define ADMIN_IOV 64

static bool owner_opcode(uint16_t op)
{
	return op == VHU_ADMIN_CMD_LIST_QUERY || op == VHU_ADMIN_CMD_LIST_USE || op == VHU_ADMIN_CMD_MGMT_CAPS_GET ||
	       op == VHU_ADMIN_CMD_DEV_CREATE || op == VHU_ADMIN_CMD_DEV_LIST || op == VHU_ADMIN_CMD_BACKING_LIST;
}

/* What a group supports: self only the list commands (section 3). */
static bool supported(unsigned group, uint16_t op)
{
	if (op == VHU_ADMIN_CMD_LIST_QUERY || op == VHU_ADMIN_CMD_LIST_USE)
		return true;
	return group == 1 && (owner_opcode(op) || op == VHU_ADMIN_CMD_DEV_DESTROY ||
			      op == VHU_ADMIN_CMD_DEV_INFO_GET || vhu_admin_member_opcode(op));
}

/* The supported bitmaps, made once: LIST_QUERY's answer, LIST_USE's bound,
 * every command's first check. */
static void supported_init(struct mgmt *mg)
{
	for (unsigned g = 0; g < 2; g++)
		for (unsigned op = 0; op < VHU_ADMIN_OPCODE_WORDS * 64; op++)
			if (supported(g, (uint16_t)op))
				mg->supported[g][op / 64] |= 1ull << (op % 64);
}

static void all_in_use(struct mgmt *mg)
{
	memcpy(mg->in_use, mg->supported, sizeof(mg->in_use));
}

static struct verdict list_command(struct mgmt *mg, unsigned g, const struct vhu_admin_req *r, uint32_t *len)
{
	if (r->opcode == VHU_ADMIN_CMD_LIST_QUERY) {
		for (unsigned w = 0; w < VHU_ADMIN_OPCODE_WORDS; w++)
			vhu_admin_put_le(mg->result + 8 * w, mg->supported[g][w], 8);
		*len = 8 * VHU_ADMIN_OPCODE_WORDS;
		return V_OK;
	}
	/* LIST_USE: a subset of what LIST_QUERY says; words beyond ours are zero-extended */
	uint64_t use[VHU_ADMIN_OPCODE_WORDS];
	for (unsigned w = 0; w < VHU_ADMIN_OPCODE_WORDS; w++) {
		use[w] = vhu_admin_le64(r->data + 8 * w);
		if (use[w] & ~mg->supported[g][w])
			return V_FIELD;
	}
	memcpy(mg->in_use[g], use, sizeof(use));
	return V_OK;
}

static struct verdict caps(struct mgmt *mg, uint32_t *len)
{
	uint8_t *p = mg->result;
	uint32_t backings;
	uint32_t total = mgmt_backings(mg, 0, NULL, 0, &backings);
	memset(p, 0, 32);
	vhu_admin_put_le(p, 1ull << 2, 8);   /* block */
	vhu_admin_put_le(p + 8, mg->cfg.max_members, 4);
	vhu_admin_put_le(p + 12, mg->n, 4);
	vhu_admin_put_le(p + 16, mg->cfg.max_queues, 2);
	vhu_admin_put_le(p + 18, mg->cfg.max_queue_size, 2);
	vhu_admin_put_le(p + 20, VHU_ADMIN_MMU_MAPPINGS, 4);
	vhu_admin_put_le(p + 24, VHU_ADMIN_MMU_ASIDS, 4);
	vhu_admin_put_le(p + 28, total, 4);
	*len = 32;
	return V_OK;
}

static struct verdict dev_list(struct mgmt *mg, const struct vhu_admin_req *r, uint32_t *len)
{
	uint64_t first = vhu_admin_le64(r->data), count = 0;
	uint32_t room = r->result_room < sizeof(mg->result) ? r->result_room : (uint32_t)sizeof(mg->result);
	uint32_t lo = 0;
	while (lo < mg->n && mg->members[lo]->id < first)
		lo++;
	for (uint32_t i = lo; i < mg->n && 8 + 8 * (count + 1) <= room; i++, count++)
		vhu_admin_put_le(mg->result + 8 + 8 * count, mg->members[i]->id, 8);
	vhu_admin_put_le(mg->result, count, 8);
	*len = (uint32_t)(8 + 8 * count);
	return V_OK;
}

static struct verdict backing_list(struct mgmt *mg, const struct vhu_admin_req *r, uint32_t *len)
{
	if (vhu_admin_le32(r->data + 4))
		return V_FIELD;
	uint32_t room = r->result_room < sizeof(mg->result) ? r->result_room : (uint32_t)sizeof(mg->result);
	uint32_t wrote;
	mgmt_backings(mg, vhu_admin_le32(r->data), mg->result + 8, room > 8 ? room - 8 : 0, &wrote);
	vhu_admin_put_le(mg->result, wrote, 4);
	vhu_admin_put_le(mg->result + 4, 0, 4);
	*len = 8 + wrote * VHU_ADMIN_BACKING_NAME;
	return V_OK;
}

static struct verdict owner_command(struct mgmt *mg, unsigned g, const struct vhu_admin_req *r, uint32_t *len)
{
	switch (r->opcode) {
	case VHU_ADMIN_CMD_LIST_QUERY:
	case VHU_ADMIN_CMD_LIST_USE:
		return list_command(mg, g, r, len);
	case VHU_ADMIN_CMD_MGMT_CAPS_GET:
		return caps(mg, len);
	case VHU_ADMIN_CMD_DEV_CREATE: {
		uint64_t id;
		struct verdict v = mgmt_member_create(mg, r, &id);
		if (!v.status) {
			vhu_admin_put_le(mg->result, id, 8);
			*len = 8;
		}
		return v;
	}
	case VHU_ADMIN_CMD_DEV_LIST:
		return dev_list(mg, r, len);
	default:
		return backing_list(mg, r, len);
	}
}

/* One command: the envelope's checks in the order of section 2. */
uint32_t mgmt_command(struct mgmt *mg, const struct iovec *iov, unsigned out, unsigned in)
{
	struct vhu_admin_req r;
	if (vhu_admin_take(iov, out, in, &r) < 0)
		return vhu_admin_give(iov, out, in, VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_COMMAND, NULL, 0);
	struct verdict v = V_OK;
	uint32_t len = 0;
	long idx = -1;
	int g = r.group_type == VHU_ADMIN_GROUP_SELF ? 0 : r.group_type == VHU_ADMIN_GROUP_MANAGED ? 1 : -1;
	if (g < 0)
		v = (struct verdict){ VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_GROUP };
	else if (!vhu_admin_list_has(mg->supported[g], VHU_ADMIN_OPCODE_WORDS, r.opcode) ||
		 (!vhu_admin_list_has(mg->in_use[g], VHU_ADMIN_OPCODE_WORDS, r.opcode) &&
		  r.opcode != VHU_ADMIN_CMD_LIST_QUERY && r.opcode != VHU_ADMIN_CMD_LIST_USE))
		v = (struct verdict){ VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_OPCODE };
	else if (owner_opcode(r.opcode) ? r.member != 0 : (idx = mgmt_member_find(mg, r.member)) < 0)
		v = (struct verdict){ VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_MEMBER };
	else if (r.reserved_set)
		v = V_FIELD;
	else if (owner_opcode(r.opcode))
		v = owner_command(mg, (unsigned)g, &r, &len);
	else if (r.opcode == VHU_ADMIN_CMD_DEV_DESTROY)
		mgmt_member_destroy(mg, (uint32_t)idx);   /* its requests completed first (4.2) */
	else if (r.opcode == VHU_ADMIN_CMD_DEV_INFO_GET)
		len = mgmt_member_info(mg->members[idx], mg->result);
	else
		return vhu_admin_member_command(mg->members[idx]->am, &r, iov, out, in);
	return vhu_admin_give(iov, out, in, v.status, v.qualifier, v.status ? NULL : mg->result, v.status ? 0 : len);
}

static void admin_handle(struct mgmt *mg, struct vhu_queue *q)
{
	struct vhu_vq_elem e;
	struct iovec iov[ADMIN_IOV];
	int r;
	while ((r = vhu_queue_pop(q, &e, iov, ADMIN_IOV)) != 0) {
		if (r < 0) {
			if (vhu_dev_vq_broken(vhu_queue_vq(q)))
				break;
			vhu_queue_push(q, &e, 0);   /* a buffer outside memory, or too many parts */
			continue;
		}
		/* in order, one at a time: its effects are complete before it is used (section 2) */
		vhu_queue_push(q, &e, mgmt_command(mg, iov, e.out_num, e.in_num));
	}
	vhu_queue_notify(q);
}

/* ---- the device's ops --------------------------------------------------------------- */

static void mgmt_handle(struct vhu_device *dev, struct vhu_queue *q, unsigned events)
{
	struct mgmt *mg = vhu_device_priv(dev);
	(void)events;
	if (vhu_queue_index(q) == MGMT_ADMIN_QUEUE)
		admin_handle(mg, q);
	else
		mgmt_event_post(mg, q);
}

static int mgmt_queue_start(struct vhu_device *dev, struct vhu_queue *q)
{
	struct mgmt *mg = vhu_device_priv(dev);
	if (vhu_queue_index(q) == MGMT_EVENT_QUEUE)
		vhu_queue_set_aux_fd(q, mg->ev_fd);   /* woken whenever an event is raised */
	return 0;
}

static int mgmt_get_config(struct vhu_device *dev, uint8_t *buf, uint32_t offset, uint32_t len)
{
	struct mgmt *mg = vhu_device_priv(dev);
	uint8_t c[12] = { 0 };
	vhu_admin_put_le(c, MGMT_ADMIN_QUEUE, 2);
	vhu_admin_put_le(c + 2, 1, 2);
	vhu_admin_put_le(c + 4, MGMT_EVENT_QUEUE, 2);
	vhu_admin_put_le(c + 8, mg->cfg.max_members, 4);
	if (offset > sizeof(c) || len > sizeof(c) - offset)
		return -EINVAL;
	memcpy(buf, c + offset, len);
	return 0;
}

static int mgmt_set_config(struct vhu_device *dev, const uint8_t *buf, uint32_t offset, uint32_t len, uint32_t flags)
{
	(void)dev, (void)buf, (void)offset, (void)len, (void)flags;
	return -EPERM;   /* read-only (section 3) */
}

/* A reset of the management device, or the end of its driver's session,
 * resets every member: their rings and mappings were in the memory that
 * goes with it. The members stay, for the next session (section 3). */
static void mgmt_reset(struct vhu_device *dev)
{
	struct mgmt *mg = vhu_device_priv(dev);
	for (uint32_t i = 0; i < mg->n; i++) {
		struct mgmt_member *mm = mg->members[i];
		vhu_admin_member_reset(mm->am);
		/* what it raised before is for the driver that went: the
		 * event queue is stopped, so nobody posts meanwhile */
		mgmt_event_forget(mg, mm);
		atomic_store(&mm->pending, 0);
	}
	all_in_use(mg);
}

static const struct vhu_device_ops mgmt_ops = {
	.handle = mgmt_handle,
	.queue_start = mgmt_queue_start,
	.get_config = mgmt_get_config,
	.set_config = mgmt_set_config,
	.reset = mgmt_reset,
};

/* The management device's memory changes: no member may touch it until
 * it is there again (the admin queue is stopped meanwhile). */
static void on_memory(struct vhu_backend *be, bool changing)
{
	struct mgmt *mg = vhu_backend_opaque(be);
	for (uint32_t i = 0; i < mg->n; i++) {
		if (changing)
			vhu_admin_member_pause(mg->members[i]->am);
		else
			(void)vhu_admin_member_resume(mg->members[i]->am);   /* a ring gone fails its queue */
	}
}

struct mgmt *mgmt_new(const struct mgmt_config *cfg)
{
	struct mgmt *mg = calloc(1, sizeof(*mg));
	if (!mg)
		return NULL;
	mg->cfg = *cfg;
	mg->next_id = 1;
	mg->backing_dirfd = -1;
	mg->ev_fd = -1;
	pthread_mutex_init(&mg->ev_lock, NULL);
	supported_init(mg);
	all_in_use(mg);
	if ((mg->ev_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		goto fail;
	if (cfg->backing_dir &&
	    (mg->backing_dirfd = open(cfg->backing_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		goto fail;
	struct vhu_device_config dc = {
		.ops = &mgmt_ops, .priv = mg, .num_queues = 2, .max_queue_size = 1024,
		.features = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_ADMIN_VQ) | VHU_BIT(VHU_F_RING_PACKED) |
			    VHU_BIT(VHU_F_EVENT_IDX) | VHU_BIT(VHU_F_INDIRECT_DESC),
		.config_size = 12, .log = cfg->log, .log_level = cfg->log_level,
	};
	if (!(mg->dev = vhu_device_new(&dc)))
		goto fail;
	/* no dirty log, inflight region or postcopy: members' writes would escape them */
	struct vhu_backend_config bc = {
		.device = mg->dev, .memory = on_memory, .opaque = mg,
		.protocol_features = VHU_BACKEND_PROTOCOL_FEATURES & ~((1ull << VHU_USER_PROTOCOL_F_LOG_SHMFD) |
								       (1ull << VHU_USER_PROTOCOL_F_INFLIGHT_SHMFD) |
								       (1ull << VHU_USER_PROTOCOL_F_PAGEFAULT)),
	};
	if (!(mg->be = vhu_backend_new(&bc)))
		goto fail;
	return mg;
fail:;
	int e = errno;
	mgmt_free(mg);
	errno = e;
	return NULL;
}

struct vhu_backend *mgmt_backend(struct mgmt *mg) { return mg->be; }

void mgmt_free(struct mgmt *mg)
{
	if (!mg)
		return;
	vhu_backend_free(mg->be);   /* the session's end resets the device: every member goes */
	mgmt_members_destroy_all(mg);
	vhu_device_free(mg->dev);
	free(mg->members);
	if (mg->backing_dirfd >= 0)
		close(mg->backing_dirfd);
	if (mg->ev_fd >= 0)
		close(mg->ev_fd);
	pthread_mutex_destroy(&mg->ev_lock);
	free(mg);
}
