/* SPDX-License-Identifier: MIT */
/*
 * vhu-mgmt driven through the admin driver (vhu/admin_driver.h), the
 * daemon a separate process as in use: every field of the envelope and of
 * DEV_CREATE malformed, and the command buffers' layouts (no writable part,
 * no room for a status, a short header, parts overlapping), each with its
 * specified status while a running member keeps serving; a destroy and a
 * reset with requests in flight complete every one of them; the end of the
 * driver's session resets the members and keeps them; and the device MMU's
 * isolation: member A cannot read or write memory mapped only for member B.
 *   test_mgmt PATH-TO-vhu-mgmt
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "vhu/admin_driver.h"
#include "vhu/blk_driver.h"
#include "vhu/virtio.h"

static const char *mgmt_path;
static char sock[64];
static pid_t daemon_pid;

struct session {
	struct vhu_fe *fe;
	struct vhu_admin_driver *ad;
};

static void quiet(void *o, enum vhu_log_level l, const char *m)
{
	(void)o, (void)l, (void)m;
}

static void session_open(struct session *s)
{
	struct vhu_fe_config c = { .path = sock, .fd = -1, .timeout_ms = 5000, .log = quiet };
	assert_int_equal(vhu_fe_connect(&s->fe, &c), 0);
	struct vhu_fe_setup st = { .features = vhu_admin_driver_features(), .num_queues = 2, .queue_size = 64,
				   .notify = VHU_FE_NOTIFY_EVENTFD, .mem_size = 16u << 20 };
	assert_int_equal(vhu_fe_start(s->fe, &st), 0);
	assert_int_equal(vhu_admin_driver_new(&s->ad, s->fe), 0);
}

static void session_close(struct session *s)
{
	vhu_admin_driver_free(s->ad);
	vhu_fe_stop(s->fe);
	vhu_fe_close(s->fe);
}

static int daemon_up(void **state)
{
	(void)state;
	snprintf(sock, sizeof(sock), "/tmp/vhu-test-mgmt.%d.sock", getpid());
	unlink(sock);
	if ((daemon_pid = fork()) == 0) {
		execl(mgmt_path, mgmt_path, "--socket-path", sock, "--engine=sync", "--mem-limit=64", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(sock, F_OK); i++)
		usleep(10000);
	return access(sock, F_OK);
}

static int daemon_down(void **state)
{
	(void)state;
	int st = 0;
	kill(daemon_pid, SIGTERM);
	waitpid(daemon_pid, &st, 0);
	/* a clean exit: no sanitizer report, no crash */
	return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static uint64_t create_mem(struct session *s, uint64_t sectors, uint16_t queues)
{
	struct vhu_admin_create c = { .device_type = 2, .num_queues = queues, .capacity = sectors,
				      .backing = "mem:" };
	uint64_t id = 0;
	assert_int_equal(vhu_admin_dev_create(s->ad, &c, &id), 0);
	return id;
}

/* ---- a member's block queue ------------------------------------------------------- */

struct mq {
	struct vhu_admin_dev *dev;
	struct vhu_blk_queue *q;
};

static void *q_alloc(void *o, size_t size, size_t align, uint64_t *addr)
{
	return vhu_admin_dev_alloc(((struct mq *)o)->dev, size, align, addr);
}
static int q_kick(void *o) { return vhu_admin_dev_kick(((struct mq *)o)->dev, 0); }
static int q_wait(void *o, int ms) { return vhu_admin_dev_wait(((struct mq *)o)->dev, 0, ms); }

static void mq_start(struct session *s, uint64_t id, bool mmu, struct mq *m)
{
	struct vhu_admin_dev_setup st = { .features = VHU_BIT(VHU_F_EVENT_IDX), .num_queues = 1, .queue_size = 64,
					  .mmu = mmu };
	assert_int_equal(vhu_admin_dev_start(s->ad, id, &st, &m->dev), 0);
	struct vhu_blk_ring r = { vhu_admin_dev_vq(m->dev, 0), q_alloc, q_kick, q_wait, m };
	assert_non_null(m->q = vhu_blk_queue_new_on(&r));
}

static void mq_stop(struct mq *m)
{
	vhu_admin_dev_stop(m->dev);
	vhu_blk_queue_free(m->q);
}

/* A session with one running member of sectors on mem:; its id. */
static uint64_t member_up(struct session *s, struct mq *m, uint64_t sectors)
{
	session_open(s);
	uint64_t id = create_mem(s, sectors, 1);
	mq_start(s, id, false, m);
	return id;
}

/* One request of one segment; its status (0xff: none written). */
static uint8_t io(struct mq *m, uint32_t type, uint64_t sector, uint64_t addr, uint32_t len)
{
	struct vhu_sg sg = { addr, len };
	struct vhu_blk_completion c;
	assert_int_equal(vhu_blk_submit(m->q, type, sector, &sg, 1, m), 0);
	assert_int_equal(vhu_blk_kick(m->q), 0);
	for (int tries = 0; tries < 100; tries++) {
		if (vhu_blk_complete(m->q, &c, 1) == 1)
			return c.status;
		int rc = vhu_blk_wait(m->q, 100);
		assert_true(rc == 0 || rc == -ETIMEDOUT);
	}
	fail_msg("no completion");
	return 0;
}

/* A block written and read back on the member. */
static void works(struct session *s, struct mq *m, unsigned seed)
{
	uint64_t a;
	uint8_t *buf = vhu_admin_dev_alloc(m->dev, 4096, 4096, &a);
	(void)s;
	assert_non_null(buf);
	memset(buf, (int)seed, 4096);
	assert_int_equal(io(m, VHU_BLK_T_OUT, 8 * seed, a, 4096), VHU_BLK_S_OK);
	memset(buf, 0, 4096);
	assert_int_equal(io(m, VHU_BLK_T_IN, 8 * seed, a, 4096), VHU_BLK_S_OK);
	for (unsigned i = 0; i < 4096; i++)
		if (buf[i] != (uint8_t)seed)
			fail_msg("byte %u read back as %u, wrote %u", i, buf[i], seed);
}

/* ---- the envelope and DEV_CREATE, field by field ----------------------------------- */

struct hostile {
	const char *what;
	uint16_t group, opcode;
	uint64_t member;          /* ~0: the running member */
	uint8_t data[88];
	uint32_t len;
	uint16_t status, qualifier;
};

#define MANAGED VHU_ADMIN_GROUP_MANAGED
#define FIELD VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_FIELD
#define CREATE(...) MANAGED, VHU_ADMIN_CMD_DEV_CREATE, 0, { __VA_ARGS__ }, 88
/* device_type 2, one queue, capacity 8 sectors, backing mem: unless a field is the case */
#define BLK_OK 2, 0, 1, 0
#define CAP8 [16] = 8, [24] = 'm', 'e', 'm', ':'

static const struct hostile hostile_commands[] = {
	{ "an unknown group type", 0x0002, VHU_ADMIN_CMD_LIST_QUERY, 0, { 0 }, 0, VHU_ADMIN_STATUS_EINVAL,
	  VHU_ADMIN_Q_INVALID_GROUP },
	{ "the SR-IOV group", VHU_ADMIN_GROUP_SRIOV, VHU_ADMIN_CMD_LIST_QUERY, 0, { 0 }, 0, VHU_ADMIN_STATUS_EINVAL,
	  VHU_ADMIN_Q_INVALID_GROUP },
	{ "a managed-group opcode in group self", VHU_ADMIN_GROUP_SELF, VHU_ADMIN_CMD_MGMT_CAPS_GET, 0, { 0 }, 0,
	  VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_OPCODE },
	{ "an opcode nobody defined", MANAGED, 0x0399, 0, { 0 }, 0, VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_OPCODE },
	{ "the doorbell opcode kept for later", MANAGED, 0x0423, ~0ull, { 0 }, 8, VHU_ADMIN_STATUS_EINVAL,
	  VHU_ADMIN_Q_INVALID_OPCODE },
	{ "an opcode above every range", MANAGED, 0xffff, 0, { 0 }, 0, VHU_ADMIN_STATUS_EINVAL,
	  VHU_ADMIN_Q_INVALID_OPCODE },
	{ "an owner command naming a member", MANAGED, VHU_ADMIN_CMD_MGMT_CAPS_GET, 5, { 0 }, 0,
	  VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_MEMBER },
	{ "a member command naming member 0", MANAGED, VHU_ADMIN_CMD_STATUS_GET, 0, { 0 }, 0,
	  VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_MEMBER },
	{ "a member that never existed", MANAGED, VHU_ADMIN_CMD_STATUS_GET, 123456789, { 0 }, 0,
	  VHU_ADMIN_STATUS_EINVAL, VHU_ADMIN_Q_INVALID_MEMBER },
	{ "the largest member id", MANAGED, VHU_ADMIN_CMD_DEV_DESTROY, ~1ull, { 0 }, 0, VHU_ADMIN_STATUS_EINVAL,
	  VHU_ADMIN_Q_INVALID_MEMBER },
	{ "create: device type 1 (net)", CREATE(1, 0, 1, 0, CAP8), FIELD },
	{ "create: device type 0", CREATE(0, 0, 1, 0, CAP8), FIELD },
	{ "create: no queues", CREATE(2, 0, 0, 0, CAP8), FIELD },
	{ "create: more queues than the maximum", CREATE(2, 0, 63, 0, CAP8), FIELD },
	{ "create: a queue size above the maximum", CREATE(BLK_OK, 0x01, 0x04, CAP8), FIELD },
	{ "create: a reserved flag", CREATE(BLK_OK, 0, 0, 2, 0, CAP8), FIELD },
	{ "create: a block size not a power of 2", CREATE(BLK_OK, 0, 0, 0, 0, 0xe8, 0x03, CAP8), FIELD },
	{ "create: a block size of 256", CREATE(BLK_OK, 0, 0, 0, 0, 0, 1, CAP8), FIELD },
	{ "create: a block size of 128 KiB", CREATE(BLK_OK, 0, 0, 0, 0, 0, 0, 2, 0, CAP8), FIELD },
	{ "create: the reserved field", CREATE(BLK_OK, [12] = 1, CAP8), FIELD },
	{ "create: mem: of capacity 0", CREATE(BLK_OK, [24] = 'm', 'e', 'm', ':'), FIELD },
	{ "create: an empty backing name", CREATE(BLK_OK, [16] = 8), FIELD },
	{ "create: a backing name without its NUL", CREATE(BLK_OK, [16] = 8, [24] = 'a', 'a', 'a', 'a', 'a', 'a',
	  'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
	  'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
	  'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'), FIELD },
	{ "create: a host path", CREATE(BLK_OK, [16] = 8, [24] = '/', 'e', 't', 'c', '/', 'p', 'a', 's', 's', 'w',
	  'd'), FIELD },
	{ "create: a hidden name", CREATE(BLK_OK, [16] = 8, [24] = '.', '.'), FIELD },
	{ "create: a file without a backing directory", CREATE(BLK_OK, [16] = 8, [24] = 'x'),
	  VHU_ADMIN_STATUS_ENXIO, VHU_ADMIN_Q_INVALID_FIELD },
	{ "create: mem: beyond the memory limit", CREATE(BLK_OK, [16] = 0, 0, 0, 1, [24] = 'm', 'e', 'm', ':'),
	  VHU_ADMIN_STATUS_ENOSPC, VHU_ADMIN_Q_NORESOURCE },
	{ "create: a capacity that overflows in bytes", CREATE(BLK_OK, [16] = 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, [24] = 'm', 'e', 'm', ':'), FIELD },
	{ "backing list: the reserved word", MANAGED, VHU_ADMIN_CMD_BACKING_LIST, 0, { 0, 0, 0, 0, 1 }, 8, FIELD },
	{ "list use: an opcode not supported", MANAGED, VHU_ADMIN_CMD_LIST_USE, 0, { [7] = 0x80 }, 8, FIELD },
	{ "status: DEVICE_MMU_FAIL from the driver", MANAGED, VHU_ADMIN_CMD_STATUS_SET, ~0ull, { 0x2f }, 8, FIELD },
	{ "mmu: map outside the management device's memory", MANAGED, VHU_ADMIN_CMD_MMU_MAP, ~0ull,
	  { 0, 0, 0, 0, 3, [16] = 0, 0x10, [31] = 0x10 }, 32, FIELD },
};

static void hostile_commands_keep_the_device(void **state)
{
	(void)state;
	struct session s;
	struct mq m;
	uint64_t id = member_up(&s, &m, 2048);
	struct vhu_admin_caps before, after;
	assert_int_equal(vhu_admin_caps_get(s.ad, &before), 0);
	for (size_t i = 0; i < sizeof(hostile_commands) / sizeof(hostile_commands[0]); i++) {
		const struct hostile *h = &hostile_commands[i];
		struct vhu_admin_answer a;
		uint8_t res[64];
		int rc = vhu_admin_command(s.ad, h->group, h->opcode, h->member == ~0ull ? id : h->member, h->data,
					   h->len, res, sizeof(res), &a);
		if (rc < 0)
			fail_msg("%s: %s", h->what, strerror(-rc));
		if (a.status != h->status || a.qualifier != h->qualifier || a.result_len)
			fail_msg("%s: status %u qualifier %u, %u result bytes", h->what, a.status, a.qualifier,
				 a.result_len);
		works(&s, &m, (unsigned)i + 1);   /* the running member still serves */
	}
	assert_int_equal(vhu_admin_caps_get(s.ad, &after), 0);
	assert_int_equal(after.members, before.members);   /* no create took effect */
	/* LIST_USE without MGMT_CAPS_GET: it is refused from then on, until used again */
	uint64_t use[VHU_ADMIN_OPCODE_WORDS] = { 0 }, query[VHU_ADMIN_OPCODE_WORDS];
	struct vhu_admin_answer a;
	assert_int_equal(vhu_admin_command(s.ad, MANAGED, VHU_ADMIN_CMD_LIST_QUERY, 0, NULL, 0, query, sizeof(query), &a), 0);
	assert_int_equal(a.result_len, sizeof(query));
	assert_true(vhu_admin_list_has(query, VHU_ADMIN_OPCODE_WORDS, VHU_ADMIN_CMD_MMU_MAP));
	memcpy(use, query, sizeof(use));
	use[VHU_ADMIN_CMD_MGMT_CAPS_GET / 64] &= ~(1ull << (VHU_ADMIN_CMD_MGMT_CAPS_GET % 64));
	assert_int_equal(vhu_admin_command(s.ad, MANAGED, VHU_ADMIN_CMD_LIST_USE, 0, use, sizeof(use), NULL, 0, &a), 0);
	assert_int_equal(a.status, 0);
	assert_int_equal(vhu_admin_caps_get(s.ad, &after), -EINVAL);
	assert_int_equal(vhu_admin_qualifier(s.ad), VHU_ADMIN_Q_INVALID_OPCODE);
	assert_int_equal(vhu_admin_command(s.ad, MANAGED, VHU_ADMIN_CMD_LIST_USE, 0, query, sizeof(query), NULL, 0, &a), 0);
	assert_int_equal(vhu_admin_caps_get(s.ad, &after), 0);
	works(&s, &m, 99);
	mq_stop(&m);
	assert_int_equal(vhu_admin_dev_destroy(s.ad, id), 0);
	session_close(&s);
}

/* ---- the command buffer's layout ------------------------------------------------------ */

/* One buffer of out readable then in writable segments on the admin queue,
 * beside the driver (no command of its is in flight); the used length. */
static uint32_t raw(struct session *s, const struct vhu_sg *sg, unsigned out, unsigned in)
{
	struct vhu_fe_queue *aq = vhu_fe_queue(s->fe, 0);
	void *tok;
	uint32_t used;
	assert_int_equal(vhu_drv_vq_add(vhu_fe_queue_vq(aq), sg, out, in, s), 0);
	assert_int_equal(vhu_fe_queue_kick(aq), 0);
	for (int i = 0; i < 100; i++) {
		if (vhu_drv_vq_get(vhu_fe_queue_vq(aq), &tok, &used) == 1)
			return used;
		vhu_fe_queue_wait(aq, 100);
	}
	fail_msg("the admin queue did not answer");
	return 0;
}

static void command_layouts(void **state)
{
	(void)state;
	struct session s;
	session_open(&s);
	uint64_t a;
	uint8_t *m = vhu_fe_alloc(s.fe, 4096, 64, &a);
	assert_non_null(m);
	/* MGMT_CAPS_GET in the managed group */
	const uint8_t caps[24] = { 0x00, 0x04, 0x00, 0x80 };
	memcpy(m, caps, 24);
	memset(m + 1024, 0xee, 64);
	/* no writable part: nothing to answer in */
	struct vhu_sg only_read = { a, 24 };
	assert_int_equal(raw(&s, &only_read, 1, 0), 0);
	/* no readable part (the parts swapped: all of it writable): INVALID_COMMAND */
	struct vhu_sg only_write = { a + 1024, 40 };
	assert_int_equal(raw(&s, &only_write, 0, 1), 8);
	assert_int_equal(vhu_admin_le16(m + 1024), VHU_ADMIN_STATUS_EINVAL);
	assert_int_equal(vhu_admin_le16(m + 1026), VHU_ADMIN_Q_INVALID_COMMAND);
	memset(m + 1024, 0xee, 64);
	/* a writable part too short for the status */
	struct vhu_sg short_status[2] = { { a, 24 }, { a + 1024, 4 } };
	assert_int_equal(raw(&s, short_status, 1, 1), 0);
	assert_int_equal(m[1024], 0xee);   /* untouched */
	/* room for the status and part of the result: the rest is dropped */
	struct vhu_sg part[2] = { { a, 24 }, { a + 1024, 12 } };
	assert_int_equal(raw(&s, part, 1, 1), 12);
	assert_int_equal(vhu_admin_le16(m + 1024), VHU_ADMIN_STATUS_OK);
	assert_int_equal(vhu_admin_le32(m + 1032), 4);   /* device_types: blk */
	assert_int_equal(m[1036], 0xee);
	/* a header of 4 bytes: zero-extended, so group self; LIST_QUERY is answered */
	struct vhu_sg short_hdr[2] = { { a + 2048, 4 }, { a + 1024, 8 + 8 * VHU_ADMIN_OPCODE_WORDS } };
	memset(m + 2048, 0, 4);
	assert_int_equal(raw(&s, short_hdr, 1, 1), 8 + 8 * VHU_ADMIN_OPCODE_WORDS);
	assert_int_equal(vhu_admin_le16(m + 1024), VHU_ADMIN_STATUS_OK);
	assert_int_equal(vhu_admin_le64(m + 1032), 3);   /* self: LIST_QUERY and LIST_USE */
	/* reserved1 set: INVALID_FIELD */
	memcpy(m + 2048, caps, 24);
	m[2048 + 9] = 1;
	struct vhu_sg reserved[2] = { { a + 2048, 24 }, { a + 1024, 40 } };
	assert_int_equal(raw(&s, reserved, 1, 1), 8);
	assert_int_equal(vhu_admin_le16(m + 1024), VHU_ADMIN_STATUS_EINVAL);
	assert_int_equal(vhu_admin_le16(m + 1026), VHU_ADMIN_Q_INVALID_FIELD);
	/* the readable and writable parts on the same bytes: the command is
	 * read whole before the answer is written */
	memcpy(m + 3072, caps, 24);
	struct vhu_sg same[2] = { { a + 3072, 24 }, { a + 3072, 40 } };
	assert_int_equal(raw(&s, same, 1, 1), 40);
	assert_int_equal(vhu_admin_le16(m + 3072), VHU_ADMIN_STATUS_OK);
	assert_int_equal(vhu_admin_le32(m + 3080), 4);
	/* a buffer outside memory: returned unused, the queue goes on */
	struct vhu_sg outside[2] = { { 1ull << 50, 24 }, { a + 1024, 40 } };
	assert_int_equal(raw(&s, outside, 1, 1), 0);
	struct vhu_admin_caps c;
	assert_int_equal(vhu_admin_caps_get(s.ad, &c), 0);
	session_close(&s);
}

/* ---- requests in flight across a destroy and a reset ---------------------------------- */

/* n writes of one block each, block i filled with i + 1 at sector 8 i, all
 * in flight at once. */
static unsigned submit_many(struct mq *m, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t a;
		uint8_t *p = vhu_admin_dev_alloc(m->dev, 4096, 4096, &a);
		assert_non_null(p);
		memset(p, (int)(i + 1), 4096);
		struct vhu_sg sg = { a, 4096 };
		assert_int_equal(vhu_blk_submit(m->q, VHU_BLK_T_OUT, 8ull * i, &sg, 1, (void *)(uintptr_t)(i + 1)), 0);
	}
	assert_int_equal(vhu_blk_kick(m->q), 0);
	return n;
}

/* The requests the device used: each must carry an OK status (a request
 * it took is answered whole, never dropped half done); their numbers set in
 * acked. */
static unsigned acknowledged(struct mq *m, bool *acked)
{
	struct vhu_blk_completion c[64];
	unsigned n = 0;
	int k;
	while ((k = vhu_blk_complete(m->q, c, 64)) > 0) {
		for (int i = 0; i < k; i++) {
			assert_int_equal(c[i].status, VHU_BLK_S_OK);
			acked[(uintptr_t)c[i].user - 1] = true;
		}
		n += (unsigned)k;
	}
	return n;
}

/* A reset (STATUS_SET 0) and a destroy with writes in flight: they complete
 * only when every request the member had taken is answered in its ring
 * (4.2, 4.3); requests it never took stay the driver's. Every write
 * acknowledged is on the disk afterwards. */
static void destroy_and_reset_complete_requests(void **state)
{
	(void)state;
	struct session s;
	struct mq m;
	uint64_t id = member_up(&s, &m, 4096);
	bool acked[20] = { false };
	unsigned n = submit_many(&m, 20);
	uint8_t zero[8] = { 0 };
	struct vhu_admin_answer a;
	assert_int_equal(vhu_admin_command(s.ad, MANAGED, VHU_ADMIN_CMD_STATUS_SET, id, zero, 8, NULL, 0, &a), 0);
	assert_int_equal(a.status, 0);
	unsigned done = acknowledged(&m, acked);
	assert_true(done <= n);
	uint8_t st = 0xff;
	assert_int_equal(vhu_admin_status_get(s.ad, id, &st), 0);
	assert_int_equal(st, 0);
	mq_stop(&m);
	print_message("# %u of %u writes answered when the reset completed\n", done, n);
	/* the acknowledged writes are on the disk */
	mq_start(&s, id, false, &m);
	uint64_t addr;
	uint8_t *buf = vhu_admin_dev_alloc(m.dev, 4096, 4096, &addr);
	for (unsigned i = 0; i < n; i++) {
		if (!acked[i])
			continue;
		assert_int_equal(io(&m, VHU_BLK_T_IN, 8ull * i, addr, 4096), VHU_BLK_S_OK);
		if (buf[0] != i + 1 || buf[4095] != i + 1)
			fail_msg("write %u was acknowledged but the disk holds %u", i, buf[0]);
	}
	/* DEV_DESTROY with requests in flight: what was taken is answered */
	memset(acked, 0, sizeof(acked));
	n = submit_many(&m, 20);
	assert_int_equal(vhu_admin_dev_destroy(s.ad, id), 0);
	assert_true(acknowledged(&m, acked) <= n);
	/* the id names nothing now, and never will again */
	assert_int_equal(vhu_admin_status_get(s.ad, id, &st), -EINVAL);
	assert_int_equal(vhu_admin_qualifier(s.ad), VHU_ADMIN_Q_INVALID_MEMBER);
	assert_true(create_mem(&s, 8, 1) > id);
	vhu_blk_queue_free(m.q);
	/* the driver's side of the destroyed member (its reset is refused) */
	vhu_admin_dev_stop(m.dev);
	session_close(&s);
}

/* The driver's session ends without a word (a crash): the members are
 * reset, not lost; the next session finds them and drives them. */
static void session_end_resets_members(void **state)
{
	(void)state;
	struct session s;
	struct mq m;
	uint64_t id = member_up(&s, &m, 4096);
	works(&s, &m, 7);
	submit_many(&m, 16);
	vhu_blk_queue_free(m.q);
	vhu_admin_driver_free(s.ad);
	vhu_fe_close(s.fe);   /* no GET_VRING_BASE, no reset: the socket closes */
	session_open(&s);
	uint8_t st = 0xff;
	assert_int_equal(vhu_admin_status_get(s.ad, id, &st), 0);
	assert_int_equal(st, 0);
	struct mq m2;
	mq_start(&s, id, false, &m2);
	works(&s, &m2, 8);
	mq_stop(&m2);
	assert_int_equal(vhu_admin_dev_destroy(s.ad, id), 0);
	session_close(&s);
}

/* The management device's memory table sent again while members have
 * requests in flight: the back-end maps the memory anew, and its memory
 * hook pauses every member first (their requests finished) and maps their
 * rings again after, so nothing touches the old mapping and every write
 * lands. Ten times, with a member with its MMU on beside one without. */
static void memory_table_changes_under_members(void **state)
{
	(void)state;
	struct session s;
	struct mq a, b;
	session_open(&s);
	uint64_t ida = create_mem(&s, 4096, 1), idb = create_mem(&s, 4096, 1);
	mq_start(&s, ida, false, &a);
	mq_start(&s, idb, true, &b);
	/* ten rounds: each maps 20 more buffers for b, whose MMU holds 256 */
	for (unsigned round = 0; round < 10; round++) {
		bool acked[20] = { false };
		submit_many(&a, 20);
		submit_many(&b, 20);
		assert_int_equal(vhu_fe_resend_memory(s.fe), 0);
		unsigned got = 0;
		for (int tries = 0; tries < 100 && got < 40; tries++) {
			got += acknowledged(&a, acked) + acknowledged(&b, acked);
			if (got < 40)
				vhu_blk_wait(a.q, 20);
		}
		assert_int_equal(got, 40);
	}
	works(&s, &a, 5);
	works(&s, &b, 6);
	mq_stop(&a);
	mq_stop(&b);
	assert_int_equal(vhu_admin_dev_destroy(s.ad, ida), 0);
	assert_int_equal(vhu_admin_dev_destroy(s.ad, idb), 0);
	session_close(&s);
}

/* ---- the device MMU: isolation between members ---------------------------------------- */

static void member_cannot_reach_anothers_memory(void **state)
{
	(void)state;
	struct session s;
	struct mq a, b;
	session_open(&s);
	uint64_t ida = create_mem(&s, 2048, 1), idb = create_mem(&s, 2048, 1);
	mq_start(&s, ida, true, &a);
	mq_start(&s, idb, true, &b);
	works(&s, &a, 1);
	works(&s, &b, 2);
	uint64_t aaddr, baddr;
	uint8_t *abuf = vhu_admin_dev_alloc(a.dev, 4096, 4096, &aaddr);
	uint8_t *bbuf = vhu_admin_dev_alloc(b.dev, 4096, 4096, &baddr);
	assert_non_null(abuf);
	assert_non_null(bbuf);
	/* A's disk holds 0x11 at sector 64 */
	memset(abuf, 0x11, 4096);
	assert_int_equal(io(&a, VHU_BLK_T_OUT, 64, aaddr, 4096), VHU_BLK_S_OK);
	/* A reading its disk into B's buffer: refused, B's bytes untouched */
	memset(bbuf, 0x22, 4096);
	assert_int_not_equal(io(&a, VHU_BLK_T_IN, 64, baddr, 4096), VHU_BLK_S_OK);
	for (unsigned i = 0; i < 4096; i++)
		if (bbuf[i] != 0x22)
			fail_msg("member A wrote B's memory at byte %u", i);
	struct vhu_admin_mmu_err e;
	assert_int_equal(vhu_admin_mmu_error(s.ad, ida, &e), 0);
	assert_int_equal(e.reason, 1);
	assert_true(e.iova == baddr);
	assert_int_equal(e.flags, VHU_ADMIN_MMU_WRITE);
	/* A writing its disk from B's buffer: refused, A's disk unchanged */
	assert_int_not_equal(io(&a, VHU_BLK_T_OUT, 64, baddr, 4096), VHU_BLK_S_OK);
	memset(abuf, 0, 4096);
	assert_int_equal(io(&a, VHU_BLK_T_IN, 64, aaddr, 4096), VHU_BLK_S_OK);
	assert_int_equal(abuf[0], 0x11);
	assert_int_equal(abuf[4095], 0x11);
	assert_int_equal(vhu_admin_mmu_error(s.ad, ida, &e), 0);
	assert_int_equal(e.flags, VHU_ADMIN_MMU_READ);
	/* B uses its own buffer as ever */
	assert_int_equal(io(&b, VHU_BLK_T_IN, 64, baddr, 4096), VHU_BLK_S_OK);
	/* an address space of A's cannot name B's memory by mapping it: a map
	 * is A's own, but what it maps must be the management device's memory,
	 * and B's pages are that; the isolation is that B's driver decides B's
	 * mappings only. Unmapping a buffer A uses ends A's access to it. */
	assert_int_equal(vhu_admin_mmu_unmap(s.ad, ida, 0, aaddr, 4096), 0);
	assert_int_not_equal(io(&a, VHU_BLK_T_IN, 64, aaddr, 4096), VHU_BLK_S_OK);
	works(&s, &b, 3);
	mq_stop(&a);
	mq_stop(&b);
	assert_int_equal(vhu_admin_dev_destroy(s.ad, ida), 0);
	assert_int_equal(vhu_admin_dev_destroy(s.ad, idb), 0);
	session_close(&s);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_mgmt PATH-TO-vhu-mgmt\n");
		return 2;
	}
	mgmt_path = argv[1];
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostile_commands_keep_the_device),
		cmocka_unit_test(command_layouts),
		cmocka_unit_test(destroy_and_reset_complete_requests),
		cmocka_unit_test(session_end_resets_members),
		cmocka_unit_test(member_cannot_reach_anothers_memory),
		cmocka_unit_test(memory_table_changes_under_members),
	};
	return cmocka_run_group_tests(tests, daemon_up, daemon_down);
}
