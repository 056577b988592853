/* SPDX-License-Identifier: MIT */
/* iov.c - scatter/gather helpers. */
#include <string.h>

#include "common/compiler.h"
#include "common/iov.h"

size_t iov_size(const struct iovec *iov, unsigned cnt)
{
	size_t n = 0;

	for (unsigned i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* Walk the bytes [off, off+len) of an iovec array, calling fn per piece. */
#define IOV_WALK(iov, cnt, off, len, piece, done, body) \
	do { \
		size_t done = 0; \
		for (unsigned i__ = 0; i__ < (cnt) && done < (len); i__++) { \
			if ((off) >= (iov)[i__].iov_len) { \
				(off) -= (iov)[i__].iov_len; \
				continue; \
			} \
			size_t piece = MIN((iov)[i__].iov_len - (off), (len) - done); \
			char *base__ = (char *)(iov)[i__].iov_base + (off); \
			(off) = 0; \
			body; \
			done += piece; \
		} \
		return done; \
	} while (0)

size_t iov_to_buf(const struct iovec *iov, unsigned cnt, size_t off, void *buf, size_t len)
{
	IOV_WALK(iov, cnt, off, len, piece, done,
		 memcpy((char *)buf + done, base__, piece));
}

size_t iov_from_buf(const struct iovec *iov, unsigned cnt, size_t off, const void *buf, size_t len)
{
	IOV_WALK(iov, cnt, off, len, piece, done,
		 memcpy(base__, (const char *)buf + done, piece));
}

size_t iov_memset(const struct iovec *iov, unsigned cnt, size_t off, int c, size_t len)
{
	IOV_WALK(iov, cnt, off, len, piece, done, memset(base__, c, piece));
}

int iov_slice(const struct iovec *src, unsigned src_cnt, size_t off, size_t len,
	      struct iovec *dst, unsigned dst_max)
{
	unsigned n = 0;
	size_t done = 0;

	for (unsigned i = 0; i < src_cnt && done < len; i++) {
		if (off >= src[i].iov_len) {
			off -= src[i].iov_len;
			continue;
		}
		if (n == dst_max)
			return -1;
		size_t piece = MIN(src[i].iov_len - off, len - done);
		dst[n].iov_base = (char *)src[i].iov_base + off;
		dst[n].iov_len = piece;
		n++;
		off = 0;
		done += piece;
	}
	return done == len ? (int)n : -1;
}
