/* SPDX-License-Identifier: MIT */
/*
 * fuzz_virtq_indirect.c - indirect descriptor tables, split and packed: a
 * well-formed ring (written by the driver side, virtq_drv_add) whose first
 * request is one indirect descriptor pointing at a table the fuzzer writes,
 * at a fuzzer-chosen (possibly misaligned, region-crossing, unmapped)
 * address and with a fuzzer-chosen length; optionally a second, valid
 * request behind it. The device must pop both or break, never misbehave.
 *
 * Input: struct fqi_hdr, then the table bytes.
 */
#include "fuzz_virtq.h"

static uint8_t image[FQ_MEM_SIZE] __attribute__((aligned(4096)));

static uint64_t le_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static void le_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fq_run r;
	static struct vring_packed_desc scratch[4];   /* driver's throw-away table */
	struct fuzz_in in = { data, size };
	struct virtq_drv_buf buf[3];
	struct virtq_config cfg;
	struct virtq_drv d;
	struct fqi_hdr h;
	struct fq_mem m;
	bool packed;
	unsigned num, nreq = 1, slot;
	uint64_t table_off;
	uint32_t table_len;
	uint16_t base;
	size_t n;
	int ret;

	fuzz_quiet_logs();
	fin_copy(&in, &h, sizeof(h));
	packed = h.flags & FQI_F_PACKED;
	num = fq_num(packed, h.num_sel);
	base = (uint16_t)le_get(h.base, 2);
	if (packed)
		base = (uint16_t)(((base & 0x7fffu) % num) | (base & 0x8000u));
	table_off = FQ_BUF_OFF + le_get(h.table_off, 2) % (FQ_MEM_SIZE - FQ_BUF_OFF);
	table_len = (uint32_t)le_get(h.table_len, 4);

	/* The driver writes a well-formed ring into the image. */
	memset(image, 0, sizeof(image));
	if (!packed) {
		le_put(image + FQ_DRIVER_OFF + 2, base, 2);   /* avail->idx */
		le_put(image + FQ_DEVICE_OFF + 2, base, 2);   /* used->idx */
	}
	FUZZ_SETUP(virtq_drv_init(&d, num, packed, h.flags & FQI_F_EVENT_IDX,
				  image + FQ_DESC_OFF, image + FQ_DRIVER_OFF,
				  image + FQ_DEVICE_OFF) == 0, "virtq_drv_init");
	if (packed) {
		d.next_avail = d.last_used = base & 0x7fff;
		d.avail_wrap_counter = d.used_wrap_counter = base >> 15;
		d.kicked_avail = base;
	}
	slot = packed ? (base & 0x7fffu) : d.free_head;
	buf[0] = (struct virtq_drv_buf){ FQ_GPA_BASE + FQ_BUF_OFF, 16 };
	FUZZ_SETUP(virtq_drv_add(&d, buf, 1, 0, &r, scratch, FQ_GPA_BASE + table_off) == 0,
		   "add the fuzzed request");
	/* Now the fuzzer's length (at byte 8 of either descriptor layout),
	 * and its table in place of the driver's. */
	le_put(image + FQ_DESC_OFF + slot * 16 + 8, table_len, 4);
	n = in.n < FQ_MEM_SIZE - table_off ? in.n : FQ_MEM_SIZE - table_off;
	memcpy(image + table_off, in.p, n);
	if (h.flags & FQI_F_RELATIVE) {
		for (size_t e = 0; e + 16 <= n; e += 16) {
			uint8_t *t = image + table_off + e;

			le_put(t, FQ_GPA_BASE + le_get(t, 8) % (FQ_MEM_SIZE + FQ_PAGE), 8);
			le_put(t + 8, le_get(t + 8, 4) % (2 * FQ_PAGE), 4);
		}
	}
	/* Room for it: one slot is taken, a direct chain needs three more. */
	if ((h.flags & FQI_F_SECOND) && num >= (h.flags & FQI_F_SECOND_IND ? 2u : 4u)) {
		/* The second request must not be disturbed by the first. */
		buf[0] = (struct virtq_drv_buf){ FQ_GPA_BASE + FQI_SECOND_BUF, 16 };
		buf[1] = (struct virtq_drv_buf){ FQ_GPA_BASE + FQI_SECOND_BUF + 16, 512 };
		buf[2] = (struct virtq_drv_buf){ FQ_GPA_BASE + FQI_SECOND_BUF + 528, 1 };
		if (h.flags & FQI_F_SECOND_IND) {
			FUZZ_SETUP(virtq_drv_add(&d, buf, 1, 2, &d, scratch,
						 FQ_GPA_BASE + FQI_SECOND_TABLE) == 0, "add 2nd");
			memcpy(image + FQI_SECOND_TABLE, scratch, 3 * sizeof(scratch[0]));
		} else {
			FUZZ_SETUP(virtq_drv_add(&d, buf, 1, 2, &d, NULL, 0) == 0, "add 2nd");
		}
		nreq = 2;
	}
	virtq_drv_fini(&d);

	fq_mem_init(&m, image, sizeof(image), (enum fq_mem_mode)(h.mode & 3));
	memset(&r.vq, 0, sizeof(r.vq));
	r.m = &m;
	r.max_iov = fq_max_iov[h.max_iov_sel & 7];
	r.nheld = 0;
	r.pops = 0;
	FUZZ_SETUP(fq_config(&m, &cfg, num, packed, h.flags & FQI_F_EVENT_IDX,
			     !(h.flags & FQI_F_NO_INDIR), base), "ring areas");
	ret = virtq_init(&r.vq, &cfg);
	FUZZ_CHECK(ret == 0, "virtq_init: %d", ret);
	ret = fq_pop_loop(&r, 8, 0);
	if (ret == 0 && !r.vq.broken)
		FUZZ_CHECK(r.pops == nreq, "popped %u of %u requests", r.pops, nreq);
	if (!r.vq.broken)
		fq_check_resume(&r, &cfg);
	virtq_fini(&r.vq);
	fq_mem_fini(&m);
	return 0;
}
