/* SPDX-License-Identifier: MIT */
/*
 * qos.h - I/O limits: token buckets for IOPS and bytes per second (read,
 * write, total) with a burst allowance, shared by the queues of one export
 * or by the exports of a named group. Pure arithmetic on a clock the
 * caller passes (ns), so the unit test drives it with a fake one; knows
 * nothing of rings, loops or JSON.
 */
#ifndef VBLK_DAEMON_QOS_H
#define VBLK_DAEMON_QOS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum qos_kind {
	QOS_IOPS, QOS_IOPS_RD, QOS_IOPS_WR,
	QOS_BPS, QOS_BPS_RD, QOS_BPS_WR,
	QOS_NKINDS
};

/* What a request is charged as. */
enum qos_dir {
	QOS_OTHER,   /* flush, get-id: total IOPS only */
	QOS_READ,
	QOS_WRITE,   /* writes; discard and write-zeroes too (0 bytes) */
};

#define QOS_DEFAULT_BURST_MS 100u
#define QOS_MAX_BURST_MS 60000u
#define QOS_MAX_RATE 1000000000000000ull   /* 10^15 per second */
#define QOS_MAX_GROUPS 64
#define QOS_GROUP_NAME_MAX 63

/* The user's settings. rate[k] == 0: no limit of kind k. */
struct qos_limits {
	uint64_t rate[QOS_NKINDS];
	uint32_t burst_ms;         /* bucket depth in ms of its rate; 0: default */
};

/* One bucket: tokens in units of 1e-9 token, so refill is exact integer
 * arithmetic (rate tokens/s == rate nano-tokens/ns). May go negative:
 * a request larger than the bucket is let through when the bucket is
 * full and leaves a debt that later refills pay back. */
struct qos_bucket {
	uint64_t rate;
	__int128 level;
	__int128 cap;
	bool waiting;   /* it held a request back, or owes tokens to waiters */
};

struct qos_state {
	struct qos_limits lim;
	struct qos_bucket b[QOS_NKINDS];
	uint64_t last_ns;
	bool active;               /* some rate is set */
};

/* Names of the keys (iops, iops-rd, ...; "burst-ms" is separate). */
const char *qos_kind_name(enum qos_kind k);
/* The kind for a key name; -1 if none. */
int qos_kind_parse(const char *name);

/* Full buckets for @l at @now_ns. */
void qos_state_init(struct qos_state *s, const struct qos_limits *l, uint64_t now_ns);
/*
 * qos_state_set - new limits at runtime. Tokens earned so far under the old
 * rates are kept (clamped to the new depth); a bucket that was off starts
 * full.
 */
void qos_state_set(struct qos_state *s, const struct qos_limits *l, uint64_t now_ns);
/*
 * qos_state_take - charge one request of @bytes in direction @dir.
 * Return: 0 if it may go now (tokens taken), else how many ns to wait
 * before trying again (nothing taken). A request larger than a bucket's
 * depth goes once that bucket is full.
 */
uint64_t qos_state_take(struct qos_state *s, enum qos_dir dir, uint64_t bytes, uint64_t now_ns);
/*
 * qos_state_cancel_wait - a request told to wait will not come back (its
 * queue stopped): drop what it was owed. While a request waits, a late
 * retry finds the tokens earned meanwhile, up to one second of the rate
 * past the burst, so a host that runs the iothread late costs no rate.
 */
void qos_state_cancel_wait(struct qos_state *s);

/*
 * A set of buckets several threads charge: one export's queues (they may
 * sit on different iothreads), or a named group of exports. The mutex is
 * taken once per request of a limited export only; exports without limits
 * never touch it. Named groups live until the process exits (at most
 * QOS_MAX_GROUPS), so an iothread never holds a pointer to a freed one.
 */
struct qos_shared {
	pthread_mutex_t lock;
	struct qos_state st;
	char name[QOS_GROUP_NAME_MAX + 1];   /* "" for an export's own */
};

void qos_shared_init(struct qos_shared *q, const char *name);
void qos_shared_fini(struct qos_shared *q);
/* Context: any thread. */
uint64_t qos_shared_take(struct qos_shared *q, enum qos_dir dir, uint64_t bytes);
void qos_shared_set(struct qos_shared *q, const struct qos_limits *l);
void qos_shared_cancel_wait(struct qos_shared *q);
void qos_shared_get(struct qos_shared *q, struct qos_limits *out);
/*
 * qos_group_get - the group called @name, made (without limits) if new.
 * Return: 0, -EINVAL (bad name: 1..63 of [A-Za-z0-9_.-]), -ENOSPC.
 * Context: the control thread.
 */
int qos_group_get(const char *name, struct qos_shared **out);
bool qos_group_name_valid(const char *name);

/* CLOCK_MONOTONIC in ns. */
uint64_t qos_now_ns(void);

#endif
