/* SPDX-License-Identifier: MIT */
/*
 * test_stats.c - stats.h's histogram arithmetic: every value lands in a
 * bucket whose bounds hold it, the bounds rise with no gap, powers of two
 * are exact upper bounds, percentiles against a sorted sample, and the
 * counters a queue's completions leave.
 */
#include <math.h>
#include <stdlib.h>
#include <linux/virtio_blk.h>

#include "tap.h"
#include "daemon/stats.h"

static uint64_t lower_of(unsigned b)
{
	return b ? stats_bucket_upper(b - 1) : 0;
}

static void test_buckets(void)
{
	bool holds = true, rising = true, pow2 = true;
	uint64_t v;

	/* Every value from 0 to 70000 ns, then a spread up to 2^40. */
	for (v = 0; v < 70000; v++) {
		unsigned b = stats_bucket(v);

		if (b >= STATS_NBUCKETS || (v && !(v > lower_of(b) && v <= stats_bucket_upper(b))))
			holds = false;
	}
	for (v = 70000; v < (1ull << 40); v = v * 9 / 8 + 1) {
		unsigned b = stats_bucket(v);

		if (b >= STATS_NBUCKETS ||
		    (b < STATS_NBUCKETS - 1 && !(v > lower_of(b) && v <= stats_bucket_upper(b))))
			holds = false;
	}
	ok(holds, "each value is within its bucket's (lower, upper]");
	for (unsigned b = 1; b < STATS_NBUCKETS; b++)
		if (stats_bucket_upper(b) <= stats_bucket_upper(b - 1))
			rising = false;
	ok(rising, "bucket bounds rise strictly");
	for (unsigned k = 0; k < STATS_MAX_SHIFT; k++) {
		unsigned b = stats_bucket(1ull << k);

		if (stats_bucket_upper(b) != 1ull << k)
			pow2 = false;
	}
	ok(pow2, "every power of two up to 2^35 ns is a bucket's upper bound");
	is(stats_bucket(UINT64_MAX), STATS_NBUCKETS - 1, "huge latencies in the last bucket");
	is(stats_bucket(0), 0, "0 ns in the first bucket");
	/* Relative width: at most 1/16 of the lower bound past the linear part. */
	for (unsigned b = STATS_SUB; b < STATS_NBUCKETS - 1; b++) {
		uint64_t lo = lower_of(b), up = stats_bucket_upper(b);

		if ((up - lo) * STATS_SUB > lo) {
			ok(0, "bucket %u (%llu, %llu] too wide", b, (unsigned long long)lo,
			   (unsigned long long)up);
			return;
		}
	}
	ok(1, "bucket widths stay within 1/16 of their values");
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void test_percentiles(void)
{
	enum { N = 10000 };
	static struct stats_queue q, snap;
	static uint64_t lat[N];
	static const uint32_t pm[] = { 500000, 900000, 990000, 999000, 1000000 };
	uint64_t prev = 0, sum = 0;
	bool mono = true;

	srand(7);
	for (unsigned i = 0; i < N; i++) {
		/* Log-uniform from 100 ns to ~100 ms. */
		double e = (double)rand() / RAND_MAX * 20.0;
		uint64_t ns = (uint64_t)(100.0 * exp2(e));

		lat[i] = ns;
		sum += ns;
		stats_queue_done(&q, STATS_OP_READ, 4096, false, 1000, 1000 + ns);
	}
	stats_add_u64(&q.started, N + 3);
	stats_queue_read_add(&snap, &q);
	is(snap.ops[STATS_OP_READ], N, "read requests counted");
	is(snap.bytes[STATS_OP_READ], (uint64_t)N * 4096, "read bytes counted");
	is(snap.lat[STATS_LAT_READ].count, N, "histogram count");
	is(snap.lat[STATS_LAT_READ].sum_ns, sum, "histogram sum");
	is(stats_inflight(&snap), 3, "in flight: started minus completed");
	qsort(lat, N, sizeof(lat[0]), cmp_u64);
	is(snap.lat[STATS_LAT_READ].max_ns, lat[N - 1], "max is exact");
	for (size_t i = 0; i < ARRAY_SIZE(pm); i++) {
		uint64_t got = stats_hist_percentile(&snap.lat[STATS_LAT_READ], pm[i]);
		size_t rank = ((size_t)N * pm[i] + 999999) / 1000000;
		uint64_t want = lat[rank - 1];

		/* Exact value <= reported <= 1/16 above it (bucket width). */
		ok(got >= want && got <= want + want / 16 + 1,
		   "p%.1f: %llu ns for a true %llu ns", pm[i] / 10000.0,
		   (unsigned long long)got, (unsigned long long)want);
		if (got < prev)
			mono = false;
		prev = got;
	}
	ok(mono, "percentiles are monotonic");
	is(stats_hist_percentile(&snap.lat[STATS_LAT_WRITE], 500000), 0, "empty: 0");
	is(stats_hist_count_le(&snap.lat[STATS_LAT_READ], 1ull << 35), N,
	   "count at or below 2^35 ns: all");
	{
		uint64_t le = stats_hist_count_le(&snap.lat[STATS_LAT_READ], 1ull << 20);
		size_t want = 0;

		while (want < N && lat[want] <= (1ull << 20))
			want++;
		is(le, want, "count at or below 2^20 ns matches the sample");
	}
}

static void test_types(void)
{
	static struct stats_queue q, snap;

	is(stats_op_of(VIRTIO_BLK_T_IN), STATS_OP_READ, "IN is read");
	is(stats_op_of(VIRTIO_BLK_T_OUT), STATS_OP_WRITE, "OUT is write");
	is(stats_op_of(VIRTIO_BLK_T_FLUSH), STATS_OP_FLUSH, "FLUSH");
	is(stats_op_of(VIRTIO_BLK_T_DISCARD), STATS_OP_DISCARD, "DISCARD");
	is(stats_op_of(VIRTIO_BLK_T_WRITE_ZEROES), STATS_OP_WRITE_ZEROES, "WRITE_ZEROES");
	is(stats_op_of(VIRTIO_BLK_T_GET_ID), STATS_OP_GET_ID, "GET_ID");
	is(stats_op_of(12345), STATS_OP_OTHER, "unknown types are other");
	ok(!strcmp(stats_op_name(STATS_OP_WRITE_ZEROES), "write-zeroes"), "names");
	stats_queue_done(&q, STATS_OP_DISCARD, 1 << 20, true, 5, 10);
	stats_queue_done(&q, STATS_OP_GET_ID, 0, false, 5, 10);
	stats_queue_read_add(&snap, &q);
	stats_queue_read_add(&snap, &q);   /* two queues add up */
	is(snap.ops[STATS_OP_DISCARD], 2, "discards summed");
	is(snap.errors[STATS_OP_DISCARD], 2, "errors summed");
	is(snap.bytes[STATS_OP_DISCARD], 2u << 20, "discard bytes summed");
	is(snap.lat[STATS_LAT_READ].count + snap.lat[STATS_LAT_WRITE].count +
	   snap.lat[STATS_LAT_FLUSH].count, 0, "no histogram for discard or get-id");
}

int main(void)
{
	test_buckets();
	test_percentiles();
	test_types();
	return tap_done();
}
