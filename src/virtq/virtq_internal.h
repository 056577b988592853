/* SPDX-License-Identifier: MIT */
/*
 * virtq_internal.h - what virtq.c (format-independent code and dispatch),
 * virtq_split.c and virtq_packed.c share. Not for other modules.
 */
#ifndef VBLK_VIRTQ_INTERNAL_H
#define VBLK_VIRTQ_INTERNAL_H

#include <endian.h>
#include <linux/types.h>

#include "common/compiler.h"
#include "virtq/virtq.h"

/*
 * Ring fields in shared memory, little-endian (virtio 1.x) whatever the
 * host: every access converts, and is one access (common/compiler.h has
 * the memory model). virtq_load_acquire16 takes a hand-over word (split
 * avail->idx or used->idx, a packed head's flags) before what it covers
 * is read; virtq_store_release16 hands over, after what it covers was
 * written. Everything else is relaxed; store-then-load orders need
 * smp_mb().
 */
static inline uint16_t virtq_get16(const __u16 *p)
{
	return le16toh(READ_ONCE(*p));
}

static inline uint32_t virtq_get32(const __u32 *p)
{
	return le32toh(READ_ONCE(*p));
}

static inline uint64_t virtq_get64(const __u64 *p)
{
	return le64toh(READ_ONCE(*p));
}

static inline void virtq_put16(__u16 *p, uint16_t v)
{
	WRITE_ONCE(*p, htole16(v));
}

static inline void virtq_put32(__u32 *p, uint32_t v)
{
	WRITE_ONCE(*p, htole32(v));
}

static inline void virtq_put64(__u64 *p, uint64_t v)
{
	WRITE_ONCE(*p, htole64(v));
}

static inline uint16_t virtq_load_acquire16(const __u16 *p)
{
	return le16toh(load_acquire(p));
}

static inline void virtq_store_release16(__u16 *p, uint16_t v)
{
	store_release(p, htole16(v));
}

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

/*
 * The shared inflight area (vhost-user spec, "Inflight I/O tracking").
 * Written by us, kept by the frontend across our crashes, and mapped by
 * it too: everything read back is validated before use.
 */
struct virtq_inflight_desc_split {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
};

struct virtq_inflight_split {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct virtq_inflight_desc_split desc[];
};

struct virtq_inflight_desc_packed {
	uint8_t inflight;
	uint8_t padding;
	uint16_t next;
	uint16_t last;
	uint16_t num;
	uint64_t counter;
	uint16_t id;
	uint16_t flags;
	uint32_t len;
	uint64_t addr;
};

struct virtq_inflight_packed {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t free_head;
	uint16_t old_free_head;
	uint16_t used_idx;
	uint16_t old_used_idx;
	uint8_t used_wrap_counter;
	uint8_t old_used_wrap_counter;
	uint8_t padding[10];
	struct virtq_inflight_desc_packed desc[];
};

_Static_assert(sizeof(struct virtq_inflight_desc_split) == 16, "spec layout");
_Static_assert(sizeof(struct virtq_inflight_split) == 16, "spec layout");
_Static_assert(sizeof(struct virtq_inflight_desc_packed) == 32, "spec layout");
_Static_assert(sizeof(struct virtq_inflight_packed) == 32, "spec layout");

#define VIRTQ_INFLIGHT_VERSION 1

/* One recovered request: its head (split) or first entry (packed). */
struct virtq_resubmit {
	uint64_t counter;
	uint16_t head;
};

/* Sort @n recovered requests by counter into vq->resubmit (takes @list). */
void virtq_resubmit_set(struct virtq *vq, struct virtq_resubmit *list, unsigned n);

/* Dirty logging of a ring write at @off bytes into the device area /
 * descriptor ring: one predictable branch while logging is off. */
static inline void virtq_log_device(const struct virtq *vq, uint64_t off, uint64_t len)
{
	if (unlikely(vq->log))
		gmem_log_mark(vq->log, vq->log_device + off, len);
}

static inline void virtq_log_desc(const struct virtq *vq, uint64_t off, uint64_t len)
{
	if (unlikely(vq->log))
		gmem_log_mark(vq->log, vq->log_desc + off, len);
}

int virtq_init_split(struct virtq *vq, const struct virtq_config *cfg);
void virtq_track_init_split(struct virtq *vq, const struct virtq_config *cfg);
int virtq_repop_split(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		      struct iovec *iov, unsigned max_iov);
int virtq_pop_split(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		    struct iovec *iov, unsigned max_iov);
void virtq_fill_split(struct virtq *vq, const struct virtq_elem *elem, uint32_t len);
void virtq_flush_split(struct virtq *vq);
bool virtq_needs_notify_split(struct virtq *vq);
void virtq_disable_notify_split(struct virtq *vq);
bool virtq_enable_notify_split(struct virtq *vq);
bool virtq_has_avail_split(struct virtq *vq);

int virtq_init_packed(struct virtq *vq, const struct virtq_config *cfg);
void virtq_track_init_packed(struct virtq *vq, const struct virtq_config *cfg);
int virtq_repop_packed(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		       struct iovec *iov, unsigned max_iov);
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
