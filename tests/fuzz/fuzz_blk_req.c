/* SPDX-License-Identifier: MIT */
/*
 * fuzz_blk_req.c - the virtio-blk request parser and executor: a request
 * the fuzzer lays out as device-readable and device-writable iovecs over
 * separate heap buffers (arbitrary split points, empty segments), run on
 * a null storage or a small file-backed one (io_uring). The callback must
 * run exactly once, report no more bytes than the writable buffers hold,
 * leave the readable buffers untouched and write a valid status byte.
 *
 * Input: struct fb_hdr, nout + nin split bytes, then the readable bytes
 * (header + payload; zero-padded).
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"
#include "fuzz_formats.h"
#include "blk/blk.h"
#include "common/iov.h"

#define FB_NULL_SIZE (1u << 20)
#define FB_FILE_SIZE (256u << 10)

static struct storage *st_null, *st_null_ro, *st_file;
static struct storage_chan *chan;

static void fb_setup(void)
{
	struct storage_params p = { .engine = STORAGE_NULL, .size = FB_NULL_SIZE };
	char path[] = "/dev/shm/vblk-fuzz-blk-XXXXXX";
	int fd;

	if (chan)
		return;
	FUZZ_SETUP(storage_open(&p, &st_null) == 0, "null storage");
	p.read_only = true;
	FUZZ_SETUP(storage_open(&p, &st_null_ro) == 0, "read-only null storage");
	FUZZ_REQUIRE(!test_qemu_user(), "qemu-user has no io_uring_setup()");
	FUZZ_SETUP(storage_chan_create(64, &chan) == 0, "storage chan (io_uring)");
	/* The file engine over tmpfs; without /dev/shm, null serves all. */
	fd = mkstemp(path);
	if (fd >= 0) {
		p = (struct storage_params){ .engine = STORAGE_FILE, .path = path };
		if (ftruncate(fd, FB_FILE_SIZE) == 0 && storage_open(&p, &st_file) != 0)
			st_file = NULL;
		unlink(path);
		close(fd);
	}
}

static unsigned cb_calls;
static uint32_t cb_used;
static struct blk_req *cb_expect;

static void fb_done(struct blk_req *req, uint32_t used_len)
{
	FUZZ_CHECK(req == cb_expect, "callback for another request");
	cb_calls++;
	cb_used = used_len;
}

/* Cut @total bytes into @n segment lengths from @in's split bytes. */
static void fb_split(struct fuzz_in *in, unsigned n, size_t total, size_t *len)
{
	size_t left = total;

	for (unsigned i = 0; i < n; i++) {
		uint8_t b = fin_u8(in);
		size_t l = (b & 0x80) ? (size_t)(b & 0x7f) * 64 : (size_t)(b & 0x7f);

		if (i == n - 1 || l > left)
			l = left;
		len[i] = l;
		left -= l;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct blk_dev_params params;
	struct blk_dev *dev;
	struct blk_req *req;
	struct iovec *iov, orig[2 * FB_MAX_SEG];
	struct fb_hdr h;
	size_t seg[2 * FB_MAX_SEG], out_len, in_len, off;
	uint8_t *out_copy;
	unsigned nout, nin, i, spins;
	int ret;

	fuzz_quiet_logs();
	fb_setup();
	fin_copy(&in, &h, sizeof(h));
	nout = h.nout % (FB_MAX_SEG + 1);
	nin = h.nin % (FB_MAX_SEG + 1);
	out_len = nout ? (size_t)(h.out_len[0] | h.out_len[1] << 8) % (FB_MAX_LEN + 1) : 0;
	in_len = nin ? (size_t)(h.in_len[0] | h.in_len[1] << 8) % (FB_MAX_LEN + 1) : 0;
	fb_split(&in, nout, out_len, seg);
	fb_split(&in, nin, in_len, seg + nout);

	params = (struct blk_dev_params){
		.st = (h.flags & FB_F_FILE) && st_file ? st_file :
		      h.flags & FB_F_STORAGE_RO ? st_null_ro : st_null,
		.read_only = h.flags & FB_F_READ_ONLY,
		.writeback = h.flags & FB_F_WRITEBACK,
		.num_queues = 1,
		.serial = "vblk-fuzz-serial",
	};
	ret = blk_dev_create(&params, &dev);
	FUZZ_SETUP(ret == 0, "blk_dev_create");
	if (h.flags & FB_F_FEATURES)
		blk_dev_set_features(dev, h.flags & FB_F_FEAT_FLUSH ?
				     1ull << VIRTIO_BLK_F_FLUSH : 0);

	/* One heap block per segment (exact size) and for the iovec array,
	 * so any access past either is an ASan report. */
	iov = malloc((nout + nin ? nout + nin : 1) * sizeof(*iov));
	out_copy = malloc(out_len ? out_len : 1);
	req = malloc(sizeof(*req));
	FUZZ_SETUP(iov && out_copy && req, "malloc");
	fin_copy(&in, out_copy, out_len);
	for (i = 0, off = 0; i < nout + nin; i++) {
		iov[i].iov_len = seg[i];
		iov[i].iov_base = malloc(seg[i]);
		FUZZ_SETUP(iov[i].iov_base || !seg[i], "malloc");
		if (i < nout) {
			memcpy(iov[i].iov_base, out_copy + off, seg[i]);
			off += seg[i];
		} else {
			memset(iov[i].iov_base, 0xa5, seg[i]);
		}
	}
	/* blk rewrites entries of iov: keep the originals to free and check. */
	memcpy(orig, iov, (nout + nin) * sizeof(*iov));

	cb_calls = 0;
	cb_used = 0;
	cb_expect = req;
	blk_req_submit(dev, chan, req, iov, nout, nin, fb_done);
	storage_chan_flush(chan);
	for (spins = 0; cb_calls == 0 || storage_chan_inflight(chan); spins++) {
		struct pollfd pfd = { .fd = storage_chan_fd(chan), .events = POLLIN };

		FUZZ_CHECK(spins < 5000, "request not completed (%u callbacks, %u in flight)",
			   cb_calls, storage_chan_inflight(chan));
		poll(&pfd, 1, 1);
		storage_chan_reap(chan);
	}
	FUZZ_CHECK(cb_calls == 1, "%u callbacks", cb_calls);
	if (log_max_level >= LOG_DEBUG)
		fprintf(stderr, "fuzz: blk type %u: used_len %u of %zu, status %d\n", req->type,
			cb_used, in_len, req->status && cb_used ? *req->status : -1);
	FUZZ_CHECK(cb_used <= in_len, "used_len %u > %zu writable bytes", cb_used, in_len);
	if (cb_used) {
		/* The status byte: the last byte of the last non-empty segment. */
		const uint8_t *status = NULL;

		for (i = nout + nin; i-- > nout && !status;)
			if (orig[i].iov_len)
				status = (uint8_t *)orig[i].iov_base + orig[i].iov_len - 1;
		FUZZ_CHECK(status && *status <= VIRTIO_BLK_S_UNSUPP, "status %d",
			   status ? *status : -1);
	}
	for (i = 0, off = 0; i < nout; off += orig[i].iov_len, i++)
		FUZZ_CHECK(memcmp(orig[i].iov_base, out_copy + off, orig[i].iov_len) == 0,
			   "device-readable segment %u was written", i);

	for (i = 0; i < nout + nin; i++)
		free(orig[i].iov_base);
	free(req);
	free(out_copy);
	free(iov);
	blk_dev_destroy(dev);
	return 0;
}
