/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_poll.c - vblkd (argv[1]) in each --poll-mode, driven by
 * libvblk: write + read-back verify on two queues, then the iothread's CPU
 * time over 300 ms of idle (connection open, no I/O): ~0 in event and
 * adaptive, most of the interval in poll. The numbers are printed; only
 * the idle-cost direction is asserted (the machine may be shared). Then
 * bursts at the edges of a 1024-entry ring: exactly one iothread pass of
 * work (256 chains, its budget) in one kick, and the full ring, each three
 * times: a pass that ends on its budget must turn guest kicks back on.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "fixture/fixture.h"
#include "tap.h"
#include "vblk/vblk.h"

#define IMG_SIZE (16u << 20)
#define BS 4096u
#define NBLK 512u
#define QD 32u
#define RING 1024u          /* the largest ring QEMU configures */

static char dir[64], sock[128], img[128];
static const char *vblkd_path;

static pid_t start_vblkd(const char *mode)
{
	char sp[160], fp[160], pm[64];
	char *argv[] = { (char *)vblkd_path, sp, fp, pm, (char *)"--num-queues=2",
			 (char *)"--iothreads=1", NULL };
	pid_t pid;

	unlink(sock);
	snprintf(sp, sizeof(sp), "--socket-path=%s", sock);
	snprintf(fp, sizeof(fp), "--file=%s", img);
	snprintf(pm, sizeof(pm), "--poll-mode=%s", mode);
	pid = fixture_spawn((const char *const *)argv);
	if (pid > 0 && fixture_wait_socket(pid, sock, 5000) == 0)
		return pid;
	tap_bail("vblkd --poll-mode=%s did not come up", mode);
}

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* The iothread's task id: the thread named vblk-io0. */
static int find_iothread(pid_t pid)
{
	char path[320], comm[32];
	struct dirent *de;
	int tid = -1;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "vblk-io0", 8))
			tid = atoi(de->d_name);
		fclose(f);
	}
	if (d)
		closedir(d);
	return tid;
}

/* utime + stime of a task from /proc/PID/task/TID/stat, in ms. */
static double task_stat_ms(pid_t pid, int tid)
{
	char path[96], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	/* After "comm)": state is field 3; utime, stime are fields 14, 15. */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &st) != 2)
		return -1;
	return (ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* Run time in ns from schedstat (exact; stat is in clock ticks), or -1. */
static double task_run_ms(pid_t pid, int tid)
{
	char path[96];
	unsigned long long ns;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fscanf(f, "%llu", &ns);
	fclose(f);
	return n == 1 ? ns / 1e6 : -1;
}

/* Reap n completions; returns how many failed, or <0 on a timeout. */
static int reap(struct vblkq *q, unsigned n)
{
	static struct vblk_completion c[RING];
	unsigned got = 0;
	int bad = 0;

	while (got < n) {
		struct timespec t = { 5, 0 };
		int k = vblkq_do_io(q, c, 1, (int)(n - got), &t);

		if (k <= 0) {
			diag("do_io: %d %s", k, vblk_get_error_msg());
			return -1;
		}
		for (int i = 0; i < k; i++)
			bad += c[i].ret != 0;
		got += (unsigned)k;
	}
	return bad;
}

/* Write NBLK blocks (QD at a time, alternating queues), read back, compare. */
static void write_verify(struct vblk *v, const char *mode, unsigned seed)
{
	struct vblk_mem_region r;
	struct vblkq *q[2] = { vblk_get_queue(v, 0), vblk_get_queue(v, 1) };
	unsigned char *wbuf, *rbuf;
	int bad = 0, mism = 0;

	if (vblk_alloc_mem_region(v, 2 * QD * BS, &r)) {
		ok(0, "%s: alloc mem region", mode);
		return;
	}
	wbuf = r.addr;
	rbuf = wbuf + QD * BS;
	for (unsigned b = 0; b < NBLK; b += QD) {
		struct vblkq *qq = q[(b / QD) % 2];
		int n;

		for (unsigned i = 0; i < QD * BS; i++)
			wbuf[i] = (unsigned char)((b * BS + i) * 2654435761u >> 13 ^ seed);
		for (unsigned i = 0; i < QD; i++)
			bad += vblkq_write(qq, (uint64_t)(b + i) * BS * 7 % IMG_SIZE, wbuf + i * BS, BS,
				    NULL, 0);
		n = reap(qq, QD);
		bad += n < 0 ? 1000 : n;
		for (unsigned i = 0; i < QD; i++)
			bad += vblkq_read(qq, (uint64_t)(b + i) * BS * 7 % IMG_SIZE, rbuf + i * BS, BS,
				   NULL, 0);
		n = reap(qq, QD);
		bad += n < 0 ? 1000 : n;
		mism += memcmp(wbuf, rbuf, QD * BS) != 0;
	}
	is(bad, 0, "%s: %u writes and reads completed without error", mode, 2 * NBLK);
	is(mism, 0, "%s: data read back matches", mode);
	vblk_free_mem_region(v, &r);
}

/*
 * Up to @n writes submitted with one kick (fewer if the ring fills first:
 * -EAGAIN; a request takes several descriptors), all reaped; three rounds.
 */
static void burst(struct vblk *v, const char *mode, unsigned n)
{
	struct vblk_mem_region r;
	struct vblkq *q = vblk_get_queue(v, 0);
	unsigned queued = n;
	int bad = 0;

	if (vblk_alloc_mem_region(v, (size_t)n * BS, &r)) {
		ok(0, "%s: alloc mem region", mode);
		return;
	}
	memset(r.addr, 0x5a, (size_t)n * BS);
	for (unsigned round = 0; round < 3 && !bad; round++) {
		int k;

		for (unsigned i = 0; i < n; i++) {
			k = vblkq_write(q, (uint64_t)i * BS, (char *)r.addr + (size_t)i * BS, BS,
					NULL, 0);
			if (k == -EAGAIN) {
				queued = i;
				break;
			}
			bad += k != 0;
		}
		k = reap(q, queued);
		if (k < 0)
			diag("%s: burst of %u, round %u: completions stopped", mode, queued, round);
		bad += k < 0 ? 1000 : k;
	}
	ok(queued >= 256, "%s: a burst fills the %u ring with %u requests", mode, RING, queued);
	is(bad, 0, "%s: 3 bursts of %u writes in one kick all complete", mode, queued);
	vblk_free_mem_region(v, &r);
}

int main(int argc, char **argv)
{
	static const char *const modes[] = { "event", "poll", "adaptive" };

	if (argc < 2)
		tap_bail("usage: test_daemon_poll VBLKD");
	vblkd_path = argv[1];
	signal(SIGPIPE, SIG_IGN);
	alarm(100);
	if (fixture_tmpdir("vblk-poll-test", dir, sizeof(dir)))
		tap_bail("mkdtemp");
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	snprintf(img, sizeof(img), "%s/img", dir);
	if (fixture_image(img, IMG_SIZE))
		tap_bail("image");

	for (unsigned m = 0; m < 3; m++) {
		const char *mode = modes[m];
		double s0, s1, r0, r1;
		struct vblk *v = NULL;
		pid_t pid = start_vblkd(mode);
		int tid, ret;

		ret = vblk_create(&v);
		ret = ret ?: vblk_set_str(v, "path", sock);
		ret = ret ?: vblk_connect(v);
		ret = ret ?: vblk_set_int(v, "num-queues", 2);
		ret = ret ?: vblk_set_int(v, "queue-size", RING);
		ret = ret ?: vblk_start(v);
		is(ret, 0, "%s: libvblk connected and started", mode);
		if (ret) {
			diag("%s", vblk_get_error_msg());
			stop(pid);
			continue;
		}
		write_verify(v, mode, m);

		tid = find_iothread(pid);
		ok(tid > 0, "%s: found the iothread", mode);
		usleep(50000);   /* let adaptive polling time out */
		s0 = task_stat_ms(pid, tid);
		r0 = task_run_ms(pid, tid);
		usleep(300000);
		s1 = task_stat_ms(pid, tid);
		r1 = task_run_ms(pid, tid);
		diag("%s: iothread CPU over 300 ms idle: %.1f ms (stat utime+stime), %.3f ms (schedstat)",
		     mode, s1 - s0, r1 - r0);
		if (m == 1) {
			ok(s1 - s0 >= 20 || r1 - r0 >= 20,
			   "poll: the idle iothread keeps spinning (%.1f ms)", s1 - s0);
		} else {
			/* schedstat is exact; stat moves in clock ticks. */
			double d = r0 >= 0 && r1 >= 0 ? r1 - r0 : s1 - s0;

			ok(d < 5, "%s: the idle iothread costs < 5 ms per 300 ms (%.3f ms)", mode, d);
		}
		/* Still served after the idle period (adaptive woke up again). */
		write_verify(v, mode, m + 7);
		burst(v, mode, 256);
		burst(v, mode, RING);
		vblk_destroy(&v);
		stop(pid);
	}
	unlink(sock);
	unlink(img);
	rmdir(dir);
	return tap_done();
}
