/* SPDX-License-Identifier: MIT */
/*
 * virtq.h - device side of virtio rings: split and packed layouts,
 * indirect descriptors, EVENT_IDX in both directions.
 *
 * virtq owns ring state (indices, wrap counters, the broken flag). Guest
 * memory comes in as a parameter (const struct gmem *) on every pop, so the
 * same queue works with any address space. virtq never touches fds,
 * threads or sockets: "needs notify?" returns a bool and the caller
 * signals the call eventfd.
 *
 * Every descriptor chain is validated; anything the guest gets wrong marks
 * the queue broken and virtq_pop() returns -EIO from then on. Nothing here
 * asserts or exits on guest data.
 *
 * Context: a struct virtq is used by one thread at a time (its iothread).
 */
#ifndef VBLK_VIRTQ_H
#define VBLK_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <linux/virtio_ring.h>

#include "gmem/gmem.h"
#include "gmem/gmem_log.h"

#define VIRTQ_MAX_SIZE 32768u
/* Most iovecs one popped chain may produce (descriptors x region splits). */
#define VIRTQ_MAX_IOV 1024u

struct virtq_config {
	unsigned num;       /* ring size: power of two (split) or any 1..32768 (packed) */
	bool packed;        /* VIRTIO_F_RING_PACKED negotiated */
	bool event_idx;     /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;      /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	/* Host addresses of the three areas (already translated and checked
	 * for size by the caller, see virtq_area_sizes()). */
	void *desc;         /* split: vring_desc[num]; packed: vring_packed_desc[num] */
	void *driver;       /* split: vring_avail; packed: vring_packed_desc_event */
	void *device;       /* split: vring_used;  packed: vring_packed_desc_event */
	/*
	 * Where to resume (SET_VRING_BASE). Split: last_avail_idx; the used
	 * index is taken from the used ring. Packed: bits 0-14 last_avail_idx,
	 * bit 15 the avail wrap counter; used index and wrap start equal.
	 */
	uint16_t base;
	/*
	 * Optional inflight tracking (vhost-user INFLIGHT_SHMFD): this queue's
	 * region of the shared inflight area, laid out as the spec's
	 * QueueRegionSplit / QueueRegionPacked with @inflight_num descriptor
	 * states (num <= inflight_num <= VIRTQ_MAX_SIZE), at least
	 * virtq_inflight_size(inflight_num, packed) bytes, 8-byte aligned.
	 * NULL: no tracking. An area already in use (version 1) is recovered
	 * from: base is then ignored, the resume point is derived from the
	 * area and the ring, and the requests it holds are popped again first.
	 */
	void *inflight;
	unsigned inflight_num;
};

/* Bytes each area needs for a ring of num entries. */
void virtq_area_sizes(unsigned num, bool packed, uint64_t *desc, uint64_t *driver,
		      uint64_t *device);

/* Bytes one queue's inflight region needs (rounded up to 64). */
uint64_t virtq_inflight_size(unsigned inflight_num, bool packed);

/* One popped request. iov[0..out_num) are device-readable, the next in_num
 * device-writable. */
struct virtq_elem {
	uint16_t id;        /* split: head index; packed: buffer id */
	uint16_t ndesc;     /* ring slots the chain used (packed: how far used skips) */
	uint16_t inflight_head, inflight_last; /* packed tracking: its inflight entries */
	unsigned out_num;
	unsigned in_num;
	struct iovec *iov;  /* points into the caller's array given to virtq_pop */
	/*
	 * IOTLB views only: a buffer's mapping does not allow what the
	 * descriptor asks (the device would write a read-only mapping or read
	 * a write-only one). The chain is popped so the caller can fail it
	 * (VIRTIO_BLK_S_IOERR) without touching its buffers;
	 * @status_denied: the last device-writable buffer is one of them, so
	 * not even a status byte may be written.
	 */
	bool denied;
	bool status_denied;
};

struct virtq {
	unsigned num;
	bool packed, event_idx, indirect;
	bool broken;
	/* split */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail_idx;    /* next avail entry to read (split and packed) */
	uint16_t shadow_avail_idx;  /* split: last avail->idx read from the guest */
	uint16_t used_idx;          /* next used entry to write */
	uint16_t used_pub;          /* split: used->idx as we last published it */
	uint16_t signalled_used;    /* used_idx at the last notification */
	bool signalled_used_valid;
	/* packed */
	struct vring_packed_desc *pdesc;
	struct vring_packed_desc_event *driver_event;
	struct vring_packed_desc_event *device_event;
	bool avail_wrap_counter;
	bool used_wrap_counter;
	uint64_t inflight;          /* popped, not yet pushed */
	/* inflight tracking (see virtq_config.inflight); NULL if off */
	void *track;
	unsigned track_num;         /* descriptor states in the region */
	uint64_t track_counter;     /* order stamp of the next pop */
	uint16_t track_batch_head;  /* split: last_batch_head */
	uint16_t track_free;        /* packed: head of the free entry list */
	struct virtq_resubmit *resubmit; /* recovered requests, in pop order */
	unsigned nresubmit, resubmit_pos;
	/* dirty logging (virtq_set_log); NULL: off, one branch per write */
	struct gmem_log *log;
	uint64_t log_desc;          /* packed: GPA of the descriptor ring */
	uint64_t log_device;        /* GPA of the device area (split: used ring) */
	/* IOTLB (virtq_pop with a view, gmem_is_view): the last pop missed */
	bool missed;
	uint64_t miss_iova;         /* first IOVA the view did not translate */
	unsigned miss_perm;         /* GMEM_PERM_* the access needed */
	unsigned hint;              /* translation cache: region last hit */
};

/*
 * virtq_init - set up @vq from @cfg. -EINVAL for an invalid size, a NULL or
 * misaligned area, or a base out of range.
 */
int virtq_init(struct virtq *vq, const struct virtq_config *cfg);

/* virtq_fini - free what virtq_init allocated (the resubmit list). The
 * ring state stays readable (virtq_get_base). Safe on a zeroed struct. */
void virtq_fini(struct virtq *vq);

/*
 * virtq_resubmit_pending - requests recovered from the inflight area that
 * virtq_pop has not yet returned again. virtq_pop returns all of them,
 * in the order the driver made them available, before any new chain.
 */
unsigned virtq_resubmit_pending(const struct virtq *vq);

/*
 * virtq_pop - take the next available chain (or, first, the next request
 * recovered from the inflight area, validated like a new one), translate every buffer through
 * @mem into host iovecs (split at region boundaries) in iov[0..max_iov).
 * Return: 1 and *elem filled; 0 if nothing is available; -EIO if the
 * queue is (now) broken (nothing filled); -EAGAIN if @mem is an IOTLB
 * view (gmem_is_view) that lacks an address the chain needs: nothing was
 * taken, virtq_miss() says what is missing, and the same chain is popped
 * again once the caller has a view that has it.
 */
int virtq_pop(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
	      struct iovec *iov, unsigned max_iov);

/*
 * virtq_push - return a chain to the driver with @len bytes written into
 * its device-writable buffers. Order of pushes may differ from pops.
 * Publishes the used entry immediately (release ordering).
 */
void virtq_push(struct virtq *vq, const struct virtq_elem *elem, uint32_t len);

/*
 * virtq_fill / virtq_flush - virtq_push in two steps, for batches: fill
 * writes the used entry, flush makes every filled entry visible to the
 * driver at once. A split ring then moves used->idx once per batch, so
 * a driver polling it takes that cache line once per batch, not once per
 * request. (A packed ring publishes each entry in virtq_fill.)
 * virtq_needs_notify flushes first.
 */
void virtq_fill(struct virtq *vq, const struct virtq_elem *elem, uint32_t len);
void virtq_flush(struct virtq *vq);

/*
 * virtq_needs_notify - after one or more pushes (or fills: it flushes
 * them): should the driver be interrupted (used buffer notification),
 * honouring EVENT_IDX or the NO_INTERRUPT flag? Records the notification
 * as sent if true.
 */
bool virtq_needs_notify(struct virtq *vq);

/*
 * virtq_disable_notify / virtq_enable_notify - ask the driver not to kick /
 * to kick again (avail event index with EVENT_IDX, flags otherwise).
 * enable returns true if buffers are already available, so the caller must
 * poll again instead of sleeping (closes the lost-wakeup race).
 */
void virtq_disable_notify(struct virtq *vq);
bool virtq_enable_notify(struct virtq *vq);

/* True if the driver has made buffers available we have not popped. */
bool virtq_has_avail(struct virtq *vq);

/* The resume point for GET_VRING_BASE (same encoding as cfg.base). */
uint16_t virtq_get_base(const struct virtq *vq);

/*
 * virtq_get_used_base - where the device side of the ring stands: the
 * next used index, with (packed) bit 15 the used wrap counter. With
 * virtq_get_base this is the whole position a stopped ring reports
 * (packed GET_VRING_BASE sends both halves).
 */
uint16_t virtq_get_used_base(const struct virtq *vq);

/*
 * virtq_set_rings - the same ring seen at new host addresses (the guest
 * memory was remapped: a new memory table with the ring's regions in it).
 * The areas are the caller's to translate and check, as for virtq_init;
 * indices, wrap counters and tracking are kept.
 * Context: the queue's thread (or before the queue runs).
 */
void virtq_set_rings(struct virtq *vq, void *desc, void *driver, void *device);

/* Ring size, layout and the dirty log set by virtq_set_log (NULL: off). */
static inline unsigned virtq_size(const struct virtq *vq)
{
	return vq->num;
}

static inline bool virtq_is_packed(const struct virtq *vq)
{
	return vq->packed;
}

static inline struct gmem_log *virtq_log(const struct virtq *vq)
{
	return vq->log;
}

/* After a pop that returned -EAGAIN, until the next pop: true, and the
 * first IOVA the view lacked with the GMEM_PERM_* access it needed. */
static inline bool virtq_miss(const struct virtq *vq, uint64_t *iova, unsigned *perm)
{
	if (iova)
		*iova = vq->miss_iova;
	if (perm)
		*perm = vq->miss_perm;
	return vq->missed;
}

/*
 * virtq_set_log - from now on, mark in @log every page of guest memory
 * the queue writes (split: used entries, used->idx, used->flags and
 * avail_event; packed: used descriptors and the device event area),
 * after the write. @desc_gpa / @device_gpa: guest physical addresses of
 * the descriptor ring (packed only) and of the device area. @log NULL
 * turns logging off. No reference is taken: the caller keeps @log alive
 * while it is set. Data buffers are the caller's to log.
 * Context: the queue's thread (or before the queue runs).
 */
void virtq_set_log(struct virtq *vq, struct gmem_log *log, uint64_t desc_gpa,
		   uint64_t device_gpa);

/* Mark broken (e.g. by a caller that found the request unusable). */
void virtq_set_broken(struct virtq *vq, const char *why);

/* ---- driver side: the guest's half, for tests and libvblk -------------- */

/* One buffer as the driver describes it: a device address (GPA). */
struct virtq_drv_buf {
	uint64_t addr;
	uint32_t len;
};

struct virtq_drv {
	unsigned num;
	bool packed, event_idx;
	/* split */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	/* packed */
	struct vring_packed_desc *pdesc;
	struct vring_packed_desc_event *driver_event; /* written by driver */
	struct vring_packed_desc_event *device_event; /* read by driver */
	bool avail_wrap_counter, used_wrap_counter;
	uint16_t next_avail;     /* split: avail->idx shadow; packed: next slot */
	uint16_t last_used;      /* next used entry to read */
	uint16_t kicked_avail;   /* avail index at the last kick decision */
	uint16_t free_head;      /* head of the free descriptor list (split) / free ids */
	unsigned num_free;
	uint16_t *next_free;     /* free list links, num entries */
	void **tokens;           /* per head/id, num entries */
	uint16_t *chain_len;     /* per id: descriptors used (packed) */
	bool broken;             /* the device returned a used entry that names no
				  * outstanding chain: nothing more is read */
};

/*
 * virtq_drv_init - driver side over host memory the caller allocated
 * (sized by virtq_area_sizes) and zeroed. The device sees the same memory
 * at other addresses; that mapping is the caller's business.
 */
int virtq_drv_init(struct virtq_drv *d, unsigned num, bool packed, bool event_idx,
		   void *desc, void *driver, void *device);
void virtq_drv_fini(struct virtq_drv *d);

/*
 * virtq_drv_add - make a chain of out readable then in writable buffers
 * available; token comes back from virtq_drv_get_used.
 * If @indirect_table (host pointer) is given, the chain goes into that
 * indirect table (at device address @indirect_addr, out+in entries of
 * 16 bytes) and uses one ring slot.
 * Return: 0, -ENOSPC if the ring is full, -EINVAL for out+in == 0.
 */
int virtq_drv_add(struct virtq_drv *d, const struct virtq_drv_buf *bufs,
		  unsigned out, unsigned in, void *token,
		  void *indirect_table, uint64_t indirect_addr);

/* A completion waits in the used ring (nothing is consumed). */
bool virtq_drv_has_used(const struct virtq_drv *d);

/* After adds: true if the device wants a kick (EVENT_IDX / flags aware). */
bool virtq_drv_kick_prepare(struct virtq_drv *d);

/*
 * Next completed chain's token and used length, or NULL if none. A used
 * entry with an id that is out of range or not outstanding marks @d
 * broken (NULL from then on): the caller must check d->broken.
 */
void *virtq_drv_get_used(struct virtq_drv *d, uint32_t *len);

/* Ask the device for an interrupt after the next used entry (or not). */
void virtq_drv_enable_cb(struct virtq_drv *d);
void virtq_drv_disable_cb(struct virtq_drv *d);

#endif
