/* SPDX-License-Identifier: MIT */
/* export_internal.h - what export.c and iothread.c share about queues. */
#ifndef VBLK_DAEMON_EXPORT_INTERNAL_H
#define VBLK_DAEMON_EXPORT_INTERNAL_H

#include "daemon/daemon.h"
#include "daemon/stats.h"

struct ereq;

/*
 * A vring while an iothread serves it. Every field is touched only by the
 * iothread, except where noted; the control thread reaches it through
 * loop_call.
 */
struct equeue {
	struct export *exp;
	struct iothread *t;
	struct vhost_vring *vr;   /* NULL when not started */
	bool running;             /* kick fd watched, popping allowed */
	bool stopping;
	bool broken_reported;
	bool polled;              /* a poller owns notifications: keep them off */
	bool processing;          /* inside equeue_process: completions don't re-enter */
	bool iotlb_wait;          /* waiting for an IOTLB miss to be answered */
	uint64_t popped;          /* chains started (the poller's progress mark) */
	uint64_t yields;          /* equeue_process calls that ran out of budget */
	unsigned inflight;
	struct ereq *free_reqs;   /* request pool, grows up to the ring size */
	unsigned nreqs;
	vhost_done_cb stop_done;  /* (control thread) vhost's callback */
	void *stop_arg;
	bool is_dirty;            /* on t->dirty */
	struct equeue *dirty_next;
	uint64_t completed;       /* statistics */
	/* Written by the iothread only, read by the control thread
	 * (relaxed; see stats.h). Kept across reconnects. */
	struct stats_queue stats;
	/* QoS: a popped request over the limit waits here, with the queue
	 * neither popped nor notified, until the iothread's timer fires. */
	struct ereq *qos_parked;
	bool throttled;           /* on t->throttled */
	uint64_t throttle_until;  /* CLOCK_MONOTONIC ns */
	struct equeue *throttle_next;   /* on t->throttled */
};

/*
 * iothread_now - the time of the loop iteration the iothread is in, for
 * request latencies: read from the clock once, at the first request
 * started or completed in the iteration (iothread_idle starts a new one
 * before and after it completes the batch). A latency is then off by at
 * most the work of one iteration, and a busy iothread pays one clock read
 * per batch instead of two per request. Context: the iothread.
 */
static inline uint64_t iothread_now(struct iothread *t)
{
	if (!t->now_ns)
		t->now_ns = stats_now_ns();
	return t->now_ns;
}

/* Signal the call eventfd if the ring wants a used-buffer notification. */
void equeue_notify(struct equeue *q);
/* Context: the iothread. The wait of a throttled queue is over (or its
 * limits changed): try its parked request again, then go on popping. */
void equeue_qos_resume(struct equeue *q);

#endif
