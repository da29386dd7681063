/* SPDX-License-Identifier: MIT */
/* vhu's side of the admin transport: `vhu admin`, and managed devices for
 * probe, verify and bench (--member=ID). */
#ifndef VHU_TOOLS_ADMIN_H
#define VHU_TOOLS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhu/admin_driver.h"
#include "vhu/blk_driver.h"

/* `vhu admin SOCK ...`: argv[0] is "admin". Exit status. */
int vhu_admin_main(int argc, char **argv);

/* A management device's front-end and admin driver, mem bytes of memory
 * for what the caller allocates beside the rings. 0, or -1 after a message. */
struct admin_session {
	struct vhu_fe *fe;
	struct vhu_admin_driver *ad;
};
int admin_session_open(struct admin_session *s, const char *sock, bool server, unsigned verbose, size_t mem);
void admin_session_close(struct admin_session *s);

/* A managed block device started over a session, with a vhu_blk_queue on
 * each of its queues. 0, or -1 after a message. */
struct admin_member {
	struct vhu_admin_dev *dev;
	struct member_queue_ref {
		struct vhu_admin_dev *dev;
		unsigned index;
	} *ref;
};
int admin_member_open(struct admin_session *s, uint64_t id, const struct vhu_admin_dev_setup *setup,
		      struct admin_member *m, struct vhu_blk_info *info, struct vhu_blk_queue **queues);
void admin_member_close(struct admin_member *m, struct vhu_blk_queue **queues, unsigned n);

#endif
