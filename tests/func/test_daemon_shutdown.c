/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_shutdown.c - SIGTERM while one export's storage holds a
 * request for ever (a FUSE file, fault_fuse.c, that stops taking requests:
 * its iothread then blocks in the kernel, even in io_uring_enter): vblkd
 * must exit within --shutdown-timeout plus its bounded flush, with the
 * documented exit status 3 (not 0: a request was lost), and must still
 * have flushed every other export (fdatasync reaches the other FUSE file
 * as FSYNC) with the writes it acknowledged on the image. Then a clean
 * stop whose final fdatasync fails must not exit 0 either. The stuck export
 * comes first on the command line, so a shutdown that waits export by
 * export shows. Root only (FUSE mounts); skipped otherwise.
 *
 * Usage: test_daemon_shutdown PATH-TO-VBLKD. Prints TAP.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "fault_fuse.h"
#include "tap.h"
#include "vblk_client.h"

#define IMG        (8u << 20)
#define TMO        5000
#define SHUTDOWN_S 2             /* --shutdown-timeout */
#define EXIT_SHUTDOWN_INCOMPLETE 3
#define CHUNK      (64u << 10)
#define NCHUNKS    4

static struct vblkd_proc proc;
static struct fault_fuse *stuck, *healthy;
static uint8_t buf[CHUNK];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void cleanup(void)
{
	if (stuck)
		fault_fuse_set_paused(stuck, false);
	if (proc.pid && !proc.exited)
		vblkd_proc_stop(&proc);
	fault_fuse_destroy(stuck);
	fault_fuse_destroy(healthy);
	stuck = healthy = NULL;
	vblkd_proc_cleanup(&proc);
}

/* Acknowledged writes of chunk i (pattern seed+i); true if all were OK. */
static bool write_chunks(struct vblk_client *c, unsigned seed)
{
	for (unsigned i = 0; i < NCHUNKS; i++) {
		uint8_t st = 0xff;

		vblk_fill(buf, CHUNK, seed + i);
		if (vblk_client_io(c, 0, VIRTIO_BLK_T_OUT, (uint64_t)i * CHUNK / 512, buf, CHUNK,
				   NULL, 0, 0, TMO, &st, NULL) || st != VIRTIO_BLK_S_OK)
			return false;
	}
	return true;
}

static bool image_has_chunks(const struct fault_fuse *f, unsigned seed)
{
	for (unsigned i = 0; i < NCHUNKS; i++) {
		vblk_fill(buf, CHUNK, seed + i);
		if (memcmp(fault_fuse_data(f) + (size_t)i * CHUNK, buf, CHUNK))
			return false;
	}
	return true;
}

/*
 * A clean stop whose final fdatasync fails (the FUSE file answers FSYNC
 * with EIO): the image may lack acknowledged writes, so not status 0.
 */
static void test_flush_fails(const char *vblkd, const char *a_export, const char *sock,
			     const char *log_path)
{
	const char *args[] = { a_export, NULL };
	struct vblk_client *c = NULL;
	char how[96];
	int st;

	if (vblkd_proc_start_logged(&proc, vblkd, args, log_path))
		tap_bail("cannot start %s", vblkd);
	ok(vblk_client_connect(sock, NULL, &c) == 0 && write_chunks(c, 300),
	   "flush fails: writes acknowledged");
	fault_fuse_set_fail(healthy, true);
	st = vblkd_proc_stop(&proc);
	fault_fuse_set_fail(healthy, false);
	ok(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == EXIT_SHUTDOWN_INCOMPLETE,
	   "flush fails: exits with status %d, not 0 (%s)", EXIT_SHUTDOWN_INCOMPLETE,
	   vblkd_proc_describe(&proc, how, sizeof(how)));
	ok(vblkd_log_count(log_path, "could not be flushed") > 0,
	   "flush fails: the log says the image could not be flushed");
	vblk_client_destroy(c);
}

int main(int argc, char **argv)
{
	char s_dir[256], h_dir[256], s_sock[256], h_sock[256], log_path[256], how[96];
	char a_stuck[700], a_healthy[700], a_timeout[64];
	const char *args[6];
	struct vblk_client *cs = NULL, *ch = NULL;
	struct vblk_req *r = calloc(1, sizeof(*r));
	unsigned long fsyncs;
	uint64_t t0, dt;
	int ret, st;

	if (argc < 2)
		tap_bail("usage: %s PATH-TO-VBLKD", argv[0]);
	if (geteuid() != 0)
		tap_skip_all("FUSE mounts need root");
	if (!r || vblkd_proc_init(&proc))
		tap_bail("setup");
	vblkd_proc_path(&proc, "stuck", s_dir, sizeof(s_dir));
	vblkd_proc_path(&proc, "healthy", h_dir, sizeof(h_dir));
	vblkd_proc_path(&proc, "stuck.sock", s_sock, sizeof(s_sock));
	vblkd_proc_path(&proc, "healthy.sock", h_sock, sizeof(h_sock));
	vblkd_proc_path(&proc, "vblkd.log", log_path, sizeof(log_path));
	if (mkdir(s_dir, 0700) || mkdir(h_dir, 0700))
		tap_bail("mkdir: %s", strerror(errno));
	ret = fault_fuse_mount(s_dir, IMG, &stuck);
	ret = ret ?: fault_fuse_mount(h_dir, IMG, &healthy);
	if (ret) {
		cleanup();
		tap_skip_all("FUSE not usable here: %s", strerror(-ret));
	}

	snprintf(a_stuck, sizeof(a_stuck), "--export=socket-path=%s,file=%s/disk.img", s_sock,
		 s_dir);
	snprintf(a_healthy, sizeof(a_healthy), "--export=socket-path=%s,file=%s/disk.img", h_sock,
		 h_dir);
	snprintf(a_timeout, sizeof(a_timeout), "--shutdown-timeout=%d", SHUTDOWN_S);
	args[0] = a_stuck;
	args[1] = a_healthy;
	args[2] = "--iothreads=2";   /* one each: the stuck one blocks its iothread */
	args[3] = a_timeout;
	args[4] = NULL;
	if (vblkd_proc_start_logged(&proc, argv[1], args, log_path)) {
		cleanup();
		tap_bail("cannot start %s", argv[1]);
	}

	ok(vblk_client_connect(h_sock, NULL, &ch) == 0 && write_chunks(ch, 100),
	   "healthy export: %u writes of %u KiB acknowledged", NCHUNKS, CHUNK >> 10);
	ok(vblk_client_connect(s_sock, NULL, &cs) == 0 && write_chunks(cs, 200),
	   "stuck export: %u writes acknowledged before its storage stops", NCHUNKS);
	if (!cs || !ch) {
		cleanup();
		tap_bail("no clients");
	}
	fault_fuse_set_paused(stuck, true);
	ret = vblk_client_submit(cs, 0, r, VIRTIO_BLK_T_IN, IMG / 512 - 8, NULL, 0, 4096, 0);
	ret = ret ?: vblk_client_kick(cs, 0, true);
	for (int i = 0; !ret && i < TMO && fault_fuse_waiting(stuck) <= 0; i++)
		usleep(1000);
	ok(fault_fuse_waiting(stuck) > 0, "stuck export: a read waits on its storage (%d)",
	   fault_fuse_waiting(stuck));
	fsyncs = fault_fuse_fsyncs(healthy);

	t0 = now_ms();
	kill(proc.pid, SIGTERM);
	/*
	 * vblkd is done when it says so; the kernel then holds the process
	 * until the file's last FLUSH is answered (FUSE cannot abandon it),
	 * so the filesystem resumes before the exit status is read. 30 s: a
	 * bound for a broken daemon (the old one waited 30 s per export).
	 */
	for (int i = 0; i < 3000 && !vblkd_log_count(log_path, "exiting with status") &&
			vblkd_proc_wait(&proc, 0) == -ETIMEDOUT; i++)
		usleep(10 * 1000);
	dt = now_ms() - t0;
	fault_fuse_set_paused(stuck, false);
	st = vblkd_proc_wait(&proc, 10000);
	if (st == -ETIMEDOUT)
		vblkd_proc_stop(&proc);
	diag("vblkd %s %llu ms after SIGTERM (--shutdown-timeout=%d)",
	     vblkd_proc_describe(&proc, how, sizeof(how)), (unsigned long long)dt, SHUTDOWN_S);
	ok(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == EXIT_SHUTDOWN_INCOMPLETE,
	   "exits with status %d (shutdown incomplete), not 0: %s", EXIT_SHUTDOWN_INCOMPLETE,
	   how);
	/* The timeout, the flush bound (no longer than the timeout), slack. */
	ok(st >= 0 && dt < 2 * SHUTDOWN_S * 1000 + 3000,
	   "done within the timeout and the bounded flush (%llu ms < %d ms)",
	   (unsigned long long)dt, 2 * SHUTDOWN_S * 1000 + 3000);
	ok(fault_fuse_fsyncs(healthy) > fsyncs,
	   "the healthy export's image was flushed at exit (fsyncs %lu -> %lu)", fsyncs,
	   fault_fuse_fsyncs(healthy));
	ok(image_has_chunks(healthy, 100), "the healthy export's acknowledged writes are on it");
	ok(image_has_chunks(stuck, 200), "the stuck export's acknowledged writes are on it");
	ok(vblkd_log_count(log_path, "requests still in flight") > 0,
	   "the log names the export left with requests in flight");
	if (tap_failed__)
		vblkd_log_dump(log_path);

	fault_fuse_set_paused(stuck, false);
	vblk_client_destroy(cs);
	vblk_client_destroy(ch);
	test_flush_fails(argv[1], a_healthy, h_sock, log_path);
	cleanup();
	free(r);
	return tap_done();
}
