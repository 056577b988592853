/* SPDX-License-Identifier: MIT */
/*
 * test_libvblk.c - libvblk through its installed header only, against a
 * real vblkd (argv[1]) and, if given and installed, qemu-storage-daemon
 * (argv[2]): handshake errors, read/write/verify, vectored I/O, flush,
 * discard, write-zeroes, two queues, poll and event modes, split and
 * packed rings, completion fds, caller-mapped memory, and a server killed
 * with requests in flight (every request completes, nothing hangs).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "fixture/fixture.h"
#include "tap.h"
#include "vblk/vblk.h"

#define IMG_SIZE (8u << 20)
#define BS 4096u

static char dir[64], sock[128], img[128];
static const char *vblkd_path, *qsd_path;

/* ---- server processes --------------------------------------------------------- */

static pid_t start_vblkd(const char *extra1, const char *extra2)
{
	char sp[160], fp[160];
	char *argv[8];
	int n = 0;
	pid_t pid;

	unlink(sock);
	snprintf(sp, sizeof(sp), "--socket-path=%s", sock);
	argv[n++] = (char *)vblkd_path;
	argv[n++] = sp;
	if (extra1 && !strncmp(extra1, "--null", 6)) {
		argv[n++] = (char *)extra1;
	} else {
		snprintf(fp, sizeof(fp), "--file=%s", img);
		argv[n++] = fp;
		if (extra1)
			argv[n++] = (char *)extra1;
	}
	if (extra2)
		argv[n++] = (char *)extra2;
	argv[n++] = (char *)"--num-queues=2";
	argv[n] = NULL;
	pid = fixture_spawn((const char *const *)argv);
	if (pid < 0 || fixture_wait_socket(pid, sock, 5000))
		tap_bail("vblkd did not come up");
	return pid;
}

static pid_t start_qsd(void)
{
	char bd[200], ex[300];
	char *argv[] = { (char *)qsd_path, (char *)"--blockdev", bd, (char *)"--export", ex, NULL };
	pid_t pid;

	unlink(sock);
	snprintf(bd, sizeof(bd), "driver=file,node-name=f,filename=%s", img);
	snprintf(ex, sizeof(ex),
		 "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=%s,writable=on,"
		 "num-queues=2", sock);
	pid = fixture_spawn((const char *const *)argv);
	if (pid < 0 || fixture_wait_socket(pid, sock, 5000))
		return -1;
	return pid;
}

static void stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* ---- helpers --------------------------------------------------------------------- */

/* open_dev acts as a frontend behind an IOMMU (the "access-platform" property). */
static bool open_access_platform;

static struct vblk *open_dev(bool packed, bool poll_mode, int nq, int *err)
{
	struct vblk *v;
	int ret;

	ret = vblk_create(&v);
	ret = ret ?: vblk_set_str(v, "path", sock);
	ret = ret ?: vblk_set_bool(v, "packed", packed);
	if (open_access_platform)
		ret = ret ?: vblk_set_bool(v, "access-platform", true);
	ret = ret ?: vblk_connect(v);
	ret = ret ?: vblk_set_int(v, "num-queues", nq);
	ret = ret ?: vblk_set_int(v, "queue-size", 64);
	ret = ret ?: vblk_set_bool(v, "poll", poll_mode);
	ret = ret ?: vblk_start(v);
	if (err)
		*err = ret;
	if (ret) {
		diag("open: %d %s", ret, vblk_get_error_msg());
		vblk_destroy(&v);
	}
	return v;
}

/* Reap exactly @n completions (5 s timeout per wait); returns failures. */
static int wait_n(struct vblkq *q, int n, int *first_err)
{
	struct vblk_completion c[64];
	int got = 0, bad = 0;

	*first_err = 0;
	while (got < n) {
		struct timespec t = { 5, 0 };
		int k = vblkq_do_io(q, c, 1, 64, &t);

		if (k <= 0)
			return -1000 + k;
		for (int i = 0; i < k; i++)
			if (c[i].ret) {
				if (!*first_err)
					*first_err = c[i].ret;
				bad++;
			}
		got += k;
	}
	return bad;
}

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

/* The data-path checks run against any server. */
static void io_suite(const char *tag, struct vblk *v, bool two_queues, bool discard_ok)
{
	struct vblk_mem_region r, mine;
	struct vblkq *q0 = vblk_get_queue(v, 0), *q1 = vblk_get_queue(v, two_queues ? 1 : 0);
	uint64_t cap = 0;
	uint8_t *wbuf, *rbuf, local[BS];
	struct iovec iov[3];
	int err, i, memfd;

	ok(q0 && q1, "%s: queues", tag);
	is(vblk_get_u64(v, "capacity", &cap), 0, "%s: capacity readable", tag);
	is(cap, IMG_SIZE, "%s: capacity is the image size", tag);
	if (!q0 || !q1)
		return;
	is(vblk_alloc_mem_region(v, 1 << 20, &r), 0, "%s: alloc mem region", tag);
	wbuf = r.addr;
	rbuf = wbuf + (512 << 10);

	/* 16 writes of 4 KiB in one batch on q0, read back on q1. */
	fill(wbuf, 16 * BS, 1);
	for (i = 0; i < 16; i++)
		if (vblkq_write(q0, (uint64_t)i * BS * 3, wbuf + i * BS, BS, &wbuf[i], 0))
			break;
	is(i, 16, "%s: 16 writes queued", tag);
	is(wait_n(q0, 16, &err), 0, "%s: writes complete OK", tag);
	memset(rbuf, 0, 16 * BS);
	for (i = 0; i < 16; i++)
		vblkq_read(q1, (uint64_t)i * BS * 3, rbuf + i * BS, BS, &rbuf[i], 0);
	is(wait_n(q1, 16, &err), 0, "%s: reads complete OK (other queue)", tag);
	ok(!memcmp(wbuf, rbuf, 16 * BS), "%s: data read back matches", tag);

	/* Vectored: 3 pieces (512 + 3 KiB + 512) written, read back as 2. */
	fill(wbuf, BS, 7);
	iov[0] = (struct iovec){ wbuf, 512 };
	iov[1] = (struct iovec){ wbuf + 512, 3072 };
	iov[2] = (struct iovec){ wbuf + 3584, 512 };
	is(vblkq_writev(q0, 1 << 20, iov, 3, NULL, 0), 0, "%s: writev queued", tag);
	is(wait_n(q0, 1, &err), 0, "%s: writev OK", tag);
	memset(rbuf, 0, BS);
	iov[0] = (struct iovec){ rbuf, 1024 };
	iov[1] = (struct iovec){ rbuf + 1024, 3072 };
	is(vblkq_readv(q0, 1 << 20, iov, 2, NULL, 0), 0, "%s: readv queued", tag);
	is(wait_n(q0, 1, &err), 0, "%s: readv OK", tag);
	ok(!memcmp(wbuf, rbuf, BS), "%s: vectored data matches", tag);

	is(vblkq_flush(q0, NULL, 0), 0, "%s: flush queued", tag);
	is(wait_n(q0, 1, &err), 0, "%s: flush OK", tag);

	/* Write-zeroes over written data, then read zeroes. */
	fill(wbuf, 4 * BS, 3);
	vblkq_write(q0, 2 << 20, wbuf, 4 * BS, NULL, 0);
	is(wait_n(q0, 1, &err), 0, "%s: write before write-zeroes", tag);
	is(vblkq_write_zeroes(q0, 2 << 20, 4 * BS, NULL, 0), 0, "%s: write-zeroes queued", tag);
	is(wait_n(q0, 1, &err), 0, "%s: write-zeroes OK", tag);
	memset(rbuf, 0xaa, 4 * BS);
	vblkq_read(q0, 2 << 20, rbuf, 4 * BS, NULL, 0);
	wait_n(q0, 1, &err);
	memset(wbuf, 0, 4 * BS);
	ok(!memcmp(wbuf, rbuf, 4 * BS), "%s: zeroes read back", tag);
	if (discard_ok) {
		is(vblkq_discard(q0, 2 << 20, 4 * BS, NULL, 0), 0, "%s: discard queued", tag);
		is(wait_n(q0, 1, &err), 0, "%s: discard OK", tag);
	}

	/* Beyond the end: the device's error comes back as -EIO. */
	vblkq_read(q0, cap, rbuf, BS, NULL, 0);
	is(wait_n(q0, 1, &err), 1, "%s: read past the end fails", tag);
	is(err, -EIO, "%s: ... with -EIO", tag);

	/* Memory the server cannot see is refused at submission. */
	is(vblkq_read(q0, 0, local, BS, NULL, 0), -EFAULT, "%s: unregistered buffer -EFAULT",
	   tag);
	is(vblkq_read(q0, 1, rbuf, BS, NULL, 0), -EINVAL, "%s: unaligned offset -EINVAL", tag);

	/* Completion fd: readable once a completion is there. */
	vblkq_set_completion_fd_enabled(q1, true);
	{
		struct pollfd pfd = { .fd = vblkq_get_completion_fd(q1), .events = POLLIN };
		struct vblk_completion c;
		int n = 0, tries;

		vblkq_read(q1, 0, rbuf, BS, (void *)0x1234, 0);
		vblkq_do_io(q1, &c, 0, 0, NULL);      /* submit only */
		for (tries = 0; tries < 50 && n == 0; tries++) {
			if (poll(&pfd, 1, 5000) != 1)
				break;
			n = vblkq_do_io(q1, &c, 0, 1, NULL);
		}
		is(n, 1, "%s: completion fd woke us", tag);
		ok(n == 1 && c.user_data == (void *)0x1234 && c.ret == 0,
		   "%s: completion fd completion is right", tag);
	}
	vblkq_set_completion_fd_enabled(q1, false);

	/* Caller memory: a memfd of our own mapped with vblk_map_mem_region. */
	memfd = memfd_create("test", MFD_CLOEXEC);
	ftruncate(memfd, 2 * BS);
	mine = (struct vblk_mem_region){ .len = 2 * BS, .fd = memfd };
	mine.addr = mmap(NULL, 2 * BS, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	is(vblk_map_mem_region(v, &mine), 0, "%s: map caller memory (started)", tag);
	memset(mine.addr, 0, BS);
	vblkq_read(q0, 0, mine.addr, BS, NULL, 0);
	is(wait_n(q0, 1, &err), 0, "%s: read into caller memory", tag);
	fill(wbuf, BS, 1);
	ok(!memcmp(mine.addr, wbuf, BS), "%s: caller memory has the data", tag);
	vblk_unmap_mem_region(v, &mine);
	is(vblkq_read(q0, 0, mine.addr, BS, NULL, 0), -EFAULT, "%s: unmapped memory refused", tag);
	munmap(mine.addr, 2 * BS);
	close(memfd);
	vblk_free_mem_region(v, &r);
}

/* Kill the server with requests in flight: all complete, with errors. */
static void kill_suite(bool packed, bool poll_mode)
{
	const char *tag = packed ? (poll_mode ? "kill packed poll" : "kill packed event")
				 : (poll_mode ? "kill split poll" : "kill split event");
	struct vblk_completion c[64];
	struct vblk_mem_region r;
	struct vblk *v;
	struct vblkq *q;
	pid_t pid = start_vblkd("--null=1G", NULL);
	int ret, i, done = 0, errs = 0, submitted = 0, loops = 0;
	time_t t0;

	v = open_dev(packed, poll_mode, 1, &ret);
	is(ret, 0, "%s: open", tag);
	if (ret) {
		stop(pid);
		return;
	}
	q = vblk_get_queue(v, 0);
	vblk_alloc_mem_region(v, 64 * BS, &r);
	for (i = 0; i < 32; i++)
		submitted += vblkq_read(q, (uint64_t)i * BS, (uint8_t *)r.addr + i * BS, BS, NULL,
					0) == 0;
	t0 = time(NULL);
	/* Keep it busy for a bit, then kill it under load. */
	while (time(NULL) - t0 < 10) {
		struct timespec t = { 2, 0 };
		int n = vblkq_do_io(q, c, 1, 64, &t);

		if (n < 0)
			break;
		for (i = 0; i < n; i++) {
			done++;
			if (c[i].ret) {
				errs++;
				if (errs == 1)
					is(c[i].ret, -ENOTCONN, "%s: first error is -ENOTCONN", tag);
			} else if (vblkq_read(q, 0, r.addr, BS, NULL, 0) == 0) {
				submitted++;
			}
		}
		if (++loops == 200)
			kill(pid, SIGKILL);
		if (done == submitted)
			break;
	}
	ok(loops >= 200, "%s: I/O ran before the kill (%d loops)", tag, loops);
	is(done, submitted, "%s: every request completed (%d)", tag, submitted);
	ok(errs > 0, "%s: in-flight requests failed (%d)", tag, errs);
	is(vblkq_read(q, 0, r.addr, BS, NULL, 0), -ENOTCONN, "%s: new requests -ENOTCONN", tag);
	vblk_destroy(&v);
	waitpid(pid, NULL, 0);
}

/* The "dirty-log" property's log: our memfd named libvblk-dirty-log. */
static int find_log_fd(void)
{
	char path[64], target[128];

	for (int fd = 3; fd < 1024; fd++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strstr(target, "memfd:libvblk-dirty-log"))
			return fd;
	}
	return -1;
}

static bool log_bit(int fd, uint64_t page)
{
	uint8_t b = 0;

	if (pread(fd, &b, 1, (off_t)(page / 8)) != 1)
		return false;
	return b & (1u << (page % 8));
}

static void log_clear(int fd, uint64_t first_page, uint64_t npages)
{
	uint8_t zero[256] = { 0 };

	if (pwrite(fd, zero, (size_t)(npages / 8 + 2), (off_t)(first_page / 8)) < 0)
		diag("pwrite: %s", strerror(errno));
}

/*
 * Live migration as the server sees it: a frontend with a dirty log and
 * LOG_ALL. A read marks exactly the pages of its buffer (here unaligned,
 * crossing pages), a write marks none of its (read-only) data pages.
 */
static void dirty_log_suite(bool packed)
{
	const size_t len = 4 * 4096;
	struct vblk_mem_region r;
	struct vblk *v;
	struct vblkq *q;
	uint64_t pg0;
	int ret, err, lfd;
	bool good;

	ret = vblk_create(&v);
	ret = ret ?: vblk_set_str(v, "path", sock);
	ret = ret ?: vblk_set_bool(v, "packed", packed);
	ret = ret ?: vblk_set_bool(v, "dirty-log", true);
	ret = ret ?: vblk_connect(v);
	ret = ret ?: vblk_start(v);
	is(ret, 0, "%s: start as a migrating frontend (dirty-log)", packed ? "packed" : "split");
	if (ret) {
		diag("%s", vblk_get_error_msg());
		vblk_destroy(&v);
		return;
	}
	lfd = find_log_fd();
	ok(lfd >= 0, "the log memfd exists");
	ret = vblk_alloc_mem_region(v, 8 * 4096, &r);
	is(ret, 0, "buffer region");
	if (ret || lfd < 0) {
		vblk_destroy(&v);
		return;
	}
	q = vblk_get_queue(v, 0);
	pg0 = r.iova / 4096;
	fill(r.addr, len, 31);
	log_clear(lfd, pg0, 8);
	vblkq_write(q, 0, r.addr, len, NULL, 0);
	is(wait_n(q, 1, &err), 0, "write");
	good = true;
	for (unsigned i = 0; i < 8; i++)
		good &= !log_bit(lfd, pg0 + i);
	ok(good, "write data (only read by the device) marks nothing");

	/* A read into pages 1..5 of the region, starting 512 bytes into page 1. */
	memset(r.addr, 0, 8 * 4096);
	log_clear(lfd, pg0, 8);
	vblkq_read(q, 0, (uint8_t *)r.addr + 4096 + 512, len, NULL, 0);
	is(wait_n(q, 1, &err), 0, "read across pages");
	ok(!log_bit(lfd, pg0) && log_bit(lfd, pg0 + 1) && log_bit(lfd, pg0 + 2) &&
	   log_bit(lfd, pg0 + 3) && log_bit(lfd, pg0 + 4) && log_bit(lfd, pg0 + 5) &&
	   !log_bit(lfd, pg0 + 6) && !log_bit(lfd, pg0 + 7),
	   "read data marks exactly its pages (1..5 of 0..7)");
	{
		uint8_t *want = malloc(len);

		fill(want, len, 31);
		ok(want && !memcmp(want, (uint8_t *)r.addr + 4096 + 512, len), "the data written came back");
		free(want);
	}
	vblk_destroy(&v);
}

int main(int argc, char **argv)
{
	struct vblk *v;
	pid_t pid;
	int ret;

	if (argc < 2)
		tap_bail("usage: test_libvblk VBLKD [QEMU-STORAGE-DAEMON]");
	vblkd_path = argv[1];
	qsd_path = argc > 2 && argv[2][0] ? argv[2] : NULL;
	signal(SIGPIPE, SIG_IGN);
	alarm(110);     /* a hang is a failure, not a stuck CI job */
	if (fixture_tmpdir("libvblk-test", dir, sizeof(dir)))
		tap_bail("mkdtemp");
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	snprintf(img, sizeof(img), "%s/img", dir);
	if (fixture_image(img, IMG_SIZE))
		tap_bail("image");

	/* No server: the socket file is missing, or stale (nobody listens). */
	vblk_create(&v);
	vblk_set_str(v, "path", sock);
	is(vblk_connect(v), -ENOENT, "absent server: -ENOENT");
	ok(strstr(vblk_get_error_msg(), sock) != NULL, "error message names the socket: %s",
	   vblk_get_error_msg());
	vblk_destroy(&v);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_STREAM, 0);

		strcpy(sa.sun_path, sock);
		bind(s, (struct sockaddr *)&sa, sizeof(sa));
		close(s);
	}
	vblk_create(&v);
	vblk_set_str(v, "path", sock);
	is(vblk_connect(v), -ECONNREFUSED, "stale socket: -ECONNREFUSED");
	is(vblk_get_queue(v, 0) == NULL, 1, "no queue before start");
	vblk_destroy(&v);
	ok(v == NULL, "destroy clears the pointer");

	/* Phase rules. */
	vblk_create(&v);
	is(vblk_connect(v), -EINVAL, "connect without path: -EINVAL");
	{
		uint64_t x;

		is(vblk_get_u64(v, "capacity", &x), -ENODEV, "capacity before connect: -ENODEV");
		is(vblk_get_u64(v, "no-such", &x), -ENOENT, "unknown property: -ENOENT");
		is(vblk_set_u64(v, "capacity", 1), -EACCES, "read-only property: -EACCES");
		is(vblk_set_int(v, "queue-size", 100), -EINVAL, "queue-size not a power of two");
	}
	vblk_destroy(&v);

	/* vblkd: the matrix of ring layouts and completion modes. */
	for (int packed = 0; packed < 2; packed++)
		for (int pm = 0; pm < 2; pm++) {
			char tag[64];

			snprintf(tag, sizeof(tag), "vblkd %s %s", packed ? "packed" : "split",
				 pm ? "poll" : "event");
			pid = start_vblkd(NULL, NULL);
			v = open_dev(packed, pm, 2, &ret);
			is(ret, 0, "%s: connect + start", tag);
			if (!ret) {
				io_suite(tag, v, true, true);
				vblk_destroy(&v);
			}
			stop(pid);
		}

	/* ACCESS_PLATFORM: IOVAs through vblkd's IOTLB, which libvblk fills. */
	open_access_platform = true;
	pid = start_vblkd(NULL, NULL);
	v = open_dev(false, false, 2, &ret);
	is(ret, -ENOTSUP, "access-platform without vblkd --iommu: refused");
	vblk_destroy(&v);
	stop(pid);
	for (int packed = 0; packed < 2; packed++) {
		char tag[64];

		snprintf(tag, sizeof(tag), "vblkd --iommu %s", packed ? "packed" : "split");
		pid = start_vblkd("--iommu", NULL);
		v = open_dev(packed, packed, 2, &ret);
		is(ret, 0, "%s: connect + start with access-platform", tag);
		if (!ret) {
			bool ap = false;

			vblk_get_bool(v, "access-platform", &ap);
			ok(ap, "%s: property reads back", tag);
			io_suite(tag, v, true, true);
			vblk_destroy(&v);
		}
		stop(pid);
	}
	open_access_platform = false;

	/* A server without the packed ring refuses a packed client. */
	pid = start_vblkd("--no-packed", NULL);
	vblk_create(&v);
	vblk_set_str(v, "path", sock);
	vblk_set_bool(v, "packed", true);
	is(vblk_connect(v), -ENOTSUP, "packed against --no-packed: -ENOTSUP");
	diag("%s", vblk_get_error_msg());
	vblk_destroy(&v);
	stop(pid);

	/* Read-only export: writes refused locally. */
	pid = start_vblkd("--read-only", NULL);
	v = open_dev(false, false, 1, &ret);
	if (!ret) {
		struct vblk_mem_region r;
		bool ro = false;

		vblk_get_bool(v, "read-only", &ro);
		ok(ro, "read-only export reported");
		vblk_alloc_mem_region(v, BS, &r);
		is(vblkq_write(vblk_get_queue(v, 0), 0, r.addr, BS, NULL, 0), -EROFS,
		   "write to read-only: -EROFS");
		vblk_destroy(&v);
	}
	stop(pid);

	/* Memory allocated before start goes out in SET_MEM_TABLE. */
	pid = start_vblkd(NULL, NULL);
	{
		struct vblk_mem_region r;
		int err;

		vblk_create(&v);
		vblk_set_str(v, "path", sock);
		ret = vblk_alloc_mem_region(v, 2 * BS, &r);
		is(ret, 0, "alloc before connect");
		ret = ret ?: vblk_connect(v);
		ret = ret ?: vblk_start(v);
		is(ret, 0, "start with a region allocated earlier");
		if (!ret) {
			struct vblkq *q = vblk_get_queue(v, 0);

			fill(r.addr, BS, 9);
			vblkq_write(q, 0, r.addr, BS, NULL, 0);
			is(wait_n(q, 1, &err), 0, "write from the early region");
			vblkq_read(q, 0, (uint8_t *)r.addr + BS, BS, NULL, 0);
			is(wait_n(q, 1, &err), 0, "read into the early region");
			ok(!memcmp(r.addr, (uint8_t *)r.addr + BS, BS), "early region data matches");
		}
		vblk_destroy(&v);
	}
	stop(pid);

	/* Dirty logging for live migration. */
	pid = start_vblkd(NULL, NULL);
	dirty_log_suite(false);
	dirty_log_suite(true);
	stop(pid);

	/* Too many queues for the server. */
	pid = start_vblkd(NULL, NULL);
	vblk_create(&v);
	vblk_set_str(v, "path", sock);
	vblk_connect(v);
	vblk_set_int(v, "num-queues", 3);
	is(vblk_start(v), -EINVAL, "num-queues above the server's: -EINVAL");
	vblk_destroy(&v);
	stop(pid);

	kill_suite(false, false);
	kill_suite(false, true);
	kill_suite(true, false);
	kill_suite(true, true);

	/* The same data path against qemu-storage-daemon (split only). */
	if (!qsd_path || access(qsd_path, X_OK)) {
		ok(1, "# SKIP qemu-storage-daemon not installed");
	} else {
		pid = start_qsd();
		ok(pid > 0, "qemu-storage-daemon started");
		if (pid > 0) {
			for (int pm = 0; pm < 2; pm++) {
				v = open_dev(false, pm, 2, &ret);
				is(ret, 0, "qsd %s: connect + start", pm ? "poll" : "event");
				if (!ret) {
					io_suite(pm ? "qsd poll" : "qsd event", v, true, true);
					vblk_destroy(&v);
				}
				usleep(100000);
			}
			vblk_create(&v);
			vblk_set_str(v, "path", sock);
			vblk_set_bool(v, "packed", true);
			is(vblk_connect(v), -ENOTSUP, "qsd: packed ring -ENOTSUP");
			vblk_destroy(&v);
			stop(pid);
		}
	}

	unlink(sock);
	unlink(img);
	rmdir(dir);
	return tap_done();
}
