/* SPDX-License-Identifier: MIT */
/* iov.h - scatter/gather helpers over struct iovec arrays. */
#ifndef VBLK_COMMON_IOV_H
#define VBLK_COMMON_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Total bytes described by iov[0..cnt). */
size_t iov_size(const struct iovec *iov, unsigned cnt);

/* Copy up to len bytes starting at byte offset off of the iovec array
 * into buf; returns the number of bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned cnt, size_t off, void *buf, size_t len);

/* Copy up to len bytes from buf into the iovec array at byte offset off;
 * returns the number of bytes copied. */
size_t iov_from_buf(const struct iovec *iov, unsigned cnt, size_t off, const void *buf, size_t len);

/* Fill up to len bytes at offset off with zeroes; returns bytes written. */
size_t iov_memset(const struct iovec *iov, unsigned cnt, size_t off, int c, size_t len);

/*
 * Describe bytes [off, off+len) of src as a new iovec array in dst
 * (at most dst_max entries). Returns the number of entries written, or
 * -1 if dst is too small or the range is beyond the source.
 */
int iov_slice(const struct iovec *src, unsigned src_cnt, size_t off, size_t len,
	      struct iovec *dst, unsigned dst_max);

#endif
