/* SPDX-License-Identifier: MIT */
/*
 * vblk_internal.h - libvblk's private state: the instance (connection,
 * negotiated features, config, memory regions) and its queues (driver
 * ring, preallocated request slots). Nothing here is installed.
 */
#ifndef VBLK_LIB_INTERNAL_H
#define VBLK_LIB_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_blk.h>

#include "vblk/vblk.h"
#include "virtq/virtq.h"
#include "vhost/vhost_frontend.h"

#define LIB_MAX_QUEUES   64u
#define LIB_MAX_REGIONS  64u
#define LIB_MAX_SEGS     64u      /* data segments per request */
#define LIB_IOVA_BASE    0x100000000ull
#define LIB_IOVA_ALIGN   (2ull << 20)
#define LIB_LOG_COVER    (1ull << 40)   /* IOVA space the "dirty-log" log covers */
#define LIB_F_LOG_ALL    26             /* VHOST_F_LOG_ALL */
/* "access-platform": guest physical addresses of the memory table are the
 * IOVAs moved by this much, so a server that takes an IOVA for a GPA
 * misses; IOTLB updates are sent in entries of LIB_IOTLB_ENTRY bytes. */
#define LIB_GPA_OFFSET   (1ull << 44)
#define LIB_IOTLB_ENTRY  (2ull << 20)

/* Request slot layout in the library-owned shared region. */
#define SLOT_HDR     0u           /* struct virtio_blk_outhdr (16) */
#define SLOT_DWZ     16u          /* struct virtio_blk_discard_write_zeroes (16) */
#define SLOT_STATUS  32u          /* status byte */
#define SLOT_TABLE   64u          /* indirect table, LIB_MAX_SEGS + 3 entries */
#define SLOT_STRIDE  (SLOT_TABLE + (LIB_MAX_SEGS + 3) * 16u)

enum lib_state { LIB_CREATED, LIB_CONNECTED, LIB_STARTED };

struct lib_region {
	uint8_t *addr;          /* NULL: free entry */
	size_t len;
	uint64_t iova;
	int64_t fd_offset;
	int fd;
	bool registered;        /* the server knows it */
	bool owned;             /* from vblk_alloc_mem_region (or the library's own) */
};

struct lib_req {
	void *user_data;
	struct lib_req *next;   /* free list / local completion list */
	uint8_t *shared;        /* host address of the slot */
	uint64_t iova;          /* device address of the slot */
	int local_ret;
	bool on_ring;
};

struct vblkq {
	struct vblk *v;
	unsigned index;
	struct virtq_drv drv;
	bool drv_ready;
	bool indirect;
	bool completion_fd_enabled;
	bool need_kick;
	bool failed;            /* ring requests were failed with fail_ret */
	int fail_ret;           /* -ENOTCONN: server gone; -EPROTO: corrupt ring */
	unsigned last_region;   /* translation cache */
	unsigned outstanding;   /* submitted, not yet reaped */
	unsigned max_segs;
	uint32_t size_max;      /* longest data descriptor (UINT32_MAX: no limit) */
	int kick_fd, call_fd, ep_fd;
	uint8_t *area;          /* this queue's part of the library region */
	uint64_t area_iova;
	struct lib_req *reqs;   /* queue-size entries */
	struct lib_req *free_reqs;
	struct lib_req *done_head, *done_tail;
};

struct vblk {
	enum lib_state state;
	char *path;
	int num_queues, queue_size;
	bool poll, packed;
	bool dirty_log;         /* act as a migrating frontend: LOG_ALL + a log */
	bool access_platform;   /* VIRTIO_F_ACCESS_PLATFORM: addresses are IOVAs */
	int log_fd;             /* the dirty log memfd, -1 if none */
	struct vhost_frontend *f;
	int sock_fd;
	uint64_t offered, proto_offered, acked, proto_acked;
	uint64_t max_queues, max_mem_slots;
	struct virtio_blk_config cfg;
	struct lib_region regions[LIB_MAX_REGIONS];
	unsigned nregions;      /* high-water mark; published with release */
	uint64_t next_iova;
	int lib_region;         /* index of the library-owned region, -1 none */
	struct vblkq *queues;
	int dead;               /* connection lost (atomic) */
};

#endif
