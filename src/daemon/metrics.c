/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - the Prometheus endpoint: libmicrohttpd answers HTTP on its
 * own thread; each GET /metrics asks the control thread (loop_call, bounded)
 * to write the page from the exports' statistics (stats.h), so exports are
 * only ever touched by the thread that owns them. Knows no HTTP itself.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/log.h"
#include "daemon/control.h"
#include "daemon/metrics.h"
#include "daemon/stats.h"

#ifdef HAVE_MHD
#include <dlfcn.h>
#include <microhttpd.h>
#endif

/* Histogram "le" bounds: powers of two of nanoseconds, 2^10 (1.024 us) to
 * 2^35 (34.4 s), each exactly a bucket bound of stats.h; then +Inf. */
#define METRICS_LE_FIRST 10
#define METRICS_LE_LAST 35

/* A label value with \, " and newline escaped (the text format's rules). */
static void put_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void put_labels(FILE *f, const char *name, unsigned queue, const char *op)
{
	fputs("{export=\"", f);
	put_label(f, name);
	fprintf(f, "\",queue=\"%u\"", queue);
	if (op)
		fprintf(f, ",op=\"%s\"", op);
}

enum metric {
	M_REQUESTS, M_BYTES, M_ERRORS, M_INFLIGHT, M_DURATION, M_COUNT
};

static const struct {
	const char *name, *type, *help;
} metric_info[M_COUNT] = {
	[M_REQUESTS] = { "vblk_requests_total", "counter",
			 "Requests completed, by export, queue and type." },
	[M_BYTES] = { "vblk_bytes_total", "counter",
		      "Data bytes of completed requests (read, write; the range of discard and write-zeroes)." },
	[M_ERRORS] = { "vblk_request_errors_total", "counter",
		       "Requests completed with a status other than OK." },
	[M_INFLIGHT] = { "vblk_requests_in_flight", "gauge",
			 "Requests taken from the ring and not completed yet." },
	[M_DURATION] = { "vblk_request_duration_seconds", "histogram",
			 "Time from taking a request off the ring to its completion." },
};

/* The samples of metric @m for one queue (snapshot @s). */
static void put_queue(FILE *f, enum metric m, const char *name, unsigned queue,
		      const struct stats_queue *s)
{
	switch (m) {
	case M_REQUESTS:
	case M_BYTES:
	case M_ERRORS:
		for (unsigned op = 0; op < STATS_NOPS; op++) {
			const uint64_t *v = m == M_REQUESTS ? s->ops : m == M_BYTES ? s->bytes :
				s->errors;

			fputs(metric_info[m].name, f);
			put_labels(f, name, queue, stats_op_name(op));
			fprintf(f, "} %" PRIu64 "\n", v[op]);
		}
		break;
	case M_INFLIGHT:
		fputs(metric_info[m].name, f);
		put_labels(f, name, queue, NULL);
		fprintf(f, "} %" PRIu64 "\n", stats_inflight(s));
		break;
	case M_DURATION:
		for (unsigned l = 0; l < STATS_NLATS; l++) {
			const struct stats_hist *h = &s->lat[l];
			uint64_t cum = 0;
			unsigned b = 0;

			for (unsigned k = METRICS_LE_FIRST; k <= METRICS_LE_LAST; k++) {
				/* Cumulative: every bucket up to 2^k ns. */
				for (; b < STATS_NBUCKETS && stats_bucket_upper(b) <= 1ull << k; b++)
					cum += h->buckets[b];
				fputs("vblk_request_duration_seconds_bucket", f);
				put_labels(f, name, queue, stats_lat_name(l));
				fprintf(f, ",le=\"%.10g\"} %" PRIu64 "\n", (double)(1ull << k) / 1e9,
					cum);
			}
			fputs("vblk_request_duration_seconds_bucket", f);
			put_labels(f, name, queue, stats_lat_name(l));
			fprintf(f, ",le=\"+Inf\"} %" PRIu64 "\n", h->count);
			fputs("vblk_request_duration_seconds_sum", f);
			put_labels(f, name, queue, stats_lat_name(l));
			fprintf(f, "} %.9f\n", (double)h->sum_ns / 1e9);
			fputs("vblk_request_duration_seconds_count", f);
			put_labels(f, name, queue, stats_lat_name(l));
			fprintf(f, "} %" PRIu64 "\n", h->count);
		}
		break;
	case M_COUNT:
		break;
	}
}

int metrics_render(struct control *c, FILE *f)
{
	struct stats_queue *snap;
	struct iothread *const *t;
	unsigned nt;

	/* One snapshot per queue per metric: each family is consistent in
	 * itself (and the families a few requests apart at most). */
	snap = malloc(sizeof(*snap));
	if (!snap)
		return -ENOMEM;
	for (unsigned m = 0; m < M_COUNT; m++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", metric_info[m].name, metric_info[m].help,
			metric_info[m].name, metric_info[m].type);
		for (unsigned i = 0; i < control_count(c); i++) {
			struct export *e = control_export(c, i);
			struct export_info in;

			export_get_info(e, &in);
			for (unsigned q = 0; q < export_num_queues(e); q++) {
				memset(snap, 0, sizeof(*snap));
				export_queue_stats(e, q, snap, NULL);
				put_queue(f, (enum metric)m, in.name, q, snap);
			}
		}
	}
	free(snap);
	fputs("# HELP vblk_iothread_cpu_seconds_total CPU time an iothread used.\n"
	      "# TYPE vblk_iothread_cpu_seconds_total counter\n", f);
	t = control_iothreads(c, &nt);
	for (unsigned i = 0; i < nt; i++) {
		uint64_t ns;

		if (!iothread_cpu_ns(t[i], &ns))
			fprintf(f, "vblk_iothread_cpu_seconds_total{iothread=\"%u\"} %.9f\n",
				t[i]->index, (double)ns / 1e9);
	}
	return ferror(f) ? -ENOMEM : 0;
}

#if defined(HAVE_MHD) && VBLK_STATS

/* How long an HTTP request waits for the control thread to render. */
#define METRICS_RENDER_TIMEOUT_MS 5000
#define METRICS_MAX_CONNECTIONS 16
#define METRICS_CONNECTION_TIMEOUT_S 10

/*
 * libmicrohttpd is loaded when --metrics is given, not linked: it brings
 * GnuTLS, p11-kit, nettle and seven more libraries, whose loading costs
 * every vblkd start 20-100 ms here (a restart a guest waits for), and
 * their code into a process that serves no HTTP. Its soname: the 0.9
 * series' ABI.
 */
#define METRICS_MHD_SONAME "libmicrohttpd.so.12"

static struct {
	void *lib;
	__typeof__(&MHD_start_daemon) start_daemon;
	__typeof__(&MHD_stop_daemon) stop_daemon;
	__typeof__(&MHD_create_response_from_buffer) create_response_from_buffer;
	__typeof__(&MHD_add_response_header) add_response_header;
	__typeof__(&MHD_queue_response) queue_response;
	__typeof__(&MHD_destroy_response) destroy_response;
} mhd;

/* Context: the control thread, before the sandbox (dlopen opens files). */
static int metrics_load_mhd(void)
{
	if (mhd.lib)
		return 0;
	mhd.lib = dlopen(METRICS_MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!mhd.lib) {
		log_err("metrics: cannot load %s: %s", METRICS_MHD_SONAME, dlerror());
		return -ENOTSUP;
	}
	*(void **)&mhd.start_daemon = dlsym(mhd.lib, "MHD_start_daemon");
	*(void **)&mhd.stop_daemon = dlsym(mhd.lib, "MHD_stop_daemon");
	*(void **)&mhd.create_response_from_buffer =
		dlsym(mhd.lib, "MHD_create_response_from_buffer");
	*(void **)&mhd.add_response_header = dlsym(mhd.lib, "MHD_add_response_header");
	*(void **)&mhd.queue_response = dlsym(mhd.lib, "MHD_queue_response");
	*(void **)&mhd.destroy_response = dlsym(mhd.lib, "MHD_destroy_response");
	if (!mhd.start_daemon || !mhd.stop_daemon || !mhd.create_response_from_buffer ||
	    !mhd.add_response_header || !mhd.queue_response || !mhd.destroy_response) {
		log_err("metrics: %s lacks a function vblkd needs", METRICS_MHD_SONAME);
		dlclose(mhd.lib);
		mhd.lib = NULL;
		return -ENOTSUP;
	}
	return 0;
}

struct metrics {
	struct MHD_Daemon *mhd;
	struct loop *ctrl;
	struct control *c;
	int fd;
	struct sockaddr_storage addr;   /* bound */
	socklen_t addrlen;
	char url[128];
};

struct metrics_page {
	struct control *c;
	char *buf;
	size_t len;
	int ret;
};

/* Context: the control thread (loop_call from the HTTP thread). */
static void metrics_render_fn(void *arg)
{
	struct metrics_page *p = arg;
	FILE *f = open_memstream(&p->buf, &p->len);

	if (!f) {
		p->ret = -ENOMEM;
		return;
	}
	p->ret = metrics_render(p->c, f);
	if (fclose(f) && !p->ret)
		p->ret = -ENOMEM;
}

static enum MHD_Result metrics_reply(struct MHD_Connection *conn, unsigned status,
				     const char *type, char *body, size_t len, bool owned)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = mhd.create_response_from_buffer(len, body,
					    owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	mhd.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		mhd.add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = mhd.queue_response(conn, status, r);
	mhd.destroy_response(r);
	return ret;
}

/* Context: libmicrohttpd's thread. */
static enum MHD_Result metrics_handle(void *cls, struct MHD_Connection *conn, const char *url,
				      const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size,
				      void **req_cls)
{
	static char not_found[] = "not found: the metrics are at /metrics\n";
	static char not_allowed[] = "only GET and HEAD\n";
	static char busy[] = "vblkd did not answer in time\n";
	struct metrics *m = cls;
	struct metrics_page p = { .c = m->c };

	(void)version, (void)upload_data;
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", not_allowed,
				     strlen(not_allowed), false);
	/* A GET with a body: answer once it is all in (and ignored). */
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!*req_cls) {
		*req_cls = m;   /* first call: headers only; answer on the next */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics"))
		return metrics_reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", not_found,
				     strlen(not_found), false);
	if (loop_call_timeout(m->ctrl, metrics_render_fn, &p, METRICS_RENDER_TIMEOUT_MS))
		return metrics_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", busy,
				     strlen(busy), false);
	if (p.ret) {
		free(p.buf);
		return MHD_NO;   /* out of memory: drop the connection */
	}
	return metrics_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", p.buf,
			     p.len, true);
}

/* "1.2.3.4:9100", "[::1]:9100": numeric only, no name lookups. */
static int metrics_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char host[64];
	const char *colon = strrchr(s, ':'), *port;
	size_t hl;
	char *end;
	unsigned long pn;

	if (!colon || colon == s)
		return -EINVAL;
	port = colon + 1;
	errno = 0;
	pn = strtoul(port, &end, 10);
	if (!*port || *end || errno || pn > 65535 || *port == '-' || *port == '+')
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return -EINVAL;
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (getaddrinfo(host, port, &hints, &res) || !res)
		return -EINVAL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int metrics_listen(struct metrics *m, const char *addr, char *url, size_t urlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char host[INET6_ADDRSTRLEN];
	unsigned port;
	int fd, one = 1, ret;

	ret = metrics_parse_addr(addr, &ss, &len);
	if (ret)
		return ret;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
		snprintf(url, urlen, "http://[%s]:%u/metrics", host, port);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
		snprintf(url, urlen, "http://%s:%u/metrics", host, port);
	}
	m->fd = fd;
	m->addr = ss;
	m->addrlen = len;
	return 0;
}

/*
 * One request to ourselves, answered by libmicrohttpd's thread: once the
 * reply is in, that thread has made every call of its start-up (a new
 * thread's, its name) and waits in its loop. Only then may the sandbox go
 * on, or those calls would race the filter. A wildcard address is reached
 * through loopback. Return: 0 or -errno.
 */
static int metrics_probe(const struct metrics *m)
{
	static const char req[] = "GET /ready HTTP/1.0\r\n\r\n";
	struct sockaddr_storage ss = m->addr;
	struct timeval tv = { .tv_sec = 5 };
	char buf[256];
	ssize_t n;
	int fd, ret = 0;

	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
			a->sin6_addr = in6addr_loopback;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		if (a->sin_addr.s_addr == htonl(INADDR_ANY))
			a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    connect(fd, (struct sockaddr *)&ss, m->addrlen) ||
	    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1) {
		ret = -errno;
		goto out;
	}
	/* Until the server closes (HTTP/1.0): the whole reply was sent. */
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		;
	if (n < 0)
		ret = -errno;
out:
	close(fd);
	return ret;
}

int metrics_check_addr(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return metrics_parse_addr(addr, &ss, &len);
}

int metrics_start(const char *addr, struct loop *ctrl, struct control *c, struct metrics **out)
{
	struct metrics *m;
	int ret;

	ret = metrics_load_mhd();
	if (ret)
		return ret;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->ctrl = ctrl;
	m->c = c;
	ret = metrics_listen(m, addr, m->url, sizeof(m->url));
	if (ret) {
		free(m);
		return ret;
	}
	/*
	 * One thread of libmicrohttpd's own (epoll), our listening socket,
	 * a bounded number of connections that time out: everything it needs
	 * (thread, epoll and eventfd) exists before the sandbox.
	 */
	m->mhd = mhd.start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD, 0, NULL, NULL, metrics_handle, m,
				  MHD_OPTION_LISTEN_SOCKET, m->fd,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNECTIONS,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_CONNECTION_TIMEOUT_S,
				  MHD_OPTION_END);
	if (!m->mhd) {
		close(m->fd);
		free(m);
		return -EIO;
	}
	ret = metrics_probe(m);
	if (ret) {
		log_err("metrics: no answer from the HTTP thread: %s", strerror(-ret));
		metrics_stop(m);
		return ret;
	}
	log_info("metrics on %s", m->url);
	*out = m;
	return 0;
}

const char *metrics_url(const struct metrics *m)
{
	return m->url;
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	mhd.stop_daemon(m->mhd);   /* joins its thread, closes the socket */
	free(m);
}

#else /* no libmicrohttpd, or -Dstats=false */

struct metrics {
	int unused;
};

int metrics_check_addr(const char *addr)
{
	(void)addr;
	return -ENOTSUP;
}

int metrics_start(const char *addr, struct loop *ctrl, struct control *c, struct metrics **out)
{
	(void)addr, (void)ctrl, (void)c, (void)out;
	return -ENOTSUP;
}

const char *metrics_url(const struct metrics *m)
{
	(void)m;
	return NULL;
}

void metrics_stop(struct metrics *m)
{
	(void)m;
}

#endif
