/* SPDX-License-Identifier: MIT */
/*
 * Managed block devices (docs/admin-transport.md 4.2): made from a typed
 * creation structure over a backing the operator named, each a device of
 * the device core served by vhu-blk's request code on the poll group, its
 * transport an admin member. Every check is made before anything is made,
 * so a refused DEV_CREATE leaves nothing behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mgmt_internal.h"
#include "vhu/virtio.h"

#define BACKING_MEM "mem:"
#define BACKING_NULL "null:"
#define VIRTIO_ID_BLOCK 2   /* §5: the one type made today */

static struct verdict verdict(uint16_t status, uint16_t qualifier)
{
	return (struct verdict){ status, qualifier };
}

long mgmt_member_find(const struct mgmt *mg, uint64_t id)
{
	uint32_t lo = 0, hi = mg->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (mg->members[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < mg->n && mg->members[lo]->id == id ? (long)lo : -1;
}

/* A name the operator's directory may hold: NUL-terminated within its 64
 * bytes, no path, nothing hidden. */
static bool plain_name(const char *s)
{
	size_t n = strnlen(s, VHU_ADMIN_BACKING_NAME);
	return n && n < VHU_ADMIN_BACKING_NAME && !strchr(s, '/') && s[0] != '.';
}

static bool in_use(const struct mgmt *mg, const char *name, bool writable)
{
	for (uint32_t i = 0; i < mg->n; i++) {
		const struct mgmt_member *o = mg->members[i];
		if (!strcmp(o->made.backing, name) && (writable || !(o->made.flags & VHU_ADMIN_CREATE_READ_ONLY)))
			return true;
	}
	return false;
}

/* The backing opened into d (fd, capacity in sectors of what it holds). */
static struct verdict open_backing(struct mgmt *mg, const struct vhu_admin_create *c, struct blk_dev *d,
				   uint64_t *mem_bytes)
{
	bool ro = c->flags & VHU_ADMIN_CREATE_READ_ONLY;
	d->fd = -1;
	if (!strcmp(c->backing, BACKING_NULL) || !strcmp(c->backing, BACKING_MEM)) {
		if (!c->capacity || c->capacity > (UINT64_MAX >> 10))
			return V_FIELD;   /* neither has a size of its own */
		d->capacity = c->capacity;
		if (!strcmp(c->backing, BACKING_NULL)) {
			d->engine = BLK_ENGINE_NULL;
			return V_OK;
		}
		uint64_t bytes = c->capacity * VHU_BLK_SECTOR_SIZE;
		if (bytes > mg->cfg.mem_limit - mg->mem_used)
			return verdict(VHU_ADMIN_STATUS_ENOSPC, VHU_ADMIN_Q_NORESOURCE);
		if ((d->fd = memfd_create("vhu-mgmt-member", MFD_CLOEXEC)) < 0 || ftruncate(d->fd, (off_t)bytes) < 0)
			return verdict(VHU_ADMIN_STATUS_ENOMEM, VHU_ADMIN_Q_NORESOURCE);
		*mem_bytes = bytes;
		return V_OK;
	}
	if (!plain_name(c->backing))
		return V_FIELD;
	if (mg->backing_dirfd < 0)
		return verdict(VHU_ADMIN_STATUS_ENXIO, VHU_ADMIN_Q_INVALID_FIELD);
	if (in_use(mg, c->backing, !ro))
		return verdict(VHU_ADMIN_STATUS_EBUSY, VHU_ADMIN_Q_INVALID_FIELD);
	/* O_NOFOLLOW: a link in the directory does not lead out of it */
	d->fd = openat(mg->backing_dirfd, c->backing, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (d->fd < 0 || fstat(d->fd, &st) < 0)
		return verdict(errno == ENOENT || errno == ELOOP ? VHU_ADMIN_STATUS_ENXIO : VHU_ADMIN_STATUS_EBUSY,
			       VHU_ADMIN_Q_INVALID_FIELD);
	uint64_t bytes = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(d->fd, BLKGETSIZE64, &bytes) < 0)
		bytes = 0;
	else if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		bytes = 0;
	uint64_t sectors = bytes / VHU_BLK_SECTOR_SIZE;
	if (!sectors)
		return verdict(VHU_ADMIN_STATUS_ENXIO, VHU_ADMIN_Q_INVALID_FIELD);
	if (c->capacity > sectors)
		return V_FIELD;
	d->capacity = c->capacity ? c->capacity : sectors;
	return V_OK;
}

static bool parse_create(const struct mgmt *mg, const uint8_t *p, struct vhu_admin_create *c)
{
	vhu_admin_create_decode(p, c);
	if (!c->queue_size_max)
		c->queue_size_max = mg->cfg.max_queue_size;
	if (!c->blk_size)
		c->blk_size = VHU_BLK_SECTOR_SIZE;
	return c->device_type == VIRTIO_ID_BLOCK && c->num_queues >= 1 && c->num_queues <= mg->cfg.max_queues &&
	       c->queue_size_max <= mg->cfg.max_queue_size && !(c->flags & ~VHU_ADMIN_CREATE_READ_ONLY) &&
	       c->blk_size >= 512 && c->blk_size <= 65536 && !(c->blk_size & (c->blk_size - 1)) && !c->reserved &&
	       strnlen(c->backing, sizeof(c->backing)) < sizeof(c->backing);
}

/* The block device a member serves, as vhu-blk would for its export. */
static void blk_setup(struct mgmt *mg, struct mgmt_member *mm)
{
	struct blk_dev *d = &mm->blk;
	const struct vhu_admin_create *c = &mm->made;
	snprintf(mm->serial, sizeof(mm->serial), "vhu-mgmt-%" PRIu64, mm->id);
	d->path = mm->made.backing;
	d->serial = mm->serial;
	d->read_only = c->flags & VHU_ADMIN_CREATE_READ_ONLY;
	d->num_queues = c->num_queues;
	d->queue_size = c->queue_size_max;
	/* a chain of seg_max + 2 descriptors must fit a ring without indirect ones */
	d->seg_max = c->queue_size_max > 128 ? 126 : c->queue_size_max > 3 ? c->queue_size_max - 2u : 1;
	if (d->engine != BLK_ENGINE_NULL)
		d->engine = mg->cfg.engine;
	blk_dev_fill_config(d);
	d->cfg.blk_size = htole32(c->blk_size);
}

static void close_backing(struct mgmt_member *mm)
{
	if (mm->blk.fd < 0)
		return;
	if (!mm->blk.read_only && !mm->mem_bytes)
		(void)fdatasync(mm->blk.fd);
	close(mm->blk.fd);
	mm->blk.fd = -1;
}

static void member_free(struct mgmt *mg, struct mgmt_member *mm)
{
	vhu_admin_member_free(mm->am);   /* reset: every queue stopped, its requests completed */
	mgmt_event_forget(mg, mm);
	vhu_device_free(mm->dev);
	close_backing(mm);
	mg->mem_used -= mm->mem_bytes;
	free(mm);
}

static bool make_device(struct mgmt *mg, struct mgmt_member *mm)
{
	struct vhu_device_config dc = {
		.ops = &blk_ops, .priv = &mm->blk, .num_queues = mm->blk.num_queues,
		.max_queue_size = mm->blk.queue_size, .features = blk_dev_features(&mm->blk),
		.config_size = sizeof(mm->blk.cfg), .log = mg->cfg.log, .log_opaque = mm->serial,
		.log_level = mg->cfg.log_level, .exec = VHU_EXEC_POLL_GROUP, .poll_group = mg->cfg.pg,
	};
	if (!(mm->dev = vhu_device_new(&dc)))
		return false;
	struct vhu_admin_member_config mc = { .dev = mm->dev, .id = mm->id, .mem = vhu_backend_mem(mg->be),
					      .event = mgmt_event_raise, .event_opaque = mm };
	return vhu_admin_member_new(&mm->am, &mc) == 0;
}

struct verdict mgmt_member_create(struct mgmt *mg, const struct vhu_admin_req *r, uint64_t *id)
{
	struct vhu_admin_create c;
	if (!parse_create(mg, r->data, &c))
		return V_FIELD;
	if (mg->n >= mg->cfg.max_members)
		return verdict(VHU_ADMIN_STATUS_ENOSPC, VHU_ADMIN_Q_NORESOURCE);
	if (mg->n == mg->cap) {
		uint32_t cap = mg->cap ? 2 * mg->cap : 16;
		struct mgmt_member **m = realloc(mg->members, cap * sizeof(*m));
		if (!m)
			return verdict(VHU_ADMIN_STATUS_ENOMEM, VHU_ADMIN_Q_NORESOURCE);
		mg->members = m;
		mg->cap = cap;
	}
	struct mgmt_member *mm = calloc(1, sizeof(*mm));
	if (!mm)
		return verdict(VHU_ADMIN_STATUS_ENOMEM, VHU_ADMIN_Q_NORESOURCE);
	mm->mg = mg;
	mm->made = c;
	mm->id = mg->next_id;
	struct verdict v = open_backing(mg, &c, &mm->blk, &mm->mem_bytes);
	if (v.status) {
		close_backing(mm);
		free(mm);
		return v;
	}
	blk_setup(mg, mm);
	mg->mem_used += mm->mem_bytes;
	if (!make_device(mg, mm)) {
		vhu_device_free(mm->dev);   /* no member was made on it */
		close_backing(mm);
		mg->mem_used -= mm->mem_bytes;
		free(mm);
		return verdict(VHU_ADMIN_STATUS_ENOMEM, VHU_ADMIN_Q_NORESOURCE);
	}
	mg->members[mg->n++] = mm;
	*id = mg->next_id++;   /* never reused (section 3) */
	return V_OK;
}

void mgmt_member_destroy(struct mgmt *mg, uint32_t index)
{
	struct mgmt_member *mm = mg->members[index];
	memmove(&mg->members[index], &mg->members[index + 1], (mg->n - index - 1) * sizeof(*mg->members));
	mg->n--;
	member_free(mg, mm);
	/* the last one gone: what the members' queues held goes back to the
	 * system, not only to the allocator (a daemon idles for long) */
	if (!mg->n)
		malloc_trim(0);
}

void mgmt_members_destroy_all(struct mgmt *mg)
{
	while (mg->n)
		mgmt_member_destroy(mg, mg->n - 1);
}

uint32_t mgmt_member_info(const struct mgmt_member *mm, uint8_t *out)
{
	struct vhu_admin_create c = mm->made;
	c.capacity = mm->blk.capacity;   /* the member's, taken from its backing when 0 was asked */
	vhu_admin_create_encode(&c, out);
	return VHU_ADMIN_CREATE_SIZE;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

uint32_t mgmt_backings(struct mgmt *mg, uint32_t first, uint8_t *out, uint32_t room, uint32_t *wrote)
{
	const char *fixed[] = { BACKING_MEM, BACKING_NULL };
	struct dirent **names = NULL;
	int nd = 0;
	if (mg->backing_dirfd >= 0) {
		/* scandir needs a path: the directory as this process holds it */
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", mg->backing_dirfd);
		nd = scandir(path, &names, NULL, by_name);
		if (nd < 0)
			nd = 0;
	}
	uint32_t total = 0;
	*wrote = 0;
	for (int i = -2; i < nd; i++) {
		const char *name = i < 0 ? fixed[i + 2] : names[i]->d_name;
		struct stat st;
		if (i >= 0 && (!plain_name(name) || fstatat(mg->backing_dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			       !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))))
			continue;
		if (total++ < first || (*wrote + 1) * VHU_ADMIN_BACKING_NAME > room)
			continue;
		uint8_t *slot = out + *wrote * VHU_ADMIN_BACKING_NAME;
		memset(slot, 0, VHU_ADMIN_BACKING_NAME);
		memcpy(slot, name, strlen(name));
		(*wrote)++;
	}
	for (int i = 0; i < nd; i++)
		free(names[i]);
	free(names);
	return total;
}
