/* SPDX-License-Identifier: MIT */
/* The admin-virtqueue transport's driver (vhu/admin_driver.h). */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vhu/admin_driver.h"
#include "vhu/virtio.h"

#define CMD_ROOM (24 + VHU_ADMIN_DATA_MAX)
#define RES_ROOM (8 + 8 + 8 * 512)
#define EVENT_SIZE 16u
#define INDIRECT_MAX 8u             /* descriptors per indirect table */

struct dev_queue {
	struct vhu_drv_vq vq;
	atomic_bool event;              /* a used-buffer event came for it */
};

struct vhu_admin_dev {
	struct vhu_admin_driver *ad;
	uint64_t member, features;
	unsigned nq;
	struct dev_queue *q;
	bool mmu;
	atomic_bool needs_reset;
	atomic_uint_fast64_t notifies, events;
	struct vhu_admin_dev *next;     /* the driver's list (ev_lock) */
};

struct vhu_admin_driver {
	struct vhu_fe *fe;
	struct vhu_fe_queue *aq, *eq;
	pthread_mutex_t cmd_lock;
	uint8_t *cmd, *res;             /* one command's buffer, in the front-end's memory */
	uint64_t cmd_addr, res_addr;
	uint16_t qualifier;
	pthread_mutex_t ev_lock;
	uint8_t *ev;                    /* the event queue's buffers */
	uint64_t ev_addr;
	unsigned nev;
	struct vhu_admin_dev *devs;
};

uint64_t vhu_admin_driver_features(void)
{
	return VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_ADMIN_VQ) | VHU_BIT(VHU_F_EVENT_IDX);
}

static int give_event_buffer(struct vhu_admin_driver *ad, unsigned i)
{
	struct vhu_sg sg = { ad->ev_addr + (uint64_t)i * EVENT_SIZE, EVENT_SIZE };
	return vhu_drv_vq_add(vhu_fe_queue_vq(ad->eq), &sg, 0, 1, ad->ev + (size_t)i * EVENT_SIZE);
}

int vhu_admin_driver_new(struct vhu_admin_driver **out, struct vhu_fe *fe)
{
	uint8_t c[12];
	if (!vhu_has_feature(vhu_fe_features(fe), VHU_F_ADMIN_VQ) || vhu_fe_get_config(fe, 0, c, sizeof(c)) < 0)
		return -ENODEV;
	uint16_t aqi = vhu_admin_le16(c), aqn = vhu_admin_le16(c + 2), eqi = vhu_admin_le16(c + 4);
	struct vhu_fe_queue *aq = vhu_fe_queue(fe, aqi), *eq = vhu_fe_queue(fe, eqi);
	if (!aqn || !aq || !eq || aqi == eqi)
		return -ENODEV;
	struct vhu_admin_driver *ad = calloc(1, sizeof(*ad));
	if (!ad)
		return -ENOMEM;
	ad->fe = fe;
	ad->aq = aq;
	ad->eq = eq;
	ad->nev = vhu_fe_queue_vq(eq)->num;
	ad->cmd = vhu_fe_alloc(fe, CMD_ROOM, 64, &ad->cmd_addr);
	ad->res = vhu_fe_alloc(fe, RES_ROOM, 64, &ad->res_addr);
	ad->ev = vhu_fe_alloc(fe, (size_t)ad->nev * EVENT_SIZE, 64, &ad->ev_addr);
	if (!ad->cmd || !ad->res || !ad->ev) {
		free(ad);
		return -ENOMEM;
	}
	pthread_mutex_init(&ad->cmd_lock, NULL);
	pthread_mutex_init(&ad->ev_lock, NULL);
	for (unsigned i = 0; i < ad->nev; i++)
		give_event_buffer(ad, i);
	int rc = vhu_fe_queue_kick(eq);
	if (rc < 0) {
		vhu_admin_driver_free(ad);
		return rc;
	}
	*out = ad;
	return 0;
}

static void dev_free(struct vhu_admin_dev *d)
{
	for (unsigned i = 0; i < d->nq; i++)
		vhu_drv_vq_destroy(&d->q[i].vq);
	free(d->q);
	free(d);
}

void vhu_admin_driver_free(struct vhu_admin_driver *ad)
{
	if (!ad)
		return;
	while (ad->devs) {
		struct vhu_admin_dev *d = ad->devs;
		ad->devs = d->next;
		dev_free(d);
	}
	pthread_mutex_destroy(&ad->cmd_lock);
	pthread_mutex_destroy(&ad->ev_lock);
	free(ad);
}

uint16_t vhu_admin_qualifier(const struct vhu_admin_driver *ad) { return ad->qualifier; }

static int wait_used(struct vhu_fe_queue *fq, uint32_t *used)
{
	void *tok;
	for (;;) {
		int r = vhu_drv_vq_get(vhu_fe_queue_vq(fq), &tok, used);
		if (r != 0)
			return r < 0 ? -EPROTO : 0;
		if ((r = vhu_fe_queue_wait(fq, -1)) < 0)
			return r;
	}
}

int vhu_admin_command(struct vhu_admin_driver *ad, uint16_t group_type, uint16_t opcode, uint64_t member,
		      const void *data, uint32_t len, void *result, uint32_t room, struct vhu_admin_answer *ans)
{
	if (len > VHU_ADMIN_DATA_MAX || room > RES_ROOM - 8)
		return -EINVAL;
	pthread_mutex_lock(&ad->cmd_lock);
	memset(ad->cmd, 0, 24);
	vhu_admin_put_le(ad->cmd, opcode, 2);
	vhu_admin_put_le(ad->cmd + 2, group_type, 2);
	vhu_admin_put_le(ad->cmd + 16, member, 8);
	if (len)
		memcpy(ad->cmd + 24, data, len);
	memset(ad->res, 0xff, 8);
	struct vhu_sg sg[2] = { { ad->cmd_addr, 24 + len }, { ad->res_addr, 8 + room } };
	uint32_t used = 0;
	int rc = vhu_drv_vq_add(vhu_fe_queue_vq(ad->aq), sg, 1, 1, ad);
	if (rc == 0)
		rc = vhu_fe_queue_kick(ad->aq);
	if (rc == 0)
		rc = wait_used(ad->aq, &used);
	if (rc == 0 && (used < 8 || used > 8 + room))
		rc = -EPROTO;   /* no status, or more than the buffer holds */
	if (rc == 0) {
		*ans = (struct vhu_admin_answer){ vhu_admin_le16(ad->res), vhu_admin_le16(ad->res + 2), used - 8 };
		ad->qualifier = ans->qualifier;
		if (result && ans->result_len)
			memcpy(result, ad->res + 8, ans->result_len);
	}
	pthread_mutex_unlock(&ad->cmd_lock);
	return rc;
}

/* A command of the managed group; the device's status as -errno. */
static int managed(struct vhu_admin_driver *ad, uint16_t opcode, uint64_t member, const void *data, uint32_t len,
		   void *result, uint32_t room, uint32_t *got)
{
	struct vhu_admin_answer a;
	int rc = vhu_admin_command(ad, VHU_ADMIN_GROUP_MANAGED, opcode, member, data, len, result, room, &a);
	if (rc < 0)
		return rc;
	if (got)
		*got = a.result_len;
	return a.status ? -(int)a.status : 0;
}

int vhu_admin_caps_get(struct vhu_admin_driver *ad, struct vhu_admin_caps *caps)
{
	uint8_t r[32] = { 0 };
	int rc = managed(ad, VHU_ADMIN_CMD_MGMT_CAPS_GET, 0, NULL, 0, r, sizeof(r), NULL);
	if (rc < 0)
		return rc;
	*caps = (struct vhu_admin_caps){
		.device_types = vhu_admin_le64(r), .max_members = vhu_admin_le32(r + 8),
		.members = vhu_admin_le32(r + 12), .max_queues = vhu_admin_le16(r + 16),
		.max_queue_size = vhu_admin_le16(r + 18), .mmu_max_mappings = vhu_admin_le32(r + 20),
		.max_asids = vhu_admin_le32(r + 24), .backings = vhu_admin_le32(r + 28),
	};
	return 0;
}

int vhu_admin_dev_create(struct vhu_admin_driver *ad, const struct vhu_admin_create *c, uint64_t *member)
{
	uint8_t d[VHU_ADMIN_CREATE_SIZE], r[8];
	vhu_admin_create_encode(c, d);
	int rc = managed(ad, VHU_ADMIN_CMD_DEV_CREATE, 0, d, sizeof(d), r, sizeof(r), NULL);
	if (rc == 0)
		*member = vhu_admin_le64(r);
	return rc;
}

int vhu_admin_dev_destroy(struct vhu_admin_driver *ad, uint64_t member)
{
	return managed(ad, VHU_ADMIN_CMD_DEV_DESTROY, member, NULL, 0, NULL, 0, NULL);
}

int vhu_admin_dev_list(struct vhu_admin_driver *ad, uint64_t first, uint64_t *ids, unsigned max)
{
	uint8_t d[8], r[8 + 8 * 512];
	uint32_t got;
	vhu_admin_put_le(d, first, 8);
	if (max > 512)
		max = 512;
	int rc = managed(ad, VHU_ADMIN_CMD_DEV_LIST, 0, d, 8, r, 8 + 8 * max, &got);
	if (rc < 0)
		return rc;
	uint64_t n = got >= 8 ? vhu_admin_le64(r) : 0;
	if (n > max || 8 + 8 * n > got)
		return -EPROTO;
	for (unsigned i = 0; i < n; i++)
		ids[i] = vhu_admin_le64(r + 8 + 8 * i);
	return (int)n;
}

int vhu_admin_dev_info(struct vhu_admin_driver *ad, uint64_t member, struct vhu_admin_create *c)
{
	uint8_t r[VHU_ADMIN_CREATE_SIZE] = { 0 };
	int rc = managed(ad, VHU_ADMIN_CMD_DEV_INFO_GET, member, NULL, 0, r, sizeof(r), NULL);
	if (rc < 0)
		return rc;
	vhu_admin_create_decode(r, c);
	c->backing[sizeof(c->backing) - 1] = 0;
	return 0;
}

int vhu_admin_backings(struct vhu_admin_driver *ad, uint32_t first, char (*names)[VHU_ADMIN_BACKING_NAME],
		       unsigned max)
{
	uint8_t d[8] = { 0 }, r[8 + 64 * VHU_ADMIN_BACKING_NAME];
	uint32_t got;
	vhu_admin_put_le(d, first, 4);
	if (max > 64)
		max = 64;
	int rc = managed(ad, VHU_ADMIN_CMD_BACKING_LIST, 0, d, 8, r, 8 + max * VHU_ADMIN_BACKING_NAME, &got);
	if (rc < 0)
		return rc;
	uint32_t n = got >= 8 ? vhu_admin_le32(r) : 0;
	if (n > max || 8 + (uint64_t)n * VHU_ADMIN_BACKING_NAME > got)
		return -EPROTO;
	for (uint32_t i = 0; i < n; i++) {
		memcpy(names[i], r + 8 + i * VHU_ADMIN_BACKING_NAME, VHU_ADMIN_BACKING_NAME);
		names[i][VHU_ADMIN_BACKING_NAME - 1] = 0;
	}
	return (int)n;
}

int vhu_admin_status_get(struct vhu_admin_driver *ad, uint64_t member, uint8_t *status)
{
	uint8_t r[8] = { 0 };
	int rc = managed(ad, VHU_ADMIN_CMD_STATUS_GET, member, NULL, 0, r, sizeof(r), NULL);
	*status = r[0];
	return rc;
}

int vhu_admin_mmu_map(struct vhu_admin_driver *ad, uint64_t member, const struct vhu_admin_mmu_map *m)
{
	uint8_t d[32];
	vhu_admin_put_le(d, m->asid, 4);
	vhu_admin_put_le(d + 4, m->flags, 4);
	vhu_admin_put_le(d + 8, m->iova, 8);
	vhu_admin_put_le(d + 16, m->size, 8);
	vhu_admin_put_le(d + 24, m->dma, 8);
	return managed(ad, VHU_ADMIN_CMD_MMU_MAP, member, d, sizeof(d), NULL, 0, NULL);
}

int vhu_admin_mmu_unmap(struct vhu_admin_driver *ad, uint64_t member, uint32_t asid, uint64_t iova, uint64_t size)
{
	uint8_t d[24] = { 0 };
	vhu_admin_put_le(d, asid, 4);
	vhu_admin_put_le(d + 8, iova, 8);
	vhu_admin_put_le(d + 16, size, 8);
	return managed(ad, VHU_ADMIN_CMD_MMU_UNMAP, member, d, sizeof(d), NULL, 0, NULL);
}

int vhu_admin_mmu_error(struct vhu_admin_driver *ad, uint64_t member, struct vhu_admin_mmu_err *e)
{
	uint8_t r[24] = { 0 };
	int rc = managed(ad, VHU_ADMIN_CMD_MMU_ERR_GET, member, NULL, 0, r, sizeof(r), NULL);
	*e = (struct vhu_admin_mmu_err){ .reason = vhu_admin_le32(r), .queue = vhu_admin_le16(r + 4),
					 .asid = vhu_admin_le32(r + 8), .flags = vhu_admin_le32(r + 12),
					 .iova = vhu_admin_le64(r + 16) };
	return rc;
}

/* ---- managed devices ------------------------------------------------------------- */

static int member_u8(struct vhu_admin_driver *ad, uint16_t opcode, uint64_t member, int queue, uint8_t v)
{
	uint8_t d[8] = { 0 };
	if (queue >= 0) {
		vhu_admin_put_le(d, (uint16_t)queue, 2);
		d[2] = v;
	} else {
		d[0] = v;
	}
	return managed(ad, opcode, member, d, sizeof(d), NULL, 0, NULL);
}

void *vhu_admin_dev_alloc(struct vhu_admin_dev *d, size_t size, size_t align, uint64_t *addr)
{
	void *p = vhu_fe_alloc(d->ad->fe, size, align, addr);
	struct vhu_admin_mmu_map m = { 0, VHU_ADMIN_MMU_READ | VHU_ADMIN_MMU_WRITE, *addr, size, *addr };
	if (p && d->mmu && vhu_admin_mmu_map(d->ad, d->member, &m) < 0)
		return NULL;
	return p;
}

static int start_queue(struct vhu_admin_dev *d, unsigned i, uint16_t size)
{
	bool packed = vhu_has_feature(d->features, VHU_F_RING_PACKED);
	struct vhu_vq_layout l;
	uint64_t gpa;
	vhu_vq_layout(size, packed, &l);
	unsigned char *ring = vhu_admin_dev_alloc(d, l.size, 4096, &gpa);
	/* indirect tables, so a request takes one descriptor of the ring */
	bool indirect = vhu_has_feature(d->features, VHU_F_INDIRECT_DESC);
	uint64_t ind_addr = 0;
	void *ind = indirect ? vhu_admin_dev_alloc(d, (size_t)size * INDIRECT_MAX * 16, 64, &ind_addr) : NULL;
	if (!ring || (indirect && !ind))
		return -ENOMEM;
	memset(ring, 0, l.size);
	struct vhu_vq_config c = { .num = size, .index = (uint16_t)i, .features = d->features,
				   .desc = ring + l.desc_off, .driver_area = ring + l.driver_off,
				   .device_area = ring + l.device_off };
	int rc = vhu_drv_vq_init(&d->q[i].vq, &c, ind, ind_addr, ind ? INDIRECT_MAX : 0);
	if (rc < 0)
		return rc;
	uint8_t v[32] = { 0 };
	vhu_admin_put_le(v, i, 2);
	vhu_admin_put_le(v + 2, size, 2);
	vhu_admin_put_le(v + 8, gpa + l.desc_off, 8);
	vhu_admin_put_le(v + 16, gpa + l.driver_off, 8);
	vhu_admin_put_le(v + 24, gpa + l.device_off, 8);
	if ((rc = managed(d->ad, VHU_ADMIN_CMD_VQ_SET, d->member, v, sizeof(v), NULL, 0, NULL)) < 0 ||
	    (rc = member_u8(d->ad, VHU_ADMIN_CMD_VQ_INTERRUPT_SET, d->member, (int)i, 1)) < 0)
		return rc;
	return member_u8(d->ad, VHU_ADMIN_CMD_VQ_ENABLE_SET, d->member, (int)i, 1);
}

static int initialise(struct vhu_admin_dev *d, const struct vhu_admin_dev_setup *s)
{
	struct vhu_admin_driver *ad = d->ad;
	uint8_t st = 0, f[8];
	int rc;
	if ((rc = member_u8(ad, VHU_ADMIN_CMD_STATUS_SET, d->member, -1, 0)) < 0 ||
	    (rc = member_u8(ad, VHU_ADMIN_CMD_STATUS_SET, d->member, -1, VHU_STATUS_ACKNOWLEDGE)) < 0 ||
	    (rc = member_u8(ad, VHU_ADMIN_CMD_STATUS_SET, d->member, -1, VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER)) < 0 ||
	    (rc = managed(ad, VHU_ADMIN_CMD_DEV_FEATURES_GET, d->member, NULL, 0, f, 8, NULL)) < 0)
		return rc;
	d->features = vhu_admin_le64(f) & (s->features | VHU_BIT(VHU_F_VERSION_1));
	vhu_admin_put_le(f, d->features, 8);
	uint8_t ready = VHU_STATUS_ACKNOWLEDGE | VHU_STATUS_DRIVER | VHU_STATUS_FEATURES_OK;
	if ((rc = managed(ad, VHU_ADMIN_CMD_DRV_FEATURES_SET, d->member, f, 8, NULL, 0, NULL)) < 0 ||
	    (rc = member_u8(ad, VHU_ADMIN_CMD_STATUS_SET, d->member, -1, ready)) < 0 ||
	    (rc = vhu_admin_status_get(ad, d->member, &st)) < 0)
		return rc;
	if (!(st & VHU_STATUS_FEATURES_OK))
		return -EPROTO;   /* §3.1.1 step 6: the device refused them */
	if (s->mmu && (rc = member_u8(ad, VHU_ADMIN_CMD_MMU_ENABLE, d->member, -1, 1)) < 0)
		return rc;
	for (unsigned i = 0; i < d->nq; i++)
		if ((rc = start_queue(d, i, s->queue_size)) < 0)
			return rc;
	return member_u8(ad, VHU_ADMIN_CMD_STATUS_SET, d->member, -1, ready | VHU_STATUS_DRIVER_OK);
}

int vhu_admin_dev_start(struct vhu_admin_driver *ad, uint64_t member, const struct vhu_admin_dev_setup *s,
			struct vhu_admin_dev **out)
{
	if (!member || !s->num_queues || !s->queue_size)
		return -EINVAL;
	struct vhu_admin_dev *d = calloc(1, sizeof(*d));
	if (!d || !(d->q = calloc(s->num_queues, sizeof(*d->q)))) {
		free(d);
		return -ENOMEM;
	}
	*d = (struct vhu_admin_dev){ .ad = ad, .member = member, .nq = s->num_queues, .q = d->q, .mmu = s->mmu };
	pthread_mutex_lock(&ad->ev_lock);
	d->next = ad->devs;
	ad->devs = d;
	pthread_mutex_unlock(&ad->ev_lock);
	int rc = initialise(d, s);
	if (rc < 0) {
		vhu_admin_dev_stop(d);
		return rc;
	}
	*out = d;
	return 0;
}

void vhu_admin_dev_stop(struct vhu_admin_dev *d)
{
	if (!d)
		return;
	struct vhu_admin_driver *ad = d->ad;
	(void)member_u8(ad, VHU_ADMIN_CMD_STATUS_SET, d->member, -1, 0);
	pthread_mutex_lock(&ad->ev_lock);
	for (struct vhu_admin_dev **p = &ad->devs; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	pthread_mutex_unlock(&ad->ev_lock);
	dev_free(d);
}

uint64_t vhu_admin_dev_member(const struct vhu_admin_dev *d) { return d->member; }
uint64_t vhu_admin_dev_features(const struct vhu_admin_dev *d) { return d->features; }
struct vhu_drv_vq *vhu_admin_dev_vq(struct vhu_admin_dev *d, unsigned i) { return i < d->nq ? &d->q[i].vq : NULL; }

int vhu_admin_dev_config(struct vhu_admin_dev *d, uint32_t offset, void *buf, uint32_t len)
{
	while (len) {
		uint32_t n = len < 256 ? len : 256, got;
		uint8_t a[8];
		vhu_admin_put_le(a, offset, 4);
		vhu_admin_put_le(a + 4, n, 4);
		int rc = managed(d->ad, VHU_ADMIN_CMD_CONFIG_GET, d->member, a, 8, buf, n, &got);
		if (rc < 0)
			return rc;
		if (got != n)
			return -EPROTO;
		buf = (uint8_t *)buf + n;
		offset += n;
		len -= n;
	}
	return 0;
}

int vhu_admin_dev_kick(struct vhu_admin_dev *d, unsigned i)
{
	if (i >= d->nq)
		return -EINVAL;
	if (!vhu_drv_vq_kick_prepare(&d->q[i].vq))
		return 0;   /* the device polls: it suppressed notifications (section 5) */
	uint8_t v[8] = { 0 };
	vhu_admin_put_le(v, i, 2);
	vhu_admin_put_le(v + 4, i, 4);
	atomic_fetch_add(&d->notifies, 1);
	return managed(d->ad, VHU_ADMIN_CMD_VQ_NOTIFY, d->member, v, sizeof(v), NULL, 0, NULL);
}

/* The events used so far, each marked on its device (ev_lock held). */
static int take_events(struct vhu_admin_driver *ad)
{
	struct vhu_drv_vq *vq = vhu_fe_queue_vq(ad->eq);
	void *tok;
	uint32_t len;
	int n = 0, r;
	while ((r = vhu_drv_vq_get(vq, &tok, &len)) == 1) {
		const uint8_t *ev = tok;
		uint64_t member = vhu_admin_le64(ev);
		uint16_t type = vhu_admin_le16(ev + 8), queue = vhu_admin_le16(ev + 10);
		for (struct vhu_admin_dev *d = ad->devs; len >= EVENT_SIZE && d; d = d->next) {
			if (d->member != member)
				continue;
			if (type == VHU_ADMIN_EVENT_USED && queue < d->nq) {
				atomic_store(&d->q[queue].event, true);
				atomic_fetch_add(&d->events, 1);
			} else if (type == VHU_ADMIN_EVENT_NEEDS_RESET) {
				atomic_store(&d->needs_reset, true);
			}
		}
		give_event_buffer(ad, (unsigned)((const uint8_t *)tok - ad->ev) / EVENT_SIZE);
		n++;
	}
	if (r < 0)
		return -EPROTO;
	return n ? vhu_fe_queue_kick(ad->eq) : 0;
}

int vhu_admin_dev_wait(struct vhu_admin_dev *d, unsigned i, int timeout_ms)
{
	struct vhu_admin_driver *ad = d->ad;
	struct dev_queue *q = &d->q[i];
	const int slice = 20;   /* ms: another thread's event may be what this one waits for */
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	int64_t deadline = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000 + (timeout_ms < 0 ? 5000 : timeout_ms);
	for (;;) {
		atomic_store(&q->event, false);
		/* ask for the interrupt in the ring, then look once more (§2.7.7) */
		if (vhu_drv_vq_enable_cb(&q->vq) || vhu_drv_vq_has_used(&q->vq))
			return 0;
		if (atomic_load(&d->needs_reset))
			return -EIO;
		pthread_mutex_lock(&ad->ev_lock);
		int rc = take_events(ad);
		if (rc == 0 && !atomic_load(&q->event)) {
			rc = vhu_fe_queue_wait(ad->eq, slice);
			rc = rc == -ETIMEDOUT ? 0 : rc < 0 ? rc : take_events(ad);
		}
		pthread_mutex_unlock(&ad->ev_lock);
		if (rc < 0)
			return rc;
		if (vhu_drv_vq_has_used(&q->vq))
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000 >= deadline)
			return -ETIMEDOUT;
	}
}

void vhu_admin_dev_stats(const struct vhu_admin_dev *d, struct vhu_admin_dev_stats *st)
{
	st->notifies = atomic_load(&d->notifies);
	st->events = atomic_load(&d->events);
}
