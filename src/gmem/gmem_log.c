/* SPDX-License-Identifier: MIT */
/*
 * gmem_log.c - dirty log of guest memory: a reference-counted mapping of
 * the frontend's bitmap and atomic bit setting with bounds checks. No
 * ring, socket or thread knowledge here.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/compiler.h"
#include "gmem/gmem_log.h"

struct gmem_log {
	atomic_uint refcnt;
	uint8_t *bits;        /* the log's first byte */
	uint64_t size;        /* bytes of log */
	uint64_t npages;      /* size * 8: pages with a bit */
	void *map;            /* what mmap returned */
	size_t map_len;
	atomic_uint_least64_t dropped;
};

int gmem_log_create(int fd, uint64_t size, uint64_t offset, struct gmem_log **out)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t page = pg > 0 ? (uint64_t)pg : 4096, delta;
	struct gmem_log *l;
	struct stat st;
	void *p;

	if (size == 0 || size > GMEM_LOG_MAX_SIZE || offset > (uint64_t)INT64_MAX - size)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	/* A file shorter than the range would SIGBUS on the first mark. */
	if (S_ISREG(st.st_mode) && offset + size > (uint64_t)st.st_size)
		return -EFBIG;
	delta = offset % page;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	p = mmap(NULL, (size_t)(size + delta), PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)(offset - delta));
	if (p == MAP_FAILED) {
		int ret = -errno;

		free(l);
		return ret;
	}
	atomic_init(&l->refcnt, 1);
	atomic_init(&l->dropped, 0);
	l->map = p;
	l->map_len = (size_t)(size + delta);
	l->bits = (uint8_t *)p + delta;
	l->size = size;
	l->npages = size * 8;
	*out = l;
	return 0;
}

struct gmem_log *gmem_log_get(struct gmem_log *l)
{
	if (l)
		atomic_fetch_add_explicit(&l->refcnt, 1, memory_order_relaxed);
	return l;
}

void gmem_log_put(struct gmem_log *l)
{
	if (!l)
		return;
	/* acq_rel: the last putter sees every other user's marks done. */
	if (atomic_fetch_sub_explicit(&l->refcnt, 1, memory_order_acq_rel) != 1)
		return;
	munmap(l->map, l->map_len);
	free(l);
}

uint64_t gmem_log_size(const struct gmem_log *l)
{
	return l->size;
}

bool gmem_log_covers(const struct gmem_log *l, uint64_t gpa, uint64_t len)
{
	uint64_t last;

	if (len == 0)
		return true;
	last = gpa + len - 1;
	if (last < gpa)
		return false;
	return (last >> GMEM_LOG_PAGE_SHIFT) < l->npages;
}

void gmem_log_mark(struct gmem_log *l, uint64_t gpa, uint64_t len)
{
	uint64_t page, last;

	if (len == 0)
		return;
	page = gpa >> GMEM_LOG_PAGE_SHIFT;
	last = gpa + len - 1 < gpa ? UINT64_MAX >> GMEM_LOG_PAGE_SHIFT
				   : (gpa + len - 1) >> GMEM_LOG_PAGE_SHIFT;
	for (; page <= last; page++) {
		if (unlikely(page >= l->npages)) {
			atomic_fetch_add_explicit(&l->dropped, last - page + 1,
						  memory_order_relaxed);
			return;
		}
		/* Release: the data is visible before the frontend can see
		 * the bit, clear it and copy the page. */
		__atomic_fetch_or(&l->bits[page / 8], (uint8_t)(1u << (page % 8)),
				  __ATOMIC_RELEASE);
	}
}

int gmem_log_mark_host(struct gmem_log *l, const struct gmem *mem, const void *p, size_t len)
{
	uint64_t gpa;

	if (gmem_host_to_gpa(mem, p, len, &gpa))
		return -EFAULT;
	gmem_log_mark(l, gpa, len);
	return 0;
}

uint64_t gmem_log_dropped(const struct gmem_log *l)
{
	return atomic_load_explicit(&((struct gmem_log *)l)->dropped, memory_order_relaxed);
}
