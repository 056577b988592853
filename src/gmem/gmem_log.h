/* SPDX-License-Identifier: MIT */
/*
 * gmem_log.h - the dirty log of guest memory (vhost "log" for live
 * migration): a bitmap shared with the frontend, one bit per 4 KiB page of
 * guest physical address space, bit n in byte n / 8 (bit n % 8). The
 * device sets the bit of every page it writes, after the write; the
 * frontend reads and clears them while it copies memory. Bits are only
 * ever set, atomically; never cleared here.
 *
 * A struct gmem_log is one mapping of the frontend's log fd, reference
 * counted like a gmem snapshot: a new log replaces an old one in each
 * ring's context, and the old mapping goes away with its last reference.
 * Knows nothing about rings, sockets or threads.
 */
#ifndef VBLK_GMEM_LOG_H
#define VBLK_GMEM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "gmem/gmem.h"

#define GMEM_LOG_PAGE_SHIFT 12
#define GMEM_LOG_PAGE (1ull << GMEM_LOG_PAGE_SHIFT)
/* Largest log accepted: 1 GiB of bits covers 32 TiB of guest memory. */
#define GMEM_LOG_MAX_SIZE (1ull << 30)

struct gmem_log;

/*
 * gmem_log_create - map @size bytes of @fd at @offset as a dirty log.
 * The fd is not kept. -EINVAL for a zero or too large size or an
 * overflowing range; -EFBIG if the range reaches past the end of a
 * regular file or memfd (access would SIGBUS); -errno from fstat/mmap.
 * Context: any thread.
 */
int gmem_log_create(int fd, uint64_t size, uint64_t offset, struct gmem_log **out);

/* Reference counting; gmem_log_put(NULL) is a no-op. Thread-safe. */
struct gmem_log *gmem_log_get(struct gmem_log *l);
void gmem_log_put(struct gmem_log *l);

/* Bytes of log (as created). */
uint64_t gmem_log_size(const struct gmem_log *l);

/* True if every page of [gpa, gpa + len) has a bit in the log (len 0: true). */
bool gmem_log_covers(const struct gmem_log *l, uint64_t gpa, uint64_t len);

/*
 * gmem_log_mark - set the bits of every page [gpa, gpa + len) touches,
 * with release ordering (the caller's writes to those pages are visible
 * before the bits are). Pages beyond the log are not written; they are
 * counted (gmem_log_dropped). len 0 marks nothing.
 * Context: any thread, concurrently with other markers and the frontend.
 */
void gmem_log_mark(struct gmem_log *l, uint64_t gpa, uint64_t len);

/*
 * gmem_log_mark_host - as gmem_log_mark, for host memory [p, p + len)
 * inside one region of @mem (an iovec from gmem_map_iov or a piece of
 * one). -EFAULT (nothing marked) if it is not.
 */
int gmem_log_mark_host(struct gmem_log *l, const struct gmem *mem, const void *p, size_t len);

/* Pages that gmem_log_mark could not record (beyond the log). */
uint64_t gmem_log_dropped(const struct gmem_log *l);

#endif
