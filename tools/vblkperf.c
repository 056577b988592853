/* SPDX-License-Identifier: MIT */
/*
 * vblkperf - a small load generator on libvblk (in the spirit of fio and
 * SPDK bdevperf): one thread per queue keeps --qd requests in flight for
 * --runtime seconds and reports IOPS, MB/s, latency percentiles (log
 * histogram) and CPU cost per I/O, as text and optionally as JSON.
 * Uses only the installed API (vblk/vblk.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include "common/arch.h"   /* header only: cpu cycle counter */
#include "vblk/vblk.h"

/* Log-linear histogram: values < 64 ns exact, then 32 buckets per power of two. */
#define SUB_BITS 5
#define NBUCKETS (64 + (64 - 6) * (1 << SUB_BITS))

enum rw_kind { RW_READ, RW_WRITE, RW_RANDREAD, RW_RANDWRITE, RW_RANDRW };
static const char *const rw_names[] = { "read", "write", "randread", "randwrite", "randrw" };

struct opts {
	const char *path, *json;
	enum rw_kind rw;
	unsigned bs, qd, queues, runtime, rwmix, queue_size;
	bool poll, packed, dirty_log, access_platform;
	int cpu;
	uint64_t size;
};

struct worker {
	pthread_t tid;
	unsigned index;
	const struct opts *o;
	struct vblkq *q;
	struct vblk_mem_region mem;
	uint64_t ios, bytes, errors, lat_sum, lat_max, busy_ns, wall_ns, cpu_ns;
	uint64_t lib_cycles, tsc_hz;  /* cycles inside libvblk calls that did work */
	uint64_t lib_hist[NBUCKETS];  /* per batch: those cycles / completions */
	uint64_t lib_batches;
	uint64_t hist[NBUCKETS];
	int err;
};

static struct vblk *dev;
static uint64_t capacity;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned bucket(uint64_t v)
{
	unsigned e;

	if (v < 64)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	if (e >= 63)
		return NBUCKETS - 1;
	return 64 + (e - 6) * (1u << SUB_BITS) +
	       (unsigned)((v >> (e - SUB_BITS)) & ((1u << SUB_BITS) - 1));
}

/* Upper bound of bucket b, in ns. */
static uint64_t bucket_value(unsigned b)
{
	unsigned e, sub;

	if (b < 64)
		return b;
	e = (b - 64) / (1u << SUB_BITS) + 6;
	sub = (b - 64) % (1u << SUB_BITS);
	return ((1ull << e) | ((uint64_t)sub << (e - SUB_BITS))) +
	       (1ull << (e - SUB_BITS)) - 1;
}

static uint64_t percentile(const uint64_t *h, uint64_t total, double p)
{
	uint64_t want = (uint64_t)((double)total * p / 100.0 + 0.5), acc = 0;

	if (want == 0)
		want = 1;
	for (unsigned b = 0; b < NBUCKETS; b++) {
		acc += h[b];
		if (acc >= want)
			return bucket_value(b);
	}
	return 0;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static int submit(struct worker *w, unsigned slot, uint64_t *seq, uint64_t *rng)
{
	const struct opts *o = w->o;
	uint64_t blocks = o->size / o->bs, off;
	void *buf = (uint8_t *)w->mem.addr + (size_t)slot * o->bs;
	bool write;

	switch (o->rw) {
	case RW_READ:
	case RW_WRITE:
		off = (*seq)++ % blocks * o->bs;
		write = o->rw == RW_WRITE;
		break;
	default:
		off = xorshift(rng) % blocks * o->bs;
		write = o->rw == RW_RANDWRITE ||
			(o->rw == RW_RANDRW && xorshift(rng) % 100 >= o->rwmix);
		break;
	}
	/* user_data: the slot, +1 so it is never NULL */
	return write ? vblkq_write(w->q, off, buf, o->bs, (void *)(uintptr_t)(slot + 1), 0)
		     : vblkq_read(w->q, off, buf, o->bs, (void *)(uintptr_t)(slot + 1), 0);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	struct vblk_completion *c = calloc(o->qd, sizeof(*c));
	uint64_t *start = calloc(o->qd, sizeof(*start));
	uint64_t seq = (uint64_t)w->index * (o->size / o->bs / o->queues), idle_ns = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (w->index + 1), t0, end, idle_start = 0, tsc0;
	unsigned inflight = 0, i;
	uint64_t batch;
	bool running = true, idle = false;
	struct rusage ru0, ru1;

	if (o->cpu >= 0) {
		cpu_set_t set;
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		CPU_ZERO(&set);
		CPU_SET((unsigned)(o->cpu + (int)w->index) % (unsigned)(ncpu > 0 ? ncpu : 1), &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	if (!c || !start) {
		w->err = -ENOMEM;
		goto out;
	}
	getrusage(RUSAGE_THREAD, &ru0);
	t0 = now_ns();
	end = t0 + (uint64_t)o->runtime * 1000000000u;
	for (i = 0; i < o->qd; i++) {
		start[i] = t0;
		if (submit(w, i, &seq, &rng) == 0)
			inflight++;
	}
	tsc0 = arch_cycles();
	while (inflight) {
		uint64_t t = o->poll ? now_ns() : 0, c0 = arch_cycles(), c1;
		int n = vblkq_do_io(w->q, c, o->poll ? 0 : 1, (int)o->qd, NULL);

		c1 = arch_cycles();
		batch = c1 - c0;

		if (n < 0) {
			w->err = n;
			break;
		}
		if (n == 0) {
			if (!idle) {
				idle = true;
				idle_start = t;
			}
			continue;
		}
		if (idle) {
			idle_ns += t - idle_start;
			idle = false;
		}
		t = now_ns();
		if (t >= end)
			running = false;
		for (int k = 0; k < n; k++) {
			unsigned slot = (unsigned)((uintptr_t)c[k].user_data - 1);
			uint64_t lat = t - start[slot];

			inflight--;
			if (c[k].ret) {
				w->errors++;
				if (c[k].ret == -ENOTCONN)
					running = false;
			} else {
				w->ios++;
				w->bytes += o->bs;
				w->lat_sum += lat;
				if (lat > w->lat_max)
					w->lat_max = lat;
				w->hist[bucket(lat)]++;
			}
			if (running) {
				uint64_t s0 = arch_cycles();

				start[slot] = t;
				if (submit(w, slot, &seq, &rng) == 0)
					inflight++;
				batch += arch_cycles() - s0;
			}
		}
		if (o->poll) {
			w->lib_cycles += batch;
			w->lib_hist[bucket(batch / (unsigned)n)]++;
			w->lib_batches++;
		}
	}
	w->wall_ns = now_ns() - t0;
	w->tsc_hz = (uint64_t)((double)(arch_cycles() - tsc0) * 1e9 / (double)w->wall_ns);
	getrusage(RUSAGE_THREAD, &ru1);
	w->cpu_ns = (uint64_t)((ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1000000000ll +
			       (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) * 1000ll +
			       (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000000000ll +
			       (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1000ll);
	w->busy_ns = o->poll ? w->wall_ns - idle_ns : w->cpu_ns;
out:
	free(c);
	free(start);
	return NULL;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K': v <<= 10; break;
	case 'm': case 'M': v <<= 20; break;
	case 'g': case 'G': v <<= 30; break;
	default: break;
	}
	return v;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vblkperf --path SOCK [options]\n"
		"  --rw read|write|randread|randwrite|randrw   (default randread)\n"
		"  --rwmix PCT      reads in randrw (default 50)\n"
		"  --bs SIZE        block size, K/M suffixes (default 4k)\n"
		"  --qd N           requests in flight per queue (default 32)\n"
		"  --queues N       queues, one thread each (default 1)\n"
		"  --queue-size N   ring size (default 256)\n"
		"  --runtime SEC    (default 10)\n"
		"  --size SIZE      use the first SIZE bytes of the device (default all)\n"
		"  --mode poll|event  completion reaping (default poll)\n"
		"  --packed         packed ring\n"
		"  --dirty-log      act as a migrating frontend: the server logs dirty pages\n"
		"  --access-platform  negotiate VIRTIO_F_ACCESS_PLATFORM: addresses are IOVAs\n"
		"                   the server translates through its IOTLB\n"
		"  --cpu N          pin queue i's thread to CPU N+i\n"
		"  --json FILE      also write the results as JSON (- = stdout)\n");
}

static int die(const char *what, int ret)
{
	fprintf(stderr, "vblkperf: %s: %s (%s)\n", what, strerror(-ret), vblk_get_error_msg());
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "path", 1, NULL, 'p' }, { "rw", 1, NULL, 'r' }, { "bs", 1, NULL, 'b' },
		{ "qd", 1, NULL, 'q' }, { "queues", 1, NULL, 'Q' }, { "runtime", 1, NULL, 't' },
		{ "mode", 1, NULL, 'm' }, { "cpu", 1, NULL, 'c' }, { "json", 1, NULL, 'j' },
		{ "size", 1, NULL, 's' }, { "rwmix", 1, NULL, 'x' }, { "packed", 0, NULL, 'P' },
		{ "queue-size", 1, NULL, 'S' }, { "dirty-log", 0, NULL, 'L' },
		{ "access-platform", 0, NULL, 'A' },
		{ "help", 0, NULL, 'h' }, { 0 },
	};
	struct opts o = { .rw = RW_RANDREAD, .bs = 4096, .qd = 32, .queues = 1, .runtime = 10,
			  .rwmix = 50, .queue_size = 256, .poll = true, .cpu = -1 };
	static uint64_t hist[NBUCKETS];
	uint64_t ios = 0, bytes = 0, errors = 0, lat_sum = 0, lat_max = 0, busy = 0, cpu = 0;
	uint64_t wall = 0;
	double lib_ns = 0, lib_p50 = 0;
	struct worker *w;
	double secs, iops, mbps;
	int opt, ret;
	unsigned i;

	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case 'p': o.path = optarg; break;
		case 'r':
			if (!strcmp(optarg, "read")) o.rw = RW_READ;
			else if (!strcmp(optarg, "write")) o.rw = RW_WRITE;
			else if (!strcmp(optarg, "randread")) o.rw = RW_RANDREAD;
			else if (!strcmp(optarg, "randwrite")) o.rw = RW_RANDWRITE;
			else if (!strcmp(optarg, "randrw")) o.rw = RW_RANDRW;
			else { usage(stderr); return 2; }
			break;
		case 'b': o.bs = (unsigned)parse_size(optarg); break;
		case 'q': o.qd = (unsigned)atoi(optarg); break;
		case 'Q': o.queues = (unsigned)atoi(optarg); break;
		case 't': o.runtime = (unsigned)atoi(optarg); break;
		case 'm':
			if (!strcmp(optarg, "poll")) o.poll = true;
			else if (!strcmp(optarg, "event")) o.poll = false;
			else { usage(stderr); return 2; }
			break;
		case 'c': o.cpu = atoi(optarg); break;
		case 'j': o.json = optarg; break;
		case 's': o.size = parse_size(optarg); break;
		case 'x': o.rwmix = (unsigned)atoi(optarg); break;
		case 'P': o.packed = true; break;
		case 'S': o.queue_size = (unsigned)atoi(optarg); break;
		case 'L': o.dirty_log = true; break;
		case 'A': o.access_platform = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o.path || o.bs == 0 || o.bs % 512 || o.qd == 0 || o.queues == 0 ||
	    o.qd > o.queue_size) {
		usage(stderr);
		return 2;
	}

	ret = vblk_create(&dev);
	ret = ret ?: vblk_set_str(dev, "path", o.path);
	ret = ret ?: vblk_set_bool(dev, "packed", o.packed);
	ret = ret ?: vblk_set_bool(dev, "dirty-log", o.dirty_log);
	if (o.access_platform)
		ret = ret ?: vblk_set_bool(dev, "access-platform", true);
	ret = ret ?: vblk_connect(dev);
	if (ret)
		return die("connect", ret);
	ret = vblk_set_int(dev, "num-queues", (int)o.queues);
	ret = ret ?: vblk_set_int(dev, "queue-size", (int)o.queue_size);
	ret = ret ?: vblk_set_bool(dev, "poll", o.poll);
	ret = ret ?: vblk_get_u64(dev, "capacity", &capacity);
	ret = ret ?: vblk_start(dev);
	if (ret)
		return die("start", ret);
	if (!o.size || o.size > capacity)
		o.size = capacity;
	if (o.size < o.bs) {
		fprintf(stderr, "vblkperf: device smaller than one block\n");
		return 1;
	}
	w = calloc(o.queues, sizeof(*w));
	if (!w)
		return 1;
	for (i = 0; i < o.queues; i++) {
		w[i].index = i;
		w[i].o = &o;
		w[i].q = vblk_get_queue(dev, (int)i);
		ret = vblk_alloc_mem_region(dev, (size_t)o.qd * o.bs, &w[i].mem);
		if (ret)
			return die("memory", ret);
	}
	for (i = 0; i < o.queues; i++)
		pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
	for (i = 0; i < o.queues; i++) {
		pthread_join(w[i].tid, NULL);
		if (w[i].err)
			fprintf(stderr, "vblkperf: queue %u: %s\n", i, strerror(-w[i].err));
		ios += w[i].ios;
		bytes += w[i].bytes;
		errors += w[i].errors;
		lat_sum += w[i].lat_sum;
		lat_max = w[i].lat_max > lat_max ? w[i].lat_max : lat_max;
		busy += w[i].busy_ns;
		if (w[i].tsc_hz)
			lib_ns += (double)w[i].lib_cycles * 1e9 / (double)w[i].tsc_hz;
		if (i == 0 && w[0].tsc_hz && w[0].lib_batches)
			lib_p50 = (double)percentile(w[0].lib_hist, w[0].lib_batches, 50) * 1e9 /
				  (double)w[0].tsc_hz;
		cpu += w[i].cpu_ns;
		wall = w[i].wall_ns > wall ? w[i].wall_ns : wall;
		for (unsigned b = 0; b < NBUCKETS; b++)
			hist[b] += w[i].hist[b];
	}
	secs = (double)wall / 1e9;
	iops = secs > 0 ? (double)ios / secs : 0;
	mbps = secs > 0 ? (double)bytes / secs / 1e6 : 0;

	printf("vblkperf: %s bs=%u qd=%u queues=%u mode=%s%s runtime=%.2fs\n",
	       rw_names[o.rw], o.bs, o.qd, o.queues, o.poll ? "poll" : "event", o.packed ? " packed" : "", secs);
	printf("  IOPS %.0f  MB/s %.1f  errors %" PRIu64 "\n", iops, mbps, errors);
	if (ios)
		printf("  lat ns: mean %" PRIu64 "  p50 %" PRIu64 "  p99 %" PRIu64
		       "  p99.9 %" PRIu64 "  max %" PRIu64 "\n",
		       lat_sum / ios, percentile(hist, ios, 50), percentile(hist, ios, 99),
		       percentile(hist, ios, 99.9), lat_max);
	if (ios)
		printf("  client CPU: %.0f ns/IO (thread CPU time), %.0f ns/IO busy%s; "
		       "%.0f IOPS per CPU-second\n",
		       (double)cpu / (double)ios, (double)busy / (double)ios,
		       o.poll ? " (excluding empty polls)" : "",
		       cpu ? (double)ios / ((double)cpu / 1e9) : 0.0);
	if (ios && o.poll)
		printf("  in libvblk calls that did work (submit + non-empty do_io, incl. kicks "
		       "and this tool's generator): mean %.0f ns/IO, median batch %.0f ns/IO\n",
		       lib_ns / (double)ios, lib_p50);
	if (o.json) {
		FILE *f = strcmp(o.json, "-") ? fopen(o.json, "w") : stdout;

		if (!f) {
			perror(o.json);
			return 1;
		}
		fprintf(f,
			"{\"path\": \"%s\", \"rw\": \"%s\", \"bs\": %u, \"qd\": %u, \"queues\": %u, "
			"\"mode\": \"%s\", \"packed\": %s, \"runtime_s\": %.3f, \"ios\": %" PRIu64
			", \"errors\": %" PRIu64 ", \"iops\": %.1f, \"mbps\": %.2f, "
			"\"lat_ns\": {\"mean\": %" PRIu64 ", \"p50\": %" PRIu64 ", \"p99\": %" PRIu64
			", \"p99_9\": %" PRIu64 ", \"max\": %" PRIu64 "}, "
			"\"cpu_ns_per_io\": %.1f, \"busy_ns_per_io\": %.1f, \"lib_ns_per_io\": %.1f, \"lib_ns_per_io_p50\": %.1f}\n",
			o.path, rw_names[o.rw], o.bs, o.qd, o.queues, o.poll ? "poll" : "event",
			o.packed ? "true" : "false", secs, ios, errors, iops, mbps,
			ios ? lat_sum / ios : 0, ios ? percentile(hist, ios, 50) : 0,
			ios ? percentile(hist, ios, 99) : 0, ios ? percentile(hist, ios, 99.9) : 0,
			lat_max, ios ? (double)cpu / (double)ios : 0,
			ios ? (double)busy / (double)ios : 0, ios && o.poll ? lib_ns / (double)ios : 0, lib_p50);
		if (f != stdout)
			fclose(f);
	}
	for (i = 0; i < o.queues; i++)
		vblk_free_mem_region(dev, &w[i].mem);
	vblk_destroy(&dev);
	free(w);
	return errors || ios == 0 ? 1 : 0;
}
