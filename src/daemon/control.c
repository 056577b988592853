/* SPDX-License-Identifier: MIT */
/*
 * control.c - the daemon's exports as a set, and the control methods that
 * change it at runtime (export-add, export-remove, export-list,
 * export-resize). Methods decode their params, call export_*(), and encode
 * the result; the exports themselves know nothing of JSON.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "common/log.h"
#include "daemon/control.h"
#include "mgmt/mgmt.h"

#define CONTROL_MAX_KEYS 32

struct dexport {
	struct export *e;
	char **owned;          /* option strings it points into */
	unsigned nowned;
};

struct control {
	struct control_params p;
	unsigned next_queue;   /* where the next export's first queue goes */
	struct dexport list[CONTROL_MAX_EXPORTS];
	unsigned n;
};

static void free_owned(char **owned, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(owned[i]);
	free(owned);
}

int control_create(const struct control_params *p, struct control **out)
{
	struct control *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->p = *p;
	*out = c;
	return 0;
}

static void control_remove_at(struct control *c, unsigned i)
{
	struct dexport d = c->list[i];

	/* Out of the list first: a method running the loop meanwhile (none
	 * can: mgmt pauses) or a log line sees a consistent set. */
	memmove(&c->list[i], &c->list[i + 1], (c->n - i - 1) * sizeof(c->list[0]));
	c->n--;
	export_destroy(d.e);
	free_owned(d.owned, d.nowned);
}

void control_destroy(struct control *c)
{
	if (!c)
		return;
	while (c->n)
		control_remove_at(c, c->n - 1);
	free(c);
}

int control_shutdown(struct control *c, int timeout_ms, int flush_timeout_ms)
{
	struct export *all[CONTROL_MAX_EXPORTS];
	unsigned n;
	int ret;

	if (!c)
		return 0;
	n = c->n;
	for (unsigned i = 0; i < n; i++)
		all[i] = c->list[i].e;
	ret = export_shutdown(all, n, c->p.ctrl, timeout_ms, flush_timeout_ms);
	for (unsigned i = 0; i < n; i++)
		free_owned(c->list[i].owned, c->list[i].nowned);
	c->n = 0;
	return ret;
}

static struct dexport *control_find(struct control *c, const char *name, unsigned *idx)
{
	for (unsigned i = 0; i < c->n; i++) {
		struct export_info info;

		export_get_info(c->list[i].e, &info);
		if (!strcmp(info.name, name) ||
		    (info.socket_path && !strcmp(info.socket_path, name))) {
			if (idx)
				*idx = i;
			return &c->list[i];
		}
	}
	return NULL;
}

unsigned control_count(const struct control *c)
{
	return c->n;
}

struct export *control_export(const struct control *c, unsigned i)
{
	return i < c->n ? c->list[i].e : NULL;
}

struct export *control_lookup(struct control *c, const char *name)
{
	struct dexport *d = control_find(c, name, NULL);

	return d ? d->e : NULL;
}

struct iothread *const *control_iothreads(const struct control *c, unsigned *n)
{
	*n = c->p.niothreads;
	return c->p.iothreads;
}

int control_add(struct control *c, struct export_opts *o, char **owned, unsigned nowned,
		char *err, size_t errlen)
{
	struct export_params *p = &o->p;
	struct export *e;
	int ret;

	opt_capture(err, errlen);
	ret = export_opts_check(o, c->n) ? -EDOM : 0;
	opt_capture(NULL, 0);
	if (ret)
		goto err_free;
	if (c->n == CONTROL_MAX_EXPORTS) {
		snprintf(err, errlen, "too many exports (at most %d)", CONTROL_MAX_EXPORTS);
		ret = -ENOSPC;
		goto err_free;
	}
	if (p->socket_path && control_find(c, p->socket_path, NULL)) {
		snprintf(err, errlen, "an export on %s exists already", p->socket_path);
		ret = -EEXIST;
		goto err_free;
	}
	p->name = p->socket_path ? p->socket_path : "fd";
	if (!p->msg_timeout_ms)
		p->msg_timeout_ms = c->p.msg_timeout_ms;
	p->test_skip_data_log = c->p.test_skip_data_log;
	ret = export_create(p, c->p.ctrl, c->p.iothreads, c->p.niothreads, c->next_queue, &e);
	if (ret) {
		if (ret == -EADDRINUSE) {
			snprintf(err, errlen, "socket %s is in use by another process",
				 p->socket_path);
			ret = -EEXIST;
		} else {
			snprintf(err, errlen, "cannot serve %s: %s",
				 p->storage.engine == STORAGE_NULL ? "the null device" :
				 p->storage.path, strerror(-ret));
		}
		goto err_free;
	}
	c->next_queue += p->num_queues;
	c->list[c->n++] = (struct dexport){ .e = e, .owned = owned, .nowned = nowned };
	if (p->storage.engine == STORAGE_RBD && c->p.poll_event_for_rbd) {
		c->p.poll_event_for_rbd = false;
		log_info("an rbd export: iothreads switch to poll mode event");
		for (unsigned i = 0; i < c->p.niothreads; i++)
			if (iothread_set_poll_mode(c->p.iothreads[i], LOOP_POLL_EVENT, 0))
				log_warn("iothread %u: cannot switch to event mode for rbd", i);
	}
	log_info("serving %s on %s (%u queue%s%s)",
		 p->storage.engine == STORAGE_NULL ? "null device" : p->storage.path,
		 p->socket_path ? p->socket_path : "inherited fd", p->num_queues,
		 p->num_queues > 1 ? "s" : "", p->read_only ? ", read-only" : "");
	return 0;

err_free:
	free_owned(owned, nowned);
	return ret;
}

/* ---- methods ------------------------------------------------------------ */

static const char *engine_name(enum storage_engine engine)
{
	switch (engine) {
	case STORAGE_FILE: return "file";
	case STORAGE_NULL: return "null";
	case STORAGE_RBD: return "rbd";
	}
	return "?";
}

/* Negotiated feature bits by name (the ones a reader cares about). */
static struct json_object *features_json(uint64_t f)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ VIRTIO_BLK_F_SIZE_MAX, "size-max" }, { VIRTIO_BLK_F_SEG_MAX, "seg-max" },
		{ VIRTIO_BLK_F_RO, "read-only" }, { VIRTIO_BLK_F_BLK_SIZE, "blk-size" },
		{ VIRTIO_BLK_F_FLUSH, "flush" }, { VIRTIO_BLK_F_TOPOLOGY, "topology" },
		{ VIRTIO_BLK_F_CONFIG_WCE, "config-wce" }, { VIRTIO_BLK_F_MQ, "mq" },
		{ VIRTIO_BLK_F_DISCARD, "discard" }, { VIRTIO_BLK_F_WRITE_ZEROES, "write-zeroes" },
		{ VIRTIO_RING_F_INDIRECT_DESC, "indirect-desc" },
		{ VIRTIO_RING_F_EVENT_IDX, "event-idx" }, { VIRTIO_F_VERSION_1, "version-1" },
		{ VIRTIO_F_RING_PACKED, "ring-packed" }, { 42 /* VHOST_F_LOG_ALL */, "log-all" },
		{ VIRTIO_F_ACCESS_PLATFORM, "access-platform" },
	};
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < sizeof(names) / sizeof(names[0]); i++)
		if (f & (1ull << names[i].bit))
			json_object_array_add(a, json_object_new_string(names[i].name));
	return a;
}

static struct json_object *export_json(const struct export *e)
{
	struct export_info in;
	struct json_object *o = json_object_new_object();
	char hex[24];

	if (!o)
		return NULL;
	export_get_info(e, &in);
	json_object_object_add(o, "name", json_object_new_string(in.name));
	json_object_object_add(o, "socket-path",
			       in.socket_path ? json_object_new_string(in.socket_path) : NULL);
	json_object_object_add(o, "engine", json_object_new_string(engine_name(in.engine)));
	json_object_object_add(o, "image", in.image ? json_object_new_string(in.image) : NULL);
	json_object_object_add(o, "size", json_object_new_uint64(in.size));
	json_object_object_add(o, "num-queues", json_object_new_int((int)in.num_queues));
	json_object_object_add(o, "queue-size", json_object_new_int((int)in.queue_size));
	json_object_object_add(o, "read-only", json_object_new_boolean(in.read_only));
	json_object_object_add(o, "connected", json_object_new_boolean(in.connected));
	snprintf(hex, sizeof(hex), "0x%" PRIx64, in.features);
	json_object_object_add(o, "features", json_object_new_string(hex));
	json_object_object_add(o, "feature-names", features_json(in.features));
	json_object_object_add(o, "ring", !in.features ? NULL :
			       json_object_new_string(in.features & (1ull << VIRTIO_F_RING_PACKED) ?
						      "packed" : "split"));
	return o;
}

static void method_export_list(void *opaque, struct mgmt_call *mc)
{
	struct control *c = opaque;
	const char *name = NULL;
	struct json_object *a;

	if (mgmt_params_only(mc, (const char *const[]){ "export", NULL }) ||
	    mgmt_param_string(mc, "export", false, &name))
		return;
	if (name && !control_find(c, name, NULL)) {
		mgmt_error(mc, MGMT_ERR_NOT_FOUND, "no export %s", name);
		return;
	}
	a = json_object_new_array();
	for (unsigned i = 0; a && i < c->n; i++) {
		struct export_info in;

		export_get_info(c->list[i].e, &in);
		if (!name || !strcmp(in.name, name) ||
		    (in.socket_path && !strcmp(in.socket_path, name)))
			json_object_array_add(a, export_json(c->list[i].e));
	}
	mc->result = a;
}

/* A param value as the text the command line would give. */
static int param_text(struct mgmt_call *mc, const char *key, struct json_object *v, char **out)
{
	switch (json_object_get_type(v)) {
	case json_type_string: {
		const char *s = json_object_get_string(v);

		if (strlen(s) != (size_t)json_object_get_string_len(v))
			break;
		*out = strdup(s);
		return *out ? 0 : -ENOMEM;
	}
	case json_type_int:
		if (json_object_get_int64(v) < 0)
			break;
		return asprintf(out, "%" PRIu64, json_object_get_uint64(v)) < 0 ? -ENOMEM : 0;
	case json_type_boolean:
		*out = strdup(json_object_get_boolean(v) ? "on" : "off");
		return *out ? 0 : -ENOMEM;
	default:
		break;
	}
	mgmt_error(mc, MGMT_ERR_INVALID_PARAMS,
		   "parameter '%s' must be a string, a whole number or true/false", key);
	return -EINVAL;
}

static void method_export_add(void *opaque, struct mgmt_call *mc)
{
	struct control *c = opaque;
	struct export_opts o;
	char **owned, err[256] = "";
	unsigned n = 0;
	int ret;

	if (!mc->params || json_object_object_length(mc->params) == 0) {
		mgmt_error(mc, MGMT_ERR_INVALID_PARAMS,
			   "give the export's options: socket-path, file, rbd or null, ...");
		return;
	}
	if (json_object_object_length(mc->params) > CONTROL_MAX_KEYS) {
		mgmt_error(mc, MGMT_ERR_INVALID_PARAMS, "too many parameters");
		return;
	}
	owned = calloc(CONTROL_MAX_KEYS, sizeof(*owned));
	if (!owned) {
		mgmt_error(mc, MGMT_ERR_INTERNAL, "out of memory");
		return;
	}
	export_opts_init(&o);
	json_object_object_foreach(mc->params, key, val) {
		if (!strcmp(key, "fd")) {
			mgmt_error(mc, MGMT_ERR_INVALID_PARAMS,
				   "fd is for the command line only; give socket-path");
			goto err;
		}
		if (!val) {
			mgmt_error(mc, MGMT_ERR_INVALID_PARAMS, "parameter '%s' is null", key);
			goto err;
		}
		ret = param_text(mc, key, val, &owned[n]);
		if (ret) {
			if (ret == -ENOMEM)
				mgmt_error(mc, MGMT_ERR_INTERNAL, "out of memory");
			goto err;
		}
		n++;
		opt_capture(err, sizeof(err));
		ret = export_opt(&o, key, owned[n - 1]);
		opt_capture(NULL, 0);
		if (ret) {
			mgmt_error(mc, MGMT_ERR_INVALID_PARAMS, "%s", err);
			goto err;
		}
	}
	if (o.p.storage.engine == STORAGE_RBD && o.have_target && !c->p.runtime_rbd) {
		mgmt_error(mc, MGMT_ERR_UNSUPPORTED, "rbd exports cannot be added at runtime under "
			   "the sandbox (librbd's network access is not allowed): start vblkd with "
			   "an rbd export, or with --sandbox=off");
		goto err;
	}
	ret = control_add(c, &o, owned, n, err, sizeof(err));
	if (ret == -EDOM && !strncmp(err, "export ", 7) && strstr(err, ": ")) {
		/* The command line's "export N: ..." prefix means nothing here. */
		char *msg = strstr(err, ": ") + 2;

		memmove(err, msg, strlen(msg) + 1);
	}
	if (ret) {
		mgmt_error(mc, ret == -EEXIST ? MGMT_ERR_EXISTS :
			   ret == -EDOM ? MGMT_ERR_INVALID_PARAMS : MGMT_ERR_FAILED, "%s", err);
		return;   /* control_add freed the strings */
	}
	mc->result = export_json(c->list[c->n - 1].e);
	return;

err:
	free_owned(owned, n);
}

static void method_export_remove(void *opaque, struct mgmt_call *mc)
{
	struct control *c = opaque;
	const char *name = NULL;
	bool force = false, connected;
	char *copy;
	unsigned i;

	if (mgmt_params_only(mc, (const char *const[]){ "export", "force", NULL }) ||
	    mgmt_param_string(mc, "export", true, &name) ||
	    mgmt_param_bool(mc, "force", false, &force))
		return;
	if (!control_find(c, name, &i)) {
		mgmt_error(mc, MGMT_ERR_NOT_FOUND, "no export %s", name);
		return;
	}
	connected = export_connected(c->list[i].e);
	if (connected && !force) {
		mgmt_error(mc, MGMT_ERR_BUSY, "a frontend is connected to %s; remove it from the "
			   "VM first, or force", name);
		return;
	}
	copy = strdup(name);
	if (connected)
		log_warn("%s: removing the export with its frontend connected (forced)", name);
	control_remove_at(c, i);
	log_info("%s: export removed", copy ? copy : "export");
	mc->result = json_object_new_object();
	json_object_object_add(mc->result, "export", json_object_new_string(copy ? copy : name));
	json_object_object_add(mc->result, "was-connected", json_object_new_boolean(connected));
	free(copy);
}

static void method_export_resize(void *opaque, struct mgmt_call *mc)
{
	struct control *c = opaque;
	struct export_resize_result res;
	const char *name = NULL, *size_s = NULL;
	struct dexport *d;
	uint64_t size = 0;
	char err[256];
	int ret;

	if (mgmt_params_only(mc, (const char *const[]){ "export", "size", NULL }) ||
	    mgmt_param_string(mc, "export", true, &name))
		return;
	if (mgmt_param_present(mc, "size")) {
		if (mgmt_param_string(mc, "size", false, &size_s) == 0) {
			opt_capture(err, sizeof(err));
			ret = opt_parse_size("size", size_s, &size);
			opt_capture(NULL, 0);
			if (ret) {
				mgmt_error(mc, MGMT_ERR_INVALID_PARAMS, "%s", err);
				return;
			}
		} else {
			mc->code = 0;
			if (mgmt_param_u64(mc, "size", true, &size))
				return;
			if (size == 0 || size % 512) {
				mgmt_error(mc, MGMT_ERR_INVALID_PARAMS, "parameter 'size' must be a "
					   "non-zero multiple of 512 bytes");
				return;
			}
		}
	}
	d = control_find(c, name, NULL);
	if (!d) {
		mgmt_error(mc, MGMT_ERR_NOT_FOUND, "no export %s", name);
		return;
	}
	ret = export_resize(d->e, size, &res);
	if (ret) {
		mgmt_error(mc, ret == -EROFS || ret == -EOPNOTSUPP ? MGMT_ERR_UNSUPPORTED :
			   MGMT_ERR_FAILED, "cannot resize %s: %s%s", name, strerror(-ret),
			   ret == -EOPNOTSUPP ? " (resize the device or image itself, then "
			   "resize without a size to pick it up)" : "");
		return;
	}
	mc->result = json_object_new_object();
	json_object_object_add(mc->result, "old-size", json_object_new_uint64(res.old_size));
	json_object_object_add(mc->result, "new-size", json_object_new_uint64(res.new_size));
	json_object_object_add(mc->result, "guest-notified",
			       json_object_new_boolean(res.notify == 0 &&
						       res.new_size != res.old_size));
	if (res.notify && res.new_size != res.old_size)
		json_object_object_add(mc->result, "notify-error", json_object_new_string(
			res.notify == -ENOTCONN ? "no frontend connected, or it gave no backend "
			"request channel: the guest sees the size when it next reads the config" :
			strerror(-res.notify)));
}

int control_register(struct control *c, struct mgmt *m)
{
	int ret;

	ret = mgmt_register(m, "export-add", method_export_add, c,
			    "add an export (the --export keys as params)");
	if (!ret)
		ret = mgmt_register(m, "export-remove", method_export_remove, c,
				    "remove an export (force: even with a frontend connected)");
	if (!ret)
		ret = mgmt_register(m, "export-list", method_export_list, c,
				    "list the exports");
	if (!ret)
		ret = mgmt_register(m, "export-resize", method_export_resize, c,
				    "resize an export, or pick up its image's new size");
	if (!ret)
		ret = control_qos_register(c, m);
	return ret;
}
