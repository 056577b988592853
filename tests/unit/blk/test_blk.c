/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/blk: the conformance matrix on file-backed storage.
 * The same IN/OUT requests in 3-, 2- and many-iovec layouts, then bad
 * requests with their exact status, GET_ID, FLUSH, the config space,
 * config writes and the write-through rules.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "blk/blk.h"
#include "storage/storage.h"
#include "storage/storage_internal.h"

#define FILE_SIZE (4u * 1024 * 1024)
#define CAPACITY (FILE_SIZE / 512)
#define BIT64(n) (1ull << (n))
#define STATUS_UNTOUCHED 0xee
#define NO_STATUS (-1)

struct treq {
	struct blk_req req;     /* first: the callback casts back */
	struct iovec iov[64];
	int calls;
	uint32_t used;
};

static struct storage_chan *ch;
static int vfd = -1;         /* the backing file, for checking behind blk */

static void treq_cb(struct blk_req *req, uint32_t used_len)
{
	struct treq *t = (struct treq *)req;

	t->calls++;
	t->used = used_len;
}

/* Submit, flush the chan like an iothread would, reap until the callback. */
static bool run(struct blk_dev *dev, struct treq *t, unsigned out_num, unsigned in_num)
{
	t->calls = 0;
	t->used = 0xdeadbeef;
	blk_req_submit(dev, ch, &t->req, t->iov, out_num, in_num, treq_cb);
	storage_chan_flush(ch);
	for (int spins = 0; spins < 5000 && !t->calls; spins++) {
		struct pollfd pfd = { .fd = storage_chan_fd(ch), .events = POLLIN };

		poll(&pfd, 1, 1);
		storage_chan_reap(ch);
	}
	return t->calls == 1;
}

static void mkhdr(struct virtio_blk_outhdr *h, uint32_t type, uint64_t sector)
{
	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = htole64(sector);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 13 + i * 5 + (i >> 9) + 1);
}

static bool file_matches(uint64_t off, const void *want, size_t n)
{
	uint8_t *buf = malloc(n);
	bool same = buf && pread(vfd, buf, n, (off_t)off) == (ssize_t)n && memcmp(buf, want, n) == 0;

	free(buf);
	return same;
}

static bool file_zero(uint64_t off, size_t n)
{
	uint8_t *buf = calloc(1, n), *z = calloc(1, n);
	bool same = buf && z && pread(vfd, buf, n, (off_t)off) == (ssize_t)n &&
		    memcmp(buf, z, n) == 0;

	free(buf);
	free(z);
	return same;
}

/*
 * One request with a header, optional readable data, optional writable
 * data and a separate status byte. Returns the status byte (NO_STATUS if
 * it was left alone); *used gets used_len.
 */
static int req3(struct blk_dev *dev, uint32_t type, uint64_t sector, const void *odata,
		size_t olen, void *idata, size_t ilen, uint32_t *used)
{
	static struct treq t;
	struct virtio_blk_outhdr h;
	uint8_t status = STATUS_UNTOUCHED;
	unsigned n = 0, out;

	mkhdr(&h, type, sector);
	t.iov[n++] = (struct iovec){ &h, sizeof(h) };
	if (olen)
		t.iov[n++] = (struct iovec){ (void *)odata, olen };
	out = n;
	if (ilen)
		t.iov[n++] = (struct iovec){ idata, ilen };
	t.iov[n++] = (struct iovec){ &status, 1 };
	if (!run(dev, &t, out, n - out))
		return 999;
	*used = t.used;
	return status == STATUS_UNTOUCHED ? NO_STATUS : status;
}

enum layout { L3, L2, LMANY };
static const char *const layout_name[] = { "3-iovec", "2-iovec", "many-iovec" };

/*
 * IN or OUT of @len bytes at @sector through @buf, laid out as @l.
 * Returns the status byte; *used gets used_len.
 */
static int rw_layout(struct blk_dev *dev, enum layout l, bool write, uint64_t sector,
		     uint8_t *buf, size_t len, uint32_t *used)
{
	static struct treq t;
	struct virtio_blk_outhdr h;
	uint8_t hdr_a[7], hdr_b[9];
	uint8_t status = STATUS_UNTOUCHED, *joined = NULL, *st_at = &status;
	unsigned n = 0, out = 0;

	mkhdr(&h, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector);
	switch (l) {
	case L3:
		t.iov[n++] = (struct iovec){ &h, sizeof(h) };
		if (write)
			t.iov[n++] = (struct iovec){ buf, len };
		out = n;
		if (!write)
			t.iov[n++] = (struct iovec){ buf, len };
		t.iov[n++] = (struct iovec){ &status, 1 };
		break;
	case L2:
		/* OUT: header+data in one buffer; IN: data+status in one. */
		joined = malloc(sizeof(h) + len + 1);
		if (write) {
			memcpy(joined, &h, sizeof(h));
			memcpy(joined + sizeof(h), buf, len);
			t.iov[n++] = (struct iovec){ joined, sizeof(h) + len };
			out = n;
			t.iov[n++] = (struct iovec){ &status, 1 };
		} else {
			t.iov[n++] = (struct iovec){ &h, sizeof(h) };
			out = n;
			joined[len] = STATUS_UNTOUCHED;
			st_at = joined + len;
			t.iov[n++] = (struct iovec){ joined, len + 1 };
		}
		break;
	case LMANY:
		/* Header split 7+9 across two buffers, data in 512-byte
		 * pieces; for IN the status shares the last piece. */
		memcpy(hdr_a, &h, 7);
		memcpy(hdr_b, (uint8_t *)&h + 7, 9);
		t.iov[n++] = (struct iovec){ hdr_a, 7 };
		t.iov[n++] = (struct iovec){ hdr_b, 9 };
		if (write) {
			for (size_t off = 0; off < len; off += 512)
				t.iov[n++] = (struct iovec){ buf + off, 512 };
			out = n;
			t.iov[n++] = (struct iovec){ &status, 1 };
		} else {
			out = n;
			joined = malloc(512 + 1);
			for (size_t off = 0; off + 512 < len; off += 512)
				t.iov[n++] = (struct iovec){ buf + off, 512 };
			joined[512] = STATUS_UNTOUCHED;
			st_at = joined + 512;
			t.iov[n++] = (struct iovec){ joined, 512 + 1 };
		}
		break;
	}

	if (!run(dev, &t, out, n - out)) {
		free(joined);
		return 999;
	}
	if (!write && l == L2)
		memcpy(buf, joined, len);
	if (!write && l == LMANY)
		memcpy(buf + len - 512, joined, 512);
	*used = t.used;
	int ret = *st_at == STATUS_UNTOUCHED ? NO_STATUS : *st_at;
	free(joined);
	return ret;
}

static void test_layouts(struct blk_dev *dev)
{
	static uint8_t w[8192], r[8192];
	uint32_t used = 0;

	for (enum layout l = L3; l <= LMANY; l++) {
		uint64_t sector = 100 + 32 * l;

		diag("layout %s", layout_name[l]);
		fill(w, sizeof(w), l + 1);
		is(rw_layout(dev, l, true, sector, w, sizeof(w), &used), VIRTIO_BLK_S_OK,
		   "%s: OUT status OK", layout_name[l]);
		is(used, 1, "%s: OUT used_len 1", layout_name[l]);
		ok(file_matches(sector * 512, w, sizeof(w)), "%s: OUT data in the file",
		   layout_name[l]);
		ok(file_zero((sector - 1) * 512, 512) && file_zero((sector + 16) * 512, 512),
		   "%s: OUT wrote nothing else", layout_name[l]);
		memset(r, 0, sizeof(r));
		is(rw_layout(dev, l, false, sector, r, sizeof(r), &used), VIRTIO_BLK_S_OK,
		   "%s: IN status OK", layout_name[l]);
		is(used, sizeof(r) + 1, "%s: IN used_len = data + 1", layout_name[l]);
		ok(memcmp(r, w, sizeof(w)) == 0, "%s: IN data equals OUT data", layout_name[l]);
	}
}

static void test_bad(struct blk_dev *dev)
{
	static uint8_t buf[8192];
	uint32_t used;

	diag("bad requests");
	is(req3(dev, 0x55, 0, NULL, 0, NULL, 0, &used), VIRTIO_BLK_S_UNSUPP,
	   "unknown type -> UNSUPP");
	is(used, 1, "unknown type: used_len 1");
	is(req3(dev, 10 /* GET_LIFETIME */, 0, NULL, 0, buf, 8, &used), VIRTIO_BLK_S_UNSUPP,
	   "GET_LIFETIME -> UNSUPP");
	is(req3(dev, VIRTIO_BLK_T_OUT, 0, buf, 513, NULL, 0, &used), VIRTIO_BLK_S_IOERR,
	   "OUT of 513 bytes -> IOERR");
	is(req3(dev, VIRTIO_BLK_T_IN, 0, NULL, 0, buf, 1000, &used), VIRTIO_BLK_S_IOERR,
	   "IN of 1000 bytes -> IOERR");
	is(used, 1, "failed IN: used_len 1");
	is(req3(dev, VIRTIO_BLK_T_IN, CAPACITY - 1, NULL, 0, buf, 1024, &used),
	   VIRTIO_BLK_S_IOERR, "IN crossing the end -> IOERR");
	is(req3(dev, VIRTIO_BLK_T_IN, CAPACITY - 2, NULL, 0, buf, 1024, &used), VIRTIO_BLK_S_OK,
	   "IN of the last two sectors -> OK");
	is(used, 1025, "IN of the last two sectors: used_len");
	is(req3(dev, VIRTIO_BLK_T_IN, CAPACITY, NULL, 0, buf, 512, &used), VIRTIO_BLK_S_IOERR,
	   "IN at sector == capacity -> IOERR");
	is(req3(dev, VIRTIO_BLK_T_IN, UINT64_MAX, NULL, 0, buf, 512, &used), VIRTIO_BLK_S_IOERR,
	   "IN at sector UINT64_MAX -> IOERR");
	is(req3(dev, VIRTIO_BLK_T_OUT, UINT64_MAX / 512 + 1, buf, 512, NULL, 0, &used),
	   VIRTIO_BLK_S_IOERR, "OUT where sector*512 overflows -> IOERR");
	is(req3(dev, VIRTIO_BLK_T_OUT, (UINT64_MAX - 1) / 512, buf, 1024, NULL, 0, &used),
	   VIRTIO_BLK_S_IOERR, "OUT near the top of the sector space -> IOERR");

	/* No status byte, or no room for a header: used_len 0, nothing written. */
	{
		static struct treq t;
		struct virtio_blk_outhdr h;
		uint8_t in[8] = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11 };

		mkhdr(&h, VIRTIO_BLK_T_GET_ID, 0);
		t.iov[0] = (struct iovec){ &h, sizeof(h) };
		ok(run(dev, &t, 1, 0), "no writable buffer: one callback");
		is(t.used, 0, "no writable buffer: used_len 0");
		t.iov[0] = (struct iovec){ &h, sizeof(h) };
		t.iov[1] = (struct iovec){ in, 0 };
		ok(run(dev, &t, 1, 1), "zero-length writable buffer: one callback");
		is(t.used, 0, "zero-length writable buffer: used_len 0");
		t.iov[0] = (struct iovec){ &h, 10 };
		t.iov[1] = (struct iovec){ in, sizeof(in) };
		ok(run(dev, &t, 1, 1), "10-byte header: one callback");
		is(t.used, 0, "10-byte header: used_len 0");
		ok(in[7] == 0x11 && in[0] == 0x11, "10-byte header: nothing written");
		t.iov[0] = (struct iovec){ in, sizeof(in) };
		ok(run(dev, &t, 0, 1), "no readable buffer: one callback");
		is(t.used, 0, "no readable buffer: used_len 0");
		ok(in[7] == 0x11, "no readable buffer: nothing written");
	}
}

static int dwz(struct blk_dev *dev, uint32_t type, const struct virtio_blk_discard_write_zeroes *s,
	       size_t bytes, uint32_t *used)
{
	return req3(dev, type, 0, s, bytes, NULL, 0, used);
}

static void seg_set(struct virtio_blk_discard_write_zeroes *s, uint64_t sector, uint32_t n,
		    uint32_t flags)
{
	s->sector = htole64(sector);
	s->num_sectors = htole32(n);
	s->flags = htole32(flags);
}

static void test_discard(struct blk_dev *dev)
{
	struct virtio_blk_discard_write_zeroes s[20];
	static uint8_t w[65536];
	uint32_t used;
	const uint32_t D = VIRTIO_BLK_T_DISCARD, WZ = VIRTIO_BLK_T_WRITE_ZEROES;
	const uint32_t UNMAP = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	struct virtio_blk_config cfg;

	diag("discard / write zeroes");
	blk_dev_get_config(dev, &cfg);
	uint32_t max_d = le32toh(cfg.max_discard_sectors);
	uint32_t max_wz = le32toh(cfg.max_write_zeroes_sectors);

	fill(w, sizeof(w), 9);
	if (pwrite(vfd, w, sizeof(w), 1 << 20) != sizeof(w))
		tap_bail("pwrite");

	/* Good requests first. */
	seg_set(&s[0], 2048 + 8, 8, 0);
	seg_set(&s[1], 2048 + 32, 16, 0);
	is(dwz(dev, D, s, 2 * sizeof(s[0]), &used), VIRTIO_BLK_S_OK, "discard 2 segments -> OK");
	is(used, 1, "discard: used_len 1");
	ok(file_zero((2048 + 8) * 512, 8 * 512) && file_zero((2048 + 32) * 512, 16 * 512),
	   "discard: both ranges read zero");
	ok(file_matches(1 << 20, w, 8 * 512) && file_matches((2048 + 16) * 512, w + 16 * 512, 8192),
	   "discard: data between segments intact");

	seg_set(&s[0], 2048 + 64, 4, 0);
	seg_set(&s[1], 2048 + 72, 4, UNMAP);
	is(dwz(dev, WZ, s, 2 * sizeof(s[0]), &used), VIRTIO_BLK_S_OK,
	   "write zeroes with and without UNMAP -> OK");
	ok(file_zero((2048 + 64) * 512, 4 * 512) && file_zero((2048 + 72) * 512, 4 * 512),
	   "write zeroes: both ranges read zero");
	ok(file_matches((2048 + 68) * 512, w + 68 * 512, 4 * 512) &&
	   file_matches((2048 + 76) * 512, w + 76 * 512, 4 * 512),
	   "write zeroes: neighbours intact");
	seg_set(&s[0], 0, 0, 0);
	is(dwz(dev, D, s, sizeof(s[0]), &used), VIRTIO_BLK_S_OK, "discard of 0 sectors -> OK");
	for (int i = 0; i < 16; i++)
		seg_set(&s[i], 3000 + 2 * i, 1, 0);
	is(dwz(dev, D, s, 16 * sizeof(s[0]), &used), VIRTIO_BLK_S_OK,
	   "discard with max_discard_seg (16) segments -> OK");

	/* Flags. */
	seg_set(&s[0], 2048, 8, UNMAP);
	is(dwz(dev, D, s, sizeof(s[0]), &used), VIRTIO_BLK_S_UNSUPP, "discard with UNMAP -> UNSUPP");
	seg_set(&s[0], 2048, 8, 2);
	is(dwz(dev, D, s, sizeof(s[0]), &used), VIRTIO_BLK_S_UNSUPP,
	   "discard with reserved flag -> UNSUPP");
	seg_set(&s[0], 2048, 8, UNMAP | 0x80000000u);
	is(dwz(dev, WZ, s, sizeof(s[0]), &used), VIRTIO_BLK_S_UNSUPP,
	   "write zeroes with reserved flag -> UNSUPP");
	is(used, 1, "UNSUPP: used_len 1");

	/* Segment counts and sizes. */
	for (int i = 0; i < 17; i++)
		seg_set(&s[i], 2048 + i, 1, 0);
	is(dwz(dev, D, s, 17 * sizeof(s[0]), &used), VIRTIO_BLK_S_UNSUPP,
	   "discard with 17 segments (> max_discard_seg) -> UNSUPP");
	is(dwz(dev, WZ, s, 17 * sizeof(s[0]), &used), VIRTIO_BLK_S_UNSUPP,
	   "write zeroes with 17 segments -> UNSUPP");
	is(dwz(dev, D, s, 0, &used), VIRTIO_BLK_S_IOERR, "discard with no segment -> IOERR");
	is(dwz(dev, D, s, 20, &used), VIRTIO_BLK_S_IOERR, "discard of 20 bytes -> IOERR");

	/* Limits and range: nothing of the request may run. */
	if (pwrite(vfd, w, 4096, 1 << 20) != 4096)
		tap_bail("pwrite");
	seg_set(&s[0], 2048, 8, 0);
	seg_set(&s[1], 0, max_d + 1, 0);
	is(dwz(dev, D, s, 2 * sizeof(s[0]), &used), VIRTIO_BLK_S_IOERR,
	   "discard num_sectors over max_discard_sectors -> IOERR");
	ok(file_matches(1 << 20, w, 4096), "rejected discard: the good segment did not run");
	seg_set(&s[0], 0, max_wz + 1, 0);
	is(dwz(dev, WZ, s, sizeof(s[0]), &used), VIRTIO_BLK_S_IOERR,
	   "write zeroes num_sectors over max_write_zeroes_sectors -> IOERR");
	seg_set(&s[0], CAPACITY - 4, 8, 0);
	is(dwz(dev, D, s, sizeof(s[0]), &used), VIRTIO_BLK_S_IOERR, "discard past the end -> IOERR");
	seg_set(&s[0], UINT64_MAX - 2, 8, 0);
	is(dwz(dev, WZ, s, sizeof(s[0]), &used), VIRTIO_BLK_S_IOERR,
	   "write zeroes at sector UINT64_MAX-2 -> IOERR");
	seg_set(&s[0], CAPACITY - 8, 8, UNMAP);
	is(dwz(dev, WZ, s, sizeof(s[0]), &used), VIRTIO_BLK_S_OK,
	   "write zeroes of the last 8 sectors -> OK");
}

static void test_get_id_flush(struct blk_dev *dev)
{
	uint8_t id[32];
	uint32_t used;

	diag("GET_ID / FLUSH");
	memset(id, 0x77, sizeof(id));
	is(req3(dev, VIRTIO_BLK_T_GET_ID, 0, NULL, 0, id, 20, &used), VIRTIO_BLK_S_OK, "GET_ID OK");
	is(used, 21, "GET_ID used_len 21");
	ok(memcmp(id, "vblk-serial-01\0\0\0\0\0\0", 20) == 0, "GET_ID: serial, NUL-padded");
	ok(id[20] == 0x77, "GET_ID: nothing past the 20 bytes");
	memset(id, 0x77, sizeof(id));
	is(req3(dev, VIRTIO_BLK_T_GET_ID, 0, NULL, 0, id, 8, &used), VIRTIO_BLK_S_OK,
	   "GET_ID into 8 bytes OK");
	is(used, 9, "GET_ID into 8 bytes: used_len 9");
	ok(memcmp(id, "vblk-ser", 8) == 0 && id[8] == 0x77, "GET_ID: truncated to the buffer");
	memset(id, 0x77, sizeof(id));
	is(req3(dev, VIRTIO_BLK_T_GET_ID, 0, NULL, 0, id, 32, &used), VIRTIO_BLK_S_OK,
	   "GET_ID into 32 bytes OK");
	is(used, 21, "GET_ID into 32 bytes: used_len 21");
	ok(id[20] == 0x77, "GET_ID: 20 bytes at most");

	is(req3(dev, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0, &used), VIRTIO_BLK_S_OK, "FLUSH OK");
	is(used, 1, "FLUSH used_len 1");
}

static void test_config(struct blk_dev *dev)
{
	struct virtio_blk_config cfg;
	uint8_t v;

	diag("config space");
	is(blk_dev_features(dev),
	   BIT64(VIRTIO_BLK_F_SIZE_MAX) | BIT64(VIRTIO_BLK_F_SEG_MAX) | BIT64(VIRTIO_BLK_F_BLK_SIZE) |
	   BIT64(VIRTIO_BLK_F_TOPOLOGY) | BIT64(VIRTIO_BLK_F_FLUSH) |
	   BIT64(VIRTIO_BLK_F_CONFIG_WCE) | BIT64(VIRTIO_BLK_F_DISCARD) |
	   BIT64(VIRTIO_BLK_F_WRITE_ZEROES), "features: exact set for a writable file");
	memset(&cfg, 0xab, sizeof(cfg));
	blk_dev_get_config(dev, &cfg);
	is(le64toh(cfg.capacity), CAPACITY, "config: capacity in sectors");
	is(le32toh(cfg.size_max), 65536, "config: size_max");
	is(le32toh(cfg.seg_max), 126, "config: seg_max = queue_size - 2");
	is(le32toh(cfg.blk_size), 512, "config: blk_size");
	is(cfg.physical_block_exp, 0, "config: physical_block_exp");
	is(cfg.alignment_offset, 0, "config: alignment_offset");
	is(le16toh(cfg.min_io_size), 1, "config: min_io_size");
	is(le32toh(cfg.opt_io_size), 0, "config: opt_io_size");
	is(cfg.wce, 1, "config: writeback from params");
	is(cfg.unused, 0, "config: unused0 is 0");
	is(le16toh(cfg.num_queues), 1, "config: num_queues");
	is(le32toh(cfg.max_discard_sectors), 1u << 22, "config: max_discard_sectors");
	is(le32toh(cfg.max_discard_seg), 16, "config: max_discard_seg");
	is(le32toh(cfg.discard_sector_alignment), 1, "config: discard_sector_alignment");
	is(le32toh(cfg.max_write_zeroes_sectors), 1u << 22, "config: max_write_zeroes_sectors");
	is(le32toh(cfg.max_write_zeroes_seg), 16, "config: max_write_zeroes_seg");
	is(cfg.write_zeroes_may_unmap, 1, "config: write_zeroes_may_unmap");
	ok(cfg.unused1[0] == 0 && cfg.unused1[2] == 0 && cfg.max_secure_erase_sectors == 0,
	   "config: padding and secure-erase fields 0");

	v = 0;
	is(blk_dev_set_config(dev, offsetof(struct virtio_blk_config, wce), &v, 1), 0,
	   "set_config: wce=0 accepted");
	blk_dev_get_config(dev, &cfg);
	is(cfg.wce, 0, "set_config: wce now 0");
	v = 1;
	is(blk_dev_set_config(dev, offsetof(struct virtio_blk_config, wce), &v, 1), 0,
	   "set_config: wce=1 accepted");
	blk_dev_get_config(dev, &cfg);
	is(cfg.wce, 1, "set_config: wce now 1");
	uint8_t junk[8] = { 0 };
	is(blk_dev_set_config(dev, 0, junk, 8), -EINVAL, "set_config: capacity not writable");
	is(blk_dev_set_config(dev, offsetof(struct virtio_blk_config, wce), junk, 2), -EINVAL,
	   "set_config: 2 bytes at wce refused");
	is(blk_dev_set_config(dev, offsetof(struct virtio_blk_config, num_queues), junk, 1),
	   -EINVAL, "set_config: num_queues not writable");
	blk_dev_get_config(dev, &cfg);
	ok(le64toh(cfg.capacity) == CAPACITY && cfg.wce == 1 && le16toh(cfg.num_queues) == 1,
	   "set_config: refused writes changed nothing");
}

/* Was the last OUT written with FUA? Observed on the storage op blk made. */
static int out_fua(struct blk_dev *dev)
{
	static struct treq t;
	static uint8_t data[512];
	struct virtio_blk_outhdr h;
	uint8_t status = STATUS_UNTOUCHED;

	mkhdr(&h, VIRTIO_BLK_T_OUT, 10);
	t.iov[0] = (struct iovec){ &h, sizeof(h) };
	t.iov[1] = (struct iovec){ data, sizeof(data) };
	t.iov[2] = (struct iovec){ &status, 1 };
	if (!run(dev, &t, 2, 1) || status != VIRTIO_BLK_S_OK)
		return -1;
	return t.req.io[0].fua;
}

static void test_cache_mode(struct storage *st)
{
	struct blk_dev_params p = { .st = st, .num_queues = 1, .writeback = true };
	struct virtio_blk_config cfg;
	struct blk_dev *dev;
	uint8_t v;

	diag("cache mode");
	if (blk_dev_create(&p, &dev))
		tap_bail("blk_dev_create");
	is(out_fua(dev), 0, "writeback, nothing negotiated yet: no FUA");
	v = 0;
	blk_dev_set_config(dev, offsetof(struct virtio_blk_config, wce), &v, 1);
	is(out_fua(dev), 1, "wce=0: writes use FUA");
	v = 1;
	blk_dev_set_config(dev, offsetof(struct virtio_blk_config, wce), &v, 1);
	blk_dev_set_features(dev, BIT64(VIRTIO_BLK_F_FLUSH) | BIT64(VIRTIO_BLK_F_CONFIG_WCE));
	is(out_fua(dev), 0, "FLUSH+CONFIG_WCE negotiated, wce=1: no FUA");
	blk_dev_set_features(dev, BIT64(VIRTIO_BLK_F_BLK_SIZE));
	is(out_fua(dev), 1, "FLUSH not negotiated: write-through (FUA)");
	blk_dev_set_features(dev, BIT64(VIRTIO_BLK_F_CONFIG_WCE));
	blk_dev_get_config(dev, &cfg);
	is(cfg.wce, 0, "CONFIG_WCE without FLUSH: writeback starts at 0");
	is(out_fua(dev), 1, "CONFIG_WCE without FLUSH: FUA");
	blk_dev_destroy(dev);

	p.writeback = false;
	if (blk_dev_create(&p, &dev))
		tap_bail("blk_dev_create");
	blk_dev_get_config(dev, &cfg);
	is(cfg.wce, 0, "writeback=false: wce 0");
	is(out_fua(dev), 1, "writeback=false: FUA");
	blk_dev_set_features(dev, BIT64(VIRTIO_BLK_F_FLUSH));
	is(out_fua(dev), 1, "FLUSH negotiated, writeback false: FUA");
	blk_dev_destroy(dev);
}

static void test_read_only(struct storage *st)
{
	struct blk_dev_params p = { .st = st, .num_queues = 4, .read_only = true, .writeback = true };
	struct virtio_blk_discard_write_zeroes s;
	static uint8_t w[4096], r[4096];
	struct blk_dev *dev;
	uint32_t used;

	diag("read-only export");
	if (blk_dev_create(&p, &dev))
		tap_bail("blk_dev_create ro");
	uint64_t f = blk_dev_features(dev);
	ok((f & BIT64(VIRTIO_BLK_F_RO)) && (f & BIT64(VIRTIO_BLK_F_MQ)), "ro: RO and MQ offered");
	ok(!(f & BIT64(VIRTIO_BLK_F_DISCARD)) && !(f & BIT64(VIRTIO_BLK_F_WRITE_ZEROES)),
	   "ro: no DISCARD, no WRITE_ZEROES");
	ok(!(f & BIT64(VIRTIO_BLK_F_SIZE_MAX)), "size_max 0: SIZE_MAX not offered");

	fill(w, sizeof(w), 42);
	if (pwrite(vfd, w, sizeof(w), 3 << 20) != sizeof(w))
		tap_bail("pwrite");
	memset(r, 0, sizeof(r));
	is(req3(dev, VIRTIO_BLK_T_OUT, (3 << 20) / 512, r, sizeof(r), NULL, 0, &used),
	   VIRTIO_BLK_S_IOERR, "ro: OUT -> IOERR");
	ok(file_matches(3 << 20, w, sizeof(w)), "ro: OUT wrote nothing");
	seg_set(&s, (3 << 20) / 512, 8, 0);
	is(req3(dev, VIRTIO_BLK_T_DISCARD, 0, &s, sizeof(s), NULL, 0, &used), VIRTIO_BLK_S_IOERR,
	   "ro: DISCARD -> IOERR");
	is(req3(dev, VIRTIO_BLK_T_WRITE_ZEROES, 0, &s, sizeof(s), NULL, 0, &used),
	   VIRTIO_BLK_S_IOERR, "ro: WRITE_ZEROES -> IOERR");
	ok(file_matches(3 << 20, w, sizeof(w)), "ro: nothing zeroed");
	is(req3(dev, VIRTIO_BLK_T_IN, (3 << 20) / 512, NULL, 0, r, sizeof(r), &used),
	   VIRTIO_BLK_S_OK, "ro: IN -> OK");
	ok(memcmp(r, w, sizeof(w)) == 0, "ro: IN data");
	is(req3(dev, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0, &used), VIRTIO_BLK_S_OK,
	   "ro: FLUSH -> OK");
	blk_dev_destroy(dev);
}

static void test_create_params(struct storage *st)
{
	struct blk_dev_params p = { .st = st, .num_queues = 1 };
	struct blk_dev *dev = (struct blk_dev *)1;

	diag("blk_dev_create parameters");
	p.num_queues = 0;
	is(blk_dev_create(&p, &dev), -EINVAL, "create: num_queues 0 refused");
	ok(dev == NULL, "create: *out cleared");
	p.num_queues = 1;
	p.queue_size = 64;
	p.seg_max = 63;
	is(blk_dev_create(&p, &dev), -EINVAL, "create: seg_max > queue_size - 2 refused");
	p.seg_max = 62;
	is(blk_dev_create(&p, &dev), 0, "create: seg_max = queue_size - 2 accepted");
	blk_dev_destroy(dev);
	p.serial = "123456789012345678901";
	is(blk_dev_create(&p, &dev), -EINVAL, "create: 21-byte serial refused");
	p.serial = "12345678901234567890";
	if (blk_dev_create(&p, &dev) == 0) {
		uint8_t id[24];
		uint32_t used;

		memset(id, 0x77, sizeof(id));
		is(req3(dev, VIRTIO_BLK_T_GET_ID, 0, NULL, 0, id, 24, &used), VIRTIO_BLK_S_OK,
		   "20-byte serial: GET_ID OK");
		ok(memcmp(id, "12345678901234567890", 20) == 0 && id[20] == 0x77,
		   "20-byte serial: no terminator");
		blk_dev_destroy(dev);
	} else {
		ok(0, "create: 20-byte serial accepted");
	}
}

static void test_storage_error(struct blk_dev *dev)
{
	static uint8_t r[4096];
	uint32_t used;

	diag("storage errors");
	if (ftruncate(vfd, 2 << 20) < 0)
		tap_bail("ftruncate");
	is(req3(dev, VIRTIO_BLK_T_IN, (3 << 20) / 512, NULL, 0, r, sizeof(r), &used),
	   VIRTIO_BLK_S_IOERR, "storage -EIO (file shrank) -> IOERR");
	is(used, 1, "storage error: used_len 1");
	if (ftruncate(vfd, FILE_SIZE) < 0)
		tap_bail("ftruncate");
}

static void test_null_topology(void)
{
	struct storage_params sp = { .engine = STORAGE_NULL, .size = 8ull << 30 };
	struct blk_dev_params p = { .num_queues = 2, .seg_max = 200 };
	struct virtio_blk_config cfg;
	struct storage *st;
	struct blk_dev *dev;
	uint8_t r[1024];
	uint32_t used;

	diag("null storage, 4 KiB physical blocks");
	if (storage_open(&sp, &st))
		tap_bail("null storage");
	st->info.physical_block_size = 4096; /* as a 512e disk would report */
	p.st = st;
	if (blk_dev_create(&p, &dev))
		tap_bail("blk_dev_create null");
	blk_dev_get_config(dev, &cfg);
	is(cfg.physical_block_exp, 3, "topology: physical_block_exp 3");
	is(le16toh(cfg.min_io_size), 8, "topology: min_io_size 8 logical blocks");
	is(le32toh(cfg.seg_max), 200, "seg_max without queue_size: as given");
	is(le16toh(cfg.num_queues), 2, "num_queues 2");
	ok(blk_dev_features(dev) & BIT64(VIRTIO_BLK_F_MQ), "MQ offered with 2 queues");
	memset(r, 0x33, sizeof(r));
	is(req3(dev, VIRTIO_BLK_T_IN, 12345, NULL, 0, r, sizeof(r), &used), VIRTIO_BLK_S_OK,
	   "null: IN OK");
	ok(r[0] == 0 && r[1023] == 0, "null: IN reads zeroes");

	/* 8 GiB capacity, so the per-segment limit is what refuses. */
	struct virtio_blk_discard_write_zeroes s;
	seg_set(&s, 0, (1u << 22) + 1, 0);
	is(req3(dev, VIRTIO_BLK_T_DISCARD, 0, &s, sizeof(s), NULL, 0, &used), VIRTIO_BLK_S_IOERR,
	   "null: discard of max_discard_sectors + 1 (in range) -> IOERR");
	is(req3(dev, VIRTIO_BLK_T_WRITE_ZEROES, 0, &s, sizeof(s), NULL, 0, &used),
	   VIRTIO_BLK_S_IOERR, "null: write zeroes of max + 1 (in range) -> IOERR");
	seg_set(&s, 8, 1u << 22, 0);
	is(req3(dev, VIRTIO_BLK_T_DISCARD, 0, &s, sizeof(s), NULL, 0, &used), VIRTIO_BLK_S_OK,
	   "null: discard of exactly max_discard_sectors -> OK");
	blk_dev_destroy(dev);
	storage_close(st);
}

int main(void)
{
	char path[] = "/tmp/vblk-test-blk-XXXXXX";
	struct storage_params sp = { .engine = STORAGE_FILE, .path = path };
	struct blk_dev_params p = {
		.num_queues = 1, .writeback = true, .seg_max = 0, .size_max = 65536,
		.queue_size = 128, .serial = "vblk-serial-01",
	};
	struct storage *st;
	struct blk_dev *dev;

	if (test_qemu_user())
		tap_skip_all("under qemu-user (%s): no io_uring_setup() there", test_qemu_user());
	vfd = mkstemp(path);
	if (vfd < 0 || ftruncate(vfd, FILE_SIZE) < 0)
		tap_bail("temp file");
	if (storage_open(&sp, &st) || storage_chan_create(64, &ch))
		tap_bail("storage set-up");
	p.st = st;
	if (blk_dev_create(&p, &dev))
		tap_bail("blk_dev_create");

	test_config(dev);
	test_layouts(dev);
	test_bad(dev);
	test_discard(dev);
	test_get_id_flush(dev);
	test_storage_error(dev);
	test_cache_mode(st);
	test_read_only(st);
	test_create_params(st);
	test_null_topology();
	is(storage_chan_inflight(ch), 0, "chan idle at the end");

	blk_dev_destroy(dev);
	storage_chan_destroy(ch);
	storage_close(st);
	close(vfd);
	unlink(path);
	return tap_done();
}
