/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_io.c - the real vblkd process, driven over its socket by
 * vblk_client: data written through every ring layout (split/packed,
 * direct/indirect, merged/scattered descriptors, one region or 64 tiny
 * ones, 1 or 2 queues, with and without EVENT_IDX) reads back and is in the
 * image file after FLUSH; FLUSH, GET_ID, DISCARD, WRITE_ZEROES, range
 * checks, unknown types, a read-only and a null export, the config space,
 * and a clean exit on SIGTERM.
 *
 * Usage: test_daemon_io PATH-TO-VBLKD. Prints TAP.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "common/compiler.h"
#include "tap.h"
#include "vblk_client.h"

#define IMG_SIZE     (128ull << 20)
#define RO_IMG_SIZE  (4ull << 20)
#define NULL_SIZE    (1ull << 30)
#define SERIAL       "func-serial-0123456"   /* 19 bytes */
#define TMO          5000                    /* ms for any one request */
#define SECT         512u

static const char *vblkd;
static struct vblkd_proc proc;
static char sock[256], sock_ro[256], sock_null[256], img[256], img_ro[256];
static int img_fd = -1;
static uint64_t next_sector;     /* matrix area: [0, capacity / 2) */

static const size_t sizes[] = { 512, 4096, 65536 + 512, 256 << 10, 1 << 20 };
static const unsigned layouts[] = {
	0, VBLK_REQ_INDIRECT, VBLK_REQ_MERGE, VBLK_REQ_SCATTER,
	VBLK_REQ_INDIRECT | VBLK_REQ_MERGE | VBLK_REQ_SCATTER,
};

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* One synchronous request; the status byte, or -errno (diagnosed). */
static int io(struct vblk_client *c, unsigned q, uint32_t type, uint64_t sector,
	      const void *out, size_t out_len, void *in, size_t in_len, unsigned flags,
	      uint32_t *used)
{
	uint8_t status = 0xff;
	int ret = vblk_client_io(c, q, type, sector, out, out_len, in, in_len, flags, TMO,
				 &status, used);

	if (ret) {
		diag("request type %u sector %llu on queue %u: %s", type,
		     (unsigned long long)sector, q, strerror(-ret));
		return ret;
	}
	return status;
}

static bool image_has(uint64_t sector, const uint8_t *want, size_t len)
{
	uint8_t *got = malloc(len);
	bool same;

	if (!got || pread(img_fd, got, len, (off_t)(sector * SECT)) != (ssize_t)len) {
		free(got);
		return false;
	}
	same = memcmp(got, want, len) == 0;
	free(got);
	return same;
}

static uint64_t take_sectors(uint64_t n)
{
	uint64_t s;

	if (next_sector + n > IMG_SIZE / SECT / 2)
		next_sector = 0;    /* each case checks its own data before moving on */
	s = next_sector;
	next_sector += n + 1;   /* a gap: an off-by-one write would show */
	return s;
}

static struct vblk_client *connect_main(const struct vblk_client_opts *o, const char *what)
{
	static unsigned fails_in_a_row;
	struct vblk_client *c = NULL;
	int ret = vblk_client_connect(sock, o, &c);

	if (!ok(ret == 0, "%s: connect and handshake", what))
		diag("connect: %s", strerror(-ret));
	if (ret && !vblkd_proc_alive(&proc)) {
		char how[96];

		tap_bail("vblkd died: %s", vblkd_proc_describe(&proc, how, sizeof(how)));
	}
	/* Twice in a row: it hangs; every later case would wait for nothing. */
	fails_in_a_row = ret ? fails_in_a_row + 1 : 0;
	if (fails_in_a_row == 2)
		tap_bail("vblkd stopped answering on %s", sock);
	return ret ? NULL : c;
}

/* ---- config ---------------------------------------------------------------- */

static void test_config(void)
{
	struct vblk_client_opts o = { .num_queues = 2 };
	struct vblk_client *c = connect_main(&o, "config");
	const struct virtio_blk_config *cfg;
	uint64_t f;

	if (!c)
		return;
	cfg = vblk_client_config(c);
	f = vblk_client_offered(c);
	is(le64toh(cfg->capacity), IMG_SIZE / SECT, "config: capacity = image size / 512");
	ok(f & (1ull << VIRTIO_BLK_F_BLK_SIZE), "config: BLK_SIZE offered");
	is(le32toh(cfg->blk_size), 512, "config: blk_size 512");
	ok(f & (1ull << VIRTIO_BLK_F_MQ), "config: MQ offered with 2 queues");
	is(le16toh(cfg->num_queues), 2, "config: num_queues 2");
	is(le32toh(cfg->seg_max), 1024 - 2, "config: seg_max = default queue size (1024) - 2");
	is(le32toh(cfg->size_max), 1 << 20, "config: size_max 1 MiB");
	ok((f & (1ull << VIRTIO_BLK_F_FLUSH)) && cfg->wce == 1, "config: FLUSH offered, writeback");
	ok(!(f & (1ull << VIRTIO_BLK_F_RO)), "config: writable export is not RO");
	ok((f & (1ull << VIRTIO_BLK_F_DISCARD)) && (f & (1ull << VIRTIO_BLK_F_WRITE_ZEROES)),
	   "config: DISCARD and WRITE_ZEROES offered on a file");
	ok((f & (1ull << VIRTIO_F_RING_PACKED)) && (f & (1ull << VIRTIO_RING_F_EVENT_IDX)) &&
	   (f & (1ull << VIRTIO_RING_F_INDIRECT_DESC)) && (f & (1ull << VIRTIO_F_VERSION_1)),
	   "config: packed, event idx, indirect, version 1 offered");
	vblk_client_destroy(c);
}

/*
 * Device reset: a driver's writethrough setting (the config space's
 * writeback byte) must not outlive its connection, nor a RESET_OWNER.
 */
static int read_wce(struct vblk_client *c, uint8_t *wce)
{
	return vhost_frontend_get_config(vblk_client_frontend(c),
					 offsetof(struct virtio_blk_config, wce), wce, 1);
}

static void test_config_reset(void)
{
	struct vblk_client_opts o = { .num_queues = 1 };
	struct vblk_client *c = connect_main(&o, "config reset");
	uint8_t zero = 0, wce = 0xff;

	if (!c)
		return;
	is(vhost_frontend_set_config(vblk_client_frontend(c),
				     offsetof(struct virtio_blk_config, wce), &zero, 1, 0), 0,
	   "config reset: frontend 1 sets writethrough");
	ok(read_wce(c, &wce) == 0 && wce == 0, "config reset: frontend 1 reads writeback 0");
	vblk_client_destroy(c);
	c = connect_main(&o, "config reset: frontend 2");
	if (!c)
		return;
	is(vblk_client_config(c)->wce, 1, "config reset: frontend 2 reads the default (writeback)");
	is(vhost_frontend_set_config(vblk_client_frontend(c),
				     offsetof(struct virtio_blk_config, wce), &zero, 1, 0), 0,
	   "config reset: frontend 2 sets writethrough");
	is(vhost_frontend_reset_owner(vblk_client_frontend(c)), 0, "config reset: RESET_OWNER");
	wce = 0xff;
	is(read_wce(c, &wce), 0, "config reset: config readable after RESET_OWNER");
	is(wce, 1, "config reset: RESET_OWNER restores writeback");
	vblk_client_destroy(c);
}

/* ---- data through every layout ----------------------------------------- */

struct written {
	uint64_t sector;
	size_t len;
	uint64_t seed;
};

static void test_matrix(bool packed, bool tiny, unsigned nq, bool event_idx)
{
	struct vblk_client_opts o = {
		.num_queues = nq, .packed = packed, .no_event_idx = !event_idx,
		.queue_size = nq > 1 ? 64 : 128,
		.mem_size = tiny ? nq * 0x10000 + 63 * (32u << 10) : 8u << 20,
		.region_size = tiny ? 32u << 10 : 0,
	};
	struct written w[2 * ARRAY_SIZE(sizes) * ARRAY_SIZE(layouts)];
	unsigned nw = 0, bad = 0, img_bad = 0, q, l, s;
	uint8_t *buf = malloc(1 << 20), *back = malloc(1 << 20);
	char what[96];
	struct vblk_client *c;
	static uint64_t seed = 1;

	snprintf(what, sizeof(what), "%s, %s memory, %u queue%s%s", packed ? "packed" : "split",
		 tiny ? "64 tiny regions of" : "one region of", nq, nq > 1 ? "s" : "",
		 event_idx ? "" : ", no event idx");
	c = connect_main(&o, what);
	if (!c || !buf || !back)
		goto out;
	if (tiny && !ok(vblk_client_nregions(c) == 64, "%s: 64 regions mapped", what))
		goto out;
	for (q = 0; q < nq; q++) {
		for (l = 0; l < ARRAY_SIZE(layouts); l++) {
			for (s = 0; s < ARRAY_SIZE(sizes); s++) {
				struct written *x = &w[nw++];
				int st;

				x->len = sizes[s];
				x->sector = take_sectors(x->len / SECT);
				x->seed = seed++;
				vblk_fill(buf, x->len, x->seed);
				st = io(c, q, VIRTIO_BLK_T_OUT, x->sector, buf, x->len, NULL, 0,
					layouts[l], NULL);
				if (st != VIRTIO_BLK_S_OK) {
					diag("write q%u layout %#x %zu bytes: status %d", q,
					     layouts[l], x->len, st);
					bad++;
					continue;
				}
				/* Read back with another layout than the write. */
				st = io(c, q, VIRTIO_BLK_T_IN, x->sector, NULL, 0, back, x->len,
					layouts[(l + 1) % ARRAY_SIZE(layouts)], NULL);
				if (st != VIRTIO_BLK_S_OK || memcmp(buf, back, x->len)) {
					diag("read back q%u layout %#x %zu bytes: status %d%s", q,
					     layouts[l], x->len, st,
					     st == VIRTIO_BLK_S_OK ? ", data differs" : "");
					bad++;
				}
			}
		}
	}
	ok(bad == 0, "%s: %u writes read back intact", what, nw);
	for (q = 0; q < nq; q++)
		is(io(c, q, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0, 0, NULL), VIRTIO_BLK_S_OK,
		   "%s: FLUSH on queue %u", what, q);
	for (unsigned i = 0; i < nw; i++) {
		vblk_fill(buf, w[i].len, w[i].seed);
		if (!image_has(w[i].sector, buf, w[i].len))
			img_bad++;
	}
	ok(img_bad == 0, "%s: the data is in the image file after FLUSH (%u bad)", what, img_bad);
out:
	vblk_client_destroy(c);
	free(buf);
	free(back);
}

/*
 * @per requests in flight at once on every queue (one kick per batch),
 * several rounds so the rings wrap; then read all of them back in a batch.
 * With @per == @qsize the ring is full and the daemon's in-flight cap is hit.
 */
static void test_batches(bool packed, unsigned nq, unsigned qsize, unsigned per)
{
	enum { MAXPER = 1024, LEN = 4096, ROUNDS = 4 };
	struct vblk_client_opts o = { .num_queues = nq, .packed = packed, .queue_size = qsize,
				      .mem_size = (size_t)nq * per * 8192 + (4u << 20) };
	static struct vblk_req req[2][MAXPER];
	static uint8_t req_failed = 0xff;
	static uint64_t base[2][MAXPER];
	/* Direct chains take 3 slots, indirect ones 1: as many direct as fit. */
	unsigned direct_max = (qsize - per) / 2, direct;
	unsigned bad = 0, timeouts = 0, total = 0, q, i, round;
	uint8_t buf[LEN];
	char what[96];
	struct vblk_client *c;

	snprintf(what, sizeof(what), "batches, %s ring of %u, %u queue%s", packed ? "packed" :
		 "split", qsize, nq, nq > 1 ? "s" : "");
	if (per > MAXPER || per > qsize)
		tap_bail("test_batches: %u requests", per);
	c = connect_main(&o, what);
	if (!c)
		return;
	for (round = 0; round < ROUNDS; round++) {
		bool reading = round % 2;

		for (q = 0; q < nq; q++) {
			direct = 0;
			for (i = 0; i < per; i++) {
				unsigned flags = VBLK_REQ_INDIRECT;

				if (!reading && i % 4 == 0 && direct < direct_max) {
					flags = 0;
					direct++;
				}
				if (!reading) {
					base[q][i] = take_sectors(LEN / SECT);
					vblk_fill(buf, LEN, base[q][i]);
				}
				if (vblk_client_submit(c, q, &req[q][i],
						       reading ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT,
						       base[q][i], reading ? NULL : buf,
						       reading ? 0 : LEN, reading ? LEN : 0,
						       reading ? VBLK_REQ_INDIRECT : flags)) {
					req[q][i].done = true;
					req[q][i].status = &req_failed;
					bad++;
				}
			}
			vblk_client_kick(c, q, false);
		}
		for (q = 0; q < nq; q++) {
			for (i = 0; i < per; i++) {
				struct vblk_req *r = &req[q][i];

				total++;
				if (vblk_client_wait(c, q, r, TMO)) {
					timeouts++;
					continue;
				}
				if (*r->status != VIRTIO_BLK_S_OK ||
				    r->used_len != (reading ? LEN + 1u : 1u)) {
					bad++;
					continue;
				}
				if (reading) {
					vblk_fill(buf, LEN, base[q][i]);
					if (memcmp(buf, r->in_data, LEN))
						bad++;
				}
			}
		}
		if (timeouts)
			break;
	}
	ok(timeouts == 0 && bad == 0, "%s: %u requests, %u in flight per queue (%u bad, %u "
	   "timed out)", what, total, per, bad, timeouts);
	vblk_client_destroy(c);
}

/* ---- request types ------------------------------------------------------- */

static void test_types(void)
{
	struct vblk_client_opts o = { .num_queues = 2 };
	struct vblk_client *c = connect_main(&o, "request types");
	uint64_t cap = IMG_SIZE / SECT, s = cap / 2 + 8;
	struct virtio_blk_discard_write_zeroes seg;
	uint8_t *buf = malloc(1 << 16), *back = malloc(1 << 16), id[20], want_id[20] = { 0 };
	uint32_t used = 0;

	if (!c || !buf || !back)
		goto out;

	/* FLUSH: status only. */
	is(io(c, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0, 0, &used), VIRTIO_BLK_S_OK,
	   "FLUSH: OK");
	is(used, 1, "FLUSH: used length 1");

	/* GET_ID: the serial, NUL-padded to 20 bytes. */
	memcpy(want_id, SERIAL, strlen(SERIAL));
	is(io(c, 1, VIRTIO_BLK_T_GET_ID, 0, NULL, 0, id, sizeof(id), 0, &used), VIRTIO_BLK_S_OK,
	   "GET_ID: OK");
	ok(memcmp(id, want_id, sizeof(id)) == 0, "GET_ID: matches --serial (got '%.20s')", id);
	is(used, 21, "GET_ID: used length 20 + status");

	/* DISCARD: the range reads back as zeroes, in the device and the file. */
	vblk_fill(buf, 1 << 16, 77);
	is(io(c, 0, VIRTIO_BLK_T_OUT, s, buf, 1 << 16, NULL, 0, 0, NULL), VIRTIO_BLK_S_OK,
	   "DISCARD: pattern written");
	seg = (struct virtio_blk_discard_write_zeroes){ .sector = htole64(s + 8),
							.num_sectors = htole32(64) };
	is(io(c, 0, VIRTIO_BLK_T_DISCARD, 0, &seg, sizeof(seg), NULL, 0, 0, NULL),
	   VIRTIO_BLK_S_OK, "DISCARD: OK");
	is(io(c, 1, VIRTIO_BLK_T_IN, s, NULL, 0, back, 1 << 16, 0, NULL), VIRTIO_BLK_S_OK,
	   "DISCARD: read back");
	ok(memcmp(back, buf, 8 * SECT) == 0 && all_zero(back + 8 * SECT, 64 * SECT) &&
	   memcmp(back + 72 * SECT, buf + 72 * SECT, (1 << 16) - 72 * SECT) == 0,
	   "DISCARD: exactly the discarded sectors read as zeroes");
	memset(back, 0, 64 * SECT);
	ok(image_has(s + 8, back, 64 * SECT), "DISCARD: zeroes in the image file too");

	/* WRITE_ZEROES, without and with UNMAP. */
	for (int unmap = 0; unmap < 2; unmap++) {
		uint64_t ws = s + 256 + (uint64_t)unmap * 256;

		vblk_fill(buf, 1 << 16, 78 + (uint64_t)unmap);
		io(c, 1, VIRTIO_BLK_T_OUT, ws, buf, 1 << 16, NULL, 0, 0, NULL);
		seg = (struct virtio_blk_discard_write_zeroes){
			.sector = htole64(ws + 1), .num_sectors = htole32(7),
			.flags = htole32(unmap ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0) };
		is(io(c, 1, VIRTIO_BLK_T_WRITE_ZEROES, 0, &seg, sizeof(seg), NULL, 0,
		      VBLK_REQ_INDIRECT, NULL), VIRTIO_BLK_S_OK, "WRITE_ZEROES%s: OK",
		   unmap ? " with UNMAP" : "");
		io(c, 0, VIRTIO_BLK_T_IN, ws, NULL, 0, back, 16 * SECT, 0, NULL);
		ok(memcmp(back, buf, SECT) == 0 && all_zero(back + SECT, 7 * SECT) &&
		   memcmp(back + 8 * SECT, buf + 8 * SECT, 8 * SECT) == 0,
		   "WRITE_ZEROES%s: exactly sectors 1-7 read as zeroes", unmap ? " with UNMAP" : "");
	}
	/* DISCARD with UNMAP is invalid (spec): UNSUPP. */
	seg = (struct virtio_blk_discard_write_zeroes){ .sector = htole64(s), .num_sectors =
		htole32(1), .flags = htole32(VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) };
	is(io(c, 0, VIRTIO_BLK_T_DISCARD, 0, &seg, sizeof(seg), NULL, 0, 0, NULL),
	   VIRTIO_BLK_S_UNSUPP, "DISCARD with the UNMAP flag: UNSUPP");
	seg = (struct virtio_blk_discard_write_zeroes){ .sector = htole64(cap - 1),
							.num_sectors = htole32(2) };
	is(io(c, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &seg, sizeof(seg), NULL, 0, 0, NULL),
	   VIRTIO_BLK_S_IOERR, "WRITE_ZEROES past the end: IOERR");

	/* Range checks. */
	is(io(c, 0, VIRTIO_BLK_T_IN, cap - 1, NULL, 0, back, SECT, 0, NULL), VIRTIO_BLK_S_OK,
	   "read of the last sector: OK");
	is(io(c, 0, VIRTIO_BLK_T_IN, cap - 1, NULL, 0, back, 2 * SECT, 0, &used),
	   VIRTIO_BLK_S_IOERR, "read crossing the end: IOERR");
	is(used, 1, "failed read: used length 1 (status only)");
	is(io(c, 1, VIRTIO_BLK_T_IN, cap, NULL, 0, back, SECT, 0, NULL), VIRTIO_BLK_S_IOERR,
	   "read at the capacity: IOERR");
	is(io(c, 1, VIRTIO_BLK_T_IN, UINT64_MAX - 1, NULL, 0, back, SECT, 0, NULL),
	   VIRTIO_BLK_S_IOERR, "read at sector 2^64-2 (offset overflows): IOERR");
	is(io(c, 0, VIRTIO_BLK_T_OUT, cap, buf, SECT, NULL, 0, 0, NULL), VIRTIO_BLK_S_IOERR,
	   "write at the capacity: IOERR");
	is(io(c, 0, VIRTIO_BLK_T_OUT, s, buf, 100, NULL, 0, 0, NULL), VIRTIO_BLK_S_IOERR,
	   "write of 100 bytes (not whole sectors): IOERR");

	/* Unknown types. */
	is(io(c, 0, 0x12345, 0, NULL, 0, back, SECT, 0, NULL), VIRTIO_BLK_S_UNSUPP,
	   "unknown type 0x12345: UNSUPP");
	is(io(c, 1, 10 /* GET_LIFETIME, not offered */, 0, NULL, 0, back, 16, 0, NULL),
	   VIRTIO_BLK_S_UNSUPP, "GET_LIFETIME (not offered): UNSUPP");
	/* And the queues still serve after all of that. */
	vblk_fill(buf, 4096, 79);
	is(io(c, 1, VIRTIO_BLK_T_OUT, s, buf, 4096, NULL, 0, 0, NULL), VIRTIO_BLK_S_OK,
	   "a good write after the errors");
out:
	vblk_client_destroy(c);
	free(buf);
	free(back);
}

static void test_read_only(void)
{
	struct vblk_client *c = NULL;
	uint8_t *want = malloc(RO_IMG_SIZE), buf[4096], back[4096];
	struct virtio_blk_discard_write_zeroes seg = { .num_sectors = htole32(8) };
	int ret, fd;

	fd = open(img_ro, O_RDONLY | O_CLOEXEC);
	if (!want || fd < 0 || pread(fd, want, RO_IMG_SIZE, 0) != (ssize_t)RO_IMG_SIZE)
		tap_bail("read-only image");
	ret = vblk_client_connect(sock_ro, NULL, &c);
	if (!ok(ret == 0, "read-only export: connect"))
		goto out;
	ok(vblk_client_offered(c) & (1ull << VIRTIO_BLK_F_RO), "read-only export: RO offered");
	is(le64toh(vblk_client_config(c)->capacity), RO_IMG_SIZE / SECT,
	   "read-only export: capacity");
	is(io(c, 0, VIRTIO_BLK_T_IN, 8, NULL, 0, back, sizeof(back), 0, NULL), VIRTIO_BLK_S_OK,
	   "read-only export: read OK");
	ok(memcmp(back, want + 8 * SECT, sizeof(back)) == 0, "read-only export: read the image");
	vblk_fill(buf, sizeof(buf), 99);
	is(io(c, 0, VIRTIO_BLK_T_OUT, 8, buf, sizeof(buf), NULL, 0, 0, NULL), VIRTIO_BLK_S_IOERR,
	   "read-only export: write gets IOERR");
	is(io(c, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &seg, sizeof(seg), NULL, 0, 0, NULL),
	   VIRTIO_BLK_S_IOERR, "read-only export: WRITE_ZEROES gets IOERR");
	is(io(c, 0, VIRTIO_BLK_T_DISCARD, 0, &seg, sizeof(seg), NULL, 0, 0, NULL),
	   VIRTIO_BLK_S_IOERR, "read-only export: DISCARD gets IOERR");
	is(io(c, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0, 0, NULL), VIRTIO_BLK_S_OK,
	   "read-only export: FLUSH OK");
	{
		uint8_t *now = malloc(RO_IMG_SIZE);

		ok(now && pread(fd, now, RO_IMG_SIZE, 0) == (ssize_t)RO_IMG_SIZE &&
		   memcmp(now, want, RO_IMG_SIZE) == 0, "read-only export: the image is unchanged");
		free(now);
	}
out:
	vblk_client_destroy(c);
	if (fd >= 0)
		close(fd);
	free(want);
}

static void test_null(void)
{
	struct vblk_client_opts o = { .packed = true };
	struct vblk_client *c = NULL;
	uint8_t buf[8192], back[8192];
	int ret = vblk_client_connect(sock_null, &o, &c);

	if (!ok(ret == 0, "null export: connect"))
		return;
	is(le64toh(vblk_client_config(c)->capacity), NULL_SIZE / SECT, "null export: capacity");
	vblk_fill(buf, sizeof(buf), 5);
	is(io(c, 0, VIRTIO_BLK_T_OUT, 1000, buf, sizeof(buf), NULL, 0, 0, NULL), VIRTIO_BLK_S_OK,
	   "null export: write OK");
	is(io(c, 0, VIRTIO_BLK_T_IN, 1000, NULL, 0, back, sizeof(back), 0, NULL),
	   VIRTIO_BLK_S_OK, "null export: read OK");
	ok(all_zero(back, sizeof(back)), "null export: reads zeroes");
	is(io(c, 0, VIRTIO_BLK_T_IN, NULL_SIZE / SECT, NULL, 0, back, SECT, 0, NULL),
	   VIRTIO_BLK_S_IOERR, "null export: read past the end: IOERR");
	vblk_client_destroy(c);
}

/* ---- main ------------------------------------------------------------------ */

/* Stop the daemon (if it still runs) and remove the temp dir, however we end. */
static void cleanup_at_exit(void)
{
	vblkd_proc_cleanup(&proc);
}

static void make_image(const char *path, uint64_t size, bool pattern)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint8_t *b;

	if (fd < 0 || ftruncate(fd, (off_t)size))
		tap_bail("image %s: %s", path, strerror(errno));
	if (pattern) {
		b = malloc(size);
		if (!b)
			tap_bail("malloc");
		vblk_fill(b, size, 4242);
		if (pwrite(fd, b, size, 0) != (ssize_t)size)
			tap_bail("image %s: write", path);
		free(b);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	char ro_export[600], null_export[600], how[96];
	int st;

	vblkd = vblk_test_start(argc, argv, &proc);
	atexit(cleanup_at_exit);    /* also after a Bail out */
	vblkd_proc_path(&proc, "disk.sock", sock, sizeof(sock));
	vblkd_proc_path(&proc, "ro.sock", sock_ro, sizeof(sock_ro));
	vblkd_proc_path(&proc, "null.sock", sock_null, sizeof(sock_null));
	vblkd_proc_path(&proc, "disk.img", img, sizeof(img));
	vblkd_proc_path(&proc, "ro.img", img_ro, sizeof(img_ro));
	make_image(img, IMG_SIZE, false);
	make_image(img_ro, RO_IMG_SIZE, true);
	img_fd = open(img, O_RDONLY | O_CLOEXEC);
	if (img_fd < 0)
		tap_bail("open %s", img);
	snprintf(ro_export, sizeof(ro_export), "socket-path=%s,file=%s,read-only=on", sock_ro,
		 img_ro);
	snprintf(null_export, sizeof(null_export), "socket-path=%s,null=1G", sock_null);
	{
		char a_sock[300], a_file[300], a_ro[620], a_null[620];
		const char *args[] = {
			a_sock, a_file, "--num-queues=2", "--serial=" SERIAL,
			a_ro, a_null, NULL,
		};

		snprintf(a_sock, sizeof(a_sock), "--socket-path=%s", sock);
		snprintf(a_file, sizeof(a_file), "--file=%s", img);
		snprintf(a_ro, sizeof(a_ro), "--export=%s", ro_export);
		snprintf(a_null, sizeof(a_null), "--export=%s", null_export);
		if (vblkd_proc_start(&proc, vblkd, args))
			tap_bail("cannot start %s", vblkd);
	}

	test_config();
	test_config_reset();
	for (int packed = 0; packed < 2; packed++)
		for (int tiny = 0; tiny < 2; tiny++)
			for (unsigned nq = 1; nq <= 2; nq++)
				test_matrix(packed, tiny, nq, true);
	test_matrix(false, false, 1, false);
	test_matrix(true, false, 1, false);
	for (int packed = 0; packed < 2; packed++) {
		for (unsigned nq = 1; nq <= 2; nq++)
			test_batches(packed, nq, 64, 40);
		test_batches(packed, 2, 256, 256);   /* full rings */
		/* The default --queue-size (1024, what QEMU allows), full: 1024 in flight. */
		test_batches(packed, 2, 1024, 1024);
	}
	test_batches(true, 1, 100, 70);              /* packed: any size, not a power of 2 */
	/* Every split size (powers of two) and a spread of packed sizes up to 1024. */
	for (unsigned n = 1; n <= 1024; n *= 2)
		test_batches(false, 1, n, MIN(n, 16u));
	{
		static const unsigned packed_sizes[] = { 1, 3, 7, 100, 511, 1000, 1023 };

		for (unsigned i = 0; i < ARRAY_SIZE(packed_sizes); i++)
			test_batches(true, 1, packed_sizes[i], MIN(packed_sizes[i], 16u));
	}
	test_types();
	test_read_only();
	test_null();

	ok(vblkd_proc_alive(&proc), "vblkd is still running");
	st = vblkd_proc_stop(&proc);
	ok(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "vblkd exits 0 on SIGTERM");
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		diag("vblkd %s", st < 0 ? strerror(-st) :
		     vblkd_proc_describe(&proc, how, sizeof(how)));
	close(img_fd);
	vblkd_proc_cleanup(&proc);
	return tap_done();
}
