/* SPDX-License-Identifier: MIT */
#include "opts.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

int opt_refuse(const char *who, const char *opt, const char *value, const char *why)
{
	fprintf(stderr, "%s: %s%s%s: %s\n", who, opt, value ? "=" : "", value ? value : "", why);
	return 2;
}

int opt_number(const char *who, const char *opt, const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		char why[96];
		snprintf(why, sizeof(why), "takes a whole number from %ld to %ld", lo, hi);
		return opt_refuse(who, opt, s, why);
	}
	*out = v;
	return 0;
}

uint64_t opt_size(const char *s, bool *ok)
{
	char *end;
	errno = 0;
	uint64_t v = strtoull(s, &end, 10);
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	*ok = !errno && end != s && !*end && s[0] != '-' && v <= (UINT64_MAX >> shift);
	return v << shift;
}

int opt_getopt_error(const char *who, const char *arg, const struct option *longopts)
{
	char name[64];
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg, "="), arg);
	for (const struct option *o = longopts; optopt && o->name; o++)
		if (o->val == optopt)
			return opt_refuse(who, name, NULL, o->has_arg == no_argument ? "takes no value" : "needs a value");
	return opt_refuse(who, name, NULL, "unknown option (--help lists them)");
}

const char *opt_log_who = "vhu";

void opt_log_stderr(void *opaque, enum vhu_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	if (opaque)
		fprintf(stderr, "%s: %s: %s: %s\n", opt_log_who, (const char *)opaque, names[level], msg);
	else
		fprintf(stderr, "%s: %s: %s\n", opt_log_who, names[level], msg);
}
