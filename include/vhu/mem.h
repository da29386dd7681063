/* SPDX-License-Identifier: MIT */
/*
 * Guest memory as a vhost-user back-end sees it: regions shared by the
 * front-end as fds, mapped here, each known by its guest address and by the
 * front-end's user address ("Memory access" in the vhost-user spec).
 */
#ifndef VHU_MEM_H
#define VHU_MEM_H

#include "vhu/visibility.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhu/vhost_user.h"

VHU_API_BEGIN

struct vhu_mem_region {
	uint64_t gpa, size, uaddr, mmap_offset;
	void *map;          /* mmap of [0, mmap_offset + size) of the fd */
	size_t map_len;
	unsigned char *host;  /* map + mmap_offset: guest address gpa */
	bool may_shrink;      /* the front-end can still truncate the file */
};

/* A table of up to VHU_USER_MAX_MEM_SLOTS regions, sorted by gpa. */
struct vhu_mem {
	struct vhu_mem_region *r;
	unsigned n;
};

void vhu_mem_init(struct vhu_mem *m);
/*
 * Map a region from fd (which is closed in every case: a mapping does not
 * need it). Refused: zero size, addresses that wrap, a region overlapping
 * another in guest or user space (-EEXIST), a table already full (-ENOSPC),
 * and an fd shorter than mmap_offset + size (-EINVAL), which would turn the
 * first access into SIGBUS.
 * A file shrunk later would do the same, so a memfd that allows sealing is
 * sealed here against shrinking (F_SEAL_SHRINK; QEMU's memfd backend seals
 * it so itself). Where that cannot be done (a plain file, a memfd without
 * MFD_ALLOW_SEALING) the region's may_shrink is set, for the caller to warn.
 */
int vhu_mem_add(struct vhu_mem *m, const struct vhu_user_mem_region *reg, int fd);
/* Unmap the region with exactly this guest address, user address and size
 * (REM_MEM_REG's rule; the mmap offset is ignored). -ENOENT if none. */
int vhu_mem_remove(struct vhu_mem *m, uint64_t gpa, uint64_t uaddr, uint64_t size);
/* Unmap everything. */
void vhu_mem_clear(struct vhu_mem *m);
/* Move all regions from src to dst (dst must be empty). */
void vhu_mem_move(struct vhu_mem *dst, struct vhu_mem *src);

/* The region holding guest address gpa, or NULL. */
const struct vhu_mem_region *vhu_mem_find(const struct vhu_mem *m, uint64_t gpa);
/* Guest address -> host pointer; *len is cut to what is contiguous in the
 * region. NULL if unmapped. Fits vhu_translate_fn (opaque = the table); a
 * ring translates through vhu_xlate_init_mem() instead, which caches. */
void *vhu_mem_translate(void *mem, uint64_t gpa, uint64_t *len, int access);
/* The region holding front-end user address uaddr, or NULL. */
const struct vhu_mem_region *vhu_mem_find_uaddr(const struct vhu_mem *m, uint64_t uaddr);
/* Front-end user address of [uaddr, uaddr + len) -> host pointer, only if
 * one region holds all of it (ring addresses). */
void *vhu_mem_uaddr(const struct vhu_mem *m, uint64_t uaddr, uint64_t len);

VHU_API_END

#endif
