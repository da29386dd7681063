/* SPDX-License-Identifier: MIT */
/* The one logging hook of the library: nothing in vhu prints by itself. */
#ifndef VHU_LOG_H
#define VHU_LOG_H

enum vhu_log_level { VHU_LOG_ERROR, VHU_LOG_WARN, VHU_LOG_INFO, VHU_LOG_DEBUG };
typedef void (*vhu_log_fn)(void *opaque, enum vhu_log_level level, const char *msg);

#endif
