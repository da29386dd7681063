/* SPDX-License-Identifier: MIT */
/*
 * vhu-blk: a vhost-user-blk back-end over a raw image file or block device.
 * Follows the vhost-user spec's "Backend program conventions": --socket-path
 * or --fd, --print-capabilities, no daemonizing, quick clean exit on
 * SIGTERM, non-zero exit with a message when it cannot start.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk_dev.h"
#include "blk_pool.h"
#include "../../tools/opts.h"
#include "vhu/vu_socket.h"

static struct vhu_backend *g_be;

static void on_signal(int sig)
{
	(void)sig;
	if (g_be)
		vhu_backend_stop(g_be);
}

static void log_stderr(void *opaque, enum vhu_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	(void)opaque;
	fprintf(stderr, "vhu-blk: %s: %s\n", names[level], msg);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vhu-blk (--socket-path=PATH | --fd=FD) --blk-file=PATH [options]\n"
		"       vhu-blk --print-capabilities\n"
		"  --read-only          refuse writes (VIRTIO_BLK_F_RO)\n"
		"  --num-queues=N       virtqueues offered (default 1)\n"
		"  --queue-size=N       largest queue size accepted (default 1024)\n"
		"  --engine=E           io_uring (default); threads (a pool doing preadv/pwritev,\n"
		"                       for kernels without io_uring); sync (in the queue's thread);\n"
		"                       null (no I/O, reads return zeroes: for benchmarks)\n"
		"  --serial=S           device id string (GET_ID), at most 20 bytes\n"
		"  --seg-max=N          data segments per request (default 126: fits a 128-entry\n"
		"                       ring without indirect descriptors; at most 256)\n"
		"  --poll-us=N          busy-poll a queue this long after serving it, before\n"
		"                       sleeping (default 32, as QEMU's poll-max-ns; 0: off)\n"
		"  -v, --verbose        more log (twice: every message)\n");
}

static int refuse(const char *opt, const char *value, const char *why)
{
	return opt_refuse("vhu-blk", opt, value, why);
}

static int number(const char *opt, const char *s, long lo, long hi, long *out)
{
	return opt_number("vhu-blk", opt, s, lo, hi, out);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket-path", required_argument, NULL, 's' },
		{ "fd", required_argument, NULL, 'f' },
		{ "print-capabilities", no_argument, NULL, 'c' },
		{ "blk-file", required_argument, NULL, 'b' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "num-queues", required_argument, NULL, 'q' },
		{ "queue-size", required_argument, NULL, 'z' },
		{ "engine", required_argument, NULL, 'e' },
		{ "serial", required_argument, NULL, 'i' },
		{ "seg-max", required_argument, NULL, 'g' },
		{ "poll-us", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct blk_dev d = { .fd = -1, .num_queues = 1, .queue_size = 1024, .serial = "vhu-blk",
			     .engine = BLK_ENGINE_URING, .seg_max = 126 };
	const char *sock = NULL;
	long conn_fd = -1, v, poll_us = 32;
	int verbose = 0, c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'f':
			if (number("--fd", optarg, 0, 1 << 20, &conn_fd))
				return 2;
			break;
		case 'c':
			/* QEMU's docs/interop/vhost-user.json: VHostUserBackendBlockFeature */
			printf("{\n  \"type\": \"block\",\n  \"features\": [\n    \"read-only\",\n"
			       "    \"blk-file\"\n  ]\n}\n");
			return 0;
		case 'b': d.path = optarg; break;
		case 'r': d.read_only = true; break;
		case 'q':
			if (number("--num-queues", optarg, 1, 64, &v))
				return 2;
			d.num_queues = (uint16_t)v;
			break;
		case 'z':
			if (number("--queue-size", optarg, 4, VHU_VRING_MAX_SIZE, &v))
				return 2;
			d.queue_size = (uint16_t)v;
			break;
		case 'e':
			if (!strcmp(optarg, "io_uring") || !strcmp(optarg, "uring"))
				d.engine = BLK_ENGINE_URING;
			else if (!strcmp(optarg, "threads"))
				d.engine = BLK_ENGINE_THREADS;
			else if (!strcmp(optarg, "sync"))
				d.engine = BLK_ENGINE_SYNC;
			else if (!strcmp(optarg, "null"))
				d.engine = BLK_ENGINE_NULL;
			else
				return refuse("--engine", optarg, "takes io_uring, threads, sync or null");
			break;
		case 'i':
			if (strlen(optarg) > VHU_BLK_ID_BYTES)
				return refuse("--serial", optarg, "at most 20 bytes (VIRTIO_BLK_ID_BYTES)");
			d.serial = optarg;
			break;
		case 'g':
			if (number("--seg-max", optarg, 1, BLK_MAX_SEG, &v))
				return 2;
			d.seg_max = (uint32_t)v;
			break;
		case 'p':
			if (number("--poll-us", optarg, 0, 1000000, &poll_us))
				return 2;
			break;
		case 'v': verbose++; break;
		case 'h': usage(stdout); return 0;
		default:
			return opt_getopt_error("vhu-blk", argv[optind - 1], opts);
		}
	}
	if (argc == 1)
		goto bad;
	if (optind != argc)
		return refuse(argv[optind], NULL, "not an option (options are --name=value)");
	if (!d.path || (!sock) == (conn_fd < 0))
		return refuse(!d.path ? "--blk-file" : "--socket-path, --fd", NULL,
			      !d.path ? "is needed: the image or block device to serve" : "exactly one of them is needed");
	int r = blk_dev_open(&d);
	if (r < 0) {
		fprintf(stderr, "vhu-blk: cannot use %s: %s\n", d.path, strerror(-r));
		return 1;
	}
	blk_dev_fill_config(&d);
	if (d.engine == BLK_ENGINE_THREADS && !(d.pool = blk_pool_new(4))) {
		fprintf(stderr, "vhu-blk: cannot start the I/O threads\n");
		return 1;
	}

	struct vhu_backend_config cfg = {
		.ops = &blk_ops, .priv = &d, .num_queues = d.num_queues, .max_queue_size = d.queue_size,
		.features = blk_dev_features(&d),
		.protocol_features = VHU_BACKEND_PROTOCOL_FEATURES,
		.config_size = sizeof(d.cfg),
		.log = log_stderr, .log_level = VHU_LOG_WARN + verbose,
		.poll_ns = (uint32_t)poll_us * 1000,
	};
	g_be = vhu_backend_new(&cfg);
	if (!g_be) {
		fprintf(stderr, "vhu-blk: cannot create the back-end: %s\n", strerror(errno));
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (sock) {
		int l = vhu_user_listen(sock);
		if (l < 0) {
			fprintf(stderr, "vhu-blk: cannot listen on %s: %s\n", sock, strerror(-l));
			vhu_backend_free(g_be);
			return 1;
		}
		fprintf(stderr, "vhu-blk: serving %s (%llu sectors%s) on %s, %u queue(s), engine %s\n", d.path,
			(unsigned long long)d.capacity, d.read_only ? ", read-only" : "", sock, d.num_queues,
			blk_engine_name(d.engine));
		r = vhu_backend_run_listen(g_be, l);
		close(l);
		unlink(sock);
	} else {
		r = vhu_backend_run_conn(g_be, (int)conn_fd);
	}
	/* stops every queue, finishing the requests in flight */
	vhu_backend_free(g_be);
	g_be = NULL;
	blk_pool_free(d.pool);
	if (!d.read_only && fdatasync(d.fd) < 0 && errno != EINVAL)
		fprintf(stderr, "vhu-blk: fdatasync: %s\n", strerror(errno));
	close(d.fd);
	return r < 0 ? 1 : 0;
bad:
	usage(stderr);
	return 2;
}
