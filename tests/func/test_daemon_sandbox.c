/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_sandbox.c - vblkd serves with its seccomp sandbox on (the
 * default) and, when the test runs as root, as user nobody: handshake,
 * every request type, a reconnect, a clean SIGTERM exit; /proc shows
 * Seccomp: 2, NoNewPrivs: 1 and a non-root Uid. --sandbox=off and =log,
 * and bad --sandbox / --user values. (That a forbidden call kills the
 * process is tests/unit/daemon/test_sandbox.c: vblkd has no way to make
 * one on purpose.)
 *
 * Usage: test_daemon_sandbox PATH-TO-VBLKD. Prints TAP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "tap.h"
#include "vblk_client.h"

#define IMG_SIZE (16ull << 20)
#define TMO      5000
#define SECT     512u

static const char *vblkd;
static char sock[256], img[256], log_path[256];

/* Start vblkd with its stderr (and stdout) going to @log_path. */
static int start(struct vblkd_proc *p, const char *const *args)
{
	return vblkd_proc_start_logged(p, vblkd, args, log_path);
}

static bool log_has(const char *what)
{
	char buf[16384];
	int fd = open(log_path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, what) != NULL;
}

static void dump_log(void)
{
	vblkd_log_dump(log_path);
}

/* A number from /proc/PID/status ("Seccomp:", "Uid:"); -1 if missing. */
static long proc_status(pid_t pid, const char *key)
{
	char path[64], buf[4096];
	const char *s;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	s = strstr(buf, key);
	return s ? strtol(s + strlen(key), NULL, 10) : -1;
}

static int io(struct vblk_client *c, uint32_t type, uint64_t sector, const void *out,
	      size_t out_len, void *in, size_t in_len)
{
	uint8_t status = 0xff;
	int ret = vblk_client_io(c, 0, type, sector, out, out_len, in, in_len, 0, TMO, &status,
				 NULL);

	return ret ? ret : status;
}

struct range {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* Every request type the daemon serves, through one connection. */
static void serve_everything(const char *what)
{
	static uint8_t wbuf[65536], rbuf[65536];
	struct vblk_client_opts o = { .num_queues = 1 };
	struct range seg = { .sector = 256, .num_sectors = 128 };
	struct vblk_client *c = NULL;
	char id[VIRTIO_BLK_ID_BYTES];
	int ret;

	ret = vblk_client_connect(sock, &o, &c);
	if (!ok(ret == 0, "%s: connect and handshake", what)) {
		diag("connect: %s", strerror(-ret));
		return;
	}
	for (size_t i = 0; i < sizeof(wbuf); i++)
		wbuf[i] = (uint8_t)(i * 7 + 3);
	is(io(c, VIRTIO_BLK_T_OUT, 8, wbuf, sizeof(wbuf), NULL, 0), VIRTIO_BLK_S_OK,
	   "%s: write 64 KiB", what);
	is(io(c, VIRTIO_BLK_T_IN, 8, NULL, 0, rbuf, sizeof(rbuf)), VIRTIO_BLK_S_OK,
	   "%s: read it back", what);
	ok(!memcmp(wbuf, rbuf, sizeof(wbuf)), "%s: same data", what);
	is(io(c, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL, 0), VIRTIO_BLK_S_OK, "%s: flush", what);
	is(io(c, VIRTIO_BLK_T_GET_ID, 0, NULL, 0, id, sizeof(id)), VIRTIO_BLK_S_OK,
	   "%s: get id", what);
	is(io(c, VIRTIO_BLK_T_DISCARD, 0, &seg, sizeof(seg), NULL, 0), VIRTIO_BLK_S_OK,
	   "%s: discard", what);
	seg.sector = 8;
	is(io(c, VIRTIO_BLK_T_WRITE_ZEROES, 0, &seg, sizeof(seg), NULL, 0), VIRTIO_BLK_S_OK,
	   "%s: write zeroes", what);
	is(io(c, VIRTIO_BLK_T_IN, 8, NULL, 0, rbuf, sizeof(rbuf)), VIRTIO_BLK_S_OK,
	   "%s: read the zeroes", what);
	ok(rbuf[0] == 0 && !memcmp(rbuf, rbuf + 1, sizeof(rbuf) - 1), "%s: all zero", what);
	vblk_client_destroy(c);
}

static void expect_clean_exit(struct vblkd_proc *p, const char *what)
{
	char how[96];
	int st = vblkd_proc_stop(p);

	if (!ok(st == 0, "%s: exits 0 on SIGTERM (%s)", what,
		vblkd_proc_describe(p, how, sizeof(how))))
		dump_log();
}

static void test_on(void)
{
	struct vblkd_proc p = { 0 };
	char a_sock[300], a_file[300];
	const char *args_root[] = { a_sock, a_file, "--sandbox=on", "--user=nobody", NULL };
	const char *args_user[] = { a_sock, a_file, "--sandbox=on", NULL };
	bool root = geteuid() == 0;

	snprintf(a_sock, sizeof(a_sock), "--socket-path=%s", sock);
	snprintf(a_file, sizeof(a_file), "--file=%s", img);
	if (start(&p, root ? args_root : args_user))
		tap_bail("cannot start %s", vblkd);
	serve_everything("sandbox on");
	ok(log_has("sandbox: seccomp filter on (forbidden calls kill"),
	   "sandbox on: the filter is installed (log says so)");
	is(proc_status(p.pid, "Seccomp:"), 2, "sandbox on: /proc status Seccomp: 2");
	is(proc_status(p.pid, "NoNewPrivs:"), 1, "sandbox on: NoNewPrivs: 1");
	if (root) {
		long uid = proc_status(p.pid, "Uid:");

		ok(uid > 0, "--user=nobody: Uid %ld is not root", uid);
		ok(proc_status(p.pid, "Gid:") > 0, "--user=nobody: Gid is not root");
	} else {
		diag("not root: --user=nobody not tried");
	}
	/* The frontend goes away and comes back: the kept listening socket. */
	serve_everything("sandbox on, reconnected");
	ok(vblkd_proc_alive(&p), "sandbox on: vblkd still running");
	expect_clean_exit(&p, "sandbox on");
	vblkd_proc_cleanup(&p);
}

static void test_mode(const char *mode, long want_seccomp)
{
	struct vblkd_proc p = { 0 };
	char a_sock[300], a_file[300], a_mode[64], what[64];
	const char *args[] = { a_sock, a_file, a_mode, NULL };

	snprintf(a_sock, sizeof(a_sock), "--socket-path=%s", sock);
	snprintf(a_file, sizeof(a_file), "--file=%s", img);
	snprintf(a_mode, sizeof(a_mode), "--sandbox=%s", mode);
	snprintf(what, sizeof(what), "sandbox %s", mode);
	if (start(&p, args))
		tap_bail("cannot start %s", vblkd);
	serve_everything(what);
	is(proc_status(p.pid, "Seccomp:"), want_seccomp, "%s: Seccomp: %ld", what, want_seccomp);
	expect_clean_exit(&p, what);
	vblkd_proc_cleanup(&p);
}

/* Usage errors: exit code and message, no socket served. */
static void test_bad(const char *arg, int want_exit, const char *want_msg)
{
	struct vblkd_proc p = { 0 };
	char a_sock[300], a_file[300];
	const char *args[] = { a_sock, a_file, arg, NULL };
	int st = 0;

	snprintf(a_sock, sizeof(a_sock), "--socket-path=%s", sock);
	snprintf(a_file, sizeof(a_file), "--file=%s", img);
	if (start(&p, args))
		tap_bail("cannot start %s", vblkd);
	if (waitpid(p.pid, &st, 0) == p.pid)
		p.exited = true;
	ok(WIFEXITED(st) && WEXITSTATUS(st) == want_exit, "%s: exits %d (status %#x)", arg,
	   want_exit, st);
	ok(log_has(want_msg), "%s: says \"%s\"", arg, want_msg);
	vblkd_proc_cleanup(&p);
}

int main(int argc, char **argv)
{
	struct vblkd_proc dir = { 0 };
	int fd;

	vblkd = vblk_test_start(argc, argv, &dir);
	vblkd_proc_path(&dir, "disk.sock", sock, sizeof(sock));
	vblkd_proc_path(&dir, "disk.img", img, sizeof(img));
	vblkd_proc_path(&dir, "vblkd.log", log_path, sizeof(log_path));
	fd = fixture_image(img, IMG_SIZE);
	if (fd)
		tap_bail("image %s: %s", img, strerror(-fd));

	test_on();
	test_mode("off", 0);
	test_mode("log", 2);
	test_bad("--sandbox=maybe", 2, "invalid sandbox 'maybe'");
	test_bad("--user=no-such-user-vblk", 1, "unknown user 'no-such-user-vblk'");
	test_bad("--user=", 2, "--user needs a user name");

	vblkd_proc_cleanup(&dir);
	return tap_done();
}
