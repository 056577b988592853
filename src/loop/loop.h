/* SPDX-License-Identifier: MIT */
/*
 * loop.h - event loops and iothreads. A loop is owned by one thread: the
 * fds, queues and io_uring registered on it are touched only by that
 * thread. Other threads reach it by message (loop_call / loop_post), never
 * by taking a lock on its data.
 */
#ifndef VBLK_LOOP_H
#define VBLK_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

typedef void (*loop_fd_cb)(void *opaque, uint32_t events);
typedef void (*loop_fn)(void *arg);

/* A loop for the calling thread (run it with loop_run) or for a new
 * iothread (loop_start). name is used in logs and the thread name. */
int loop_create(const char *name, struct loop **out);
/* Stop (if running as an iothread), join, close. */
void loop_destroy(struct loop *l);

/* Spawn a thread that runs the loop until loop_stop. */
int loop_start(struct loop *l);
/* Run the loop in the calling thread until loop_stop is called. */
int loop_run(struct loop *l);
/*
 * loop_run_until - run the loop in the calling thread until cond(arg) is
 * true (checked after every iteration) or timeout_ms passes (-1: never).
 * For shutdown, or a control method waiting for work posted to this loop
 * by other threads; may be called from a callback of the same loop.
 * Return: 0, or -ETIMEDOUT.
 */
int loop_run_until(struct loop *l, bool (*cond)(void *arg), void *arg, int timeout_ms);
/* Ask the loop to return from loop_run; any thread, async-signal-safe. */
void loop_stop(struct loop *l);

/*
 * loop_add_fd / loop_mod_fd / loop_del_fd - watch fd for epoll events.
 * Context: the loop's own thread, or before the loop runs. Deleting an fd
 * from within any callback is safe: no callback for it runs afterwards.
 */
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *opaque);
int loop_mod_fd(struct loop *l, int fd, uint32_t events);
int loop_del_fd(struct loop *l, int fd);

/*
 * loop_call - run fn(arg) in the loop's thread and wait until it has run.
 * If called from the loop's own thread, runs fn directly.
 * Context: any thread other than one whose loop @l is waiting on (no
 * cycles). Never blocks on I/O: loop callbacks never block.
 */
int loop_call(struct loop *l, loop_fn fn, void *arg);
/*
 * loop_call_timeout - as loop_call, but give up if the loop has not
 * started fn within @timeout_ms (-1: wait for ever): fn is then taken off
 * the queue and never runs. Once fn has started, waits for it to return
 * (fn uses the caller's data). For a control thread that must not hang on
 * an iothread that stopped answering.
 * Return: 0 (fn ran), -ETIMEDOUT (fn did not run and never will).
 */
int loop_call_timeout(struct loop *l, loop_fn fn, void *arg, int timeout_ms);

/* loop_post - queue fn(arg) to run in the loop's thread; returns at once. */
int loop_post(struct loop *l, loop_fn fn, void *arg);

/* True if the calling thread is the loop's thread. */
bool loop_in_thread(const struct loop *l);

/* Called once per loop iteration, after fd callbacks (batch flushes). */
typedef void (*loop_idle_cb)(void *opaque);
int loop_add_idle(struct loop *l, loop_idle_cb cb, void *opaque);
int loop_del_idle(struct loop *l, loop_idle_cb cb, void *opaque);

/*
 * Polling. A poller is a source of work the loop can check without a
 * system call (a ring's avail index, an io_uring CQ). While the loop polls,
 * the poller's notifications are off (disarmed); before the loop sleeps in
 * epoll they are turned back on (armed).
 *
 * poll:   check for and process work; true if it found any.
 * arm:    re-enable notifications; true if work is already pending, in
 *         which case the loop polls again instead of sleeping (no lost
 *         wakeup: the source must publish "notify me" before re-checking).
 * disarm: disable notifications; the loop polls from now on.
 *
 * A poller starts armed. Callbacks run only in the loop's thread.
 */
typedef bool (*loop_poll_cb)(void *opaque);
typedef bool (*loop_arm_cb)(void *opaque);
typedef void (*loop_disarm_cb)(void *opaque);

enum loop_poll_mode {
	LOOP_POLL_EVENT,      /* sleep in epoll; pollers stay armed */
	LOOP_POLL_BUSY,       /* poll forever, never sleep */
	LOOP_POLL_ADAPTIVE,   /* poll while work arrives, sleep after idle_ns */
};

/*
 * loop_add_poller / loop_del_poller - register or remove a poller.
 * Context: the loop's thread, or before the loop runs. Deleting from a
 * callback is safe. A poller deleted while disarmed is not re-armed: its
 * owner is tearing the source down.
 */
int loop_add_poller(struct loop *l, loop_poll_cb poll, loop_arm_cb arm,
		    loop_disarm_cb disarm, void *opaque);
int loop_del_poller(struct loop *l, loop_poll_cb poll, void *opaque);

/*
 * loop_set_poll_mode - how loop_run waits for work. idle_ns: in ADAPTIVE,
 * how long polling finds nothing before the loop arms and sleeps.
 * Without pollers every mode is EVENT. Returns -EINVAL for a bad mode.
 * Context: the loop's thread (e.g. through loop_call), or before it runs.
 */
int loop_set_poll_mode(struct loop *l, enum loop_poll_mode mode, uint64_t idle_ns);

/* Parse "event" / "poll" / "adaptive". Returns 0 or -EINVAL. */
int loop_poll_mode_parse(const char *s, enum loop_poll_mode *out);
/* The --poll-mode name of @mode ("event", "poll", "adaptive"). */
const char *loop_poll_mode_name(enum loop_poll_mode mode);

#endif
