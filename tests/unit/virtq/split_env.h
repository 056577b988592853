/* SPDX-License-Identifier: MIT */
/*
 * split_env.h - test harness for the split virtqueue: one memfd seen by the
 * "driver" through one mapping (GPA = SPLIT_GPA_BASE + memfd offset) and by
 * the device through gmem regions mapped separately, so a translation
 * mistake cannot hide. "Tiny" mode cuts the buffer area into 4 KiB regions
 * so buffers and indirect tables cross region boundaries.
 * Two queues share the memory: q 0 and q 1 (used as the healthy neighbour).
 */
#ifndef VBLK_TESTS_SPLIT_ENV_H
#define VBLK_TESTS_SPLIT_ENV_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"
#include "fixture/fixture.h"
#include "common/compiler.h"
#include "common/iov.h"
#include "gmem/gmem.h"
#include "virtq/virtq.h"

#define SPLIT_GPA_BASE 0x100000000ull
#define SPLIT_UVA_BASE 0x7f0000000000ull
#define SPLIT_QSTRIDE  0x10000u   /* per queue: desc @0, avail @0x4000, used @0x6000 */
#define SPLIT_TABLES   0x20f00u   /* indirect table slots (deliberately unaligned to 4K) */
#define SPLIT_TSTRIDE  0x310u     /* 49 entries per slot */
#define SPLIT_TPAGE    0x1000u

enum split_mode { SPLIT_FLAT, SPLIT_TINY };

struct split_env {
	enum split_mode mode;
	int fd;
	size_t size;
	uint8_t *drv;               /* driver's view of the whole memfd */
	struct gmem *mem;           /* device's view */
	unsigned nreg;
	uint64_t reg_off[GMEM_MAX_REGIONS], reg_len[GMEM_MAX_REGIONS];
	unsigned num;
	bool event_idx, indirect;
	struct virtq vq[2];
	struct virtq_drv dq[2];
	uint64_t bufs_off, bufs_end, bump;
	uint64_t rng;
};

static inline uint64_t split_gpa(const struct split_env *e, uint64_t off)
{
	(void)e;
	return SPLIT_GPA_BASE + off;
}

static inline uint64_t split_rand(struct split_env *e)
{
	/* xorshift64: reproducible runs. */
	e->rng ^= e->rng << 13;
	e->rng ^= e->rng >> 7;
	e->rng ^= e->rng << 17;
	return e->rng;
}

static inline uint64_t split_ring_off(unsigned q, unsigned part)
{
	static const uint64_t part_off[3] = { 0, 0x4000, 0x6000 };

	return (uint64_t)q * SPLIT_QSTRIDE + part_off[part];
}

static inline uint64_t split_table_off(unsigned head)
{
	return SPLIT_TABLES + (uint64_t)head * SPLIT_TSTRIDE;
}

static inline void split_add_region(struct split_env *e, uint64_t off, uint64_t len)
{
	if (fixture_gmem_add(&e->mem, e->fd, split_gpa(e, off), SPLIT_UVA_BASE + off, off, len))
		tap_bail("gmem_add at 0x%llx", (unsigned long long)off);
	e->reg_off[e->nreg] = off;
	e->reg_len[e->nreg++] = len;
}

/* (Re)initialise device queue q from the rings in memory, resuming at base. */
static inline int split_dev_init(struct split_env *e, unsigned q, uint16_t base, bool indirect)
{
	uint64_t ds, as, us;
	struct virtq_config cfg = {
		.num = e->num, .packed = false, .event_idx = e->event_idx,
		.indirect = indirect, .base = base,
	};

	virtq_area_sizes(e->num, false, &ds, &as, &us);
	cfg.desc = gmem_ptr(e->mem, split_gpa(e, split_ring_off(q, 0)), ds);
	cfg.driver = gmem_ptr(e->mem, split_gpa(e, split_ring_off(q, 1)), as);
	cfg.device = gmem_ptr(e->mem, split_gpa(e, split_ring_off(q, 2)), us);
	return virtq_init(&e->vq[q], &cfg);
}

/*
 * num: ring size; base: starting value of avail->idx / used->idx (to test
 * 16-bit wrap); indirect: negotiated on both queues.
 */
static inline void split_env_init(struct split_env *e, enum split_mode mode, unsigned num,
				  bool event_idx, bool indirect, uint16_t base)
{
	unsigned q, i;

	memset(e, 0, sizeof(*e));
	e->mode = mode;
	e->num = num;
	e->event_idx = event_idx;
	e->indirect = indirect;
	e->rng = 0x9e3779b97f4a7c15ull ^ num ^ ((uint64_t)mode << 32);
	if (mode == SPLIT_FLAT) {
		e->size = 4u << 20;
		e->bufs_off = 0x60000;   /* tables of up to 256 slots below */
		e->bufs_end = e->size;
	} else {
		/* Rings in one 128 KiB region, then 63 regions of 4 KiB; the
		 * last page of the memfd stays unmapped (a hole). */
		e->size = 0x20000 + 64 * SPLIT_TPAGE;
		e->bufs_off = 0x20000 + 14 * SPLIT_TPAGE;
		e->bufs_end = 0x20000 + 63 * SPLIT_TPAGE;
	}
	e->bump = e->bufs_off;
	if (fixture_memfd_map("vblk-virtq-split-test", e->size, &e->fd, &e->drv))
		tap_bail("guest memory");
	if (mode == SPLIT_FLAT) {
		split_add_region(e, 0, e->size);
	} else {
		split_add_region(e, 0, 0x20000);
		for (i = 0; i < 63; i++)
			split_add_region(e, 0x20000 + (uint64_t)i * SPLIT_TPAGE, SPLIT_TPAGE);
	}
	for (q = 0; q < 2; q++) {
		struct vring_avail *avail = (void *)(e->drv + split_ring_off(q, 1));
		struct vring_used *used = (void *)(e->drv + split_ring_off(q, 2));

		avail->idx = base;
		used->idx = base;
		if (virtq_drv_init(&e->dq[q], num, false, event_idx, e->drv + split_ring_off(q, 0),
				   avail, used))
			tap_bail("virtq_drv_init");
		if (split_dev_init(e, q, base, indirect))
			tap_bail("virtq_init");
	}
}

static inline void split_env_fini(struct split_env *e)
{
	virtq_drv_fini(&e->dq[0]);
	virtq_drv_fini(&e->dq[1]);
	gmem_put(e->mem);
	munmap(e->drv, e->size);
	close(e->fd);
}

/* Buffer space: a bump allocator the tests reset between batches. */
static inline uint64_t split_alloc(struct split_env *e, uint64_t len)
{
	uint64_t off = e->bump;

	if (off + len > e->bufs_end)
		tap_bail("test buffer area exhausted");
	e->bump += len + (split_rand(e) % 64);
	return off;
}

static inline void split_reset_bufs(struct split_env *e)
{
	e->bump = e->bufs_off;
}

/* How many region pieces [off, off+len) covers (0 for len 0). */
static inline unsigned split_pieces(const struct split_env *e, uint64_t off, uint64_t len)
{
	unsigned i, n = 0;

	for (i = 0; i < e->nreg; i++) {
		uint64_t a = e->reg_off[i], b = a + e->reg_len[i];

		if (len && off < b && off + len > a)
			n++;
	}
	return n;
}

/* True if no iovec points into the driver's own mapping: the device must
 * go through gmem's mappings. */
static inline bool split_iov_not_driver_view(const struct split_env *e,
					     const struct iovec *iov, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		const uint8_t *p = iov[i].iov_base;

		if (p + iov[i].iov_len > e->drv && p < e->drv + e->size)
			return false;
	}
	return true;
}

/* ---- raw ring writes for hostile cases (driver view) ---------------- */

static inline struct vring_desc *split_raw_desc(struct split_env *e, unsigned q)
{
	return (struct vring_desc *)(e->drv + split_ring_off(q, 0));
}

static inline void split_raw_set(struct vring_desc *d, uint64_t addr, uint32_t len,
				 uint16_t flags, uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

/* Put head into the next avail slot and bump avail->idx. */
static inline void split_raw_publish(struct split_env *e, unsigned q, uint16_t head)
{
	struct vring_avail *avail = (void *)(e->drv + split_ring_off(q, 1));
	uint16_t idx = avail->idx;

	avail->ring[idx & (e->num - 1)] = head;
	smp_wmb();
	WRITE_ONCE(avail->idx, (uint16_t)(idx + 1));
}

#endif
