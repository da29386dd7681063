/* SPDX-License-Identifier: MIT */
/*
 * A virtio-mmio device model: the version-2 register file of VIRTIO 1.2
 * §4.2 ("Virtio Over MMIO"), for a VMM or a Xen device model that traps the
 * guest's accesses to the device's registers and hands them here as
 * vhu_mmio_read(offset, size) / vhu_mmio_write(offset, size, value). What the
 * registers mean for the device (features, rings, notifications, config
 * space, reset) goes to the ops the model is given: the vhost-user bridge
 * (vhu/mmio_bridge.h) is one, a device of the caller's is another.
 *
 * The driver is not trusted: every access has a defined result and none
 * breaks the model. Control registers take only aligned 32-bit accesses;
 * anything else, an undefined offset, a read of a write-only register or a
 * write to a read-only one reads as 0 and writes nothing. Queue settings
 * while the queue is ready, features after FEATURES_OK, a status that clears
 * bits, skips a step of §3.1.1 or sets reserved bits, and a ring of a size
 * the device does not take are refused the same way. Each is counted
 * (vhu_mmio_stats) and logged at debug level.
 *
 * Threads: accesses may come from several threads (one per vCPU); they are
 * serialised by the model's lock, and the ops are called with it held,
 * except notify: a QUEUE_NOTIFY write (and vhu_mmio_notify) takes no lock
 * and calls ops.notify from the trapping thread, so a kick costs what the
 * device's notify costs. The interrupt callback is called with the line's
 * new level whenever it changes, from the thread that changed it.
 */
#ifndef VHU_MMIO_H
#define VHU_MMIO_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stdint.h>

#include "vhu/log.h"

VHU_API_BEGIN

/* Register offsets (§4.2.2) */
enum {
	VHU_MMIO_MAGIC_VALUE = 0x000,
	VHU_MMIO_VERSION = 0x004,
	VHU_MMIO_DEVICE_ID = 0x008,
	VHU_MMIO_VENDOR_ID = 0x00c,
	VHU_MMIO_DEVICE_FEATURES = 0x010,
	VHU_MMIO_DEVICE_FEATURES_SEL = 0x014,
	VHU_MMIO_DRIVER_FEATURES = 0x020,
	VHU_MMIO_DRIVER_FEATURES_SEL = 0x024,
	VHU_MMIO_QUEUE_SEL = 0x030,
	VHU_MMIO_QUEUE_SIZE_MAX = 0x034,
	VHU_MMIO_QUEUE_SIZE = 0x038,
	VHU_MMIO_QUEUE_READY = 0x044,
	VHU_MMIO_QUEUE_NOTIFY = 0x050,
	VHU_MMIO_INTERRUPT_STATUS = 0x060,
	VHU_MMIO_INTERRUPT_ACK = 0x064,
	VHU_MMIO_STATUS = 0x070,
	VHU_MMIO_QUEUE_DESC_LOW = 0x080,
	VHU_MMIO_QUEUE_DESC_HIGH = 0x084,
	VHU_MMIO_QUEUE_DRIVER_LOW = 0x090,
	VHU_MMIO_QUEUE_DRIVER_HIGH = 0x094,
	VHU_MMIO_QUEUE_DEVICE_LOW = 0x0a0,
	VHU_MMIO_QUEUE_DEVICE_HIGH = 0x0a4,
	VHU_MMIO_SHM_SEL = 0x0ac,
	VHU_MMIO_SHM_LEN_LOW = 0x0b0,
	VHU_MMIO_SHM_LEN_HIGH = 0x0b4,
	VHU_MMIO_SHM_BASE_LOW = 0x0b8,
	VHU_MMIO_SHM_BASE_HIGH = 0x0bc,
	VHU_MMIO_QUEUE_RESET = 0x0c0,
	VHU_MMIO_CONFIG_GENERATION = 0x0fc,
	VHU_MMIO_CONFIG = 0x100,
};

#define VHU_MMIO_MAGIC 0x74726976u   /* "virt" */
#define VHU_MMIO_INT_VRING  1u       /* used buffer notification */
#define VHU_MMIO_INT_CONFIG 2u       /* configuration change notification */
/* The registers and a config space of up to 256 bytes: the size of the
 * window a VMM maps for the device (0x200, as the spec's example). */
#define VHU_MMIO_WINDOW 0x200u

struct vhu_mmio;

/* A ring the driver made ready: its size and the guest addresses of its parts. */
struct vhu_mmio_ring {
	uint16_t index, size;
	uint64_t desc, driver, device;
};

struct vhu_mmio_shm {
	uint8_t id;
	uint64_t base, len;
};

struct vhu_mmio_ops {
	/* FEATURES_OK written: the driver accepts these (a subset of the
	 * offer with VIRTIO_F_VERSION_1, checked already). -errno: FEATURES_OK
	 * stays clear, as §3.1.1 lets a device say no. */
	int (*set_features)(void *opaque, uint64_t features);
	/* QueueReady 1. -errno: the queue stays not ready. */
	int (*queue_enable)(void *opaque, const struct vhu_mmio_ring *ring);
	/* QueueReady 0, QueueReset, or a device reset: when this returns the
	 * device no longer touches the ring (§4.2.2.1). */
	void (*queue_disable)(void *opaque, uint16_t index);
	/* QUEUE_NOTIFY (no lock held): the queue index (from the low 16 bits)
	 * and the value written, which with VIRTIO_F_NOTIFICATION_DATA is the
	 * notification data of §2.9. Only for ready queues. */
	void (*notify)(void *opaque, uint16_t index, uint32_t value);
	/* DRIVER_OK written. Optional. */
	void (*driver_ok)(void *opaque);
	/* Status 0: every ready queue was disabled first. Optional. */
	void (*reset)(void *opaque);
	/* Config space [offset, offset + len), within config_size. A failed
	 * read reads as zeros, a failed write is dropped. */
	int (*config_read)(void *opaque, uint32_t offset, void *buf, uint32_t len);
	int (*config_write)(void *opaque, uint32_t offset, const void *buf, uint32_t len);
};

struct vhu_mmio_config {
	uint32_t device_id;          /* VIRTIO device type (2: block); 0 is refused */
	uint32_t vendor_id;
	uint64_t features;           /* offered; VIRTIO_F_VERSION_1 is added */
	uint16_t num_queues;         /* 1 .. 1024 */
	uint16_t queue_size_max;     /* for every queue, up to 32768 */
	uint32_t config_size;        /* bytes at VHU_MMIO_CONFIG, up to 256 */
	const struct vhu_mmio_shm *shm;   /* shared memory regions, if any */
	unsigned num_shm;
	const struct vhu_mmio_ops *ops;
	void *opaque;
	/* The interrupt line (level); called whenever it changes. Optional. */
	void (*interrupt)(void *opaque, bool asserted);
	void *interrupt_opaque;
	vhu_log_fn log;
	void *log_opaque;
	int log_level;
};

/* NULL with errno set (EINVAL: a bad configuration; ENOMEM). */
struct vhu_mmio *vhu_mmio_new(const struct vhu_mmio_config *cfg);
void vhu_mmio_free(struct vhu_mmio *m);

/* A trapped access at offset from the device's base; size 1, 2, 4 or 8. */
uint64_t vhu_mmio_read(struct vhu_mmio *m, uint64_t offset, unsigned size);
void vhu_mmio_write(struct vhu_mmio *m, uint64_t offset, unsigned size, uint64_t value);

/* The fast path of a QUEUE_NOTIFY write a caller matched itself (see
 * vhu_mmio_notify_match): no lock, ops.notify if the queue is ready. */
void vhu_mmio_notify(struct vhu_mmio *m, uint32_t value);

/* The device's side. Raise InterruptStatus bits (VHU_MMIO_INT_*): they stay
 * set until the driver acknowledges them. */
void vhu_mmio_raise(struct vhu_mmio *m, uint32_t bits);
/* The config space changed: a new ConfigGeneration and a configuration
 * change interrupt (§4.2.2.1, §2.5.1). */
void vhu_mmio_config_changed(struct vhu_mmio *m);
/* Something went wrong the driver must reset to recover from:
 * DEVICE_NEEDS_RESET and a configuration change interrupt (§2.1.2). */
void vhu_mmio_needs_reset(struct vhu_mmio *m);

uint8_t vhu_mmio_status(const struct vhu_mmio *m);
uint32_t vhu_mmio_interrupt_status(const struct vhu_mmio *m);
/* The features the driver accepted (valid once FEATURES_OK is set). */
uint64_t vhu_mmio_driver_features(const struct vhu_mmio *m);
bool vhu_mmio_queue_ready(const struct vhu_mmio *m, uint16_t index);

struct vhu_mmio_stats {
	uint64_t reads, writes, notifies;
	uint64_t bad_width;          /* a control register not read or written as aligned 32 bits */
	uint64_t bad_offset;         /* nothing there, or the wrong direction */
	uint64_t refused;            /* a defined access the model's state refused */
};
void vhu_mmio_stats(struct vhu_mmio *m, struct vhu_mmio_stats *st);

/*
 * The notify matcher, in the terms of Linux's privcmd ioeventfd for Xen
 * (struct privcmd_ioeventfd: addr, addr_len, vq): a write of exactly size
 * bytes at addr (the device's base + VHU_MMIO_QUEUE_NOTIFY) whose low 16 bits
 * name a queue below num_queues is a notification; nothing else is. A Xen
 * ioreq handler (or any trapping loop) asks this before anything else and
 * sends a match straight to vhu_mmio_notify. Returns the queue index, or -1.
 */
struct vhu_mmio_notify_matcher {
	uint64_t addr;
	uint8_t size;                /* 4: the register's width */
	uint16_t num_queues;
};
static inline int vhu_mmio_notify_match(const struct vhu_mmio_notify_matcher *n, uint64_t addr, unsigned size,
					bool is_write, uint64_t value)
{
	if (!is_write || addr != n->addr || size != n->size || (value & 0xffff) >= n->num_queues)
		return -1;
	return (int)(value & 0xffff);
}

VHU_API_END

#endif
