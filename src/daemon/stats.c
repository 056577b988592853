/* SPDX-License-Identifier: MIT */
/*
 * stats.c - reading the per-queue counters of stats.h from another thread,
 * and the histogram arithmetic (bucket bounds, percentiles). The data path
 * half (stats_queue_done) is inline in stats.h.
 */
#include <linux/virtio_blk.h>

#include "daemon/stats.h"

enum stats_op stats_op_of(uint32_t virtio_type)
{
	switch (virtio_type) {
	case VIRTIO_BLK_T_IN: return STATS_OP_READ;
	case VIRTIO_BLK_T_OUT: return STATS_OP_WRITE;
	case VIRTIO_BLK_T_FLUSH: return STATS_OP_FLUSH;
	case VIRTIO_BLK_T_DISCARD: return STATS_OP_DISCARD;
	case VIRTIO_BLK_T_WRITE_ZEROES: return STATS_OP_WRITE_ZEROES;
	case VIRTIO_BLK_T_GET_ID: return STATS_OP_GET_ID;
	default: return STATS_OP_OTHER;
	}
}

const char *stats_op_name(enum stats_op op)
{
	static const char *const names[STATS_NOPS] = {
		"read", "write", "flush", "discard", "write-zeroes", "get-id", "other",
	};

	return op < STATS_NOPS ? names[op] : "?";
}

const char *stats_lat_name(enum stats_lat lat)
{
	return stats_op_name((enum stats_op)lat);   /* same order, same names */
}

uint64_t stats_bucket_upper(unsigned b)
{
	unsigned group, sub;

	if (b < STATS_SUB)
		return b + 1;
	if (b >= STATS_NBUCKETS - 1)
		return UINT64_MAX;
	group = (b - STATS_SUB) / STATS_SUB;
	sub = (b - STATS_SUB) % STATS_SUB;
	return (uint64_t)(STATS_SUB + sub + 1) << group;
}

static uint64_t rd(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void stats_queue_read_add(struct stats_queue *sum, const struct stats_queue *s)
{
	sum->started += rd(&s->started);
	for (unsigned i = 0; i < STATS_NOPS; i++) {
		sum->ops[i] += rd(&s->ops[i]);
		sum->bytes[i] += rd(&s->bytes[i]);
		sum->errors[i] += rd(&s->errors[i]);
	}
	for (unsigned l = 0; l < STATS_NLATS; l++) {
		const struct stats_hist *h = &s->lat[l];
		struct stats_hist *o = &sum->lat[l];
		uint64_t max = rd(&h->max_ns), count = 0;

		/* The count from the buckets themselves: a percentile walk
		 * then always ends inside the histogram it reads. */
		for (unsigned b = 0; b < STATS_NBUCKETS; b++) {
			uint64_t n = rd(&h->buckets[b]);

			o->buckets[b] += n;
			count += n;
		}
		o->count += count;
		o->sum_ns += rd(&h->sum_ns);
		if (max > o->max_ns)
			o->max_ns = max;
	}
}

uint64_t stats_inflight(const struct stats_queue *s)
{
	uint64_t done = 0;

	for (unsigned i = 0; i < STATS_NOPS; i++)
		done += s->ops[i];
	/* The fields were read a moment apart: never below zero. */
	return s->started > done ? s->started - done : 0;
}

uint64_t stats_hist_percentile(const struct stats_hist *h, uint32_t per_million)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	if (per_million > 1000000)
		per_million = 1000000;
	/* The smallest rank covering the fraction (at least the first). */
	rank = (h->count / 1000000) * per_million +
	       ((h->count % 1000000) * per_million + 999999) / 1000000;
	if (rank == 0)
		rank = 1;
	for (unsigned b = 0; b < STATS_NBUCKETS; b++) {
		seen += h->buckets[b];
		if (seen >= rank) {
			uint64_t up = stats_bucket_upper(b);

			return up < h->max_ns ? up : h->max_ns;
		}
	}
	return h->max_ns;
}

uint64_t stats_hist_count_le(const struct stats_hist *h, uint64_t ns)
{
	uint64_t n = 0;

	for (unsigned b = 0; b < STATS_NBUCKETS && stats_bucket_upper(b) <= ns; b++)
		n += h->buckets[b];
	return n;
}
