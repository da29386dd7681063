/* SPDX-License-Identifier: MIT */
/* vhu-blk's exports: a device, its back-end and its socket each, many per process. */
#ifndef VHU_BLK_EXPORT_H
#define VHU_BLK_EXPORT_H

#include "blk_dev.h"
#include "vhu/backend.h"

struct blk_export {
	struct blk_dev d;
	const char *sock;
	int listen_fd;
	struct vhu_device *dev;
	struct vhu_backend *be;
	bool listening;             /* its listen fd is in the loop's set (no front-end attached) */
};

/* "socket=PATH,file=IMG[,num-queues=N,queue-size=N,read-only=on|off,serial=S,seg-max=N]"
 * over the defaults already in x->d. 0, or 2 after a message naming the key. */
int blk_export_parse(char *spec, struct blk_export *x);
/* Serve every export from this thread (control) and the poll group's
 * (queues) until stop_fd is readable. 0, or 1 after a message. */
int blk_exports_serve(struct blk_export *x, unsigned n, struct vhu_poll_group *pg, int stop_fd);

#endif
