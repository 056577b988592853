/* SPDX-License-Identifier: MIT */
/*
 * stats-cost.c - what vblkd's per-request accounting costs in isolation:
 * the statistics a request adds on its iothread (the started count at pop,
 * stats_queue_done at completion, one clock read per batch of 16) over a
 * loop doing the same work without them, interleaved rounds, best of each.
 * The figure to compare with vblkd's CPU time per request (printed by
 * bench/stats-overhead.sh), which IOPS on a busy machine cannot resolve
 * to a few percent. A cache-hot loop: a lower bound of the real cost.
 *
 * Usage: stats-cost [ROUNDS] [REQUESTS-PER-ROUND]
 */
#include <stdio.h>
#include <stdlib.h>

#include "daemon/stats.h"

#define BATCH 16

static uint64_t lat[4096];

/* The work both loops share: pick a request's type and "latency". */
static inline uint64_t request(uint64_t i, enum stats_op *op)
{
	*op = (i & 3) ? STATS_OP_READ : STATS_OP_WRITE;
	return lat[i & 4095];
}

static double run(bool with, uint64_t n, struct stats_queue *s)
{
	uint64_t t0 = stats_now_ns(), sink = 0, now = 0;

	for (uint64_t i = 0; i < n; i++) {
		enum stats_op op;
		uint64_t l = request(i, &op);

		if (with) {
			if (i % BATCH == 0)
				now = stats_now_ns();
			stats_add_u64(&s->started, 1);
			stats_queue_done(s, op, 4096, false, now, now + l);
		} else {
			sink += l + op;
		}
		__asm__ __volatile__("" : : "r"(sink) : "memory");
	}
	return (double)(stats_now_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
	unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 5;
	uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000000;
	static struct stats_queue s;
	double best_with = 1e9, best_without = 1e9;

	srand(1);
	for (size_t i = 0; i < 4096; i++)   /* 2 to 64 us, log-uniform-ish */
		lat[i] = 2000u << (rand() % 5) | (uint64_t)(rand() % 2000);
	for (unsigned r = 0; r < rounds; r++) {
		double a = run(false, n, &s), b = run(true, n, &s);

		best_without = a < best_without ? a : best_without;
		best_with = b < best_with ? b : best_with;
	}
	printf("per request, best of %u rounds of %llu (cache-hot loop)\n", rounds,
	       (unsigned long long)n);
	printf("%-22s %8s\n", "loop", "ns/req");
	printf("%-22s %8.2f\n", "without statistics", best_without);
	printf("%-22s %8.2f\n", "with statistics", best_with);
	printf("%-22s %8.2f\n", "statistics cost", best_with - best_without);
	printf("requests counted: %llu (check)\n",
	       (unsigned long long)(s.ops[STATS_OP_READ] + s.ops[STATS_OP_WRITE]));
	return 0;
}
