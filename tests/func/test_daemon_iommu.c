/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_iommu.c - vblkd --iommu (VIRTIO_F_ACCESS_PLATFORM) driven by
 * a frontend that acts as if behind an IOMMU: ring and buffer addresses
 * are IOVAs, the memory table's GPAs are elsewhere, and the daemon's
 * IOTLB is filled with IOTLB_MSG updates, up front or on its misses.
 * Covered: 1024-entry split and packed rings with hundreds of requests in
 * flight (write, read back, compare); rings and buffers that start unmapped
 * (every page comes from an answered miss, rings crossing entries);
 * invalidation (the next access misses again instead of using the old
 * mapping); permissions (a read into a read-only mapping, a write from a
 * write-only one: IOERR, the buffer untouched); a miss acked without an
 * answer (the queue breaks, the daemon serves on); hostile IOTLB messages
 * (zero/huge/wrapping sizes, bad permissions and types, memory never
 * shared, before features, an invalidate storm); a daemon without --iommu.
 * Runs with the default sandbox (the func suite runs on the release build).
 *
 * Usage: test_daemon_iommu PATH-TO-VBLKD. Prints TAP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "vblk_client.h"

#define IMG_SIZE (64ull << 20)
#define TMO      5000
#define SECT     512u
#define PAGE     4096u
#define DATA_OFF 0x10000u  /* one queue: guest memory after its rings */

static const char *vblkd;
static char sock[256], img[256], log_path[256];

static struct vblk_client *connect_opts(struct vblk_client_opts *o)
{
	struct vblk_client *c = NULL;
	int ret = vblk_client_connect(sock, o, &c);

	if (ret) {
		diag("connect: %s", strerror(-ret));
		vblkd_log_dump(log_path);
		return NULL;
	}
	return c;
}

/* Wait for @r on queue @q while answering the daemon's IOTLB misses. */
static int wait_serving_how(struct vblk_client *c, unsigned q, struct vblk_req *r,
			    unsigned how, unsigned *misses, uint64_t *last_miss)
{
	/* Up to 10 s: under a sanitizer on a busy machine each answered miss
	 * is a few round trips between three threads. */
	for (int i = 0; i < 1000 && !r->done; i++) {
		uint64_t iova = 0;

		vblk_client_reap(c, q);
		if (r->done)
			break;
		if (vblk_client_serve_iotlb(c, 10, how, &iova) == VHOST_USER_BACKEND_IOTLB_MSG) {
			(*misses)++;
			*last_miss = iova;
		}
	}
	vblk_client_reap(c, q);
	return r->done ? 0 : -ETIMEDOUT;
}

static int wait_serving(struct vblk_client *c, unsigned q, struct vblk_req *r, unsigned *misses,
			uint64_t *last_miss)
{
	return wait_serving_how(c, q, r, VBLK_SERVE_ANSWER, misses, last_miss);
}

/* Many writes in flight, then as many reads, compared. */
static void many_in_flight(bool packed)
{
	struct vblk_client_opts o = {
		.num_queues = 2, .queue_size = 1024, .packed = packed, .mem_size = 32u << 20,
		.iommu = true, .iotlb_prefill = true,
	};
	enum { N = 600, LEN = 4096 };
	static struct vblk_req r[N];
	static uint8_t buf[LEN], got[LEN];
	const char *what = packed ? "packed" : "split";
	struct vblk_client *c = connect_opts(&o);
	unsigned i, bad = 0, failed = 0;

	ok(c != NULL, "%s, queue 1024: connected with ACCESS_PLATFORM", what);
	if (!c)
		return;
	ok(vblk_client_acked(c) & (1ull << VIRTIO_F_ACCESS_PLATFORM), "%s: feature negotiated",
	   what);
	for (i = 0; i < N; i++) {
		/* Half indirect with data cut in pieces, half plain 3-descriptor
		 * chains: 300 a queue fit 1024 descriptors. */
		unsigned flags = i % 4 < 2 ? VBLK_REQ_INDIRECT | VBLK_REQ_SCATTER : 0;

		vblk_fill(buf, LEN, i + (packed ? 7777 : 0));
		if (vblk_client_submit(c, i % 2, &r[i], VIRTIO_BLK_T_OUT, (uint64_t)i * (LEN / SECT),
				       buf, LEN, 0, flags))
			break;
	}
	is(i, (unsigned)N, "%s: %u writes in flight on two queues", what, N);
	if (i != N) {
		vblk_client_destroy(c);
		return;
	}
	vblk_client_kick(c, 0, true);
	vblk_client_kick(c, 1, true);
	for (i = 0; i < N; i++)
		if (vblk_client_wait(c, i % 2, &r[i], TMO) || *r[i].status != VIRTIO_BLK_S_OK)
			failed++;
	is(failed, 0u, "%s: every write completed OK through the IOTLB", what);
	for (i = 0; i < N && !bad; i++) {
		uint8_t st = 0xff;
		unsigned flags = i % 2 ? VBLK_REQ_SCATTER : VBLK_REQ_INDIRECT;

		if (vblk_client_io(c, i % 2, VIRTIO_BLK_T_IN, (uint64_t)i * (LEN / SECT), NULL, 0, got,
				   LEN, flags, TMO, &st, NULL) || st != VIRTIO_BLK_S_OK) {
			bad++;
			break;
		}
		vblk_fill(buf, LEN, i + (packed ? 7777 : 0));
		if (memcmp(buf, got, LEN))
			bad++;
	}
	is(bad, 0u, "%s: every block reads back as written", what);
	vblk_client_destroy(c);
}

/* Nothing mapped up front: rings and buffers come from answered misses. */
static void misses_and_invalidation(void)
{
	struct vblk_client_opts o = {
		.queue_size = 1024, .mem_size = 16u << 20, .iommu = true, .backend_req = true,
	};
	struct vblk_client *c = connect_opts(&o);
	static uint8_t buf[3 * PAGE], got[3 * PAGE];
	struct vblk_req w = { 0 }, rd = { 0 };
	unsigned misses = 0;
	uint64_t last = 0, data_iova;
	void *probe;

	ok(c != NULL, "misses: connected, IOTLB empty");
	if (!c)
		return;
	vblk_fill(buf, sizeof(buf), 42);
	is(vblk_client_submit(c, 0, &w, VIRTIO_BLK_T_OUT, 100, buf, sizeof(buf), 0,
			      VBLK_REQ_SCATTER), 0, "misses: a 12 KiB write submitted");
	vblk_client_kick(c, 0, true);
	is(wait_serving(c, 0, &w, &misses, &last), 0, "misses: the write completed");
	ok(w.done && *w.status == VIRTIO_BLK_S_OK, "misses: status OK");
	/* 1024-entry rings: desc 4 pages, avail 1, used 2; data 4 pages. */
	ok(misses >= 8, "misses: every page came from a miss (%u misses)", misses);
	probe = vblk_client_alloc(c, 1, 1, &data_iova);
	ok(probe != NULL, "misses: data area");

	/* Invalidate everything of the data area; the next request must miss
	 * again on data (not use the old mapping). */
	is(vblk_client_iotlb(c, VHOST_IOTLB_INVALIDATE, VBLK_CLIENT_GPA_BASE + 0x10000,
			     (16u << 20) - 0x10000, 0), 0, "invalidate: acked");
	misses = 0;
	last = 0;
	is(vblk_client_submit(c, 0, &rd, VIRTIO_BLK_T_IN, 100, NULL, 0, sizeof(got), 0), 0,
	   "invalidate: a read submitted");
	vblk_client_kick(c, 0, true);
	if (!ok(!wait_serving(c, 0, &rd, &misses, &last), "invalidate: the read completed "
		"(%u misses)", misses))
		vblkd_log_dump(log_path);
	ok(misses >= 1 && last >= VBLK_CLIENT_GPA_BASE + 0x10000,
	   "invalidate: the data was asked for again (%u misses, last %#llx)", misses,
	   (unsigned long long)last);
	ok(rd.done && *rd.status == VIRTIO_BLK_S_OK && !memcmp(rd.in_data, buf, sizeof(buf)),
	   "invalidate: the read returns what was written");

	/*
	 * The guest may unmap a buffer (its request done) before the frontend
	 * acks the miss that mapped it: the miss was answered all the same.
	 * All data mapped but the page after the first (where a one-page
	 * write's data ends and its status byte lies, whatever the client's
	 * skew of 0-63 bytes): one miss, answered, the write completes, the
	 * page is invalidated, and only then is the miss acked.
	 */
	{
		struct vblk_req w2 = { 0 };
		int st;

		is(vblk_client_iotlb(c, VHOST_IOTLB_UPDATE, VBLK_CLIENT_GPA_BASE + DATA_OFF,
				     8u << 20, VHOST_ACCESS_RW), 0, "late ack: data mapped");
		is(vblk_client_iotlb(c, VHOST_IOTLB_INVALIDATE, VBLK_CLIENT_GPA_BASE + DATA_OFF + PAGE,
				     PAGE, 0), 0, "late ack: one page not");
		misses = 0;
		vblk_client_submit(c, 0, &w2, VIRTIO_BLK_T_OUT, 200, buf, PAGE, 0, 0);
		vblk_client_kick(c, 0, true);
		st = wait_serving_how(c, 0, &w2, VBLK_SERVE_ANSWER | VBLK_SERVE_UNMAP_FIRST,
				      &misses, &last);
		ok(!st && *w2.status == VIRTIO_BLK_S_OK && misses == 1,
		   "late ack: the write completed (%u misses)", misses);
		memset(&w2, 0, sizeof(w2));
		vblk_client_submit(c, 0, &w2, VIRTIO_BLK_T_OUT, 208, buf, PAGE, 0, 0);
		vblk_client_kick(c, 0, true);
		ok(!wait_serving(c, 0, &w2, &misses, &last) && *w2.status == VIRTIO_BLK_S_OK,
		   "late ack: the queue was not broken for it");

		/* A global flush (size 0, as QEMU sends for intel-iommu's lazy
		 * mode) forgets everything, rings included: all asked again. */
		is(vblk_client_iotlb(c, VHOST_IOTLB_INVALIDATE, 0, 0, 0), 0,
		   "global flush: acked");
		misses = 0;
		last = 0;
		memset(&w2, 0, sizeof(w2));
		vblk_client_submit(c, 0, &w2, VIRTIO_BLK_T_OUT, 216, buf, PAGE, 0, 0);
		vblk_client_kick(c, 0, true);
		ok(!wait_serving(c, 0, &w2, &misses, &last) && *w2.status == VIRTIO_BLK_S_OK,
		   "global flush: the next write completes");
		ok(misses >= 8, "global flush: rings and data were asked for again (%u misses)",
		   misses);
	}
	vblk_client_destroy(c);
}

/* A miss the frontend acks without an update breaks that queue only. */
static void miss_unanswered(void)
{
	struct vblk_client_opts o = {
		.queue_size = 256, .iommu = true, .backend_req = true, .err_fds = true,
	};
	struct vblk_client *c = connect_opts(&o);
	struct vblk_req w = { 0 };
	uint8_t buf[PAGE] = { 1 };
	int req = -1;

	ok(c != NULL, "unanswered: connected");
	if (!c)
		return;
	/* Rings mapped, data not. */
	is(vblk_client_iotlb(c, VHOST_IOTLB_UPDATE, VBLK_CLIENT_GPA_BASE, 0x10000, VHOST_ACCESS_RW),
	   0, "unanswered: rings mapped");
	vblk_client_submit(c, 0, &w, VIRTIO_BLK_T_OUT, 0, buf, sizeof(buf), 0, 0);
	vblk_client_kick(c, 0, true);
	/* Misses for the rings may come first (asked before they were
	 * mapped): ack them, wait for the one about the data. */
	for (int i = 0; i < 50 && req != VHOST_USER_BACKEND_IOTLB_MSG; i++) {
		uint64_t iova = 0;

		req = vblk_client_serve_iotlb(c, 100, 0, &iova);
		if (req == VHOST_USER_BACKEND_IOTLB_MSG && iova < VBLK_CLIENT_GPA_BASE + DATA_OFF)
			req = -1;
	}
	is(req, VHOST_USER_BACKEND_IOTLB_MSG, "unanswered: a miss for the data came, acked with "
	   "no update");
	if (!ok(vblk_client_wait_err(c, 0, TMO) == 1, "unanswered: the queue signals its error fd"))
		vblkd_log_dump(log_path);
	ok(!w.done || vblk_client_reap(c, 0) == 0, "unanswered: the request was not completed "
	   "through a missing mapping");
	vblk_client_destroy(c);
}

/* Buffers mapped without the access the request needs: IOERR, untouched. */
static void permissions(void)
{
	struct vblk_client_opts o = { .queue_size = 256, .iommu = true, .iotlb_prefill = true };
	struct vblk_client *c = connect_opts(&o);
	struct vblk_req rd = { 0 }, wr = { 0 };
	uint8_t buf[PAGE], st = 0xff;
	uint64_t iova;

	ok(c != NULL, "perm: connected");
	if (!c)
		return;
	vblk_fill(buf, sizeof(buf), 9);
	vblk_client_io(c, 0, VIRTIO_BLK_T_OUT, 8, buf, sizeof(buf), NULL, 0, 0, TMO, &st, NULL);
	is(st, VIRTIO_BLK_S_OK, "perm: a block written");

	/*
	 * A read whose data buffer is read-only for the device. The mapping
	 * must change before the request is visible (the daemon polls rings).
	 * With nothing in flight the client puts a request's header at the
	 * start of the data area plus a skew of 0-63 bytes, then the data:
	 * [D+79, D+4112) is inside the data buffer whatever the skew, and the
	 * status byte (at D+4112 or later) is not.
	 */
	iova = VBLK_CLIENT_GPA_BASE + DATA_OFF + 79;
	is(vblk_client_iotlb(c, VHOST_IOTLB_UPDATE, iova, 4112 - 79, VHOST_ACCESS_RO), 0,
	   "perm: the next read's data buffer mapped read-only");
	vblk_client_submit(c, 0, &rd, VIRTIO_BLK_T_IN, 8, NULL, 0, sizeof(buf), 0);
	vblk_client_kick(c, 0, true);
	is(vblk_client_wait(c, 0, &rd, TMO), 0, "perm: the read completed");
	is(*rd.status, VIRTIO_BLK_S_IOERR, "perm: with IOERR");
	ok(((uint8_t *)rd.in_data)[0] == 0xa5 && ((uint8_t *)rd.in_data)[PAGE - 1] == 0xa5,
	   "perm: the read-only buffer was not written");

	/* A write whose data the device may not read (write-only). */
	vblk_client_iotlb(c, VHOST_IOTLB_UPDATE, iova, 4112 - 79, VHOST_ACCESS_WO);
	memset(buf, 0x5a, sizeof(buf));
	vblk_client_submit(c, 0, &wr, VIRTIO_BLK_T_OUT, 16, buf, sizeof(buf), 0, 0);
	vblk_client_kick(c, 0, true);
	is(vblk_client_wait(c, 0, &wr, TMO), 0, "perm: the write completed");
	is(*wr.status, VIRTIO_BLK_S_IOERR, "perm: with IOERR");
	vblk_client_iotlb(c, VHOST_IOTLB_UPDATE, iova, 4112 - 79, VHOST_ACCESS_RW);
	st = 0xff;
	vblk_client_io(c, 0, VIRTIO_BLK_T_IN, 16, NULL, 0, buf, sizeof(buf), 0, TMO, &st, NULL);
	ok(st == VIRTIO_BLK_S_OK, "perm: the queue still serves (%u)", st);
	ok(buf[0] != 0x5a, "perm: sector 16 was not written from the write-only buffer");
	vblk_client_destroy(c);
}

static int iotlb_raw(struct vblk_client *c, uint64_t iova, uint64_t size, uint64_t uaddr,
		     uint8_t perm, uint8_t type)
{
	struct vhost_msg_iotlb m = { .iova = iova, .size = size, .uaddr = uaddr, .perm = perm,
				     .type = type };

	return vblk_client_iotlb_raw(c, &m);
}

static void hostile(void)
{
	struct vblk_client_opts o = { .queue_size = 256, .iommu = true, .iotlb_prefill = true };
	struct vblk_client *c = connect_opts(&o);
	const struct gmem_region_desc *r;
	uint8_t buf[PAGE], st = 0xff;
	unsigned i, fails = 0;

	ok(c != NULL, "hostile: connected");
	if (!c)
		return;
	r = vblk_client_region(c, 0);
	is(iotlb_raw(c, 0x1000, 0, r->uva, 3, VHOST_IOTLB_UPDATE), -EIO, "zero size refused");
	is(iotlb_raw(c, UINT64_MAX - 100, 4096, r->uva, 3, VHOST_IOTLB_UPDATE), -EIO,
	   "IOVA wrap-around refused");
	is(iotlb_raw(c, 0x1000, 4096, UINT64_MAX - 100, 3, VHOST_IOTLB_UPDATE), -EIO,
	   "frontend address wrap-around refused");
	is(iotlb_raw(c, 0x1000, UINT64_MAX, r->uva, 3, VHOST_IOTLB_UPDATE), -EIO,
	   "huge size refused");
	is(iotlb_raw(c, 0x1000, 4096, r->uva, 0, VHOST_IOTLB_UPDATE), -EIO, "no permission refused");
	is(iotlb_raw(c, 0x1000, 4096, r->uva, 0x13, VHOST_IOTLB_UPDATE), -EIO,
	   "unknown permission bits refused");
	is(iotlb_raw(c, 0x1000, 4096, 0x1000, 3, VHOST_IOTLB_UPDATE), -EIO,
	   "memory never shared refused");
	is(iotlb_raw(c, 0x1000, r->size + 4096, r->uva, 3, VHOST_IOTLB_UPDATE), -EIO,
	   "an update running past shared memory refused");
	is(iotlb_raw(c, 0x1000, 4096, r->uva, 3, VHOST_IOTLB_MISS), -EIO,
	   "a MISS from the frontend refused");
	is(iotlb_raw(c, 0x1000, 4096, r->uva, 3, 77), -EIO, "an unknown type refused");
	is(iotlb_raw(c, 0x1000, 0, 0, 0, VHOST_IOTLB_INVALIDATE), 0,
	   "a zero-size invalidate (all of IOVA space, QEMU's global flush) accepted");
	is(iotlb_raw(c, UINT64_MAX - 0xfff, 0x3000, 0, 0, VHOST_IOTLB_INVALIDATE), 0,
	   "a wrapping invalidate accepted");
	is(iotlb_raw(c, 0, UINT64_MAX, 0, 0, VHOST_IOTLB_INVALIDATE), 0,
	   "invalidating (almost) all of IOVA space accepted");
	is(vblk_client_iotlb(c, VHOST_IOTLB_UPDATE, VBLK_CLIENT_GPA_BASE, 8u << 20,
			     VHOST_ACCESS_RW), 0, "and mapped again");
	/* A storm of overlapping updates and invalidations of data pages. */
	for (i = 0; i < 3000; i++) {
		uint64_t a = VBLK_CLIENT_GPA_BASE + 0x10000 + (uint64_t)(i % 97) * 3 * 1024;

		if (vblk_client_iotlb(c, i % 2 ? VHOST_IOTLB_INVALIDATE : VHOST_IOTLB_UPDATE, a,
				      i % 2 ? 5000 : 8192, VHOST_ACCESS_RW))
			fails++;
	}
	is(fails, 0u, "3000 overlapping updates and invalidations acked");
	is(vblk_client_iotlb(c, VHOST_IOTLB_UPDATE, VBLK_CLIENT_GPA_BASE, 8u << 20,
			     VHOST_ACCESS_RW), 0, "everything mapped again");
	vblk_fill(buf, sizeof(buf), 5);
	vblk_client_io(c, 0, VIRTIO_BLK_T_OUT, 0, buf, sizeof(buf), NULL, 0, 0, TMO, &st, NULL);
	is(st, VIRTIO_BLK_S_OK, "hostile: I/O still works on the same connection");
	vblk_client_destroy(c);

	/* IOTLB messages before features (a bare connection). */
	{
		struct vhost_frontend *f;
		struct vhost_msg_iotlb m = { .iova = 0, .size = 4096, .uaddr = 0, .perm = 3,
					     .type = VHOST_IOTLB_UPDATE };
		uint64_t pf;

		ok(!vhost_frontend_connect(sock, &f), "before features: connected");
		vhost_frontend_set_timeout(f, TMO);
		vhost_frontend_get_protocol_features(f, &pf);
		vhost_frontend_set_protocol_features(f, pf & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
		is(vhost_frontend_request(f, VHOST_USER_IOTLB_MSG, &m, sizeof(m), NULL, 0), -EIO,
		   "before features: IOTLB update refused");
		vhost_frontend_destroy(f);
	}
}

static void without_iommu_option(void)
{
	struct vblkd_proc p = { 0 };
	char a_sock[300], a_file[300];
	const char *args[] = { a_sock, a_file, NULL };
	struct vblk_client_opts o = { .iommu = true, .iotlb_prefill = true };
	struct vblk_client *c = NULL;

	snprintf(a_sock, sizeof(a_sock), "--socket-path=%s", sock);
	snprintf(a_file, sizeof(a_file), "--file=%s", img);
	if (vblkd_proc_start_logged(&p, vblkd, args, log_path))
		tap_bail("cannot start %s", vblkd);
	is(vblk_client_connect(sock, &o, &c), -ENOTSUP,
	   "without --iommu: ACCESS_PLATFORM is not offered");
	vblk_client_destroy(c);
	vblkd_proc_stop(&p);
	vblkd_proc_cleanup(&p);
}

int main(int argc, char **argv)
{
	struct vblkd_proc dir = { 0 }, p = { 0 };
	char a_sock[300], a_file[300];
	const char *args[] = { a_sock, a_file, "--iommu", "--num-queues=2", NULL };
	int fd;

	if (argc < 2)
		tap_bail("usage: %s PATH-TO-VBLKD", argv[0]);
	vblkd = argv[1];
	if (vblkd_proc_init(&dir))
		tap_bail("mkdtemp");
	vblkd_proc_path(&dir, "disk.sock", sock, sizeof(sock));
	vblkd_proc_path(&dir, "disk.img", img, sizeof(img));
	vblkd_proc_path(&dir, "vblkd.log", log_path, sizeof(log_path));
	fd = fixture_image(img, IMG_SIZE);
	if (fd)
		tap_bail("image %s: %s", img, strerror(-fd));
	snprintf(a_sock, sizeof(a_sock), "--socket-path=%s", sock);
	snprintf(a_file, sizeof(a_file), "--file=%s", img);
	if (vblkd_proc_start_logged(&p, vblkd, args, log_path))
		tap_bail("cannot start %s", vblkd);

	many_in_flight(false);
	many_in_flight(true);
	misses_and_invalidation();
	permissions();
	miss_unanswered();
	hostile();
	ok(vblkd_proc_alive(&p), "vblkd still running after all of it");
	if (vblkd_log_count(log_path, "ERROR") || vblkd_log_count(log_path, "AddressSanitizer"))
		vblkd_log_dump(log_path);
	is(vblkd_proc_stop(&p), 0, "clean exit");
	vblkd_proc_cleanup(&p);
	without_iommu_option();
	vblkd_proc_cleanup(&dir);
	return tap_done();
}
