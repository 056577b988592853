/* SPDX-License-Identifier: MIT */
/*
 * vblkctl_stats.c - `vblkctl stats`: export-stats as a table per export,
 * and --watch, which samples it every interval and prints per-second
 * rates and the interval's latencies like iostat (the difference of two
 * samples: counters and histogram buckets).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "vblkctl.h"

/* The request types, in the order export-stats gives them. */
static const char *const op_names[] = {
	"read", "write", "flush", "discard", "write-zeroes", "get-id", "other",
};

static struct json_object *get(struct json_object *o, const char *k1, const char *k2)
{
	struct json_object *v = NULL;

	if (o && json_object_object_get_ex(o, k1, &v) && k2)
		json_object_object_get_ex(v, k2, &v);
	return v;
}

/* 850 -> "850ns", 12345 -> "12.3us", 4560000 -> "4.56ms". */
static const char *human_ns(uint64_t ns, char *buf, size_t n)
{
	if (ns < 1000)
		snprintf(buf, n, "%" PRIu64 "ns", ns);
	else if (ns < 1000000)
		snprintf(buf, n, "%.1fus", ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, n, "%.2fms", ns / 1e6);
	else
		snprintf(buf, n, "%.2fs", ns / 1e9);
	return buf;
}

/* One export's (or queue's) counters as a table, one row per type. */
static void print_counters(struct json_object *o)
{
	static const char *const pct[] = { "p50-ns", "p90-ns", "p99-ns", "p999-ns", "max-ns" };
	char b[6][32];

	printf("  %-13s %10s %9s %7s %8s %8s %8s %8s %8s %8s\n", "TYPE", "REQUESTS", "BYTES",
	       "ERRORS", "AVG", "P50", "P90", "P99", "P99.9", "MAX");
	for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++) {
		struct json_object *op = get(o, "ops", op_names[i]);
		struct json_object *lat = get(o, "latency", op_names[i]);
		uint64_t count = ju64(lat, "count");

		printf("  %-13s %10" PRIu64 " %9s %7" PRIu64, op_names[i], ju64(op, "requests"),
		       human_size(ju64(op, "bytes"), b[0], sizeof(b[0])), ju64(op, "errors"));
		if (lat && count) {
			printf(" %8s", human_ns(ju64(lat, "sum-ns") / count, b[0], sizeof(b[0])));
			for (size_t k = 0; k < 5; k++)
				printf(" %8s", human_ns(ju64(lat, pct[k]), b[k + 1], sizeof(b[k + 1])));
		} else if (lat) {
			printf(" %8s %8s %8s %8s %8s %8s", "-", "-", "-", "-", "-", "-");
		}
		printf("\n");
	}
}

static void print_stats(struct json_object *res)
{
	struct json_object *ex = get(res, "exports", NULL), *th = get(res, "iothreads", NULL);

	for (size_t i = 0; ex && i < json_object_array_length(ex); i++) {
		struct json_object *e = json_object_array_get_idx(ex, i), *qs = get(e, "queues", NULL);

		printf("%sexport %s (in flight: %" PRIu64 ")\n", i ? "\n" : "", jstr(e, "name", "?"),
		       ju64(e, "in-flight"));
		print_counters(e);
		for (size_t q = 0; qs && q < json_object_array_length(qs); q++) {
			struct json_object *qo = json_object_array_get_idx(qs, q);

			printf(" queue %" PRIu64 " (iothread %" PRIu64 ", in flight: %" PRIu64 ")\n",
			       ju64(qo, "queue"), ju64(qo, "iothread"), ju64(qo, "in-flight"));
			print_counters(qo);
		}
	}
	if (th && json_object_array_length(th))
		printf("\niothread CPU time:");
	for (size_t i = 0; th && i < json_object_array_length(th); i++) {
		struct json_object *t = json_object_array_get_idx(th, i);

		printf(" %" PRIu64 ": %.3fs", ju64(t, "index"), ju64(t, "cpu-ns") / 1e9);
	}
	if (th && json_object_array_length(th))
		printf("\n");
	if (get(res, "metrics", NULL))
		printf("metrics: %s\n", jstr(res, "metrics", ""));
}

/* ---- --watch ------------------------------------------------------------ */

/* An export of the previous sample by name, or NULL. */
static struct json_object *find_export(struct json_object *res, const char *name)
{
	struct json_object *ex = get(res, "exports", NULL);

	for (size_t i = 0; ex && i < json_object_array_length(ex); i++) {
		struct json_object *e = json_object_array_get_idx(ex, i);

		if (!strcmp(jstr(e, "name", ""), name))
			return e;
	}
	return NULL;
}

static uint64_t delta(struct json_object *now, struct json_object *then, const char *k1,
		      const char *k2, const char *k3)
{
	uint64_t a = ju64(get(now, k1, k2), k3), b = ju64(get(then, k1, k2), k3);

	return a > b ? a - b : 0;
}

static uint64_t bucket_upper(struct json_object *pair)
{
	struct json_object *up = json_object_array_get_idx(pair, 0);

	return up ? json_object_get_uint64(up) : UINT64_MAX;
}

/*
 * The @per_mille percentile of the requests of type @op completed between
 * the two samples: the buckets' differences (both lists ascend by bound).
 */
static uint64_t interval_percentile(struct json_object *now, struct json_object *then,
				    const char *op, unsigned per_mille, uint64_t count)
{
	struct json_object *bn = get(get(now, "latency", op), "buckets", NULL);
	struct json_object *bt = get(get(then, "latency", op), "buckets", NULL);
	size_t nt = bt ? json_object_array_length(bt) : 0, j = 0;
	uint64_t rank = (count * per_mille + 999) / 1000, seen = 0;

	for (size_t i = 0; bn && i < json_object_array_length(bn); i++) {
		struct json_object *p = json_object_array_get_idx(bn, i);
		uint64_t up = bucket_upper(p), c = json_object_get_uint64(json_object_array_get_idx(p, 1));

		while (j < nt && bucket_upper(json_object_array_get_idx(bt, j)) < up)
			j++;
		if (j < nt && bucket_upper(json_object_array_get_idx(bt, j)) == up) {
			uint64_t old = json_object_get_uint64(
				json_object_array_get_idx(json_object_array_get_idx(bt, j), 1));

			c = c > old ? c - old : 0;
		}
		seen += c;
		if (rank && seen >= rank)
			return up == UINT64_MAX ? ju64(get(now, "latency", op), "max-ns") : up;
	}
	return 0;
}

struct rates {
	double rps, wps, fps, rbps, wbps, errps;
	uint64_t r_avg, r_p99, w_avg, w_p99, inflight;
};

static void export_rates(struct json_object *now, struct json_object *then, double secs,
			 struct rates *r)
{
	uint64_t rn = delta(now, then, "latency", "read", "count");
	uint64_t wn = delta(now, then, "latency", "write", "count");
	uint64_t errs = 0;

	for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		errs += delta(now, then, "ops", op_names[i], "errors");
	r->rps = delta(now, then, "ops", "read", "requests") / secs;
	r->wps = delta(now, then, "ops", "write", "requests") / secs;
	r->fps = delta(now, then, "ops", "flush", "requests") / secs;
	r->rbps = delta(now, then, "ops", "read", "bytes") / secs;
	r->wbps = delta(now, then, "ops", "write", "bytes") / secs;
	r->errps = errs / secs;
	r->r_avg = rn ? delta(now, then, "latency", "read", "sum-ns") / rn : 0;
	r->w_avg = wn ? delta(now, then, "latency", "write", "sum-ns") / wn : 0;
	r->r_p99 = interval_percentile(now, then, "read", 990, rn);
	r->w_p99 = interval_percentile(now, then, "write", 990, wn);
	r->inflight = ju64(now, "in-flight");
}

static void print_rates_json(struct json_object *now, struct json_object *then, double secs)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	struct json_object *ex = get(now, "exports", NULL);

	json_object_object_add(o, "interval-s", json_object_new_double(secs));
	for (size_t i = 0; ex && i < json_object_array_length(ex); i++) {
		struct json_object *e = json_object_array_get_idx(ex, i), *x;
		struct json_object *prev = find_export(then, jstr(e, "name", ""));
		struct rates r;

		if (!prev)
			continue;   /* added since the last sample: rates next time */
		export_rates(e, prev, secs, &r);
		x = json_object_new_object();
		json_object_object_add(x, "name", json_object_new_string(jstr(e, "name", "")));
		json_object_object_add(x, "reads-per-s", json_object_new_double(r.rps));
		json_object_object_add(x, "writes-per-s", json_object_new_double(r.wps));
		json_object_object_add(x, "flushes-per-s", json_object_new_double(r.fps));
		json_object_object_add(x, "read-bytes-per-s", json_object_new_double(r.rbps));
		json_object_object_add(x, "write-bytes-per-s", json_object_new_double(r.wbps));
		json_object_object_add(x, "errors-per-s", json_object_new_double(r.errps));
		json_object_object_add(x, "read-avg-ns", json_object_new_uint64(r.r_avg));
		json_object_object_add(x, "read-p99-ns", json_object_new_uint64(r.r_p99));
		json_object_object_add(x, "write-avg-ns", json_object_new_uint64(r.w_avg));
		json_object_object_add(x, "write-p99-ns", json_object_new_uint64(r.w_p99));
		json_object_object_add(x, "in-flight", json_object_new_uint64(r.inflight));
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "exports", a);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void print_rates(struct json_object *now, struct json_object *then, double secs)
{
	struct json_object *ex = get(now, "exports", NULL);
	char b[4][32];

	printf("%-24s %9s %9s %8s %8s %8s %8s %8s %8s %8s %6s\n", "EXPORT", "r/s", "w/s",
	       "rMB/s", "wMB/s", "f/s", "r_avg", "r_p99", "w_avg", "w_p99", "inflt");
	for (size_t i = 0; ex && i < json_object_array_length(ex); i++) {
		struct json_object *e = json_object_array_get_idx(ex, i);
		struct json_object *prev = find_export(then, jstr(e, "name", ""));
		struct rates r;

		if (!prev)
			continue;
		export_rates(e, prev, secs, &r);
		printf("%-24s %9.1f %9.1f %8.2f %8.2f %8.1f %8s %8s %8s %8s %6" PRIu64 "\n",
		       jstr(e, "name", "?"), r.rps, r.wps, r.rbps / 1e6, r.wbps / 1e6, r.fps,
		       r.r_avg ? human_ns(r.r_avg, b[0], sizeof(b[0])) : "-",
		       r.r_p99 ? human_ns(r.r_p99, b[1], sizeof(b[1])) : "-",
		       r.w_avg ? human_ns(r.w_avg, b[2], sizeof(b[2])) : "-",
		       r.w_p99 ? human_ns(r.w_p99, b[3], sizeof(b[3])) : "-", r.inflight);
	}
	printf("\n");
	fflush(stdout);
}

static int sample(int fd, const char *control, struct json_object *params, int timeout_ms,
		  struct json_object **reply, struct json_object **res)
{
	int rc = call_method(fd, control, "export-stats", params, timeout_ms, reply);

	if (!rc)
		json_object_object_get_ex(*reply, "result", res);
	return rc;
}

static int watch(int fd, const char *control, struct json_object *params, int timeout_ms,
		 double interval, unsigned long count)
{
	struct json_object *prev_reply = NULL, *prev = NULL, *reply, *res = NULL;
	int rc = sample(fd, control, params, timeout_ms, &prev_reply, &prev);

	for (unsigned long n = 0; !rc && (count == 0 || n < count); n++) {
		struct timespec ts = { (time_t)interval,
				       (long)((interval - (double)(time_t)interval) * 1e9) };
		double secs;

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		rc = sample(fd, control, params, timeout_ms, &reply, &res);
		if (rc)
			break;
		/* The daemon's clock: the time between the two samples. */
		secs = (double)(ju64(res, "time-ns") - ju64(prev, "time-ns")) / 1e9;
		if (secs <= 0)
			secs = interval;
		if (opt_json)
			print_rates_json(res, prev, secs);
		else
			print_rates(res, prev, secs);
		json_object_put(prev_reply);
		prev_reply = reply;
		prev = res;
	}
	json_object_put(prev_reply);
	return rc;
}

int stats_command(const char *control, int timeout_ms, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "queues", no_argument, NULL, 'q' },
		{ "watch", no_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct json_object *params, *reply = NULL, *res = NULL;
	bool queues = false, watching = false;
	unsigned long count = 0;
	double interval = 1;
	int opt, fd, rc;
	char *end;

	/* argv[-1] is "stats": getopt sees it as the program name. */
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc + 1, argv - 1, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'q': queues = true; break;
		case 'w': watching = true; break;
		case 'j': opt_json = true; break;
		case 'i':
			errno = 0;
			interval = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(interval >= 0.1 && interval <= 3600))
				return usage_error("invalid interval '%s' (0.1-3600 seconds)", optarg);
			break;
		case 'n':
			errno = 0;
			count = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-' || count == 0)
				return usage_error("invalid count '%s' (a positive number)", optarg);
			break;
		default:
			return usage_error("stats: unknown option or missing value (%s)",
					   "see --help");
		}
	}
	argc -= optind - 1;
	argv += optind - 1;
	if (argc > 1)
		return usage_error("stats takes at most one export, not '%s'", argv[1]);
	if ((count || interval != 1) && !watching)
		return usage_error("%s only go with --watch", "--interval and --count");
	if (watching && queues)
		return usage_error("%s: --watch shows exports only", "--queues");
	params = json_object_new_object();
	if (argc)
		json_object_object_add(params, "export", json_object_new_string(argv[0]));
	if (queues)
		json_object_object_add(params, "queues", json_object_new_boolean(1));
	fd = connect_control(control);
	if (fd < 0) {
		json_object_put(params);
		return EXIT_CONN;
	}
	if (watching) {
		rc = watch(fd, control, params, timeout_ms, interval, count);
	} else {
		rc = sample(fd, control, params, timeout_ms, &reply, &res);
		if (!rc && opt_json)
			print_json(res);
		else if (!rc)
			print_stats(res);
		json_object_put(reply);
	}
	close(fd);
	json_object_put(params);
	return rc;
}
