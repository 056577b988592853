/* SPDX-License-Identifier: MIT */
/*
 * stats.h - per-queue I/O statistics: requests, bytes and errors by request
 * type, and log-linear latency histograms (read, write, flush) in
 * nanoseconds. One iothread writes a queue's counters with plain relaxed
 * stores (no lock, no locked instruction); the control thread reads them
 * with relaxed loads and tolerates a snapshot that is a few requests
 * apart across fields. Knows nothing of exports, JSON or HTTP.
 */
#ifndef VBLK_DAEMON_STATS_H
#define VBLK_DAEMON_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/compiler.h"

/* Request types, in the order the reports list them. */
enum stats_op {
	STATS_OP_READ,
	STATS_OP_WRITE,
	STATS_OP_FLUSH,
	STATS_OP_DISCARD,
	STATS_OP_WRITE_ZEROES,
	STATS_OP_GET_ID,
	STATS_OP_OTHER,        /* unsupported or malformed requests */
	STATS_NOPS,
};

/* Latency histograms kept. */
enum stats_lat {
	STATS_LAT_READ,
	STATS_LAT_WRITE,
	STATS_LAT_FLUSH,
	STATS_NLATS,
};

/*
 * Histogram buckets: 2^STATS_SUB_BITS linear sub-buckets per power of two
 * (at most 1/16 = 6.25% relative error), from 1 ns up to 2^STATS_MAX_SHIFT
 * ns (68.7 s); longer latencies land in the last bucket (max is exact).
 * A bucket holds the values in (lower, upper]: every power of two of
 * nanoseconds is a bucket's upper bound, so Prometheus "le" bounds at
 * powers of two are exact.
 */
#define STATS_SUB_BITS 4
#define STATS_SUB (1u << STATS_SUB_BITS)
#define STATS_MAX_SHIFT 36
#define STATS_NBUCKETS (STATS_SUB + (STATS_MAX_SHIFT - STATS_SUB_BITS) * STATS_SUB)

struct stats_hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t buckets[STATS_NBUCKETS];
};

/* One queue's counters. Written only by the iothread serving the queue. */
struct stats_queue {
	uint64_t started;                /* requests popped from the ring */
	uint64_t ops[STATS_NOPS];        /* completed, by type */
	uint64_t bytes[STATS_NOPS];      /* data bytes of completed requests */
	uint64_t errors[STATS_NOPS];     /* completed with a status other than OK */
	struct stats_hist lat[STATS_NLATS];
};

/* The type of a virtio-blk request (VIRTIO_BLK_T_*). */
enum stats_op stats_op_of(uint32_t virtio_type);
const char *stats_op_name(enum stats_op op);       /* "read", "write-zeroes", ... */
const char *stats_lat_name(enum stats_lat lat);    /* "read", "write", "flush" */

/* Monotonic nanoseconds (CLOCK_MONOTONIC: the vDSO, no system call). */
static inline uint64_t stats_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Owner-only update: a plain load and a relaxed store (no locked op). */
static inline void stats_add_u64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, *p + v, __ATOMIC_RELAXED);
}

/* The bucket of a latency of @ns nanoseconds. */
static inline unsigned stats_bucket(uint64_t ns)
{
	uint64_t x = ns ? ns - 1 : 0;   /* buckets are (lower, upper] */
	unsigned msb, shift;

	if (x < STATS_SUB)
		return (unsigned)x;
	msb = 63u - (unsigned)__builtin_clzll(x);
	if (msb >= STATS_MAX_SHIFT)
		return STATS_NBUCKETS - 1;
	shift = msb - STATS_SUB_BITS;
	return STATS_SUB + shift * STATS_SUB + (unsigned)((x >> shift) - STATS_SUB);
}

/* Largest latency bucket @b holds (the last one: STATS_MAX_SHIFT and up). */
uint64_t stats_bucket_upper(unsigned b);

/*
 * stats_queue_done - account one completed request.
 * Context: the iothread that owns @s.
 */
static inline void stats_queue_done(struct stats_queue *s, enum stats_op op, uint64_t bytes,
				    bool error, uint64_t start_ns, uint64_t now_ns)
{
	stats_add_u64(&s->ops[op], 1);
	stats_add_u64(&s->bytes[op], bytes);
	if (unlikely(error))
		stats_add_u64(&s->errors[op], 1);
	if (op <= STATS_OP_FLUSH) {   /* the three with a histogram */
		struct stats_hist *h = &s->lat[op];
		uint64_t ns = now_ns > start_ns ? now_ns - start_ns : 0;

		stats_add_u64(&h->buckets[stats_bucket(ns)], 1);
		stats_add_u64(&h->count, 1);
		stats_add_u64(&h->sum_ns, ns);
		if (ns > h->max_ns)
			__atomic_store_n(&h->max_ns, ns, __ATOMIC_RELAXED);
	}
}

/*
 * stats_queue_read_add - add a relaxed snapshot of @s (written by another
 * thread meanwhile) into @sum. Context: any thread.
 */
void stats_queue_read_add(struct stats_queue *sum, const struct stats_queue *s);

/* Requests in flight by the snapshot @s (started but not completed). */
uint64_t stats_inflight(const struct stats_queue *s);

/*
 * stats_hist_percentile - the latency (ns) at or below which @per_million
 * millionths of the requests completed (e.g. 999000: p99.9): the upper bound
 * of the bucket holding that rank, never above the maximum. 0 when empty.
 */
uint64_t stats_hist_percentile(const struct stats_hist *h, uint32_t per_million);

/* Requests of @h that took at most @ns (@ns: a power of two, >= 1). */
uint64_t stats_hist_count_le(const struct stats_hist *h, uint64_t ns);

#endif
