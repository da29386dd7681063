/* SPDX-License-Identifier: MIT */
/*
 * Driving one live migration through the source QEMU's monitor (QMP):
 * capabilities, the migrate command, the hold that makes a rounds workload
 * a real test of the back-end's dirty log, the switch to postcopy, and what
 * QEMU reports at the end.
 *
 * Why the hold. A back-end that forgets to log a write it makes into guest
 * memory is caught only if that write lands after QEMU copied the page and
 * before the switch; left alone, a migration of a 256 MiB guest over a Unix
 * socket is over in a second or two, and whether any such write falls in
 * that window is a matter of timing (a CI run missed five times running).
 * So with --rounds (the guest reads into buffers only the device writes, and
 * prints VHU-ROUND after each round) the migration is held once 7/8 of
 * RAM's first pass is sent, until the guest has finished --migrate-hold
 * more rounds (default 2; m->rounds_held reports how many it ran): the kept
 * buffers QEMU has copied by then are all rewritten by the device after
 * their pages were sent, and only the back-end's dirty log can bring the
 * new contents across.
 *
 * The hold uses two of QEMU's parameters, as QEMU's own migration tests do.
 * A downtime limit of 1 ms and a bandwidth of 32 MiB/s from the start keep
 * QEMU from converging early (it stops the source only when what is left
 * to send fits in bandwidth x limit, here 8 pages); once 7/8 of the first
 * pass is sent (query-migrate's remaining against total, or dirty-sync-count
 * passing 1 if that is seen first) the bandwidth is cut to a trickle
 * (FREEZE_BYTES_S), which leaves the limit below one page: QEMU then cannot
 * converge while the guest dirties anything at all. The release restores the bandwidth, then the limit (precopy) or
 * switches to postcopy.
 *
 * QEMU 7.2 under TCG does not survive a held migration: whatever the
 * back-end (vhu-blk, or qemu-storage-daemon's libvhost-user, which logs its
 * writes too), the guest on the destination finds stale pages, or its
 * kernel panics or locks up, where QEMU 10.0 with the same guest and
 * back-ends passes every time, and fails only when the back-end's logging
 * is switched off. The tests therefore hold migrations under QEMU 10 and run
 * QEMU 7.2's unheld (--migrate-hold=0), see tests/interop/migrate.sh.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"

#define POSTCOPY_CAP                                                                                  \
	"{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": [{\"capability\": " \
	"\"postcopy-ram\", \"state\": true}]}}"

#define HOLD_LIMIT_S 120	/* a guest that stops printing rounds is released anyway */
/* max-bandwidth while held: 1 KiB per 100 ms slice (QEMU divides by 10; 0 would mean no limit) */
#define FREEZE_BYTES_S 10240
/* max-bandwidth until then: the limit (bandwidth x 1 ms) stays at 8 pages, so
 * what the device dirtied in the first pass keeps QEMU iterating until the freeze */
#define FIRST_PASS_BYTES_S (32u << 20)

static bool holds(const struct guest_opts *o)
{
	return o->rounds > 1 && o->migrate_hold > 0;
}

/* Postcopy needs the capability on both sides; the destination first. */
static int postcopy_capable(const char *dir, struct migration *m)
{
	char qd[PATH_MAX], reply[4096];
	struct qmp q;
	snprintf(qd, sizeof(qd), "%s/dst.qmp", dir);
	if (qmp_open(&q, qd, 10) < 0)
		return -1;
	int rc = qmp_cmd(&q, POSTCOPY_CAP, reply, sizeof(reply), 10);
	if (rc < 0)
		snprintf(m->error, sizeof(m->error), "destination: %.200s", reply);
	qmp_close(&q);
	return rc;
}

/* How many rounds the guest has reported on its console so far. */
static int rounds_seen(const char *console)
{
	uint8_t *text;
	size_t len;
	int n = 0;
	if (read_whole(console, &text, &len) < 0)
		return 0;
	for (const char *p = (const char *)text; (p = strstr(p, "VHU-ROUND ")); p++)
		n++;
	free(text);
	return n;
}

/* migrate-set-parameters with one integer parameter */
static int set_param(struct qmp *q, const char *name, double value, char *reply, size_t len)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"%s\": %.0f}}",
		 name, value);
	return qmp_cmd(q, cmd, reply, len, 10);
}

struct hold {
	bool on;		/* still held */
	double limit_ms, bandwidth;	/* QEMU's downtime limit and max-bandwidth, restored on release */
	double since;		/* when the hold began */
	int first_pass_round;	/* rounds seen when RAM's first pass ended; -1 before */
};

/*
 * One look at a held migration (reply: query-migrate): freezes it when the
 * first pass is over; 1 when it may go on (--migrate-hold more rounds run, or
 * the hold timed out), 0 to look again, -1 with m->error.
 */
static int hold_may_release(const struct guest_opts *o, struct qmp *q, struct hold *h, const char *reply, const char *console,
			    struct migration *m)
{
	char r[4096];
	if (strcmp(m->status, "active"))
		return 0;
	/* Frozen when 7/8 of RAM's first pass is sent, or once it is over
	 * (dirty-sync-count passes 1), whichever is seen first: waiting for
	 * the end alone lost the race to QEMU converging in a loaded CI run
	 * when little was dirty. Pages copied by then and rewritten by the
	 * device while frozen need the log; the rest of the pass trickles. */
	double total = qmp_num(reply, "total"), remaining = qmp_num(reply, "remaining");
	bool nearly = total > 0 && remaining >= 0 && remaining * 8 <= total;
	if (h->first_pass_round < 0 && (nearly || qmp_num(reply, "dirty-sync-count") >= 2)) {
		if (set_param(q, "max-bandwidth", FREEZE_BYTES_S, r, sizeof(r)) < 0) {
			snprintf(m->error, sizeof(m->error), "freezing the migration: %.180s", r);
			return -1;
		}
		h->first_pass_round = rounds_seen(console);
	} else if (h->first_pass_round >= 0) {
		/* the console is read only from the freeze on, not every 2 ms before it */
		m->rounds_held = rounds_seen(console) - h->first_pass_round;
	}
	return m->rounds_held >= (int)o->migrate_hold || guest_now() > h->since + HOLD_LIMIT_S;
}

/* The switch (postcopy) or the restored limit (held precopy); 0 or -1 with m->error. */
static int release(const struct guest_opts *o, struct qmp *q, struct hold *h, struct migration *m)
{
	char reply[4096];
	h->on = false;
	if (holds(o) && set_param(q, "max-bandwidth", h->bandwidth, reply, sizeof(reply)) < 0) {
		snprintf(m->error, sizeof(m->error), "restoring the bandwidth: %.160s", reply);
		return -1;
	}
	if (o->postcopy && qmp_cmd(q, "{\"execute\": \"migrate-start-postcopy\"}", reply, sizeof(reply), 10) < 0) {
		snprintf(m->error, sizeof(m->error), "migrate-start-postcopy: %.180s", reply);
		return -1;
	}
	if (!o->postcopy && set_param(q, "downtime-limit", h->limit_ms, reply, sizeof(reply)) < 0) {
		snprintf(m->error, sizeof(m->error), "restoring the downtime limit: %.160s", reply);
		return -1;
	}
	return 0;
}

/* Before `migrate`: capabilities, and the hold where the workload has rounds. */
static int prepare(const struct guest_opts *o, struct qmp *q, struct hold *h, struct migration *m)
{
	char reply[4096];
	if (o->postcopy && qmp_cmd(q, POSTCOPY_CAP, reply, sizeof(reply), 10) < 0) {
		snprintf(m->error, sizeof(m->error), "source: %.200s", reply);
		return -1;
	}
	*h = (struct hold){ .on = holds(o) || o->postcopy, .first_pass_round = -1 };
	m->rounds_held = -1;
	if (!holds(o))	/* nothing to wait for: postcopy switches once precopy runs */
		return 0;
	if (qmp_cmd(q, "{\"execute\": \"query-migrate-parameters\"}", reply, sizeof(reply), 10) < 0 ||
	    (h->limit_ms = qmp_num(reply, "downtime-limit")) < 0 || (h->bandwidth = qmp_num(reply, "max-bandwidth")) < 0 ||
	    set_param(q, "downtime-limit", 1, reply, sizeof(reply)) < 0 ||
	    set_param(q, "max-bandwidth", FIRST_PASS_BYTES_S, reply, sizeof(reply)) < 0) {
		snprintf(m->error, sizeof(m->error), "holding the migration: %.180s", reply);
		return -1;
	}
	m->rounds_held = 0;
	return 0;
}

static void record_end(const char *reply, struct migration *m)
{
	char desc[sizeof(m->error)];
	qmp_str(reply, "error-desc", desc, sizeof(desc));
	if (desc[0])
		memcpy(m->error, desc, sizeof(desc));
	m->total_ms = qmp_num(reply, "total-time");
	m->downtime_ms = qmp_num(reply, "downtime");
	m->setup_ms = qmp_num(reply, "setup-time");
	m->postcopy_requests = qmp_num(reply, "postcopy-requests");
	m->transferred = qmp_num(reply, "transferred");
	m->completed = !strcmp(m->status, "completed");
}

void guest_migrate(const struct guest_opts *o, const char *dir, const char *console, double t0,
		   struct migration *m, const volatile sig_atomic_t *stop)
{
	char qs[PATH_MAX], cmd[PATH_MAX + 128], reply[4096];
	struct qmp q;
	struct hold h;
	snprintf(qs, sizeof(qs), "%s/src.qmp", dir);
	snprintf(m->status, sizeof(m->status), "not-started");
	if (o->postcopy && postcopy_capable(dir, m) < 0)
		return;
	if (qmp_open(&q, qs, 10) < 0)
		return;
	if (prepare(o, &q, &h, m) < 0) {
		qmp_close(&q);
		return;
	}
	snprintf(cmd, sizeof(cmd), "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:%s/migration.sock\"}}",
		 dir);
	m->at_s = guest_now() - t0;
	h.since = guest_now();
	if (qmp_cmd(&q, cmd, reply, sizeof(reply), 10) < 0) {
		snprintf(m->error, sizeof(m->error), "%.200s", reply);
		qmp_close(&q);
		return;
	}
	double deadline = t0 + o->timeout;
	for (;;) {
		bool late = guest_now() > deadline || *stop;
		if (late || qmp_cmd(&q, "{\"execute\": \"query-migrate\"}", reply, sizeof(reply), 10) < 0) {
			snprintf(m->status, sizeof(m->status), "lost");
			snprintf(m->error, sizeof(m->error), "%s",
				 late ? "no end within --timeout"
				      : "the source QEMU went away (did the workload end first? more --rounds)");
			qmp_close(&q);
			return;
		}
		qmp_str(reply, "status", m->status, sizeof(m->status));
		if (!strcmp(m->status, "completed") || !strcmp(m->status, "failed") || !strcmp(m->status, "cancelled"))
			break;
		int go = !h.on ? 0 : holds(o) ? hold_may_release(o, &q, &h, reply, console, m)
						    : !strcmp(m->status, "active");
		if (go < 0 || (go && release(o, &q, &h, m) < 0))
			break;
		/* closely while the first pass may end: the freeze must come before QEMU converges */
		usleep(h.on && h.first_pass_round < 0 ? 2000 : 20000);
	}
	/* QEMU sets "completed" a moment before it fills in the figures (seen
	 * here: QEMU 7.2 answered completed with total-time and downtime 0 once
	 * in some sixty runs): ask again, briefly, until they are there */
	for (int i = 0; i < 50 && !strcmp(m->status, "completed") && qmp_num(reply, "total-time") <= 0; i++) {
		usleep(10000);
		if (qmp_cmd(&q, "{\"execute\": \"query-migrate\"}", reply, sizeof(reply), 10) < 0)
			break;
	}
	record_end(reply, m);
	if (m->completed)	/* the source stays paused after a migration: done with it */
		qmp_cmd(&q, "{\"execute\": \"quit\"}", reply, sizeof(reply), 5);
	qmp_close(&q);
}
