/* SPDX-License-Identifier: MIT */
/*
 * control_qos.c - the export-set-qos and export-get-qos control methods:
 * decode the limits (the same keys as --export), call export_set_qos,
 * encode what is in force. Knows nothing of buckets or iothreads.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "daemon/control.h"
#include "mgmt/mgmt.h"

static struct json_object *qos_json(struct export *e, const char *name)
{
	struct json_object *o = json_object_new_object();
	struct qos_limits l;
	const char *group;

	if (!o)
		return NULL;
	export_get_qos(e, &l, &group);
	json_object_object_add(o, "export", json_object_new_string(name));
	json_object_object_add(o, "qos-group", group ? json_object_new_string(group) : NULL);
	for (int k = 0; k < QOS_NKINDS; k++)
		json_object_object_add(o, qos_kind_name(k), json_object_new_uint64(l.rate[k]));
	json_object_object_add(o, "burst-ms", json_object_new_int(
		(int)(l.burst_ms ? l.burst_ms : QOS_DEFAULT_BURST_MS)));
	return o;
}

static void method_export_get_qos(void *opaque, struct mgmt_call *mc)
{
	struct control *c = opaque;
	const char *name = NULL;
	struct export *e;

	if (mgmt_params_only(mc, (const char *const[]){ "export", NULL }) ||
	    mgmt_param_string(mc, "export", true, &name))
		return;
	e = control_lookup(c, name);
	if (!e) {
		mgmt_error(mc, MGMT_ERR_NOT_FOUND, "no export %s", name);
		return;
	}
	mc->result = qos_json(e, name);
}

/* One key's value: a whole number, or a string as on the command line. */
static int qos_param(struct mgmt_call *mc, struct qos_limits *l, const char **group,
		     const char *key, struct json_object *v)
{
	char err[256], num[32];
	const char *text;
	int ret;

	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) {
		snprintf(num, sizeof(num), "%" PRIu64, json_object_get_uint64(v));
		text = num;
	} else if (json_object_is_type(v, json_type_string) &&
		   strlen(json_object_get_string(v)) == (size_t)json_object_get_string_len(v)) {
		text = json_object_get_string(v);
	} else {
		mgmt_error(mc, MGMT_ERR_INVALID_PARAMS, "parameter '%s' must be a whole number "
			   "or a string", key);
		return -EINVAL;
	}
	if (!strcmp(key, "qos-group") && text == num) {
		mgmt_error(mc, MGMT_ERR_INVALID_PARAMS, "parameter 'qos-group' must be a string");
		return -EINVAL;
	}
	opt_capture(err, sizeof(err));
	ret = qos_opt(l, group, key, text);
	opt_capture(NULL, 0);
	if (ret)
		mgmt_error(mc, MGMT_ERR_INVALID_PARAMS, "%s", err);
	return ret;
}

static void method_export_set_qos(void *opaque, struct mgmt_call *mc)
{
	static const char *const allowed[] = {
		"export", "iops", "iops-rd", "iops-wr", "bps", "bps-rd", "bps-wr", "burst-ms",
		"qos-group", NULL,
	};
	struct control *c = opaque;
	struct qos_limits l, cur;
	const char *name = NULL, *group = NULL, *old_group;
	struct export *e;
	int ret;

	if (mgmt_params_only(mc, allowed) || mgmt_param_string(mc, "export", true, &name))
		return;
	e = control_lookup(c, name);
	if (!e) {
		mgmt_error(mc, MGMT_ERR_NOT_FOUND, "no export %s", name);
		return;
	}
	/* Keys not given keep their value: start from what is in force. */
	export_get_qos(e, &cur, &old_group);
	l = cur;
	json_object_object_foreach(mc->params, key, val) {
		if (!strcmp(key, "export"))
			continue;
		if (!val) {
			mgmt_error(mc, MGMT_ERR_INVALID_PARAMS, "parameter '%s' is null", key);
			return;
		}
		if (qos_param(mc, &l, &group, key, val))
			return;
	}
	/* Joining a group without limits given takes the group's as they are. */
	if (group && *group && !memcmp(&l, &cur, sizeof(l))) {
		ret = export_set_qos(e, NULL, group);
	} else {
		ret = export_set_qos(e, &l, group);
	}
	if (ret) {
		mgmt_error(mc, ret == -ENOSPC ? MGMT_ERR_FAILED : MGMT_ERR_INVALID_PARAMS,
			   ret == -ENOSPC ? "too many QoS groups (at most %d)" :
			   "invalid qos-group", QOS_MAX_GROUPS);
		return;
	}
	mc->result = qos_json(e, name);
}

int control_qos_register(struct control *c, struct mgmt *m)
{
	int ret;

	ret = mgmt_register(m, "export-set-qos", method_export_set_qos, c,
			    "change an export's I/O limits or QoS group");
	if (!ret)
		ret = mgmt_register(m, "export-get-qos", method_export_get_qos, c,
				    "show an export's I/O limits");
	return ret;
}
