/* SPDX-License-Identifier: MIT */
/*
 * Device-independent VIRTIO feature bits (§6 "Reserved Feature Bits") and
 * device status bits (§2.1). Device-specific bits live with each device.
 */
#ifndef VHU_VIRTIO_H
#define VHU_VIRTIO_H

#include <stdint.h>

#define VHU_F_NOTIFY_ON_EMPTY     24
#define VHU_F_ANY_LAYOUT          27
#define VHU_F_INDIRECT_DESC       28
#define VHU_F_EVENT_IDX           29
#define VHU_F_VERSION_1           32
#define VHU_F_ACCESS_PLATFORM     33
#define VHU_F_RING_PACKED         34
#define VHU_F_IN_ORDER            35
#define VHU_F_ORDER_PLATFORM      36
#define VHU_F_SR_IOV              37
#define VHU_F_NOTIFICATION_DATA   38
#define VHU_F_NOTIF_CONFIG_DATA   39
#define VHU_F_RING_RESET          40
#define VHU_F_ADMIN_VQ            41

#define VHU_BIT(n) (1ull << (n))

static inline int vhu_has_feature(uint64_t features, unsigned bit)
{
	return (features >> bit) & 1;
}

/* Device status (§2.1). */
#define VHU_STATUS_ACKNOWLEDGE        1u
#define VHU_STATUS_DRIVER             2u
#define VHU_STATUS_DRIVER_OK          4u
#define VHU_STATUS_FEATURES_OK        8u
#define VHU_STATUS_DEVICE_NEEDS_RESET 64u
#define VHU_STATUS_FAILED             128u

#endif
