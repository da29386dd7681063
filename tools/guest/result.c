/* SPDX-License-Identifier: MIT */
/* The guest's result line: parsed, extended by the host, checked, printed. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"
#include "pattern.h"

#define MARK "VHU-GUEST-RESULT "

int result_parse(struct guest_result *r, const char *console)
{
	memset(r, 0, sizeof(*r));
	const char *at = NULL;
	/* the marker at the start of a line; the console may have CRs and kernel noise */
	for (const char *p = console; (p = strstr(p, MARK)); p++)
		if (p == console || p[-1] == '\n' || p[-1] == '\r') {
			at = p;
			break;
		}
	if (!at)
		return -1;
	size_t n = strcspn(at + strlen(MARK), "\r\n");
	snprintf(r->line, sizeof(r->line), "%.*s", (int)n, at + strlen(MARK));
	char *s = r->line, *tok = strsep(&s, " ");
	r->ok = tok && !strcmp(tok, "ok");
	while (s && r->n < 64 && (tok = strsep(&s, " "))) {
		char *eq = strchr(tok, '=');
		if (!eq)
			continue;
		*eq = 0;
		r->key[r->n] = tok;
		r->val[r->n++] = eq + 1;
	}
	return 0;
}

const char *result_get(const struct guest_result *r, const char *key)
{
	for (unsigned i = 0; i < r->n; i++)
		if (!strcmp(r->key[i], key))
			return r->val[i];
	return NULL;
}

/* Host-side pairs live in their own storage, after the parsed ones. */
void result_set(struct guest_result *r, const char *key, const char *fmt, ...)
{
	static char store[64][256];
	static unsigned used;
	if (r->n == 64 || used == 64)
		return;
	char *kv = store[used++];
	int k = snprintf(kv, sizeof(store[0]), "%s", key);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(kv + k + 1, sizeof(store[0]) - (size_t)k - 1, fmt, ap);
	va_end(ap);
	for (unsigned i = 0; i < r->n; i++)
		if (!strcmp(r->key[i], key)) {
			r->val[i] = kv + k + 1;
			return;
		}
	r->key[r->n] = kv;
	r->val[r->n++] = kv + k + 1;
}

static bool numeric(const char *v)
{
	char *end;
	if (!*v || !strncmp(v, "0x", 2))	/* hex stays a string: JSON has no hex */
		return false;
	strtod(v, &end);
	return !*end;
}

void result_print(const struct guest_result *r, bool json)
{
	if (!json) {
		printf("guest %s:", r->ok ? "ok" : "FAILED");
		for (unsigned i = 0; i < r->n; i++)
			printf(" %s=%s", r->key[i], r->val[i]);
		printf("\n");
		return;
	}
	printf("{\"result\": \"%s\"", r->ok ? "ok" : "fail");
	for (unsigned i = 0; i < r->n; i++) {
		printf(", \"%s\": ", r->key[i]);
		if (numeric(r->val[i])) {
			printf("%s", r->val[i]);
			continue;
		}
		putchar('"');
		for (const char *p = r->val[i]; *p; p++)
			if (*p == '"' || *p == '\\')
				printf("\\%c", *p);
			else if ((unsigned char)*p < 0x20)
				printf("\\u%04x", *p);
			else
				putchar(*p);
		putchar('"');
	}
	printf("}\n");
}

const char *result_unmet(const struct guest_result *r, const char *expect, char *buf, size_t len)
{
	char copy[1024];
	snprintf(copy, sizeof(copy), "%s", expect);
	for (char *s = copy, *kv; (kv = strsep(&s, ", "));) {
		char *eq = strchr(kv, '=');
		if (!*kv)
			continue;
		if (eq)
			*eq = 0;
		const char *got = result_get(r, kv);
		if (!eq || !got || strcmp(got, eq + 1)) {
			snprintf(buf, len, "%s=%s (the guest has %s)", kv, eq ? eq + 1 : "?", got ? got : "no such key");
			return buf;
		}
	}
	return NULL;
}

/* Compare [off, off+len) of the image with the pattern; 0, or -1 with `bad_at` set. */
static int check_span(int fd, uint64_t off, uint64_t len, uint32_t seed, uint64_t *bad_at, char *origin,
		      size_t olen)
{
	static uint8_t buf[1 << 20];
	for (uint64_t o = 0; o < len; o += sizeof(buf)) {
		uint64_t n = len - o < sizeof(buf) ? len - o : sizeof(buf);
		if (pread(fd, buf, n, (off_t)(off + o)) != (ssize_t)n) {
			*bad_at = off + o;
			snprintf(origin, olen, "short_read");
			return -1;
		}
		uint64_t tag_lba;
		uint32_t tag_seed;
		uint64_t b = vhu_pattern_check(buf, n, (off + o) / VHU_PATTERN_SECTOR, seed, &tag_lba, &tag_seed);
		if (b < n) {
			*bad_at = off + o + b;
			if (tag_lba == UINT64_MAX)
				snprintf(origin, olen, "untagged");
			else
				snprintf(origin, olen, "sector_of_lba_%" PRIu64 "_run_%u", tag_lba, tag_seed);
			return -1;
		}
	}
	return 0;
}

int result_check_image(struct guest_result *r, const char *image)
{
	const char *seed = result_get(r, "seed"), *size = result_get(r, "size"), *tail = result_get(r, "tail_off");
	if (!seed || !size || !tail) {
		result_set(r, "host_check", "fail:no_verify_result");
		return -1;
	}
	int fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		result_set(r, "host_check", "fail:open:%s", strerror(errno));
		return -1;
	}
	uint64_t bad_at;
	char origin[96];
	uint32_t s = (uint32_t)strtoul(seed, NULL, 10);
	int rc = check_span(fd, 0, strtoull(size, NULL, 10), s, &bad_at, origin, sizeof(origin));
	if (!rc)
		rc = check_span(fd, strtoull(tail, NULL, 10), 1u << 20, s, &bad_at, origin, sizeof(origin));
	close(fd);
	if (rc)
		result_set(r, "host_check", "fail:byte_%" PRIu64 ":%s", bad_at, origin);
	else
		result_set(r, "host_check", "ok");
	return rc;
}
