/* SPDX-License-Identifier: MIT */
#ifndef VHU_LOG_INTERNAL_H
#define VHU_LOG_INTERNAL_H

#include <stdarg.h>

#include "vhu/log.h"

/* Format and hand a message to the hook, if there is one and the level
 * passes. Shared by the back-end and the front-end. */
void vhu_log_emit(vhu_log_fn fn, void *opaque, int max_level, enum vhu_log_level level,
		  const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

#endif
