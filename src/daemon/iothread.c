/* SPDX-License-Identifier: MIT */
/*
 * iothread.c - a thread that serves virtqueues: its loop waits on kick
 * eventfds and on its io_uring, or polls the rings and the CQ (poll modes:
 * the queues and the storage chan are the loop's pollers); at the end of every loop iteration it
 * submits the batch of storage requests and sends one used-buffer
 * notification per queue that completed something (batching).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/log.h"
#include "daemon/daemon.h"
#include "daemon/export_internal.h"

static void iothread_on_storage(void *opaque, uint32_t events)
{
	struct iothread *t = opaque;

	storage_chan_reap(t->chan);
}

/* Poller over the io_uring CQ and the local done list: memory reads only. */
static bool iothread_storage_poll(void *opaque)
{
	struct iothread *t = opaque;

	return storage_chan_poll(t->chan) > 0;
}

static bool iothread_storage_arm(void *opaque)
{
	struct iothread *t = opaque;

	return storage_chan_poll_stop(t->chan);
}

static void iothread_storage_disarm(void *opaque)
{
	struct iothread *t = opaque;

	storage_chan_poll_start(t->chan);
}

/*
 * End of a loop iteration: requests finished without the kernel, then one
 * notification per dirty queue, then one submit.
 */
static void iothread_idle(void *opaque)
{
	struct iothread *t = opaque;

	/* Requests completed here are timed when they complete, not when
	 * this iteration began; the next iteration reads the clock again. */
	t->now_ns = 0;
	storage_chan_drain(t->chan);
	while (t->dirty) {
		struct equeue *q = t->dirty;

		t->dirty = q->dirty_next;
		q->dirty_next = NULL;
		q->is_dirty = false;
		equeue_notify(q);
	}
	storage_chan_flush(t->chan);
	t->now_ns = 0;
}

int iothread_cpu_ns(const struct iothread *t, uint64_t *ns)
{
	struct timespec ts;

	if (!t->has_cpu_clock)
		return -ENOTSUP;
	if (clock_gettime(t->cpu_clock, &ts))
		return -errno;
	*ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	return 0;
}

void iothread_mark_dirty(struct iothread *t, struct equeue *q)
{
	if (q->is_dirty)
		return;
	q->is_dirty = true;
	q->dirty_next = t->dirty;
	t->dirty = q;
}

struct iothread_setup {
	struct iothread *t;
	int ret;
};

/* Runs in the new thread: the chan belongs to the thread that made it. */
static void iothread_setup_fn(void *arg)
{
	struct iothread_setup *s = arg;
	struct iothread *t = s->t;

	/* Its own CPU clock, for other threads to read (statistics). */
	t->has_cpu_clock = pthread_getcpuclockid(pthread_self(), &t->cpu_clock) == 0;
	s->ret = storage_chan_create(1024, &t->chan);
	if (s->ret)
		return;
	storage_chan_set_drained(t->chan, true);   /* by iothread_idle */
	s->ret = loop_add_fd(t->loop, storage_chan_fd(t->chan), EPOLLIN,
			     iothread_on_storage, t);
	if (!s->ret)
		s->ret = loop_add_idle(t->loop, iothread_idle, t);
	if (!s->ret)
		s->ret = loop_add_poller(t->loop, iothread_storage_poll, iothread_storage_arm,
					 iothread_storage_disarm, t);
}

static void iothread_teardown_fn(void *arg)
{
	struct iothread *t = arg;

	if (!t->chan)
		return;
	loop_del_poller(t->loop, iothread_storage_poll, t);
	loop_del_idle(t->loop, iothread_idle, t);
	loop_del_fd(t->loop, storage_chan_fd(t->chan));
	storage_chan_destroy(t->chan);
	t->chan = NULL;
}

int iothread_create(unsigned index, struct iothread **out)
{
	struct iothread_setup s = { 0 };
	struct iothread *t;
	char name[32];
	int ret;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->index = index;
	snprintf(name, sizeof(name), "vblk-io%u", index);
	ret = loop_create(name, &t->loop);
	if (ret)
		goto err_free;
	ret = loop_start(t->loop);
	if (ret)
		goto err_loop;
	s.t = t;
	loop_call(t->loop, iothread_setup_fn, &s);
	ret = s.ret;
	if (ret) {
		log_err("iothread %u: cannot set up io_uring: %s", index, strerror(-ret));
		goto err_teardown;
	}
	*out = t;
	return 0;

err_teardown:
	loop_call(t->loop, iothread_teardown_fn, t);
err_loop:
	loop_destroy(t->loop);
err_free:
	free(t);
	return ret;
}

struct iothread_mode {
	struct iothread *t;
	enum loop_poll_mode mode;
	uint64_t idle_ns;
	int ret;
};

static void iothread_set_poll_mode_fn(void *arg)
{
	struct iothread_mode *m = arg;

	m->ret = loop_set_poll_mode(m->t->loop, m->mode, m->idle_ns);
}

int iothread_set_poll_mode(struct iothread *t, enum loop_poll_mode mode, uint64_t idle_ns)
{
	struct iothread_mode m = { .t = t, .mode = mode, .idle_ns = idle_ns };

	loop_call(t->loop, iothread_set_poll_mode_fn, &m);
	return m.ret;
}

void iothread_destroy(struct iothread *t)
{
	if (!t)
		return;
	loop_call(t->loop, iothread_teardown_fn, t);
	loop_destroy(t->loop);
	free(t);
}
