/* SPDX-License-Identifier: MIT */
/*
 * fuzz_mgmt_rpc.c - the control socket's request decoder (mgmt_handle):
 * one request line as a client sends it, run against the built-in methods
 * and a test method that reads parameters of every type through the
 * helpers. The reply must be NULL (notifications only) or one line of
 * valid JSON: a JSON-RPC response object, or a non-empty array of them.
 *
 * Input: the line's bytes (no newline; any bytes, NULs included).
 */
#include <json-c/json.h>

#include "fuzz.h"
#include "mgmt/mgmt.h"

static struct mgmt *m;

/* Reads every kind of parameter; the result echoes what it got. */
static void method_t(void *opaque, struct mgmt_call *c)
{
	const char *s = "";
	uint64_t n = 0;
	bool b = false;

	if (mgmt_params_only(c, (const char *const[]){ "s", "n", "b", NULL }) ||
	    mgmt_param_string(c, "s", false, &s) || mgmt_param_u64(c, "n", false, &n) ||
	    mgmt_param_bool(c, "b", false, &b))
		return;
	FUZZ_CHECK(c->code == 0, "helpers passed but an error is set");
	c->result = json_object_new_object();
	json_object_object_add(c->result, "s", json_object_new_string(s));
	json_object_object_add(c->result, "n", json_object_new_uint64(n));
	json_object_object_add(c->result, "b", json_object_new_boolean(b));
}

static void check_response(struct json_object *r)
{
	struct json_object *v;
	bool res, err;

	FUZZ_CHECK(json_object_is_type(r, json_type_object), "a response is not an object");
	FUZZ_CHECK(json_object_object_get_ex(r, "jsonrpc", &v) &&
		   !strcmp(json_object_get_string(v), "2.0"), "no jsonrpc 2.0");
	FUZZ_CHECK(json_object_object_get_ex(r, "id", &v), "no id");
	res = json_object_object_get_ex(r, "result", &v);
	err = json_object_object_get_ex(r, "error", &v);
	FUZZ_CHECK(res != err, "result and error: exactly one");
	if (err) {
		struct json_object *code;

		FUZZ_CHECK(json_object_object_get_ex(v, "code", &code) &&
			   json_object_is_type(code, json_type_int), "error without a code");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *r;
	char *reply;
	size_t len;

	if (!m) {
		fuzz_quiet_logs();
		FUZZ_SETUP(mgmt_create(NULL, &m) == 0, "mgmt_create");
		FUZZ_SETUP(mgmt_register(m, "t", method_t, NULL, "test") == 0, "register");
	}
	reply = mgmt_handle(m, (const char *)data, size);
	if (!reply)
		return 0;
	len = strlen(reply);
	FUZZ_CHECK(len > 1 && reply[len - 1] == '\n', "reply is not one line");
	FUZZ_CHECK(memchr(reply, '\n', len - 1) == NULL, "reply has a newline inside");
	r = json_tokener_parse(reply);
	FUZZ_CHECK(r != NULL, "reply is not JSON: %.200s", reply);
	if (json_object_is_type(r, json_type_array)) {
		FUZZ_CHECK(json_object_array_length(r) > 0, "empty batch reply");
		for (size_t i = 0; i < json_object_array_length(r); i++)
			check_response(json_object_array_get_idx(r, i));
	} else {
		check_response(r);
	}
	json_object_put(r);
	free(reply);
	return 0;
}
