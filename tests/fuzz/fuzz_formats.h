/* SPDX-License-Identifier: MIT */
/*
 * fuzz_formats.h - how each fuzz target reads its input: the headers and
 * constants shared by the targets and gen_seeds.c (which writes inputs in
 * these formats). Changing a format invalidates the committed corpus:
 * regenerate it (README.md).
 */
#ifndef VBLK_TESTS_FUZZ_FORMATS_H
#define VBLK_TESTS_FUZZ_FORMATS_H

#include <stdint.h>

/* ---- fuzz_virtq_split, fuzz_virtq_packed, fuzz_virtq_indirect ---------- */

#define FQ_GPA_BASE   0x100000000ull
#define FQ_UVA_BASE   0x7f0000000000ull
#define FQ_MEM_SIZE   0x10000u
#define FQ_PAGE       0x1000u
#define FQ_DESC_OFF   0x0000u
#define FQ_DRIVER_OFF 0x1000u
#define FQ_DEVICE_OFF 0x2000u
#define FQ_BUF_OFF    0x3000u
#define FQ_MAX_NUM    256u       /* 256 descriptors fill the first page */
#define FQ_HOLE_PAGE  9u         /* unmapped page in FQ_MEM_HOLE mode */

/* How the image is mapped (2 bits of the input header). */
enum fq_mem_mode {
	FQ_MEM_FLAT,   /* one region */
	FQ_MEM_TINY,   /* 16 regions of one page */
	FQ_MEM_HOLE,   /* tiny, without page FQ_HOLE_PAGE */
	FQ_MEM_TWO,    /* two regions, file halves swapped */
};

/*
 * Input header of fuzz_virtq_split / fuzz_virtq_packed (8 bytes), then up
 * to FQ_MEM_SIZE bytes of image (zero-padded).
 */
struct fq_hdr {
	uint8_t num_sel;     /* split: 1 << (num_sel % 9); packed: num_sel + 1 */
	uint8_t flags;       /* FQ_F_* | mode << FQ_MODE_SHIFT */
	uint8_t base_lo, base_hi;  /* virtq_config.base */
	uint8_t batch;       /* pops between push-backs; 0 = all, then push */
	uint8_t max_iov_sel; /* index into fq_max_iov[] */
	uint8_t inflight_extra; /* FQ_F_INFLIGHT: inflight_num = num + this % 64 */
	uint8_t reserved;
};
_Static_assert(sizeof(struct fq_hdr) == 8, "header layout");

#define FQ_F_EVENT_IDX 0x01u
#define FQ_F_INDIRECT  0x02u
#define FQ_MODE_SHIFT  2
#define FQ_MODE_MASK   0x0cu
#define FQ_F_INFLIGHT  0x10u   /* inflight tracking, area from the image (below) */

/*
 * With FQ_F_INFLIGHT, the queue's inflight area (vhost-user INFLIGHT_SHMFD,
 * frontend-kept memory) is a separate buffer whose initial contents are the
 * image bytes at FQ_INFLIGHT_OFF (zero beyond FQ_INFLIGHT_MAX): all zero
 * is a fresh area, version 1 one to recover from.
 */
#define FQ_INFLIGHT_OFF 0xc000u
#define FQ_INFLIGHT_MAX 0x4000u

/* ---- fuzz_virtq_indirect: the header, then the table bytes ------------- */

struct fqi_hdr {
	uint8_t flags;        /* FQI_F_* */
	uint8_t mode;         /* enum fq_mem_mode, low 2 bits */
	uint8_t num_sel;      /* as fq_hdr */
	uint8_t max_iov_sel;
	uint8_t table_off[2]; /* FQ_BUF_OFF + this % (FQ_MEM_SIZE - FQ_BUF_OFF) */
	uint8_t table_len[4]; /* what the indirect descriptor says, raw */
	uint8_t base[2];
};
_Static_assert(sizeof(struct fqi_hdr) == 12, "header layout");

#define FQI_F_PACKED    0x01u
#define FQI_F_EVENT_IDX 0x02u
#define FQI_F_RELATIVE  0x04u  /* table addrs/lens folded into guest memory */
#define FQI_F_NO_INDIR  0x08u  /* INDIRECT_DESC not negotiated */
#define FQI_F_SECOND    0x10u  /* a valid request after the fuzzed one */
#define FQI_F_SECOND_IND 0x20u /* ... itself indirect */

/* Where the second request's buffers and table live (top of memory). */
#define FQI_SECOND_BUF   (FQ_MEM_SIZE - 0x400u)
#define FQI_SECOND_TABLE (FQ_MEM_SIZE - 0x100u)

/* ---- fuzz_blk_req ------------------------------------------------------ */

/*
 * struct fb_hdr, then nout + nin split bytes (segment lengths: low 7 bits,
 * times 64 if the top bit is set; the last segment takes the rest), then
 * the device-readable bytes.
 */
struct fb_hdr {
	uint8_t flags;       /* FB_F_* */
	uint8_t nout, nin;   /* segments, % (FB_MAX_SEG + 1) */
	uint8_t out_len[2];  /* readable bytes, % (FB_MAX_LEN + 1) */
	uint8_t in_len[2];   /* writable bytes, % (FB_MAX_LEN + 1) */
	uint8_t reserved;
};
_Static_assert(sizeof(struct fb_hdr) == 8, "header layout");

#define FB_F_READ_ONLY  0x01u
#define FB_F_FILE       0x02u   /* file engine instead of null */
#define FB_F_WRITEBACK  0x04u
#define FB_F_FEATURES   0x08u   /* blk_dev_set_features() called ... */
#define FB_F_FEAT_FLUSH 0x10u   /* ... with VIRTIO_BLK_F_FLUSH */
#define FB_F_STORAGE_RO 0x20u   /* (null engine) a read-only storage: no discard */

#define FB_MAX_SEG 16u
#define FB_MAX_LEN 8704u        /* 16 sectors + room for header/status */

/* ---- fuzz_vhost_msg ---------------------------------------------------- */

/*
 * One session byte (FV_S_*), then messages until the input ends: each a
 * struct fv_msg and `size` payload bytes (fewer if the input ends first:
 * a truncated message); with FV_C_FILL, then a u16 length and that many
 * bytes written at the start of the message's memfd (guest memory with
 * rings, an inflight area to recover from, ...).
 */
#define FV_S_LISTEN       0x01u  /* listening socket: reconnect after a close;
				  * at the end a new frontend must be served */
#define FV_S_ASYNC_STOP   0x02u  /* queue_stop's done() posted to the loop */
#define FV_S_POP          0x04u  /* the device pops from rings it is given */
#define FV_S_REFUSE_CFG   0x08u  /* set_config fails */
#define FV_S_FAIL_START   0x10u  /* queue_start fails */
#define FV_S_ONE_QUEUE    0x20u  /* num_queues 1 instead of 2 */

struct fv_msg {
	uint8_t request;   /* header.request */
	uint8_t flags;     /* header.flags */
	uint8_t ctl;       /* FV_C_* */
	uint8_t size[2];   /* header.size = payload bytes that follow */
};
_Static_assert(sizeof(struct fv_msg) == 5, "message header layout");

#define FV_C_NFDS_MASK  0x0fu   /* fds attached, at most FV_MAX_FDS */
#define FV_C_KIND_SHIFT 4       /* 0: eventfds; 1..3: one memfd of fv_memfd_size[] */
#define FV_C_KIND_MASK  0x30u
#define FV_C_SPLIT      0x40u   /* header (with the fds) and payload sent apart */
#define FV_C_FILL       0x80u   /* memfd contents follow the payload */
#define FV_MAX_FDS      10u     /* > VHOST_USER_MAX_FDS on purpose */

static const uint32_t fv_memfd_size[4] = { 0, 4096, 64u << 10, 1u << 20 };

/* Where gen_seeds puts guest memory (a 64 KiB memfd at FQ_GPA_BASE, laid
 * out as the virtq images above for vring 0) and the rings. */
#define FV_SEED_UVA       0x7f0000000000ull
#define FV_SEED_RING(q)   ((uint64_t)(q) * 0x4000u)   /* desc; avail +0x1000, used +0x2000 */

#endif
