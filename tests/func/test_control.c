/* SPDX-License-Identifier: MIT */
/*
 * test_control.c - vblkd's control socket (--control) against the real
 * daemon with its default sandbox: the built-in methods, every JSON-RPC
 * error (parse, invalid request, unknown method, bad params), batches and
 * notifications, pipelined requests, and the limits (request size, client
 * count, idle and partial requests, a client that reads no replies) while
 * a frontend keeps doing I/O on an export of the same daemon.
 *
 * Usage: test_control PATH-TO-VBLKD. Prints TAP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <json-c/json.h>

#include "tap.h"
#include "vblk_client.h"
#include "mgmt/mgmt.h"
#include "mgmt/mgmt_client.h"

#define TMO 5000

static const char *vblkd;
static struct vblkd_proc proc;
static char ctl[300], sock[300], img[300], log_path[300];

static void dump_log(void)
{
	char line[512];
	FILE *f = fopen(log_path, "r");

	while (f && fgets(line, sizeof(line), f))
		diag("vblkd: %.*s", (int)strcspn(line, "\n"), line);
	if (f)
		fclose(f);
}

static int ctl_connect(void)
{
	int fd = mgmt_client_connect(ctl);

	if (fd < 0)
		tap_bail("connect %s: %s", ctl, strerror(-fd));
	return fd;
}

/* Send @raw (a line, newline included) and parse the reply line. */
static struct json_object *raw_call(int fd, const char *raw)
{
	char *line = NULL;
	struct json_object *r;
	int ret;

	ret = mgmt_client_send(fd, raw, strlen(raw), TMO);
	if (!ret)
		ret = mgmt_client_read_line(fd, &line, 1u << 20, TMO);
	if (ret) {
		diag("no reply to %.60s: %s", raw, strerror(-ret));
		return NULL;
	}
	r = json_tokener_parse(line);
	if (!r)
		diag("reply is not JSON: %.200s", line);
	free(line);
	return r;
}

/* The error code of reply @r (0: a result, 1: neither). */
static int err_code(struct json_object *r)
{
	struct json_object *e, *code, *res;

	if (r && json_object_object_get_ex(r, "error", &e) &&
	    json_object_object_get_ex(e, "code", &code))
		return json_object_get_int(code);
	if (r && json_object_object_get_ex(r, "result", &res))
		return 0;
	return 1;
}

/* Send @raw, expect an error reply with @code and id @id (NULL: null). */
static void expect_error(int fd, const char *raw, int code, const char *id, const char *what)
{
	struct json_object *r = raw_call(fd, raw), *rid = NULL;
	const char *got_id;

	is(err_code(r), code, "%s: error %d", what, code);
	json_object_object_get_ex(r, "id", &rid);
	got_id = rid ? json_object_get_string(rid) : NULL;
	ok(id ? got_id && !strcmp(got_id, id) : !rid, "%s: id %s", what, id ? id : "null");
	json_object_put(r);
}

static bool daemon_answers(const char *what)
{
	int fd = mgmt_client_connect(ctl);
	struct json_object *r = NULL;
	bool good;

	if (fd < 0) {
		diag("%s: connect: %s", what, strerror(-fd));
		return false;
	}
	good = mgmt_client_call(fd, "version", NULL, &r, TMO) == 0 && err_code(r) == 0;
	json_object_put(r);
	close(fd);
	return good;
}

static void test_builtins(void)
{
	struct json_object *r = NULL, *res, *v;
	struct stat st;
	int fd = ctl_connect();
	bool have_help = false;

	ok(stat(ctl, &st) == 0 && (st.st_mode & 0777) == 0600, "control socket mode is 0600 (%o)",
	   st.st_mode & 0777);
	is(mgmt_client_call(fd, "help", NULL, &r, TMO), 0, "help: a reply");
	ok(json_object_object_get_ex(r, "result", &res) &&
	   json_object_is_type(res, json_type_array), "help: the result is a list");
	for (size_t i = 0; res && i < json_object_array_length(res); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(res, i), "name", &v) &&
		    !strcmp(json_object_get_string(v), "version"))
			have_help = true;
	ok(have_help, "help: lists version");
	json_object_put(r);
	is(mgmt_client_call(fd, "version", NULL, &r, TMO), 0, "version: a reply");
	ok(json_object_object_get_ex(r, "result", &res) &&
	   json_object_object_get_ex(res, "version", &v) &&
	   !strcmp(json_object_get_string(v), VBLK_VERSION), "version: %s", VBLK_VERSION);
	ok(json_object_object_get_ex(res, "pid", &v) && json_object_get_int(v) == proc.pid,
	   "version: the daemon's pid");
	json_object_put(r);
	close(fd);
}

static void test_errors(void)
{
	int fd = ctl_connect();
	char deep[4096];
	size_t n = 0;

	expect_error(fd, "garbage\n", MGMT_ERR_PARSE, NULL, "not JSON");
	expect_error(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"help\"} trailing\n",
		     MGMT_ERR_PARSE, NULL, "trailing bytes");
	expect_error(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"he\n", MGMT_ERR_PARSE, NULL,
		     "incomplete JSON in a line");
	expect_error(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}\n", MGMT_ERR_PARSE,
		     NULL, "invalid UTF-8");
	expect_error(fd, "42\n", MGMT_ERR_INVALID_REQUEST, NULL, "a number, not an object");
	expect_error(fd, "{\"id\":7,\"method\":\"help\"}\n", MGMT_ERR_INVALID_REQUEST, "7",
		     "no jsonrpc member");
	expect_error(fd, "{\"jsonrpc\":\"1.0\",\"id\":7,\"method\":\"help\"}\n",
		     MGMT_ERR_INVALID_REQUEST, "7", "jsonrpc 1.0");
	expect_error(fd, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":5}\n", MGMT_ERR_INVALID_REQUEST,
		     "7", "method not a string");
	expect_error(fd, "{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"help\"}\n",
		     MGMT_ERR_INVALID_REQUEST, NULL, "id an object");
	expect_error(fd, "{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":\"no-such\"}\n",
		     MGMT_ERR_NO_METHOD, "q", "unknown method");
	expect_error(fd, "{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":\"help\\u0000x\"}\n",
		     MGMT_ERR_NO_METHOD, "q", "method name with a NUL");
	expect_error(fd, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"help\",\"params\":[1]}\n",
		     MGMT_ERR_INVALID_PARAMS, "8", "positional params");
	expect_error(fd, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"help\",\"params\":\"x\"}\n",
		     MGMT_ERR_INVALID_PARAMS, "8", "params a string");
	expect_error(fd, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"version\","
		     "\"params\":{\"bogus\":1}}\n", MGMT_ERR_INVALID_PARAMS, "8", "unknown param");
	/* Nesting deeper than the parser allows. */
	for (unsigned i = 0; i < 200; i++)
		deep[n++] = '[';
	deep[n++] = '\n';
	deep[n] = '\0';
	expect_error(fd, deep, MGMT_ERR_PARSE, NULL, "200 levels of nesting");
	/* A NUL byte inside the line. */
	is(mgmt_client_send(fd, "{\"a\0\":1}\n", 9, TMO), 0, "a line with a NUL byte: sent");
	{
		char *line = NULL;
		struct json_object *r = NULL;

		if (mgmt_client_read_line(fd, &line, 4096, TMO) == 0)
			r = json_tokener_parse(line);
		is(err_code(r), MGMT_ERR_PARSE, "a line with a NUL byte: parse error");
		json_object_put(r);
		free(line);
	}
	ok(daemon_answers("after errors"), "the daemon still answers after every error");
	close(fd);
}

static void test_batch_and_notifications(void)
{
	int fd = ctl_connect();
	struct json_object *r, *one;

	/* A notification gets no reply: the next line is the request's. */
	r = raw_call(fd, "{\"jsonrpc\":\"2.0\",\"method\":\"version\"}\n"
			 "{\"jsonrpc\":\"2.0\",\"method\":\"no-such\"}\n"
			 "{\"jsonrpc\":\"2.0\",\"id\":\"after\",\"method\":\"version\"}\n");
	ok(r && json_object_object_get_ex(r, "id", &one) &&
	   !strcmp(json_object_get_string(one), "after"),
	   "notifications (known and unknown method) get no reply");
	json_object_put(r);
	r = raw_call(fd, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"},"
			 "{\"jsonrpc\":\"2.0\",\"method\":\"version\"},"
			 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"}, 5]\n");
	ok(r && json_object_is_type(r, json_type_array) && json_object_array_length(r) == 3,
	   "batch of 4 with one notification: 3 replies");
	if (r && json_object_is_type(r, json_type_array) && json_object_array_length(r) == 3) {
		is(err_code(json_object_array_get_idx(r, 0)), 0, "batch: first has a result");
		is(err_code(json_object_array_get_idx(r, 1)), MGMT_ERR_NO_METHOD,
		   "batch: second, method not found");
		is(err_code(json_object_array_get_idx(r, 2)), MGMT_ERR_INVALID_REQUEST,
		   "batch: third (a number), invalid request");
	}
	json_object_put(r);
	expect_error(fd, "[]\n", MGMT_ERR_INVALID_REQUEST, NULL, "empty batch");
	{
		char big[8192];
		size_t n = 0;

		big[n++] = '[';
		for (unsigned i = 0; i < MGMT_MAX_BATCH + 1; i++)
			n += (size_t)snprintf(big + n, sizeof(big) - n, "%s1", i ? "," : "");
		snprintf(big + n, sizeof(big) - n, "]\n");
		expect_error(fd, big, MGMT_ERR_INVALID_REQUEST, NULL, "batch over the limit");
	}
	/* A batch of notifications only: no reply at all. */
	r = raw_call(fd, "[{\"jsonrpc\":\"2.0\",\"method\":\"version\"}]\n"
			 "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"version\"}\n");
	ok(r && json_object_object_get_ex(r, "id", &one) &&
	   !strcmp(json_object_get_string(one), "x"), "a batch of notifications: no reply");
	json_object_put(r);
	/* CRLF line ends and empty lines. */
	r = raw_call(fd, "\n\r\n{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"version\"}\r\n");
	is(err_code(r), 0, "CRLF and empty lines are accepted");
	json_object_put(r);
	close(fd);
}

static void test_limits(struct vblk_client *io)
{
	int fds[MGMT_MAX_CLIENTS + 1], fd, ret;
	char *big, *line = NULL;
	struct json_object *r;
	size_t sent = 0;

	/* A line longer than the limit: an error, then the connection closes. */
	big = malloc(MGMT_MAX_REQUEST + 100);
	memset(big, ' ', MGMT_MAX_REQUEST + 100);
	fd = ctl_connect();
	ret = mgmt_client_send(fd, big, MGMT_MAX_REQUEST + 100, TMO);
	if (!ret)
		ret = mgmt_client_read_line(fd, &line, 4096, TMO);
	r = line ? json_tokener_parse(line) : NULL;
	is(err_code(r), MGMT_ERR_INVALID_REQUEST, "request over %u bytes: invalid request",
	   MGMT_MAX_REQUEST);
	ok(vblk_sock_closed_by_peer(fd, TMO), "request over the limit: connection closed");
	json_object_put(r);
	free(line);
	free(big);
	close(fd);

	/* Clients up to the limit; one more is told and closed. */
	for (unsigned i = 0; i < MGMT_MAX_CLIENTS; i++)
		fds[i] = ctl_connect();
	fds[MGMT_MAX_CLIENTS] = ctl_connect();
	line = NULL;
	ret = mgmt_client_read_line(fds[MGMT_MAX_CLIENTS], &line, 4096, TMO);
	r = line ? json_tokener_parse(line) : NULL;
	is(err_code(r), MGMT_ERR_BUSY, "client %u of %u: refused with an error",
	   MGMT_MAX_CLIENTS + 1, MGMT_MAX_CLIENTS);
	ok(vblk_sock_closed_by_peer(fds[MGMT_MAX_CLIENTS], TMO), "and its connection closed");
	json_object_put(r);
	free(line);
	close(fds[MGMT_MAX_CLIENTS]);
	r = raw_call(fds[0], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n");
	is(err_code(r), 0, "the clients within the limit are served");
	json_object_put(r);
	ok(io && vblk_client_rw_check(io, 0, 11, 0, TMO), "I/O goes on with every client slot taken");
	close(fds[1]);
	/* The freed slot is taken again (the close is seen asynchronously). */
	for (int tries = 0; tries < 100; tries++) {
		fds[1] = ctl_connect();
		r = raw_call(fds[1], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n");
		ret = err_code(r);
		json_object_put(r);
		if (ret == 0)
			break;
		close(fds[1]);
		usleep(20000);
	}
	is(ret, 0, "a freed client slot serves a new client");
	for (unsigned i = 0; i < MGMT_MAX_CLIENTS; i++)
		close(fds[i]);

	/* A half-sent request is dropped after the idle timeout (500 ms in
	 * this test); I/O is served meanwhile. */
	fd = ctl_connect();
	mgmt_client_send(fd, "{\"jsonrpc\":\"2.0\",\"id\":1,\"met", 29, TMO);
	ok(io && vblk_client_rw_check(io, 0, 12, 0, TMO), "I/O while a request is half sent");
	ok(vblk_sock_closed_by_peer(fd, 10000), "a half-sent request: closed after the timeout");
	close(fd);
	fd = ctl_connect();
	ok(vblk_sock_closed_by_peer(fd, 10000), "an idle client: closed after the timeout");
	close(fd);

	/* A client that sends requests and never reads the replies: the
	 * daemon stops reading it, and serves everybody else. */
	fd = ctl_connect();
	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"help\"}\n";
		ssize_t n = send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		sent += (size_t)n;
		if (sent > (64u << 20))
			break;
	}
	ok(sent < (64u << 20), "a client that reads no replies is pushed back (%zu bytes taken)",
	   sent);
	ok(daemon_answers("beside a client that does not read"), "other clients are served");
	ok(io && vblk_client_rw_check(io, 0, 13, 0, TMO), "I/O beside a client that does not read");
	close(fd);
}

/* Wait up to 10 s for @p to exit on its own. True if it did. */
static bool wait_exit(struct vblkd_proc *p)
{
	for (int i = 0; i < 1000 && vblkd_proc_alive(p); i++)
		usleep(10000);
	return p->exited;
}

static void test_options(void)
{
	struct vblkd_proc p = { 0 }, q = { 0 };
	char a_ctl[320], path[300];
	const char *mode[] = { a_ctl, "--control-mode=0660", NULL };
	const char *bad[] = { a_ctl, "--control-mode=0044", NULL };
	const char *dup_ctl[] = { a_ctl, NULL };
	struct stat st;

	if (vblkd_proc_init(&p))
		tap_bail("temp dir");
	vblkd_proc_path(&p, "c2.sock", path, sizeof(path));
	snprintf(a_ctl, sizeof(a_ctl), "--control=%s", path);
	/* A daemon with a control socket and no export at all. */
	is(vblkd_proc_start(&p, vblkd, mode), 0, "control only, --control-mode=0660: started");
	ok(fixture_wait_socket(p.pid, path, TMO) == 0, "control only: listening");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0660, "--control-mode=0660 applies");
	/* Another daemon on the same control socket: refused, the first lives. */
	vblkd_proc_start(&q, vblkd, dup_ctl);
	ok(wait_exit(&q) && WIFEXITED(q.wstatus) && WEXITSTATUS(q.wstatus) != 0,
	   "a second daemon on a live control socket fails");
	vblkd_proc_stop(&q);
	ok(vblkd_proc_alive(&p), "the first one keeps running");
	is(vblkd_proc_stop(&p), 0, "control only: clean exit");
	ok(access(path, F_OK) != 0, "the control socket file is removed at exit");
	is(vblkd_proc_start(&p, vblkd, bad), 0, "--control-mode=0044 started");
	ok(wait_exit(&p) && WIFEXITED(p.wstatus) && WEXITSTATUS(p.wstatus) == 2,
	   "--control-mode without owner rw: usage error");
	vblkd_proc_cleanup(&p);
}

int main(int argc, char **argv)
{
	struct vblk_client_opts o = { .num_queues = 1 };
	struct vblk_client *io = NULL;
	char a_ctl[320], a_sock[320], a_file[320];
	const char *args[] = { a_ctl, a_sock, a_file, NULL };

	if (argc < 2)
		tap_bail("usage: %s VBLKD", argv[0]);
	vblkd = argv[1];
	if (vblkd_proc_init(&proc))
		tap_bail("temp dir");
	vblkd_proc_path(&proc, "ctl.sock", ctl, sizeof(ctl));
	vblkd_proc_path(&proc, "vhost.sock", sock, sizeof(sock));
	vblkd_proc_path(&proc, "vblkd.log", log_path, sizeof(log_path));
	vblkd_proc_path(&proc, "disk.img", img, sizeof(img));
	if (fixture_image(img, 64u << 20))
		tap_bail("image %s", img);
	snprintf(a_file, sizeof(a_file), "--file=%s", img);
	snprintf(a_ctl, sizeof(a_ctl), "--control=%s", ctl);
	snprintf(a_sock, sizeof(a_sock), "--socket-path=%s", sock);
	setenv("VBLKD_CONTROL_TIMEOUT_MS", "500", 1);
	if (vblkd_proc_start_logged(&proc, vblkd, args, log_path) ||
	    fixture_wait_socket(proc.pid, ctl, 10000) || fixture_wait_socket(proc.pid, sock, 10000))
		tap_bail("cannot start %s", vblkd);
	unsetenv("VBLKD_CONTROL_TIMEOUT_MS");
	if (vblk_client_connect(sock, &o, &io))
		diag("no frontend connection: I/O checks fail");

	test_builtins();
	test_errors();
	test_batch_and_notifications();
	test_limits(io);

	vblk_client_destroy(io);
	ok(vblkd_proc_alive(&proc), "vblkd survived everything");
	if (!ok(vblkd_proc_stop(&proc) == 0, "clean exit on SIGTERM"))
		dump_log();
	vblkd_proc_cleanup(&proc);
	test_options();
	return tap_done();
}
