/* SPDX-License-Identifier: MIT */
/*
 * mgmt.c - the control socket: JSON-RPC 2.0 requests, one per line, from
 * up to MGMT_MAX_CLIENTS clients, decoded with json-c and dispatched to the
 * registered methods on the control loop. Every limit (line length, batch
 * size, nesting, unsent reply bytes, idle time) ends in an error reply or
 * a closed connection, never in a stall of the loop. Knows nothing of what
 * the methods do.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <json-c/json.h>

#include "common/log.h"
#include "common/sock.h"
#include "loop/loop.h"
#include "mgmt/mgmt.h"

struct mgmt_method {
	char *name;
	mgmt_method_cb cb;
	void *opaque;
	const char *summary;
	struct mgmt_method *next;
};

struct mgmt_client {
	struct mgmt *m;
	int fd;
	char *in;                 /* MGMT_MAX_REQUEST bytes */
	size_t inlen;
	char *out;                /* unsent reply bytes [outoff, outlen) */
	size_t outlen, outoff, outcap;
	bool closing;             /* close once the output is sent */
	uint32_t events;          /* what the loop watches now */
	uint64_t deadline_ns;
	struct mgmt_client *next;
};

struct mgmt {
	struct loop *ctrl;
	struct mgmt_method *methods;
	int listen_fd;
	struct sock_file file;
	int timer_fd;
	bool timer_armed;
	bool in_call;             /* a method runs: take no input */
	unsigned timeout_ms;
	unsigned nclients;
	struct mgmt_client *clients;
};

/* ---- request decoding (no sockets: mgmt_handle is what the fuzzer runs) - */

void mgmt_error(struct mgmt_call *c, int code, const char *fmt, ...)
{
	va_list ap;

	c->code = code;
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
}

static int param_bad(struct mgmt_call *c, const char *key, const char *what)
{
	mgmt_error(c, MGMT_ERR_INVALID_PARAMS, "parameter '%s' %s", key, what);
	return -EINVAL;
}

int mgmt_params_only(struct mgmt_call *c, const char *const *allowed)
{
	if (!c->params)
		return 0;
	json_object_object_foreach(c->params, key, val) {
		const char *const *a;

		(void)val;
		for (a = allowed; *a && strcmp(*a, key); a++)
			;
		if (!*a)
			return param_bad(c, key, "is not known");
	}
	return 0;
}

/* The parameter's value, NULL if absent (or null). */
static struct json_object *param_get(struct mgmt_call *c, const char *key)
{
	struct json_object *v = NULL;

	if (c->params)
		json_object_object_get_ex(c->params, key, &v);
	return v;
}

bool mgmt_param_present(struct mgmt_call *c, const char *key)
{
	return param_get(c, key) != NULL;
}

int mgmt_param_string(struct mgmt_call *c, const char *key, bool required, const char **out)
{
	struct json_object *v = param_get(c, key);
	const char *s;

	if (!v)
		return required ? param_bad(c, key, "is required") : 0;
	if (!json_object_is_type(v, json_type_string))
		return param_bad(c, key, "must be a string");
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return param_bad(c, key, "must not contain a NUL character");
	*out = s;
	return 0;
}

int mgmt_param_u64(struct mgmt_call *c, const char *key, bool required, uint64_t *out)
{
	struct json_object *v = param_get(c, key);

	if (!v)
		return required ? param_bad(c, key, "is required") : 0;
	if (!json_object_is_type(v, json_type_int))
		return param_bad(c, key, "must be a whole number");
	/* json-c keeps integers as int64 or uint64: negative ones are < 0. */
	if (json_object_get_int64(v) < 0)
		return param_bad(c, key, "must not be negative");
	*out = json_object_get_uint64(v);
	return 0;
}

int mgmt_param_bool(struct mgmt_call *c, const char *key, bool required, bool *out)
{
	struct json_object *v = param_get(c, key);

	if (!v)
		return required ? param_bad(c, key, "is required") : 0;
	if (!json_object_is_type(v, json_type_boolean))
		return param_bad(c, key, "must be true or false");
	*out = json_object_get_boolean(v);
	return 0;
}

static struct mgmt_method *method_find(struct mgmt *m, const char *name)
{
	for (struct mgmt_method *me = m->methods; me; me = me->next)
		if (!strcmp(me->name, name))
			return me;
	return NULL;
}

int mgmt_register(struct mgmt *m, const char *name, mgmt_method_cb cb, void *opaque,
		  const char *summary)
{
	struct mgmt_method *me, **tail;

	if (!name || !*name || !cb)
		return -EINVAL;
	if (method_find(m, name))
		return -EEXIST;
	me = calloc(1, sizeof(*me));
	if (!me)
		return -ENOMEM;
	me->name = strdup(name);
	if (!me->name) {
		free(me);
		return -ENOMEM;
	}
	me->cb = cb;
	me->opaque = opaque;
	me->summary = summary ? summary : "";
	/* Keep registration order: "help" lists them as they were added. */
	for (tail = &m->methods; *tail; tail = &(*tail)->next)
		;
	*tail = me;
	return 0;
}

static struct json_object *reply_new(struct json_object *id)
{
	struct json_object *r = json_object_new_object();

	if (!r)
		return NULL;
	json_object_object_add(r, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(r, "id", id ? json_object_get(id) : NULL);
	return r;
}

static struct json_object *reply_error(struct json_object *id, int code, const char *msg)
{
	struct json_object *r = reply_new(id), *e = json_object_new_object();

	if (!r || !e) {
		json_object_put(r);
		json_object_put(e);
		return NULL;
	}
	json_object_object_add(e, "code", json_object_new_int(code));
	json_object_object_add(e, "message", json_object_new_string(msg));
	json_object_object_add(r, "error", e);
	return r;
}

/* A valid JSON-RPC id: a string, a number or null. */
static bool id_valid(struct json_object *id)
{
	return !id || json_object_is_type(id, json_type_string) ||
	       json_object_is_type(id, json_type_int) ||
	       json_object_is_type(id, json_type_double);
}

/*
 * One request object. Return: the reply, or NULL for a notification (or
 * when even the error reply cannot be allocated).
 */
static struct json_object *handle_one(struct mgmt *m, struct json_object *req)
{
	struct json_object *ver, *method, *params = NULL, *id = NULL, *r;
	struct mgmt_call c = { 0 };
	struct mgmt_method *me;
	bool notification;

	if (!json_object_is_type(req, json_type_object))
		return reply_error(NULL, MGMT_ERR_INVALID_REQUEST, "a request must be an object");
	notification = !json_object_object_get_ex(req, "id", &id);
	if (!id_valid(id))
		return reply_error(NULL, MGMT_ERR_INVALID_REQUEST,
				   "id must be a string, a number or null");
	if (!json_object_object_get_ex(req, "jsonrpc", &ver) ||
	    !json_object_is_type(ver, json_type_string) ||
	    strcmp(json_object_get_string(ver), "2.0"))
		return reply_error(id, MGMT_ERR_INVALID_REQUEST, "jsonrpc must be \"2.0\"");
	if (!json_object_object_get_ex(req, "method", &method) ||
	    !json_object_is_type(method, json_type_string))
		return reply_error(id, MGMT_ERR_INVALID_REQUEST, "method must be a string");
	json_object_object_get_ex(req, "params", &params);
	if (params && !json_object_is_type(params, json_type_object))
		return reply_error(id, MGMT_ERR_INVALID_PARAMS,
				   "params must be an object (named parameters)");
	me = method_find(m, json_object_get_string(method));
	if (!me || strlen(json_object_get_string(method)) !=
		   (size_t)json_object_get_string_len(method)) {
		if (notification)
			return NULL;
		return reply_error(id, MGMT_ERR_NO_METHOD, "method not found");
	}
	c.params = params;
	me->cb(me->opaque, &c);
	if (notification) {
		json_object_put(c.result);
		return NULL;
	}
	if (c.code) {
		json_object_put(c.result);
		return reply_error(id, c.code, c.message[0] ? c.message : "failed");
	}
	r = reply_new(id);
	if (!r) {
		json_object_put(c.result);
		return NULL;
	}
	json_object_object_add(r, "result", c.result);
	return r;
}

static char *reply_text(struct json_object *r)
{
	const char *s = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
	char *line;

	if (!s)
		return NULL;
	if (asprintf(&line, "%s\n", s) < 0)
		return NULL;
	return line;
}

static char *error_text(int code, const char *msg)
{
	struct json_object *r = reply_error(NULL, code, msg);
	char *line = r ? reply_text(r) : NULL;

	json_object_put(r);
	return line;
}

char *mgmt_handle(struct mgmt *m, const char *req, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj, *r = NULL;
	enum json_tokener_error jerr;
	char *line = NULL;
	size_t end;

	if (len > MGMT_MAX_REQUEST)
		return error_text(MGMT_ERR_INVALID_REQUEST, "request too large");
	if (memchr(req, '\0', len))
		return error_text(MGMT_ERR_PARSE, "parse error: NUL byte in the request");
	tok = json_tokener_new_ex(MGMT_MAX_DEPTH);
	if (!tok)
		return error_text(MGMT_ERR_INTERNAL, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, req, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue && !obj) {
		/* A bare number may still go on: the end of the line ends it. */
		obj = json_tokener_parse_ex(tok, " ", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	if (jerr == json_tokener_success)
		for (; end < len; end++)
			if (!strchr(" \t\r", req[end]))
				jerr = json_tokener_error_parse_unexpected;
	if (jerr != json_tokener_success || !obj) {
		char msg[128];

		json_object_put(obj);
		snprintf(msg, sizeof(msg), "parse error: %s",
			 jerr == json_tokener_continue ? "incomplete JSON" :
			 json_tokener_error_desc(jerr));
		return error_text(MGMT_ERR_PARSE, msg);
	}
	if (json_object_is_type(obj, json_type_array)) {
		size_t n = json_object_array_length(obj);

		if (n == 0 || n > MGMT_MAX_BATCH) {
			json_object_put(obj);
			return error_text(MGMT_ERR_INVALID_REQUEST,
					  n ? "batch too large" : "empty batch");
		}
		r = json_object_new_array();
		for (size_t i = 0; r && i < n; i++) {
			struct json_object *one = handle_one(m, json_object_array_get_idx(obj, i));

			if (one)
				json_object_array_add(r, one);
		}
		if (r && json_object_array_length(r) == 0) {
			json_object_put(r);
			r = NULL;   /* notifications only: nothing to send */
		}
	} else {
		r = handle_one(m, obj);
	}
	json_object_put(obj);
	if (r) {
		line = reply_text(r);
		json_object_put(r);
	}
	return line;
}

/* ---- built-in methods --------------------------------------------------- */

static void method_help(void *opaque, struct mgmt_call *c)
{
	struct mgmt *m = opaque;
	struct json_object *list;

	if (mgmt_params_only(c, (const char *const[]){ NULL }))
		return;
	list = json_object_new_array();
	for (struct mgmt_method *me = m->methods; list && me; me = me->next) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "name", json_object_new_string(me->name));
		json_object_object_add(o, "summary", json_object_new_string(me->summary));
		json_object_array_add(list, o);
	}
	c->result = list;
}

static void method_version(void *opaque, struct mgmt_call *c)
{
	if (mgmt_params_only(c, (const char *const[]){ NULL }))
		return;
	c->result = json_object_new_object();
	json_object_object_add(c->result, "version", json_object_new_string(VBLK_VERSION));
	json_object_object_add(c->result, "pid", json_object_new_int((int)getpid()));
}

/* ---- connections ------------------------------------------------------- */

/* recvmsg/sendmsg, not recv/send: the calls the sandbox allows already
 * for vhost-user (recv and send are recvfrom/sendto on most architectures). */
static ssize_t sock_recv(int fd, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	return recvmsg(fd, &mh, MSG_DONTWAIT);
}

static ssize_t sock_send(int fd, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void client_touch(struct mgmt_client *cl)
{
	cl->deadline_ns = now_ns() + (uint64_t)cl->m->timeout_ms * 1000000u;
}

/* What the loop should watch for @cl: input only when no reply is queued
 * (a client that does not read its replies gets no more work done). */
static uint32_t client_want(const struct mgmt_client *cl)
{
	if (cl->m->in_call)
		return 0;
	if (cl->outoff < cl->outlen)
		return EPOLLOUT;
	return cl->closing ? 0 : EPOLLIN;
}

static void client_update(struct mgmt_client *cl)
{
	uint32_t want = client_want(cl);

	if (want != cl->events && loop_mod_fd(cl->m->ctrl, cl->fd, want) == 0)
		cl->events = want;
}

static void client_close(struct mgmt_client *cl)
{
	struct mgmt *m = cl->m;

	for (struct mgmt_client **p = &m->clients; *p; p = &(*p)->next)
		if (*p == cl) {
			*p = cl->next;
			break;
		}
	loop_del_fd(m->ctrl, cl->fd);
	close(cl->fd);
	free(cl->in);
	free(cl->out);
	free(cl);
	m->nclients--;
}

/* Queue @line (taken over) for @cl. Return: 0, or -ENOBUFS past the cap. */
static int client_queue(struct mgmt_client *cl, char *line)
{
	size_t n = strlen(line);

	if (cl->outoff == cl->outlen)
		cl->outoff = cl->outlen = 0;
	if (cl->outlen + n > MGMT_MAX_REPLY) {
		free(line);
		return -ENOBUFS;
	}
	if (cl->outlen + n > cl->outcap) {
		size_t cap = cl->outcap ? cl->outcap : 4096;
		char *p;

		while (cap < cl->outlen + n)
			cap *= 2;
		p = realloc(cl->out, cap);
		if (!p) {
			free(line);
			return -ENOMEM;
		}
		cl->out = p;
		cl->outcap = cap;
	}
	memcpy(cl->out + cl->outlen, line, n);
	cl->outlen += n;
	free(line);
	return 0;
}

/* Send what the socket takes. Return: false if the client was closed. */
static bool client_flush(struct mgmt_client *cl)
{
	while (cl->outoff < cl->outlen) {
		ssize_t n = sock_send(cl->fd, cl->out + cl->outoff, cl->outlen - cl->outoff);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			client_close(cl);
			return false;
		}
		cl->outoff += (size_t)n;
		client_touch(cl);
	}
	if (cl->outoff == cl->outlen && cl->closing) {
		client_close(cl);
		return false;
	}
	return true;
}

static void mgmt_pause(struct mgmt *m, bool pause);

/* Run every complete line in the input buffer. Return: false if closed. */
static bool client_run_lines(struct mgmt_client *cl)
{
	struct mgmt *m = cl->m;
	char *nl;

	while (!cl->closing && cl->outoff == cl->outlen &&
	       (nl = memchr(cl->in, '\n', cl->inlen))) {
		size_t len = (size_t)(nl - cl->in);
		char *reply = NULL;

		/* Empty lines (keep-alives) are skipped. */
		if (len && !(len == 1 && cl->in[0] == '\r')) {
			mgmt_pause(m, true);
			reply = mgmt_handle(m, cl->in, len);
			mgmt_pause(m, false);
		}
		memmove(cl->in, nl + 1, cl->inlen - len - 1);
		cl->inlen -= len + 1;
		client_touch(cl);
		if (reply && client_queue(cl, reply)) {
			log_rl(LOG_WARN, "control: a client reads no replies; disconnecting it");
			client_close(cl);
			return false;
		}
		if (!client_flush(cl))
			return false;
	}
	return true;
}

static void client_cb(void *opaque, uint32_t events)
{
	struct mgmt_client *cl = opaque;
	ssize_t n;

	if (events & EPOLLOUT) {
		if (!client_flush(cl))
			return;
		/* Lines that came in while the reply waited. */
		if (!client_run_lines(cl))
			return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !cl->closing &&
	    cl->outoff == cl->outlen) {
		n = sock_recv(cl->fd, cl->in + cl->inlen, MGMT_MAX_REQUEST - cl->inlen);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			goto out;
		if (n <= 0) {
			client_close(cl);
			return;
		}
		cl->inlen += (size_t)n;
		if (!client_run_lines(cl))
			return;
		if (cl->inlen == MGMT_MAX_REQUEST && !memchr(cl->in, '\n', cl->inlen)) {
			/* A line longer than the limit: say so, then hang up
			 * (the rest of it cannot be told from a new request). */
			char *line = error_text(MGMT_ERR_INVALID_REQUEST, "request too large");

			cl->closing = true;
			if (!line || client_queue(cl, line)) {
				client_close(cl);
				return;
			}
			if (!client_flush(cl))
				return;
		}
	}
out:
	client_update(cl);
}

static void timer_arm(struct mgmt *m, bool on)
{
	unsigned tick = m->timeout_ms / 4 ? m->timeout_ms / 4 : 1;
	struct itimerspec its = { 0 };

	if (on == m->timer_armed)
		return;
	if (tick > 1000)
		tick = 1000;
	if (on) {
		its.it_value.tv_sec = tick / 1000;
		its.it_value.tv_nsec = (long)(tick % 1000) * 1000000;
		its.it_interval = its.it_value;
	}
	if (timerfd_settime(m->timer_fd, 0, &its, NULL) == 0)
		m->timer_armed = on;
}

static void timer_cb(void *opaque, uint32_t events)
{
	struct mgmt *m = opaque;
	uint64_t ticks, now = now_ns();
	struct mgmt_client *cl, *next;

	if (read(m->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_rl(LOG_ERR, "control: timer: %s", strerror(errno));
	for (cl = m->clients; cl; cl = next) {
		next = cl->next;
		if (now >= cl->deadline_ns) {
			log_debug("control: client idle for %u ms; disconnecting it", m->timeout_ms);
			client_close(cl);
		}
	}
	if (!m->clients)
		timer_arm(m, false);
}

static void listen_cb(void *opaque, uint32_t events)
{
	struct mgmt *m = opaque;
	struct mgmt_client *cl;
	int fd;

	fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			log_rl(LOG_ERR, "control: accept: %s", strerror(errno));
		return;
	}
	if (m->nclients >= MGMT_MAX_CLIENTS) {
		char *line = error_text(MGMT_ERR_BUSY, "too many control clients");

		/* Best effort: a fresh socket's buffer takes one short line. */
		if (line && sock_send(fd, line, strlen(line)) < 0)
			log_debug("control: refusing a client: %s", strerror(errno));
		free(line);
		close(fd);
		log_rl(LOG_WARN, "control: too many clients (%u); refused one", MGMT_MAX_CLIENTS);
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (cl)
		cl->in = malloc(MGMT_MAX_REQUEST);
	if (!cl || !cl->in || loop_add_fd(m->ctrl, fd, EPOLLIN, client_cb, cl)) {
		if (cl)
			free(cl->in);
		free(cl);
		close(fd);
		return;
	}
	cl->m = m;
	cl->fd = fd;
	cl->events = EPOLLIN;
	client_touch(cl);
	cl->next = m->clients;
	m->clients = cl;
	m->nclients++;
	timer_arm(m, true);
}

/*
 * While a method runs, the control loop may run (a method waiting for
 * queues to stop): watch nothing of the control socket meanwhile, so that
 * no request starts under another and no client is freed under its call.
 */
static void mgmt_pause(struct mgmt *m, bool pause)
{
	if (!m->ctrl)
		return;
	m->in_call = pause;
	if (m->listen_fd >= 0)
		loop_mod_fd(m->ctrl, m->listen_fd, pause ? 0 : EPOLLIN);
	if (m->timer_fd >= 0)
		loop_mod_fd(m->ctrl, m->timer_fd, pause ? 0 : EPOLLIN);
	for (struct mgmt_client *cl = m->clients; cl; cl = cl->next)
		client_update(cl);
}

/* ---- setup -------------------------------------------------------------- */

int mgmt_create(struct loop *ctrl, struct mgmt **out)
{
	struct json_object *warm;
	struct mgmt *m;
	int ret;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->ctrl = ctrl;
	m->listen_fd = m->timer_fd = -1;
	m->timeout_ms = MGMT_DEFAULT_TIMEOUT_MS;
	/*
	 * json-c seeds its hash tables on first use, maybe from getrandom()
	 * or /dev/urandom: do it now, before the sandbox forbids both.
	 */
	warm = json_object_new_object();
	json_object_object_add(warm, "seed", NULL);
	json_object_put(warm);
	ret = mgmt_register(m, "help", method_help, m, "list the methods");
	if (!ret)
		ret = mgmt_register(m, "version", method_version, m, "vblkd's version and pid");
	if (ret) {
		mgmt_destroy(m);
		return ret;
	}
	*out = m;
	return 0;
}

int mgmt_listen(struct mgmt *m, const char *path, mode_t mode, unsigned timeout_ms)
{
	int fd, ret;

	if (!m->ctrl || m->listen_fd >= 0)
		return -EINVAL;
	if (timeout_ms)
		m->timeout_ms = timeout_ms;
	m->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (m->timer_fd < 0)
		return -errno;
	ret = loop_add_fd(m->ctrl, m->timer_fd, EPOLLIN, timer_cb, m);
	if (ret)
		goto err_timer;
	fd = sock_listen_unix(path, MGMT_MAX_CLIENTS, mode, &m->file);
	if (fd < 0) {
		ret = fd;
		goto err_timer_watch;
	}
	ret = loop_add_fd(m->ctrl, fd, EPOLLIN, listen_cb, m);
	if (ret)
		goto err_sock;
	m->listen_fd = fd;
	return 0;

err_sock:
	sock_file_remove(&m->file);
	close(fd);
err_timer_watch:
	loop_del_fd(m->ctrl, m->timer_fd);
err_timer:
	close(m->timer_fd);
	m->timer_fd = -1;
	return ret;
}

void mgmt_destroy(struct mgmt *m)
{
	if (!m)
		return;
	while (m->clients)
		client_close(m->clients);
	if (m->listen_fd >= 0) {
		loop_del_fd(m->ctrl, m->listen_fd);
		sock_file_remove(&m->file);
		close(m->listen_fd);
	}
	if (m->timer_fd >= 0) {
		loop_del_fd(m->ctrl, m->timer_fd);
		close(m->timer_fd);
	}
	while (m->methods) {
		struct mgmt_method *me = m->methods;

		m->methods = me->next;
		free(me->name);
		free(me);
	}
	free(m);
}
