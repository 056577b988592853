/* SPDX-License-Identifier: MIT */
/*
 * gmem.h - the guest memory table: regions shared as fds by the frontend,
 * mapped once, and translation of guest addresses to host addresses with
 * bounds checks.
 *
 * A struct gmem is an immutable, reference-counted snapshot. Adding or
 * removing a region builds a new snapshot that shares the mappings of the
 * old one; a mapping is unmapped when the last snapshot using it is put.
 * In-flight requests hold a reference to the snapshot they were
 * translated with, so memory is never unmapped under a request.
 *
 * gmem knows nothing about rings, sockets or threads.
 */
#ifndef VBLK_GMEM_H
#define VBLK_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* At least 32 per the design; vhost-user's GET_MAX_MEM_SLOTS reports it. */
#define GMEM_MAX_REGIONS 64

/* What the frontend says about one region (VhostUserMemoryRegion). */
struct gmem_region_desc {
	uint64_t gpa;          /* guest physical address of the first byte */
	uint64_t size;         /* bytes */
	uint64_t uva;          /* frontend's user virtual address of gpa */
	uint64_t mmap_offset;  /* offset of gpa's byte in the fd */
};

struct gmem;
struct gmem_guard;

/*
 * gmem_create - an empty table (no regions).
 * Return: 0 or -ENOMEM.
 */
int gmem_create(struct gmem **out);

/*
 * gmem_add - a new snapshot: @old (may be NULL = empty) plus one region
 * mapped from @fd. The fd is not kept (mmap holds the file).
 * Fails with -EINVAL for a zero size, an overflowing range, or a range
 * overlapping an existing region (in GPA or UVA space); -ENOSPC if the
 * table is full; -errno from mmap (for example, the fd is too small).
 * Context: any thread; @old is not changed.
 */
int gmem_add(const struct gmem *old, const struct gmem_region_desc *d, int fd,
	     struct gmem **out);

/*
 * gmem_add_guarded - as gmem_add; the new mapping is also watched by
 * @guard (may be NULL: not watched) until it is unmapped, so a SIGBUS in
 * it trips that guard instead of killing the process.
 */
int gmem_add_guarded(const struct gmem *old, const struct gmem_region_desc *d, int fd,
		     struct gmem_guard *guard, struct gmem **out);

/*
 * gmem_remove - a new snapshot: @old without the region that matches
 * @d's gpa, size and uva exactly. -ENOENT if none matches.
 */
int gmem_remove(const struct gmem *old, const struct gmem_region_desc *d,
		struct gmem **out);

/* Reference counting; gmem_put(NULL) is a no-op. Thread-safe. */
struct gmem *gmem_get(struct gmem *m);
void gmem_put(struct gmem *m);

unsigned gmem_nregions(const struct gmem *m);
/* Region i, sorted by gpa; NULL if out of range. */
const struct gmem_region_desc *gmem_region(const struct gmem *m, unsigned i);

/*
 * gmem_ptr - host pointer for the contiguous guest range [gpa, gpa+len),
 * or NULL if any byte is unmapped, the range wraps, or it crosses a
 * region boundary. For ring structures and headers that must be
 * contiguous. len == 0 is treated as 1.
 */
void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len);

/*
 * gmem_uva_ptr - as gmem_ptr, for a frontend virtual address (vring
 * addresses in SET_VRING_ADDR are frontend virtual addresses). NULL for
 * a view (gmem_view_create).
 */
void *gmem_uva_ptr(const struct gmem *m, uint64_t uva, uint64_t len);

/*
 * gmem_map_iov - translate [gpa, gpa+len) to host iovecs, splitting at
 * region boundaries, appending at most @max entries to @iov.
 * Return: number of entries written (0 for len == 0), -EFAULT if a byte is
 * unmapped or the range overflows 64 bits, -ENOBUFS if @max is too small.
 */
int gmem_map_iov(const struct gmem *m, uint64_t gpa, uint64_t len,
		 struct iovec *iov, unsigned max);

/* Access rights, as vhost's VHOST_ACCESS_RO/WO/RW. */
#define GMEM_PERM_READ  1u
#define GMEM_PERM_WRITE 2u
#define GMEM_PERM_RW    3u

/*
 * gmem_map_iov_perm - as gmem_map_iov, checking that every byte allows
 * @perm (0: no check) and merging pieces that are adjacent in host memory
 * into one iovec. @hint (may be NULL) is a per-caller cache: the index of
 * the region last hit, tried before the binary search and updated; any
 * value is safe with any snapshot. On failure @fault (may be NULL) holds
 * the first address that is unmapped (-EFAULT) or denied (-EACCES).
 * Context: any thread; lock-free.
 */
int gmem_map_iov_perm(const struct gmem *m, uint64_t addr, uint64_t len, unsigned perm,
		      struct iovec *iov, unsigned max, unsigned *hint, uint64_t *fault);

/*
 * gmem_ptr_perm - host pointer for [addr, addr+len) (len 0 counts as 1)
 * if every byte allows @perm and the range is contiguous in host memory,
 * even across several regions (IOTLB entries). Return: 0 and *out,
 * -EFAULT / -EACCES with *fault as gmem_map_iov_perm, -ERANGE if the
 * range is mapped but not contiguous in host memory.
 */
int gmem_ptr_perm(const struct gmem *m, uint64_t addr, uint64_t len, unsigned perm,
		  void **out, uint64_t *fault);

/*
 * IOTLB views. With VIRTIO_F_ACCESS_PLATFORM every address the driver
 * gives is an I/O virtual address (IOVA). A view is a snapshot like a
 * memory table, keyed by IOVA: gmem_ptr, gmem_map_iov and friends take
 * IOVAs, regions carry the entry's permissions, and gmem_host_to_gpa
 * still answers guest physical addresses (for dirty logging). A view
 * holds references on the mappings of the table it was built from, so it
 * stays valid after that table is replaced.
 */
struct gmem_view_entry {
	uint64_t iova;
	uint64_t size;
	uint64_t uva;      /* the frontend's virtual address of iova's byte */
	unsigned perm;     /* GMEM_PERM_* */
};

/*
 * gmem_view_create - a view of @n entries sorted by iova, not overlapping,
 * translated through @mem (NULL: an empty view). Parts of an entry that lie
 * outside @mem are left out (lookups there fail); an entry crossing
 * regions is split at their boundaries.
 * Return: 0, -EINVAL (unsorted, overlapping, zero or wrapping entries),
 * -ENOMEM. Context: any thread.
 */
int gmem_view_create(const struct gmem *mem, const struct gmem_view_entry *e, unsigned n,
		     struct gmem **out);

/* True for a snapshot built by gmem_view_create. */
bool gmem_is_view(const struct gmem *m);

/*
 * Guards: surviving SIGBUS from shared memory that shrank under us.
 *
 * A frontend can shrink a file it shared after we mapped it (hugetlbfs,
 * tmpfs and disk files cannot be sealed; a block device can be resized);
 * touching the lost part raises SIGBUS. Mappings watched by a guard are
 * covered by a process-wide SIGBUS handler: it maps an anonymous zero page
 * over the faulting page (the access completes on private memory), and
 * trips the guard, whose eventfd becomes readable; its owner must then
 * drop everything that uses those mappings. A SIGBUS outside every watched
 * mapping still kills the process.
 *
 * gmem_guard_create - a guard; the first call installs the handler (do it
 * before a seccomp sandbox: sigaction, eventfd).
 * gmem_guard_fd - the eventfd, readable once the guard tripped.
 * gmem_guard_reset - drain it; returns the faults seen since the last reset.
 * gmem_guard_watch - watch [addr, addr+len); returns a slot, or -ENOSPC.
 * gmem_guard_unwatch - stop watching (before munmap). Slot < 0: no-op.
 * Context: any thread; the handler is async-signal-safe and lock-free.
 */
int gmem_guard_create(struct gmem_guard **out);
void gmem_guard_destroy(struct gmem_guard *g);
int gmem_guard_fd(const struct gmem_guard *g);
unsigned gmem_guard_reset(struct gmem_guard *g);
int gmem_guard_watch(struct gmem_guard *g, void *addr, size_t len);
void gmem_guard_unwatch(int slot);

/*
 * gmem_host_to_gpa - the guest physical address of host memory
 * [p, p + len) (len 0 is treated as 1), which must lie inside one region
 * of @m (as every iovec from gmem_map_iov does). -EFAULT if it does not.
 * A linear search: for slow paths (dirty logging) only.
 */
int gmem_host_to_gpa(const struct gmem *m, const void *p, uint64_t len, uint64_t *gpa);

/* gmem_uva_to_gpa - as gmem_host_to_gpa, for a frontend virtual address. */
int gmem_uva_to_gpa(const struct gmem *m, uint64_t uva, uint64_t len, uint64_t *gpa);

#endif
