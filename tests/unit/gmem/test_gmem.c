/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/gmem: region validation, sorted lookup, translation
 * across adjacent regions and holes, UVA lookup, and the lifetime of
 * shared mappings across snapshots (checked in /proc/self/maps).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"
#include "gmem/gmem.h"

#define PAGE 4096u
#define FD_PAGES 80u
#define MEMFD_NAME "vblk-gmem-test"

static int make_fd(void)
{
	int fd = memfd_create(MEMFD_NAME, MFD_CLOEXEC);
	uint8_t buf[PAGE];
	unsigned p, i;

	if (fd < 0 || ftruncate(fd, (off_t)FD_PAGES * PAGE))
		tap_bail("memfd: %s", strerror(errno));
	/* Byte at fd offset o holds (o / 7 + o / 4096) & 0xff: unique enough to
	 * tell pages and offsets apart. */
	for (p = 0; p < FD_PAGES; p++) {
		for (i = 0; i < PAGE; i++) {
			uint64_t o = (uint64_t)p * PAGE + i;

			buf[i] = (uint8_t)(o / 7 + o / 4096);
		}
		if (pwrite(fd, buf, PAGE, (off_t)p * PAGE) != PAGE)
			tap_bail("pwrite");
	}
	return fd;
}

static uint8_t pattern(uint64_t o)
{
	return (uint8_t)(o / 7 + o / 4096);
}

/* Mappings of our memfd currently in the address space. */
static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "memfd:" MEMFD_NAME))
			n++;
	fclose(f);
	return n;
}

static struct gmem_region_desc R(uint64_t gpa, uint64_t size, uint64_t uva, uint64_t off)
{
	return (struct gmem_region_desc){ .gpa = gpa, .size = size, .uva = uva, .mmap_offset = off };
}

/* Add to *m, replacing it (old snapshot put). Returns the error code. */
static int add_swap(struct gmem **m, struct gmem_region_desc d, int fd)
{
	struct gmem *n = NULL;
	int ret = gmem_add(*m, &d, fd, &n);

	if (ret == 0) {
		gmem_put(*m);
		*m = n;
	}
	return ret;
}

static void test_validation(int fd)
{
	struct gmem *m, *n = NULL;
	struct gmem_region_desc d;
	uint8_t *p;

	is(gmem_create(&m), 0, "create empty table");
	is(gmem_nregions(m), 0, "empty table has no regions");
	ok(gmem_ptr(m, 0, 1) == NULL, "empty table translates nothing");

	is(add_swap(&m, R(0x100000, 4 * PAGE, 0x7000000000, 0), fd), 0, "add first region");
	d = R(0x100000 + 8 * PAGE, 2 * PAGE, 0x7000100000, 10 * PAGE);
	is(add_swap(&m, d, fd), 0, "add second region");
	is(gmem_nregions(m), 2, "two regions");

	d = R(0x900000, 0, 0x7100000000, 0);
	is(gmem_add(m, &d, fd, &n), -EINVAL, "size 0 -> EINVAL");
	d = R(UINT64_MAX - PAGE + 1, 2 * PAGE, 0x7100000000, 0);
	is(gmem_add(m, &d, fd, &n), -EINVAL, "gpa + size overflow -> EINVAL");
	d = R(0x900000, 2 * PAGE, UINT64_MAX - PAGE, 0);
	is(gmem_add(m, &d, fd, &n), -EINVAL, "uva + size overflow -> EINVAL");
	d = R(0x100000 + 3 * PAGE, 2 * PAGE, 0x7100000000, 0);
	is(gmem_add(m, &d, fd, &n), -EINVAL, "gpa overlap (tail) -> EINVAL");
	d = R(0x0ff000, 0x20000, 0x7100000000, 0);
	is(gmem_add(m, &d, fd, &n), -EINVAL, "gpa overlap (covering) -> EINVAL");
	d = R(0x900000, 2 * PAGE, 0x7000000000 + PAGE, 0);
	is(gmem_add(m, &d, fd, &n), -EINVAL, "uva overlap -> EINVAL");
	d = R(0x900000, 2 * PAGE, 0x7100000000, 0);
	is(gmem_add(m, &d, -1, &n), -EBADF, "mmap failure -> -errno");
	is(gmem_nregions(m), 2, "failed adds leave the table alone");

	/* A region ending exactly at 2^64 is legal. */
	d = R(UINT64_MAX - PAGE + 1, PAGE, 0x7200000000, 0);
	is(add_swap(&m, d, fd), 0, "region ending at 2^64 is accepted");
	p = gmem_ptr(m, UINT64_MAX, 1);
	ok(p && *p == pattern(PAGE - 1), "last byte of the address space translates");
	ok(gmem_ptr(m, UINT64_MAX, 2) == NULL, "range wrapping past 2^64 -> NULL");
	is(gmem_map_iov(m, UINT64_MAX, 2, (struct iovec[2]){ 0 }, 2), -EFAULT,
	   "map_iov wrapping past 2^64 -> EFAULT");

	/* Unaligned mmap_offset: rounded down for mmap, pointer adjusted. */
	d = R(0x5000000, 1000, 0x7300000000, 3 * PAGE + 123);
	is(add_swap(&m, d, fd), 0, "unaligned mmap_offset accepted");
	p = gmem_ptr(m, 0x5000000, 1000);
	ok(p && p[0] == pattern(3 * PAGE + 123) && p[999] == pattern(3 * PAGE + 123 + 999),
	   "unaligned mmap_offset translates to the right bytes");
	ok(gmem_ptr(m, 0x5000000 + 999, 2) == NULL, "range past region end -> NULL");

	/* Sorted by gpa regardless of insertion order. */
	ok(gmem_region(m, 0)->gpa == 0x100000 && gmem_region(m, 1)->gpa == 0x100000 + 8 * PAGE &&
	   gmem_region(m, 2)->gpa == 0x5000000 && gmem_region(m, 3)->gpa == UINT64_MAX - PAGE + 1,
	   "regions sorted by gpa");
	ok(gmem_region(m, 4) == NULL, "gmem_region out of range -> NULL");

	d = R(0x100000, 4 * PAGE, 0x7000000001, 0);
	is(gmem_remove(m, &d, &n), -ENOENT, "remove needs an exact match (uva differs)");
	d = R(0x100000, 4 * PAGE, 0x7000000000, 0);
	is(gmem_remove(m, &d, &n), 0, "remove exact match");
	is(gmem_nregions(n), 3, "new snapshot has one region fewer");
	ok(gmem_ptr(n, 0x100000, 1) == NULL, "removed region no longer translates");
	ok(gmem_ptr(m, 0x100000, 1) != NULL, "old snapshot unchanged by remove");
	gmem_put(n);
	gmem_put(m);
	gmem_put(NULL);
}

static void test_full_table(int fd)
{
	struct gmem *m;
	struct gmem_region_desc d;
	unsigned i, good = 0;
	int ret = 0;

	gmem_create(&m);
	/* Insert in descending gpa order to exercise sorted insertion. */
	for (i = 0; i < GMEM_MAX_REGIONS; i++) {
		unsigned k = GMEM_MAX_REGIONS - 1 - i;

		ret = add_swap(&m, R(0x10000000 + (uint64_t)k * 2 * PAGE, PAGE,
				     0x7000000000 + (uint64_t)k * PAGE, (uint64_t)k * PAGE), fd);
		if (ret)
			break;
		good++;
	}
	ok(GMEM_MAX_REGIONS >= 32, "table holds at least 32 regions by design");
	is(good, GMEM_MAX_REGIONS, "GMEM_MAX_REGIONS regions can be added");
	d = R(0x90000000, PAGE, 0x7900000000, 0);
	{
		struct gmem *n = NULL;

		is(gmem_add(m, &d, fd, &n), -ENOSPC, "one more region -> ENOSPC");
	}
	for (i = 0, ret = 1; i < GMEM_MAX_REGIONS; i++) {
		uint64_t gpa = 0x10000000 + (uint64_t)i * 2 * PAGE + 17;
		uint8_t *p = gmem_ptr(m, gpa, 1);

		if (!p || *p != pattern((uint64_t)i * PAGE + 17) ||
		    gmem_ptr(m, gpa + PAGE, 1) != NULL)
			ret = 0;
		if (i && gmem_region(m, i - 1)->gpa >= gmem_region(m, i)->gpa)
			ret = 0;
	}
	ok(ret, "binary search finds every one of %u regions, gaps miss", GMEM_MAX_REGIONS);
	gmem_put(m);
}

static void test_translation(int fd)
{
	struct gmem *m;
	struct iovec iov[4];
	uint8_t *p, *q;
	int n;

	gmem_create(&m);
	/* Three adjacent GPA regions from non-adjacent fd pages:
	 * A [0x1000000, +2p) <- fd page 0; B [+2p, +1p) <- fd page 10;
	 * C [+3p, +2p) <- fd page 20. Then a hole, then D at +8p. */
	add_swap(&m, R(0x1000000, 2 * PAGE, 0x7000000000, 0), fd);
	add_swap(&m, R(0x1000000 + 2 * PAGE, PAGE, 0x7000010000, 10 * PAGE), fd);
	add_swap(&m, R(0x1000000 + 3 * PAGE, 2 * PAGE, 0x7000020000, 20 * PAGE), fd);
	add_swap(&m, R(0x1000000 + 8 * PAGE, PAGE, 0x7000030000, 30 * PAGE), fd);

	n = gmem_map_iov(m, 0x1000000 + 2 * PAGE - 100, 100 + PAGE + 50, iov, 4);
	is(n, 3, "range over A|B|C gives three iovecs");
	ok(n == 3 && iov[0].iov_len == 100 && iov[1].iov_len == PAGE && iov[2].iov_len == 50,
	   "iovec lengths split at region boundaries");
	ok(n == 3 && ((uint8_t *)iov[0].iov_base)[0] == pattern(2 * PAGE - 100) &&
	   ((uint8_t *)iov[1].iov_base)[0] == pattern(10 * PAGE) &&
	   ((uint8_t *)iov[1].iov_base)[PAGE - 1] == pattern(11 * PAGE - 1) &&
	   ((uint8_t *)iov[2].iov_base)[49] == pattern(20 * PAGE + 49),
	   "each piece points at the right fd bytes");
	is(gmem_map_iov(m, 0x1000000 + 2 * PAGE - 100, 100 + PAGE + 50, iov, 2), -ENOBUFS,
	   "too few iovec entries -> ENOBUFS");
	is(gmem_map_iov(m, 0x1000000 + 10, 0, iov, 4), 0, "len 0 -> no entries");
	is(gmem_map_iov(m, 0x1000000 + 5 * PAGE - 10, 20, iov, 4), -EFAULT,
	   "range running into a hole -> EFAULT");
	is(gmem_map_iov(m, 0x1000000 - 1, 2, iov, 4), -EFAULT, "range starting in a hole -> EFAULT");
	is(gmem_map_iov(m, 0x1000000 + 8 * PAGE + 1, PAGE, iov, 4), -EFAULT,
	   "range past the last region -> EFAULT");
	is(gmem_map_iov(m, 0x1000000 + 8 * PAGE, PAGE, iov, 4), 1, "whole last region, one iovec");
	ok(gmem_ptr(m, 0x1000000 + 2 * PAGE - 1, 2) == NULL,
	   "gmem_ptr refuses a range crossing regions");
	p = gmem_ptr(m, 0x1000000 + 2 * PAGE, PAGE);
	ok(p && *p == pattern(10 * PAGE), "gmem_ptr inside one region");
	p = gmem_ptr(m, 0x1000000 + 4 * PAGE + 5, 0);
	ok(p && *p == pattern(21 * PAGE + 5), "gmem_ptr len 0 treated as 1");

	/* UVA lookups: same bytes as the GPA view. */
	q = gmem_uva_ptr(m, 0x7000010000 + 5, 10);
	p = gmem_ptr(m, 0x1000000 + 2 * PAGE + 5, 10);
	ok(q && q == p, "uva and gpa of the same byte give the same host pointer");
	q = gmem_uva_ptr(m, 0x7000030000 + PAGE - 1, 1);
	ok(q && *q == pattern(31 * PAGE - 1), "uva translation of a region's last byte");
	ok(gmem_uva_ptr(m, 0x7000030000 + PAGE - 1, 2) == NULL, "uva range past region -> NULL");
	ok(gmem_uva_ptr(m, 0x7000000000 + 2 * PAGE, 1) == NULL, "uva in a hole -> NULL");
	ok(gmem_uva_ptr(m, 0x6fffffffff, 1) == NULL, "uva below every region -> NULL");
	gmem_put(m);
}

static void test_lifetime(int fd)
{
	struct gmem *m0, *m1 = NULL, *m2 = NULL, *m3 = NULL;
	struct gmem_region_desc a = R(0x2000000, PAGE, 0x7000000000, 40 * PAGE);
	struct gmem_region_desc b = R(0x3000000, PAGE, 0x7000100000, 41 * PAGE);
	uint8_t *p;
	int base = count_maps();

	is(base, 0, "no mappings of the test fd before the test");
	gmem_create(&m0);
	is(gmem_add(m0, &a, fd, &m1), 0, "m1 = m0 + A");
	is(gmem_add(m1, &b, fd, &m2), 0, "m2 = m1 + B (shares A's mapping)");
	is(count_maps(), 2, "A mapped once, B once");
	is(gmem_nregions(m1), 1, "m1 still has one region after m2 was built");
	gmem_put(m0);

	/* Drop the older snapshot: A must survive through m2. */
	gmem_put(m1);
	p = gmem_ptr(m2, 0x2000000 + 9, 1);
	ok(p && *p == pattern(40 * PAGE + 9), "A readable through m2 after m1 is put");
	is(count_maps(), 2, "A's mapping kept while m2 uses it");

	/* m3 = m2 - A; putting m2 (the only other user of A) unmaps A. */
	is(gmem_remove(m2, &a, &m3), 0, "m3 = m2 - A");
	p = gmem_ptr(m2, 0x2000000 + 9, 1);
	ok(p && *p == pattern(40 * PAGE + 9), "old snapshot m2 still reads A after m3 is built");
	gmem_get(m2);
	gmem_put(m2);
	ok(*p == pattern(40 * PAGE + 9), "extra get/put keeps m2 alive");
	/* Write through the old snapshot, read back through the fd. */
	*p = 0xa5;
	{
		uint8_t c = 0;

		ok(pread(fd, &c, 1, 40 * PAGE + 9) == 1 && c == 0xa5,
		   "writes through the mapping reach the shared fd");
		c = pattern(40 * PAGE + 9);
		pwrite(fd, &c, 1, 40 * PAGE + 9);
	}
	gmem_put(m2);
	is(count_maps(), 1, "A unmapped when its last snapshot is put");
	p = gmem_ptr(m3, 0x3000000 + 1, 1);
	ok(p && *p == pattern(41 * PAGE + 1), "B still readable through m3");
	gmem_put(m3);
	is(count_maps(), 0, "everything unmapped after the last put");
}

/* A region must lie inside its fd; a sealable memfd is sealed against
 * shrinking so that a mapped region cannot later raise SIGBUS. */
static void test_fd_bounds(int fd)
{
	struct gmem_region_desc d = { .gpa = 0, .size = PAGE, .uva = 0x1000000 };
	struct gmem *m = NULL;
	int sfd;

	d.mmap_offset = (uint64_t)FD_PAGES * PAGE;
	is(gmem_add(NULL, &d, fd, &m), -EINVAL, "region starting at the end of the fd is refused");
	d.mmap_offset = (uint64_t)(FD_PAGES - 1) * PAGE;
	d.size = 2 * PAGE;
	is(gmem_add(NULL, &d, fd, &m), -EINVAL, "region running past the end of the fd is refused");
	d.mmap_offset = UINT64_MAX - PAGE;
	d.size = PAGE;
	is(gmem_add(NULL, &d, fd, &m), -EINVAL, "offset near 2^64 is refused");

	sfd = memfd_create("vblk-gmem-seal", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (sfd < 0 || ftruncate(sfd, 4 * PAGE))
		tap_bail("memfd: %s", strerror(errno));
	d.mmap_offset = 0;
	d.size = 4 * PAGE;
	is(gmem_add(NULL, &d, sfd, &m), 0, "region inside a sealable memfd maps");
	ok(fcntl(sfd, F_GET_SEALS) & F_SEAL_SHRINK, "the memfd is now sealed against shrinking");
	ok(ftruncate(sfd, PAGE) < 0 && errno == EPERM, "so the frontend cannot shrink it under us");
	gmem_put(m);
	close(sfd);
}

int main(void)
{
	int fd = make_fd();

	test_fd_bounds(fd);
	test_validation(fd);
	test_full_table(fd);
	test_translation(fd);
	if (test_qemu_user())
		skip("snapshot lifetime: counted in /proc/self/maps, which qemu-user (%s) "
		     "emulates", test_qemu_user());
	else
		test_lifetime(fd);
	close(fd);
	return tap_done();
}
