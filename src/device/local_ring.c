/* SPDX-License-Identifier: MIT */
/*
 * Rings of transports whose driver names them by guest address in a
 * memory table the transport holds, and whose kicks and interrupts it
 * carries itself (virtio-mmio, the admin transport): the ring found in the
 * table, started fresh with a duplicate of a kick eventfd the transport
 * keeps for its life (so a notification from any thread never meets a
 * closed fd), and no call fd (the device core's call hook is the
 * interrupt).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "device_internal.h"
#include "vhu/mem.h"
#include "vhu/xlate.h"
#include "vhu/virtio.h"

static void *mem_part(void *mem, uint64_t gpa, uint64_t len, int access)
{
	uint64_t got = len;
	(void)access;   /* the memory table maps every region both ways */
	void *p = vhu_mem_translate(mem, gpa, &got, 0);
	return p && got >= len ? p : NULL;
}

/* The device reads the descriptors and the driver's part, writes its own
 * (§2.7, §2.8: the sizes of each part) */
bool dq_ring_map_by(dq_part_fn part, void *opaque, const struct dq_ring_gpa *r, uint16_t index, uint64_t features,
		    struct vhu_vq_config *c)
{
	bool packed = vhu_has_feature(features, VHU_F_RING_PACKED);
	*c = (struct vhu_vq_config){
		.num = r->size, .index = index, .features = features,
		.desc = part(opaque, r->desc, 16ull * r->size, VHU_ACCESS_READ),
		.driver_area = part(opaque, r->driver, packed ? 4 : 6 + 2ull * r->size, VHU_ACCESS_READ),
		.device_area = part(opaque, r->device, packed ? 4 : 6 + 8ull * r->size, VHU_ACCESS_WRITE),
	};
	return c->desc && c->driver_area && c->device_area;
}

bool dq_ring_map(const struct vhu_mem *mem, const struct dq_ring_gpa *r, uint16_t index, uint64_t features,
		 struct vhu_vq_config *c)
{
	bool ok = dq_ring_map_by(mem_part, (void *)mem, r, index, features, c);
	c->mem = mem;
	return ok;
}

int dq_start_local(struct vhu_queue *q, const struct vhu_vq_config *c, int kick_keep)
{
	bool packed = vhu_has_feature(c->features, VHU_F_RING_PACKED);
	int kick = fcntl(kick_keep, F_DUPFD_CLOEXEC, 0);
	if (kick < 0)
		return -errno;
	/* a fresh ring: a packed ring's wrap counters start at 1 (§2.8.1) */
	struct vhu_vq_pos pos = { .avail_wrap = packed, .used_wrap = packed };
	dq_pause(q);
	dq_set_kick_fd(q, kick);
	dq_set_call_fd(q, -1);
	dq_set_enabled(q, true);
	int rc = dq_start(q, c, &pos, NULL, 0);
	if (rc < 0)
		dq_reset(q);
	dq_resume(q);
	return rc;
}

void dq_stop_local(struct vhu_queue *q, int kick_keep)
{
	uint64_t v;
	dq_pause(q);
	dq_reset(q);   /* drained: every request it took is completed in the ring */
	dq_resume(q);
	(void)!read(kick_keep, &v, 8);   /* a notification left for the stopped ring */
}

int *dq_kicks_new(unsigned n)
{
	int *kick = malloc((n ? n : 1) * sizeof(*kick));
	if (!kick)
		return NULL;
	for (unsigned i = 0; i < n; i++) {
		if ((kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
			int e = errno;
			dq_kicks_free(kick, i);
			errno = e;
			return NULL;
		}
	}
	return kick;
}

void dq_kicks_free(int *kick, unsigned n)
{
	for (unsigned i = 0; kick && i < n; i++)
		close(kick[i]);
	free(kick);
}
