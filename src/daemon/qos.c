/* SPDX-License-Identifier: MIT */
/*
 * qos.c - token buckets for I/O limits (see qos.h) and the registry of
 * named groups. The arithmetic is exact: tokens are counted in 1e-9
 * units in 128-bit integers, refilled from ns timestamps, so no fraction
 * is lost at a refill however often it happens.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "daemon/qos.h"

#define NANO 1000000000

static const char *const kind_names[QOS_NKINDS] = {
	[QOS_IOPS] = "iops", [QOS_IOPS_RD] = "iops-rd", [QOS_IOPS_WR] = "iops-wr",
	[QOS_BPS] = "bps", [QOS_BPS_RD] = "bps-rd", [QOS_BPS_WR] = "bps-wr",
};

const char *qos_kind_name(enum qos_kind k)
{
	return (unsigned)k < QOS_NKINDS ? kind_names[k] : "?";
}

int qos_kind_parse(const char *name)
{
	for (int k = 0; k < QOS_NKINDS; k++)
		if (!strcmp(name, kind_names[k]))
			return k;
	return -1;
}

uint64_t qos_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NANO + (uint64_t)ts.tv_nsec;
}

/* Depth in nano-tokens: burst_ms of the rate, at least one whole token. */
static __int128 bucket_cap(uint64_t rate, uint32_t burst_ms)
{
	__int128 cap = (__int128)rate * (burst_ms ? burst_ms : QOS_DEFAULT_BURST_MS) * 1000000;

	return cap < NANO ? NANO : cap;
}

static void state_refill(struct qos_state *s, uint64_t now_ns)
{
	uint64_t dt;

	/* Another thread may have charged with a later clock reading. */
	if (now_ns <= s->last_ns)
		return;
	dt = now_ns - s->last_ns;
	s->last_ns = now_ns;
	for (int k = 0; k < QOS_NKINDS; k++) {
		struct qos_bucket *b = &s->b[k];
		/* A request waiting would have gone the moment its tokens
		 * were there, and the bucket refilled from that moment on:
		 * what a late wake-up (a timer, a poll, an iothread the host
		 * did not schedule for a while) adds past the top is owed to
		 * the waiters, up to one second of the rate. */
		__int128 top = b->waiting ? b->cap + (__int128)b->rate * NANO : b->cap;

		if (!b->rate || b->level >= top)
			continue;
		b->level += (__int128)dt * b->rate;
		if (b->level > top)
			b->level = top;
	}
}

void qos_state_init(struct qos_state *s, const struct qos_limits *l, uint64_t now_ns)
{
	memset(s, 0, sizeof(*s));
	s->last_ns = now_ns;
	qos_state_set(s, l, now_ns);
}

void qos_state_set(struct qos_state *s, const struct qos_limits *l, uint64_t now_ns)
{
	state_refill(s, now_ns);
	s->lim = *l;
	s->active = false;
	for (int k = 0; k < QOS_NKINDS; k++) {
		struct qos_bucket *b = &s->b[k];
		bool was_on = b->rate != 0;

		b->rate = l->rate[k];
		if (!b->rate) {
			b->level = b->cap = 0;
			continue;
		}
		s->active = true;
		b->cap = bucket_cap(b->rate, l->burst_ms);
		if (!was_on || b->level > b->cap)
			b->level = b->cap;
	}
}

/* Tokens request (@dir, @bytes) costs in bucket @k (0: not charged). */
static uint64_t kind_cost(enum qos_kind k, enum qos_dir dir, uint64_t bytes)
{
	switch (k) {
	case QOS_IOPS: return 1;
	case QOS_IOPS_RD: return dir == QOS_READ;
	case QOS_IOPS_WR: return dir == QOS_WRITE;
	case QOS_BPS: return bytes;
	case QOS_BPS_RD: return dir == QOS_READ ? bytes : 0;
	case QOS_BPS_WR: return dir == QOS_WRITE ? bytes : 0;
	default: return 0;
	}
}

uint64_t qos_state_take(struct qos_state *s, enum qos_dir dir, uint64_t bytes, uint64_t now_ns)
{
	uint64_t wait = 0;

	if (!s->active)
		return 0;
	state_refill(s, now_ns);
	for (int k = 0; k < QOS_NKINDS; k++) {
		const struct qos_bucket *b = &s->b[k];
		__int128 need = (__int128)kind_cost(k, dir, bytes) * NANO;
		__int128 missing, ns;

		if (!b->rate || !need)
			continue;
		/* Larger than the bucket: goes when the bucket is full. */
		if (need > b->cap)
			need = b->cap;
		if (b->level >= need)
			continue;
		s->b[k].waiting = true;   /* this bucket holds the request back */
		missing = need - b->level;
		ns = (missing + b->rate - 1) / b->rate;
		if (ns > (__int128)wait)
			wait = ns > (__int128)UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
	}
	if (wait)
		return wait;
	for (int k = 0; k < QOS_NKINDS; k++) {
		struct qos_bucket *b = &s->b[k];

		if (!b->rate)
			continue;
		b->level -= (__int128)kind_cost(k, dir, bytes) * NANO;
		/* Tokens still owed from a late wake-up: the requests queued
		 * behind this one take them, at the raised top. */
		b->waiting = b->waiting && b->level > b->cap;
	}
	return 0;
}

void qos_state_cancel_wait(struct qos_state *s)
{
	for (int k = 0; k < QOS_NKINDS; k++) {
		s->b[k].waiting = false;
		if (s->b[k].rate && s->b[k].level > s->b[k].cap)
			s->b[k].level = s->b[k].cap;
	}
}

void qos_shared_cancel_wait(struct qos_shared *q)
{
	pthread_mutex_lock(&q->lock);
	qos_state_cancel_wait(&q->st);
	pthread_mutex_unlock(&q->lock);
}

void qos_shared_init(struct qos_shared *q, const char *name)
{
	struct qos_limits none = { 0 };

	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	qos_state_init(&q->st, &none, qos_now_ns());
	if (name) {
		strncpy(q->name, name, sizeof(q->name) - 1);
		q->name[sizeof(q->name) - 1] = '\0';
	}
}

void qos_shared_fini(struct qos_shared *q)
{
	pthread_mutex_destroy(&q->lock);
}

uint64_t qos_shared_take(struct qos_shared *q, enum qos_dir dir, uint64_t bytes)
{
	uint64_t wait;

	pthread_mutex_lock(&q->lock);
	wait = qos_state_take(&q->st, dir, bytes, qos_now_ns());
	pthread_mutex_unlock(&q->lock);
	return wait;
}

void qos_shared_set(struct qos_shared *q, const struct qos_limits *l)
{
	pthread_mutex_lock(&q->lock);
	qos_state_set(&q->st, l, qos_now_ns());
	pthread_mutex_unlock(&q->lock);
}

void qos_shared_get(struct qos_shared *q, struct qos_limits *out)
{
	pthread_mutex_lock(&q->lock);
	*out = q->st.lim;
	pthread_mutex_unlock(&q->lock);
}

/* ---- named groups (control thread) ------------------------------------ */

static struct qos_shared groups[QOS_MAX_GROUPS];
static unsigned ngroups;

bool qos_group_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > QOS_GROUP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

int qos_group_get(const char *name, struct qos_shared **out)
{
	if (!qos_group_name_valid(name))
		return -EINVAL;
	for (unsigned i = 0; i < ngroups; i++) {
		if (!strcmp(groups[i].name, name)) {
			*out = &groups[i];
			return 0;
		}
	}
	if (ngroups == QOS_MAX_GROUPS)
		return -ENOSPC;
	qos_shared_init(&groups[ngroups], name);
	*out = &groups[ngroups++];
	return 0;
}
