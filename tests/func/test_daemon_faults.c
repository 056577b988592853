/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_faults.c - storage that fails under a running vblkd: the
 * affected requests complete with VIRTIO_BLK_S_IOERR, the daemon logs
 * (rate-limited, not once per request), keeps serving every other range
 * and export, and recovers by itself once the fault is gone.
 *   trunc:  the image file is truncated under the daemon, then grown back
 *   enospc: the image is sparse on a 2 MiB tmpfs; writes that need space
 *           fail, deleting a filler file or discarding makes room again
 *   eio:    the image is on a FUSE filesystem (fault_fuse.c) whose reads,
 *           writes and fsyncs fail with EIO while a switch is on: a disk
 *           error that comes and goes, from the kernel's own I/O path
 *   dm:     a device-mapper device switched linear -> error -> linear
 * One vblkd serves every export. enospc, eio and dm need root (mount,
 * dmsetup) and eio /dev/fuse, dm a kernel with device-mapper; each is
 * skipped, with the reason, where it cannot run.
 *
 * Usage: test_daemon_faults PATH-TO-VBLKD. Prints TAP.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/compiler.h"
#include "fault_fuse.h"
#include "tap.h"
#include "vblk_client.h"

#define TMO       5000
#define SECT      512u
#define MIB       (1ull << 20)
#define TRUNC_IMG (16 * MIB)
#define NOSPC_IMG (64 * MIB)   /* sparse, on a tmpfs of TMPFS_SIZE */
#define TMPFS_SIZE (2 * MIB)
#define DM_IMG    (8 * MIB)
#define EIO_IMG   (8 * MIB)
#define LOG_BURST 5            /* log_rl: messages per call site per 5 s */

static const char *vblkd;
static struct vblkd_proc proc;
static char log_path[256], mnt[256];
static bool mounted;
static char loopdev[64], dm_name[64], rm_loopdev[64];
static struct fault_fuse *fuse;
static uint8_t wbuf[MIB], rbuf[MIB];

/* ---- helpers ----------------------------------------------------------------- */

/* Requests on queue 0 at byte offsets, TMO each (vblk_client.h). */
#define io(c, ...)          vblk_client_io_at(c, __VA_ARGS__, TMO)
#define wr(c, ...)          vblk_client_write_fill(c, __VA_ARGS__, TMO)
#define rd_check(c, ...)    vblk_client_read_check(c, __VA_ARGS__, TMO)
#define discard(c, off, len) \
	vblk_client_dwz_at(c, VIRTIO_BLK_T_DISCARD, off, len, TMO)
#define sh(...)             fixture_sh(__VA_ARGS__)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)size)) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	close(fd);
	return 0;
}

static struct vblk_client *connect_to(const char *sock, const char *what)
{
	struct vblk_client_opts o = { .num_queues = 1 };
	struct vblk_client *c = NULL;
	int ret = vblk_client_connect(sock, &o, &c);

	if (!ok(ret == 0, "%s: connect", what))
		diag("connect %s: %s", sock, strerror(-ret));
	return ret ? NULL : c;
}

/*
 * Many failing requests in a row: all IOERR, and the log grows by at most
 * a burst per 5 s window (plus one "suppressed" line per window).
 */
static void storm(struct vblk_client *c, const char *what, uint32_t type, uint64_t off,
		  size_t len, const char *err)
{
	unsigned before = vblkd_log_count(log_path, err), bad = 0, after, windows;
	double t0 = now_s();

	for (int i = 0; i < 200; i++) {
		int st = type == VIRTIO_BLK_T_IN ? io(c, type, off, NULL, 0, rbuf, len) :
			 io(c, type, off, wbuf, len, NULL, 0);

		bad += st != VIRTIO_BLK_S_IOERR;
	}
	after = vblkd_log_count(log_path, err);
	windows = (unsigned)((now_s() - t0) / 5.0) + 2;
	is(bad, 0, "%s: 200 failing requests in a row all complete with IOERR", what);
	ok(after - before <= LOG_BURST * windows,
	   "%s: logged %u times for 200 errors (rate-limited, <= %u)", what, after - before,
	   LOG_BURST * windows);
}

/* ---- trunc: the file shrinks under the daemon ------------------------------- */

static void test_trunc(const char *sock, const char *img)
{
	struct vblk_client *c = connect_to(sock, "trunc");
	int fd;

	if (!c)
		return;
	is(wr(c, 1 * MIB, 64 << 10, 1), VIRTIO_BLK_S_OK, "trunc: write at 1 MiB");
	is(wr(c, 12 * MIB, 64 << 10, 2), VIRTIO_BLK_S_OK, "trunc: write at 12 MiB");
	ok(rd_check(c, 12 * MIB, 64 << 10, 2), "trunc: 12 MiB reads back");

	fd = open(img, O_RDWR | O_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)(8 * MIB)))
		tap_bail("truncate %s: %s", img, strerror(errno));
	is(io(c, VIRTIO_BLK_T_IN, 12 * MIB, NULL, 0, rbuf, 64 << 10), VIRTIO_BLK_S_IOERR,
	   "trunc: file cut to 8 MiB: a read at 12 MiB is IOERR");
	is(io(c, VIRTIO_BLK_T_IN, 8 * MIB - 4096, NULL, 0, rbuf, 8192), VIRTIO_BLK_S_IOERR,
	   "trunc: a read straddling the new end is IOERR");
	ok(rd_check(c, 1 * MIB, 64 << 10, 1), "trunc: the range that is still there reads fine");
	is(wr(c, 2 * MIB, 64 << 10, 3), VIRTIO_BLK_S_OK, "trunc: and takes writes");
	ok(rd_check(c, 2 * MIB, 64 << 10, 3), "trunc: which read back");
	is(io(c, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0), VIRTIO_BLK_S_OK, "trunc: flush works");
	storm(c, "trunc", VIRTIO_BLK_T_IN, 12 * MIB, 4096, "Input/output error");
	ok(vblkd_proc_alive(&proc), "trunc: vblkd survives");

	if (ftruncate(fd, (off_t)TRUNC_IMG))
		tap_bail("grow %s: %s", img, strerror(errno));
	close(fd);
	ok(rd_check(c, 12 * MIB, 64 << 10, -1), "trunc: grown back: 12 MiB reads (zeroes)");
	is(wr(c, 12 * MIB, 64 << 10, 4), VIRTIO_BLK_S_OK, "trunc: grown back: writes there work");
	ok(rd_check(c, 12 * MIB, 64 << 10, 4), "trunc: grown back: and read back");
	vblk_client_destroy(c);
}

/* ---- enospc: a sparse image on a tiny tmpfs --------------------------------- */

static void test_enospc(const char *sock, const char *filler)
{
	struct vblk_client *c = connect_to(sock, "enospc");
	uint64_t off, full_at = 0;
	int st = VIRTIO_BLK_S_OK;

	if (!c)
		return;
	/* 256 KiB at a time until the tmpfs is full. */
	for (off = 0; off < 8 * MIB; off += 256 << 10) {
		st = wr(c, off, 256 << 10, (unsigned)(off >> 18));
		if (st != VIRTIO_BLK_S_OK)
			break;
	}
	full_at = off;
	is(st, VIRTIO_BLK_S_IOERR, "enospc: writing the sparse image until the fs is full: IOERR "
	   "after %llu KiB", (unsigned long long)(full_at >> 10));
	ok(full_at > 0 && full_at <= TMPFS_SIZE, "enospc: the first %llu KiB went in",
	   (unsigned long long)(full_at >> 10));
	ok(vblkd_log_count(log_path, "No space left on device") > 0, "enospc: the log names ENOSPC");
	ok(full_at && rd_check(c, 0, 256 << 10, 0), "enospc: data written before reads back");
	ok(rd_check(c, 32 * MIB, 64 << 10, -1), "enospc: reading a hole still works");
	ok(full_at && wr(c, 0, 256 << 10, 9) == VIRTIO_BLK_S_OK,
	   "enospc: overwriting allocated blocks still works");
	storm(c, "enospc", VIRTIO_BLK_T_OUT, 40 * MIB, 64 << 10, "No space left on device");
	ok(vblkd_proc_alive(&proc), "enospc: vblkd survives");

	/* Room again: the filler file goes away. */
	ok(unlink(filler) == 0, "enospc: filler file deleted");
	is(wr(c, 40 * MIB, 256 << 10, 11), VIRTIO_BLK_S_OK, "enospc: the same write now succeeds");
	ok(rd_check(c, 40 * MIB, 256 << 10, 11), "enospc: and reads back");
	/* Fill up again, then the guest itself makes room by discarding. */
	for (off = 41 * MIB; off < 48 * MIB; off += 256 << 10)
		if (wr(c, off, 256 << 10, 12) != VIRTIO_BLK_S_OK)
			break;
	ok(off < 48 * MIB, "enospc: full again after %llu KiB more",
	   (unsigned long long)((off - 41 * MIB) >> 10));
	is(discard(c, 41 * MIB, 512 << 10), VIRTIO_BLK_S_OK,
	   "enospc: discard (punches a hole, frees tmpfs pages)");
	is(wr(c, 50 * MIB, 256 << 10, 13), VIRTIO_BLK_S_OK, "enospc: writes succeed again");
	ok(rd_check(c, 50 * MIB, 256 << 10, 13), "enospc: and read back");
	ok(rd_check(c, 0, 256 << 10, 9), "enospc: earlier data intact");
	vblk_client_destroy(c);
}

/* ---- eio: a FUSE file that fails on demand ------------------------------------ */

static void test_eio(const char *sock)
{
	struct vblk_client *c = connect_to(sock, "eio");
	unsigned logged = vblkd_log_count(log_path, "Input/output error");

	if (!c)
		return;
	is(wr(c, 1 * MIB, 64 << 10, 31), VIRTIO_BLK_S_OK, "eio healthy: write");
	ok(rd_check(c, 1 * MIB, 64 << 10, 31), "eio healthy: reads back");
	is(io(c, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0), VIRTIO_BLK_S_OK, "eio healthy: flush");

	fault_fuse_set_fail(fuse, true);
	is(io(c, VIRTIO_BLK_T_IN, 1 * MIB, NULL, 0, rbuf, 64 << 10), VIRTIO_BLK_S_IOERR,
	   "eio failing: read is IOERR");
	is(wr(c, 2 * MIB, 64 << 10, 32), VIRTIO_BLK_S_IOERR, "eio failing: write is IOERR");
	is(io(c, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0), VIRTIO_BLK_S_IOERR,
	   "eio failing: flush is IOERR");
	ok(fault_fuse_failed(fuse) >= 3, "eio failing: the errors came from the filesystem (%lu)",
	   fault_fuse_failed(fuse));
	ok(vblkd_log_count(log_path, "Input/output error") > logged, "eio failing: the log names EIO");
	storm(c, "eio failing", VIRTIO_BLK_T_IN, 1 * MIB, 4096, "Input/output error");
	ok(vblkd_proc_alive(&proc), "eio failing: vblkd survives");

	fault_fuse_set_fail(fuse, false);
	ok(rd_check(c, 1 * MIB, 64 << 10, 31), "eio healed: the old data reads back");
	is(wr(c, 2 * MIB, 64 << 10, 33), VIRTIO_BLK_S_OK, "eio healed: writes work");
	ok(rd_check(c, 2 * MIB, 64 << 10, 33), "eio healed: and read back");
	is(io(c, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0), VIRTIO_BLK_S_OK, "eio healed: flush");
	vblk_client_destroy(c);
}

/* ---- REM_MEM_REG under a stalled read ---------------------------------------- */

/* Poll @cond-like: until the FUSE filesystem holds a read, or TMO. */
static bool wait_stalled(void)
{
	for (int i = 0; i < TMO && !fault_fuse_stalled(fuse); i++)
		usleep(1000);
	return fault_fuse_stalled(fuse) > 0;
}

/*
 * A read into guest memory is stuck in storage when the frontend removes
 * the region it writes into. Once REM_MEM_REG is acknowledged the frontend
 * may reuse that memory, so the ack must wait for the read (which then
 * completes normally), and nothing may write there afterwards.
 */
static void test_rem_mem_reg(const char *sock)
{
	/* Small regions: the data buffer has one of its own to lose. */
	struct vblk_client_opts o = { .num_queues = 1, .mem_size = 1 * MIB,
				      .region_size = 64 << 10 };
	const struct gmem_region_desc *rd = NULL;
	struct vblk_client *c = NULL;
	struct vblk_req *r = calloc(1, sizeof(*r));
	struct vhost_frontend *f;
	uint64_t gpa, ack = 1;
	uint8_t *region;
	bool clean = true;
	int ret;

	if (!ok(r && vblk_client_connect(sock, &o, &c) == 0, "rem_mem_reg: connect"))
		goto out;
	f = vblk_client_frontend(c);
	fault_fuse_set_stall(fuse, true);
	/* Sectors nothing read before: not in any page cache. */
	if (vblk_client_submit(c, 0, r, VIRTIO_BLK_T_IN, 6 * MIB / SECT, NULL, 0, 4096, 0))
		tap_bail("rem_mem_reg: submit");
	gpa = VBLK_CLIENT_GPA_BASE +
	      (uint64_t)((uint8_t *)r->in_data - (uint8_t *)vblk_client_host(c,
			 VBLK_CLIENT_GPA_BASE, 1));
	for (unsigned i = 0; i < vblk_client_nregions(c); i++) {
		const struct gmem_region_desc *d = vblk_client_region(c, i);

		if (gpa >= d->gpa && gpa - d->gpa < d->size)
			rd = d;
	}
	if (!rd || rd->gpa == VBLK_CLIENT_GPA_BASE)
		tap_bail("rem_mem_reg: the buffer is not in a data region");
	region = vblk_client_host(c, rd->gpa, rd->size);
	memset(r->in_data, 0xaa, 4096);     /* the read brings zeroes */
	vblk_client_kick(c, 0, true);
	ok(wait_stalled(), "rem_mem_reg: a read is held in storage");

	vhost_frontend_set_timeout(f, 500);
	ret = vhost_frontend_rem_mem_reg(f, rd, -1);
	is(ret, -EAGAIN, "rem_mem_reg: no ack while a read into the region is in flight");
	fault_fuse_set_stall(fuse, false);
	vhost_frontend_set_timeout(f, TMO);
	if (ret == -EAGAIN)
		ret = vhost_frontend_recv_reply(f, VHOST_USER_REM_MEM_REG, &ack, sizeof(ack),
						NULL);
	ok(ret == 0 && ack == 0, "rem_mem_reg: acked once the read completed");
	vblk_client_reap(c, 0);
	ok(r->done && *r->status == VIRTIO_BLK_S_OK &&
	   ((uint8_t *)r->in_data)[0] == 0 && ((uint8_t *)r->in_data)[4095] == 0,
	   "rem_mem_reg: the read completed, with its data, before the ack");

	/* The frontend reuses the memory: the device must leave it alone
	 * (a round trip lets anything still pending in the daemon land). */
	memset(region, 0x55, rd->size);
	ok(vhost_frontend_get_features(f, &ack) == 0, "rem_mem_reg: the connection answers");
	for (uint64_t i = 0; i < rd->size; i++)
		clean &= region[i] == 0x55;
	ok(clean, "rem_mem_reg: nothing wrote into the removed region after the ack");
	/* Plugged back (the client allocates from it), the queue serves on. */
	ok(vhost_frontend_add_mem_reg(f, rd, vblk_client_memfd(c)) == 0 &&
	   wr(c, 5 * MIB, 64 << 10, 41) == VIRTIO_BLK_S_OK && rd_check(c, 5 * MIB, 64 << 10, 41),
	   "rem_mem_reg: the ring restarted and serves");
out:
	fault_fuse_set_stall(fuse, false);
	vblk_client_destroy(c);
	free(r);
}

/* ---- dm: linear -> error -> linear ------------------------------------------ */

static int dm_load(const char *target)
{
	uint64_t sectors = DM_IMG / SECT;

	if (!strcmp(target, "linear"))
		return sh("dmsetup suspend %s && dmsetup reload %s --table '0 %llu linear %s 0' && "
			  "dmsetup resume %s", dm_name, dm_name, (unsigned long long)sectors,
			  loopdev, dm_name);
	return sh("dmsetup suspend %s && dmsetup reload %s --table '0 %llu error' && "
		  "dmsetup resume %s", dm_name, dm_name, (unsigned long long)sectors, dm_name);
}

static void test_dm(const char *sock)
{
	struct vblk_client *c = connect_to(sock, "dm");

	if (!c)
		return;
	is(wr(c, 1 * MIB, 64 << 10, 21), VIRTIO_BLK_S_OK, "dm linear: write");
	ok(rd_check(c, 1 * MIB, 64 << 10, 21), "dm linear: reads back");
	is(io(c, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0), VIRTIO_BLK_S_OK, "dm linear: flush");

	is(dm_load("error"), 0, "dm: table switched to error");
	is(io(c, VIRTIO_BLK_T_IN, 1 * MIB, NULL, 0, rbuf, 64 << 10), VIRTIO_BLK_S_IOERR,
	   "dm error: read is IOERR");
	is(wr(c, 2 * MIB, 64 << 10, 22), VIRTIO_BLK_S_IOERR, "dm error: write is IOERR");
	storm(c, "dm error", VIRTIO_BLK_T_IN, 1 * MIB, 4096, "Input/output error");
	ok(vblkd_proc_alive(&proc), "dm error: vblkd survives");

	is(dm_load("linear"), 0, "dm: table switched back to linear");
	ok(rd_check(c, 1 * MIB, 64 << 10, 21), "dm linear again: the old data reads back");
	is(wr(c, 2 * MIB, 64 << 10, 23), VIRTIO_BLK_S_OK, "dm linear again: writes work");
	ok(rd_check(c, 2 * MIB, 64 << 10, 23), "dm linear again: and read back");
	vblk_client_destroy(c);
}

/* ---- setup -------------------------------------------------------------------- */

static const char *setup_enospc(const char *img, const char *filler)
{
	int fd;

	if (geteuid() != 0)
		return "not root (mount -t tmpfs)";
	if (mkdir(mnt, 0700) && errno != EEXIST)
		return "mkdir";
	if (mount("vblk-fault", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=2m,mode=0700"))
		return "cannot mount a tmpfs here";
	mounted = true;
	if (make_file(img, NOSPC_IMG))
		return "cannot create the image";
	/* 512 KiB of the 2 MiB taken by something else. */
	fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	vblk_fill(wbuf, 512 << 10, 5);
	if (fd < 0 || write(fd, wbuf, 512 << 10) != 512 << 10) {
		if (fd >= 0)
			close(fd);
		return "cannot write the filler file";
	}
	close(fd);
	return NULL;
}

/*
 * A loop device over the FUSE file: a read the filesystem holds then waits
 * in the loop driver, while the iothread (whose io_uring read of a FUSE
 * file would block in submission) stays free to answer the control thread.
 */
static const char *setup_fuse_loop(const char *dir)
{
	char cmd[512];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "losetup -f --show %s/disk.img 2>/dev/null", dir);
	f = popen(cmd, "r");
	if (!f)
		return "cannot run losetup";
	if (!fgets(rm_loopdev, sizeof(rm_loopdev), f))
		rm_loopdev[0] = '\0';
	pclose(f);
	rm_loopdev[strcspn(rm_loopdev, "\n")] = '\0';
	return rm_loopdev[0] == '/' ? NULL : "no loop device over the FUSE file";
}

static const char *setup_dm(const char *backing, char *dev, size_t n)
{
	FILE *f;

	if (geteuid() != 0)
		return "not root (dmsetup)";
	if (access("/dev/mapper/control", F_OK) || sh("dmsetup version >/dev/null 2>&1"))
		return "no device-mapper in this kernel";
	if (make_file(backing, DM_IMG))
		return "cannot create the backing file";
	snprintf(dm_name, sizeof(dm_name), "vblk-fault-%d", (int)getpid());
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", backing);
		f = popen(cmd, "r");
	}
	if (!f || !fgets(loopdev, sizeof(loopdev), f)) {
		if (f)
			pclose(f);
		loopdev[0] = '\0';
		return "no free loop device";
	}
	pclose(f);
	loopdev[strcspn(loopdev, "\n")] = '\0';
	if (sh("dmsetup create %s --table '0 %llu linear %s 0'", dm_name,
	       (unsigned long long)(DM_IMG / SECT), loopdev)) {
		dm_name[0] = '\0';
		return "dmsetup create failed";
	}
	snprintf(dev, n, "/dev/mapper/%s", dm_name);
	return NULL;
}

static const char *setup_eio(const char *dir)
{
	int ret;

	if (geteuid() != 0)
		return "not root (mount -t fuse)";
	if (mkdir(dir, 0700) && errno != EEXIST)
		return "mkdir";
	ret = fault_fuse_mount(dir, EIO_IMG, &fuse);
	if (ret) {
		static char why[96];

		snprintf(why, sizeof(why), "cannot mount a FUSE filesystem: %s", strerror(-ret));
		return why;
	}
	return NULL;
}

static void cleanup(void)
{
	/* vblkd has stopped (or dies with us): nothing holds the file open. */
	if (rm_loopdev[0])
		sh("losetup -d %s >/dev/null 2>&1", rm_loopdev);
	fault_fuse_destroy(fuse);
	fuse = NULL;
	if (dm_name[0])
		sh("dmsetup remove --retry %s >/dev/null 2>&1", dm_name);
	if (loopdev[0])
		sh("losetup -d %s >/dev/null 2>&1", loopdev);
	if (mounted)
		umount2(mnt, MNT_DETACH);
	vblkd_proc_cleanup(&proc);
}

static int start(const char *const *args)
{
	int saved = dup(STDERR_FILENO), fd, ret;

	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (saved < 0 || fd < 0)
		tap_bail("log file %s: %s", log_path, strerror(errno));
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	ret = vblkd_proc_start(&proc, vblkd, args);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	char t_sock[256], t_img[256], n_sock[256], n_img[300], filler[300], d_sock[256],
	     d_img[256], d_dev[128];
	char a[5][700], e_dir[256], e_sock[256], r_sock[256];
	const char *args[8];
	const char *skip_enospc, *skip_dm, *skip_eio, *skip_rem;
	unsigned nargs = 0;
	struct vblk_client *other;
	char how[96];
	int st;

	vblkd = vblk_test_start(argc, argv, &proc);
	vblkd_proc_path(&proc, "vblkd.log", log_path, sizeof(log_path));
	vblkd_proc_path(&proc, "trunc.sock", t_sock, sizeof(t_sock));
	vblkd_proc_path(&proc, "trunc.img", t_img, sizeof(t_img));
	vblkd_proc_path(&proc, "nospc.sock", n_sock, sizeof(n_sock));
	vblkd_proc_path(&proc, "tmpfs", mnt, sizeof(mnt));
	snprintf(n_img, sizeof(n_img), "%s/nospc.img", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	vblkd_proc_path(&proc, "dm.sock", d_sock, sizeof(d_sock));
	vblkd_proc_path(&proc, "fuse", e_dir, sizeof(e_dir));
	vblkd_proc_path(&proc, "eio.sock", e_sock, sizeof(e_sock));
	vblkd_proc_path(&proc, "rem.sock", r_sock, sizeof(r_sock));
	vblkd_proc_path(&proc, "dm-backing.img", d_img, sizeof(d_img));

	if (make_file(t_img, TRUNC_IMG))
		tap_bail("image %s: %s", t_img, strerror(errno));
	skip_enospc = setup_enospc(n_img, filler);
	skip_dm = setup_dm(d_img, d_dev, sizeof(d_dev));
	skip_eio = setup_eio(e_dir);
	skip_rem = skip_eio ? skip_eio : setup_fuse_loop(e_dir);

	snprintf(a[0], sizeof(a[0]), "--export=socket-path=%s,file=%s", t_sock, t_img);
	args[nargs++] = a[0];
	if (!skip_enospc) {
		snprintf(a[1], sizeof(a[1]), "--export=socket-path=%s,file=%s", n_sock, n_img);
		args[nargs++] = a[1];
	}
	if (!skip_dm) {
		snprintf(a[2], sizeof(a[2]), "--export=socket-path=%s,file=%s", d_sock, d_dev);
		args[nargs++] = a[2];
	}
	if (!skip_eio) {
		snprintf(a[3], sizeof(a[3]), "--export=socket-path=%s,file=%s/disk.img", e_sock,
			 e_dir);
		args[nargs++] = a[3];
	}
	if (!skip_rem) {
		snprintf(a[4], sizeof(a[4]), "--export=socket-path=%s,file=%s", r_sock,
			 rm_loopdev);
		args[nargs++] = a[4];
	}
	args[nargs++] = "--iothreads=1";
	args[nargs] = NULL;
	if (start(args)) {
		cleanup();
		tap_bail("cannot start %s", vblkd);
	}

	test_trunc(t_sock, t_img);
	if (skip_enospc) {
		ok(1, "enospc # SKIP %s", skip_enospc);
	} else {
		/*
		 * The limiter is per call site, shared by every export: wait
		 * out the window trunc's storm filled, so ENOSPC shows.
		 */
		usleep(5500 * 1000);
		other = connect_to(t_sock, "enospc: the trunc export alongside");
		test_enospc(n_sock, filler);
		ok(other && rd_check(other, 12 * MIB, 64 << 10, 4),
		   "enospc: the other export served throughout");
		vblk_client_destroy(other);
	}
	if (skip_eio) {
		ok(1, "eio # SKIP %s", skip_eio);
	} else {
		usleep(5500 * 1000);
		other = connect_to(t_sock, "eio: the trunc export alongside");
		test_eio(e_sock);
		ok(other && rd_check(other, 12 * MIB, 64 << 10, 4),
		   "eio: the other export served throughout");
		vblk_client_destroy(other);
	}
	if (skip_rem)
		ok(1, "rem_mem_reg # SKIP %s", skip_rem);
	else
		test_rem_mem_reg(r_sock);
	if (skip_dm) {
		ok(1, "dm # SKIP %s", skip_dm);
	} else {
		usleep(5500 * 1000);
		other = connect_to(t_sock, "dm: the trunc export alongside");
		test_dm(d_sock);
		ok(other && rd_check(other, 12 * MIB, 64 << 10, 4),
		   "dm: the other export served throughout");
		vblk_client_destroy(other);
	}

	ok(vblkd_proc_alive(&proc), "vblkd is still running");
	st = vblkd_proc_stop(&proc);
	ok(st == 0, "vblkd exits 0 on SIGTERM (%s)", vblkd_proc_describe(&proc, how, sizeof(how)));
	if (tap_failed__)
		vblkd_log_dump(log_path);
	cleanup();
	return tap_done();
}
