/* SPDX-License-Identifier: MIT */
/*
 * control_stats.c - the export-stats control method: a snapshot of every
 * export's statistics (stats.h), totals and per queue, with latency
 * percentiles and the iothreads' CPU time, as JSON (docs/control.md).
 * Runs on the control thread; reads counters the iothreads keep writing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "daemon/control.h"
#include "daemon/control_stats.h"
#include "daemon/stats.h"
#include "mgmt/mgmt.h"

/* The percentiles reported, in millionths, and their JSON keys. */
static const struct {
	uint32_t per_million;
	const char *key;
} stats_percentiles[] = {
	{ 500000, "p50-ns" },
	{ 900000, "p90-ns" },
	{ 990000, "p99-ns" },
	{ 999000, "p999-ns" },
};

static struct json_object *u64(uint64_t v)
{
	return json_object_new_uint64(v);
}

static struct json_object *hist_json(const struct stats_hist *h)
{
	struct json_object *o = json_object_new_object(), *b = json_object_new_array();

	json_object_object_add(o, "count", u64(h->count));
	json_object_object_add(o, "sum-ns", u64(h->sum_ns));
	json_object_object_add(o, "max-ns", u64(h->max_ns));
	for (size_t i = 0; i < ARRAY_SIZE(stats_percentiles); i++)
		json_object_object_add(o, stats_percentiles[i].key,
				       u64(stats_hist_percentile(h, stats_percentiles[i].per_million)));
	/* The non-empty buckets as [upper bound in ns (null: unbounded), count]. */
	for (unsigned i = 0; b && i < STATS_NBUCKETS; i++) {
		uint64_t up = stats_bucket_upper(i);
		struct json_object *pair;

		if (!h->buckets[i])
			continue;
		pair = json_object_new_array();
		json_object_array_add(pair, up == UINT64_MAX ? NULL : u64(up));
		json_object_array_add(pair, u64(h->buckets[i]));
		json_object_array_add(b, pair);
	}
	json_object_object_add(o, "buckets", b);
	return o;
}

/* The fields an export and a queue share. */
static void counters_json(struct json_object *o, const struct stats_queue *s)
{
	struct json_object *ops = json_object_new_object(), *lat = json_object_new_object();

	json_object_object_add(o, "in-flight", u64(stats_inflight(s)));
	for (unsigned i = 0; i < STATS_NOPS; i++) {
		struct json_object *op = json_object_new_object();

		json_object_object_add(op, "requests", u64(s->ops[i]));
		json_object_object_add(op, "bytes", u64(s->bytes[i]));
		json_object_object_add(op, "errors", u64(s->errors[i]));
		json_object_object_add(ops, stats_op_name(i), op);
	}
	json_object_object_add(o, "ops", ops);
	for (unsigned i = 0; i < STATS_NLATS; i++)
		json_object_object_add(lat, stats_lat_name(i), hist_json(&s->lat[i]));
	json_object_object_add(o, "latency", lat);
}

static struct json_object *export_stats_json(const struct export *e, bool queues)
{
	struct json_object *o = json_object_new_object(), *qa = NULL;
	struct stats_queue *sum = calloc(1, sizeof(*sum)), *one = calloc(1, sizeof(*one));
	struct export_info in;

	if (!o || !sum || !one) {
		json_object_put(o);
		o = NULL;
		goto out;
	}
	export_get_info(e, &in);
	json_object_object_add(o, "name", json_object_new_string(in.name));
	if (queues)
		qa = json_object_new_array();
	for (unsigned i = 0; i < export_num_queues(e); i++) {
		struct json_object *q;
		unsigned t = 0;

		memset(one, 0, sizeof(*one));
		export_queue_stats(e, i, one, &t);
		/* The total from the same snapshot as the queues shown. */
		stats_queue_read_add(sum, one);
		if (!qa)
			continue;
		q = json_object_new_object();
		json_object_object_add(q, "queue", json_object_new_int((int)i));
		json_object_object_add(q, "iothread", json_object_new_int((int)t));
		counters_json(q, one);
		json_object_array_add(qa, q);
	}
	counters_json(o, sum);
	if (qa)
		json_object_object_add(o, "queues", qa);
out:
	free(one);
	free(sum);
	return o;
}

static struct json_object *iothreads_json(const struct control *c)
{
	unsigned n;
	struct iothread *const *t = control_iothreads(c, &n);
	struct json_object *a = json_object_new_array();

	for (unsigned i = 0; a && i < n; i++) {
		struct json_object *o = json_object_new_object();
		uint64_t ns;

		json_object_object_add(o, "index", json_object_new_int((int)t[i]->index));
		json_object_object_add(o, "cpu-ns", iothread_cpu_ns(t[i], &ns) ? NULL : u64(ns));
		json_object_array_add(a, o);
	}
	return a;
}

/* The --metrics URL export-stats shows (one daemon, one endpoint). */
static const char *stats_metrics_url;

static void method_export_stats(void *opaque, struct mgmt_call *mc)
{
	struct control *c = opaque;
	const char *name = NULL;
	bool queues = false;
	struct json_object *res, *a;
	struct export *only = NULL;

	if (mgmt_params_only(mc, (const char *const[]){ "export", "queues", NULL }) ||
	    mgmt_param_string(mc, "export", false, &name) ||
	    mgmt_param_bool(mc, "queues", false, &queues))
		return;
	if (!VBLK_STATS) {
		mgmt_error(mc, MGMT_ERR_UNSUPPORTED, "vblkd was built without statistics");
		return;
	}
	if (name && !(only = control_lookup(c, name))) {
		mgmt_error(mc, MGMT_ERR_NOT_FOUND, "no export %s", name);
		return;
	}
	res = json_object_new_object();
	a = json_object_new_array();
	if (!res || !a) {
		json_object_put(res);
		json_object_put(a);
		mgmt_error(mc, MGMT_ERR_INTERNAL, "out of memory");
		return;
	}
	json_object_object_add(res, "time-ns", u64(stats_now_ns()));
	json_object_object_add(res, "metrics", stats_metrics_url ?
			       json_object_new_string(stats_metrics_url) : NULL);
	for (unsigned i = 0; i < control_count(c); i++) {
		struct export *e = control_export(c, i);

		if (!only || e == only)
			json_object_array_add(a, export_stats_json(e, queues));
	}
	json_object_object_add(res, "exports", a);
	json_object_object_add(res, "iothreads", iothreads_json(c));
	mc->result = res;
}

int control_stats_register(struct control *c, struct mgmt *m, const char *metrics_url)
{
	stats_metrics_url = metrics_url;
	return mgmt_register(m, "export-stats", method_export_stats, c,
			     "I/O statistics of one export or all (queues: per queue too)");
}
