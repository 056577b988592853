// SPDX-License-Identifier: MIT
/*
 * test_qos.c - the token buckets on a fake clock: exact long-run rates,
 * bursts, requests larger than a bucket, refills at odd intervals, runtime
 * changes, read/write/total limits together, groups.
 */
#include <errno.h>
#include <string.h>

#include "daemon/qos.h"
#include "tap.h"

#define SEC 1000000000ull

/*
 * A greedy client: charges @bytes requests of @dir back to back for
 * @dur ns starting at *now, sleeping exactly as long as told (or, with
 * @poll_ns, polling every poll_ns instead). Returns requests admitted.
 */
static uint64_t run(struct qos_state *s, enum qos_dir dir, uint64_t bytes, uint64_t *now,
		    uint64_t dur, uint64_t poll_ns)
{
	uint64_t end = *now + dur, n = 0;

	while (*now < end) {
		uint64_t w = qos_state_take(s, dir, bytes, *now);

		if (!w) {
			n++;
			continue;
		}
		*now += poll_ns ? poll_ns : w;
	}
	return n;
}

static void limits(struct qos_limits *l, enum qos_kind k, uint64_t rate, uint32_t burst_ms)
{
	memset(l, 0, sizeof(*l));
	l->rate[k] = rate;
	l->burst_ms = burst_ms;
}

static void test_exact_iops(void)
{
	struct qos_state s;
	struct qos_limits l;
	uint64_t now = 5 * SEC, n;

	limits(&l, QOS_IOPS, 1000, 0);
	qos_state_init(&s, &l, now);
	/* A full bucket (100 ms = 100 ops) then exactly 1000/s. */
	n = run(&s, QOS_READ, 4096, &now, 10 * SEC, 0);
	/* (the token arriving at exactly 10 s is the next run's) */
	ok(n >= 10099 && n <= 10101, "iops=1000 over 10 s: %llu admitted (burst 100 + 10000)",
	   (unsigned long long)n);
	/* The next 10 s: no burst left, exactly the rate. */
	n = run(&s, QOS_WRITE, 4096, &now, 10 * SEC, 0);
	ok(n >= 9999 && n <= 10001, "the next 10 s: %llu admitted (10000)", (unsigned long long)n);
}

static void test_fractional(void)
{
	struct qos_state s;
	struct qos_limits l;
	uint64_t now = 0, n;

	/* 3/s: a refill never makes a whole token at once; a 1 ms poll
	 * refills 0.003 tokens a time. Nothing may be lost at refills. */
	limits(&l, QOS_IOPS, 3, 0);
	qos_state_init(&s, &l, now);
	n = run(&s, QOS_OTHER, 0, &now, 1000 * SEC, 1000000);
	ok(n >= 2999 && n <= 3001, "iops=3 polled every 1 ms for 1000 s: %llu (3000 + 1)",
	   (unsigned long long)n);
	/* Odd poll interval, bytes: 1000003 B/s in 4 KiB requests. */
	limits(&l, QOS_BPS, 1000003, 0);
	qos_state_init(&s, &l, now);
	n = run(&s, QOS_WRITE, 4096, &now, 100 * SEC, 37000);
	ok(n * 4096 >= 100 * 1000003ull && n * 4096 <= 100 * 1000003ull + 100000 + 2 * 4096,
	   "bps=1000003 polled every 37 us for 100 s: %llu bytes (want %llu + burst)",
	   (unsigned long long)(n * 4096), 100 * 1000003ull);
}

static void test_burst(void)
{
	struct qos_state s;
	struct qos_limits l;
	uint64_t now = 0, w;
	unsigned i;

	limits(&l, QOS_IOPS, 100, 1000);   /* a bucket of 100 ops */
	qos_state_init(&s, &l, now);
	for (i = 0; i < 100 && !qos_state_take(&s, QOS_READ, 512, now); i++)
		;
	is(i, 100u, "burst-ms=1000 at 100/s: 100 requests at once");
	w = qos_state_take(&s, QOS_READ, 512, now);
	is(w, 10000000ull, "the 101st waits exactly 10 ms");
	ok(qos_state_take(&s, QOS_READ, 512, now + w - 1) != 0, "not 1 ns earlier");
	ok(qos_state_take(&s, QOS_READ, 512, now + w) == 0, "and goes at 10 ms");
	/* An idle second refills the bucket, not more. */
	now += 10 * SEC;
	for (i = 0; i < 1000 && !qos_state_take(&s, QOS_READ, 512, now); i++)
		;
	is(i, 100u, "after 10 s idle the burst is again 100, not 1000");
	/* A tiny rate still holds a whole request. */
	limits(&l, QOS_IOPS, 1, 0);
	qos_state_init(&s, &l, 0);
	ok(qos_state_take(&s, QOS_READ, 512, 0) == 0, "iops=1: the bucket holds one request");
	is(qos_state_take(&s, QOS_READ, 512, 0), SEC, "the next waits 1 s");
}

/* The iothread woken late (a busy host): a waiter loses nothing up to 1 s. */
static void test_late(void)
{
	struct qos_state s;
	struct qos_limits l;
	uint64_t now = 0, n = 0, end = 100 * SEC;

	limits(&l, QOS_IOPS, 300, 0);   /* a bucket of 30 */
	qos_state_init(&s, &l, now);
	while (now < end) {
		uint64_t w = qos_state_take(&s, QOS_READ, 4096, now);

		if (!w) {
			n++;
			continue;
		}
		now += w + 400000000;   /* every wake-up 400 ms late */
	}
	/* (the last wake-up, past the end, takes what the last 400 ms made) */
	ok(n >= 30000 - 121 && n <= 30000 + 30 + 1, "iops=300, every wake-up 400 ms late, "
	   "100 s: %llu (30000 + burst)", (unsigned long long)n);
	/* 3 s late: only 1 s of it is made up. */
	qos_state_init(&s, &l, 0);
	now = 0;
	for (n = 0; !qos_state_take(&s, QOS_READ, 4096, now); n++)
		;
	now += 3 * SEC;
	for (n = 0; n < 10000 && !qos_state_take(&s, QOS_READ, 4096, now); n++)
		;
	is(n, 330ull, "a wake-up 3 s late: the burst and 1 s of the rate (330)");
	/* The waiter gave up (its queue stopped): an idle bucket holds its burst. */
	qos_state_take(&s, QOS_READ, 4096, now);
	qos_state_cancel_wait(&s);
	now += 10 * SEC;
	for (n = 0; n < 1000 && !qos_state_take(&s, QOS_READ, 4096, now); n++)
		;
	is(n, 30ull, "idle 10 s after the waiter gave up: a burst of 30");
}

static void test_large(void)
{
	struct qos_state s;
	struct qos_limits l;
	uint64_t now = 0, n;

	/* 10 KB/s with a 1 KB bucket; 64 KiB requests never fit in it. */
	limits(&l, QOS_BPS, 10000, 100);
	qos_state_init(&s, &l, now);
	ok(qos_state_take(&s, QOS_WRITE, 65536, now) == 0, "a request 64x the bucket goes "
	   "when the bucket is full");
	n = run(&s, QOS_WRITE, 65536, &now, 1000 * SEC, 0);
	/* It left a debt: the long-run rate still holds. */
	ok(n * 65536 <= 1000 * 10000ull + 1000 && n * 65536 + 2 * 65536 >= 1000 * 10000ull,
	   "1000 s of 64 KiB writes at bps=10000: %llu bytes (10000000)",
	   (unsigned long long)(n * 65536));
}

static void test_kinds(void)
{
	struct qos_state s;
	struct qos_limits l = { 0 };
	uint64_t now = 0, n;

	l.rate[QOS_IOPS_RD] = 100;
	l.rate[QOS_BPS_WR] = 1 << 20;
	qos_state_init(&s, &l, now);
	n = run(&s, QOS_READ, 4096, &now, 10 * SEC, 0);
	ok(n >= 1009 && n <= 1011, "iops-rd=100: %llu reads in 10 s", (unsigned long long)n);
	for (n = 0; n < 100000 && !qos_state_take(&s, QOS_OTHER, 0, now); n++)
		;
	is(n, 100000ull, "flushes pass iops-rd and bps-wr untouched");
	n = run(&s, QOS_WRITE, 65536, &now, 10 * SEC, 0);
	ok(n * 65536 >= 10 * (1ull << 20) && n * 65536 <= 11 * (1ull << 20) + 65536,
	   "bps-wr=1M: %llu bytes written in 10 s", (unsigned long long)(n * 65536));
	/* total and per-direction at once: the stricter wins. */
	memset(&l, 0, sizeof(l));
	l.rate[QOS_IOPS] = 1000;
	l.rate[QOS_IOPS_WR] = 200;
	qos_state_init(&s, &l, now);
	n = run(&s, QOS_WRITE, 512, &now, 10 * SEC, 0);
	ok(n >= 2019 && n <= 2021, "iops=1000,iops-wr=200: %llu writes in 10 s",
	   (unsigned long long)n);
	n = run(&s, QOS_READ, 512, &now, 10 * SEC, 0);
	/* the total bucket refilled while writes were held to 200/s */
	ok(n >= 10099 && n <= 10101, "and %llu reads in the next 10 s", (unsigned long long)n);
}

static void test_runtime(void)
{
	struct qos_state s;
	struct qos_limits l;
	uint64_t now = 0, n;

	limits(&l, QOS_IOPS, 100, 0);
	qos_state_init(&s, &l, now);
	n = run(&s, QOS_READ, 512, &now, 5 * SEC, 0);
	l.rate[QOS_IOPS] = 1000;
	qos_state_set(&s, &l, now);
	n = run(&s, QOS_READ, 512, &now, 5 * SEC, 0);
	/* The old bucket (10) was empty; the new one starts from there. */
	ok(n >= 5000 && n <= 5001, "raised to 1000/s: %llu in the next 5 s",
	   (unsigned long long)n);
	memset(&l, 0, sizeof(l));
	qos_state_set(&s, &l, now);
	ok(!s.active, "all limits 0: inactive");
	for (n = 0; n < 1000000 && !qos_state_take(&s, QOS_READ, 512, now); n++)
		;
	is(n, 1000000ull, "no limit: everything passes at once");
	limits(&l, QOS_BPS, 1 << 20, 0);
	qos_state_set(&s, &l, now);
	ok(qos_state_take(&s, QOS_READ, 100 << 10, now) == 0, "a limit turned on starts "
	   "with a full bucket");
	/* The clock of another thread may be a little behind. */
	ok(qos_state_take(&s, QOS_READ, 100 << 10, now - 1000) != 0, "an older timestamp "
	   "adds nothing");
}

static void test_groups(void)
{
	struct qos_shared *a, *b, *c;
	char longname[80];

	ok(qos_group_get("tenant-1", &a) == 0, "group tenant-1 made");
	ok(qos_group_get("tenant-1", &b) == 0 && a == b, "the same name is the same group");
	ok(qos_group_get("tenant.2_x", &c) == 0 && c != a, "another name, another group");
	is(qos_group_get("", &c), -EINVAL, "an empty name is refused");
	is(qos_group_get("a b", &c), -EINVAL, "a space is refused");
	is(qos_group_get("x/y", &c), -EINVAL, "a slash is refused");
	memset(longname, 'g', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	is(qos_group_get(longname, &c), -EINVAL, "a 79-byte name is refused");
	for (int i = 0; i < QOS_MAX_GROUPS + 2; i++) {
		char name[16];
		int ret;

		snprintf(name, sizeof(name), "g%d", i);
		ret = qos_group_get(name, &c);
		if (ret) {
			is(ret, -ENOSPC, "group %d of at most %d: -ENOSPC", i + 2, QOS_MAX_GROUPS);
			break;
		}
	}
	/* Two members charging one group get the group's rate together. */
	{
		struct qos_limits l;
		uint64_t now = qos_now_ns(), end = now + SEC / 2, na = 0, nb = 0;

		limits(&l, QOS_IOPS, 2000, 0);
		qos_shared_set(a, &l);
		while (qos_now_ns() < end) {
			na += qos_shared_take(a, QOS_READ, 512) == 0;
			nb += qos_shared_take(b, QOS_WRITE, 512) == 0;
		}
		ok(na + nb >= 900 && na + nb <= 1200 + 1, "two members in 0.5 s of real time: "
		   "%llu + %llu (1000 + burst 200; 10%% slack below for a descheduled test)",
		   (unsigned long long)na, (unsigned long long)nb);
	}
}

static void test_names(void)
{
	for (int k = 0; k < QOS_NKINDS; k++)
		is(qos_kind_parse(qos_kind_name(k)), k, "key %s round-trips", qos_kind_name(k));
	is(qos_kind_parse("iops-total"), -1, "unknown key");
}

int main(void)
{
	test_exact_iops();
	test_fractional();
	test_burst();
	test_late();
	test_large();
	test_kinds();
	test_runtime();
	test_groups();
	test_names();
	return tap_done();
}
