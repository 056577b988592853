/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_frontends.c - vblkd against the message sequences of
 * frontends other than QEMU, and against frontends that stall:
 *  - SPDK virtio-user, DPDK virtio_user, the rust-vmm vhost crate as
 *    cloud-hypervisor drives it, crosvm, and a frontend without protocol features
 *    each attach, serve I/O on every queue, stop their way and (where the
 *    frontend does) start again on the same connection (vblk_client.c
 *    replays each sequence; its comments name the source);
 *  - a ring size above --queue-size is refused with a NACK, the
 *    connection stays;
 *  - with VBLKD_MSG_TIMEOUT_MS=500 on a second daemon: a frontend that
 *    stops half-way through a message, or never reads its replies, is
 *    disconnected and the export serves the next frontend; one that is
 *    merely idle between messages stays connected.
 * Both daemons run as built (sandbox on), and must exit 0 on SIGTERM.
 *
 * Usage: test_daemon_frontends PATH-TO-VBLKD. Prints TAP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <endian.h>
#include <poll.h>
#include <linux/virtio_config.h>

#include "common/compiler.h"
#include "tap.h"
#include "vblk_client.h"

#define IMG_SIZE     (64ull << 20)
#define TMO          5000      /* ms: anything that should happen */
#define STALL_MS     500       /* VBLKD_MSG_TIMEOUT_MS of the second daemon */

static struct vblkd_proc proc, proc_t;
static char sock[256], sock_t[256];

static void require_alive(struct vblkd_proc *p)
{
	char how[96];

	if (!vblkd_proc_alive(p))
		tap_bail("vblkd died: %s", vblkd_proc_describe(p, how, sizeof(how)));
}

/* ---- other frontends' sequences -------------------------------------------- */

struct flavor_case {
	const char *name;
	struct vblk_client_opts o;
	bool restarts;          /* the frontend starts again after its stop */
};

static const struct flavor_case flavors[] = {
	/* bdevperf's default vq_size is 512; one request queue. */
	{ "SPDK virtio-user, split ring of 512",
	  { .flavor = VBLK_FLAVOR_SPDK, .queue_size = 512 }, false },
	{ "SPDK virtio-user, 2 queues of 256",
	  { .flavor = VBLK_FLAVOR_SPDK, .num_queues = 2, .queue_size = 256 }, false },
	{ "DPDK virtio_user, RESET_OWNER stop and restart",
	  { .flavor = VBLK_FLAVOR_DPDK, .num_queues = 2, .queue_size = 256 }, true },
	{ "DPDK virtio_user, packed ring",
	  { .flavor = VBLK_FLAVOR_DPDK, .packed = true, .queue_size = 1024 }, true },
	{ "rust-vmm Frontend, ADD_MEM_REG only, 20 regions",
	  { .flavor = VBLK_FLAVOR_RUST_VMM, .num_queues = 2, .queue_size = 1024,
	    .region_size = 512u << 10 }, true },
	{ "rust-vmm Frontend, packed ring",
	  { .flavor = VBLK_FLAVOR_RUST_VMM, .packed = true, .queue_size = 256 }, true },
	{ "crosvm, 2 queues of 256, config read field by field",
	  { .flavor = VBLK_FLAVOR_CROSVM, .num_queues = 2, .queue_size = 256 }, true },
	{ "crosvm, packed ring of 1024",
	  { .flavor = VBLK_FLAVOR_CROSVM, .packed = true, .queue_size = 1024 }, true },
	{ "no protocol features",
	  { .flavor = VBLK_FLAVOR_LEGACY, .queue_size = 128 }, false },
};

static bool all_queues_serve(struct vblk_client *c, uint64_t seed)
{
	bool good = true;

	for (unsigned q = 0; q < vblk_client_num_queues(c); q++)
		good &= vblk_client_rw_check(c, q, seed + q, 0, TMO) &&
			vblk_client_rw_check(c, q, seed + 100 + q, VBLK_REQ_INDIRECT, TMO);
	return good;
}

static void test_flavor(const struct flavor_case *fc, uint64_t seed)
{
	struct vblk_client_opts o = fc->o;
	struct vblk_client *c = NULL;
	int ret;

	if (!o.mem_size)
		o.mem_size = 10u << 20;
	ret = vblk_client_connect(sock, &o, &c);
	if (!ok(ret == 0, "%s: attaches", fc->name)) {
		diag("connect: %s", strerror(-ret));
		require_alive(&proc);
		return;
	}
	/* (DPDK's net driver and the legacy frontend do not read it.) */
	if (o.flavor != VBLK_FLAVOR_LEGACY && o.flavor != VBLK_FLAVOR_DPDK)
		is(le64toh(vblk_client_config(c)->capacity), IMG_SIZE / 512,
		   "%s: config space read", fc->name);
	/* crosvm writes the cache mode before its first SET_FEATURES. */
	if (o.flavor == VBLK_FLAVOR_CROSVM)
		is(vblk_client_config(c)->wce, 0,
		   "%s: write cache turned off before SET_FEATURES stays off", fc->name);
	ok(all_queues_serve(c, seed), "%s: every queue serves", fc->name);
	is(vblk_client_stop(c), 0, "%s: stops its way", fc->name);
	if (fc->restarts) {
		is(vblk_client_restart(c), 0, "%s: starts again on the same connection",
		   fc->name);
		ok(all_queues_serve(c, seed + 1000), "%s: every queue serves again", fc->name);
		is(vblk_client_stop(c), 0, "%s: stops again", fc->name);
	}
	vblk_client_destroy(c);
	require_alive(&proc);
}

/* ---- ring sizes -------------------------------------------------------------- */

static void test_ring_too_big(void)
{
	/* Only queue 0 is set up; queue 1 of the 2-queue export is free. */
	struct vblk_client_opts o = { .num_queues = 1, .queue_size = 256 };
	struct vblk_client *c = NULL;
	struct vhost_frontend *f;

	if (!ok(vblk_client_connect(sock, &o, &c) == 0, "ring size: connect"))
		return;
	f = vblk_client_frontend(c);
	is(vhost_frontend_set_vring_num(f, 1, 2048), -EIO,
	   "SET_VRING_NUM 2048 (above --queue-size 1024) is NACKed");
	is(vhost_frontend_set_vring_num(f, 1, 768), -EIO,
	   "SET_VRING_NUM 768 (split, not a power of two) is NACKed");
	ok(vblk_client_rw_check(c, 0, 7, 0, TMO), "the connection still serves I/O");
	vblk_client_destroy(c);
	require_alive(&proc);
}

/* ---- stalled frontends ----------------------------------------------------- */

/* A fresh frontend can attach to the stall daemon and do I/O. */
static bool stall_export_serves(uint64_t seed)
{
	struct vblk_client_opts o = { .queue_size = 64, .mem_size = 2u << 20 };
	struct vblk_client *c = NULL;
	bool good;

	if (vblk_client_connect(sock_t, &o, &c))
		return false;
	good = vblk_client_rw_check(c, 0, seed, 0, TMO);
	vblk_client_destroy(c);
	return good;
}

enum stall { STALL_HEADER, STALL_PAYLOAD, STALL_PAYLOAD_FD, STALL_REPLIES, STALL_COUNT };

static const char *const stall_names[STALL_COUNT] = {
	[STALL_HEADER] = "6 of 12 header bytes",
	[STALL_PAYLOAD] = "header and 4 of 8 payload bytes",
	[STALL_PAYLOAD_FD] = "SET_MEM_TABLE header and 8 of 40 payload bytes, with its fd",
	[STALL_REPLIES] = "requests whose replies are never read",
};

static void send_stall(int fd, enum stall st)
{
	struct vhost_msg_hdr h = { .request = VHOST_USER_GET_FEATURES,
				   .flags = VHOST_USER_VERSION };
	uint8_t payload[8] = { 1 };     /* SET_MEM_TABLE: nregions 1 */
	int efd;

	switch (st) {
	case STALL_HEADER:
		if (send(fd, &h, 6, MSG_NOSIGNAL) != 6)
			diag("send: %s", strerror(errno));
		break;
	case STALL_PAYLOAD:
		/* vhost_msg_send writes the bytes given, whatever h.size says. */
		h.request = VHOST_USER_SET_VRING_NUM;
		h.size = 8;
		vhost_msg_send(fd, &h, payload, 4, NULL, 0);
		break;
	case STALL_PAYLOAD_FD:
		h.request = VHOST_USER_SET_MEM_TABLE;
		h.size = 8 + 32;
		efd = eventfd(0, EFD_CLOEXEC);
		vhost_msg_send(fd, &h, payload, 8, &efd, 1);
		close(efd);
		break;
	case STALL_REPLIES:
		/* Until the socket is full both ways: the daemon then has a reply
		 * it cannot send and reads no more requests. */
		for (;;) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			if (send(fd, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(h))
				continue;
			if (errno != EAGAIN || poll(&pfd, 1, 500) <= 0)
				break;  /* not writable for 0.5 s: the daemon stopped reading */
		}
		break;
	case STALL_COUNT:
		break;
	}
}

static void test_stall(enum stall st)
{
	struct vhost_frontend *f = NULL;
	int fds0 = vblkd_proc_fd_count_stable(&proc_t), ret;
	bool closed;

	ret = vhost_frontend_connect(sock_t, &f);
	if (!ok(ret == 0, "%s: connect", stall_names[st]))
		return;
	send_stall(vhost_frontend_fd(f), st);
	/* Wait well past the timeout before looking: reading the replies
	 * would unblock the daemon. */
	usleep(4 * STALL_MS * 1000);
	closed = vblk_sock_closed_by_peer(vhost_frontend_fd(f), TMO);
	ok(closed, "%s: the daemon closes the stalled connection", stall_names[st]);
	vhost_frontend_destroy(f);
	ok(stall_export_serves(st), "%s: the export serves the next frontend", stall_names[st]);
	/* The fd that came with half a message is closed with it. */
	is(vblkd_proc_fd_count_settles(&proc_t, fds0), fds0, "%s: no fd left behind in the daemon",
	   stall_names[st]);
	require_alive(&proc_t);
}

static void test_idle_stays(void)
{
	struct vblk_client_opts o = { .queue_size = 64, .mem_size = 2u << 20 };
	struct vblk_client *c = NULL;

	if (!ok(vblk_client_connect(sock_t, &o, &c) == 0, "idle: connect"))
		return;
	/* Idle between messages for 5 timeouts: legitimate, never cut. */
	usleep(5 * STALL_MS * 1000);
	ok(vblk_client_rw_check(c, 0, 42, 0, TMO), "idle between messages: still serves I/O");
	ok(vhost_frontend_get_features(vblk_client_frontend(c), &(uint64_t){ 0 }) == 0,
	   "idle between messages: still answers messages");
	vblk_client_destroy(c);
}

/*
 * A slow but steady frontend: for 3 timeouts, every write ends in the
 * middle of a message, yet each message completes well within the
 * timeout (a tenth of it).
 * The time limit is per message, so the connection stays.
 */
static void test_slow_stream(void)
{
	enum { N = 30 };
	struct vhost_msg_hdr h[N + 1];
	struct vhost_frontend *f = NULL;
	const uint8_t *p = (const uint8_t *)h;
	size_t half = sizeof(h[0]) / 2, off = 0, total = N * sizeof(h[0]);
	unsigned got = 0;
	bool sent = true;

	for (unsigned i = 0; i < N; i++)
		h[i] = (struct vhost_msg_hdr){ .request = VHOST_USER_GET_FEATURES,
					       .flags = VHOST_USER_VERSION };
	if (!ok(vhost_frontend_connect(sock_t, &f) == 0, "slow stream: connect"))
		return;
	vhost_frontend_set_timeout(f, TMO);
	while (off < total && sent) {
		size_t len = off == 0 ? half : MIN(sizeof(h[0]), total - off);

		sent = send(vhost_frontend_fd(f), p + off, len, MSG_NOSIGNAL) == (ssize_t)len;
		off += len;
		usleep(STALL_MS * 1000 / 10);
	}
	ok(sent, "slow stream: %u messages sent over %u ms, each write ending mid-message", N,
	   N * STALL_MS / 10);
	for (; got < N; got++) {
		struct vhost_msg m;

		if (vhost_frontend_recv(f, &m) || m.hdr.request != VHOST_USER_GET_FEATURES)
			break;
	}
	is(got, N, "slow stream: every message answered, the connection stayed");
	vhost_frontend_destroy(f);
	require_alive(&proc_t);
}

/* ---- main ---------------------------------------------------------------------- */

static void cleanup_at_exit(void)
{
	vblkd_proc_cleanup(&proc);
	vblkd_proc_cleanup(&proc_t);
}

static void stop_daemon(struct vblkd_proc *p, const char *what)
{
	char how[96];
	int st = vblkd_proc_stop(p);

	ok(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s exits 0 on SIGTERM", what);
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		diag("vblkd %s", st < 0 ? strerror(-st) : vblkd_proc_describe(p, how, sizeof(how)));
}

int main(int argc, char **argv)
{
	char img[256], img_t[256], a_sock[300], a_file[300], t_sock[300], t_file[300];
	const char *args[] = { a_sock, a_file, "--num-queues=2", NULL };
	const char *args_t[] = { t_sock, t_file, NULL };
	char env[32];

	if (argc < 2)
		tap_bail("usage: %s PATH-TO-VBLKD", argv[0]);
	if (vblkd_proc_init(&proc) || vblkd_proc_init(&proc_t))
		tap_bail("mkdtemp");
	atexit(cleanup_at_exit);
	vblkd_proc_path(&proc, "disk.sock", sock, sizeof(sock));
	vblkd_proc_path(&proc, "disk.img", img, sizeof(img));
	vblkd_proc_path(&proc_t, "stall.sock", sock_t, sizeof(sock_t));
	vblkd_proc_path(&proc_t, "stall.img", img_t, sizeof(img_t));
	if (fixture_image(img, IMG_SIZE) || fixture_image(img_t, IMG_SIZE))
		tap_bail("images in %s", proc.dir);
	snprintf(a_sock, sizeof(a_sock), "--socket-path=%s", sock);
	snprintf(a_file, sizeof(a_file), "--file=%s", img);
	snprintf(t_sock, sizeof(t_sock), "--socket-path=%s", sock_t);
	snprintf(t_file, sizeof(t_file), "--file=%s", img_t);
	if (vblkd_proc_start(&proc, argv[1], args))
		tap_bail("cannot start %s", argv[1]);
	snprintf(env, sizeof(env), "%d", STALL_MS);
	setenv("VBLKD_MSG_TIMEOUT_MS", env, 1);
	if (vblkd_proc_start(&proc_t, argv[1], args_t))
		tap_bail("cannot start %s", argv[1]);
	unsetenv("VBLKD_MSG_TIMEOUT_MS");

	for (unsigned i = 0; i < ARRAY_SIZE(flavors); i++)
		test_flavor(&flavors[i], 1000 * (i + 1));
	test_ring_too_big();

	test_idle_stays();
	test_slow_stream();
	for (unsigned st = 0; st < STALL_COUNT; st++)
		test_stall(st);

	stop_daemon(&proc, "vblkd");
	stop_daemon(&proc_t, "vblkd with VBLKD_MSG_TIMEOUT_MS");
	return tap_done();
}
