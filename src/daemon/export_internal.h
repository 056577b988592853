/* SPDX-License-Identifier: MIT */
/* export_internal.h - what export.c and iothread.c share about queues. */
#ifndef VBLK_DAEMON_EXPORT_INTERNAL_H
#define VBLK_DAEMON_EXPORT_INTERNAL_H

#include "daemon/daemon.h"

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
	bool parked;              /* waiting for an IOTLB miss to be answered */
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
};

/* Signal the call eventfd if the ring wants a used-buffer notification. */
void equeue_notify(struct equeue *q);

#endif
