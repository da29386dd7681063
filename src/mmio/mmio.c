/* SPDX-License-Identifier: MIT */
/*
 * The virtio-mmio register file (VIRTIO 1.2 §4.2.2, version 2). Section
 * numbers below are the spec's; "refused" means the access changes nothing,
 * is counted, and reads as 0.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log_internal.h"
#include "../common/status_rules.h"
#include "vhu/mmio.h"
#include "vhu/virtio.h"

#define MAX_QUEUES 1024u
#define MAX_CONFIG 256u

struct mmio_queue {
	uint16_t size;
	uint64_t desc, driver, device;
	atomic_bool ready;
};

struct vhu_mmio {
	struct vhu_mmio_config cfg;
	uint64_t offered;
	pthread_mutex_t lock;          /* the register state below */
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel, shm_sel;
	uint64_t driver_features;
	_Atomic uint8_t status;
	atomic_uint isr;
	atomic_uint generation;
	pthread_mutex_t line_lock;     /* the line's level follows isr in order */
	bool line;
	struct mmio_queue *q;
	_Atomic uint64_t reads, writes, notifies, bad_width, bad_offset, refused;
};

__attribute__((format(printf, 2, 3))) static void mlog(struct vhu_mmio *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vhu_log_emit(m->cfg.log, m->cfg.log_opaque, m->cfg.log_level, VHU_LOG_DEBUG, fmt, ap);
	va_end(ap);
}

#define REFUSE(m, ...)                                      \
	do {                                                \
		atomic_fetch_add(&(m)->refused, 1);         \
		mlog((m), __VA_ARGS__);                     \
	} while (0)

struct vhu_mmio *vhu_mmio_new(const struct vhu_mmio_config *cfg)
{
	if (!cfg->ops || !cfg->ops->queue_enable || !cfg->ops->queue_disable || !cfg->ops->notify ||
	    !cfg->ops->set_features || !cfg->device_id || !cfg->num_queues || cfg->num_queues > MAX_QUEUES ||
	    !cfg->queue_size_max || cfg->queue_size_max > 32768 || cfg->config_size > MAX_CONFIG ||
	    (cfg->num_shm && !cfg->shm)) {
		errno = EINVAL;
		return NULL;
	}
	struct vhu_mmio *m = calloc(1, sizeof(*m));
	if (!m || !(m->q = calloc(cfg->num_queues, sizeof(*m->q)))) {
		free(m);
		errno = ENOMEM;
		return NULL;
	}
	m->cfg = *cfg;
	m->offered = cfg->features | VHU_BIT(VHU_F_VERSION_1);
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->line_lock, NULL);
	for (unsigned i = 0; i < cfg->num_queues; i++)
		m->q[i].size = cfg->queue_size_max;
	return m;
}

void vhu_mmio_free(struct vhu_mmio *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->line_lock);
	free(m->q);
	free(m);
}

/* ---- the interrupt line ---------------------------------------------------- */

static void update_line(struct vhu_mmio *m)
{
	pthread_mutex_lock(&m->line_lock);
	bool level = atomic_load(&m->isr) != 0;
	if (level != m->line) {
		m->line = level;
		if (m->cfg.interrupt)
			m->cfg.interrupt(m->cfg.interrupt_opaque, level);
	}
	pthread_mutex_unlock(&m->line_lock);
}

void vhu_mmio_raise(struct vhu_mmio *m, uint32_t bits)
{
	bits &= VHU_MMIO_INT_VRING | VHU_MMIO_INT_CONFIG;
	if (!bits)
		return;
	atomic_fetch_or(&m->isr, bits);
	update_line(m);
}

void vhu_mmio_config_changed(struct vhu_mmio *m)
{
	atomic_fetch_add(&m->generation, 1);
	vhu_mmio_raise(m, VHU_MMIO_INT_CONFIG);
}

void vhu_mmio_needs_reset(struct vhu_mmio *m)
{
	/* only once the driver is using the device (§2.1.2: "the device has
	 * experienced an error from which it can't recover" applies to a
	 * running device; a reset clears it) */
	if (!(atomic_load(&m->status) & VHU_STATUS_DRIVER_OK))
		return;
	atomic_fetch_or(&m->status, VHU_STATUS_DEVICE_NEEDS_RESET);
	vhu_mmio_raise(m, VHU_MMIO_INT_CONFIG);
}

uint8_t vhu_mmio_status(const struct vhu_mmio *m) { return atomic_load(&m->status); }
uint32_t vhu_mmio_interrupt_status(const struct vhu_mmio *m) { return atomic_load(&m->isr); }
uint64_t vhu_mmio_driver_features(const struct vhu_mmio *m) { return m->driver_features; }

bool vhu_mmio_queue_ready(const struct vhu_mmio *m, uint16_t index)
{
	return index < m->cfg.num_queues && atomic_load(&m->q[index].ready);
}

void vhu_mmio_stats(struct vhu_mmio *m, struct vhu_mmio_stats *st)
{
	*st = (struct vhu_mmio_stats){ atomic_load(&m->reads),     atomic_load(&m->writes),
				       atomic_load(&m->notifies),  atomic_load(&m->bad_width),
				       atomic_load(&m->bad_offset), atomic_load(&m->refused) };
}

/* ---- notifications ----------------------------------------------------------- */

void vhu_mmio_notify(struct vhu_mmio *m, uint32_t value)
{
	uint16_t index = (uint16_t)value;   /* §4.2.3.3: the low 16 bits name the queue */
	if (index >= m->cfg.num_queues || !atomic_load_explicit(&m->q[index].ready, memory_order_acquire)) {
		atomic_fetch_add_explicit(&m->refused, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&m->notifies, 1, memory_order_relaxed);
	m->cfg.ops->notify(m->cfg.opaque, index, value);
}

/* ---- queues ----------------------------------------------------------------- */

static struct mmio_queue *selected(struct vhu_mmio *m)
{
	return m->queue_sel < m->cfg.num_queues ? &m->q[m->queue_sel] : NULL;
}

static void queue_clear(struct vhu_mmio *m, struct mmio_queue *q)
{
	q->size = m->cfg.queue_size_max;
	q->desc = q->driver = q->device = 0;
}

static void queue_disable(struct vhu_mmio *m, struct mmio_queue *q)
{
	if (!atomic_load(&q->ready))
		return;
	/* notifications stop reaching the device before it lets go of the ring */
	atomic_store(&q->ready, false);
	m->cfg.ops->queue_disable(m->cfg.opaque, (uint16_t)(q - m->q));
}

/* §2.7 and §2.8: a split ring's size is a power of 2; the parts' alignments
 * (§2.7.10.2, §2.8.10.1): descriptors 16, split avail 2 and used 4, packed
 * event structures 4. */
static bool ring_ok(const struct vhu_mmio *m, const struct mmio_queue *q)
{
	bool packed = vhu_has_feature(m->driver_features, VHU_F_RING_PACKED);
	if (!q->size || q->size > m->cfg.queue_size_max || (!packed && (q->size & (q->size - 1))))
		return false;
	return !(q->desc % 16) && !(q->driver % (packed ? 4 : 2)) && !(q->device % 4);
}

static void queue_ready(struct vhu_mmio *m, struct mmio_queue *q, uint32_t v)
{
	if (v > 1) {
		REFUSE(m, "QueueReady %u: only 0 and 1 mean anything", v);
	} else if (!v) {
		queue_disable(m, q);
	} else if (atomic_load(&q->ready)) {
		/* already */
	} else if (!(atomic_load(&m->status) & VHU_STATUS_FEATURES_OK)) {
		REFUSE(m, "QueueReady before FEATURES_OK");
	} else if (!ring_ok(m, q)) {
		REFUSE(m, "queue %u: size %u or its addresses refused", m->queue_sel, q->size);
	} else {
		struct vhu_mmio_ring r = { (uint16_t)m->queue_sel, q->size, q->desc, q->driver, q->device };
		int rc = m->cfg.ops->queue_enable(m->cfg.opaque, &r);
		if (rc < 0)
			REFUSE(m, "queue %u: the device did not start it (%d)", m->queue_sel, rc);
		else
			atomic_store_explicit(&q->ready, true, memory_order_release);
	}
}

static void set_half(uint64_t *field, bool high, uint32_t v)
{
	if (high)
		*field = (*field & 0xffffffffull) | (uint64_t)v << 32;
	else
		*field = (*field & ~0xffffffffull) | v;
}

static void queue_field(struct vhu_mmio *m, uint64_t off, uint32_t v)
{
	struct mmio_queue *q = selected(m);
	if (!q) {
		REFUSE(m, "queue register 0x%llx for queue %u, which does not exist", (unsigned long long)off,
		       m->queue_sel);
		return;
	}
	if (off == VHU_MMIO_QUEUE_READY) {
		queue_ready(m, q, v);
		return;
	}
	if (off == VHU_MMIO_QUEUE_RESET) {
		if (!vhu_has_feature(m->driver_features, VHU_F_RING_RESET) ||
		    !(atomic_load(&m->status) & VHU_STATUS_FEATURES_OK) || v != 1) {
			REFUSE(m, "QueueReset %u without RING_RESET", v);
			return;
		}
		/* done before the write returns: QueueReset reads 0 at once (§4.2.2.1) */
		queue_disable(m, q);
		queue_clear(m, q);
		return;
	}
	if (atomic_load(&q->ready)) {
		REFUSE(m, "queue %u: register 0x%llx written while the queue is ready", m->queue_sel,
		       (unsigned long long)off);
		return;
	}
	switch (off) {
	case VHU_MMIO_QUEUE_SIZE:
		if (v > 0xffff)
			REFUSE(m, "QueueSize %u", v);
		else
			q->size = (uint16_t)v;
		break;
	case VHU_MMIO_QUEUE_DESC_LOW: case VHU_MMIO_QUEUE_DESC_HIGH:
		set_half(&q->desc, off & 4, v);
		break;
	case VHU_MMIO_QUEUE_DRIVER_LOW: case VHU_MMIO_QUEUE_DRIVER_HIGH:
		set_half(&q->driver, off & 4, v);
		break;
	default:
		set_half(&q->device, off & 4, v);
	}
}

/* ---- status and reset -------------------------------------------------------- */

static void device_reset(struct vhu_mmio *m)
{
	for (unsigned i = 0; i < m->cfg.num_queues; i++) {
		queue_disable(m, &m->q[i]);
		queue_clear(m, &m->q[i]);
	}
	if (m->cfg.ops->reset)
		m->cfg.ops->reset(m->cfg.opaque);
	m->dev_feat_sel = m->drv_feat_sel = m->queue_sel = m->shm_sel = 0;
	m->driver_features = 0;
	atomic_store(&m->status, 0);
	/* §4.2.2.1: upon reset, every InterruptStatus bit clears */
	atomic_store(&m->isr, 0);
	update_line(m);
}

static bool features_ok(struct vhu_mmio *m)
{
	uint64_t f = m->driver_features;
	if (f & ~m->offered) {
		REFUSE(m, "FEATURES_OK with features 0x%llx the device did not offer",
		       (unsigned long long)(f & ~m->offered));
		return false;
	}
	/* a version-2 device is not a legacy one (§4.2.4) */
	if (!vhu_has_feature(f, VHU_F_VERSION_1)) {
		REFUSE(m, "FEATURES_OK without VIRTIO_F_VERSION_1");
		return false;
	}
	int rc = m->cfg.ops->set_features(m->cfg.opaque, f);
	if (rc < 0)
		REFUSE(m, "the device refused features 0x%llx (%d)", (unsigned long long)f, rc);
	return rc == 0;
}

/* §3.1.1: the driver sets the bits in order and never clears one but by
 * writing 0; FAILED may come at any time. */
static void status_write(struct vhu_mmio *m, uint32_t v)
{
	uint8_t cur = atomic_load(&m->status) & (uint8_t)~VHU_STATUS_DEVICE_NEEDS_RESET;
	if (!v) {
		device_reset(m);
		return;
	}
	const char *why = vhu_status_write_refused(cur, v);
	if (why) {
		REFUSE(m, "status 0x%x over 0x%x: %s", v, cur, why);
		return;
	}
	uint8_t now = (uint8_t)v, add = now & (uint8_t)~cur;
	/* the driver reads FEATURES_OK back clear (§3.1.1 step 6), and a
	 * DRIVER_OK in the same write goes with it (found by fuzz_mmio) */
	if ((add & VHU_STATUS_FEATURES_OK) && !features_ok(m)) {
		now &= (uint8_t)~(VHU_STATUS_FEATURES_OK | VHU_STATUS_DRIVER_OK);
		add &= (uint8_t)~(VHU_STATUS_FEATURES_OK | VHU_STATUS_DRIVER_OK);
	}
	atomic_fetch_or(&m->status, now);
	if ((add & VHU_STATUS_DRIVER_OK) && m->cfg.ops->driver_ok)
		m->cfg.ops->driver_ok(m->cfg.opaque);
}

static void driver_features(struct vhu_mmio *m, uint32_t v)
{
	if (atomic_load(&m->status) & VHU_STATUS_FEATURES_OK) {
		REFUSE(m, "DriverFeatures written after FEATURES_OK");
	} else if (m->drv_feat_sel > 1) {
		if (v)
			REFUSE(m, "DriverFeatures bits in word %u, beyond the 64 features", m->drv_feat_sel);
	} else {
		set_half(&m->driver_features, m->drv_feat_sel, v);
	}
}

/* ---- config space ---------------------------------------------------------- */

static bool config_access_ok(const struct vhu_mmio *m, uint64_t off, unsigned size)
{
	/* §4.2.2.2: the driver uses accesses of its fields' widths, aligned */
	return (size == 1 || size == 2 || size == 4 || size == 8) && !(off % size) && off <= m->cfg.config_size &&
	       size <= m->cfg.config_size - off;
}

static uint64_t config_read(struct vhu_mmio *m, uint64_t off, unsigned size)
{
	uint8_t b[8] = { 0 };
	if (!config_access_ok(m, off, size)) {
		atomic_fetch_add(&m->bad_offset, 1);
		mlog(m, "config read of %u bytes at 0x%llx refused", size, (unsigned long long)off);
		return 0;
	}
	if (m->cfg.ops->config_read && m->cfg.ops->config_read(m->cfg.opaque, (uint32_t)off, b, size) < 0)
		memset(b, 0, sizeof(b));
	uint64_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)b[i] << 8 * i;   /* registers are little-endian (§4.2.2) */
	return v;
}

static void config_write(struct vhu_mmio *m, uint64_t off, unsigned size, uint64_t v)
{
	uint8_t b[8];
	if (!config_access_ok(m, off, size) || !m->cfg.ops->config_write) {
		atomic_fetch_add(&m->bad_offset, 1);
		mlog(m, "config write of %u bytes at 0x%llx refused", size, (unsigned long long)off);
		return;
	}
	for (unsigned i = 0; i < size; i++)
		b[i] = (uint8_t)(v >> 8 * i);
	if (m->cfg.ops->config_write(m->cfg.opaque, (uint32_t)off, b, size) < 0)
		REFUSE(m, "config write at 0x%llx refused by the device", (unsigned long long)off);
}

/* ---- the register file --------------------------------------------------------- */

static const struct vhu_mmio_shm *shm_selected(const struct vhu_mmio *m)
{
	for (unsigned i = 0; i < m->cfg.num_shm; i++)
		if (m->cfg.shm[i].id == m->shm_sel)
			return &m->cfg.shm[i];
	return NULL;
}

static uint64_t shm_read(const struct vhu_mmio *m, uint64_t off)
{
	const struct vhu_mmio_shm *s = shm_selected(m);
	/* §4.2.2: a region that does not exist has length and base all ones */
	uint64_t v = !s ? ~0ull : off < VHU_MMIO_SHM_BASE_LOW ? s->len : s->base;
	return off & 4 ? v >> 32 : (uint32_t)v;
}

/* A control register read; *ok false for an offset that reads as nothing. */
static uint32_t control_read(struct vhu_mmio *m, uint64_t off, bool *ok)
{
	struct mmio_queue *q = selected(m);
	*ok = true;
	switch (off) {
	case VHU_MMIO_MAGIC_VALUE: return VHU_MMIO_MAGIC;
	case VHU_MMIO_VERSION: return 2;
	case VHU_MMIO_DEVICE_ID: return m->cfg.device_id;
	case VHU_MMIO_VENDOR_ID: return m->cfg.vendor_id;
	case VHU_MMIO_DEVICE_FEATURES:
		return m->dev_feat_sel > 1 ? 0 : (uint32_t)(m->offered >> 32 * m->dev_feat_sel);
	case VHU_MMIO_QUEUE_SIZE_MAX: return q ? m->cfg.queue_size_max : 0;
	case VHU_MMIO_QUEUE_READY: return q && atomic_load(&q->ready);
	case VHU_MMIO_INTERRUPT_STATUS: return atomic_load(&m->isr);
	case VHU_MMIO_STATUS: return atomic_load(&m->status);
	case VHU_MMIO_SHM_LEN_LOW: case VHU_MMIO_SHM_LEN_HIGH:
	case VHU_MMIO_SHM_BASE_LOW: case VHU_MMIO_SHM_BASE_HIGH:
		return (uint32_t)shm_read(m, off);
	case VHU_MMIO_QUEUE_RESET:
		if (vhu_has_feature(m->driver_features, VHU_F_RING_RESET))
			return 0;   /* a reset is over before its write returns */
		break;
	case VHU_MMIO_CONFIG_GENERATION: return atomic_load(&m->generation);
	}
	*ok = false;
	return 0;
}

static bool control_write(struct vhu_mmio *m, uint64_t off, uint32_t v)
{
	switch (off) {
	case VHU_MMIO_DEVICE_FEATURES_SEL: m->dev_feat_sel = v; return true;
	case VHU_MMIO_DRIVER_FEATURES: driver_features(m, v); return true;
	case VHU_MMIO_DRIVER_FEATURES_SEL: m->drv_feat_sel = v; return true;
	case VHU_MMIO_QUEUE_SEL: m->queue_sel = v; return true;
	case VHU_MMIO_QUEUE_SIZE: case VHU_MMIO_QUEUE_READY: case VHU_MMIO_QUEUE_RESET:
	case VHU_MMIO_QUEUE_DESC_LOW: case VHU_MMIO_QUEUE_DESC_HIGH:
	case VHU_MMIO_QUEUE_DRIVER_LOW: case VHU_MMIO_QUEUE_DRIVER_HIGH:
	case VHU_MMIO_QUEUE_DEVICE_LOW: case VHU_MMIO_QUEUE_DEVICE_HIGH:
		queue_field(m, off, v);
		return true;
	case VHU_MMIO_INTERRUPT_ACK:
		if (v & ~(VHU_MMIO_INT_VRING | VHU_MMIO_INT_CONFIG))
			REFUSE(m, "InterruptACK 0x%x has undefined bits", v);
		atomic_fetch_and(&m->isr, ~v);
		update_line(m);
		return true;
	case VHU_MMIO_STATUS: status_write(m, v); return true;
	case VHU_MMIO_SHM_SEL: m->shm_sel = v; return true;
	}
	return false;
}

uint64_t vhu_mmio_read(struct vhu_mmio *m, uint64_t offset, unsigned size)
{
	uint64_t v;
	bool ok;

	atomic_fetch_add_explicit(&m->reads, 1, memory_order_relaxed);
	pthread_mutex_lock(&m->lock);
	if (offset >= VHU_MMIO_CONFIG) {
		v = config_read(m, offset - VHU_MMIO_CONFIG, size);
	} else if (size != 4 || offset % 4) {
		atomic_fetch_add(&m->bad_width, 1);
		mlog(m, "read of %u bytes at 0x%llx: control registers are 32-bit", size, (unsigned long long)offset);
		v = 0;
	} else {
		v = control_read(m, offset, &ok);
		if (!ok) {
			atomic_fetch_add(&m->bad_offset, 1);
			mlog(m, "read at 0x%llx: no readable register there", (unsigned long long)offset);
		}
	}
	pthread_mutex_unlock(&m->lock);
	return v;
}

void vhu_mmio_write(struct vhu_mmio *m, uint64_t offset, unsigned size, uint64_t value)
{
	atomic_fetch_add_explicit(&m->writes, 1, memory_order_relaxed);
	if (offset == VHU_MMIO_QUEUE_NOTIFY && size == 4) {
		vhu_mmio_notify(m, (uint32_t)value);   /* no lock: the trapping thread kicks */
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (offset >= VHU_MMIO_CONFIG) {
		config_write(m, offset - VHU_MMIO_CONFIG, size, value);
	} else if (size != 4 || offset % 4) {
		atomic_fetch_add(&m->bad_width, 1);
		mlog(m, "write of %u bytes at 0x%llx: control registers are 32-bit", size, (unsigned long long)offset);
	} else if (!control_write(m, offset, (uint32_t)value)) {
		atomic_fetch_add(&m->bad_offset, 1);
		mlog(m, "write at 0x%llx: no writable register there", (unsigned long long)offset);
	}
	pthread_mutex_unlock(&m->lock);
}
