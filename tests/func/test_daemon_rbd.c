/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_rbd.c - vblkd's rbd engine against a real single-node Ceph
 * cluster (scripts/ceph-cluster.sh): the run's, when VBLK_CEPH_CONF names
 * one (scripts/test.sh starts it; the OSD cases stop and freeze its OSD,
 * so meson runs this test alone), else one started here and stopped at
 * the end; with the default sandbox (seccomp on):
 *   io:       read/write across object boundaries, flush, discard and
 *             write-zeroes read back as zeroes, 256 requests in flight on
 *             a ring of 1024
 *   mq:       4 queues on 2 iothreads, 256 requests in flight: writes
 *             and reads verified (completions handed between iothreads)
 *   snap:     POOL/IMAGE@SNAP serves the snapshot's data, read-only
 *   resize:   a shrunk image bounds requests by its new size at once, and
 *             the frontend gets CONFIG_CHANGE_MSG and reads the new capacity
 *   osd:      the OSD stopped and restarted under load: requests wait,
 *             complete, and every acknowledged write reads back
 *   timeout:  a frozen OSD: requests fail with IOERR after rbd-timeout,
 *             and the daemon serves again once the OSD thaws
 *   shutdown: SIGTERM with requests stuck in librbd exits within the
 *             timeout, cleanly
 *   takeover: vblkd SIGKILLed holding the exclusive lock and restarted:
 *             its first write does not wait for the dead watch to expire
 *   unreachable: no monitor at start: a clear error, bounded by rbd-timeout
 * Skipped (exit 77) where ceph-mon/ceph-osd are not installed.
 *
 * Usage: test_daemon_rbd PATH-TO-VBLKD PATH-TO-ceph-cluster.sh. Prints TAP.
 */
#include <endian.h>
#include <stdarg.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "common/compiler.h"
#include "tap.h"
#include "vblk_client.h"

#define MIB        (1ull << 20)
#define IMG_SIZE   (64 * MIB)
#define SECT       512u
#define TMO        20000        /* ms: a request that never completes fails the test */
#define WATCH_TMO  90000        /* ms: ... one that waits for a dead client's watch */
#define RBD_TMO    "3"          /* --rbd-timeout for the fault cases, seconds */
#define QD         256
#define QD_LEN     16384u

static const char *vblkd, *cluster_sh;
/* The image (and its snapshot), named for this process: a cluster shared
 * by the whole test run (VBLK_CEPH_CONF) holds other tests' images too. */
static char img[64], snap[80];
static bool shared;
static struct vblkd_proc dir;
static char conf[256], cdir[256], sock[256], log_path[256];
static uint8_t wbuf[4 * MIB], rbuf[4 * MIB];
static bool cluster_up;

/* Requests on queue 0 at byte offsets, TMO each (vblk_client.h). */
#define io(c, ...)          vblk_client_io_at(c, __VA_ARGS__, TMO)
#define wr(c, ...)          vblk_client_write_fill(c, __VA_ARGS__, TMO)
#define rd_check(c, ...)    vblk_client_read_check(c, __VA_ARGS__, TMO)
#define dwz(c, ...)         vblk_client_dwz_at(c, __VA_ARGS__, TMO)
#define sh(...)             fixture_sh(__VA_ARGS__)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void dump_log(void)
{
	vblkd_log_dump(log_path);
}

/* Wait (TMO at most) until @n requests on queue 0 are done; how many are. */
static unsigned wait_all(struct vblk_client *c, struct vblk_req *reqs, unsigned n)
{
	uint64_t end = now_ms() + TMO;
	unsigned first = 0;

	while (first < n && now_ms() < end) {
		if (reqs[first].done)
			first++;
		else
			vblk_client_wait(c, 0, &reqs[first], 100);
	}
	return first;
}

/* vblkd serving @spec on @path (extra args may be NULL), logging to @logp,
 * connected. */
/* Queues and iothreads of the next serve (test_mq changes them). */
static unsigned serve_queues = 1, serve_iothreads = 1;

static struct vblk_client *serve_on(struct vblkd_proc *p, const char *path, const char *logp,
				    const char *spec, const char *extra, unsigned queue_size)
{
	char rbd[128], cconf[300], qs[32], nq[32], nt[32];
	const char *args[] = { "--socket-path", path, rbd, cconf, "--rbd-timeout=" RBD_TMO,
			       qs, nq, nt, extra, NULL };
	/* As QEMU: with a backend channel (resize sends CONFIG_CHANGE_MSG). */
	struct vblk_client_opts o = { .queue_size = queue_size, .mem_size = 64 * MIB,
				      .backend_req = true, .num_queues = serve_queues };
	struct vblk_client *c = NULL;
	int ret;

	snprintf(rbd, sizeof(rbd), "--rbd=%s", spec);
	snprintf(cconf, sizeof(cconf), "--ceph-conf=%s", conf);
	snprintf(qs, sizeof(qs), "--queue-size=%u", queue_size ? queue_size : 256);
	snprintf(nq, sizeof(nq), "--num-queues=%u", serve_queues);
	snprintf(nt, sizeof(nt), "--iothreads=%u", serve_iothreads);
	*p = (struct vblkd_proc){ 0 };
	unlink(path);
	if (vblkd_proc_start_logged(p, vblkd, args, logp))
		tap_bail("cannot start %s", vblkd);
	ret = vblk_client_connect(path, &o, &c);
	if (ret) {
		diag("connect: %s", strerror(-ret));
		dump_log();
		tap_bail("vblkd does not serve %s", spec);
	}
	return c;
}

static struct vblk_client *serve(struct vblkd_proc *p, const char *spec, const char *extra,
				 unsigned queue_size)
{
	return serve_on(p, sock, log_path, spec, extra, queue_size);
}

static void stop(struct vblkd_proc *p, struct vblk_client *c, const char *what)
{
	char buf[64];
	int st;

	vblk_client_destroy(c);
	st = vblkd_proc_stop(p);
	ok(st == 0, "%s: vblkd exits cleanly (%s)", what, vblkd_proc_describe(p, buf, sizeof(buf)));
	if (st)
		dump_log();
}

/* ---- cases -------------------------------------------------------------- */

static void test_io(void)
{
	static struct vblk_req reqs[QD];
	struct vblkd_proc p;
	struct vblk_client *c = serve(&p, img, NULL, 1024);
	const struct virtio_blk_config *cfg = vblk_client_config(c);
	unsigned bad = 0, done;

	is(le64toh(cfg->capacity), IMG_SIZE / SECT, "io: capacity from the image");
	/* No --poll-mode: an rbd daemon waits for events (docs/operations.md). */
	is(vblkd_log_count(log_path, "poll mode event (the default with rbd)"), 1u,
	   "io: the default poll mode with rbd is event");
	/* 4 MiB objects: straddle the first boundary. */
	is(wr(c, 4 * MIB - 64 * 1024, 128 * 1024, 1), VIRTIO_BLK_S_OK, "io: write across objects");
	is(wr(c, 0, 4096, 2), VIRTIO_BLK_S_OK, "io: write at 0");
	is(wr(c, IMG_SIZE - 8192, 8192, 3), VIRTIO_BLK_S_OK, "io: write at the end");
	ok(rd_check(c, 4 * MIB - 64 * 1024, 128 * 1024, 1), "io: read across objects");
	ok(rd_check(c, 0, 4096, 2), "io: read at 0");
	ok(rd_check(c, IMG_SIZE - 8192, 8192, 3), "io: read at the end");
	is(io(c, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0), VIRTIO_BLK_S_OK, "io: flush");
	is(io(c, VIRTIO_BLK_T_IN, IMG_SIZE, NULL, 0, rbuf, 512), VIRTIO_BLK_S_IOERR,
	   "io: read past the end: IOERR");

	/* Discard and write-zeroes read back as zeroes; neighbours stay. */
	is(wr(c, 8 * MIB, 3 * MIB, 4), VIRTIO_BLK_S_OK, "dwz: write 3 MiB");
	is(dwz(c, VIRTIO_BLK_T_DISCARD, 8 * MIB + 4096, 1 * MIB), VIRTIO_BLK_S_OK, "dwz: discard");
	ok(rd_check(c, 8 * MIB + 4096, 1 * MIB, -1), "dwz: discarded range reads zeroes");
	is(dwz(c, VIRTIO_BLK_T_WRITE_ZEROES, 10 * MIB, 512 * 1024), VIRTIO_BLK_S_OK,
	   "dwz: write-zeroes");
	ok(rd_check(c, 10 * MIB, 512 * 1024, -1), "dwz: write-zeroes range reads zeroes");
	vblk_fill(wbuf, 3 * MIB, 4);
	if (io(c, VIRTIO_BLK_T_IN, 8 * MIB, NULL, 0, rbuf, 3 * MIB) == VIRTIO_BLK_S_OK)
		ok(!memcmp(rbuf, wbuf, 4096) &&
		   !memcmp(rbuf + MIB + 4096, wbuf + MIB + 4096, MIB - 4096) &&
		   !memcmp(rbuf + 2 * MIB + 512 * 1024, wbuf + 2 * MIB + 512 * 1024, 512 * 1024),
		   "dwz: the data around both ranges is intact");
	else
		ok(0, "dwz: read back");

	/* 256 writes in flight on a ring of 1024, then all read back. */
	for (unsigned i = 0; i < QD; i++) {
		vblk_fill(wbuf, QD_LEN, 100 + i);
		if (vblk_client_submit(c, 0, &reqs[i], VIRTIO_BLK_T_OUT,
				       (16 * MIB + (uint64_t)i * QD_LEN) / SECT, wbuf, QD_LEN, 0, 0))
			bad++;
	}
	vblk_client_kick(c, 0, true);
	done = wait_all(c, reqs, QD);
	is(done, QD, "qd%u: every write completes", QD);
	for (unsigned i = 0; i < QD; i++)
		bad += !reqs[i].done || *reqs[i].status != VIRTIO_BLK_S_OK;
	is(bad, 0u, "qd%u: every write completes OK", QD);
	bad = 0;
	for (unsigned i = 0; i < QD; i++)
		bad += !rd_check(c, 16 * MIB + (uint64_t)i * QD_LEN, QD_LEN, (int)(100 + i));
	is(bad, 0u, "qd%u: every write reads back", QD);
	stop(&p, c, "io");
}

static void test_snap(void)
{
	struct vblkd_proc p;
	struct vblk_client *c;
	const struct virtio_blk_config *cfg;

	c = serve(&p, img, NULL, 0);
	is(wr(c, MIB, 64 * 1024, 7), VIRTIO_BLK_S_OK, "snap: write A");
	stop(&p, c, "snap: writer");
	ok(sh("rbd -c %s snap create %s", conf, snap) == 0, "snap: rbd snap create");
	c = serve(&p, img, NULL, 0);
	is(wr(c, MIB, 64 * 1024, 8), VIRTIO_BLK_S_OK, "snap: write B over A on the image");
	stop(&p, c, "snap: writer 2");

	c = serve(&p, snap, NULL, 0);
	cfg = vblk_client_config(c);
	ok(vblk_client_offered(c) & (1ull << VIRTIO_BLK_F_RO), "snap: offered read-only");
	is(le64toh(cfg->capacity), IMG_SIZE / SECT, "snap: capacity");
	ok(rd_check(c, MIB, 64 * 1024, 7), "snap: reads A, the snapshot's data");
	is(wr(c, 0, 4096, 9), VIRTIO_BLK_S_IOERR, "snap: a write fails");
	stop(&p, c, "snap");

	c = serve(&p, img, "--read-only", 0);
	ok(vblk_client_offered(c) & (1ull << VIRTIO_BLK_F_RO), "read-only: offered read-only");
	ok(rd_check(c, MIB, 64 * 1024, 8), "read-only: reads B, the image's data");
	is(wr(c, 0, 4096, 9), VIRTIO_BLK_S_IOERR, "read-only: a write fails");
	stop(&p, c, "read-only");
}

static void test_resize(void)
{
	struct vblkd_proc p;
	struct vblk_client *c = serve(&p, img, NULL, 0);
	uint64_t end;

	is(wr(c, 40 * MIB, 4096, 11), VIRTIO_BLK_S_OK, "resize: write at 40 MiB");
	ok(sh("rbd -c %s resize --allow-shrink --size 32M %s >/dev/null 2>&1", conf, img) == 0,
	   "resize: rbd resize to 32 MiB");
	end = now_ms() + TMO;
	while (!vblkd_log_count(log_path, "resized from 67108864 to 33554432") && now_ms() < end)
		usleep(50000);
	ok(vblkd_log_count(log_path, "resized from 67108864 to 33554432"),
	   "resize: the daemon logs the new size");
	is(vblk_client_backend_take(vblk_client_backend_fd(c), TMO),
	   VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, "resize: the frontend gets CONFIG_CHANGE_MSG");
	ok(vblk_client_refresh_config(c) == 0 &&
	   le64toh(vblk_client_config(c)->capacity) == 32 * MIB / SECT,
	   "resize: the config space says 32 MiB");
	is(wr(c, 40 * MIB, 4096, 11), VIRTIO_BLK_S_IOERR, "resize: a write past the new end fails");
	is(wr(c, 16 * MIB, 4096, 12), VIRTIO_BLK_S_OK, "resize: a write below it works");
	ok(sh("rbd -c %s resize --size 64M %s >/dev/null 2>&1", conf, img) == 0,
	   "resize: grow back to 64 MiB");
	end = now_ms() + TMO;
	while (!vblkd_log_count(log_path, "resized from 33554432 to 67108864") && now_ms() < end)
		usleep(50000);
	is(vblk_client_backend_take(vblk_client_backend_fd(c), TMO),
	   VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, "resize: CONFIG_CHANGE_MSG again on growth");
	ok(vblk_client_refresh_config(c) == 0 &&
	   le64toh(vblk_client_config(c)->capacity) == IMG_SIZE / SECT,
	   "resize: the config space says 64 MiB again");
	is(wr(c, 40 * MIB, 4096, 13), VIRTIO_BLK_S_OK, "resize: writes at 40 MiB work again");
	ok(rd_check(c, 40 * MIB, 4096, 13), "resize: and read back");
	stop(&p, c, "resize");
}

/*
 * Several queues on several iothreads: every iothread submits to the one
 * image, whose completions all arrive at the first one (its "home" chan)
 * and are handed to the others lock-free. 4 queues on 2 iothreads, rings
 * of 1024, 64 requests in flight per queue (256 in all): three rounds of
 * writes over the same blocks, then reads of all in flight, checked.
 */
#define MQ_Q     4u
#define MQ_DEPTH 64u
#define MQ_LEN   16384u
#define MQ_BASE  (32 * MIB)

static uint64_t mq_off(unsigned q, unsigned i)
{
	return MQ_BASE + ((uint64_t)q * MQ_DEPTH + i) * MQ_LEN;
}

/* Submit @type to every slot of every queue, kick, wait: how many OK. */
static unsigned mq_round(struct vblk_client *c, struct vblk_req (*reqs)[MQ_DEPTH],
			 uint32_t type, unsigned seed)
{
	unsigned okc = 0;

	for (unsigned q = 0; q < MQ_Q; q++) {
		for (unsigned i = 0; i < MQ_DEPTH; i++) {
			bool w = type == VIRTIO_BLK_T_OUT;

			if (w)
				vblk_fill(wbuf, MQ_LEN, seed + q * MQ_DEPTH + i);
			if (vblk_client_submit(c, q, &reqs[q][i], type, mq_off(q, i) / SECT,
					       w ? wbuf : NULL, w ? MQ_LEN : 0, w ? 0 : MQ_LEN, 0))
				diag("mq: submit q%u #%u failed", q, i);
		}
		vblk_client_kick(c, q, true);
	}
	for (unsigned q = 0; q < MQ_Q; q++) {
		uint64_t end = now_ms() + TMO;

		for (unsigned i = 0; i < MQ_DEPTH; i++) {
			while (!reqs[q][i].done && now_ms() < end)
				vblk_client_wait(c, q, &reqs[q][i], 100);
			okc += reqs[q][i].done && *reqs[q][i].status == VIRTIO_BLK_S_OK;
		}
	}
	return okc;
}

static void test_mq(void)
{
	static struct vblk_req reqs[MQ_Q][MQ_DEPTH];
	struct vblkd_proc p;
	struct vblk_client *c;
	unsigned bad = 0;

	serve_queues = MQ_Q;
	serve_iothreads = 2;
	c = serve(&p, img, NULL, 1024);
	serve_queues = serve_iothreads = 1;
	for (unsigned r = 0; r < 3; r++)
		is(mq_round(c, reqs, VIRTIO_BLK_T_OUT, 1000 * (r + 1)), MQ_Q * MQ_DEPTH,
		   "mq: round %u: %u writes on %u queues, 2 iothreads, all OK", r + 1,
		   MQ_Q * MQ_DEPTH, MQ_Q);
	is(mq_round(c, reqs, VIRTIO_BLK_T_IN, 0), MQ_Q * MQ_DEPTH,
	   "mq: %u reads in flight on %u queues, all OK", MQ_Q * MQ_DEPTH, MQ_Q);
	for (unsigned q = 0; q < MQ_Q; q++) {
		for (unsigned i = 0; i < MQ_DEPTH; i++) {
			vblk_fill(wbuf, MQ_LEN, 3000 + q * MQ_DEPTH + i);
			bad += !reqs[q][i].done || memcmp(reqs[q][i].in_data, wbuf, MQ_LEN);
		}
	}
	is(bad, 0u, "mq: every block reads back as the last round wrote it");
	stop(&p, c, "mq");
}

/* The OSD stopped (SIGTERM) and started again with 64 writes in flight. */
static void test_osd_restart(void)
{
	static struct vblk_req reqs[64];
	struct vblkd_proc p;
	/* Longer than the OSD's restart: requests wait instead of failing. */
	struct vblk_client *c = serve(&p, img, "--rbd-timeout=60", 1024);
	unsigned bad = 0, acked = 0;

	/* Acknowledged writes before the stop... */
	for (unsigned i = 0; i < 16; i++)
		bad += wr(c, 20 * MIB + i * 65536ull, 65536, 200 + i) != VIRTIO_BLK_S_OK;
	/* ...and a batch in flight while the OSD goes down and comes back. */
	for (unsigned i = 0; i < 64; i++) {
		vblk_fill(wbuf, 65536, 300 + i);
		bad += vblk_client_submit(c, 0, &reqs[i], VIRTIO_BLK_T_OUT,
					  (24 * MIB + i * 65536ull) / SECT, wbuf, 65536, 0, 0) != 0;
	}
	vblk_client_kick(c, 0, true);
	ok(sh("%s osd-stop %s TERM", cluster_sh, cdir) == 0, "osd: stopped under load");
	ok(sh("%s osd-start %s >/dev/null", cluster_sh, cdir) == 0, "osd: started again");
	wait_all(c, reqs, 64);
	for (unsigned i = 0; i < 64; i++)
		acked += reqs[i].done && *reqs[i].status == VIRTIO_BLK_S_OK;
	is(acked, 64u, "osd: every write in flight completes OK");
	for (unsigned i = 0; i < 16; i++)
		bad += !rd_check(c, 20 * MIB + i * 65536ull, 65536, (int)(200 + i));
	for (unsigned i = 0; i < 64; i++)
		bad += reqs[i].done && !rd_check(c, 24 * MIB + i * 65536ull, 65536, (int)(300 + i));
	if (!ok(bad == 0, "osd: every acknowledged write reads back (%u bad)", bad))
		dump_log();
	stop(&p, c, "osd");
}

static void test_timeout(void)
{
	struct vblkd_proc p;
	struct vblk_client *c = serve(&p, img, NULL, 0);
	struct vblk_req r;
	uint64_t t0, dt;
	char buf[64];
	int st;

	is(wr(c, 0, 4096, 20), VIRTIO_BLK_S_OK, "timeout: write before");
	ok(sh("%s osd-stop %s STOP", cluster_sh, cdir) == 0, "timeout: OSD frozen (SIGSTOP)");
	t0 = now_ms();
	is(wr(c, 4096, 4096, 21), VIRTIO_BLK_S_IOERR, "timeout: a write fails with IOERR");
	dt = now_ms() - t0;
	ok(dt >= 2000, "timeout: after about rbd-timeout (%llu ms)", (unsigned long long)dt);
	is(io(c, VIRTIO_BLK_T_IN, 0, NULL, 0, rbuf, 4096), VIRTIO_BLK_S_IOERR,
	   "timeout: a read fails with IOERR");
	ok(vblkd_log_count(log_path, "request timed out"), "timeout: the log says why");
	ok(sh("%s osd-stop %s CONT", cluster_sh, cdir) == 0, "timeout: OSD thawed");
	is(wr(c, 8192, 4096, 22), VIRTIO_BLK_S_OK, "timeout: writes work again");
	ok(rd_check(c, 0, 4096, 20) && rd_check(c, 8192, 4096, 22),
	   "timeout: data written around the outage reads back");

	/* Shutdown with a request stuck in librbd. */
	ok(sh("%s osd-stop %s STOP", cluster_sh, cdir) == 0, "shutdown: OSD frozen");
	vblk_fill(wbuf, 4096, 23);
	ok(vblk_client_submit(c, 0, &r, VIRTIO_BLK_T_OUT, 16, wbuf, 4096, 0, 0) == 0 &&
	   vblk_client_kick(c, 0, true) == 0, "shutdown: a write in flight");
	usleep(300000);
	t0 = now_ms();
	kill(p.pid, SIGTERM);
	while (vblkd_proc_alive(&p) && now_ms() - t0 < 15000)
		usleep(20000);
	dt = now_ms() - t0;
	st = p.exited ? p.wstatus : -1;
	if (!ok(p.exited && dt < 10000, "shutdown: exits within its timeout (%llu ms)",
		(unsigned long long)dt))
		dump_log();
	ok(st == 0, "shutdown: cleanly (%s)", vblkd_proc_describe(&p, buf, sizeof(buf)));
	if (st)
		dump_log();
	sh("%s osd-stop %s CONT", cluster_sh, cdir);
	vblkd_proc_stop(&p);
	vblk_client_destroy(c);
}

/*
 * vblkd SIGKILLed while it owns the image's exclusive lock, restarted on
 * the same socket: its first write must not wait for the dead client's
 * watch to expire (30 s, longer than TMO): the restarted daemon breaks
 * the lock of its recorded predecessor. A live owner on another socket
 * is asked for the lock as librbd does, never broken.
 */
static void test_takeover(void)
{
	struct vblkd_proc p, p2;
	struct vblk_client *c, *c2;
	char sock2[256], log2[256];
	uint8_t status;
	int ret;

	c = serve(&p, img, NULL, 0);
	is(wr(c, 2 * MIB, 65536, 30), VIRTIO_BLK_S_OK, "takeover: write (the lock is taken)");
	kill(p.pid, SIGKILL);
	while (vblkd_proc_alive(&p))
		usleep(10000);
	vblk_client_destroy(c);
	c = serve(&p, img, NULL, 0);
	is(wr(c, 3 * MIB, 65536, 31), VIRTIO_BLK_S_OK,
	   "takeover: after SIGKILL and restart, a write completes");
	ok(vblkd_log_count(log_path, "breaking the exclusive lock"),
	   "takeover: the restarted vblkd broke its predecessor's lock");
	ok(rd_check(c, 2 * MIB, 65536, 30) && rd_check(c, 3 * MIB, 65536, 31),
	   "takeover: both writes read back");

	/* Another vblkd on another socket: it gets the lock from the live
	 * owner (which hands it over), breaking nothing. */
	vblkd_proc_path(&dir, "d2.sock", sock2, sizeof(sock2));
	vblkd_proc_path(&dir, "vblkd2.log", log2, sizeof(log2));
	c2 = serve_on(&p2, sock2, log2, img, NULL, 0);
	is(wr(c2, 4 * MIB, 65536, 32), VIRTIO_BLK_S_OK, "takeover: a second vblkd writes too");
	is(vblkd_log_count(log2, "breaking the exclusive lock"), 0u,
	   "takeover: ... without breaking the live owner's lock");
	is(wr(c, 5 * MIB, 65536, 33), VIRTIO_BLK_S_OK, "takeover: the first one writes again");
	ok(rd_check(c2, 5 * MIB, 65536, 33) && rd_check(c, 4 * MIB, 65536, 32),
	   "takeover: each reads what the other wrote");

	/* The first one dies holding the lock: the second one is not its
	 * successor on its socket, so librbd breaks that lock itself once
	 * the dead watch expires (osd_client_watch_timeout, 30 s), in the
	 * sandbox of a daemon that never broke a lock before. */
	is(wr(c, 6 * MIB, 65536, 34), VIRTIO_BLK_S_OK, "takeover: the first one takes the lock");
	kill(p.pid, SIGKILL);
	while (vblkd_proc_alive(&p))
		usleep(10000);
	vblk_client_destroy(c);
	vblk_fill(wbuf, 65536, 35);
	status = 0xff;
	ret = vblk_client_io(c2, 0, VIRTIO_BLK_T_OUT, 7 * MIB / SECT, wbuf, 65536, NULL, 0, 0,
			     WATCH_TMO, &status, NULL);
	ok(ret == 0 && status == VIRTIO_BLK_S_OK,
	   "takeover: a write waits for librbd to break a dead stranger's lock (%s, status %u)",
	   strerror(-ret), status);
	if (!ok(vblkd_proc_alive(&p2), "takeover: ... and the sandbox lets it"))
		dump_log();
	ok(rd_check(c2, 6 * MIB, 65536, 34) && rd_check(c2, 7 * MIB, 65536, 35),
	   "takeover: the dead one's last write and the new one read back");
	stop(&p2, c2, "takeover");
}

static void test_unreachable(void)
{
	char bad_conf[300];
	char rbd[128];
	const char *args[] = { "--socket-path", sock, rbd, bad_conf, "--rbd-timeout=2", NULL };
	struct vblkd_proc p = { 0 };
	uint64_t t0 = now_ms(), dt;

	snprintf(rbd, sizeof(rbd), "--rbd=%s", img);
	vblkd_proc_path(&dir, "dead.conf", bad_conf + 12, sizeof(bad_conf) - 12);
	memcpy(bad_conf, "--ceph-conf=", 12);
	/* A monitor address nothing listens on. */
	if (sh("sed 's/^mon host = .*/mon host = v2:127.0.0.1:9/' %s > %s", conf,
	       bad_conf + 12))
		tap_bail("cannot write %s", bad_conf + 12);
	if (vblkd_proc_start_logged(&p, vblkd, args, log_path))
		tap_bail("cannot start %s", vblkd);
	while (vblkd_proc_alive(&p) && now_ms() - t0 < 30000)
		usleep(20000);
	dt = now_ms() - t0;
	ok(p.exited && WIFEXITED(p.wstatus) && WEXITSTATUS(p.wstatus) == 1,
	   "unreachable: vblkd exits 1 (status %#x)", p.wstatus);
	ok(dt < 15000, "unreachable: within rbd-timeout and slack (%llu ms)",
	   (unsigned long long)dt);
	ok(vblkd_log_count(log_path, "cannot connect to the Ceph cluster"),
	   "unreachable: says it cannot connect");
	if (!p.exited)
		vblkd_proc_stop(&p);
}

static bool want(int argc, char **argv, const char *name)
{
	return argc < 4 || strstr(argv[3], name);
}

/*
 * At any exit, bail-outs too: no daemon of our own cluster outlives the
 * test; a shared one is left as found (OSD thawed and up), less our image.
 */
static void cluster_stop(void)
{
	if (!cluster_up)
		return;
	cluster_up = false;
	if (shared) {
		sh("%s osd-stop %s CONT; %s status %s || %s osd-start %s >/dev/null", cluster_sh,
		   cdir, cluster_sh, cdir, cluster_sh, cdir);
		sh("rbd -c %s snap purge %s >/dev/null 2>&1; rbd -c %s rm --no-progress %s "
		   ">/dev/null 2>&1", conf, img, conf, img);
		/* The takeover records (storage_rbd_claim) of daemons killed. */
		sh("rados -c %s -p rbd ls | grep '^vblk_owner\\.%s\\.' | "
		   "xargs -r -n1 rados -c %s -p rbd rm", conf, strchr(img, '/') + 1, conf);
	} else {
		sh("%s osd-stop %s CONT; %s stop %s", cluster_sh, cdir, cluster_sh, cdir);
	}
	vblkd_proc_cleanup(&dir);
}

int main(int argc, char **argv)
{
	const char *env_conf = getenv("VBLK_CEPH_CONF");

	if (argc < 3)
		tap_bail("usage: %s PATH-TO-VBLKD PATH-TO-ceph-cluster.sh", argv[0]);
	vblkd = argv[1];
	cluster_sh = argv[2];
	if (access("/usr/bin/ceph-mon", X_OK) || access("/usr/bin/ceph-osd", X_OK) ||
	    access("/usr/bin/rbd", X_OK))
		tap_skip_all("ceph-mon, ceph-osd or rbd not installed (scripts/install-deps.sh)");
	if (vblkd_proc_init(&dir))
		tap_bail("mkdtemp");
	snprintf(img, sizeof(img), "rbd/vblk-func-%d", (int)getpid());
	snprintf(snap, sizeof(snap), "%s@s1", img);
	/* The run's cluster (scripts/test.sh): DIR/ceph.conf of ceph-cluster.sh. */
	shared = env_conf && *env_conf;
	if (shared) {
		const char *slash = strrchr(env_conf, '/');

		if (!slash || strlen(env_conf) >= sizeof(conf))
			tap_bail("VBLK_CEPH_CONF=%s is not DIR/ceph.conf", env_conf);
		snprintf(conf, sizeof(conf), "%s", env_conf);
		snprintf(cdir, sizeof(cdir), "%.*s", (int)(slash - env_conf), env_conf);
		diag("the run's Ceph cluster: %s", conf);
	} else {
		vblkd_proc_path(&dir, "ceph", cdir, sizeof(cdir));
		vblkd_proc_path(&dir, "ceph/ceph.conf", conf, sizeof(conf));
	}
	vblkd_proc_path(&dir, "d.sock", sock, sizeof(sock));
	vblkd_proc_path(&dir, "vblkd.log", log_path, sizeof(log_path));
	cluster_up = true;
	atexit(cluster_stop);
	if (shared ? sh("%s status %s", cluster_sh, cdir) : sh("%s start %s >/dev/null", cluster_sh, cdir))
		tap_bail("no Ceph cluster in %s", cdir);
	if (sh("rbd -c %s create --size 64M %s", conf, img))
		tap_bail("rbd create failed");

	/* argv[3], for debugging: the cases to run ("io,osd"); default all. */
	if (want(argc, argv, "io"))
		test_io();
	if (want(argc, argv, "snap"))
		test_snap();
	if (want(argc, argv, "resize"))
		test_resize();
	if (want(argc, argv, "mq"))
		test_mq();
	if (want(argc, argv, "osd"))
		test_osd_restart();
	if (want(argc, argv, "timeout"))
		test_timeout();
	if (want(argc, argv, "takeover"))
		test_takeover();
	if (want(argc, argv, "unreachable"))
		test_unreachable();

	cluster_stop();
	return tap_done();
}
