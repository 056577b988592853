/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/gmem/gmem_log.c: exactly the bits of the pages a
 * write touches are set (page and region boundaries, empty and wrapping
 * ranges), nothing is written outside the log, host-address marking
 * through a memory table, and the checks gmem_log_create makes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"
#include "gmem/gmem.h"
#include "gmem/gmem_log.h"

#define PAGE 4096u
#define LOG_BYTES 64u                 /* covers 512 pages = 2 MiB */
#define FILE_BYTES (2 * PAGE)         /* the log fd is bigger than the log */

static int log_fd(void)
{
	int fd = memfd_create("vblk-log-test", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, FILE_BYTES))
		tap_bail("memfd: %s", strerror(errno));
	return fd;
}

/* The whole fd as the frontend sees it. */
static void read_fd(int fd, uint8_t *buf)
{
	if (pread(fd, buf, FILE_BYTES, 0) != (ssize_t)FILE_BYTES)
		tap_bail("pread");
}

static void clear_fd(int fd)
{
	static const uint8_t zero[FILE_BYTES];

	if (pwrite(fd, zero, FILE_BYTES, 0) != (ssize_t)FILE_BYTES)
		tap_bail("pwrite");
}

/* Bits set in the log at @off are exactly pages [first, last]; nothing else in the fd. */
static bool exactly(int fd, uint64_t off, long first, long last)
{
	uint8_t buf[FILE_BYTES];
	bool good = true;

	read_fd(fd, buf);
	for (uint64_t byte = 0; byte < FILE_BYTES; byte++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			bool set = buf[byte] & (1u << bit);
			bool in_log = byte >= off && byte < off + LOG_BYTES;
			long page = in_log ? (long)((byte - off) * 8 + bit) : -1;
			bool want = in_log && page >= first && page <= last;

			if (set != want) {
				diag("fd byte %llu bit %u: %s", (unsigned long long)byte, bit,
				     set ? "set, not expected" : "not set");
				good = false;
			}
		}
	}
	return good;
}

static void test_mark_ranges(void)
{
	struct gmem_log *l;
	int fd = log_fd();

	is(gmem_log_create(fd, LOG_BYTES, 0, &l), 0, "log of %u bytes maps", LOG_BYTES);
	is(gmem_log_size(l), LOG_BYTES, "size reported");

	gmem_log_mark(l, 0, 1);
	ok(exactly(fd, 0, 0, 0), "one byte at 0: page 0 only");
	clear_fd(fd);
	gmem_log_mark(l, PAGE - 1, 2);
	ok(exactly(fd, 0, 0, 1), "two bytes across a page boundary: pages 0 and 1");
	clear_fd(fd);
	gmem_log_mark(l, 9 * PAGE, 3 * PAGE);
	ok(exactly(fd, 0, 9, 11), "three aligned pages: 9..11, not 12");
	clear_fd(fd);
	gmem_log_mark(l, 9 * PAGE + 1, 3 * PAGE);
	ok(exactly(fd, 0, 9, 12), "three pages shifted by a byte: 9..12");
	clear_fd(fd);
	gmem_log_mark(l, 5 * PAGE, 0);
	ok(exactly(fd, 0, 1, 0), "length 0 marks nothing");
	/* Bits 7 and 8: the byte boundary of the bitmap. */
	gmem_log_mark(l, 7 * PAGE + 100, PAGE);
	ok(exactly(fd, 0, 7, 8), "pages 7 and 8 straddle a bitmap byte");
	clear_fd(fd);
	/* The frontend may clear bits; we only set. */
	gmem_log_mark(l, 0, PAGE);
	gmem_log_mark(l, 0, PAGE);
	ok(exactly(fd, 0, 0, 0), "marking twice keeps one bit");
	clear_fd(fd);

	/* Beyond the log: nothing written past it, pages counted. */
	gmem_log_mark(l, (uint64_t)LOG_BYTES * 8 * PAGE - 1, 2);
	ok(exactly(fd, 0, LOG_BYTES * 8 - 1, LOG_BYTES * 8 - 1),
	   "a write across the log's end sets the last bit only");
	is(gmem_log_dropped(l), 1, "the page beyond is counted");
	clear_fd(fd);
	gmem_log_mark(l, 1ull << 40, PAGE);
	gmem_log_mark(l, UINT64_MAX - 10, 100);
	ok(exactly(fd, 0, 1, 0), "far and wrapping ranges write nothing");
	ok(gmem_log_dropped(l) > 2, "and are counted");

	ok(gmem_log_covers(l, 0, (uint64_t)LOG_BYTES * 8 * PAGE), "covers its 2 MiB");
	ok(!gmem_log_covers(l, 0, (uint64_t)LOG_BYTES * 8 * PAGE + 1), "not a byte more");
	ok(!gmem_log_covers(l, UINT64_MAX, 2), "a wrapping range is not covered");
	ok(gmem_log_covers(l, 12345, 0), "an empty range is");
	gmem_log_put(gmem_log_get(l));
	gmem_log_put(l);
	close(fd);
}

static void test_offset(void)
{
	struct gmem_log *l;
	int fd = log_fd();

	/* mmap wants page-aligned offsets; the log need not be. */
	is(gmem_log_create(fd, LOG_BYTES, 100, &l), 0, "log at a non-page-aligned offset");
	gmem_log_mark(l, 3 * PAGE, 1);
	ok(exactly(fd, 100, 3, 3), "its bits land at that offset");
	gmem_log_put(l);
	close(fd);
}

static void test_create_checks(void)
{
	struct gmem_log *l = NULL;
	int fd = log_fd();

	is(gmem_log_create(fd, 0, 0, &l), -EINVAL, "size 0 refused");
	is(gmem_log_create(fd, GMEM_LOG_MAX_SIZE + 1, 0, &l), -EINVAL, "huge size refused");
	is(gmem_log_create(fd, LOG_BYTES, UINT64_MAX - 8, &l), -EINVAL, "overflowing range refused");
	is(gmem_log_create(fd, FILE_BYTES + 1, 0, &l), -EFBIG, "log longer than the file refused");
	is(gmem_log_create(fd, LOG_BYTES, FILE_BYTES, &l), -EFBIG, "offset at the file's end refused");
	is(gmem_log_create(-1, LOG_BYTES, 0, &l), -EBADF, "no fd");
	ok(l == NULL, "nothing returned on failure");
	close(fd);
}

/* Two regions back to back in GPA space, from one fd at unrelated offsets. */
static void test_mark_host(void)
{
	int mfd = memfd_create("vblk-log-mem", MFD_CLOEXEC), fd = log_fd();
	struct gmem_region_desc r1 = { .gpa = 0x10000, .size = 0x8000, .uva = 0x7000000,
				       .mmap_offset = 0x20000 };
	struct gmem_region_desc r2 = { .gpa = 0x18000, .size = 0x8000, .uva = 0x5000000,
				       .mmap_offset = 0 };
	struct gmem *a, *m;
	struct gmem_log *l;
	struct iovec iov[4];
	uint64_t gpa;
	uint8_t local;
	int n;

	if (mfd < 0 || ftruncate(mfd, 0x40000))
		tap_bail("memfd");
	if (gmem_add(NULL, &r1, mfd, &a) || gmem_add(a, &r2, mfd, &m))
		tap_bail("gmem_add");
	gmem_put(a);
	is(gmem_log_create(fd, LOG_BYTES, 0, &l), 0, "log for the table");

	/* 0x17ff0 .. 0x18010: the last page of r1 and the first of r2. */
	n = gmem_map_iov(m, 0x17ff0, 0x20, iov, 4);
	is(n, 2, "a buffer across the region boundary is two iovecs");
	for (int i = 0; i < n; i++)
		is(gmem_log_mark_host(l, m, iov[i].iov_base, iov[i].iov_len), 0, "iovec %d marked", i);
	ok(exactly(fd, 0, 0x17, 0x18), "pages 0x17 and 0x18 exactly");
	clear_fd(fd);

	n = gmem_map_iov(m, 0x1a000 + 5, 3 * PAGE, iov, 4);
	is(n, 1, "three pages inside r2");
	gmem_log_mark_host(l, m, iov[0].iov_base, iov[0].iov_len);
	ok(exactly(fd, 0, 0x1a, 0x1d), "pages 0x1a..0x1d (unaligned start)");
	clear_fd(fd);

	is(gmem_log_mark_host(l, m, &local, 1), -EFAULT, "host memory outside the table refused");
	ok(exactly(fd, 0, 1, 0), "and marks nothing");
	n = gmem_map_iov(m, 0x17000, PAGE, iov, 4);
	is(gmem_log_mark_host(l, m, iov[0].iov_base, 2 * PAGE), -EFAULT,
	   "a host range running past its region refused");
	is(gmem_uva_to_gpa(m, 0x5000010, 16, &gpa), 0, "uva in r2 translates");
	is(gmem_host_to_gpa(m, iov[0].iov_base, PAGE, &gpa), 0, "host address translates");
	is(gpa, 0x17000, "back to its gpa");
	is(gmem_uva_to_gpa(m, 0x5008000, 1, &gpa), -EFAULT, "uva past r2 refused");
	gmem_log_put(l);
	gmem_put(m);
	close(mfd);
	close(fd);
}

int main(void)
{
	test_mark_ranges();
	test_offset();
	test_create_checks();
	test_mark_host();
	return tap_done();
}
