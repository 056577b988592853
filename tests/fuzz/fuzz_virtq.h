/* SPDX-License-Identifier: MIT */
/*
 * fuzz_virtq.h - the guest memory and the device-side driver loop shared
 * by the virtq fuzz targets (and the layout gen_seeds.c writes).
 *
 * A guest memory image of FQ_MEM_SIZE bytes, laid out by guest physical
 * address (GPA = FQ_GPA_BASE + offset): descriptors at FQ_DESC_OFF, the
 * driver area (split avail ring / packed driver event) at FQ_DRIVER_OFF,
 * the device area (used ring / device event) at FQ_DEVICE_OFF, buffers and
 * indirect tables above FQ_BUF_OFF. The image is copied into a memfd that
 * gmem maps as one region, or as many small regions at permuted file
 * offsets and scattered host addresses (so chains and tables cross
 * regions), optionally with a hole.
 */
#ifndef VBLK_TESTS_FUZZ_VIRTQ_H
#define VBLK_TESTS_FUZZ_VIRTQ_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "fixture/fixture.h"
#include "fuzz_formats.h"
#include "gmem/gmem.h"
#include "virtq/virtq.h"

static const unsigned fq_max_iov[8] = { VIRTQ_MAX_IOV, 1, 2, 3, 8, 16, 64, 256 };

static inline unsigned fq_num(bool packed, uint8_t sel)
{
	return packed ? (unsigned)sel + 1u : 1u << (sel % 9u);
}

/* ---- guest memory ------------------------------------------------------ */

struct fq_region {
	uint64_t off;        /* image (GPA) offset */
	uint64_t len;
	uint64_t file_off;
	uint8_t *host;       /* gmem's mapping of it */
};

struct fq_mem {
	int fd;
	struct gmem *mem;
	unsigned nreg;
	struct fq_region reg[16];
};

static inline void fq_mem_layout(struct fq_mem *m, enum fq_mem_mode mode)
{
	unsigned i;

	m->nreg = 0;
	switch (mode) {
	case FQ_MEM_FLAT:
		m->reg[m->nreg++] = (struct fq_region){ 0, FQ_MEM_SIZE, 0, NULL };
		break;
	case FQ_MEM_TINY:
	case FQ_MEM_HOLE:
		for (i = 0; i < FQ_MEM_SIZE / FQ_PAGE; i++) {
			if (mode == FQ_MEM_HOLE && i == FQ_HOLE_PAGE)
				continue;
			/* Page i of the guest is page 5i mod 16 of the file. */
			m->reg[m->nreg++] = (struct fq_region){
				(uint64_t)i * FQ_PAGE, FQ_PAGE,
				(uint64_t)((i * 5u) % 16u) * FQ_PAGE, NULL };
		}
		break;
	case FQ_MEM_TWO:
		m->reg[m->nreg++] = (struct fq_region){ 0, FQ_MEM_SIZE / 2, FQ_MEM_SIZE / 2, NULL };
		m->reg[m->nreg++] = (struct fq_region){ FQ_MEM_SIZE / 2, FQ_MEM_SIZE / 2, 0, NULL };
		break;
	}
}

/* Map @image (@len <= FQ_MEM_SIZE bytes, the rest zero) as @mode says. */
static inline void fq_mem_init(struct fq_mem *m, const uint8_t *image, size_t len,
			       enum fq_mem_mode mode)
{
	unsigned i;

	memset(m, 0, sizeof(*m));
	fq_mem_layout(m, mode);
	m->fd = memfd_create("vblk-fuzz-guest", MFD_CLOEXEC);
	FUZZ_SETUP(m->fd >= 0 && ftruncate(m->fd, FQ_MEM_SIZE) == 0, "memfd");
	for (i = 0; i < m->nreg; i++) {
		struct fq_region *r = &m->reg[i];
		size_t have = r->off < len ? len - r->off : 0;

		if (have > r->len)
			have = r->len;
		FUZZ_SETUP(pwrite(m->fd, image + r->off, have, (off_t)r->file_off) ==
			   (ssize_t)have, "pwrite");
		/* Host-side neighbours are never guest-side neighbours. */
		FUZZ_SETUP(fixture_gmem_add(&m->mem, m->fd, FQ_GPA_BASE + r->off,
					    FQ_UVA_BASE + r->off * 3, r->file_off, r->len) == 0,
			   "gmem_add");
		r->host = gmem_ptr(m->mem, FQ_GPA_BASE + r->off, r->len);
		FUZZ_SETUP(r->host != NULL, "gmem_ptr of a whole region");
	}
}

static inline void fq_mem_fini(struct fq_mem *m)
{
	gmem_put(m->mem);
	close(m->fd);
}

/* Device view of image offset @off (or NULL if unmapped / not contiguous). */
static inline void *fq_ptr(const struct fq_mem *m, uint64_t off, uint64_t len)
{
	return gmem_ptr(m->mem, FQ_GPA_BASE + off, len);
}

/* True if [p, p+len) lies inside one region's mapping. */
static inline bool fq_in_mapping(const struct fq_mem *m, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (unsigned i = 0; i < m->nreg; i++) {
		const struct fq_region *r = &m->reg[i];

		if (b >= r->host && len <= r->len && b - r->host <= (ptrdiff_t)(r->len - len))
			return true;
	}
	return false;
}

/* ---- the device-side loop ---------------------------------------------- */

#define FQ_MAX_HELD 1040u

struct fq_run {
	struct virtq vq;
	struct fq_mem *m;
	unsigned max_iov;
	struct iovec iov[VIRTQ_MAX_IOV];
	struct virtq_elem held[FQ_MAX_HELD];  /* popped, not pushed (iov pointers stale) */
	uint32_t held_len[FQ_MAX_HELD];
	unsigned nheld;
	unsigned pops;
	volatile uint8_t sink;
};

/* Check one popped element, touch its buffers, and keep it for the push. */
static inline void fq_take(struct fq_run *r, const struct virtq_elem *e)
{
	uint64_t in_bytes = 0;
	unsigned i, n = e->out_num + e->in_num;

	FUZZ_CHECK(e->iov == r->iov, "elem iov %p, given %p", (void *)e->iov, (void *)r->iov);
	FUZZ_CHECK(n <= r->max_iov, "out %u + in %u > max %u", e->out_num, e->in_num,
		   r->max_iov);
	FUZZ_CHECK(e->ndesc >= 1 && e->ndesc <= r->vq.num, "ndesc %u, num %u", e->ndesc,
		   r->vq.num);
	if (!r->vq.packed)
		FUZZ_CHECK(e->id < r->vq.num, "split head %u >= num %u", e->id, r->vq.num);
	for (i = 0; i < n; i++) {
		const struct iovec *v = &e->iov[i];

		FUZZ_CHECK(v->iov_len > 0, "iov %u is empty", i);
		FUZZ_CHECK(fq_in_mapping(r->m, v->iov_base, v->iov_len),
			   "iov %u [%p, +%zu) outside guest memory", i, v->iov_base, v->iov_len);
		/* Touch both ends: a wrong pointer faults even if the check above
		 * were wrong. */
		r->sink ^= ((const uint8_t *)v->iov_base)[0];
		r->sink ^= ((const uint8_t *)v->iov_base)[v->iov_len - 1];
		if (i >= e->out_num)
			in_bytes += v->iov_len;
	}
	FUZZ_CHECK(r->nheld < FQ_MAX_HELD, "too many held");
	r->held[r->nheld] = *e;
	r->held_len[r->nheld] = in_bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)in_bytes;
	r->nheld++;
	r->pops++;
	FUZZ_CHECK(r->vq.inflight == r->nheld, "inflight %llu, held %u",
		   (unsigned long long)r->vq.inflight, r->nheld);
}

/* Return every held element, newest first, then ask about notifications. */
static inline void fq_push_all(struct fq_run *r)
{
	while (r->nheld) {
		r->nheld--;
		virtq_push(&r->vq, &r->held[r->nheld], r->held_len[r->nheld]);
	}
	if (!r->vq.broken)
		FUZZ_CHECK(r->vq.inflight == 0, "inflight %llu after pushing everything",
			   (unsigned long long)r->vq.inflight);
	(void)virtq_needs_notify(&r->vq);
}

/*
 * Pop until nothing is left, the queue breaks, or @limit pops; push back
 * every @batch pops (0: only at the end). Returns the last virtq_pop result.
 */
static inline int fq_pop_loop(struct fq_run *r, unsigned limit, unsigned batch)
{
	struct virtq_elem e;
	int ret = 0;

	virtq_disable_notify(&r->vq);
	while (r->pops < limit) {
		memset(&e, 0, sizeof(e));
		ret = virtq_pop(&r->vq, r->m->mem, &e, r->iov, r->max_iov);
		FUZZ_CHECK(ret == 1 || ret == 0 || ret == -EIO, "virtq_pop returned %d", ret);
		if (ret != 1)
			break;
		fq_take(r, &e);
		if (batch && r->nheld >= batch)
			fq_push_all(r);
	}
	fq_push_all(r);
	if (log_max_level >= LOG_DEBUG)
		fprintf(stderr, "fuzz: %s ring, num %u: %u popped, %s\n",
			r->vq.packed ? "packed" : "split", r->vq.num, r->pops,
			r->vq.broken ? "broken" : "ok");
	if (ret == -EIO || r->vq.broken) {
		FUZZ_CHECK(r->vq.broken, "-EIO without the queue marked broken");
		FUZZ_CHECK(virtq_pop(&r->vq, r->m->mem, &e, r->iov, r->max_iov) == -EIO,
			   "a broken queue popped again");
		FUZZ_CHECK(!virtq_has_avail(&r->vq), "a broken queue has buffers");
	} else if (ret == 0) {
		/* Nothing changed the driver's side since: still nothing. */
		FUZZ_CHECK(!virtq_has_avail(&r->vq), "pop said empty, has_avail disagrees");
		FUZZ_CHECK(!virtq_enable_notify(&r->vq), "enable_notify saw new buffers");
		virtq_disable_notify(&r->vq);
	}
	return ret;
}

/* Re-initialise a second queue from virtq_get_base(): same position. */
static inline void fq_check_resume(struct fq_run *r, const struct virtq_config *cfg0)
{
	struct virtq_config cfg = *cfg0;
	struct virtq vq2;

	cfg.base = virtq_get_base(&r->vq);
	cfg.inflight = NULL;
	FUZZ_CHECK(virtq_init(&vq2, &cfg) == 0, "resume at base %#x refused", cfg.base);
	FUZZ_CHECK(vq2.last_avail_idx == r->vq.last_avail_idx, "resume at %u, was at %u",
		   vq2.last_avail_idx, r->vq.last_avail_idx);
	if (cfg.packed)
		FUZZ_CHECK(vq2.avail_wrap_counter == r->vq.avail_wrap_counter,
			   "resume lost the wrap counter");
	virtq_fini(&vq2);
}

/*
 * Every popped request was pushed: a successor taking over the inflight
 * area (as after a crash right now) must find nothing to resubmit.
 */
static inline void fq_check_inflight_clean(struct fq_run *r, const struct virtq_config *cfg0)
{
	struct virtq_config cfg = *cfg0;
	struct virtq vq2;
	int ret;

	cfg.base = virtq_get_base(&r->vq);
	ret = virtq_init(&vq2, &cfg);
	FUZZ_CHECK(ret == 0, "re-init over the inflight area: %d", ret);
	FUZZ_CHECK(virtq_resubmit_pending(&vq2) == 0,
		   "%u requests to resubmit, none was in flight", virtq_resubmit_pending(&vq2));
	virtq_fini(&vq2);
}
/* Ring areas of a queue of @num entries at the fixed offsets. */
static inline bool fq_config(const struct fq_mem *m, struct virtq_config *cfg, unsigned num,
			     bool packed, bool event_idx, bool indirect, uint16_t base)
{
	uint64_t ds, drs, dvs;

	virtq_area_sizes(num, packed, &ds, &drs, &dvs);
	*cfg = (struct virtq_config){
		.num = num, .packed = packed, .event_idx = event_idx, .indirect = indirect,
		.desc = fq_ptr(m, FQ_DESC_OFF, ds),
		.driver = fq_ptr(m, FQ_DRIVER_OFF, drs),
		.device = fq_ptr(m, FQ_DEVICE_OFF, dvs),
		.base = base,
	};
	return cfg->desc && cfg->driver && cfg->device;
}

/*
 * Whole target body for a split or packed ring image: header, image,
 * init, pop/push rounds, invariants.
 */
static inline void fq_run_image(const uint8_t *data, size_t size, bool packed)
{
	static struct fq_run r;   /* big (iov array); one input at a time */
	struct fuzz_in in = { data, size };
	struct virtq_config cfg;
	struct fq_mem m;
	struct fq_hdr h;
	unsigned num, limit, inum = 0;
	uint16_t base, avail_idx = 0;
	uint8_t *area = NULL;
	uint64_t area_size = 0;
	int ret;

	fin_copy(&in, &h, sizeof(h));
	num = fq_num(packed, h.num_sel);
	base = (uint16_t)(h.base_lo | h.base_hi << 8);
	if (packed)   /* keep the index in range: init refuses others (tested below) */
		base = (uint16_t)(((base & 0x7fffu) % num) | (base & 0x8000u));
	fq_mem_init(&m, in.p, in.n, (enum fq_mem_mode)((h.flags & FQ_MODE_MASK) >> FQ_MODE_SHIFT));

	memset(&r.vq, 0, sizeof(r.vq));
	r.m = &m;
	r.max_iov = fq_max_iov[h.max_iov_sel & 7];
	r.nheld = 0;
	r.pops = 0;
	FUZZ_SETUP(fq_config(&m, &cfg, num, packed, h.flags & FQ_F_EVENT_IDX,
			     h.flags & FQ_F_INDIRECT, base), "ring areas");
	if (h.flags & FQ_F_INFLIGHT) {
		/* Exactly the size asked for, so ASan sees any overrun. */
		inum = num + h.inflight_extra % 64u;
		area_size = virtq_inflight_size(inum, packed);
		area = malloc(area_size);
		FUZZ_SETUP(area, "malloc");
		memset(area, 0, area_size);
		if (in.n > FQ_INFLIGHT_OFF) {
			size_t n = in.n - FQ_INFLIGHT_OFF;

			n = n < FQ_INFLIGHT_MAX ? n : FQ_INFLIGHT_MAX;
			memcpy(area, in.p + FQ_INFLIGHT_OFF, n < area_size ? n : area_size);
		}
		cfg.inflight = area;
		cfg.inflight_num = inum;
	}
	ret = virtq_init(&r.vq, &cfg);
	FUZZ_CHECK(ret == 0, "virtq_init(num %u, base %#x) = %d", num, base, ret);
	if (area && log_max_level >= LOG_DEBUG)
		fprintf(stderr, "fuzz: inflight area of %u: %u to resubmit, at %u%s\n", inum,
			virtq_resubmit_pending(&r.vq), r.vq.last_avail_idx,
			r.vq.broken ? ", broken" : "");
	if (packed) {
		struct virtq bad;
		struct virtq_config c = cfg;

		c.base = (uint16_t)(num | (base & 0x8000u));
		FUZZ_CHECK(num > 0x7fff || virtq_init(&bad, &c) == -EINVAL,
			   "packed base index %u accepted for num %u", num, num);
	} else {
		memcpy(&avail_idx, (uint8_t *)cfg.driver + 2, 2);
	}

	/* Enough for any ring the driver could publish (and recovered
	 * requests), and some. */
	limit = 4 * num + inum + 16;
	ret = fq_pop_loop(&r, limit, h.batch);
	/* (Recovery from an inflight area ignores base.) */
	if (!packed && ret == 0 && !area)
		FUZZ_CHECK(r.pops == (uint16_t)(avail_idx - base),
			   "popped %u, driver published %u", r.pops,
			   (uint16_t)(avail_idx - base));
	if (!r.vq.broken) {
		fq_check_resume(&r, &cfg);
		if (area && ret == 0)
			fq_check_inflight_clean(&r, &cfg);
	}
	virtq_fini(&r.vq);
	free(area);
	fq_mem_fini(&m);
}

#endif
