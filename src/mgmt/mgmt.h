/* SPDX-License-Identifier: MIT */
/*
 * mgmt.h - the control socket: JSON-RPC 2.0 over a unix socket, one request
 * per line. Decodes a request, calls the registered method, encodes the
 * reply. Runs on the control loop only; knows nothing of exports, vhost or
 * storage: modules add their methods with mgmt_register().
 *
 * Adding a method (e.g. "stats"):
 *
 *	static void stats_method(void *opaque, struct mgmt_call *c)
 *	{
 *		const char *name;
 *
 *		if (mgmt_params_only(c, (const char *[]){ "export", NULL }) ||
 *		    mgmt_param_string(c, "export", true, &name))
 *			return;              // the error reply is set already
 *		...
 *		if (!found) {
 *			mgmt_error(c, MGMT_ERR_NOT_FOUND, "no export %s", name);
 *			return;
 *		}
 *		c->result = json_object_new_object();   // owned by the call now
 *		json_object_object_add(c->result, "reads", json_object_new_uint64(n));
 *	}
 *	...
 *	mgmt_register(m, "stats", stats_method, my_state, "per-export statistics");
 *
 * A method runs on the control thread and must not block: reach iothreads
 * with loop_call_timeout (a bounded wait) or loop_post. While it runs, the
 * control socket takes no input (a method may run the control loop, e.g.
 * to wait for queues to stop: no other request is then started under it).
 */
#ifndef VBLK_MGMT_H
#define VBLK_MGMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/compiler.h"

struct json_object;
struct loop;
struct mgmt;

/* JSON-RPC 2.0 error codes (the spec's, then vblkd's own from -32000). */
enum mgmt_err {
	MGMT_ERR_PARSE = -32700,            /* not JSON */
	MGMT_ERR_INVALID_REQUEST = -32600,  /* JSON, but not a request; too large */
	MGMT_ERR_NO_METHOD = -32601,
	MGMT_ERR_INVALID_PARAMS = -32602,   /* missing, unknown or mistyped parameter */
	MGMT_ERR_INTERNAL = -32603,         /* out of memory */
	MGMT_ERR_FAILED = -32000,           /* the operation failed (message says why) */
	MGMT_ERR_NOT_FOUND = -32001,        /* no such object (export) */
	MGMT_ERR_EXISTS = -32002,           /* already exists (socket in use) */
	MGMT_ERR_BUSY = -32003,             /* refused in the current state */
	MGMT_ERR_UNSUPPORTED = -32004,      /* not possible here (sandbox, engine) */
};

/* Limits; see docs/control.md. */
#define MGMT_MAX_REQUEST (64u * 1024)     /* bytes per line */
#define MGMT_MAX_CLIENTS 16
#define MGMT_MAX_BATCH 64
#define MGMT_MAX_DEPTH 32                 /* JSON nesting */
#define MGMT_MAX_REPLY (4u << 20)         /* unsent bytes per client */
#define MGMT_DEFAULT_TIMEOUT_MS 30000     /* idle or partial request */

/* One call of a method. */
struct mgmt_call {
	struct json_object *params;   /* an object, or NULL when absent */
	struct json_object *result;   /* the method's result (the call owns it);
				       * NULL: JSON null */
	int code;                     /* 0, or an error (mgmt_error) */
	char message[256];
};

/* Context: the control thread. Sets c->result, or calls mgmt_error(). */
typedef void (*mgmt_method_cb)(void *opaque, struct mgmt_call *c);

/*
 * mgmt_create - a method registry with the built-in methods ("help",
 * "version"). @ctrl: the control loop (NULL: no socket, mgmt_handle only,
 * as the fuzzer uses it). Return: 0 or -errno.
 * Context: the control thread, before the sandbox (makes a timerfd).
 */
int mgmt_create(struct loop *ctrl, struct mgmt **out);
/*
 * mgmt_listen - listen on the unix socket @path with permissions @mode
 * (the socket file is created with them: no window with wider ones). A
 * stale socket file (nobody listening) is replaced; a live one gives
 * -EADDRINUSE. @timeout_ms: a client that sends no complete request (or
 * reads no reply) for this long is disconnected (0: the default).
 * Context: the control thread, before the sandbox.
 */
int mgmt_listen(struct mgmt *m, const char *path, mode_t mode, unsigned timeout_ms);
/* Close every client and the socket (removing its file), free. */
void mgmt_destroy(struct mgmt *m);

/*
 * mgmt_register - add method @name (a copy is kept; @summary must live as
 * long as @m, a string literal). Return: 0, -EEXIST, -ENOMEM, -EINVAL.
 * Context: the control thread.
 */
int mgmt_register(struct mgmt *m, const char *name, mgmt_method_cb cb, void *opaque,
		  const char *summary);

/*
 * mgmt_handle - run one request line (@len bytes, no newline) and return
 * the reply line (newline-terminated, malloc'd; the caller frees), or NULL
 * when there is nothing to send (notifications only). Never fails on bad
 * input: bad input gets a JSON-RPC error reply.
 * Context: the control thread.
 */
char *mgmt_handle(struct mgmt *m, const char *req, size_t len);

/* Set the call's error (the result is dropped). */
void mgmt_error(struct mgmt_call *c, int code, const char *fmt, ...) PRINTF(3, 4);

/*
 * Parameter helpers: each returns 0, or -EINVAL with the call's error set
 * to MGMT_ERR_INVALID_PARAMS and a message naming the parameter.
 * mgmt_params_only: params is absent or an object whose keys are all in
 * the NULL-terminated @allowed. A missing optional parameter leaves *out
 * unchanged and returns 0. Strings with an embedded NUL are refused.
 */
int mgmt_params_only(struct mgmt_call *c, const char *const *allowed);
int mgmt_param_string(struct mgmt_call *c, const char *key, bool required, const char **out);
int mgmt_param_u64(struct mgmt_call *c, const char *key, bool required, uint64_t *out);
int mgmt_param_bool(struct mgmt_call *c, const char *key, bool required, bool *out);
/* True if the parameter is present (and not null). */
bool mgmt_param_present(struct mgmt_call *c, const char *key);

#endif
