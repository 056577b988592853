/* SPDX-License-Identifier: MIT */
/* Unit tests for src/loop: fd callbacks, cross-thread calls, deletion. */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "tap.h"
#include "loop/loop.h"

struct ctx {
	struct loop *l;
	int fd_a, fd_b;
	int hits_a, hits_b;
	bool ran_in_thread;
	int counter;
};

/*
 * A poller whose callbacks add pollers: the loop's poller array grows
 * (realloc) while the loop is still using the entry it called.
 */
struct grower {
	struct loop *l;
	unsigned disarms, polls, settle_polls, arms_pending;
	unsigned added;
};

static bool noop_poll(void *opaque) { (void)opaque; return false; }
static bool noop_arm(void *opaque) { (void)opaque; return false; }
static void noop_disarm(void *opaque) { (void)opaque; }

static void grow(struct grower *g, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (loop_add_poller(g->l, noop_poll, noop_arm, noop_disarm, g) == 0)
			g->added++;
}

static void grower_disarm(void *opaque)
{
	struct grower *g = opaque;

	/* Polling mode, first disarm: the loop polls this entry next. */
	if (g->disarms++ == 0)
		grow(g, 20);
}

static bool grower_poll(void *opaque)
{
	struct grower *g = opaque;

	if (g->arms_pending) {
		/* EVENT mode, called by the loop's settle step after arm. */
		g->settle_polls++;
		grow(g, 100);
		g->arms_pending = 0;
		loop_stop(g->l);
		return true;
	}
	if (++g->polls == 2) {
		/* Next iteration: EVENT mode settles the disarmed pollers. */
		loop_set_poll_mode(g->l, LOOP_POLL_EVENT, 0);
		g->arms_pending = 1;
	}
	return false;
}

static bool grower_arm(void *opaque)
{
	struct grower *g = opaque;

	return g->arms_pending != 0;
}

static void drain(int fd)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
}

static void kick(int fd)
{
	uint64_t one = 1;
	ssize_t r = write(fd, &one, sizeof(one));
	(void)r;
}

/* a's handler deletes b: b must not run in the same batch afterwards. */
static void on_a(void *opaque, uint32_t ev)
{
	struct ctx *c = opaque;

	drain(c->fd_a);
	c->hits_a++;
	loop_del_fd(c->l, c->fd_b);
	loop_stop(c->l);
}

static void on_b(void *opaque, uint32_t ev)
{
	struct ctx *c = opaque;

	drain(c->fd_b);
	c->hits_b++;
	loop_del_fd(c->l, c->fd_a);
	loop_stop(c->l);
}

/* A second check of the condition passes: loop_run_until iterates once. */
static bool second_time(void *arg)
{
	return ++*(int *)arg >= 2;
}

/*
 * The same deletion, then the callback runs the loop itself (the control
 * thread removing an export waits for its queues this way): the nested
 * batch must not free b's handler, which the outer batch still holds.
 */
static void on_a_nested(void *opaque, uint32_t ev)
{
	struct ctx *c = opaque;
	int checks = 0;

	drain(c->fd_a);
	c->hits_a++;
	loop_del_fd(c->l, c->fd_b);
	loop_run_until(c->l, second_time, &checks, 50);
	loop_stop(c->l);
}

static void in_thread_fn(void *arg)
{
	struct ctx *c = arg;

	c->ran_in_thread = loop_in_thread(c->l);
	c->counter++;
}

static void post_fn(void *arg)
{
	struct ctx *c = arg;

	c->counter += 10;
}

static bool counter_reached(void *arg)
{
	return ((struct ctx *)arg)->counter >= 10;
}

static void *poster_thread(void *arg)
{
	struct ctx *c = arg;

	usleep(20000);
	loop_post(c->l, post_fn, c);
	return NULL;
}

/* Sleeps in read() until the test writes the eventfd *arg. */
static void block_fn(void *arg)
{
	drain(*(int *)arg);
}

static int idle_count;
static void on_idle(void *opaque)
{
	idle_count++;
}

int main(void)
{
	struct ctx c = { 0 };
	struct loop *io;

	/* Deleting a handler from inside another one, same epoll batch. */
	ok(loop_create("main", &c.l) == 0, "create loop");
	c.fd_a = eventfd(0, EFD_NONBLOCK);
	c.fd_b = eventfd(0, EFD_NONBLOCK);
	is(loop_add_fd(c.l, c.fd_a, EPOLLIN, on_a, &c), 0, "add fd a");
	is(loop_add_fd(c.l, c.fd_b, EPOLLIN, on_b, &c), 0, "add fd b");
	is(loop_add_fd(c.l, c.fd_b, EPOLLIN, on_b, &c), -EEXIST, "adding twice is refused");
	ok(loop_add_idle(c.l, on_idle, NULL) == 0, "add idle callback");
	kick(c.fd_a);
	kick(c.fd_b);
	loop_run(c.l);
	is(c.hits_a + c.hits_b, 1, "the handler deleted in the same batch did not run");
	ok(idle_count >= 1, "idle callback ran after the batch");
	is(loop_del_fd(c.l, c.fd_a) + loop_del_fd(c.l, c.fd_b), -ENOENT,
	   "exactly one handler remains to delete");
	loop_destroy(c.l);
	close(c.fd_a);
	close(c.fd_b);

	/* The same, with a nested loop_run_until in a's callback. */
	c = (struct ctx){ 0 };
	ok(loop_create("nested", &c.l) == 0, "create loop (nested run)");
	c.fd_a = eventfd(0, EFD_NONBLOCK);
	c.fd_b = eventfd(0, EFD_NONBLOCK);
	loop_add_fd(c.l, c.fd_a, EPOLLIN, on_a_nested, &c);
	loop_add_fd(c.l, c.fd_b, EPOLLIN, on_b, &c);
	kick(c.fd_a);
	kick(c.fd_b);
	loop_run(c.l);
	is(c.hits_a + c.hits_b, 1,
	   "a handler deleted before a nested loop_run_until does not run (nor is freed under the batch)");
	loop_destroy(c.l);
	close(c.fd_a);
	close(c.fd_b);

	/* Cross-thread calls on an iothread. */
	ok(loop_create("io", &io) == 0, "create iothread loop");
	ok(loop_start(io) == 0, "start iothread");
	c.l = io;
	ok(!loop_in_thread(io), "main thread is not the iothread");
	c.counter = 0;
	loop_call(io, in_thread_fn, &c);
	ok(c.ran_in_thread, "loop_call runs fn in the loop's thread");
	is(c.counter, 1, "loop_call waited for fn");
	for (int i = 0; i < 100; i++)
		loop_post(io, post_fn, &c);
	loop_call(io, in_thread_fn, &c);   /* runs after the posts (FIFO) */
	is(c.counter, 1002, "posted calls ran in order before the next call");

	/* A bounded call to a loop stuck in a callback gives up, and its fn
	 * never runs (it would use the caller's stack); later calls work. */
	int gate = eventfd(0, EFD_CLOEXEC);   /* blocking: the stuck callback */
	loop_post(io, block_fn, &gate);
	c.counter = 0;
	is(loop_call_timeout(io, in_thread_fn, &c, 100), -ETIMEDOUT,
	   "loop_call_timeout gives up on a loop that does not answer");
	kick(gate);                           /* the loop runs again */
	is(loop_call_timeout(io, in_thread_fn, &c, 5000), 0,
	   "loop_call_timeout runs fn once the loop answers");
	is(c.counter, 1, "the call that timed out never ran");
	close(gate);
	loop_destroy(io);

	/* loop_run_until: runs work posted from another thread, or times out. */
	ok(loop_create("until", &c.l) == 0, "create loop for run_until");
	c.counter = 0;
	is(loop_run_until(c.l, counter_reached, &c, 50), -ETIMEDOUT,
	   "run_until times out when the condition never holds");
	pthread_t th;
	pthread_create(&th, NULL, poster_thread, &c);
	is(loop_run_until(c.l, counter_reached, &c, 5000), 0,
	   "run_until returns once a posted call made the condition true");
	is(c.counter, 10, "the posted call ran in the loop");
	pthread_join(th, NULL);
	loop_destroy(c.l);

	/* Poller callbacks that add pollers until the array reallocates. */
	struct grower g = { 0 };

	ok(loop_create("grow", &g.l) == 0, "create loop for growing pollers");
	is(loop_add_poller(g.l, grower_poll, grower_arm, grower_disarm, &g), 0, "add grower");
	is(loop_set_poll_mode(g.l, LOOP_POLL_BUSY, 0), 0, "poll mode");
	is(loop_run(g.l), 0, "loop ran while its poller array grew");
	is(g.added, 120u, "every added poller was registered");
	ok(g.polls >= 2, "the grower was polled after its disarm grew the array");
	is(g.settle_polls, 1u, "the grower was settled once in event mode, growing the array");
	loop_destroy(g.l);
	return tap_done();
}
