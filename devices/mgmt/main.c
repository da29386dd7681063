/* SPDX-License-Identifier: MIT */
/*
 * vhu-mgmt: the management device of vhu's admin-virtqueue transport
 * (docs/admin-transport.md) as a vhost-user back-end. Its driver creates
 * managed block devices by admin commands; their rings live in the memory
 * the front-end shares, their queues are served by one poll group, their
 * storage is what the operator put at their disposal: files in
 * --backing-dir by name, mem: (private memory) or null:.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mgmt.h"
#include "mgmt_internal.h"
#include "../../tools/opts.h"
#include "vhu/vu_socket.h"

static struct vhu_backend *g_be;

static void on_signal(int sig)
{
	(void)sig;
	if (g_be)
		vhu_backend_stop(g_be);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vhu-mgmt (--socket-path=PATH | --fd=FD) [options]\n"
		"  --backing-dir=DIR    the files (and block devices) in DIR are the backings\n"
		"                       members may be made on, by name; without it only\n"
		"                       mem: (private memory) and null: (reads zeroes)\n"
		"  --max-members=N      managed devices at most (default 4096)\n"
		"  --max-queues=N       queues per member at most (default 8, at most 62)\n"
		"  --queue-size=N       largest queue size of a member (default 256)\n"
		"  --mem-limit=MIB      memory every mem: backing together may hold (default 1024)\n"
		"  --engine=E           io_uring (default), sync, or null (no I/O: benchmarks)\n"
		"  --threads=N          the poll group serving every member's queues (default 1;\n"
		"                       0: one per CPU)\n"
		"  --poll-us=N          busy-poll a member's queue this long after work, with its\n"
		"                       notifications suppressed (default 32; 0: off)\n"
		"  -v, --verbose        more log (twice: every message)\n");
}

static int refuse(const char *opt, const char *value, const char *why)
{
	return opt_refuse("vhu-mgmt", opt, value, why);
}

static int number(const char *opt, const char *s, long lo, long hi, long *out)
{
	return opt_number("vhu-mgmt", opt, s, lo, hi, out);
}

static int serve(struct mgmt_config *cfg, const char *sock, int conn_fd, long threads, uint32_t poll_ns)
{
	struct vhu_poll_group_config pc = { .threads = (unsigned)threads, .poll_ns = poll_ns, .log = opt_log_stderr,
					     .log_level = cfg->log_level };
	struct vhu_poll_group *pg = vhu_poll_group_new(&pc);
	struct mgmt *mg = NULL;
	int r = 1;
	if (!pg) {
		fprintf(stderr, "vhu-mgmt: cannot start the poll group: %s\n", strerror(errno));
		return 1;
	}
	cfg->pg = pg;
	if (!(mg = mgmt_new(cfg))) {
		fprintf(stderr, "vhu-mgmt: cannot create the management device%s%s: %s\n",
			cfg->backing_dir ? " on " : "", cfg->backing_dir ? cfg->backing_dir : "", strerror(errno));
		goto out;
	}
	g_be = mgmt_backend(mg);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sock) {
		int l = vhu_user_listen(sock);
		if (l < 0) {
			fprintf(stderr, "vhu-mgmt: cannot listen on %s: %s\n", sock, strerror(-l));
			goto out;
		}
		fprintf(stderr, "vhu-mgmt: serving the management device on %s (backings: %s)\n", sock,
			cfg->backing_dir ? cfg->backing_dir : "mem: and null: only");
		r = vhu_backend_run_listen(g_be, l) < 0;
		close(l);
		unlink(sock);
	} else {
		r = vhu_backend_run_conn(g_be, conn_fd) < 0;
	}
out:
	g_be = NULL;
	mgmt_free(mg);
	vhu_poll_group_free(pg);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket-path", required_argument, NULL, 's' },
		{ "fd", required_argument, NULL, 'f' },
		{ "backing-dir", required_argument, NULL, 'b' },
		{ "max-members", required_argument, NULL, 'm' },
		{ "max-queues", required_argument, NULL, 'q' },
		{ "queue-size", required_argument, NULL, 'z' },
		{ "mem-limit", required_argument, NULL, 'M' },
		{ "engine", required_argument, NULL, 'e' },
		{ "threads", required_argument, NULL, 't' },
		{ "poll-us", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mgmt_config cfg = { .max_members = 4096, .max_queues = 8, .max_queue_size = 256,
				   .mem_limit = 1024ull << 20, .engine = BLK_ENGINE_URING, .log = opt_log_stderr };
	const char *sock = NULL;
	long conn_fd = -1, v, poll_us = 32, threads = 1;
	int verbose = 0, c;

	opt_log_who = "vhu-mgmt";
	opterr = 0;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'f':
			if (number("--fd", optarg, 0, 1 << 20, &conn_fd))
				return 2;
			break;
		case 'b': cfg.backing_dir = optarg; break;
		case 'm':
			if (number("--max-members", optarg, 1, 1 << 20, &v))
				return 2;
			cfg.max_members = (uint32_t)v;
			break;
		case 'q':
			if (number("--max-queues", optarg, 1, MGMT_MAX_QUEUES, &v))
				return 2;
			cfg.max_queues = (uint16_t)v;
			break;
		case 'z':
			if (number("--queue-size", optarg, 4, 32768, &v))
				return 2;
			cfg.max_queue_size = (uint16_t)v;
			break;
		case 'M':
			if (number("--mem-limit", optarg, 0, 1 << 24, &v))
				return 2;
			cfg.mem_limit = (uint64_t)v << 20;
			break;
		case 'e':
			if (!strcmp(optarg, "io_uring") || !strcmp(optarg, "uring"))
				cfg.engine = BLK_ENGINE_URING;
			else if (!strcmp(optarg, "sync"))
				cfg.engine = BLK_ENGINE_SYNC;
			else if (!strcmp(optarg, "null"))
				cfg.engine = BLK_ENGINE_NULL;
			else
				return refuse("--engine", optarg, "takes io_uring, sync or null");
			break;
		case 't':
			if (number("--threads", optarg, 0, 1024, &threads))
				return 2;
			break;
		case 'p':
			if (number("--poll-us", optarg, 0, 1000000, &poll_us))
				return 2;
			break;
		case 'v': verbose++; break;
		case 'h': usage(stdout); return 0;
		default:
			return opt_getopt_error("vhu-mgmt", argv[optind - 1], opts);
		}
	}
	if (optind != argc)
		return refuse(argv[optind], NULL, "not an option (options are --name=value)");
	if ((!sock) == (conn_fd < 0)) {
		usage(stderr);
		return 2;
	}
	cfg.log_level = VHU_LOG_WARN + verbose;
	/* a member holds an fd for its backing and one per queue: thousands
	 * of members need more than the usual soft limit of 1024 */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &nofile);
	}
	return serve(&cfg, sock, (int)conn_fd, threads, (uint32_t)poll_us * 1000);
}
