/* SPDX-License-Identifier: MIT */
/* Option values for the vhu command: every refusal names the option and the reason. */
#ifndef VHU_TOOLS_OPTS_H
#define VHU_TOOLS_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "vhu/log.h"

/* Prints "WHO: OPT=VALUE: WHY" (VALUE may be NULL) and returns 2, the usage exit status. */
int opt_refuse(const char *who, const char *opt, const char *value, const char *why);
/* A whole number in [lo, hi] into *out: 0, or opt_refuse's 2. */
int opt_number(const char *who, const char *opt, const char *s, long lo, long hi, long *out);
/* getopt_long's '?': the option unknown, given a value it does not take, or missing one. */
struct option;
int opt_getopt_error(const char *who, const char *arg, const struct option *longopts);
/* A size with an optional k/m/g (binary) suffix; *ok says whether it parsed. */
uint64_t opt_size(const char *s, bool *ok);

/* The daemons' log hook: "WHO: [OPAQUE: ]level: message" on standard error,
 * WHO being opt_log_who, OPAQUE (a string: an export's socket, a member's
 * serial) naming which of many devices speaks. */
extern const char *opt_log_who;
void opt_log_stderr(void *opaque, enum vhu_log_level level, const char *msg);

#endif
