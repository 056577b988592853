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
#include <poll.h>
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
#include "vhost/vhost_msg.h"

#define TMO 5000

static const char *vblkd;
static struct vblkd_proc proc;
static char ctl[300], sock[300], img[300], log_path[300];

static void dump_log(void)
{
	vblkd_log_dump(log_path);
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

/* ---- export methods ------------------------------------------------------ */

static int cfd = -1;   /* one control connection for the export tests */

/* Call @method with @params (JSON text, NULL: none). The reply; NULL if none. */
static struct json_object *call(const char *method, const char *params)
{
	struct json_object *p = params ? json_tokener_parse(params) : NULL, *r = NULL;
	int ret;

	if (params && !p)
		tap_bail("bad test params %s", params);
	ret = mgmt_client_call(cfd, method, p, &r, 60000);
	json_object_put(p);
	if (ret)
		diag("%s: %s", method, strerror(-ret));
	return ret ? NULL : r;
}

/* Expect @code (0: a result) from @method(@params). */
static void expect(const char *method, const char *params, int code, const char *what)
{
	struct json_object *r = call(method, params), *e, *msg;
	int got = err_code(r);

	is(got, code, "%s: %s", method, what);
	if (got != code && r && json_object_object_get_ex(r, "error", &e) &&
	    json_object_object_get_ex(e, "message", &msg))
		diag("message: %s", json_object_get_string(msg));
	json_object_put(r);
}

static struct json_object *result(struct json_object *r)
{
	struct json_object *res = NULL;

	if (r)
		json_object_object_get_ex(r, "result", &res);
	return res;
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : "";
}

static int64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_int64(v) : -1;
}

static bool jbool(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* The export-list entry of @sock (a new reference), or NULL. */
static struct json_object *list_entry(const char *path)
{
	struct json_object *r = call("export-list", NULL), *res = result(r), *found = NULL;

	for (size_t i = 0; res && i < json_object_array_length(res); i++) {
		struct json_object *e = json_object_array_get_idx(res, i);

		if (!strcmp(jstr(e, "socket-path"), path))
			found = json_object_get(e);
	}
	json_object_put(r);
	return found;
}

static size_t list_len(void)
{
	struct json_object *r = call("export-list", NULL), *res = result(r);
	size_t n = res && json_object_is_type(res, json_type_array) ?
		   json_object_array_length(res) : (size_t)-1;

	json_object_put(r);
	return n;
}

static uint8_t io_status(struct vblk_client *c, uint32_t type, uint64_t sector, void *buf,
			 size_t len)
{
	uint8_t status = 0xff;
	int ret;

	if (type == VIRTIO_BLK_T_OUT)
		ret = vblk_client_io(c, 0, type, sector, buf, len, NULL, 0, 0, TMO, &status, NULL);
	else
		ret = vblk_client_io(c, 0, type, sector, NULL, 0, buf, len, 0, TMO, &status, NULL);
	return ret ? 0xfe : status;
}

/* Read the backend channel's next message (acked when asked): its request. */
static int backend_take(int fd)
{
	return vblk_client_backend_take(fd, TMO);
}

static void test_export_add_list(const char *sock_b, const char *img_b, struct vblk_client **cb)
{
	struct vblk_client_opts o = { .num_queues = 2, .queue_size = 1024, .packed = true,
				      .backend_req = true };
	struct json_object *r, *e;
	char params[1024];

	e = list_entry(sock);
	ok(e != NULL, "export-list: the command-line export is listed");
	is(jint(e, "size"), 64 << 20, "export-list: its size");
	ok(!strcmp(jstr(e, "image"), img) && !strcmp(jstr(e, "engine"), "file"),
	   "export-list: its image and engine");
	ok(jbool(e, "connected") && !strcmp(jstr(e, "ring"), "split"),
	   "export-list: connected, split ring");
	ok(strstr(json_object_to_json_string(e), "\"event-idx\"") != NULL,
	   "export-list: negotiated features by name");
	json_object_put(e);

	snprintf(params, sizeof(params), "{\"socket-path\":\"%s\",\"file\":\"%s\","
		 "\"num-queues\":2,\"serial\":\"hot\",\"direct\":false}", sock_b, img_b);
	r = call("export-add", params);
	is(err_code(r), 0, "export-add: a file export at runtime (sandbox on)");
	ok(!strcmp(jstr(result(r), "socket-path"), sock_b), "export-add: the result describes it");
	json_object_put(r);
	is(list_len(), 2, "export-list: two exports");
	if (!ok(vblk_client_connect(sock_b, &o, cb) == 0,
		"the added export takes a frontend (2 queues of 1024, packed, backend channel)"))
		return;
	ok(vblk_client_rw_check(*cb, 0, 21, 0, TMO) && vblk_client_rw_check(*cb, 1, 22, 0, TMO),
	   "I/O on both queues of the added export");
	e = list_entry(sock_b);
	ok(jbool(e, "connected") && !strcmp(jstr(e, "ring"), "packed") && jint(e, "num-queues") == 2,
	   "export-list: the added export is connected, packed, 2 queues");
	json_object_put(e);
}

static void test_export_add_errors(const char *sock_b)
{
	char p[1024], sock_c[300];

	vblkd_proc_path(&proc, "c.sock", sock_c, sizeof(sock_c));
	expect("export-add", NULL, MGMT_ERR_INVALID_PARAMS, "no params");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\"}", sock_c);
	expect("export-add", p, MGMT_ERR_INVALID_PARAMS, "no image");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":\"1G\",\"fd\":3}", sock_c);
	expect("export-add", p, MGMT_ERR_INVALID_PARAMS, "fd refused at runtime");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":\"1G\",\"bogus\":1}", sock_c);
	expect("export-add", p, MGMT_ERR_INVALID_PARAMS, "unknown key");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":[1]}", sock_c);
	expect("export-add", p, MGMT_ERR_INVALID_PARAMS, "a list as a value");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":null}", sock_c);
	expect("export-add", p, MGMT_ERR_INVALID_PARAMS, "null as a value");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":\"1G\",\"num-queues\":-1}",
		 sock_c);
	expect("export-add", p, MGMT_ERR_INVALID_PARAMS, "negative num-queues");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":\"1G\",\"queue-size\":1000}",
		 sock_c);
	expect("export-add", p, MGMT_ERR_INVALID_PARAMS, "queue-size not a power of two");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":\"1G\",\"file\":\"%s\"}",
		 sock_c, img);
	expect("export-add", p, MGMT_ERR_INVALID_PARAMS, "two images");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":\"1G\"}", sock_b);
	expect("export-add", p, MGMT_ERR_EXISTS, "a socket another export uses");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":\"1G\"}", ctl);
	expect("export-add", p, MGMT_ERR_EXISTS, "a socket a live process listens on");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"file\":\"%s/none\"}", sock_c,
		 proc.dir);
	expect("export-add", p, MGMT_ERR_FAILED, "an image that does not exist");
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"file\":\"%s\"}", sock_c, proc.dir);
	expect("export-add", p, MGMT_ERR_FAILED, "a directory as the image");
	ok(access(sock_c, F_OK) != 0, "failed adds leave no socket file");
	is(list_len(), 2, "failed adds leave the export list as it was");
}

static void test_export_resize(const char *sock_b, const char *img_b, struct vblk_client *cb)
{
	static uint8_t wbuf[4096], rbuf[4096];
	struct json_object *r;
	char p[1024];
	struct stat st;

	static struct vblk_req reqs[256];
	unsigned submitted = 0, good = 0;

	/* 256 writes in flight on queue 1 while the export grows. */
	vblk_fill(wbuf, sizeof(wbuf), 5);
	for (unsigned i = 0; i < ARRAY_SIZE(reqs); i++)
		if (vblk_client_submit(cb, 1, &reqs[i], VIRTIO_BLK_T_OUT, (uint64_t)i * 8, wbuf,
				       sizeof(wbuf), 0, 0) == 0)
			submitted++;
	vblk_client_kick(cb, 1, true);
	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"size\":\"48M\"}", sock_b);
	r = call("export-resize", p);
	for (unsigned i = 0; i < submitted; i++)
		good += vblk_client_wait(cb, 1, &reqs[i], TMO) == 0 &&
			*reqs[i].status == VIRTIO_BLK_S_OK;
	is(submitted, ARRAY_SIZE(reqs), "256 writes submitted before the resize");
	is(good, submitted, "all of them complete OK across the resize");
	is(jint(result(r), "new-size"), 48 << 20, "export-resize: grown from 32M to 48M");
	is(jint(result(r), "old-size"), 32 << 20, "export-resize: old size reported");
	ok(jbool(result(r), "guest-notified"), "export-resize: the frontend was told");
	json_object_put(r);
	is(backend_take(vblk_client_backend_fd(cb)), VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
	   "the backend channel carries CONFIG_CHANGE_MSG");
	ok(vblk_client_refresh_config(cb) == 0 &&
	   vblk_client_config(cb)->capacity == (48u << 20) / 512,
	   "GET_CONFIG shows the new capacity");
	ok(stat(img_b, &st) == 0 && st.st_size == 48 << 20, "the image file is 48M");
	is(io_status(cb, VIRTIO_BLK_T_OUT, (40u << 20) / 512, wbuf, sizeof(wbuf)), VIRTIO_BLK_S_OK,
	   "a write past the old end works");
	is(io_status(cb, VIRTIO_BLK_T_IN, (40u << 20) / 512, rbuf, sizeof(rbuf)), VIRTIO_BLK_S_OK,
	   "and reads back");
	ok(!memcmp(wbuf, rbuf, sizeof(wbuf)), "the same data");

	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"size\":%u}", sock_b, 16u << 20);
	r = call("export-resize", p);
	is(jint(result(r), "new-size"), 16 << 20, "export-resize: shrunk to 16M (size as a number)");
	json_object_put(r);
	is(backend_take(vblk_client_backend_fd(cb)), VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
	   "the shrink is announced too");
	is(io_status(cb, VIRTIO_BLK_T_IN, (16u << 20) / 512, rbuf, sizeof(rbuf)), VIRTIO_BLK_S_IOERR,
	   "a read past the shrunken end: IOERR");
	is(io_status(cb, VIRTIO_BLK_T_OUT, (16u << 20) / 512 - 4, wbuf, sizeof(wbuf)),
	   VIRTIO_BLK_S_IOERR, "a write across the shrunken end: IOERR");
	is(io_status(cb, VIRTIO_BLK_T_OUT, (16u << 20) / 512 - 8, wbuf, sizeof(wbuf)),
	   VIRTIO_BLK_S_OK, "a write ending at the shrunken end works");

	/* The image grown by other means: picked up without a size. */
	if (truncate(img_b, 40 << 20))
		diag("truncate: %s", strerror(errno));
	snprintf(p, sizeof(p), "{\"export\":\"%s\"}", sock_b);
	r = call("export-resize", p);
	is(jint(result(r), "new-size"), 40 << 20, "export-resize without a size picks up 40M");
	json_object_put(r);
	is(backend_take(vblk_client_backend_fd(cb)), VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
	   "and announces it");
	r = call("export-resize", p);
	is(jint(result(r), "new-size"), 40 << 20, "again: the same size");
	ok(!jbool(result(r), "guest-notified"), "an unchanged size is not announced");
	json_object_put(r);

	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"size\":\"abc\"}", sock_b);
	expect("export-resize", p, MGMT_ERR_INVALID_PARAMS, "size abc");
	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"size\":1000}", sock_b);
	expect("export-resize", p, MGMT_ERR_INVALID_PARAMS, "size not a multiple of 512");
	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"size\":0}", sock_b);
	expect("export-resize", p, MGMT_ERR_INVALID_PARAMS, "size 0");
	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"size\":-512}", sock_b);
	expect("export-resize", p, MGMT_ERR_INVALID_PARAMS, "negative size");
	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"size\":true}", sock_b);
	expect("export-resize", p, MGMT_ERR_INVALID_PARAMS, "size true");
	expect("export-resize", "{\"export\":\"/nope\",\"size\":\"1G\"}", MGMT_ERR_NOT_FOUND,
	       "unknown export");
	expect("export-resize", "{\"size\":\"1G\"}", MGMT_ERR_INVALID_PARAMS, "no export");
	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"sise\":\"1G\"}", sock_b);
	expect("export-resize", p, MGMT_ERR_INVALID_PARAMS, "misspelt param");
}

static void test_export_remove(const char *sock_b, const char *img_b, struct vblk_client *cb)
{
	static uint8_t wbuf[65536], rbuf[65536];
	struct json_object *r;
	char p[1024], sock_d[300];
	int fd;

	snprintf(p, sizeof(p), "{\"export\":\"%s\"}", sock_b);
	expect("export-remove", p, MGMT_ERR_BUSY, "refused while a frontend is connected");
	ok(cb && vblk_client_rw_check(cb, 0, 31, 0, TMO), "the refused export still serves");
	expect("export-remove", "{\"export\":\"/nope\"}", MGMT_ERR_NOT_FOUND, "unknown export");
	expect("export-remove", NULL, MGMT_ERR_INVALID_PARAMS, "no export");
	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"force\":\"yes\"}", sock_b);
	expect("export-remove", p, MGMT_ERR_INVALID_PARAMS, "force not a boolean");

	/* Data written just before a forced removal is in the image. */
	vblk_fill(wbuf, sizeof(wbuf), 77);
	is(io_status(cb, VIRTIO_BLK_T_OUT, 2048, wbuf, sizeof(wbuf)), VIRTIO_BLK_S_OK,
	   "a write just before the forced removal");
	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"force\":true}", sock_b);
	r = call("export-remove", p);
	is(err_code(r), 0, "export-remove force: removed");
	ok(jbool(result(r), "was-connected"), "export-remove force: it had a frontend");
	json_object_put(r);
	ok(vblk_sock_closed_by_peer(vhost_frontend_fd(vblk_client_frontend(cb)), TMO),
	   "the frontend's connection is closed");
	ok(access(sock_b, F_OK) != 0, "the socket file is removed");
	fd = open(img_b, O_RDONLY | O_CLOEXEC);
	ok(fd >= 0 && pread(fd, rbuf, sizeof(rbuf), 2048 * 512) == (ssize_t)sizeof(rbuf) &&
	   !memcmp(wbuf, rbuf, sizeof(rbuf)), "the write is in the image");
	if (fd >= 0)
		close(fd);
	is(list_len(), 1, "export-list: one export left");

	/* A disconnected export goes without force; its socket can be reused. */
	vblkd_proc_path(&proc, "d.sock", sock_d, sizeof(sock_d));
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":\"1G\",\"read-only\":true}",
		 sock_d);
	expect("export-add", p, 0, "a read-only null export");
	snprintf(p, sizeof(p), "{\"export\":\"%s\",\"size\":\"2G\"}", sock_d);
	expect("export-resize", p, MGMT_ERR_UNSUPPORTED, "a read-only export cannot be resized");
	snprintf(p, sizeof(p), "{\"export\":\"%s\"}", sock_d);
	r = call("export-remove", p);
	ok(err_code(r) == 0 && !jbool(result(r), "was-connected"),
	   "export-remove: an export without a frontend, no force needed");
	json_object_put(r);
	snprintf(p, sizeof(p), "{\"socket-path\":\"%s\",\"null\":\"1G\"}", sock_d);
	expect("export-add", p, 0, "the socket path is free again");
	snprintf(p, sizeof(p), "{\"export\":\"%s\"}", sock_d);
	expect("export-remove", p, 0, "and removed again");
}

static void test_exports(struct vblk_client *io)
{
	struct vblk_client *cb = NULL;
	char sock_b[300], img_b[300];

	cfd = ctl_connect();
	vblkd_proc_path(&proc, "b.sock", sock_b, sizeof(sock_b));
	vblkd_proc_path(&proc, "b.img", img_b, sizeof(img_b));
	if (fixture_image(img_b, 32u << 20))
		tap_bail("image %s", img_b);
	test_export_add_list(sock_b, img_b, &cb);
	test_export_add_errors(sock_b);
	if (cb) {
		test_export_resize(sock_b, img_b, cb);
		test_export_remove(sock_b, img_b, cb);
	}
	ok(io && vblk_client_rw_check(io, 0, 41, 0, TMO),
	   "the command-line export served I/O throughout");
	vblk_client_destroy(cb);
	close(cfd);
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
	test_exports(io);

	vblk_client_destroy(io);
	ok(vblkd_proc_alive(&proc), "vblkd survived everything");
	if (!ok(vblkd_proc_stop(&proc) == 0, "clean exit on SIGTERM"))
		dump_log();
	vblkd_proc_cleanup(&proc);
	test_options();
	return tap_done();
}
