/* SPDX-License-Identifier: MIT */
/* Guest memory regions: mapping, lookup, removal. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhu/mem.h"

void vhu_mem_init(struct vhu_mem *m)
{
	m->r = NULL;
	m->n = 0;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int vhu_mem_add(struct vhu_mem *m, const struct vhu_user_mem_region *reg, int fd)
{
	uint64_t size = reg->memory_size, off = reg->mmap_offset;
	struct stat st;
	int r = 0;

	if (size == 0 || reg->guest_phys_addr + size < reg->guest_phys_addr ||
	    reg->userspace_addr + size < reg->userspace_addr || off + size < off ||
	    off + size > (uint64_t)SIZE_MAX)
		r = -EINVAL;
	else if (m->n >= VHU_USER_MAX_MEM_SLOTS)
		r = -ENOSPC;
	for (unsigned i = 0; !r && i < m->n; i++)
		if (overlaps(reg->guest_phys_addr, size, m->r[i].gpa, m->r[i].size) ||
		    overlaps(reg->userspace_addr, size, m->r[i].uaddr, m->r[i].size))
			r = -EEXIST;
	/* Only a seal stops the front-end from truncating the file under our
	 * mapping later; a memfd that allows sealing gets F_SEAL_SHRINK. (Before
	 * the size check, so the size cannot change after it.) */
	int seals = r ? -1 : fcntl(fd, F_GET_SEALS);
	bool may_shrink = seals < 0 || (!(seals & F_SEAL_SHRINK) && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0);
	/* A mapping past the end of the file faults with SIGBUS on first
	 * touch: refuse it now. */
	if (!r && (fstat(fd, &st) < 0 || (S_ISREG(st.st_mode) && (uint64_t)st.st_size < off + size)))
		r = -EINVAL;
	if (r) {
		close(fd);
		return r;
	}
	void *map = mmap(NULL, off + size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	int e = errno;
	close(fd);
	if (map == MAP_FAILED)
		return -e;
	struct vhu_mem_region *nr = realloc(m->r, (m->n + 1) * sizeof(*nr));
	if (!nr) {
		munmap(map, off + size);
		return -ENOMEM;
	}
	m->r = nr;
	unsigned pos = 0;
	while (pos < m->n && m->r[pos].gpa < reg->guest_phys_addr)
		pos++;
	memmove(&m->r[pos + 1], &m->r[pos], (m->n - pos) * sizeof(*nr));
	m->r[pos] = (struct vhu_mem_region){
		.gpa = reg->guest_phys_addr, .size = size, .uaddr = reg->userspace_addr,
		.mmap_offset = off, .map = map, .map_len = off + size,
		.host = (unsigned char *)map + off, .may_shrink = may_shrink,
	};
	m->n++;
	return 0;
}

int vhu_mem_remove(struct vhu_mem *m, uint64_t gpa, uint64_t uaddr, uint64_t size)
{
	for (unsigned i = 0; i < m->n; i++) {
		struct vhu_mem_region *g = &m->r[i];
		if (g->gpa == gpa && g->uaddr == uaddr && g->size == size) {
			munmap(g->map, g->map_len);
			memmove(g, g + 1, (m->n - i - 1) * sizeof(*g));
			m->n--;
			return 0;
		}
	}
	return -ENOENT;
}

void vhu_mem_clear(struct vhu_mem *m)
{
	for (unsigned i = 0; i < m->n; i++)
		munmap(m->r[i].map, m->r[i].map_len);
	free(m->r);
	vhu_mem_init(m);
}

void vhu_mem_move(struct vhu_mem *dst, struct vhu_mem *src)
{
	*dst = *src;
	vhu_mem_init(src);
}

const struct vhu_mem_region *vhu_mem_find(const struct vhu_mem *m, uint64_t gpa)
{
	unsigned lo = 0, hi = m->n;

	/* sorted by gpa: the last region starting at or below gpa */
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (m->r[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || gpa - m->r[lo - 1].gpa >= m->r[lo - 1].size)
		return NULL;
	return &m->r[lo - 1];
}

void *vhu_mem_translate(void *mem, uint64_t gpa, uint64_t *len, int access)
{
	const struct vhu_mem_region *g = vhu_mem_find(mem, gpa);
	(void)access;

	if (!g)
		return NULL;
	uint64_t off = gpa - g->gpa;
	if (*len > g->size - off)
		*len = g->size - off;
	return g->host + off;
}

const struct vhu_mem_region *vhu_mem_find_uaddr(const struct vhu_mem *m, uint64_t uaddr)
{
	/* sorted by gpa, not by user address: a scan of at most
	 * VHU_USER_MAX_MEM_SLOTS, on a translator's miss only */
	for (unsigned i = 0; i < m->n; i++)
		if (uaddr - m->r[i].uaddr < m->r[i].size)
			return &m->r[i];
	return NULL;
}

void *vhu_mem_uaddr(const struct vhu_mem *m, uint64_t uaddr, uint64_t len)
{
	const struct vhu_mem_region *g = vhu_mem_find_uaddr(m, uaddr);
	uint64_t off = g ? uaddr - g->uaddr : 0;
	return g && len <= g->size - off ? g->host + off : NULL;
}
