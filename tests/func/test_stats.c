/* SPDX-License-Identifier: MIT */
/*
 * test_stats.c - vblkd's statistics against the real daemon (default
 * sandbox): a test frontend does a known mix of requests on two queues
 * (every type, errors, 1000 reads in flight on a ring of 1024), then
 * export-stats must show exactly those requests, bytes and errors, per
 * queue and in total, with latency histograms that hold every request and
 * monotonic percentiles; bad params are refused. With --metrics, the
 * Prometheus endpoint is scraped and parsed by python3-prometheus-client
 * (check_metrics.py) and its numbers compared with the same I/O.
 *
 * Usage: test_stats VBLKD [CHECK_METRICS_PY]. Prints TAP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <json-c/json.h>

#include "tap.h"
#include "vblk_client.h"
#include "mgmt/mgmt.h"
#include "mgmt/mgmt_client.h"

#define TMO 5000
#define SECT 512u
#define NFLIGHT 1000u

static struct vblkd_proc proc;
static char ctl[300], sock[300], img[300], log_path[300];
static int cfd = -1;

/* The value at a dotted @path ("ops.read.requests"); NULL if absent. */
static struct json_object *at(struct json_object *o, const char *path)
{
	char key[64];

	while (o && *path) {
		size_t n = strcspn(path, ".");

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		path += n + (path[n] == '.');
	}
	return o;
}

/* A number at @path, or -1 when it is missing or not an integer. */
static int64_t num(struct json_object *o, const char *path)
{
	struct json_object *v = at(o, path);

	return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

/* export-stats with @params (JSON text or NULL): the reply (error or result). */
static struct json_object *stats_call(const char *params)
{
	struct json_object *p = params ? json_tokener_parse(params) : NULL, *r = NULL;

	if (params && !p)
		tap_bail("bad test params %s", params);
	if (mgmt_client_call(cfd, "export-stats", p, &r, TMO))
		r = NULL;
	json_object_put(p);
	return r;
}

/* The first export of export-stats(@params), a new reference; NULL if none. */
static struct json_object *export0(const char *params)
{
	struct json_object *r = stats_call(params), *e = at(r, "result.exports"), *x = NULL;

	if (e && json_object_is_type(e, json_type_array) && json_object_array_length(e) > 0)
		x = json_object_get(json_object_array_get_idx(e, 0));
	json_object_put(r);
	return x;
}

static uint8_t io(struct vblk_client *c, unsigned q, uint32_t type, uint64_t sector,
		  const void *out, size_t out_len, size_t in_len)
{
	static uint8_t in[1 << 16];
	uint8_t status = 0xff;

	if (vblk_client_io(c, q, type, sector, out, out_len, in_len ? in : NULL, in_len, 0, TMO,
			   &status, NULL))
		return 0xfe;
	return status;
}

/* What the known I/O below must leave, per type and queue (errors: queue 0). */
struct want {
	const char *op;
	int64_t n0, n1, bytes0, bytes1, errors0;
};

static const struct want wants[] = {
	{ "read", 8, NFLIGHT, 7 * 4096, NFLIGHT * 4096, 1 },
	{ "write", 10, 0, 10 * 8192, 0, 0 },
	{ "flush", 3, 0, 0, 0, 0 },
	{ "discard", 2, 0, 2 * 8 * SECT, 0, 0 },
	{ "write-zeroes", 1, 0, 16 * SECT, 0, 0 },
	{ "get-id", 2, 0, 0, 0, 0 },
	{ "other", 1, 0, 0, 0, 1 },
};

static void do_io(struct vblk_client *c)
{
	static uint8_t buf[8192];
	static struct vblk_req reqs[NFLIGHT];
	struct virtio_blk_discard_write_zeroes seg = { 0 };
	uint64_t end = vblk_client_config(c)->capacity;
	unsigned good = 0, bad = 0, submitted = 0;

	vblk_fill(buf, sizeof(buf), 5);
	for (unsigned i = 0; i < 10; i++)
		bad += io(c, 0, VIRTIO_BLK_T_OUT, i * 16, buf, 8192, 0) != VIRTIO_BLK_S_OK;
	for (unsigned i = 0; i < 7; i++)
		bad += io(c, 0, VIRTIO_BLK_T_IN, i * 8, NULL, 0, 4096) != VIRTIO_BLK_S_OK;
	for (unsigned i = 0; i < 3; i++)
		bad += io(c, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0) != VIRTIO_BLK_S_OK;
	for (unsigned i = 0; i < 2; i++)
		bad += io(c, 0, VIRTIO_BLK_T_GET_ID, 0, NULL, 0, 20) != VIRTIO_BLK_S_OK;
	for (unsigned i = 0; i < 2; i++) {
		seg.sector = htole64(1024 + i * 64);
		seg.num_sectors = htole32(8);
		bad += io(c, 0, VIRTIO_BLK_T_DISCARD, 0, &seg, sizeof(seg), 0) != VIRTIO_BLK_S_OK;
	}
	seg.sector = htole64(2048);
	seg.num_sectors = htole32(16);
	bad += io(c, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, &seg, sizeof(seg), 0) != VIRTIO_BLK_S_OK;
	is(bad, 0, "known I/O: every good request completed OK");
	is(io(c, 0, VIRTIO_BLK_T_IN, end, NULL, 0, 4096), VIRTIO_BLK_S_IOERR,
	   "a read past the end: IOERR");
	is(io(c, 0, 99, 0, NULL, 0, 0), VIRTIO_BLK_S_UNSUPP, "an unknown type: UNSUPP");

	/* Queue 1: 1000 reads in flight at once on a ring of 1024. */
	for (unsigned i = 0; i < NFLIGHT; i++)
		submitted += vblk_client_submit(c, 1, &reqs[i], VIRTIO_BLK_T_IN, (uint64_t)i * 8,
						NULL, 0, 4096, VBLK_REQ_INDIRECT) == 0;
	vblk_client_kick(c, 1, true);
	for (unsigned i = 0; i < submitted; i++)
		good += vblk_client_wait(c, 1, &reqs[i], TMO) == 0 &&
			*reqs[i].status == VIRTIO_BLK_S_OK;
	is(good, NFLIGHT, "%u reads in flight at once on queue 1 all completed", NFLIGHT);
}

static void check_latency(struct json_object *e, const char *lat, int64_t count)
{
	char p[64];
	static const char *const keys[] = { "p50-ns", "p90-ns", "p99-ns", "p999-ns", "max-ns" };
	struct json_object *b;
	int64_t prev = 0, sum = 0;
	bool mono = true;

	snprintf(p, sizeof(p), "latency.%s.count", lat);
	is(num(e, p), count, "latency %s: count", lat);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		int64_t v;

		snprintf(p, sizeof(p), "latency.%s.%s", lat, keys[i]);
		v = num(e, p);
		if (v < prev || v <= 0)
			mono = false;
		prev = v;
	}
	ok(mono, "latency %s: 0 < p50 <= p90 <= p99 <= p99.9 <= max", lat);
	snprintf(p, sizeof(p), "latency.%s.buckets", lat);
	b = at(e, p);
	for (size_t i = 0; b && i < json_object_array_length(b); i++)
		sum += json_object_get_int64(json_object_array_get_idx(
			json_object_array_get_idx(b, i), 1));
	is(sum, count, "latency %s: the buckets hold every request", lat);
	snprintf(p, sizeof(p), "latency.%s.sum-ns", lat);
	ok(num(e, p) >= count, "latency %s: a sum of at least 1 ns each", lat);
}

static void check_counts(struct json_object *e, const char *what, bool q0, bool q1)
{
	char p[64];

	for (size_t i = 0; i < ARRAY_SIZE(wants); i++) {
		const struct want *w = &wants[i];

		snprintf(p, sizeof(p), "ops.%s.requests", w->op);
		is(num(e, p), (q0 ? w->n0 : 0) + (q1 ? w->n1 : 0), "%s: %s requests", what, w->op);
		snprintf(p, sizeof(p), "ops.%s.bytes", w->op);
		is(num(e, p), (q0 ? w->bytes0 : 0) + (q1 ? w->bytes1 : 0), "%s: %s bytes", what,
		   w->op);
		snprintf(p, sizeof(p), "ops.%s.errors", w->op);
		is(num(e, p), q0 ? w->errors0 : 0, "%s: %s errors", what, w->op);
	}
	is(num(e, "in-flight"), 0, "%s: nothing in flight", what);
}

static void test_stats(struct vblk_client *c)
{
	struct json_object *e = export0(NULL), *r, *q, *t;
	char params[400];
	int64_t cpu = 0;

	ok(e && !strcmp(json_object_get_string(at(e, "name")), sock),
	   "export-stats lists the export (named after its socket)");
	is(num(e, "ops.read.requests") + num(e, "ops.write.requests") +
	   num(e, "latency.read.count"), 0, "nothing counted before any I/O");
	json_object_put(e);

	do_io(c);

	snprintf(params, sizeof(params), "{\"export\":\"%s\",\"queues\":true}", sock);
	e = export0(params);
	check_counts(e, "export", true, true);
	check_latency(e, "read", 7 + 1 + NFLIGHT);
	check_latency(e, "write", 10);
	check_latency(e, "flush", 3);
	q = at(e, "queues");
	is(q ? (int)json_object_array_length(q) : -1, 2, "queues: both listed");
	if (q && json_object_array_length(q) == 2) {
		is(num(json_object_array_get_idx(q, 1), "queue"), 1, "queue 1 is second");
		check_counts(json_object_array_get_idx(q, 0), "queue 0", true, false);
		check_counts(json_object_array_get_idx(q, 1), "queue 1", false, true);
		ok(num(json_object_array_get_idx(q, 0), "iothread") >= 0, "a queue names its iothread");
	}
	json_object_put(e);

	r = stats_call(NULL);
	t = at(r, "result.iothreads");
	for (size_t i = 0; t && i < json_object_array_length(t); i++)
		cpu += num(json_object_array_get_idx(t, i), "cpu-ns");
	ok(t && json_object_array_length(t) > 0 && cpu > 0, "iothreads: CPU time %lld ns",
	   (long long)cpu);
	ok(num(r, "result.time-ns") > 0, "a sample time");
	e = at(r, "result.exports");
	ok(e && json_object_array_length(e) == 1, "all exports: one here");
	json_object_put(r);

	/* Asked for by name (its socket path), without queues. */
	snprintf(params, sizeof(params), "{\"export\":\"%s\"}", sock);
	e = export0(params);
	is(num(e, "ops.write.requests"), 10, "export found by name");
	ok(!at(e, "queues"), "queues: left out by default");
	json_object_put(e);
}

static void expect_error(const char *params, int code, const char *what)
{
	struct json_object *r = stats_call(params);

	is(num(r, "error.code"), code, "%s: error %d", what, code);
	json_object_put(r);
}

static void test_bad_params(void)
{
	expect_error("{\"export\":\"nope\"}", MGMT_ERR_NOT_FOUND, "an unknown export");
	expect_error("{\"export\":7}", MGMT_ERR_INVALID_PARAMS, "export not a string");
	expect_error("{\"queues\":\"yes\"}", MGMT_ERR_INVALID_PARAMS, "queues not a boolean");
	expect_error("{\"bogus\":1}", MGMT_ERR_INVALID_PARAMS, "an unknown parameter");
}

/* ---- Prometheus ---------------------------------------------------------- */

/* The port vblkd logged for --metrics=127.0.0.1:0, or 0. */
static unsigned metrics_port(void)
{
	char line[512];
	unsigned port = 0;
	FILE *f;

	for (int i = 0; i < 500 && !port; i++) {
		f = fopen(log_path, "r");
		while (f && fgets(line, sizeof(line), f)) {
			const char *p = strstr(line, "metrics on http://127.0.0.1:");

			if (p)
				port = (unsigned)strtoul(p + strlen("metrics on http://127.0.0.1:"),
							 NULL, 10);
		}
		if (f)
			fclose(f);
		if (!port)
			usleep(10000);
	}
	return port;
}

/*
 * Scrape with check_metrics.py (python3-prometheus-client's parser):
 * it prints {"name{label=value,...}": value} as JSON, labels sorted, the
 * export label (checked to be our export's name) left out.
 */
static struct json_object *scrape(const char *script, unsigned port)
{
	char cmd[600], out[1 << 16];
	size_t n = 0;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s http://127.0.0.1:%u/metrics '%s'", script,
		 port, sock);
	p = popen(cmd, "r");
	if (!p)
		return NULL;
	n = fread(out, 1, sizeof(out) - 1, p);
	st = pclose(p);
	out[n] = '\0';
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		diag("check_metrics.py: status %d: %.300s", st, out);
		return WIFEXITED(st) && WEXITSTATUS(st) == 77 ? json_object_new_string("skip") :
								 NULL;
	}
	return json_tokener_parse(out);
}

/* check_metrics.py --hostile: true if the endpoint answered afterwards. */
static bool hostile(const char *script, unsigned port)
{
	char cmd[600], out[256] = "";
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s --hostile http://127.0.0.1:%u/metrics",
		 script, port);
	p = popen(cmd, "r");
	if (!p)
		return false;
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	if (pclose(p) != 0)
		diag("check_metrics.py --hostile: %s", out);
	return !strcmp(out, "ok\n");
}

static double sample(struct json_object *m, const char *key)
{
	struct json_object *v;

	if (!m || !json_object_object_get_ex(m, key, &v))
		return -1;
	return json_object_get_double(v);
}

static void test_metrics(const char *script, struct vblk_client *c)
{
	unsigned port = metrics_port();
	struct json_object *m;
	char key[200];

	if (!ok(port > 0, "vblkd logged the metrics port")) {
		vblkd_log_dump(log_path);
		return;
	}
	{
		struct json_object *r = stats_call(NULL);
		char want[80];

		snprintf(want, sizeof(want), "http://127.0.0.1:%u/metrics", port);
		ok(at(r, "result.metrics") &&
		   !strcmp(json_object_get_string(at(r, "result.metrics")), want),
		   "export-stats names the metrics URL");
		json_object_put(r);
	}
	m = scrape(script, port);
	if (m && json_object_is_type(m, json_type_string)) {
		skip("python3-prometheus-client not installed");
		json_object_put(m);
		return;
	}
	ok(m != NULL, "the endpoint parses as Prometheus text");
	for (size_t i = 0; i < ARRAY_SIZE(wants); i++) {
		const struct want *w = &wants[i];

		snprintf(key, sizeof(key), "vblk_requests_total{op=%s,queue=0}",
			 w->op);
		is((int64_t)sample(m, key), w->n0, "metrics: %s requests on queue 0", w->op);
		snprintf(key, sizeof(key), "vblk_request_errors_total{op=%s,queue=0}",
			 w->op);
		is((int64_t)sample(m, key), w->errors0, "metrics: %s errors on queue 0", w->op);
	}
	is((int64_t)sample(m, "vblk_requests_total{op=read,queue=1}"), NFLIGHT,
	   "metrics: reads on queue 1");
	is((int64_t)sample(m, "vblk_bytes_total{op=read,queue=1}"),
	   NFLIGHT * 4096, "metrics: bytes read on queue 1");
	is((int64_t)sample(m, "vblk_bytes_total{op=write,queue=0}"), 10 * 8192,
	   "metrics: bytes written on queue 0");
	is((int64_t)sample(m, "vblk_request_duration_seconds_count{op=read,queue=1}"),
	   NFLIGHT, "metrics: read histogram count on queue 1");
	is((int64_t)sample(m, "vblk_request_duration_seconds_bucket{le=+Inf,op=read,queue=1}"),
	   NFLIGHT, "metrics: the +Inf bucket holds every read");
	ok(sample(m, "vblk_request_duration_seconds_sum{op=write,queue=0}") > 0,
	   "metrics: write latency sum");
	is((int64_t)sample(m, "vblk_requests_in_flight{queue=0}"), 0,
	   "metrics: in flight");
	ok(sample(m, "vblk_iothread_cpu_seconds_total{iothread=0}") > 0,
	   "metrics: iothread CPU time");
	ok(sample(m, "check_buckets_monotonic") == 1, "metrics: cumulative buckets never fall");
	/* A finite bucket against export-stats' own buckets of the same queue:
	 * reads of queue 1 (not touched since) within 2^20 ns. */
	{
		char params[400];
		struct json_object *e, *b;
		int64_t within = 0;

		snprintf(params, sizeof(params), "{\"export\":\"%s\",\"queues\":true}", sock);
		e = export0(params);
		b = at(json_object_array_get_idx(at(e, "queues"), 1), "latency.read.buckets");
		for (size_t i = 0; b && i < json_object_array_length(b); i++) {
			struct json_object *pair = json_object_array_get_idx(b, i);
			struct json_object *up = json_object_array_get_idx(pair, 0);

			if (up && json_object_get_int64(up) <= (1 << 20))
				within += json_object_get_int64(json_object_array_get_idx(pair, 1));
		}
		is((int64_t)sample(m, "vblk_request_duration_seconds_bucket{le=0.001048576,op=read,queue=1}"),
		   within, "metrics: the le=2^20 ns bucket matches export-stats' buckets");
		json_object_put(e);
	}
	json_object_put(m);

	/* Abuse, then the endpoint and the I/O still work. */
	ok(hostile(script, port), "metrics: scraped fine after idle floods, garbage and huge requests");
	ok(vblk_client_rw_check(c, 0, 99, 0, TMO), "I/O still works after the abuse");
	m = scrape(script, port);
	is((int64_t)sample(m, "vblk_requests_total{op=write,queue=0}"), 11,
	   "metrics: the check's write counted (no scrape lost a count)");
	json_object_put(m);
}

/* Exit status of vblkd started with @extra (a NULL-terminated list); -1 if it ran on. */
static int exit_status(const char *vblkd, const char *const *extra)
{
	struct vblkd_proc p = { 0 };
	char a_ctl[320], path[300];
	const char *args[8] = { a_ctl };
	int st = -1, w;

	for (unsigned i = 0; extra[i] && i < 6; i++)
		args[i + 1] = extra[i];
	if (vblkd_proc_init(&p))
		tap_bail("temp dir");
	vblkd_proc_path(&p, "c.sock", path, sizeof(path));
	snprintf(a_ctl, sizeof(a_ctl), "--control=%s", path);
	if (vblkd_proc_start(&p, vblkd, args) == 0) {
		w = vblkd_proc_wait(&p, 30000);   /* ASan start-up on a busy host */
		if (w >= 0 && WIFEXITED(w))
			st = WEXITSTATUS(w);
	}
	vblkd_proc_stop(&p);
	vblkd_proc_cleanup(&p);
	return st;
}

static void test_metrics_options(const char *vblkd)
{
	static const char *const bad[] = {
		"--metrics=nope", "--metrics=127.0.0.1", "--metrics=127.0.0.1:", "--metrics=:9100",
		"--metrics=127.0.0.1:65536", "--metrics=127.0.0.1:-1", "--metrics=localhost:9100",
		"--metrics=[::1]9100", "--metrics=[::1:9100", "--metrics=1.2.3.4.5:80",
		"--metrics=127.0.0.1:80x",
	};
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	char busy[64];
	int fd;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		is(exit_status(vblkd, (const char *[]){ bad[i], NULL }), 2, "%s: usage error", bad[i]);
	/* A port some other socket listens on: vblkd cannot start. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		tap_bail("a listening socket: %s", strerror(errno));
	snprintf(busy, sizeof(busy), "--metrics=127.0.0.1:%u", ntohs(a.sin_port));
	is(exit_status(vblkd, (const char *[]){ busy, NULL }), 1, "a port in use: exit 1");
	close(fd);
}

int main(int argc, char **argv)
{
	struct vblk_client_opts o = { .num_queues = 2, .queue_size = 1024, .mem_size = 16u << 20 };
	struct vblk_client *c = NULL;
	char a_ctl[320], a_sock[320], a_file[320];
	const char *args[] = { a_ctl, a_sock, a_file, "--num-queues=2", "--iothreads=1",
			       "--serial=stats", "--metrics=127.0.0.1:0", NULL };
	const char *script = argc > 2 ? argv[2] : NULL;

	if (argc < 2)
		tap_bail("usage: %s VBLKD [CHECK_METRICS_PY]", argv[0]);
	if (!script)
		args[6] = NULL;
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
	if (vblkd_proc_start_logged(&proc, argv[1], args, log_path) ||
	    fixture_wait_socket(proc.pid, ctl, 10000) || fixture_wait_socket(proc.pid, sock, 10000)) {
		vblkd_log_dump(log_path);
		tap_bail("cannot start %s", argv[1]);
	}
	cfd = mgmt_client_connect(ctl);
	if (cfd < 0 || vblk_client_connect(sock, &o, &c)) {
		vblkd_log_dump(log_path);
		tap_bail("cannot connect to vblkd: %s", cfd < 0 ? strerror(-cfd) : "vhost-user");
	}

	test_stats(c);
	test_bad_params();
	if (script)
		test_metrics(script, c);

	vblk_client_destroy(c);
	close(cfd);
	ok(vblkd_proc_alive(&proc), "vblkd survived");
	if (!ok(vblkd_proc_stop(&proc) == 0, "clean exit on SIGTERM"))
		vblkd_log_dump(log_path);
	vblkd_proc_cleanup(&proc);
	if (script)
		test_metrics_options(argv[1]);
	return tap_done();
}
