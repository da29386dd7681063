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

#include <sys/eventfd.h>

#include "blk_dev.h"
#include "blk_export.h"
#include "blk_pool.h"
#include "../../tools/opts.h"
#include "vhu/vu_socket.h"

#define MAX_EXPORTS 1024

static struct vhu_backend *g_be;
static int g_stop_fd = -1;

static void on_signal(int sig)
{
	uint64_t one = 1;
	(void)sig;
	if (g_be)
		vhu_backend_stop(g_be);
	if (g_stop_fd >= 0)
		(void)!write(g_stop_fd, &one, sizeof(one));
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vhu-blk (--socket-path=PATH | --fd=FD) --blk-file=PATH [options]\n"
		"       vhu-blk --export socket=PATH,file=IMG[,key=value...] [--export ...] [options]\n"
		"       vhu-blk --print-capabilities\n"
		"  --export SPEC        one more device on its own socket; keys: socket, file,\n"
		"                       num-queues, queue-size, read-only=on|off, serial, seg-max\n"
		"                       (the options below are the defaults for each)\n"
		"  --threads=N          serve every queue on a poll group of N threads (0: one\n"
		"                       per CPU, the default with --export); without it and\n"
		"                       without --export, a thread per queue\n"
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
		"  --doorbell           give each queue a doorbell page (HOST_NOTIFIER): the driver\n"
		"                       kicks by a store into it, with NOTIFICATION_DATA offered;\n"
		"                       withdrawn after 20 ms idle, offered again on the next kick\n"
		"                       (thread per queue only; QEMU needs page-per-vq=on)\n"
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

static int cannot(const char *what, int err)
{
	fprintf(stderr, "vhu-blk: cannot %s: %s\n", what, strerror(err));
	return 1;
}

/* The image open, its config filled: 0, or 1 after a message. */
static int open_image(struct blk_dev *d, struct blk_pool *pool)
{
	int r = blk_dev_open(d);
	if (r < 0) {
		fprintf(stderr, "vhu-blk: cannot use %s: %s\n", d->path, strerror(-r));
		return 1;
	}
	blk_dev_fill_config(d);
	d->pool = pool;
	return 0;
}

static void close_image(struct blk_dev *d)
{
	if (d->fd < 0)
		return;
	if (!d->read_only && fdatasync(d->fd) < 0 && errno != EINVAL)
		fprintf(stderr, "vhu-blk: %s: fdatasync: %s\n", d->path, strerror(errno));
	close(d->fd);
	d->fd = -1;
}

static struct vhu_device *make_device(struct blk_dev *d, struct vhu_poll_group *pg, uint32_t poll_ns, int level,
				      void *log_opaque)
{
	struct vhu_device_config cfg = {
		.ops = &blk_ops, .priv = d, .num_queues = d->num_queues, .max_queue_size = d->queue_size,
		.features = blk_dev_features(d), .config_size = sizeof(d->cfg),
		.log = opt_log_stderr, .log_opaque = log_opaque, .log_level = level, .poll_ns = poll_ns,
		.exec = pg ? VHU_EXEC_POLL_GROUP : VHU_EXEC_THREAD_PER_QUEUE, .poll_group = pg,
	};
	return vhu_device_new(&cfg);
}

static struct vhu_backend *make_backend(struct vhu_device *dev, bool doorbell)
{
	struct vhu_backend_config cfg = {
		.device = dev,
		.protocol_features = VHU_BACKEND_PROTOCOL_FEATURES |
				     (doorbell ? 1ull << VHU_USER_PROTOCOL_F_HOST_NOTIFIER : 0),
	};
	return vhu_backend_new(&cfg);
}

static struct vhu_poll_group *make_poll_group(unsigned threads, uint32_t poll_ns, int level)
{
	struct vhu_poll_group_config cfg = { .threads = threads, .poll_ns = poll_ns, .log = opt_log_stderr,
					     .log_level = level };
	return vhu_poll_group_new(&cfg);
}

static void on_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* One device: --socket-path or --fd, as the vhost-user spec's back-end conventions say. */
static int serve_one(struct blk_dev *d, const char *sock, int conn_fd, long threads, uint32_t poll_ns, int level)
{
	struct blk_pool *pool = NULL;
	struct vhu_poll_group *pg = NULL;
	struct vhu_device *dev = NULL;
	int r = 1;

	if (d->engine == BLK_ENGINE_THREADS && !(pool = blk_pool_new(4)))
		return cannot("start the I/O threads", ENOMEM);
	if (open_image(d, pool))
		goto out;
	if (threads >= 0 && !(pg = make_poll_group((unsigned)threads, poll_ns, level))) {
		r = cannot("start the poll group", errno);
		goto out;
	}
	if (!(dev = make_device(d, pg, poll_ns, level, NULL)) || !(g_be = make_backend(dev, d->doorbell))) {
		r = cannot("create the back-end", errno);
		goto out;
	}
	on_signals();
	if (sock) {
		int l = vhu_user_listen(sock);
		if (l < 0) {
			r = cannot("listen", -l);
			goto out;
		}
		fprintf(stderr, "vhu-blk: serving %s (%llu sectors%s) on %s, %u queue(s), engine %s\n", d->path,
			(unsigned long long)d->capacity, d->read_only ? ", read-only" : "", sock, d->num_queues,
			blk_engine_name(d->engine));
		r = vhu_backend_run_listen(g_be, l) < 0;
		close(l);
		unlink(sock);
	} else {
		r = vhu_backend_run_conn(g_be, conn_fd) < 0;
	}
out:
	/* stops every queue, finishing the requests in flight */
	vhu_backend_free(g_be);
	g_be = NULL;
	vhu_device_free(dev);
	vhu_poll_group_free(pg);
	blk_pool_free(pool);
	close_image(d);
	return r;
}

/* One export's image, device, back-end and socket: 0, or 1 after a message
 * (what was made is freed with the rest, by free_exports). */
static int start_export(struct blk_export *e, struct blk_pool *pool, struct vhu_poll_group *pg, uint32_t poll_ns,
			int level, bool name_it)
{
	if (open_image(&e->d, pool))
		return 1;
	if (!(e->dev = make_device(&e->d, pg, poll_ns, level, name_it ? (void *)e->sock : NULL)) ||
	    !(e->be = make_backend(e->dev, e->d.doorbell)))
		return cannot("create a back-end", errno);
	if ((e->listen_fd = vhu_user_listen(e->sock)) < 0) {
		fprintf(stderr, "vhu-blk: cannot listen on %s: %s\n", e->sock, strerror(-e->listen_fd));
		return 1;
	}
	fprintf(stderr, "vhu-blk: export %s: %s (%llu sectors%s), %u queue(s)\n", e->sock, e->d.path,
		(unsigned long long)e->d.capacity, e->d.read_only ? ", read-only" : "", e->d.num_queues);
	return 0;
}

/* Every export, made whole or in part (each part not made is NULL or -1). */
static void free_exports(struct blk_export *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		vhu_backend_free(x[i].be);
		vhu_device_free(x[i].dev);
		if (x[i].listen_fd >= 0) {
			close(x[i].listen_fd);
			unlink(x[i].sock);
		}
		close_image(&x[i].d);
	}
	free(x);
}

/* Many devices (--export), their queues on one poll group. */
static int serve_exports(const struct blk_dev *defaults, char **specs, unsigned n, unsigned threads,
			 uint32_t poll_ns, int level)
{
	struct blk_export *x = calloc(n, sizeof(*x));
	struct blk_pool *pool = NULL;
	struct vhu_poll_group *pg = NULL;
	int r = 1;

	if (!x)
		return cannot("allocate the exports", ENOMEM);
	for (unsigned i = 0; i < n; i++) {
		x[i].d = *defaults;
		x[i].listen_fd = -1;
		if ((r = blk_export_parse(specs[i], &x[i])) != 0) {
			free(x);
			return r;
		}
	}
	r = 1;
	if (defaults->engine == BLK_ENGINE_THREADS && !(pool = blk_pool_new(4))) {
		r = cannot("start the I/O threads", ENOMEM);
		goto out;
	}
	if (!(pg = make_poll_group(threads, poll_ns, level))) {
		r = cannot("start the poll group", errno);
		goto out;
	}
	for (unsigned i = 0; i < n; i++)
		if (start_export(&x[i], pool, pg, poll_ns, level, n > 1))
			goto out;
	if ((g_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = cannot("make an eventfd", errno);
		goto out;
	}
	on_signals();
	r = blk_exports_serve(x, n, pg, g_stop_fd);
out:
	free_exports(x, n);
	vhu_poll_group_free(pg);
	blk_pool_free(pool);
	return r;
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
		{ "export", required_argument, NULL, 'x' },
		{ "threads", required_argument, NULL, 't' },
		{ "doorbell", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct blk_dev d = { .fd = -1, .num_queues = 1, .queue_size = 1024, .serial = "vhu-blk",
			     .engine = BLK_ENGINE_URING, .seg_max = 126 };
	const char *sock = NULL;
	long conn_fd = -1, v, poll_us = 32, threads = -1;
	int verbose = 0, c;
	static char *specs[MAX_EXPORTS];
	unsigned nspecs = 0;

	opt_log_who = "vhu-blk";
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
		case 'D': d.doorbell = true; break;
		case 'x':
			if (nspecs == MAX_EXPORTS)
				return refuse("--export", optarg, "at most 1024 exports");
			specs[nspecs++] = optarg;
			break;
		case 't':
			if (number("--threads", optarg, 0, 1024, &threads))
				return 2;
			break;
		case 'h': usage(stdout); return 0;
		default:
			return opt_getopt_error("vhu-blk", argv[optind - 1], opts);
		}
	}
	if (argc == 1)
		goto bad;
	if (optind != argc)
		return refuse(argv[optind], NULL, "not an option (options are --name=value)");
	if (nspecs && (d.path || sock || conn_fd >= 0))
		return refuse("--export", NULL, "is not used with --socket-path, --fd or --blk-file");
	if (nspecs)
		return serve_exports(&d, specs, nspecs, threads < 0 ? 0 : (unsigned)threads, (uint32_t)poll_us * 1000,
				     VHU_LOG_WARN + verbose);
	if (!d.path || (!sock) == (conn_fd < 0))
		return refuse(!d.path ? "--blk-file" : "--socket-path, --fd", NULL,
			      !d.path ? "is needed: the image or block device to serve" : "exactly one of them is needed");
	return serve_one(&d, sock, (int)conn_fd, threads, (uint32_t)poll_us * 1000, VHU_LOG_WARN + verbose);
bad:
	usage(stderr);
	return 2;
}
