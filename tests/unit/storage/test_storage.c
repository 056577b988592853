/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/storage: the null engine, and the file engine on a
 * temp file on ext4-or-whatever /tmp and on tmpfs /dev/shm (where
 * FALLOC_FL_ZERO_RANGE is unsupported, so the zero-writing fallback runs).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <unistd.h>

#include "tap.h"
#include "storage/storage.h"
#include "storage/storage_internal.h"

#define FILE_SIZE (1024u * 1024)

struct tio {
	struct storage_io io;
	int res;
	int calls;
};

static void tio_cb(struct storage_io *io, int res)
{
	struct tio *t = (struct tio *)io;

	t->res = res;
	t->calls++;
}

/* Reap until every tio in @t[0..n) has been called back (5 s cap). */
static bool wait_all(struct storage_chan *ch, struct tio *t, unsigned n)
{
	for (int spins = 0; spins < 5000; spins++) {
		struct pollfd pfd = { .fd = storage_chan_fd(ch), .events = POLLIN };
		unsigned i;

		for (i = 0; i < n && t[i].calls; i++)
			;
		if (i == n)
			return true;
		poll(&pfd, 1, 1);
		storage_chan_reap(ch);
	}
	return false;
}

static void tio_init(struct tio *t, enum storage_op op, uint64_t off, const struct iovec *iov,
		     unsigned cnt)
{
	memset(t, 0, sizeof(*t));
	t->io.op = op;
	t->io.offset = off;
	t->io.iov = iov;
	t->io.iovcnt = cnt;
	t->io.cb = tio_cb;
	t->res = 1;
}

/* Submit one request, flush, wait; return its result (or 999 on timeout). */
static int run1(struct storage_chan *ch, struct storage *st, struct tio *t)
{
	storage_submit(ch, st, &t->io);
	storage_chan_flush(ch);
	if (!wait_all(ch, t, 1))
		return 999;
	return t->calls == 1 ? t->res : 998;
}

static int run_rw(struct storage_chan *ch, struct storage *st, enum storage_op op, uint64_t off,
		  const struct iovec *iov, unsigned cnt, bool fua)
{
	struct tio t;

	tio_init(&t, op, off, iov, cnt);
	t.io.fua = fua;
	return run1(ch, st, &t);
}

static int run_range(struct storage_chan *ch, struct storage *st, enum storage_op op,
		     uint64_t off, uint64_t len, bool unmap, bool fua)
{
	struct tio t;

	tio_init(&t, op, off, NULL, 0);
	t.io.len = len;
	t.io.unmap = unmap;
	t.io.fua = fua;
	return run1(ch, st, &t);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Compare file bytes at @off with @want through a separate fd. */
static bool file_matches(int fd, uint64_t off, const void *want, size_t n)
{
	uint8_t *buf = malloc(n);
	bool same = buf && pread(fd, buf, n, (off_t)off) == (ssize_t)n && memcmp(buf, want, n) == 0;

	free(buf);
	return same;
}

static bool file_zero(int fd, uint64_t off, size_t n)
{
	uint8_t *buf = malloc(n);
	bool z = buf && pread(fd, buf, n, (off_t)off) == (ssize_t)n && all_zero(buf, n);

	free(buf);
	return z;
}

static void test_null(void)
{
	struct storage_params p = { .engine = STORAGE_NULL, .size = 1 << 20 };
	struct storage *st;
	struct storage_chan *ch;
	uint8_t a[512], b[1024], c[512];
	struct iovec iov[3] = { { a, sizeof(a) }, { b, sizeof(b) }, { c, sizeof(c) } };
	struct pollfd pfd;
	struct tio t;

	diag("null engine");
	p.size = 1000;
	is(storage_open(&p, &st), -EINVAL, "null: size not a multiple of 512 refused");
	p.size = 0;
	is(storage_open(&p, &st), -EINVAL, "null: size 0 refused");
	p.size = 1 << 20;
	if (storage_open(&p, &st) || storage_chan_create(8, &ch))
		tap_bail("null storage set-up");
	is(storage_get_info(st)->size, 1 << 20, "null: size");
	is(storage_get_info(st)->logical_block_size, 512, "null: logical block size");
	ok(storage_get_info(st)->can_discard && storage_get_info(st)->can_write_zeroes,
	   "null: discard and write-zeroes");

	memset(a, 0xaa, sizeof(a));
	memset(b, 0xbb, sizeof(b));
	memset(c, 0xcc, sizeof(c));
	tio_init(&t, STORAGE_OP_READ, 4096, iov, 3);
	storage_submit(ch, st, &t.io);
	is(t.calls, 0, "null: callback not run from storage_submit");
	is(storage_chan_inflight(ch), 1, "null: one in flight after submit");
	storage_chan_flush(ch);
	pfd = (struct pollfd){ .fd = storage_chan_fd(ch), .events = POLLIN };
	is(poll(&pfd, 1, 0), 1, "null: chan fd readable without a kernel round trip");
	is(storage_chan_reap(ch), 1, "null: reap runs one callback");
	is(t.calls, 1, "null: exactly one callback");
	is(t.res, 0, "null: read ok");
	ok(all_zero(a, sizeof(a)) && all_zero(b, sizeof(b)) && all_zero(c, sizeof(c)),
	   "null: read zero-fills every iovec");
	is(storage_chan_inflight(ch), 0, "null: nothing in flight after reap");
	pfd.revents = 0;
	is(poll(&pfd, 1, 0), 0, "null: fd no longer readable after reap");

	is(run_rw(ch, st, STORAGE_OP_WRITE, 0, iov, 3, true), 0, "null: write ok");
	is(run_range(ch, st, STORAGE_OP_FLUSH, 0, 0, false, false), 0, "null: flush ok");
	is(run_range(ch, st, STORAGE_OP_DISCARD, 0, 8192, false, false), 0, "null: discard ok");
	is(run_range(ch, st, STORAGE_OP_WRITE_ZEROES, 8192, 8192, true, false), 0,
	   "null: write-zeroes ok");
	is(run_rw(ch, st, STORAGE_OP_READ, (1 << 20) - 1024, iov, 3, false), -EINVAL,
	   "null: read past the end -> -EINVAL");
	is(run_range(ch, st, STORAGE_OP_DISCARD, (1 << 20), 512, false, false), -EINVAL,
	   "null: discard past the end -> -EINVAL");
	storage_chan_destroy(ch);
	storage_close(st);

	p.read_only = true;
	if (storage_open(&p, &st) || storage_chan_create(8, &ch))
		tap_bail("null ro storage set-up");
	ok(storage_get_info(st)->read_only, "null ro: read_only in info");
	is(run_rw(ch, st, STORAGE_OP_WRITE, 0, iov, 3, false), -EROFS, "null ro: write -> -EROFS");
	is(run_range(ch, st, STORAGE_OP_WRITE_ZEROES, 0, 512, false, false), -EROFS,
	   "null ro: write-zeroes -> -EROFS");
	storage_chan_destroy(ch);
	storage_close(st);
}

/*
 * A drained chan (its owner calls storage_chan_drain at the end of each
 * loop iteration): local completions do not signal the fd; drain runs
 * them, including ones their callbacks chain on, for a few rounds, and
 * leaves an endless chain to the fd.
 */
struct chain {
	struct tio t;
	struct storage_chan *ch;
	struct storage *st;
	unsigned left;           /* callbacks that submit another request */
};

static void chain_cb(struct storage_io *io, int res)
{
	struct chain *c = (struct chain *)io;

	tio_cb(io, res);
	if (c->left) {
		c->left--;
		storage_submit(c->ch, c->st, &c->t.io);
	}
}

static void test_drained(void)
{
	struct storage_params p = { .engine = STORAGE_NULL, .size = 1 << 20 };
	uint8_t buf[512];
	struct iovec iov = { buf, sizeof(buf) };
	struct storage *st;
	struct storage_chan *ch;
	struct pollfd pfd;
	struct chain c;
	struct tio t;

	diag("drained chan");
	if (storage_open(&p, &st) || storage_chan_create(8, &ch))
		tap_bail("null storage set-up");
	storage_chan_set_drained(ch, true);
	pfd = (struct pollfd){ .fd = storage_chan_fd(ch), .events = POLLIN };
	tio_init(&t, STORAGE_OP_READ, 0, &iov, 1);
	storage_submit(ch, st, &t.io);
	storage_chan_flush(ch);
	is(poll(&pfd, 1, 0), 0, "drained: a local completion does not signal the fd");
	is(storage_chan_drain(ch), 1, "drained: drain runs its callback");
	ok(t.calls == 1 && t.res == 0 && storage_chan_inflight(ch) == 0, "drained: read done");
	is(storage_chan_drain(ch), 0, "drained: nothing left");

	c = (struct chain){ .ch = ch, .st = st, .left = 2 };
	tio_init(&c.t, STORAGE_OP_READ, 0, &iov, 1);
	c.t.io.cb = chain_cb;
	storage_submit(ch, st, &c.t.io);
	is(storage_chan_drain(ch), 3, "drained: callbacks that submit again are run in the same drain");
	pfd.revents = 0;
	is(poll(&pfd, 1, 0), 0, "drained: and the fd stays quiet");

	c = (struct chain){ .ch = ch, .st = st, .left = 100 };
	tio_init(&c.t, STORAGE_OP_READ, 0, &iov, 1);
	c.t.io.cb = chain_cb;
	storage_submit(ch, st, &c.t.io);
	ok(storage_chan_drain(ch) < 100, "drained: an endless chain is cut after a few rounds");
	pfd.revents = 0;
	is(poll(&pfd, 1, 0), 1, "drained: ... and signals the fd, so the next iteration goes on");
	/* what the loop does: the fd's handler reaps, the iteration ends with a drain */
	for (int i = 0; i < 100 && storage_chan_inflight(ch); i++) {
		storage_chan_reap(ch);
		storage_chan_drain(ch);
	}
	ok(c.left == 0 && storage_chan_inflight(ch) == 0, "drained: later iterations finish the chain");

	storage_chan_set_drained(ch, false);
	tio_init(&t, STORAGE_OP_READ, 0, &iov, 1);
	storage_submit(ch, st, &t.io);
	pfd.revents = 0;
	is(poll(&pfd, 1, 0), 1, "not drained: a local completion signals the fd again");
	storage_chan_reap(ch);
	storage_chan_destroy(ch);
	storage_close(st);
}

static char *make_file(const char *dir, size_t size)
{
	char *path = malloc(256);
	int fd;

	snprintf(path, 256, "%s/vblk-test-storage-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		free(path);
		return NULL;
	}
	if (ftruncate(fd, (off_t)size) < 0)
		tap_bail("ftruncate: %s", strerror(errno));
	close(fd);
	return path;
}

static void test_open_errors(const char *dir)
{
	struct storage_params p = { .engine = STORAGE_FILE };
	struct storage *st = (struct storage *)1;
	char path[256];
	pid_t pid;
	int status;

	diag("open errors");
	snprintf(path, sizeof(path), "%s/vblk-does-not-exist-%d", dir, (int)getpid());
	p.path = path;
	is(storage_open(&p, &st), -ENOENT, "open: missing file -> -ENOENT");
	ok(st == NULL, "open: *out cleared on error");
	p.path = dir;
	is(storage_open(&p, &st), -EISDIR, "open: directory read-write -> -EISDIR");
	p.read_only = true;
	is(storage_open(&p, &st), -EISDIR, "open: directory read-only -> -EISDIR");
	p.read_only = false;
	p.path = "/dev/null";
	is(storage_open(&p, &st), -EINVAL, "open: character device refused");
	p.path = NULL;
	is(storage_open(&p, &st), -EINVAL, "open: no path -> -EINVAL");
	p.engine = (enum storage_engine)42;
	is(storage_open(&p, &st), -EINVAL, "open: unknown engine -> -EINVAL");

	/* Permission: root ignores modes, so try as nobody in a child. */
	char *f = make_file(dir, 4096);
	if (!f || chmod(f, 0) < 0)
		tap_bail("make_file");
	pid = fork();
	if (pid == 0) {
		struct storage_params q = { .engine = STORAGE_FILE, .path = f };
		struct storage *s;

		if (getuid() == 0 && setuid(65534) < 0)
			_exit(100);
		_exit(storage_open(&q, &s) == -EACCES ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 100)
		diag("cannot drop privileges; permission check skipped");
	else
		ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "open: no permission -> -EACCES");
	unlink(f);
	free(f);

	struct storage_chan *ch = (struct storage_chan *)1;
	is(storage_chan_create(0, &ch), -EINVAL, "chan: depth 0 refused");
	ok(ch == NULL, "chan: *out cleared on error");
}

static void test_file(const char *dir)
{
	struct storage_params p = { .engine = STORAGE_FILE };
	struct storage *st, *ro;
	struct storage_chan *ch;
	struct statfs sfs;
	bool tmpfs;
	char *path;
	int vfd;
	static uint8_t w[16384], r[16384], big[1500 * 512], bigr[1500 * 512];

	if (statfs(dir, &sfs) < 0)
		tap_bail("statfs %s", dir);
	tmpfs = sfs.f_type == TMPFS_MAGIC;
	diag("file engine in %s (%s)", dir, tmpfs ? "tmpfs" : "not tmpfs");

	path = make_file(dir, FILE_SIZE);
	if (!path)
		tap_bail("mkstemp in %s", dir);
	p.path = path;
	if (storage_open(&p, &st))
		tap_bail("storage_open %s", path);
	if (storage_chan_create(16, &ch))
		tap_bail("storage_chan_create");
	vfd = open(path, O_RDWR);

	const struct storage_info *info = storage_get_info(st);
	is(info->size, FILE_SIZE, "file: size from fstat");
	is(info->logical_block_size, 512, "file: logical block size 512");
	is(info->physical_block_size, 512, "file: physical block size 512");
	ok(info->can_discard && info->can_write_zeroes && !info->read_only, "file: capabilities");

	/* Write through three iovecs, read back through four others. */
	fill(w, 4096, 1);
	struct iovec wv[3] = { { w, 512 }, { w + 512, 1536 }, { w + 2048, 2048 } };
	struct iovec rv[4] = { { r, 1024 }, { r + 1024, 1024 }, { r + 2048, 1024 },
			       { r + 3072, 1024 } };
	is(run_rw(ch, st, STORAGE_OP_WRITE, 8192, wv, 3, false), 0, "file: writev ok");
	ok(file_matches(vfd, 8192, w, 4096), "file: bytes landed in the file");
	memset(r, 0xee, sizeof(r));
	is(run_rw(ch, st, STORAGE_OP_READ, 8192, rv, 4, false), 0, "file: readv ok");
	ok(memcmp(r, w, 4096) == 0, "file: read back equals written");
	ok(file_zero(vfd, 8192 + 4096, 4096) && file_zero(vfd, 4096, 4096),
	   "file: neighbours untouched");

	fill(w, 4096, 2);
	is(run_rw(ch, st, STORAGE_OP_WRITE, 16384, wv, 3, true), 0, "file: fua write ok");
	ok(file_matches(vfd, 16384, w, 4096), "file: fua write landed");
	is(run_range(ch, st, STORAGE_OP_FLUSH, 0, 0, false, false), 0, "file: flush ok");

	/* Discard (punch hole) reads back as zeroes on tmpfs and ext4. */
	fill(w, 16384, 3);
	struct iovec one = { w, 16384 };
	is(run_rw(ch, st, STORAGE_OP_WRITE, 65536, &one, 1, false), 0, "file: write before discard");
	is(run_range(ch, st, STORAGE_OP_DISCARD, 65536 + 4096, 8192, false, false), 0,
	   "file: discard ok");
	ok(file_zero(vfd, 65536 + 4096, 8192), "file: discarded range reads zero");
	ok(file_matches(vfd, 65536, w, 4096) && file_matches(vfd, 65536 + 12288, w + 12288, 4096),
	   "file: discard left neighbours alone");

	/* Write zeroes without unmap (ZERO_RANGE, or the fallback on tmpfs). */
	is(run_rw(ch, st, STORAGE_OP_WRITE, 65536, &one, 1, false), 0, "file: rewrite");
	is(run_range(ch, st, STORAGE_OP_WRITE_ZEROES, 65536 + 512, 3072, false, false), 0,
	   "file: write-zeroes ok");
	ok(file_zero(vfd, 65536 + 512, 3072), "file: write-zeroes range reads zero");
	ok(file_matches(vfd, 65536, w, 512) && file_matches(vfd, 65536 + 3584, w + 3584, 4096),
	   "file: write-zeroes left neighbours alone");
	is(__atomic_load_n(&st->no_zero_range, __ATOMIC_RELAXED), tmpfs,
	   "file: ZERO_RANGE fallback taken exactly on tmpfs");

	/* With unmap and fua. */
	is(run_rw(ch, st, STORAGE_OP_WRITE, 65536, &one, 1, false), 0, "file: rewrite");
	is(run_range(ch, st, STORAGE_OP_WRITE_ZEROES, 65536 + 4096, 4096, true, true), 0,
	   "file: write-zeroes unmap+fua ok");
	ok(file_zero(vfd, 65536 + 4096, 4096) && file_matches(vfd, 65536, w, 4096) &&
	   file_matches(vfd, 65536 + 8192, w + 8192, 8192), "file: unmap range zero, rest intact");

	/* Write zeroes larger than the zero buffer, in odd-sized pieces. */
	memset(big, 0x5a, sizeof(big));
	struct iovec bv = { big, 300 * 1024 + 512 };
	is(run_rw(ch, st, STORAGE_OP_WRITE, 131072, &bv, 1, false), 0, "file: big write");
	storage_uring_test_max_xfer = 50000;
	is(run_range(ch, st, STORAGE_OP_WRITE_ZEROES, 131072 + 512, 300 * 1024 - 512, false, false),
	   0, "file: big write-zeroes (capped transfers)");
	storage_uring_test_max_xfer = 0;
	ok(file_zero(vfd, 131072 + 512, 300 * 1024 - 512), "file: big write-zeroes reads zero");
	ok(file_matches(vfd, 131072, big, 512) && file_matches(vfd, 131072 + 300 * 1024, big, 512),
	   "file: big write-zeroes edges intact");

	/* Range and mode checks, reported from reap. */
	struct iovec rr = { r, 1024 };
	is(run_rw(ch, st, STORAGE_OP_READ, FILE_SIZE - 512, &rr, 1, false), -EINVAL,
	   "file: read crossing the end -> -EINVAL");
	is(run_rw(ch, st, STORAGE_OP_READ, UINT64_MAX - 100, &rr, 1, false), -EINVAL,
	   "file: offset+len overflow -> -EINVAL");
	is(run_range(ch, st, STORAGE_OP_WRITE_ZEROES, FILE_SIZE, 512, false, false), -EINVAL,
	   "file: write-zeroes at the end -> -EINVAL");
	is(run_rw(ch, st, STORAGE_OP_READ, FILE_SIZE - 1024, &rr, 1, false), 0,
	   "file: read of the last bytes ok");
	{
		struct tio t;

		tio_init(&t, (enum storage_op)77, 0, NULL, 0);
		is(run1(ch, st, &t), -EINVAL, "file: unknown op -> -EINVAL");
	}

	/* Short transfers: cap every SQE at 700 bytes over odd iovecs. */
	fill(w, 8192, 4);
	struct iovec ov[5] = { { w, 100 }, { w + 100, 1000 }, { w + 1100, 3000 }, { w + 4100, 1 },
			       { w + 4101, 4091 } };
	struct iovec iv[3] = { { r, 4097 }, { r + 4097, 3 }, { r + 4100, 4092 } };
	storage_uring_test_max_xfer = 700;
	is(run_rw(ch, st, STORAGE_OP_WRITE, 200704, ov, 5, true), 0, "file: write in 700-byte pieces");
	memset(r, 0, sizeof(r));
	is(run_rw(ch, st, STORAGE_OP_READ, 200704, iv, 3, false), 0, "file: read in 700-byte pieces");
	storage_uring_test_max_xfer = 0;
	ok(memcmp(r, w, 8192) == 0 && file_matches(vfd, 200704, w, 8192),
	   "file: piecewise transfers reassemble exactly");

	/* More iovecs than IOV_MAX: split across SQEs. */
	fill(big, sizeof(big), 5);
	static struct iovec many[1500], many_r[1500];
	for (unsigned i = 0; i < 1500; i++) {
		many[i] = (struct iovec){ big + i * 512, 512 };
		many_r[i] = (struct iovec){ bigr + i * 512, 512 };
	}
	is(run_rw(ch, st, STORAGE_OP_WRITE, 0, many, 1500, false), 0, "file: 1500-iovec write");
	is(run_rw(ch, st, STORAGE_OP_READ, 0, many_r, 1500, false), 0, "file: 1500-iovec read");
	ok(memcmp(big, bigr, sizeof(big)) == 0, "file: 1500-iovec data round trip");

	/* Ring smaller than the batch: the rest waits, nothing is dropped. */
	{
		struct storage_chan *small;
		static struct tio t[40];
		static uint8_t bufs[40][512];
		static struct iovec v[40];
		int bad = 0;

		if (storage_chan_create(2, &small))
			tap_bail("small chan");
		for (unsigned i = 0; i < 40; i++) {
			memset(bufs[i], (int)(i + 1), 512);
			v[i] = (struct iovec){ bufs[i], 512 };
			tio_init(&t[i], STORAGE_OP_WRITE, 262144 + i * 512, &v[i], 1);
			storage_submit(small, st, &t[i].io);
		}
		is(storage_chan_inflight(small), 40, "pending: 40 in flight");
		storage_chan_flush(small);
		ok(wait_all(small, t, 40), "pending: every request completes");
		for (unsigned i = 0; i < 40; i++)
			bad += t[i].calls != 1 || t[i].res != 0 ||
			       !file_matches(vfd, 262144 + i * 512, bufs[i], 512);
		is(bad, 0, "pending: one ok callback each and the data landed");
		is(storage_chan_inflight(small), 0, "pending: nothing left in flight");
		storage_chan_destroy(small);
	}

	/* The file shrank behind our back: short read, then EOF -> -EIO. */
	if (ftruncate(vfd, 4096 + 700) < 0)
		tap_bail("ftruncate");
	struct iovec tv = { r, 4096 };
	is(run_rw(ch, st, STORAGE_OP_READ, 4096, &tv, 1, false), -EIO,
	   "file: read crossing a shrunk EOF -> -EIO");
	is(run_rw(ch, st, STORAGE_OP_READ, 524288, &tv, 1, false), -EIO,
	   "file: read beyond a shrunk EOF -> -EIO");
	if (ftruncate(vfd, FILE_SIZE) < 0)
		tap_bail("ftruncate");

	/* Kernel errors reach the callback: a buffer that is not mapped. */
	struct iovec fv = { (void *)(uintptr_t)4096, 4096 };
	is(run_rw(ch, st, STORAGE_OP_READ, 0, &fv, 1, false), -EFAULT,
	   "file: read into an unmapped buffer -> -EFAULT");
	is(run_rw(ch, st, STORAGE_OP_WRITE, 0, &fv, 1, true), -EFAULT,
	   "file: write from an unmapped buffer -> -EFAULT");

	/* Read-only open. */
	p.read_only = true;
	if (storage_open(&p, &ro))
		tap_bail("storage_open ro");
	ok(storage_get_info(ro)->read_only && !storage_get_info(ro)->can_discard,
	   "ro: read_only, no discard");
	is(run_rw(ch, ro, STORAGE_OP_WRITE, 0, wv, 3, false), -EROFS, "ro: write -> -EROFS");
	is(run_range(ch, ro, STORAGE_OP_DISCARD, 0, 512, false, false), -EROFS,
	   "ro: discard -> -EROFS");
	is(run_range(ch, ro, STORAGE_OP_WRITE_ZEROES, 0, 512, true, false), -EROFS,
	   "ro: write-zeroes -> -EROFS");
	is(run_rw(ch, ro, STORAGE_OP_READ, 8192, rv, 4, false), 0, "ro: read ok");
	is(run_range(ch, ro, STORAGE_OP_FLUSH, 0, 0, false, false), 0, "ro: flush ok");
	storage_close(ro);
	p.read_only = false;

	/* O_DIRECT (ext4 falls back to buffered I/O when misaligned, so only
	 * the aligned case is portable). */
	p.direct = true;
	if (storage_open(&p, &ro) == 0) {
		uint8_t *al = aligned_alloc(4096, 8192);
		struct iovec av = { al, 4096 };

		is(run_rw(ch, ro, STORAGE_OP_READ, 8192, &av, 1, false), 0, "direct: aligned read ok");
		ok(file_matches(vfd, 8192, al, 4096),
		   "direct: aligned read data");
		free(al);
		storage_close(ro);
	} else {
		diag("O_DIRECT not supported in %s", dir);
	}

	is(storage_chan_inflight(ch), 0, "file: chan idle at the end");
	storage_chan_destroy(ch);
	storage_close(st);
	close(vfd);
	unlink(path);
	free(path);
}

/*
 * The seccomp filter does not see io_uring operations: a chan's ring must
 * refuse every operation the engine does not use (-EACCES from the
 * kernel), however it got there, and any io_uring_register() call.
 */
static int raw_submit(struct storage_chan *ch, void (*prep)(struct io_uring_sqe *sqe))
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ch->ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (!sqe)
		return -EBUSY;
	prep(sqe);
	ret = io_uring_submit_and_wait(&ch->ring, 1);
	if (ret < 0)
		return ret;
	ret = io_uring_wait_cqe(&ch->ring, &cqe);
	if (ret < 0)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(&ch->ring, cqe);
	return ret;
}

static void prep_openat(struct io_uring_sqe *sqe)
{
	io_uring_prep_openat(sqe, AT_FDCWD, "/etc/hostname", O_RDONLY, 0);
}

static void prep_connect(struct io_uring_sqe *sqe)
{
	static const struct sockaddr_un sa = { .sun_family = AF_UNIX };

	io_uring_prep_connect(sqe, 0, (const struct sockaddr *)&sa, sizeof(sa));
}

static void prep_nop(struct io_uring_sqe *sqe)
{
	io_uring_prep_nop(sqe);
}

static void prep_read_async(struct io_uring_sqe *sqe)
{
	static char buf[8];

	io_uring_prep_read(sqe, 0, buf, sizeof(buf), 0);
	io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
}

static void test_restricted(void)
{
	struct storage_chan *ch;
	int efd;

	if (storage_chan_create(8, &ch))
		tap_bail("chan set-up");
	is(raw_submit(ch, prep_openat), -EACCES, "ring: IORING_OP_OPENAT refused (-EACCES)");
	is(raw_submit(ch, prep_connect), -EACCES, "ring: IORING_OP_CONNECT refused (-EACCES)");
	is(raw_submit(ch, prep_nop), -EACCES, "ring: IORING_OP_NOP refused (-EACCES)");
	is(raw_submit(ch, prep_read_async), -EACCES, "ring: a READ with an SQE flag refused");
	efd = eventfd(0, EFD_CLOEXEC);
	is(io_uring_register_eventfd(&ch->ring, efd), -EACCES,
	   "ring: io_uring_register() refused once enabled");
	close(efd);
	storage_chan_destroy(ch);
}

int main(void)
{
	if (test_qemu_user())
		tap_skip_all("under qemu-user (%s): no io_uring_setup() there", test_qemu_user());
	test_restricted();
	test_null();
	test_drained();
	test_open_errors("/tmp");
	test_file("/tmp");
	if (access("/dev/shm", W_OK) == 0)
		test_file("/dev/shm");
	else
		diag("/dev/shm not writable: tmpfs run skipped");
	return tap_done();
}
