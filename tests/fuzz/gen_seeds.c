/* SPDX-License-Identifier: MIT */
/*
 * gen_seeds.c - writes the seed corpus of every fuzz target, built from
 * code rather than by hand: rings are filled by the driver side of virtq
 * (virtq_drv_*), blk requests and vhost-user sessions (a QEMU-like
 * handshake and variations) are assembled field by field in the formats
 * of fuzz_formats.h. Output is deterministic.
 *
 *   gen_seeds DIR          write DIR/<target>/<seed> (existing seeds of the
 *                          same name are replaced; others are left alone)
 *   gen_seeds --check DIR  exit 1 if any seed in DIR differs from what
 *                          would be written (the `fuzz` meson suite runs it)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "fuzz_formats.h"
#include "fuzz_virtq.h"
#include "virtq/virtq.h"
#include "vhost/vhost_msg.h"

static const char *out_dir;
static bool check_only;
static unsigned n_written, n_stale;

/* ---- output -------------------------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_put(struct buf *b, const void *data, size_t len)
{
	if (!len)
		return;
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2 + 256;
		b->p = realloc(b->p, b->cap);
		if (!b->p) {
			perror("realloc");
			exit(2);
		}
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void buf_u8(struct buf *b, uint8_t v)
{
	buf_put(b, &v, 1);
}

static void buf_u16(struct buf *b, uint16_t v)
{
	buf_u8(b, (uint8_t)v);
	buf_u8(b, (uint8_t)(v >> 8));
}

static void emit(const char *target, const struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void emit(const char *target, const struct buf *b, const char *fmt, ...)
{
	char name[128], path[512];
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	if (!check_only)
		mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	if (b->len > 65536) {
		fprintf(stderr, "gen_seeds: %s: %zu bytes, more than 64 KiB\n", path, b->len);
		exit(2);
	}
	if (check_only) {
		uint8_t *old = malloc(b->len + 1);
		size_t got = 0;

		f = fopen(path, "rb");
		if (f) {
			got = fread(old, 1, b->len + 1, f);
			fclose(f);
		}
		if (!f || got != b->len || memcmp(old, b->p, b->len)) {
			fprintf(stderr, "gen_seeds: %s is %s\n", path, f ? "out of date" : "missing");
			n_stale++;
		}
		free(old);
		n_written++;
		return;
	}
	f = fopen(path, "wb");
	if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f)) {
		fprintf(stderr, "gen_seeds: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	n_written++;
}

/* ---- rings: split and packed images ------------------------------------- */

static uint8_t image[FQ_MEM_SIZE] __attribute__((aligned(4096)));

static uint64_t gpa(uint64_t off)
{
	return FQ_GPA_BASE + off;
}

/* A ring on the image, resumed at @base, as the fuzz targets will map it. */
static void ring_init(struct virtq_drv *d, bool packed, unsigned num, bool event_idx,
		      uint16_t base)
{
	memset(image, 0, sizeof(image));
	if (!packed) {
		memcpy(image + FQ_DRIVER_OFF + 2, &base, 2);   /* avail->idx */
		memcpy(image + FQ_DEVICE_OFF + 2, &base, 2);   /* used->idx */
	}
	if (virtq_drv_init(d, num, packed, event_idx, image + FQ_DESC_OFF,
			   image + FQ_DRIVER_OFF, image + FQ_DEVICE_OFF)) {
		fprintf(stderr, "gen_seeds: virtq_drv_init(%u)\n", num);
		exit(2);
	}
	if (packed) {
		d->next_avail = d->last_used = base & 0x7fff;
		d->avail_wrap_counter = d->used_wrap_counter = base >> 15;
		d->kicked_avail = base;
	}
}

/* Request shapes a virtio-blk driver produces, and a few harder ones. */
enum shape {
	SH_BLK3,        /* header | data (in) | status (in) */
	SH_BLK2,        /* header + data (out) | status (in) */
	SH_INDIRECT,    /* SH_BLK3 through an aligned indirect table */
	SH_IND_CROSS,   /* indirect table misaligned and across a page boundary */
	SH_CROSS,       /* buffers crossing page (region) boundaries */
	SH_LONG,        /* 16 small buffers */
	SH_ZERO,        /* with a zero-length buffer in the middle */
	SH_HOLE,        /* a buffer on page FQ_HOLE_PAGE (unmapped in hole mode) */
};

static unsigned next_table = 0;   /* bump allocator for tables */
static uint64_t next_buf;

static uint64_t alloc_buf(uint32_t len)
{
	uint64_t off = next_buf;

	next_buf += (len + 63u) & ~63u;
	if (next_buf > FQ_MEM_SIZE - 0x1000u) {   /* wrap, staying off the top page */
		next_buf = FQ_BUF_OFF + 0x2000u;
		off = next_buf;
		next_buf += (len + 63u) & ~63u;
	}
	return off;
}

static int add_shape(struct virtq_drv *d, enum shape sh, void *token)
{
	static uint8_t table[16 * 20] __attribute__((aligned(16)));
	struct virtq_drv_buf b[16];
	unsigned out = 1, in = 2, i, n;
	uint64_t toff = 0;
	int ret;

	b[0] = (struct virtq_drv_buf){ gpa(alloc_buf(16)), 16 };
	b[1] = (struct virtq_drv_buf){ gpa(alloc_buf(512)), 512 };
	b[2] = (struct virtq_drv_buf){ gpa(alloc_buf(1)), 1 };
	switch (sh) {
	case SH_BLK2:
		b[0].len = 16 + 512;
		b[1] = b[2];
		in = 1;
		break;
	case SH_CROSS:
		b[0] = (struct virtq_drv_buf){ gpa(0x3ff8), 16 };
		b[1] = (struct virtq_drv_buf){ gpa(0x4f00), 0x1200 };   /* 3 pages */
		break;
	case SH_LONG:
		for (i = 0; i < 16; i++)
			b[i] = (struct virtq_drv_buf){ gpa(alloc_buf(32)), 32 };
		out = 8;
		in = 8;
		break;
	case SH_ZERO:
		b[1].len = 0;
		break;
	case SH_HOLE:
		b[1] = (struct virtq_drv_buf){ gpa(FQ_HOLE_PAGE * FQ_PAGE + 0x100), 512 };
		break;
	default:
		break;
	}
	n = out + in;
	if (sh == SH_INDIRECT || sh == SH_IND_CROSS) {
		/* Aligned tables low in the buffer area; misaligned ones
		 * across the page boundaries at 0x4000, 0x5000, 0x6000. */
		toff = sh == SH_INDIRECT ? FQ_BUF_OFF + 0x100u * (next_table % 16)
					 : 0x3fe4u + FQ_PAGE * (next_table % 3);
		next_table++;
		ret = virtq_drv_add(d, b, out, in, token, table, gpa(toff));
		if (!ret)
			memcpy(image + toff, table, n * 16);
		return ret;
	}
	return virtq_drv_add(d, b, out, in, token, NULL, 0);
}

struct ring_seed {
	const char *name;
	unsigned num_sel;
	uint8_t flags;        /* FQ_F_* */
	enum fq_mem_mode mode;
	uint16_t base;
	uint8_t batch, max_iov_sel;
	unsigned nreq;
	const enum shape *shapes;   /* cycled */
	unsigned nshapes;
};

static const enum shape sh_blk[] = { SH_BLK3, SH_BLK2 };
static const enum shape sh_mix[] = { SH_BLK3, SH_INDIRECT, SH_CROSS, SH_BLK2, SH_IND_CROSS,
				     SH_ZERO, SH_LONG };
static const enum shape sh_ind[] = { SH_INDIRECT, SH_IND_CROSS };
static const enum shape sh_cross[] = { SH_CROSS, SH_LONG, SH_ZERO };
static const enum shape sh_hole[] = { SH_BLK3, SH_HOLE, SH_BLK3 };

#define SHAPES(a) a, (unsigned)(sizeof(a) / sizeof((a)[0]))

static void gen_ring(const char *target, bool packed, const struct ring_seed *s)
{
	unsigned num = packed ? s->num_sel + 1u : 1u << (s->num_sel % 9u);
	struct fq_hdr h = {
		.num_sel = (uint8_t)s->num_sel,
		.flags = (uint8_t)(s->flags | s->mode << FQ_MODE_SHIFT),
		.base_lo = (uint8_t)s->base, .base_hi = (uint8_t)(s->base >> 8),
		.batch = s->batch, .max_iov_sel = s->max_iov_sel,
	};
	struct virtq_drv d;
	struct buf b = { 0 };
	size_t len = sizeof(image);

	ring_init(&d, packed, num, s->flags & FQ_F_EVENT_IDX, s->base);
	next_buf = FQ_BUF_OFF;
	next_table = 0;
	for (unsigned i = 0; i < s->nreq; i++)
		if (add_shape(&d, s->shapes[i % s->nshapes], &d))
			break;   /* ring full */
	(void)virtq_drv_kick_prepare(&d);
	virtq_drv_fini(&d);
	while (len && !image[len - 1])
		len--;   /* the targets zero-pad */
	buf_put(&b, &h, sizeof(h));
	buf_put(&b, image, len);
	emit(target, &b, "%s-%s", packed ? "packed" : "split", s->name);
	free(b.p);
}

static void gen_rings(void)
{
	const struct ring_seed split[] = {
		{ "blk-n16-flat", 4, 0, FQ_MEM_FLAT, 0, 0, 0, 3, SHAPES(sh_blk) },
		{ "mix-n16-tiny-ev-ind", 4, FQ_F_EVENT_IDX | FQ_F_INDIRECT, FQ_MEM_TINY, 0, 0, 0,
		  7, SHAPES(sh_mix) },
		{ "mix-n256-flat-wrap", 8, FQ_F_EVENT_IDX | FQ_F_INDIRECT, FQ_MEM_FLAT, 0xfffd,
		  0, 0, 9, SHAPES(sh_mix) },
		{ "ind-n1", 0, FQ_F_INDIRECT, FQ_MEM_FLAT, 7, 0, 0, 1, SHAPES(sh_ind) },
		{ "hole-n8", 3, FQ_F_INDIRECT, FQ_MEM_HOLE, 0, 0, 0, 3, SHAPES(sh_hole) },
		{ "cross-n64-two", 6, 0, FQ_MEM_TWO, 100, 0, 0, 3, SHAPES(sh_cross) },
		{ "full-n4-batch1", 2, FQ_F_EVENT_IDX | FQ_F_INDIRECT, FQ_MEM_TINY, 0, 1, 0, 4,
		  SHAPES(sh_ind) },
		{ "ind-n32-tiny", 5, FQ_F_INDIRECT, FQ_MEM_TINY, 0x8000, 2, 0, 6, SHAPES(sh_ind) },
		{ "mix-n16-maxiov8", 4, FQ_F_INDIRECT, FQ_MEM_TINY, 0, 0, 4, 7, SHAPES(sh_mix) },
		{ "ind-not-negotiated", 4, 0, FQ_MEM_FLAT, 0, 0, 0, 2, SHAPES(sh_ind) },
	};
	const struct ring_seed packed[] = {
		{ "blk-n16-flat", 15, 0, FQ_MEM_FLAT, 0x8000, 0, 0, 3, SHAPES(sh_blk) },
		{ "mix-n16-tiny-ev-ind", 15, FQ_F_EVENT_IDX | FQ_F_INDIRECT, FQ_MEM_TINY, 0x8000,
		  0, 0, 7, SHAPES(sh_mix) },
		{ "mix-n256-wrap", 255, FQ_F_EVENT_IDX | FQ_F_INDIRECT, FQ_MEM_FLAT,
		  0x8000 | 250, 0, 0, 9, SHAPES(sh_mix) },
		{ "ind-n1", 0, FQ_F_INDIRECT, FQ_MEM_FLAT, 0x8000, 0, 0, 1, SHAPES(sh_ind) },
		{ "blk-n3-odd-wrap0", 2, FQ_F_EVENT_IDX, FQ_MEM_FLAT, 1, 0, 0, 2, SHAPES(sh_blk) },
		{ "hole-n8", 7, FQ_F_INDIRECT, FQ_MEM_HOLE, 0x8000, 0, 0, 3, SHAPES(sh_hole) },
		{ "cross-n100-two", 99, 0, FQ_MEM_TWO, 0x8000 | 90, 0, 0, 3, SHAPES(sh_cross) },
		{ "full-n6-batch1", 5, FQ_F_EVENT_IDX | FQ_F_INDIRECT, FQ_MEM_TINY, 0x8000, 1, 0, 6,
		  SHAPES(sh_ind) },
		{ "ind-n32-tiny", 31, FQ_F_INDIRECT, FQ_MEM_TINY, 0x8000 | 30, 2, 0, 6,
		  SHAPES(sh_ind) },
		{ "mix-n16-maxiov8", 15, FQ_F_INDIRECT, FQ_MEM_TINY, 0x8000, 0, 4, 7,
		  SHAPES(sh_mix) },
		{ "ind-not-negotiated", 15, 0, FQ_MEM_FLAT, 0x8000, 0, 0, 2, SHAPES(sh_ind) },
	};

	for (size_t i = 0; i < sizeof(split) / sizeof(split[0]); i++)
		gen_ring("fuzz_virtq_split", false, &split[i]);
	for (size_t i = 0; i < sizeof(packed) / sizeof(packed[0]); i++)
		gen_ring("fuzz_virtq_packed", true, &packed[i]);
}

/*
 * Inflight tracking: a device pops every request of a ring with a fresh
 * inflight area, completes some, and "crashes": the seed is the ring as it
 * then is, with the area at FQ_INFLIGHT_OFF, for a successor to recover.
 */
static void gen_inflight_one(bool packed, unsigned num_sel, uint8_t extra, uint16_t base,
			     unsigned nreq, unsigned complete_every, const char *name)
{
	static struct fq_run r;
	unsigned num = packed ? num_sel + 1u : 1u << (num_sel % 9u), inum = num + extra % 64u;
	struct fq_hdr h = {
		.num_sel = (uint8_t)num_sel,
		.flags = FQ_F_INFLIGHT | FQ_F_INDIRECT | FQ_F_EVENT_IDX,
		.base_lo = (uint8_t)base, .base_hi = (uint8_t)(base >> 8),
		.inflight_extra = extra,
	};
	uint64_t area_size = virtq_inflight_size(inum, packed);
	uint8_t *area = calloc(1, area_size);
	struct virtq_config cfg;
	struct virtq_elem e;
	struct virtq_drv d;
	struct fq_mem m;
	struct buf b = { 0 };
	size_t len = sizeof(image);
	unsigned i, n = 0;

	if (!area || area_size > FQ_INFLIGHT_MAX) {
		fprintf(stderr, "gen_seeds: inflight area of %u entries\n", inum);
		exit(2);
	}
	ring_init(&d, packed, num, true, base);
	next_buf = FQ_BUF_OFF;
	next_table = 0;
	for (i = 0; i < nreq; i++)
		if (add_shape(&d, sh_mix[i % 4], &d))
			break;
	virtq_drv_fini(&d);

	fq_mem_init(&m, image, sizeof(image), FQ_MEM_FLAT);
	if (!fq_config(&m, &cfg, num, packed, true, true, base)) {
		fprintf(stderr, "gen_seeds: ring areas\n");
		exit(2);
	}
	cfg.inflight = area;
	cfg.inflight_num = inum;
	memset(&r.vq, 0, sizeof(r.vq));
	if (virtq_init(&r.vq, &cfg)) {
		fprintf(stderr, "gen_seeds: virtq_init with inflight\n");
		exit(2);
	}
	while (n < FQ_MAX_HELD && virtq_pop(&r.vq, m.mem, &e, r.iov, VIRTQ_MAX_IOV) == 1)
		r.held[n++] = e;
	for (i = 0; i < n; i++)
		if (complete_every && i % complete_every == 0)
			virtq_push(&r.vq, &r.held[i], 0);
	virtq_fini(&r.vq);
	/* The ring as the device left it (used entries), and the area. */
	if (pread(m.fd, image, sizeof(image), 0) != (ssize_t)sizeof(image)) {
		perror("gen_seeds: pread");
		exit(2);
	}
	fq_mem_fini(&m);
	memcpy(image + FQ_INFLIGHT_OFF, area, area_size);
	free(area);
	while (len && !image[len - 1])
		len--;
	buf_put(&b, &h, sizeof(h));
	buf_put(&b, image, len);
	emit(packed ? "fuzz_virtq_packed" : "fuzz_virtq_split", &b, "%s-inflight-%s",
	     packed ? "packed" : "split", name);
	free(b.p);
}

static void gen_inflight(void)
{
	for (int p = 0; p <= 1; p++) {
		bool packed = p;

		gen_inflight_one(packed, packed ? 15 : 4, 0, packed ? 0x8000 : 0, 6, 0,
				 "none-done");
		gen_inflight_one(packed, packed ? 15 : 4, 3, packed ? 0x8000 | 9 : 0xfffe, 6, 2,
				 "half-done");
		gen_inflight_one(packed, packed ? 7 : 3, 0, packed ? 0x8000 : 0, 8, 1,
				 "all-done");
		gen_inflight_one(packed, packed ? 63 : 6, 17, packed ? 0x8000 | 60 : 300, 10, 3,
				 "wrap");
	}
}

/* ---- indirect tables ------------------------------------------------------ */

struct ind_seed {
	const char *name;
	uint8_t flags;        /* FQI_F_* */
	enum fq_mem_mode mode;
	uint8_t num_sel;
	uint16_t table_off;   /* image offset (>= FQ_BUF_OFF) */
	int32_t len_delta;    /* added to the table's true length */
	unsigned n;           /* entries */
	uint16_t base;
	int twist;            /* 0 none, 1 nested indirect, 2 split loop, 3 bad order */
};

static void gen_indirect_one(const struct ind_seed *s)
{
	bool packed = s->flags & FQI_F_PACKED;
	bool rel = s->flags & FQI_F_RELATIVE;
	struct fqi_hdr h = { .flags = s->flags, .mode = (uint8_t)s->mode,
			     .num_sel = s->num_sel };
	uint16_t off = (uint16_t)(s->table_off - FQ_BUF_OFF);
	uint32_t len = (uint32_t)((int32_t)(s->n * 16) + s->len_delta);
	struct buf b = { 0 };

	memcpy(h.table_off, &off, 2);
	memcpy(h.table_len, &len, 4);
	memcpy(h.base, &s->base, 2);
	buf_put(&b, &h, sizeof(h));
	for (unsigned i = 0; i < s->n; i++) {
		/* Buffers around 0xa000, crossing a page boundary now and then. */
		uint64_t boff = 0xa000u + i * 0x180u;
		uint64_t addr = rel ? boff : gpa(boff);
		uint32_t blen = i == 0 ? 16 : i == s->n - 1 ? 1 : 0x200;
		uint16_t flags = i ? VRING_DESC_F_WRITE : 0;
		uint16_t next = (uint16_t)(i + 1);

		if (s->twist == 1 && i == 1)
			flags = VRING_DESC_F_INDIRECT;
		if (s->twist == 3 && i == s->n - 1)
			flags = 0;   /* readable after writable */
		if (!packed && i + 1 < s->n)
			flags |= VRING_DESC_F_NEXT;
		if (s->twist == 2 && i + 1 == s->n) {
			flags |= VRING_DESC_F_NEXT;
			next = 0;    /* back to the start: a loop */
		}
		buf_put(&b, &addr, 8);
		buf_put(&b, &blen, 4);
		if (packed) {
			buf_u16(&b, 0);       /* id: ignored in tables */
			buf_u16(&b, flags);
		} else {
			buf_u16(&b, flags);
			buf_u16(&b, i + 1 < s->n || s->twist == 2 ? next : 0);
		}
	}
	emit("fuzz_virtq_indirect", &b, "%s-%s", packed ? "packed" : "split", s->name);
	free(b.p);
}

static void gen_indirect(void)
{
	const uint8_t P = FQI_F_PACKED, R = FQI_F_RELATIVE, S2 = FQI_F_SECOND,
		      S2I = FQI_F_SECOND | FQI_F_SECOND_IND;
	const struct ind_seed seeds[] = {
		{ "blk3", 0, FQ_MEM_FLAT, 4, 0x8000, 0, 3, 0, 0 },
		{ "blk3-rel-second", R | S2, FQ_MEM_TINY, 4, 0x8000, 0, 3, 0, 0 },
		{ "cross-page", S2I, FQ_MEM_TINY, 4, 0x3ff0, 0, 5, 0xfff0, 0 },
		{ "misaligned", S2, FQ_MEM_TWO, 3, 0x7ffb, 0, 4, 0, 0 },
		{ "len-ragged", 0, FQ_MEM_FLAT, 4, 0x8000, 5, 3, 0, 0 },
		{ "len-zero", 0, FQ_MEM_FLAT, 4, 0x8000, -48, 3, 0, 0 },
		{ "nested", S2, FQ_MEM_FLAT, 4, 0x8000, 0, 3, 0, 1 },
		{ "loop", 0, FQ_MEM_TINY, 4, 0x8000, 0, 4, 0, 2 },
		{ "order", 0, FQ_MEM_FLAT, 4, 0x8000, 0, 3, 0, 3 },
		{ "in-hole", R, FQ_MEM_HOLE, 4, FQ_HOLE_PAGE * FQ_PAGE - 0x20, 0, 3, 0, 0 },
		{ "long", R | S2I, FQ_MEM_TINY, 6, 0x4000, 0, 40, 0, 0 },
		{ "not-negotiated", FQI_F_NO_INDIR | S2, FQ_MEM_FLAT, 4, 0x8000, 0, 3, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		struct ind_seed s = seeds[i];

		gen_indirect_one(&s);
		/* The same for the packed ring (no loops there: no next field). */
		if (s.twist == 2)
			continue;
		s.flags |= P;
		s.num_sel = (uint8_t)((1u << s.num_sel) - 1);
		s.base = (uint16_t)(0x8000u | (s.base & 0x7fff));
		gen_indirect_one(&s);
	}
}

/* ---- blk requests ------------------------------------------------------------ */

struct blk_seed {
	const char *name;
	uint8_t flags;                 /* FB_F_* */
	uint32_t type;
	uint64_t sector;
	uint32_t out_data, in_data;    /* bytes after the header / before the status */
	const uint8_t *out_split;      /* split bytes (nout of them) */
	unsigned nout;
	const uint8_t *in_split;
	unsigned nin;
	const struct virtio_blk_discard_write_zeroes *segs;
	unsigned nsegs;
};

static void gen_blk_one(const struct blk_seed *s)
{
	struct virtio_blk_outhdr oh = { .type = s->type, .sector = s->sector };
	uint32_t out_len = (uint32_t)sizeof(oh) + s->out_data +
			   s->nsegs * (uint32_t)sizeof(s->segs[0]);
	uint32_t in_len = s->in_data + 1;
	struct fb_hdr h = { .flags = s->flags, .nout = (uint8_t)s->nout,
			    .nin = (uint8_t)s->nin };
	struct buf b = { 0 };

	h.out_len[0] = (uint8_t)out_len;
	h.out_len[1] = (uint8_t)(out_len >> 8);
	h.in_len[0] = (uint8_t)in_len;
	h.in_len[1] = (uint8_t)(in_len >> 8);
	buf_put(&b, &h, sizeof(h));
	buf_put(&b, s->out_split, s->nout);
	buf_put(&b, s->in_split, s->nin);
	buf_put(&b, &oh, sizeof(oh));
	if (s->nsegs)
		buf_put(&b, s->segs, s->nsegs * sizeof(s->segs[0]));
	for (uint32_t i = 0; i < s->out_data; i++)
		buf_u8(&b, (uint8_t)(i * 7 + 3));
	emit("fuzz_blk_req", &b, "%s", s->name);
	free(b.p);
}

static void gen_blk(void)
{
	/* Segment lengths: 16 = header, 0x88 = 8 * 64 = 512 bytes, 0xff = the rest. */
	static const uint8_t one[] = { 0xff };
	static const uint8_t hdr_rest[] = { 16, 0xff };
	static const uint8_t hdr_split[] = { 7, 9, 0x88, 0xff };
	static const uint8_t data_status[] = { 0x88, 0xff };
	static const uint8_t zeros_around[] = { 0, 0x88, 0, 0xff, 0 };
	static const uint8_t sectors[] = { 0x88, 0x88, 0x88, 0x88, 0xff };
	static const uint8_t ragged[] = { 100, 0x85, 3, 0xff };
	static const struct virtio_blk_discard_write_zeroes one_seg[] = {
		{ .sector = 8, .num_sectors = 16, .flags = 0 } };
	static const struct virtio_blk_discard_write_zeroes two_segs[] = {
		{ .sector = 0, .num_sectors = 8, .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP },
		{ .sector = 100, .num_sectors = 0, .flags = 0 } };
	static const struct virtio_blk_discard_write_zeroes bad_seg[] = {
		{ .sector = UINT64_MAX - 3, .num_sectors = 8, .flags = 2 } };
	const struct blk_seed seeds[] = {
		{ "read-512", 0, VIRTIO_BLK_T_IN, 0, 0, 512, one, 1, data_status, 2, NULL, 0 },
		{ "read-2k-file", FB_F_FILE, VIRTIO_BLK_T_IN, 8, 0, 2048, one, 1, sectors, 5,
		  NULL, 0 },
		{ "read-zero-segs", 0, VIRTIO_BLK_T_IN, 1, 0, 512, one, 1, zeros_around, 5, NULL,
		  0 },
		{ "write-1k", 0, VIRTIO_BLK_T_OUT, 2, 1024, 0, hdr_rest, 2, one, 1, NULL, 0 },
		{ "write-hdr-split-file", FB_F_FILE | FB_F_WRITEBACK, VIRTIO_BLK_T_OUT, 0, 1024,
		  0, hdr_split, 4, one, 1, NULL, 0 },
		{ "write-fua-file", FB_F_FILE | FB_F_FEATURES, VIRTIO_BLK_T_OUT, 16, 512, 0,
		  one, 1, one, 1, NULL, 0 },
		{ "write-read-only", FB_F_READ_ONLY, VIRTIO_BLK_T_OUT, 0, 512, 0, one, 1, one, 1,
		  NULL, 0 },
		{ "discard-storage-ro", FB_F_STORAGE_RO, VIRTIO_BLK_T_DISCARD, 0, 0, 0, one, 1,
		  one, 1, one_seg, 1 },
		{ "write-ragged", 0, VIRTIO_BLK_T_OUT, 0, 300, 0, ragged, 4, one, 1, NULL, 0 },
		{ "read-beyond", 0, VIRTIO_BLK_T_IN, 2048 /* null capacity: 1 MiB */, 0, 512, one, 1,
		  data_status, 2, NULL, 0 },
		{ "flush-file", FB_F_FILE | FB_F_WRITEBACK | FB_F_FEATURES | FB_F_FEAT_FLUSH,
		  VIRTIO_BLK_T_FLUSH, 0, 0, 0, one, 1, one, 1, NULL, 0 },
		{ "get-id", 0, VIRTIO_BLK_T_GET_ID, 0, 0, 20, one, 1, one, 1, NULL, 0 },
		{ "get-id-short", 0, VIRTIO_BLK_T_GET_ID, 0, 0, 7, one, 1, one, 1, NULL, 0 },
		{ "discard", 0, VIRTIO_BLK_T_DISCARD, 0, 0, 0, one, 1, one, 1, one_seg, 1 },
		{ "discard-file", FB_F_FILE, VIRTIO_BLK_T_DISCARD, 0, 0, 0, hdr_rest, 2, one, 1,
		  one_seg, 1 },
		{ "write-zeroes-file", FB_F_FILE, VIRTIO_BLK_T_WRITE_ZEROES, 0, 0, 0, one, 1, one,
		  1, two_segs, 2 },
		{ "write-zeroes-bad", 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, 0, 0, one, 1, one, 1,
		  bad_seg, 1 },
		{ "unsupported", 0, 99, 0, 0, 0, one, 1, one, 1, NULL, 0 },
		{ "no-status", 0, VIRTIO_BLK_T_IN, 0, 0, 0, one, 1, NULL, 0, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		gen_blk_one(&seeds[i]);
}

/* ---- vhost-user sessions ------------------------------------------------------ */

#define KIND_EVENT  0u
#define KIND_MEM64K (2u << FV_C_KIND_SHIFT)
#define V1          VHOST_USER_VERSION
#define ACK         (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)

/* A message whose memfd starts with @fill_len bytes of @fill. */
static void msg_fill(struct buf *b, uint32_t req, uint8_t flags, uint8_t ctl,
		     const void *payload, uint16_t size, const void *fill, uint16_t fill_len)
{
	struct fv_msg m = { .request = (uint8_t)req, .flags = flags,
			    .ctl = (uint8_t)(ctl | (fill_len ? FV_C_FILL : 0)),
			    .size = { (uint8_t)size, (uint8_t)(size >> 8) } };

	buf_put(b, &m, sizeof(m));
	for (uint16_t i = 0; i < size; i++)   /* no payload given: zeroes */
		buf_u8(b, payload ? ((const uint8_t *)payload)[i] : 0);
	if (fill_len) {
		buf_u16(b, fill_len);
		buf_put(b, fill, fill_len);
	}
}

static void msg(struct buf *b, uint32_t req, uint8_t flags, uint8_t ctl, const void *payload,
		uint16_t size)
{
	msg_fill(b, req, flags, ctl, payload, size, NULL, 0);
}

static void msg_u64(struct buf *b, uint32_t req, uint8_t flags, uint8_t ctl, uint64_t v)
{
	msg(b, req, flags, ctl, &v, 8);
}

static void msg_state(struct buf *b, uint32_t req, uint8_t flags, uint32_t index, uint32_t num)
{
	struct vhost_msg_vring_state st = { index, num };

	msg(b, req, flags, 0, &st, sizeof(st));
}

/* Guest memory: one 64 KiB region at FQ_GPA_BASE, starting with @fill. */
static void msg_mem_table(struct buf *b, uint8_t flags, const void *fill, uint16_t fill_len)
{
	struct vhost_msg_memory mt = { .nregions = 1 };
	size_t size = offsetof(struct vhost_msg_memory, regions) + sizeof(mt.regions[0]);

	mt.regions[0] = (struct vhost_msg_mem_region){
		.gpa = FQ_GPA_BASE, .size = 64u << 10, .uva = FV_SEED_UVA, .mmap_offset = 0 };
	msg_fill(b, VHOST_USER_SET_MEM_TABLE, flags, KIND_MEM64K | 1, &mt, (uint16_t)size,
		 fill, fill_len);
}

static void msg_mem_reg(struct buf *b, uint32_t req, uint8_t flags, uint64_t gpa_,
			uint64_t size, uint64_t uva, uint64_t off)
{
	struct vhost_msg_mem_single r = { .region = { gpa_, size, uva, off } };

	msg(b, req, flags, req == VHOST_USER_ADD_MEM_REG ? KIND_MEM64K | 1 : 0, &r, sizeof(r));
}

static void msg_addr(struct buf *b, uint8_t flags, unsigned q)
{
	uint64_t base = FV_SEED_UVA + FV_SEED_RING(q);
	struct vhost_msg_vring_addr a = {
		.index = q, .desc = base, .avail = base + 0x1000, .used = base + 0x2000,
	};

	msg(b, VHOST_USER_SET_VRING_ADDR, flags, 0, &a, sizeof(a));
}

static const uint64_t proto_all =
	(1ull << VHOST_USER_PROTOCOL_F_MQ) | (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
	(1ull << VHOST_USER_PROTOCOL_F_CONFIG) |
	(1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);

/* QEMU 7.2's vhost-user-blk start-up, up to "memory table sent". */
static void qemu_prefix_mem(struct buf *b, uint8_t f, uint64_t features, uint64_t proto,
			    const void *mem_fill, uint16_t mem_fill_len)
{
	struct vhost_msg_config cfg = { .offset = 0, .size = 60 };

	msg(b, VHOST_USER_GET_FEATURES, V1, 0, NULL, 0);
	msg(b, VHOST_USER_GET_PROTOCOL_FEATURES, V1, 0, NULL, 0);
	msg_u64(b, VHOST_USER_SET_PROTOCOL_FEATURES, V1, 0, proto);
	msg(b, VHOST_USER_GET_QUEUE_NUM, V1, 0, NULL, 0);
	msg(b, VHOST_USER_GET_MAX_MEM_SLOTS, V1, 0, NULL, 0);
	msg(b, VHOST_USER_SET_OWNER, f, 0, NULL, 0);
	msg(b, VHOST_USER_GET_CONFIG, V1, 0, &cfg, VHOST_USER_CONFIG_HDR_SIZE + 60);
	msg_u64(b, VHOST_USER_SET_VRING_CALL, f, KIND_EVENT | 1, 0);
	msg_u64(b, VHOST_USER_SET_VRING_CALL, f, KIND_EVENT | 1, 1);
	msg_u64(b, VHOST_USER_SET_FEATURES, f, 0, features);
	msg_mem_table(b, f, mem_fill, mem_fill_len);
}

static void qemu_prefix(struct buf *b, uint8_t f, uint64_t features)
{
	qemu_prefix_mem(b, f, features, proto_all, NULL, 0);
}

/* GET_INFLIGHT_FD, then SET_INFLIGHT_FD with a 64 KiB memfd starting with @area. */
static void inflight_msgs(struct buf *b, uint8_t f, unsigned nq, unsigned qsize, bool packed,
			  const void *area, uint16_t area_len)
{
	struct vhost_msg_inflight in = { .num_queues = (uint16_t)nq,
					 .queue_size = (uint16_t)qsize };

	msg(b, VHOST_USER_GET_INFLIGHT_FD, V1, 0, &in, sizeof(in));
	in.mmap_size = nq * virtq_inflight_size(qsize, packed);
	msg_fill(b, VHOST_USER_SET_INFLIGHT_FD, f, KIND_MEM64K | 1, &in, sizeof(in), area,
		 area_len);
}

/*
 * A crashed backend's leftovers: a split ring of 256 (vring 0's place in
 * guest memory) with requests a device popped under inflight tracking,
 * completing every third. *mem and *area get the guest memory and the
 * inflight area as they were at the crash (lengths trimmed).
 */
static void crash_snapshot(uint8_t *mem, uint16_t *mem_len, uint8_t *area, uint16_t *area_len)
{
	static struct fq_run r;
	uint64_t asz = virtq_inflight_size(256, false);
	struct virtq_config cfg;
	struct virtq_elem e;
	struct virtq_drv d;
	struct fq_mem m;
	size_t len = sizeof(image);
	unsigned i, n = 0;

	ring_init(&d, false, 256, true, 0);
	next_buf = FQ_BUF_OFF;
	next_table = 0;
	for (i = 0; i < 9; i++)
		add_shape(&d, sh_mix[i % 4], &d);
	virtq_drv_fini(&d);
	fq_mem_init(&m, image, sizeof(image), FQ_MEM_FLAT);
	fq_config(&m, &cfg, 256, false, true, true, 0);
	memset(area, 0, asz);
	cfg.inflight = area;
	cfg.inflight_num = 256;
	memset(&r.vq, 0, sizeof(r.vq));
	if (virtq_init(&r.vq, &cfg)) {
		fprintf(stderr, "gen_seeds: crash_snapshot: virtq_init\n");
		exit(2);
	}
	while (n < FQ_MAX_HELD && virtq_pop(&r.vq, m.mem, &e, r.iov, VIRTQ_MAX_IOV) == 1)
		r.held[n++] = e;
	for (i = 0; i < n; i += 3)
		virtq_push(&r.vq, &r.held[i], 1);
	virtq_fini(&r.vq);
	if (pread(m.fd, image, sizeof(image), 0) != (ssize_t)sizeof(image)) {
		perror("gen_seeds: pread");
		exit(2);
	}
	fq_mem_fini(&m);
	while (len && !image[len - 1])
		len--;
	memcpy(mem, image, len);
	*mem_len = (uint16_t)len;
	*area_len = (uint16_t)asz;
}

/* Configure and enable vring q (size num). */
static void ring_up(struct buf *b, uint8_t f, unsigned q, unsigned num, unsigned base)
{
	msg_state(b, VHOST_USER_SET_VRING_NUM, f, q, num);
	msg_state(b, VHOST_USER_SET_VRING_BASE, f, q, base);
	msg_addr(b, f, q);
	msg_u64(b, VHOST_USER_SET_VRING_KICK, f, KIND_EVENT | 1, q);
	msg_u64(b, VHOST_USER_SET_VRING_CALL, f, KIND_EVENT | 1, q);
	msg_state(b, VHOST_USER_SET_VRING_ENABLE, f, q, 1);
}

static void msg_iotlb(struct buf *b, uint8_t f, uint8_t type, uint64_t iova, uint64_t size,
		      uint64_t uaddr, uint8_t perm)
{
	struct vhost_msg_iotlb m = { .iova = iova, .size = size, .uaddr = uaddr, .perm = perm,
				     .type = type };

	msg(b, VHOST_USER_IOTLB_MSG, f, 0, &m, sizeof(m));
}

/* ACCESS_PLATFORM: IOTLB updates and invalidations, good and hostile. */
static void gen_vhost_iotlb(uint64_t fsplit)
{
	const uint64_t fiommu = fsplit | (1ull << VIRTIO_F_ACCESS_PLATFORM) |
				(1ull << VIRTIO_RING_F_INDIRECT_DESC);
	const uint64_t u = FV_SEED_UVA;
	struct buf b = { 0 };

	/* QEMU-like: rings mapped identity (IOVA = frontend address), the
	 * ring started, part of it invalidated (the ring stops), mapped again
	 * page by page, a storm of overlapping invalidations, then stopped. */
	buf_u8(&b, FV_S_POP | FV_S_ASYNC_STOP);
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, u, 0x10000, u, VHOST_ACCESS_RW); /* too early */
	qemu_prefix(&b, ACK, fiommu);
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, u, 0x10000, u, VHOST_ACCESS_RW);
	ring_up(&b, ACK, 0, 128, 0);
	msg_iotlb(&b, ACK, VHOST_IOTLB_INVALIDATE, u + FV_SEED_RING(0) + 0x800, 0x100, 0, 0);
	for (unsigned i = 0; i < 16; i++)
		msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, u + i * 0x1000ull, 0x1000, u + i * 0x1000ull,
			  i % 3 ? VHOST_ACCESS_RW : VHOST_ACCESS_RO);
	for (unsigned i = 0; i < 8; i++)
		msg_iotlb(&b, ACK, VHOST_IOTLB_INVALIDATE, u + i * 0x1800ull, 0x1001, 0, 0);
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, u, 0x10000, u, VHOST_ACCESS_RW);
	msg_state(&b, VHOST_USER_GET_VRING_BASE, V1, 0, 0);
	emit("fuzz_vhost_msg", &b, "iommu-iotlb");
	b.len = 0;

	/* Hostile IOTLB messages, each refused with the connection kept. */
	buf_u8(&b, FV_S_LISTEN);
	qemu_prefix(&b, ACK, fiommu);
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, u, 0, u, VHOST_ACCESS_RW);          /* size 0 */
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, ~0ull - 10, 0x100, u, VHOST_ACCESS_RW);
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, 0, 0x100, ~0ull - 10, VHOST_ACCESS_RW);
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, 0, ~0ull, 0, VHOST_ACCESS_RW);     /* huge */
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, 0, 0x1000, 0x1000, VHOST_ACCESS_RW); /* not shared */
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, 0, 0x1000, u, 0);                   /* no perm */
	msg_iotlb(&b, ACK, VHOST_IOTLB_MISS, 0, 0x1000, u, VHOST_ACCESS_RW);
	msg_iotlb(&b, ACK, 200, 0, 0x1000, u, VHOST_ACCESS_RW);
	msg_iotlb(&b, ACK, VHOST_IOTLB_INVALIDATE, 0, ~0ull, 0, 0);
	ring_up(&b, ACK, 0, 64, 0);                              /* waits: IOTLB empty */
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, u, 0x10000, u, VHOST_ACCESS_RO); /* used ring RO */
	msg_iotlb(&b, ACK, VHOST_IOTLB_UPDATE, u, 0x10000, u, VHOST_ACCESS_RW);
	emit("fuzz_vhost_msg", &b, "iommu-hostile");
	free(b.p);
}

static void gen_vhost(void)
{
	const uint64_t fsplit = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
				(1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	const uint64_t fpacked = fsplit | (1ull << VIRTIO_F_RING_PACKED) |
				 (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	struct vhost_msg_config wce = { .offset = 32, .size = 1, .payload = { 1 } };
	struct buf b = { 0 };

	gen_vhost_iotlb(fsplit);
	/* The healthy session: start vring 0, stop it, disconnect. */
	buf_u8(&b, FV_S_POP);
	qemu_prefix(&b, V1, fsplit);
	ring_up(&b, V1, 0, 256, 0);
	msg_state(&b, VHOST_USER_GET_VRING_BASE, V1, 0, 0);
	emit("fuzz_vhost_msg", &b, "qemu-split");
	b.len = 0;

	/* With REPLY_ACK on every request, both rings, async stops, listening. */
	buf_u8(&b, FV_S_LISTEN | FV_S_ASYNC_STOP | FV_S_POP);
	qemu_prefix(&b, ACK, fsplit);
	ring_up(&b, ACK, 0, 128, 5);
	ring_up(&b, ACK, 1, 64, 0);
	msg_state(&b, VHOST_USER_SET_VRING_ENABLE, ACK, 1, 0);
	msg_state(&b, VHOST_USER_GET_VRING_BASE, V1, 0, 0);
	msg_state(&b, VHOST_USER_GET_VRING_BASE, V1, 1, 0);
	emit("fuzz_vhost_msg", &b, "qemu-ack-two-rings-async");
	b.len = 0;

	/* Packed rings. */
	buf_u8(&b, FV_S_POP | FV_S_ASYNC_STOP);
	qemu_prefix(&b, ACK, fpacked);
	ring_up(&b, ACK, 0, 100, 0x8000);
	msg_state(&b, VHOST_USER_GET_VRING_BASE, V1, 0, 0);
	emit("fuzz_vhost_msg", &b, "qemu-packed");
	b.len = 0;

	/* Memory hot-plug while a ring runs: add, remove (ring stays), remove
	 * the ring's region (ring stops), add it back. */
	buf_u8(&b, FV_S_LISTEN | FV_S_POP);
	qemu_prefix(&b, ACK, fsplit);
	ring_up(&b, ACK, 0, 256, 0);
	msg_mem_reg(&b, VHOST_USER_ADD_MEM_REG, ACK, FQ_GPA_BASE + (1u << 20), 64u << 10,
		    FV_SEED_UVA + (1u << 20), 0);
	msg_mem_reg(&b, VHOST_USER_REM_MEM_REG, ACK, FQ_GPA_BASE + (1u << 20), 64u << 10,
		    FV_SEED_UVA + (1u << 20), 0);
	msg_mem_reg(&b, VHOST_USER_REM_MEM_REG, ACK, FQ_GPA_BASE, 64u << 10, FV_SEED_UVA, 0);
	msg_mem_reg(&b, VHOST_USER_ADD_MEM_REG, ACK, FQ_GPA_BASE, 64u << 10, FV_SEED_UVA, 0);
	msg_mem_table(&b, ACK, NULL, 0);
	emit("fuzz_vhost_msg", &b, "mem-hotplug");
	b.len = 0;

	/* Config space, kick changes while running, polling (NOFD), reset. */
	buf_u8(&b, FV_S_ASYNC_STOP);
	qemu_prefix(&b, ACK, fsplit);
	msg(&b, VHOST_USER_SET_CONFIG, ACK, 0, &wce, VHOST_USER_CONFIG_HDR_SIZE + 1);
	ring_up(&b, V1, 0, 256, 0);
	msg_u64(&b, VHOST_USER_SET_VRING_KICK, ACK, KIND_EVENT | 1, 0);
	msg_u64(&b, VHOST_USER_SET_VRING_KICK, ACK, 0, VHOST_USER_VRING_NOFD_MASK);
	msg_u64(&b, VHOST_USER_SET_VRING_ERR, ACK, KIND_EVENT | 1, 0);
	msg_u64(&b, VHOST_USER_SET_VRING_CALL, ACK, 0, VHOST_USER_VRING_NOFD_MASK);
	msg(&b, VHOST_USER_RESET_OWNER, ACK, 0, NULL, 0);
	msg(&b, VHOST_USER_GET_FEATURES, V1, 0, NULL, 0);
	emit("fuzz_vhost_msg", &b, "config-kick-reset");
	b.len = 0;

	/* Without protocol features: rings start without SET_VRING_ENABLE. */
	buf_u8(&b, FV_S_ONE_QUEUE | FV_S_POP);
	msg(&b, VHOST_USER_GET_FEATURES, V1, 0, NULL, 0);
	msg(&b, VHOST_USER_SET_OWNER, V1, 0, NULL, 0);
	msg_u64(&b, VHOST_USER_SET_FEATURES, V1, 0, 1ull << VIRTIO_F_VERSION_1);
	msg_mem_table(&b, V1, NULL, 0);
	msg_state(&b, VHOST_USER_SET_VRING_NUM, V1, 0, 32);
	msg_addr(&b, V1, 0);
	msg_u64(&b, VHOST_USER_SET_VRING_KICK, V1, KIND_EVENT | 1, 0);
	msg_state(&b, VHOST_USER_GET_VRING_BASE, V1, 0, 0);
	emit("fuzz_vhost_msg", &b, "legacy-no-protocol-features");
	b.len = 0;

	/* SPDK virtio-user: features before protocol features (no REPLY_ACK),
	 * GET_CONFIG of 256 bytes, enable before anything else, memory then a
	 * GET_FEATURES barrier, kick last, stop with GET_VRING_BASE. */
	{
		struct vhost_msg_config c256 = { .offset = 0, .size = VHOST_USER_MAX_CONFIG_SIZE };

		buf_u8(&b, FV_S_POP);
		msg(&b, VHOST_USER_SET_OWNER, V1, 0, NULL, 0);
		msg(&b, VHOST_USER_GET_FEATURES, V1, 0, NULL, 0);
		msg_u64(&b, VHOST_USER_SET_FEATURES, V1, 0, fsplit);
		msg(&b, VHOST_USER_GET_PROTOCOL_FEATURES, V1, 0, NULL, 0);
		msg_u64(&b, VHOST_USER_SET_PROTOCOL_FEATURES, V1, 0,
			(1ull << VHOST_USER_PROTOCOL_F_MQ) | (1ull << VHOST_USER_PROTOCOL_F_CONFIG));
		msg(&b, VHOST_USER_GET_CONFIG, V1, 0, &c256,
		    VHOST_USER_CONFIG_HDR_SIZE + VHOST_USER_MAX_CONFIG_SIZE);
		msg_state(&b, VHOST_USER_SET_VRING_ENABLE, V1, 0, 1);
		msg(&b, VHOST_USER_GET_QUEUE_NUM, V1, 0, NULL, 0);
		msg_u64(&b, VHOST_USER_SET_VRING_CALL, V1, KIND_EVENT | 1, 0);
		msg_mem_table(&b, V1, NULL, 0);
		msg(&b, VHOST_USER_GET_FEATURES, V1, 0, NULL, 0);
		msg_state(&b, VHOST_USER_SET_VRING_NUM, V1, 0, 256);
		msg_state(&b, VHOST_USER_SET_VRING_BASE, V1, 0, 0);
		msg_addr(&b, V1, 0);
		msg_u64(&b, VHOST_USER_SET_VRING_KICK, V1, KIND_EVENT | 1, 0);
		msg_state(&b, VHOST_USER_GET_VRING_BASE, V1, 0, 0);
		emit("fuzz_vhost_msg", &b, "spdk-virtio-user");
		b.len = 0;
	}

	/* Ring sizes refused: NACKed with an ack asked for; without, the ring
	 * reports on its error fd until a valid size repairs it. DPDK-style
	 * RESET_OWNER stop and restart on the same connection. NEED_REPLY on
	 * GETs (rust-vmm). Hundreds of GETs in a row. */
	buf_u8(&b, FV_S_POP | FV_S_ASYNC_STOP);
	qemu_prefix(&b, ACK, fsplit);
	msg_state(&b, VHOST_USER_SET_VRING_NUM, ACK, 0, 2048);
	msg_state(&b, VHOST_USER_SET_VRING_NUM, ACK, 1, 100);
	msg_u64(&b, VHOST_USER_SET_VRING_ERR, V1, KIND_EVENT | 1, 1);
	msg_state(&b, VHOST_USER_SET_VRING_NUM, V1, 1, 0);
	ring_up(&b, ACK, 0, 256, 0);
	ring_up(&b, V1, 1, 64, 0);
	msg(&b, VHOST_USER_GET_QUEUE_NUM, ACK, 0, NULL, 0);
	msg(&b, VHOST_USER_GET_MAX_MEM_SLOTS, ACK, 0, NULL, 0);
	msg_state(&b, VHOST_USER_SET_VRING_ENABLE, ACK, 0, 0);
	msg(&b, VHOST_USER_RESET_OWNER, ACK, 0, NULL, 0);
	msg_u64(&b, VHOST_USER_SET_VRING_CALL, ACK, KIND_EVENT | 1, 0);
	msg_u64(&b, VHOST_USER_SET_FEATURES, ACK, 0, fsplit);
	msg_mem_table(&b, ACK, NULL, 0);
	ring_up(&b, ACK, 0, 128, 0);
	for (unsigned i = 0; i < 300; i++)
		msg(&b, i % 2 ? VHOST_USER_GET_PROTOCOL_FEATURES : VHOST_USER_GET_FEATURES, V1, 0,
		    NULL, 0);
	emit("fuzz_vhost_msg", &b, "ring-size-reset-owner-pipeline");
	b.len = 0;

	/* Malformed messages, each closing the connection (listening: the
	 * fuzzer reconnects and goes on). */
	buf_u8(&b, FV_S_LISTEN);
	msg(&b, VHOST_USER_GET_FEATURES, V1, 0, NULL, 4);            /* wrong size */
	msg_u64(&b, VHOST_USER_SET_VRING_CALL, V1, KIND_EVENT | 9, 0); /* 9 fds */
	msg(&b, 99, ACK, 0, NULL, 0);                                 /* unknown */
	msg(&b, VHOST_USER_SET_OWNER, V1 | 0x10, 0, NULL, 0);         /* bad flags */
	msg(&b, VHOST_USER_GET_QUEUE_NUM, V1, FV_C_SPLIT, NULL, 0);
	emit("fuzz_vhost_msg", &b, "malformed");
	b.len = 0;

	/* A memory table whose region lies beyond its (4 KiB) memfd. */
	buf_u8(&b, FV_S_LISTEN);
	msg_u64(&b, VHOST_USER_SET_FEATURES, V1, 0, fsplit);
	{
		struct vhost_msg_memory mt = { .nregions = 1 };

		mt.regions[0] = (struct vhost_msg_mem_region){ FQ_GPA_BASE, 64u << 10,
							       FV_SEED_UVA, 0 };
		msg(&b, VHOST_USER_SET_MEM_TABLE, V1, (1u << FV_C_KIND_SHIFT) | 1, &mt,
		    offsetof(struct vhost_msg_memory, regions) + sizeof(mt.regions[0]));
	}
	emit("fuzz_vhost_msg", &b, "region-beyond-file");
	b.len = 0;

	/* Live migration: a log (1 MiB memfd: guest memory sits at 4 GiB),
	 * LOG_ALL and the vring log address on a running ring, a second log
	 * replacing the first, logging off, the ring stopped. */
	{
		const uint64_t log_all = 1ull << 26, used_gpa = FQ_GPA_BASE + FV_SEED_RING(0) + 0x2000;
		const uint64_t base = FV_SEED_UVA + FV_SEED_RING(0);
		struct vhost_msg_log lg = { .mmap_size = 1u << 20 };
		struct vhost_msg_vring_addr la = { .index = 0, .flags = 1, .desc = base,
						   .avail = base + 0x1000, .used = base + 0x2000,
						   .log = used_gpa };
		static const struct vhost_msg_log bad[] = {
			{ 64, 0 },                 /* too small for the memory table */
			{ 2u << 20, 0 },           /* longer than its file */
			{ 1u << 20, 1u << 30 },    /* offset beyond the file */
			{ UINT64_MAX, 8 },         /* huge, wrapping */
		};

		buf_u8(&b, FV_S_POP);
		qemu_prefix_mem(&b, V1, fsplit, proto_all | 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD,
				NULL, 0);
		ring_up(&b, V1, 0, 256, 0);
		msg(&b, VHOST_USER_SET_LOG_BASE, V1, (3u << FV_C_KIND_SHIFT) | 1, &lg, sizeof(lg));
		msg_u64(&b, VHOST_USER_SET_FEATURES, V1, 0, fsplit | log_all);
		msg(&b, VHOST_USER_SET_VRING_ADDR, V1, 0, &la, sizeof(la));
		msg(&b, VHOST_USER_SET_LOG_BASE, V1, (3u << FV_C_KIND_SHIFT) | 1, &lg, sizeof(lg));
		msg_u64(&b, VHOST_USER_SET_FEATURES, V1, 0, fsplit);
		msg_state(&b, VHOST_USER_GET_VRING_BASE, V1, 0, 0);
		emit("fuzz_vhost_msg", &b, "migration-log");
		b.len = 0;

		/* Logs that must be refused (each closes; the fuzzer reconnects),
		 * then a ring log address outside a good log. */
		buf_u8(&b, FV_S_LISTEN | FV_S_POP);
		for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
			qemu_prefix_mem(&b, V1, fsplit,
					proto_all | 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD, NULL, 0);
			msg(&b, VHOST_USER_SET_LOG_BASE, V1, (3u << FV_C_KIND_SHIFT) | 1, &bad[i],
			    sizeof(bad[i]));
		}
		qemu_prefix_mem(&b, V1, fsplit, proto_all | 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD,
				NULL, 0);
		msg(&b, VHOST_USER_SET_LOG_BASE, V1, KIND_EVENT | 1, &lg, sizeof(lg)); /* eventfd */
		qemu_prefix_mem(&b, V1, fsplit | log_all,
				proto_all | 1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD, NULL, 0);
		ring_up(&b, V1, 0, 256, 0);
		msg(&b, VHOST_USER_SET_LOG_BASE, V1, (3u << FV_C_KIND_SHIFT) | 1, &lg, sizeof(lg));
		la.log = 1ull << 40;
		msg(&b, VHOST_USER_SET_VRING_ADDR, V1, 0, &la, sizeof(la));
		emit("fuzz_vhost_msg", &b, "migration-log-hostile");
		b.len = 0;
	}

	/* Inflight tracking, fresh area: a ring started, popped, stopped. */
	buf_u8(&b, FV_S_POP | FV_S_ASYNC_STOP);
	qemu_prefix_mem(&b, ACK, fsplit, proto_all | 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD,
			NULL, 0);
	inflight_msgs(&b, ACK, 2, 256, false, NULL, 0);
	ring_up(&b, ACK, 0, 256, 0);
	msg_state(&b, VHOST_USER_GET_VRING_BASE, V1, 0, 0);
	emit("fuzz_vhost_msg", &b, "inflight-fresh");
	b.len = 0;

	/* Reconnect after a backend crash: ring and inflight area as the
	 * previous backend left them; the device must resubmit first. */
	{
		static uint8_t mem[FQ_MEM_SIZE], area[FQ_INFLIGHT_MAX];
		uint16_t mem_len, area_len;

		crash_snapshot(mem, &mem_len, area, &area_len);
		buf_u8(&b, FV_S_POP | FV_S_LISTEN);
		qemu_prefix_mem(&b, ACK, fsplit | 1ull << VIRTIO_RING_F_INDIRECT_DESC,
				proto_all | 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, mem,
				mem_len);
		inflight_msgs(&b, ACK, 1, 256, false, area, area_len);
		ring_up(&b, ACK, 0, 256, 0);
		msg_state(&b, VHOST_USER_GET_VRING_BASE, V1, 0, 0);
		ring_up(&b, ACK, 0, 256, 0);
		emit("fuzz_vhost_msg", &b, "inflight-recover");
		b.len = 0;
	}

	/* A payload size beyond the maximum, then a truncated message. */
	buf_u8(&b, 0);
	msg(&b, VHOST_USER_SET_OWNER, V1, 0, NULL, 0);
	{
		struct fv_msg m = { VHOST_USER_SET_MEM_TABLE, V1, 0, { 0x00, 0x10 } };

		buf_put(&b, &m, sizeof(m));
		buf_put(&b, "\x01\0\0\0", 4);
	}
	emit("fuzz_vhost_msg", &b, "truncated");
	free(b.p);
}

/* ---- control socket requests: text lines ----------------------------------- */

static void gen_mgmt(void)
{
	static const char *const seeds[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"help\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"version\",\"params\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"t\",\"params\":"
		"{\"s\":\"x\",\"n\":18446744073709551615,\"b\":true}}",
		"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"t\",\"params\":{\"n\":-1,\"s\":5}}",
		"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"help\"},"
		"{\"jsonrpc\":\"2.0\",\"method\":\"t\"},7]",
		"{\"jsonrpc\":\"2.0\",\"method\":\"version\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"t\",\"params\":[1,2]}",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		"{\"jsonrpc\":\"2.0\",\"id\":1.5e300,\"method\":\"t\\u0000\"}",
		"42",
	};
	struct buf b = { 0 };

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		b.len = 0;
		buf_put(&b, seeds[i], strlen(seeds[i]));
		emit("fuzz_mgmt_rpc", &b, "seed-%02zu", i);
	}
	free(b.p);
}

/* ---- QoS keys and bucket steps (fuzz_qos) ------------------------------- */

static void qos_step(struct buf *b, uint8_t op, uint8_t dir, uint32_t arg)
{
	buf_u8(b, op);
	buf_u8(b, dir);
	buf_u16(b, 0);
	buf_u16(b, (uint16_t)arg);
	buf_u16(b, (uint16_t)(arg >> 16));
}

static void gen_qos_one(const char *name, const char *keys, unsigned nreq, uint32_t bytes,
			uint32_t step_ns)
{
	struct buf b = { 0 };

	buf_put(&b, keys, strlen(keys) + 1);
	for (unsigned i = 0; i < nreq; i++) {
		qos_step(&b, 0, (uint8_t)(i % 3), bytes);
		if (step_ns)
			qos_step(&b, 1, 0, step_ns);
		if (i == nreq / 2)
			qos_step(&b, 3, 0, 0);
	}
	qos_step(&b, 2, 0, 100000);   /* 100 s idle */
	qos_step(&b, 0, 1, bytes);
	emit("fuzz_qos", &b, "%s", name);
	free(b.p);
}

static void gen_qos(void)
{
	gen_qos_one("iops", "iops=1000\n", 64, 4096, 0);
	gen_qos_one("iops-rd-wr", "iops-rd=100\niops-wr=7\nburst-ms=1\n", 64, 512, 1000);
	gen_qos_one("bps-large", "bps=10K\nburst-ms=100\n", 16, 1u << 20, 0);
	gen_qos_one("bps-max", "bps=1000000000000000\nburst-ms=60000\niops=1\n", 16,
		    UINT32_MAX, 1);
	gen_qos_one("all", "iops=3\niops-rd=2\niops-wr=1\nbps=1M\nbps-rd=512K\n"
		    "bps-wr=1G\nburst-ms=250\nqos-group=g\n", 32, 65536, 333333);
	gen_qos_one("bad-keys", "iops=-1\nbps=1Q\nburst-ms=0\nqos-group=a b\niops\n"
		    "bps-rd=99999999999999999999\n", 8, 4096, 0);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--check") == 0) {
		check_only = true;
		out_dir = argv[2];
	} else if (argc == 2 && argv[1][0] != '-') {
		out_dir = argv[1];
		mkdir(out_dir, 0755);
	} else {
		fprintf(stderr, "usage: %s [--check] CORPUS_DIR\n", argv[0]);
		return 2;
	}
	gen_rings();
	gen_inflight();
	gen_indirect();
	gen_blk();
	gen_vhost();
	gen_mgmt();
	gen_qos();
	if (check_only) {
		printf("gen_seeds: %u seeds checked, %u out of date%s\n", n_written, n_stale,
		       n_stale ? " (regenerate: see tests/fuzz/README.md)" : "");
		return n_stale ? 1 : 0;
	}
	printf("gen_seeds: %u seeds written to %s\n", n_written, out_dir);
	return 0;
}
