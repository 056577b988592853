/* SPDX-License-Identifier: MIT */
/*
 * gmem.c - guest memory table: immutable, reference-counted snapshots of
 * sorted regions, each backed by a reference-counted mmap of a frontend fd
 * that several snapshots share. Translates GPAs and frontend virtual
 * addresses to host pointers with bounds checks. No ring, socket or
 * thread knowledge here.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/fs.h>

#include "common/compiler.h"
#include "gmem/gmem.h"

/* One mmap of a frontend fd; shared by every snapshot holding the region. */
struct gmem_map {
	atomic_uint refcnt;
	void *addr;       /* what mmap returned (page aligned) */
	size_t len;       /* what was mapped */
	int slot;         /* gmem_guard_watch slot, -1: not watched */
};

/*
 * One region. In a memory table d.gpa is the guest physical address; in an
 * IOTLB view (gmem_view_create) d.gpa is the I/O virtual address (the key
 * every lookup uses) and @phys the guest physical address behind it.
 */
struct gmem_reg {
	struct gmem_region_desc d;
	uint64_t gpa_last;    /* d.gpa + d.size - 1, no wrap (checked at add) */
	uint64_t uva_last;    /* d.uva + d.size - 1 */
	uint64_t phys;        /* guest physical address of d.gpa's byte */
	uint8_t *host;        /* host address of d.gpa */
	struct gmem_map *map;
	unsigned perm;        /* GMEM_PERM_*: always RW in a memory table */
};

struct gmem {
	atomic_uint refcnt;
	unsigned n;
	bool view;                                 /* keyed by IOVA, no uva index */
	uint8_t by_uva[GMEM_MAX_REGIONS];          /* reg indices sorted by uva (tables) */
	struct gmem_reg reg[];                     /* sorted by d.gpa */
};

static void gmem_map_put(struct gmem_map *mp)
{
	/* acq_rel: the last putter must see every other user's accesses done. */
	if (atomic_fetch_sub_explicit(&mp->refcnt, 1, memory_order_acq_rel) == 1) {
		gmem_guard_unwatch(mp->slot);
		munmap(mp->addr, mp->len);
		free(mp);
	}
}

static void gmem_map_get(struct gmem_map *mp)
{
	atomic_fetch_add_explicit(&mp->refcnt, 1, memory_order_relaxed);
}

static struct gmem *gmem_alloc_n(unsigned cap)
{
	struct gmem *m = calloc(1, sizeof(*m) + (size_t)cap * sizeof(m->reg[0]));

	if (m)
		atomic_init(&m->refcnt, 1);
	return m;
}

static struct gmem *gmem_alloc(void)
{
	return gmem_alloc_n(GMEM_MAX_REGIONS);
}

/* Rebuild the uva-sorted index (n <= 64: insertion sort is enough). */
static void gmem_sort_uva(struct gmem *m)
{
	unsigned i, j;

	for (i = 0; i < m->n; i++) {
		uint8_t k = (uint8_t)i;

		for (j = i; j > 0 && m->reg[m->by_uva[j - 1]].d.uva > m->reg[k].d.uva; j--)
			m->by_uva[j] = m->by_uva[j - 1];
		m->by_uva[j] = k;
	}
}

int gmem_create(struct gmem **out)
{
	struct gmem *m = gmem_alloc();

	if (!m)
		return -ENOMEM;
	*out = m;
	return 0;
}

static bool ranges_overlap(uint64_t a, uint64_t a_last, uint64_t b, uint64_t b_last)
{
	return a <= b_last && b <= a_last;
}

static int gmem_check_new(const struct gmem *old, const struct gmem_region_desc *d)
{
	uint64_t gpa_last, uva_last;
	unsigned i;

	if (d->size == 0)
		return -EINVAL;
	gpa_last = d->gpa + d->size - 1;
	uva_last = d->uva + d->size - 1;
	if (gpa_last < d->gpa || uva_last < d->uva)
		return -EINVAL;
	if (d->size > SIZE_MAX || d->mmap_offset > (uint64_t)INT64_MAX - d->size)
		return -EINVAL;
	if (!old)
		return 0;
	for (i = 0; i < old->n; i++) {
		const struct gmem_reg *r = &old->reg[i];

		if (ranges_overlap(d->gpa, gpa_last, r->d.gpa, r->gpa_last) ||
		    ranges_overlap(d->uva, uva_last, r->d.uva, r->uva_last))
			return -EINVAL;
	}
	if (old->n >= GMEM_MAX_REGIONS)
		return -ENOSPC;
	return 0;
}

/*
 * The region must lie inside the file: touching a mapping beyond the end of
 * its file raises SIGBUS, which a frontend must not be able to cause. For a
 * memfd that allows sealing, also forbid shrinking it from now on (QEMU's
 * memory-backend-memfd seals by default; this covers other frontends).
 * A regular file or memfd without seals (or a block device) could still
 * shrink later: gmem_add_guarded's guard turns that SIGBUS into an error.
 */
static int gmem_check_fd(int fd, const struct gmem_region_desc *d)
{
	struct stat st;
	int seals;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		uint64_t bytes;

		/* Pages past the end of a block device raise SIGBUS too. */
		if (ioctl(fd, BLKGETSIZE64, &bytes) < 0)
			return -errno;
		if (bytes < d->mmap_offset || bytes - d->mmap_offset < d->size)
			return -EINVAL;
	}
	if (S_ISREG(st.st_mode)) {
		if ((uint64_t)st.st_size < d->mmap_offset ||
		    (uint64_t)st.st_size - d->mmap_offset < d->size)
			return -EINVAL;
		seals = fcntl(fd, F_GET_SEALS);
		if (seals >= 0 && !(seals & (F_SEAL_SHRINK | F_SEAL_SEAL)))
			(void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
	}
	return 0;
}

int gmem_add(const struct gmem *old, const struct gmem_region_desc *d, int fd,
	     struct gmem **out)
{
	return gmem_add_guarded(old, d, fd, NULL, out);
}

int gmem_add_guarded(const struct gmem *old, const struct gmem_region_desc *d, int fd,
		     struct gmem_guard *guard, struct gmem **out)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t map_off, delta;
	struct gmem_map *mp;
	struct gmem *m;
	unsigned i, pos;
	void *addr;
	int ret;

	ret = gmem_check_new(old, d);
	if (ret)
		return ret;
	ret = gmem_check_fd(fd, d);
	if (ret)
		return ret;
	map_off = d->mmap_offset & ~(page - 1);
	delta = d->mmap_offset - map_off;
	if (d->size > SIZE_MAX - delta)
		return -EINVAL;

	mp = calloc(1, sizeof(*mp));
	if (!mp)
		return -ENOMEM;
	m = gmem_alloc();
	if (!m) {
		ret = -ENOMEM;
		goto err_free_map;
	}
	addr = mmap(NULL, (size_t)(d->size + delta), PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, (off_t)map_off);
	if (addr == MAP_FAILED) {
		ret = -errno;
		goto err_free_table;
	}
	atomic_init(&mp->refcnt, 1);
	mp->addr = addr;
	mp->len = (size_t)(d->size + delta);
	mp->slot = -1;
	if (guard) {
		mp->slot = gmem_guard_watch(guard, addr, mp->len);
		if (mp->slot < 0) {
			ret = mp->slot;
			munmap(addr, mp->len);
			goto err_free_table;
		}
	}

	/* Copy the old regions, sharing their mappings, and insert by gpa. */
	pos = 0;
	if (old) {
		for (i = 0; i < old->n; i++) {
			if (old->reg[i].d.gpa < d->gpa)
				pos = i + 1;
		}
		memcpy(m->reg, old->reg, pos * sizeof(m->reg[0]));
		memcpy(&m->reg[pos + 1], &old->reg[pos], (old->n - pos) * sizeof(m->reg[0]));
		m->n = old->n;
		for (i = 0; i < old->n; i++)
			gmem_map_get(old->reg[i].map);
	}
	m->reg[pos] = (struct gmem_reg){
		.d = *d,
		.gpa_last = d->gpa + d->size - 1,
		.uva_last = d->uva + d->size - 1,
		.phys = d->gpa,
		.host = (uint8_t *)addr + delta,
		.map = mp,
		.perm = GMEM_PERM_RW,
	};
	m->n++;
	gmem_sort_uva(m);
	*out = m;
	return 0;

err_free_table:
	free(m);
err_free_map:
	free(mp);
	return ret;
}

int gmem_remove(const struct gmem *old, const struct gmem_region_desc *d,
		struct gmem **out)
{
	struct gmem *m;
	unsigned i, j;

	for (i = 0; old && i < old->n; i++) {
		const struct gmem_region_desc *r = &old->reg[i].d;

		if (r->gpa == d->gpa && r->size == d->size && r->uva == d->uva)
			break;
	}
	if (!old || i == old->n)
		return -ENOENT;
	m = gmem_alloc();
	if (!m)
		return -ENOMEM;
	for (j = 0; j < old->n; j++) {
		if (j == i)
			continue;
		m->reg[m->n++] = old->reg[j];
		gmem_map_get(old->reg[j].map);
	}
	gmem_sort_uva(m);
	*out = m;
	return 0;
}

struct gmem *gmem_get(struct gmem *m)
{
	if (m)
		atomic_fetch_add_explicit(&m->refcnt, 1, memory_order_relaxed);
	return m;
}

void gmem_put(struct gmem *m)
{
	unsigned i;

	if (!m)
		return;
	/* acq_rel: pairs with other putters so the freeing thread sees their
	 * last uses of the table complete. */
	if (atomic_fetch_sub_explicit(&m->refcnt, 1, memory_order_acq_rel) != 1)
		return;
	for (i = 0; i < m->n; i++)
		gmem_map_put(m->reg[i].map);
	free(m);
}

unsigned gmem_nregions(const struct gmem *m)
{
	return m ? m->n : 0;
}

const struct gmem_region_desc *gmem_region(const struct gmem *m, unsigned i)
{
	if (!m || i >= m->n)
		return NULL;
	return &m->reg[i].d;
}

/* The region containing gpa, or NULL: binary search on the sorted table. */
static const struct gmem_reg *gmem_find(const struct gmem *m, uint64_t gpa)
{
	unsigned lo = 0, hi = m->n;

	/* Find the last region whose start is <= gpa. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (m->reg[mid].d.gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || gpa > m->reg[lo - 1].gpa_last)
		return NULL;
	return &m->reg[lo - 1];
}

static const struct gmem_reg *gmem_find_uva(const struct gmem *m, uint64_t uva)
{
	unsigned lo = 0, hi = m->n;
	const struct gmem_reg *r;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (m->reg[m->by_uva[mid]].d.uva <= uva)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	r = &m->reg[m->by_uva[lo - 1]];
	return uva <= r->uva_last ? r : NULL;
}

void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	const struct gmem_reg *r;
	uint64_t last;

	if (!m)
		return NULL;
	last = gpa + (len ? len : 1) - 1;
	if (last < gpa)
		return NULL;
	r = gmem_find(m, gpa);
	if (!r || last > r->gpa_last)
		return NULL;
	return r->host + (gpa - r->d.gpa);
}

void *gmem_uva_ptr(const struct gmem *m, uint64_t uva, uint64_t len)
{
	const struct gmem_reg *r;
	uint64_t last;

	if (!m || m->view)
		return NULL;
	last = uva + (len ? len : 1) - 1;
	if (last < uva)
		return NULL;
	r = gmem_find_uva(m, uva);
	if (!r || last > r->uva_last)
		return NULL;
	return r->host + (uva - r->d.uva);
}

/* The region containing @a, trying region *hint first (any region that
 * contains @a is the one: regions never overlap). Updates *hint on a hit. */
static const struct gmem_reg *gmem_find_hint(const struct gmem *m, uint64_t a,
					     unsigned *hint)
{
	const struct gmem_reg *r;

	if (hint && *hint < m->n) {
		r = &m->reg[*hint];
		if (a >= r->d.gpa && a <= r->gpa_last)
			return r;
	}
	r = gmem_find(m, a);
	if (r && hint)
		*hint = (unsigned)(r - m->reg);
	return r;
}

int gmem_map_iov_perm(const struct gmem *m, uint64_t addr, uint64_t len, unsigned perm,
		      struct iovec *iov, unsigned max, unsigned *hint, uint64_t *fault)
{
	const struct gmem_map *last_map = NULL;
	uint64_t cur = addr, left = len;
	unsigned n = 0;

	if (len == 0)
		return 0;
	if (fault)
		*fault = addr;
	if (!m || addr + (len - 1) < addr)
		return -EFAULT;
	while (left) {
		const struct gmem_reg *r = gmem_find_hint(m, cur, hint);
		uint64_t piece;

		if (fault)
			*fault = cur;
		if (!r)
			return -EFAULT;
		if ((r->perm & perm) != perm)
			return -EACCES;
		/* r->gpa_last - cur < 2^64 - 1, so +1 cannot wrap to 0 unless
		 * the region covers all of 2^64, which size cannot express. */
		piece = MIN(left, r->gpa_last - cur + 1);
		/* Pieces that continue in the same mapping share one iovec (an
		 * IOTLB splits a guest buffer into pages that are often
		 * adjacent). Only in views: a table's regions never merge. */
		if (n && m->view && r->map == last_map &&
		    (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len ==
			 r->host + (cur - r->d.gpa)) {
			iov[n - 1].iov_len += (size_t)piece;
		} else {
			if (n == max)
				return -ENOBUFS;
			iov[n].iov_base = r->host + (cur - r->d.gpa);
			iov[n].iov_len = (size_t)piece;
			n++;
		}
		last_map = r->map;
		left -= piece;
		cur += piece;
	}
	return (int)n;
}

int gmem_map_iov(const struct gmem *m, uint64_t gpa, uint64_t len,
		 struct iovec *iov, unsigned max)
{
	return gmem_map_iov_perm(m, gpa, len, 0, iov, max, NULL, NULL);
}

int gmem_ptr_perm(const struct gmem *m, uint64_t addr, uint64_t len, unsigned perm,
		  void **out, uint64_t *fault)
{
	struct iovec iov;
	int n = gmem_map_iov_perm(m, addr, len ? len : 1, perm, &iov, 1, NULL, fault);

	if (n == -ENOBUFS)
		return -ERANGE;
	if (n < 0)
		return n;
	*out = iov.iov_base;
	return 0;
}

bool gmem_is_view(const struct gmem *m)
{
	return m && m->view;
}

/* Append the pieces of one IOTLB entry that lie in @mem to @v. */
static void gmem_view_add(struct gmem *v, unsigned cap, const struct gmem *mem,
			  const struct gmem_view_entry *e)
{
	uint64_t off = 0;

	while (off < e->size && v->n < cap) {
		uint64_t uva = e->uva + off;
		const struct gmem_reg *r = gmem_find_uva(mem, uva);
		uint64_t piece;

		if (!r) {
			/* Not shared memory: skip to the next region that is
			 * (or to the end of the entry). */
			uint64_t next = e->size;

			for (unsigned i = 0; i < mem->n; i++) {
				const struct gmem_reg *q = &mem->reg[i];

				if (q->d.uva > uva && q->d.uva - e->uva < next)
					next = q->d.uva - e->uva;
			}
			off = next;
			continue;
		}
		piece = MIN(e->size - off, r->uva_last - uva + 1);
		v->reg[v->n] = (struct gmem_reg){
			.d = { .gpa = e->iova + off, .size = piece, .uva = uva },
			.gpa_last = e->iova + off + piece - 1,
			.uva_last = uva + piece - 1,
			.phys = r->d.gpa + (uva - r->d.uva),
			.host = r->host + (uva - r->d.uva),
			.map = r->map,
			.perm = e->perm,
		};
		gmem_map_get(r->map);
		v->n++;
		off += piece;
	}
}

int gmem_view_create(const struct gmem *mem, const struct gmem_view_entry *e, unsigned n,
		     struct gmem **out)
{
	unsigned cap = 0, i;
	struct gmem *v;

	for (i = 0; i < n; i++) {
		if (!e[i].size || e[i].iova + e[i].size - 1 < e[i].iova ||
		    e[i].uva + e[i].size - 1 < e[i].uva || (i && e[i].iova <= e[i - 1].iova +
							    e[i - 1].size - 1))
			return -EINVAL;
	}
	/* Each entry splits into at most one piece per region it crosses. */
	if (mem && n) {
		if ((size_t)n > (SIZE_MAX / sizeof(struct gmem_reg)) / (mem->n + 1u))
			return -ENOMEM;
		cap = n * (mem->n ? mem->n : 1);
	}
	v = gmem_alloc_n(cap);
	if (!v)
		return -ENOMEM;
	v->view = true;
	for (i = 0; mem && i < n; i++)
		gmem_view_add(v, cap, mem, &e[i]);
	*out = v;
	return 0;
}

int gmem_host_to_gpa(const struct gmem *m, const void *p, uint64_t len, uint64_t *gpa)
{
	uintptr_t a = (uintptr_t)p;

	if (!m)
		return -EFAULT;
	if (len == 0)
		len = 1;
	for (unsigned i = 0; i < m->n; i++) {
		const struct gmem_reg *r = &m->reg[i];
		uintptr_t base = (uintptr_t)r->host;

		if (a >= base && a - base < r->d.size && len <= r->d.size - (a - base)) {
			*gpa = r->phys + (a - base);
			return 0;
		}
		/* A view's iovec may run on into the next entry of the same
		 * mapping, where guest physical addresses continue. */
		if (m->view && a >= base && a - base < r->d.size) {
			uintptr_t end = (uintptr_t)r->map->addr + r->map->len;

			if (len <= end - a) {
				*gpa = r->phys + (a - base);
				return 0;
			}
		}
	}
	return -EFAULT;
}

int gmem_uva_to_gpa(const struct gmem *m, uint64_t uva, uint64_t len, uint64_t *gpa)
{
	const struct gmem_reg *r;
	uint64_t last;

	if (!m || m->view)
		return -EFAULT;
	last = uva + (len ? len : 1) - 1;
	if (last < uva)
		return -EFAULT;
	r = gmem_find_uva(m, uva);
	if (!r || last > r->uva_last)
		return -EFAULT;
	*gpa = r->d.gpa + (uva - r->d.uva);
	return 0;
}
