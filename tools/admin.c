/* SPDX-License-Identifier: MIT */
/*
 * vhu admin SOCK caps | list | backings | create blk --size=... [--backing=NAME]
 *                [--read-only] [--queues=N] [--queue-size=N] [--block-size=N] | destroy ID | show ID
 * The management device's commands (docs/admin-transport.md) from the
 * command line, and the managed devices `vhu probe|verify|bench --member=ID`
 * drive.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "opts.h"
#include "vhu/virtio.h"

int admin_session_open(struct admin_session *s, const char *sock, bool server, unsigned verbose, size_t mem)
{
	struct vhu_fe_config c = { .path = sock, .server = server, .fd = -1, .timeout_ms = 5000, .log = opt_log_stderr,
				   .log_level = VHU_LOG_WARN + (int)verbose };
	memset(s, 0, sizeof(*s));
	int rc = vhu_fe_connect(&s->fe, &c);
	if (rc < 0) {
		fprintf(stderr, "vhu: cannot talk to %s: %s\n", sock, strerror(-rc));
		return -1;
	}
	if (!vhu_has_feature(vhu_fe_offered_features(s->fe), VHU_F_ADMIN_VQ)) {
		fprintf(stderr, "vhu: %s is not a management device (no VIRTIO_F_ADMIN_VQ)\n", sock);
		goto fail;
	}
	struct vhu_fe_setup st = { .features = vhu_admin_driver_features(), .num_queues = 2, .queue_size = 64,
				   .notify = VHU_FE_NOTIFY_EVENTFD, .mem_size = (1u << 20) + mem };
	if ((rc = vhu_fe_start(s->fe, &st)) < 0 || (rc = vhu_admin_driver_new(&s->ad, s->fe)) < 0) {
		fprintf(stderr, "vhu: cannot start the management device: %s\n", strerror(-rc));
		goto fail;
	}
	return 0;
fail:
	admin_session_close(s);
	return -1;
}

void admin_session_close(struct admin_session *s)
{
	vhu_admin_driver_free(s->ad);
	if (s->fe) {
		vhu_fe_stop(s->fe);
		vhu_fe_close(s->fe);
	}
	memset(s, 0, sizeof(*s));
}

static void *q_alloc(void *o, size_t size, size_t align, uint64_t *addr)
{
	return vhu_admin_dev_alloc(((struct member_queue_ref *)o)->dev, size, align, addr);
}
static int q_kick(void *o)
{
	struct member_queue_ref *r = o;
	return vhu_admin_dev_kick(r->dev, r->index);
}
static int q_wait(void *o, int ms)
{
	struct member_queue_ref *r = o;
	return vhu_admin_dev_wait(r->dev, r->index, ms);
}

int admin_member_open(struct admin_session *s, uint64_t id, const struct vhu_admin_dev_setup *setup,
		      struct admin_member *m, struct vhu_blk_info *info, struct vhu_blk_queue **queues)
{
	struct vhu_blk_config c;
	memset(m, 0, sizeof(*m));
	int rc = vhu_admin_dev_start(s->ad, id, setup, &m->dev);
	if (rc < 0) {
		fprintf(stderr, "vhu: cannot start member %" PRIu64 ": %s (qualifier %u)\n", id, strerror(-rc),
			vhu_admin_qualifier(s->ad));
		return -1;
	}
	if ((rc = vhu_admin_dev_config(m->dev, 0, &c, 60)) < 0) {
		fprintf(stderr, "vhu: cannot read member %" PRIu64 "'s config: %s\n", id, strerror(-rc));
		return -1;
	}
	vhu_blk_decode_info(&c, vhu_admin_dev_features(m->dev), info);
	m->ref = calloc(setup->num_queues, sizeof(*m->ref));
	for (unsigned i = 0; m->ref && i < setup->num_queues; i++) {
		m->ref[i] = (struct member_queue_ref){ m->dev, i };
		struct vhu_blk_ring r = { vhu_admin_dev_vq(m->dev, i), q_alloc, q_kick, q_wait, &m->ref[i] };
		if (!(queues[i] = vhu_blk_queue_new_on(&r))) {
			fprintf(stderr, "vhu: no memory for member %" PRIu64 "'s queue %u\n", id, i);
			return -1;
		}
	}
	return m->ref ? 0 : -1;
}

void admin_member_close(struct admin_member *m, struct vhu_blk_queue **queues, unsigned n)
{
	vhu_admin_dev_stop(m->dev);   /* its requests are completed when the reset is */
	for (unsigned i = 0; queues && i < n; i++)
		vhu_blk_queue_free(queues[i]);
	free(m->ref);
	memset(m, 0, sizeof(*m));
}

/* ---- vhu admin -------------------------------------------------------------------- */

static int failed(struct admin_session *s, const char *what, int rc)
{
	fprintf(stderr, "vhu admin: %s: %s (status %d, qualifier %u)\n", what, strerror(-rc), -rc,
		vhu_admin_qualifier(s->ad));
	return 1;
}

static void print_member(uint64_t id, const struct vhu_admin_create *c)
{
	printf("member %" PRIu64 ": blk, %" PRIu64 " sectors (%.1f MiB), block size %u, %u queue(s) of up to %u, "
	       "backing %s%s\n", id, c->capacity, c->capacity / 2048.0, c->blk_size, c->num_queues, c->queue_size_max,
	       c->backing, (c->flags & VHU_ADMIN_CREATE_READ_ONLY) ? ", read-only" : "");
}

static int cmd_caps(struct admin_session *s)
{
	struct vhu_admin_caps c;
	int rc = vhu_admin_caps_get(s->ad, &c);
	if (rc < 0)
		return failed(s, "MGMT_CAPS_GET", rc);
	printf("device types       0x%" PRIx64 "%s\nmembers            %u of %u\nqueues per member  %u, of up to %u\n"
	       "MMU                %u address spaces, %u mappings\nbackings           %u\n",
	       c.device_types, (c.device_types & 4) ? " (blk)" : "", c.members, c.max_members, c.max_queues,
	       c.max_queue_size, c.max_asids, c.mmu_max_mappings, c.backings);
	return 0;
}

static int cmd_list(struct admin_session *s)
{
	uint64_t ids[512], first = 0;
	int n;
	do {
		if ((n = vhu_admin_dev_list(s->ad, first, ids, 512)) < 0)
			return failed(s, "DEV_LIST", n);
		for (int i = 0; i < n; i++) {
			struct vhu_admin_create c;
			int rc = vhu_admin_dev_info(s->ad, ids[i], &c);
			if (rc == -ENXIO || (rc == -EINVAL && vhu_admin_qualifier(s->ad) == VHU_ADMIN_Q_INVALID_MEMBER))
				continue;   /* destroyed meanwhile */
			if (rc < 0)
				return failed(s, "DEV_INFO_GET", rc);
			print_member(ids[i], &c);
			first = ids[i] + 1;
		}
	} while (n == 512);
	return 0;
}

static int cmd_backings(struct admin_session *s)
{
	char names[64][VHU_ADMIN_BACKING_NAME];
	uint32_t first = 0;
	int n;
	do {
		if ((n = vhu_admin_backings(s->ad, first, names, 64)) < 0)
			return failed(s, "BACKING_LIST", n);
		for (int i = 0; i < n; i++)
			printf("%s\n", names[i]);
		first += (uint32_t)n;
	} while (n == 64);
	return 0;
}

static int cmd_create(struct admin_session *s, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, 's' }, { "backing", required_argument, NULL, 'b' },
		{ "read-only", no_argument, NULL, 'r' }, { "queues", required_argument, NULL, 'q' },
		{ "queue-size", required_argument, NULL, 'z' }, { "block-size", required_argument, NULL, 'B' },
		{ 0 },
	};
	struct vhu_admin_create c = { .device_type = 2, .num_queues = 1 };
	const char *backing = "mem:";
	bool ok = true;
	long v;
	int o, rc = 0;
	optind = 1;
	opterr = 0;
	while (!rc && (o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 's': {
			uint64_t bytes = opt_size(optarg, &ok);
			if (!ok || !bytes || bytes % 512)
				rc = opt_refuse("vhu admin create", "--size", optarg, "takes a multiple of 512 (k, M, G)");
			c.capacity = bytes / 512;
			break;
		}
		case 'b':
			if (strlen(optarg) >= VHU_ADMIN_BACKING_NAME)
				rc = opt_refuse("vhu admin create", "--backing", optarg, "at most 63 bytes");
			backing = optarg;
			break;
		case 'r': c.flags |= VHU_ADMIN_CREATE_READ_ONLY; break;
		case 'q': if (!(rc = opt_number("vhu admin create", "--queues", optarg, 1, 62, &v))) c.num_queues = (uint16_t)v; break;
		case 'z': if (!(rc = opt_number("vhu admin create", "--queue-size", optarg, 1, 32768, &v))) c.queue_size_max = (uint16_t)v; break;
		case 'B': if (!(rc = opt_number("vhu admin create", "--block-size", optarg, 512, 65536, &v))) c.blk_size = (uint32_t)v; break;
		default: rc = opt_getopt_error("vhu admin create", argv[optind - 1], lo);
		}
	}
	if (rc)
		return rc;
	if (optind != argc)
		return opt_refuse("vhu admin create", argv[optind], NULL, "not an option");
	strncpy(c.backing, backing, sizeof(c.backing) - 1);
	uint64_t id;
	if ((rc = vhu_admin_dev_create(s->ad, &c, &id)) < 0)
		return failed(s, "DEV_CREATE", rc);
	printf("%" PRIu64 "\n", id);
	return 0;
}

static int member_arg(const char *s, uint64_t *id)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || !v || s[0] == '-')
		return opt_refuse("vhu admin", "ID", s, "takes a member id (1, 2, ...)");
	*id = v;
	return 0;
}

static void admin_usage(FILE *f)
{
	fprintf(f, "usage: vhu admin SOCK caps | list | backings | show ID | destroy ID\n"
		   "       vhu admin SOCK create blk [--size=BYTES] [--backing=NAME] [--read-only] [--queues=N]\n"
		   "                                 [--queue-size=N] [--block-size=N]\n"
		   "  SOCK is a management device (vhu-mgmt). create prints the new member's id; the\n"
		   "  backing is mem: (the default, needs --size), null: or a name `backings` lists;\n"
		   "  --size 0 or absent takes a file's own size. Then: vhu verify SOCK --member=ID\n");
}

int vhu_admin_main(int argc, char **argv)
{
	if (argc < 3 || !strcmp(argv[1], "--help")) {
		admin_usage(argc < 3 ? stderr : stdout);
		return argc < 3 ? 2 : 0;
	}
	const char *sock = argv[1], *cmd = argv[2];
	uint64_t id = 0;
	int rc;
	bool needs_id = !strcmp(cmd, "show") || !strcmp(cmd, "destroy");
	if (strcmp(cmd, "caps") && strcmp(cmd, "list") && strcmp(cmd, "backings") && strcmp(cmd, "create") && !needs_id)
		return opt_refuse("vhu admin", cmd, NULL, "no such command (caps, list, backings, create, show, destroy)");
	if (needs_id && (argc != 4 || (rc = member_arg(argv[3], &id))))
		return argc != 4 ? opt_refuse("vhu admin", cmd, NULL, "takes one member id") : rc;
	if (!strcmp(cmd, "create") && (argc < 4 || strcmp(argv[3], "blk")))
		return opt_refuse("vhu admin", "create", argc > 3 ? argv[3] : NULL, "makes blk devices: create blk ...");
	if (!needs_id && strcmp(cmd, "create") && argc != 3)
		return opt_refuse("vhu admin", argv[3], NULL, "not expected here");
	struct admin_session s;
	if (admin_session_open(&s, sock, false, 0, 0) < 0)
		return 1;
	if (!strcmp(cmd, "caps"))
		rc = cmd_caps(&s);
	else if (!strcmp(cmd, "list"))
		rc = cmd_list(&s);
	else if (!strcmp(cmd, "backings"))
		rc = cmd_backings(&s);
	else if (!strcmp(cmd, "create"))
		rc = cmd_create(&s, argc - 3, argv + 3);
	else if (!strcmp(cmd, "destroy"))
		rc = (rc = vhu_admin_dev_destroy(s.ad, id)) < 0 ? failed(&s, "DEV_DESTROY", rc) : 0;
	else {
		struct vhu_admin_create c;
		uint8_t st = 0;
		if ((rc = vhu_admin_dev_info(s.ad, id, &c)) < 0 || (rc = vhu_admin_status_get(s.ad, id, &st)) < 0) {
			rc = failed(&s, "DEV_INFO_GET", rc);
		} else {
			print_member(id, &c);
			printf("  status 0x%02x\n", st);
			rc = 0;
		}
	}
	admin_session_close(&s);
	return rc;
}
