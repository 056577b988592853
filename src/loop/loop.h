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
 * For shutdown: waiting for work posted to this loop by other threads.
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

/* loop_post - queue fn(arg) to run in the loop's thread; returns at once. */
int loop_post(struct loop *l, loop_fn fn, void *arg);

/* True if the calling thread is the loop's thread. */
bool loop_in_thread(const struct loop *l);

/* Called once per loop iteration, after fd callbacks (batch flushes). */
typedef void (*loop_idle_cb)(void *opaque);
int loop_add_idle(struct loop *l, loop_idle_cb cb, void *opaque);
int loop_del_idle(struct loop *l, loop_idle_cb cb, void *opaque);

#endif
