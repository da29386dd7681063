/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "log_internal.h"

void vhu_log_emit(vhu_log_fn fn, void *opaque, int max_level, enum vhu_log_level level,
		  const char *fmt, va_list ap)
{
	char buf[512];

	if (!fn || (int)level > max_level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	fn(opaque, level, buf);
}
