/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the IOTLB (src/gmem/iotlb.c) and its views: lookups,
 * overlapping updates, invalidation of part of an entry (splits),
 * permissions, entries crossing memory regions or outside them, the
 * per-caller hint, eviction when full, and hostile sizes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"
#include "gmem/gmem.h"
#include "gmem/iotlb.h"

#define PAGE 4096u
#define UVA0 0x7f0000000000ull   /* frontend VA of region 0 */
#define UVA1 (UVA0 + 16 * PAGE)  /* region 1 continues it in frontend VA */

/* Two regions of 16 pages each, adjacent in frontend VA and GPA, from
 * one memfd whose bytes say their own fd offset / 256. */
static struct gmem *make_mem(void)
{
	struct gmem_region_desc d0 = { .gpa = 0, .size = 16 * PAGE, .uva = UVA0 };
	struct gmem_region_desc d1 = { .gpa = 16 * PAGE, .size = 16 * PAGE, .uva = UVA1,
				       .mmap_offset = 16 * PAGE };
	int fd = memfd_create("vblk-iotlb-test", MFD_CLOEXEC);
	struct gmem *a, *b;
	uint8_t buf[PAGE];

	if (fd < 0 || ftruncate(fd, 32 * PAGE))
		tap_bail("memfd");
	for (unsigned p = 0; p < 32; p++) {
		memset(buf, (int)p, sizeof(buf));
		if (pwrite(fd, buf, PAGE, (off_t)p * PAGE) != PAGE)
			tap_bail("pwrite");
	}
	if (gmem_add(NULL, &d0, fd, &a) || gmem_add(a, &d1, fd, &b))
		tap_bail("gmem_add");
	gmem_put(a);
	close(fd);
	return b;
}

/* Byte at host pointer p: which fd page it came from. */
static int page_of(const void *p)
{
	return p ? *(const uint8_t *)p : -1;
}

static struct gmem *view(struct iotlb *t, const struct gmem *mem)
{
	struct gmem *v;

	if (iotlb_view(t, mem, &v))
		tap_bail("iotlb_view");
	return v;
}

static void test_lookup_and_translate(const struct gmem *mem)
{
	struct iotlb *t;
	struct gmem *v;
	uint64_t fault = 0;
	void *p = NULL;

	iotlb_create(&t);
	/* IOVA 1 MiB -> page 3 of region 0, two pages, read-only. */
	is(iotlb_update(t, 0x100000, 2 * PAGE, UVA0 + 3 * PAGE, GMEM_PERM_READ), 0, "update");
	ok(iotlb_lookup(t, 0x100000) && iotlb_lookup(t, 0x100000 + 2 * PAGE - 1), "lookup inside");
	ok(!iotlb_lookup(t, 0x100000 + 2 * PAGE) && !iotlb_lookup(t, 0xfffff), "no lookup outside");
	v = view(t, mem);
	ok(gmem_is_view(v) && !gmem_is_view(mem), "a view is a view");
	is(page_of(gmem_ptr(v, 0x100000 + PAGE, 1)), 4, "IOVA translates to the right page");
	ok(!gmem_ptr(v, 0x3000, 1), "GPA is not an IOVA in the view");
	is(gmem_ptr_perm(v, 0x100000, 8, GMEM_PERM_READ, &p, &fault), 0, "readable");
	is(gmem_ptr_perm(v, 0x100000, 8, GMEM_PERM_WRITE, &p, &fault), -EACCES,
	   "not writable through a read-only entry");
	is(gmem_ptr_perm(v, 0x100000 + PAGE, 2 * PAGE, GMEM_PERM_READ, &p, &fault), -EFAULT,
	   "a range running past the entry misses");
	is(fault, 0x100000 + 2 * PAGE, "the miss names the first unmapped IOVA");
	{
		uint64_t gpa = 0;

		ok(!gmem_host_to_gpa(v, gmem_ptr(v, 0x100010, 1), 1, &gpa) &&
		   gpa == 3 * PAGE + 0x10, "host_to_gpa of a view gives the guest physical address");
	}
	gmem_put(v);
	iotlb_destroy(t);
}

static void test_overlap_and_split(const struct gmem *mem)
{
	struct iotlb *t;
	struct gmem *v;

	iotlb_create(&t);
	/* [0, 8 pages) -> pages 0..7 */
	iotlb_update(t, 0, 8 * PAGE, UVA0, GMEM_PERM_RW);
	/* overwrite pages 2..3 with pages 10..11 */
	is(iotlb_update(t, 2 * PAGE, 2 * PAGE, UVA0 + 10 * PAGE, GMEM_PERM_READ), 0,
	   "overlapping update");
	is(iotlb_count(t), 3u, "split into head, new, tail");
	v = view(t, mem);
	is(page_of(gmem_ptr(v, 1 * PAGE, 1)), 1, "head kept");
	is(page_of(gmem_ptr(v, 2 * PAGE, 1)), 10, "overlap replaced");
	is(page_of(gmem_ptr(v, 3 * PAGE, 1)), 11, "overlap replaced (2)");
	is(page_of(gmem_ptr(v, 4 * PAGE, 1)), 4, "tail kept with its offset");
	gmem_put(v);

	/* invalidate the middle of the tail: [5, 6) pages */
	is(iotlb_invalidate(t, 5 * PAGE, PAGE), 0, "partial invalidate");
	is(iotlb_count(t), 4u, "tail split in two");
	v = view(t, mem);
	ok(!gmem_ptr(v, 5 * PAGE, 1) && !gmem_ptr(v, 6 * PAGE - 1, 1), "hole gone");
	is(page_of(gmem_ptr(v, 6 * PAGE, 1)), 6, "after the hole kept");
	is(page_of(gmem_ptr(v, 5 * PAGE - 1, 1)), 4, "before the hole kept");
	gmem_put(v);

	/* invalidate crossing several entries' edges */
	is(iotlb_invalidate(t, PAGE + 1, 5 * PAGE), 0, "invalidate across entries");
	ok(iotlb_lookup(t, PAGE) && !iotlb_lookup(t, PAGE + 1) && !iotlb_lookup(t, 6 * PAGE) &&
	   iotlb_lookup(t, 6 * PAGE + 1), "edges exact to the byte");
	is(iotlb_invalidate(t, 0, UINT64_MAX), 0, "invalidate almost everything");
	ok(!iotlb_lookup(t, 7 * PAGE), "gone");

	/* a replacing update that covers several entries entirely */
	iotlb_clear(t);
	for (unsigned i = 0; i < 8; i++)
		iotlb_update(t, (uint64_t)i * PAGE, PAGE, UVA0 + (uint64_t)i * PAGE, GMEM_PERM_RW);
	iotlb_update(t, PAGE / 2, 7 * PAGE, UVA1, GMEM_PERM_WRITE);
	is(iotlb_count(t), 3u, "covered entries dropped, the first and last trimmed");
	iotlb_destroy(t);
}

static void test_views(const struct gmem *mem)
{
	struct iotlb *t;
	struct gmem *v, *m2;
	struct iovec iov[8];
	unsigned hint = 12345;
	uint64_t fault;
	void *p;
	int n;

	iotlb_create(&t);
	/* One entry crossing the boundary between regions 0 and 1. */
	iotlb_update(t, 0x40000000, 4 * PAGE, UVA0 + 14 * PAGE, GMEM_PERM_RW);
	/* Pages given one by one, adjacent in IOVA and memory. */
	for (unsigned i = 0; i < 4; i++)
		iotlb_update(t, 0x50000000 + (uint64_t)i * PAGE, PAGE, UVA0 + (4 + i) * PAGE,
			     GMEM_PERM_RW);
	v = view(t, mem);
	is(gmem_nregions(v), 6u, "the crossing entry is split at the region boundary");
	n = gmem_map_iov_perm(v, 0x40000000, 4 * PAGE, GMEM_PERM_WRITE, iov, 8, &hint, &fault);
	ok(n >= 1, "map across regions (%d iovecs)", n);
	is(page_of(iov[n - 1].iov_base), n == 1 ? 14 : 16, "second piece is region 1");
	n = gmem_map_iov_perm(v, 0x50000000 + 100, 4 * PAGE - 200, GMEM_PERM_READ, iov, 8,
			      &hint, &fault);
	is(n, 1, "adjacent page entries merge into one iovec");
	ok(n == 1 && iov[0].iov_len == 4 * PAGE - 200, "whole length");
	is(gmem_ptr_perm(v, 0x50000000, 4 * PAGE, GMEM_PERM_RW, &p, &fault), 0,
	   "a ring spanning page entries is one contiguous pointer");
	is(page_of(p), 4, "at the right place");
	is(gmem_map_iov_perm(v, 0x50000000, 5 * PAGE, GMEM_PERM_READ, iov, 8, &hint, &fault),
	   -EFAULT, "running past the last page misses");
	is(fault, 0x50000000 + 4 * PAGE, "at the first missing page");
	hint = 999;
	is(gmem_map_iov_perm(v, 0x50000000, 1, GMEM_PERM_READ, iov, 8, &hint, &fault), 1,
	   "a stale hint is harmless");
	ok(hint < gmem_nregions(v), "hint updated");
	gmem_put(v);

	/* Memory the frontend never shared: left out of the view. */
	iotlb_update(t, 0x60000000, 2 * PAGE, UVA0 + 31 * PAGE, GMEM_PERM_RW);
	iotlb_update(t, 0x70000000, PAGE, 0x1000, GMEM_PERM_RW);
	v = view(t, mem);
	ok(gmem_ptr(v, 0x60000000, 1) && !gmem_ptr(v, 0x60000000 + PAGE, 1),
	   "the part outside guest memory is not translated");
	ok(!gmem_ptr(v, 0x70000000, 1), "an entry wholly outside guest memory is not translated");
	gmem_put(v);

	/* The view holds the mappings: it outlives the table it came from. */
	{
		struct gmem_region_desc d = { .gpa = 0, .size = 16 * PAGE, .uva = UVA0 };

		is(gmem_remove(mem, &d, &m2), 0, "a new table without region 0");
		v = view(t, m2);
		ok(!gmem_ptr(v, 0x50000000, 1), "region 0 gone from a view of the new table");
		gmem_put(m2);
		is(page_of(gmem_ptr(v, 0x40000000 + 2 * PAGE, 1)), 16,
		   "region 1 still readable after the table was put");
		gmem_put(v);
	}
	iotlb_destroy(t);
}

static void test_hostile(const struct gmem *mem)
{
	struct iotlb *t;
	struct gmem *v;
	unsigned i;

	iotlb_create(&t);
	is(iotlb_update(t, 0x1000, 0, UVA0, GMEM_PERM_RW), -EINVAL, "zero size refused");
	is(iotlb_update(t, UINT64_MAX - 10, 100, UVA0, GMEM_PERM_RW), -EINVAL,
	   "IOVA wrap-around refused");
	is(iotlb_update(t, 0x1000, 100, UINT64_MAX - 10, GMEM_PERM_RW), -EINVAL,
	   "UVA wrap-around refused");
	is(iotlb_update(t, 0x1000, 100, UVA0, 0), -EINVAL, "no permission refused");
	is(iotlb_update(t, 0x1000, 100, UVA0, 7), -EINVAL, "unknown permission bits refused");
	is(iotlb_invalidate(t, 0x1000, 0), -EINVAL, "zero-size invalidate refused");
	is(iotlb_invalidate(t, UINT64_MAX, 2), -EINVAL, "wrapping invalidate refused");
	is(iotlb_update(t, 0, UINT64_MAX, UVA0, GMEM_PERM_RW), -EINVAL,
	   "a huge size wrapping the UVA refused");
	is(iotlb_update(t, 0, UINT64_MAX, 0, GMEM_PERM_RW), 0, "huge entry accepted");
	v = view(t, mem);
	is(gmem_nregions(v), 2u, "only shared memory enters the view");
	ok(gmem_ptr(v, UVA0, 1) && !gmem_ptr(v, 0, 1), "identity over shared memory only");
	gmem_put(v);
	is(iotlb_update(t, UINT64_MAX, 1, 5, GMEM_PERM_READ), 0, "the last byte alone");
	ok(iotlb_lookup(t, UINT64_MAX) && iotlb_lookup(t, UINT64_MAX - 1), "both sides present");
	iotlb_clear(t);

	/* A storm: more entries than fit, then invalidate every other one. */
	for (i = 0; i < IOTLB_MAX_ENTRIES + 100; i++)
		if (iotlb_update(t, (uint64_t)i * 2 * PAGE, PAGE, UVA0, GMEM_PERM_RW))
			break;
	is(i, IOTLB_MAX_ENTRIES + 100, "updates past the limit accepted");
	is(iotlb_count(t), IOTLB_MAX_ENTRIES, "table capped");
	ok(!iotlb_lookup(t, 0) && iotlb_lookup(t, (uint64_t)(IOTLB_MAX_ENTRIES + 99) * 2 * PAGE),
	   "the oldest were evicted, the newest kept");
	for (i = 0; i < IOTLB_MAX_ENTRIES + 100; i += 2)
		iotlb_invalidate(t, (uint64_t)i * 2 * PAGE, PAGE);
	is(iotlb_count(t), IOTLB_MAX_ENTRIES / 2, "half invalidated");
	for (i = 1; i < iotlb_count(t); i++)
		if (iotlb_entry(t, i)->iova <= iotlb_entry(t, i - 1)->iova)
			break;
	is(i, iotlb_count(t), "still sorted");
	v = view(t, mem);
	is(gmem_nregions(v), IOTLB_MAX_ENTRIES / 2, "a view of thousands of entries");
	ok(gmem_ptr(v, (uint64_t)(IOTLB_MAX_ENTRIES + 99) * 2 * PAGE, 1), "lookup in a big view");
	gmem_put(v);
	iotlb_destroy(t);

	{
		struct gmem_view_entry bad[2] = {
			{ .iova = 0, .size = 2 * PAGE, .uva = UVA0, .perm = 3 },
			{ .iova = PAGE, .size = PAGE, .uva = UVA0, .perm = 3 },
		};

		is(gmem_view_create(mem, bad, 2, &v), -EINVAL, "overlapping view entries refused");
	}
}

int main(void)
{
	struct gmem *mem = make_mem();

	test_lookup_and_translate(mem);
	test_overlap_and_split(mem);
	test_views(mem);
	test_hostile(mem);
	gmem_put(mem);
	return tap_done();
}
