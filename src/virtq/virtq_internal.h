/* SPDX-License-Identifier: MIT */
/*
 * virtq_internal.h - what virtq.c (format-independent code and dispatch),
 * virtq_split.c and virtq_packed.c share. Not for other modules.
 */
#ifndef VBLK_VIRTQ_INTERNAL_H
#define VBLK_VIRTQ_INTERNAL_H

#include "virtq/virtq.h"

/*
 * virtq_map_buf - translate one descriptor's buffer [addr, addr+len) through
 * mem, appending to elem->iov (capacity max_iov). Enforces direction order:
 * a readable buffer after a writable one is an error. Returns 0, or -EIO
 * after marking vq broken with a reason (unmapped, overflow, too many
 * iovecs, bad order).
 */
int virtq_map_buf(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		  unsigned max_iov, uint64_t addr, uint32_t len, bool writable);

/*
 * virtq_indirect_table - host pointer to a validated indirect table of
 * len bytes at addr: len a non-zero multiple of 16, at most VIRTQ_MAX_SIZE
 * entries, contiguous in one region (a table crossing regions, or not
 * 8-byte aligned in host memory, is copied into @bounce; callers pass a
 * buffer of at least len bytes, or NULL to reject such tables). Returns
 * NULL after marking vq broken.
 */
const void *virtq_indirect_table(struct virtq *vq, const struct gmem *mem,
				 uint64_t addr, uint32_t len, void *bounce,
				 size_t bounce_size);

int virtq_init_split(struct virtq *vq, const struct virtq_config *cfg);
int virtq_pop_split(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		    struct iovec *iov, unsigned max_iov);
void virtq_push_split(struct virtq *vq, const struct virtq_elem *elem, uint32_t len);
bool virtq_needs_notify_split(struct virtq *vq);
void virtq_disable_notify_split(struct virtq *vq);
bool virtq_enable_notify_split(struct virtq *vq);
bool virtq_has_avail_split(struct virtq *vq);

int virtq_init_packed(struct virtq *vq, const struct virtq_config *cfg);
int virtq_pop_packed(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		     struct iovec *iov, unsigned max_iov);
void virtq_push_packed(struct virtq *vq, const struct virtq_elem *elem, uint32_t len);
bool virtq_needs_notify_packed(struct virtq *vq);
void virtq_disable_notify_packed(struct virtq *vq);
bool virtq_enable_notify_packed(struct virtq *vq);
bool virtq_has_avail_packed(struct virtq *vq);

int virtq_drv_init_split(struct virtq_drv *d);
int virtq_drv_add_split(struct virtq_drv *d, const struct virtq_drv_buf *bufs,
			unsigned out, unsigned in, void *token,
			void *indirect_table, uint64_t indirect_addr);
bool virtq_drv_kick_prepare_split(struct virtq_drv *d);
void *virtq_drv_get_used_split(struct virtq_drv *d, uint32_t *len);
void virtq_drv_enable_cb_split(struct virtq_drv *d);
void virtq_drv_disable_cb_split(struct virtq_drv *d);

int virtq_drv_init_packed(struct virtq_drv *d);
int virtq_drv_add_packed(struct virtq_drv *d, const struct virtq_drv_buf *bufs,
			 unsigned out, unsigned in, void *token,
			 void *indirect_table, uint64_t indirect_addr);
bool virtq_drv_kick_prepare_packed(struct virtq_drv *d);
void *virtq_drv_get_used_packed(struct virtq_drv *d, uint32_t *len);
void virtq_drv_enable_cb_packed(struct virtq_drv *d);
void virtq_drv_disable_cb_packed(struct virtq_drv *d);

#endif
