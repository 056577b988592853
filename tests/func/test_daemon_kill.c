/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_kill.c - SIGKILL with hundreds of requests in flight, and a
 * restart that must finish every one of them exactly once. The image is a
 * FUSE file (fault_fuse.c) paused from before the writes until after the
 * restart, so they stay in flight however fast the machine. A QEMU-like
 * client (INFLIGHT_SHMFD) puts 256 writes on a ring of 256 and 1000 on a
 * ring of 1024, vblkd is SIGKILLed, started again with the same arguments
 * (default sandbox: the production filter in a release build), and the
 * client reconnects with the same inflight area and rings, as QEMU does.
 * The restarted daemon recovers the requests its predecessor marked in
 * flight (sorting them under seccomp) and pops the rest; then storage
 * resumes and every request must complete once, OK, its data on the image.
 * Root only (FUSE); skipped otherwise.
 *
 * Usage: test_daemon_kill PATH-TO-VBLKD. Prints TAP.
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

#include "common/compiler.h"
#include "fault_fuse.h"
#include "tap.h"
#include "vblk_client.h"

#define IMG     (16u << 20)
#define BLK     4096u
#define CASE_AT (8u << 20)      /* case k writes from k * CASE_AT */

static const char *vblkd;
static struct vblkd_proc proc;
static struct fault_fuse *fuse;
static char sock[256], dir[256], log_path[256], arg_export[700];
static uint8_t buf[BLK];

static void dump_log(void)
{
	vblkd_log_dump(log_path);
}

/* N of the daemon's "resubmitting N requests" line, or -1. */
static int log_resubmitted(void)
{
	char line[512];
	const char *p;
	FILE *f = fopen(log_path, "r");
	int n = -1;

	while (f && fgets(line, sizeof(line), f))
		if ((p = strstr(line, "resubmitting ")))
			n = atoi(p + strlen("resubmitting "));
	if (f)
		fclose(f);
	return n;
}

static int start(void)
{
	const char *args[] = { arg_export, "--iothreads=1", NULL };

	return vblkd_proc_start_logged(&proc, vblkd, args, log_path);
}

/* The daemon's marks once they stop changing (it popped what it will). */
static int marked_settled(struct vblk_client *c)
{
	int last = -2, same = 0;

	for (int i = 0; i < 1000 && same < 20; i++) {
		int m = vblk_client_inflight_marked(c, 0);

		same = m == last && m > 0 ? same + 1 : 0;
		last = m;
		usleep(10 * 1000);
	}
	return last;
}

static void run_case(unsigned k, unsigned qsize, unsigned n)
{
	struct vblk_client_opts o = { .queue_size = qsize, .inflight = true,
				      .mem_size = 16u << 20 };
	struct vblk_req *reqs = calloc(n, sizeof(*reqs));
	struct vblk_client *c = NULL;
	unsigned done = 0, bad_status = 0, bad_data = 0, submitted = 0;
	uint64_t base = (uint64_t)k * CASE_AT;
	struct virtq_drv *vq;
	char what[64], how[96];
	int marked, st, ret;

	snprintf(what, sizeof(what), "ring %u, %u writes", qsize, n);
	if (!reqs || start())
		tap_bail("%s: cannot start %s", what, vblkd);
	ret = vblk_client_connect(sock, &o, &c);
	if (!ok(ret == 0, "%s: connect with an inflight area", what)) {
		diag("connect: %s", strerror(-ret));
		goto out;
	}
	vq = vblk_client_vq(c, 0);

	fault_fuse_set_paused(fuse, true);
	for (unsigned i = 0; i < n; i++) {
		vblk_fill(buf, BLK, base + i);
		submitted += vblk_client_submit(c, 0, &reqs[i], VIRTIO_BLK_T_OUT,
						(base + (uint64_t)i * BLK) / 512, buf, BLK, 0,
						VBLK_REQ_INDIRECT) == 0;
	}
	vblk_client_kick(c, 0, true);
	is(submitted, n, "%s: all made available", what);
	marked = marked_settled(c);
	diag("%s: at the kill: %u in flight (available, none used), %d marked in the "
	     "daemon's inflight area", what, n - (unsigned)READ_ONCE(vq->used->idx), marked);
	ok(marked >= 128, "%s: the daemon holds >= 128 requests in flight (%d)", what, marked);

	kill(proc.pid, SIGKILL);
	/* The kernel holds a dying process until its file's FLUSH is answered. */
	fault_fuse_set_paused(fuse, false);
	st = vblkd_proc_wait(&proc, 10000);
	ok(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: vblkd SIGKILLed (%s)",
	   what, vblkd_proc_describe(&proc, how, sizeof(how)));
	is(READ_ONCE(vq->used->idx), 0, "%s: nothing completed before the kill", what);

	/* Storage answers while the daemon opens the image, then stops
	 * again before the requests come back. */
	if (start() || fixture_wait_socket(proc.pid, sock, 10000))
		tap_bail("%s: cannot restart %s", what, vblkd);
	fault_fuse_set_paused(fuse, true);
	ret = vblk_client_reconnect(c, sock);
	if (!ok(ret == 0, "%s: reconnected with the same inflight area and rings", what))
		diag("reconnect: %s", strerror(-ret));
	for (int i = 0; i < 1000 && !vblkd_log_count(log_path, "resubmitting"); i++)
		usleep(10 * 1000);
	ok(vblkd_log_count(log_path, "resubmitting") == 1 && vblkd_proc_alive(&proc) &&
	   log_resubmitted() == marked,
	   "%s: the restarted daemon resubmits the %d requests left in flight (%d)", what,
	   marked, log_resubmitted());

	fault_fuse_set_paused(fuse, false);
	/* A bound for a broken daemon, not a speed check. */
	for (int i = 0; i < 6000 && done < n; i++) {
		done += vblk_client_reap(c, 0);
		if (done < n)
			usleep(5000);
	}
	usleep(100 * 1000);   /* anything extra (a request done twice) shows now */
	done += vblk_client_reap(c, 0);
	for (unsigned i = 0; i < n; i++) {
		bad_status += !reqs[i].done || *reqs[i].status != VIRTIO_BLK_S_OK;
		vblk_fill(buf, BLK, base + i);
		bad_data += memcmp(fault_fuse_data(fuse) + base + (size_t)i * BLK, buf, BLK) != 0;
	}
	is(done, n, "%s: every request completed", what);
	ok(!vq->broken && READ_ONCE(vq->used->idx) == (uint16_t)n,
	   "%s: each exactly once (used index %u, %s)", what, READ_ONCE(vq->used->idx),
	   vq->broken ? "a used id named no request" : "no unknown id");
	is(bad_status, 0, "%s: all OK", what);
	is(bad_data, 0, "%s: every write's data is on the image", what);
	st = vblkd_proc_stop(&proc);
	ok(st == 0, "%s: the restarted vblkd exits 0 (%s)", what,
	   vblkd_proc_describe(&proc, how, sizeof(how)));
out:
	fault_fuse_set_paused(fuse, false);
	if (tap_failed__)
		dump_log();
	if (!proc.exited)
		vblkd_proc_stop(&proc);
	vblk_client_destroy(c);
	free(reqs);
}

int main(int argc, char **argv)
{
	int ret;

	if (argc < 2)
		tap_bail("usage: %s PATH-TO-VBLKD", argv[0]);
	vblkd = argv[1];
	if (geteuid() != 0)
		tap_skip_all("FUSE mounts need root");
	if (vblkd_proc_init(&proc))
		tap_bail("mkdtemp");
	vblkd_proc_path(&proc, "fuse", dir, sizeof(dir));
	vblkd_proc_path(&proc, "sock", sock, sizeof(sock));
	vblkd_proc_path(&proc, "vblkd.log", log_path, sizeof(log_path));
	if (mkdir(dir, 0700))
		tap_bail("mkdir: %s", strerror(errno));
	ret = fault_fuse_mount(dir, IMG, &fuse);
	if (ret) {
		vblkd_proc_cleanup(&proc);
		tap_skip_all("FUSE not usable here: %s", strerror(-ret));
	}
	snprintf(arg_export, sizeof(arg_export), "--export=socket-path=%s,file=%s/disk.img", sock,
		 dir);
	run_case(0, 256, 256);
	run_case(1, 1024, 1000);
	fault_fuse_destroy(fuse);
	vblkd_proc_cleanup(&proc);
	return tap_done();
}
