/* SPDX-License-Identifier: MIT */
/*
 * loop.c - epoll event loops. One thread owns a loop: its fd handlers and
 * idle callbacks run only there. Other threads hand it work through a
 * mutex-protected call queue and an eventfd doorbell (loop_call/loop_post);
 * the mutex guards only that queue, never the loop's data.
 *
 * With pollers and a poll mode other than EVENT, loop_run polls instead of
 * sleeping: each iteration calls every poller, looks at epoll (timeout 0)
 * only every few iterations, and in ADAPTIVE mode arms the pollers and
 * sleeps once nothing has been found for idle_ns.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "common/compiler.h"
#include "common/log.h"
#include "loop/loop.h"

#define LOOP_MAX_EVENTS 64
#define LOOP_MAX_IDLE 32

struct loop_handler {
	int fd;
	bool dead;              /* deleted; freed at the end of the iteration */
	loop_fd_cb cb;
	void *opaque;
	struct loop_handler *next;
};

struct loop_callreq {
	loop_fn fn;
	void *arg;
	bool wait;              /* loop_call: the caller owns this struct */
	bool started;           /* taken off the queue by the loop (under lock) */
	bool done;
	struct loop_callreq *next;
};

struct loop_idle {
	loop_idle_cb cb;
	void *opaque;
};

struct loop_poller {
	loop_poll_cb poll;
	loop_arm_cb arm;
	loop_disarm_cb disarm;
	void *opaque;
	bool armed;             /* notifications on */
	bool dead;              /* deleted; dropped at the end of the iteration */
};

/* Look at fds every this many polling iterations that found work, and
 * every LOOP_POLL_FD_IDLE ones that found nothing: control messages and
 * new connections wait microseconds, and epoll costs little. */
#define LOOP_POLL_FD_BUSY 64
#define LOOP_POLL_FD_IDLE 8

/* A yield that kept the loop off its CPU this long met a thread that does
 * not sleep (see loop_adaptive_idle); ADAPTIVE then stops polling for
 * LOOP_CONTENDED_NS. Work items of io_uring's workers take microseconds;
 * a scheduler slice is milliseconds. */
#define LOOP_YIELD_LONG_NS 300000u
#define LOOP_CONTENDED_NS 100000000u

struct loop {
	char name[32];
	int epfd;
	int wake_fd;            /* eventfd: calls queued or stop requested */
	pthread_t owner;
	pthread_t thread;
	bool has_thread;
	volatile int stop;      /* written by any thread, read by the owner */
	struct loop_handler *handlers;   /* every live handler (for lookup) */
	struct loop_handler *graveyard;  /* dead, freed after the epoll batch */
	unsigned dispatching;   /* epoll batches being run (nested: loop_run_until
				 * from a callback) */
	struct loop_idle idle[LOOP_MAX_IDLE];
	unsigned nidle;
	pthread_mutex_t lock;   /* guards calls, call_tail */
	pthread_cond_t cond;    /* signalled when a waited call is done */
	struct loop_callreq *calls, *call_tail;
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	bool started;
	/* polling (owner thread only) */
	struct loop_poller *pollers;
	unsigned npollers, cap_pollers;
	bool pollers_dead;      /* some entry is dead: compact */
	unsigned ndisarmed;     /* live pollers with notifications off */
	enum loop_poll_mode mode;
	uint64_t idle_ns;
	bool sleeping;          /* polling loop: armed, next wait blocks */
	uint64_t idle_since;    /* ns; 0: the last poll found work */
	uint64_t iter;
	uint64_t contended_until;  /* ns; ADAPTIVE sleeps when idle until then */
};

/* Sentinel used as the wake fd's epoll data. */
static struct loop_handler wake_handler;

int loop_create(const char *name, struct loop **out)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &wake_handler };
	struct loop *l;
	int ret;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	snprintf(l->name, sizeof(l->name), "%s", name ? name : "loop");
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		ret = -errno;
		goto err_free;
	}
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0) {
		ret = -errno;
		goto err_close_ep;
	}
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
		ret = -errno;
		goto err_close_wake;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	pthread_mutex_init(&l->start_lock, NULL);
	pthread_cond_init(&l->start_cond, NULL);
	l->owner = pthread_self();
	*out = l;
	return 0;

err_close_wake:
	close(l->wake_fd);
err_close_ep:
	close(l->epfd);
err_free:
	free(l);
	return ret;
}

static void loop_wake(struct loop *l)
{
	uint64_t one = 1;
	ssize_t r UNUSED;

	r = write(l->wake_fd, &one, sizeof(one));
}

static void loop_free_graveyard(struct loop *l)
{
	while (l->graveyard) {
		struct loop_handler *h = l->graveyard;

		l->graveyard = h->next;
		free(h);
	}
}

/* Run every queued call. Context: the owner thread. */
static void loop_run_calls(struct loop *l)
{
	struct loop_callreq *c;

	for (;;) {
		pthread_mutex_lock(&l->lock);
		c = l->calls;
		if (c) {
			l->calls = c->next;
			if (!l->calls)
				l->call_tail = NULL;
			c->started = true;
		}
		pthread_mutex_unlock(&l->lock);
		if (!c)
			return;
		c->fn(c->arg);
		if (c->wait) {
			pthread_mutex_lock(&l->lock);
			c->done = true;
			pthread_cond_broadcast(&l->cond);
			pthread_mutex_unlock(&l->lock);
		} else {
			free(c);
		}
	}
}

/* Wait for and run fd events. Returns how many there were. */
static int loop_dispatch(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int n;

	n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
	if (n < 0 && errno != EINTR)
		log_rl(LOG_ERR, "%s: epoll_wait: %s", l->name, strerror(errno));
	l->dispatching++;
	for (int i = 0; i < n; i++) {
		struct loop_handler *h = evs[i].data.ptr;

		if (h == &wake_handler) {
			uint64_t v;
			ssize_t r UNUSED;

			r = read(l->wake_fd, &v, sizeof(v));
			loop_run_calls(l);
			continue;
		}
		/* A handler deleted earlier in this batch must not run. */
		if (!h->dead)
			h->cb(h->opaque, evs[i].events);
	}
	l->dispatching--;
	return n > 0 ? n : 0;
}

static void loop_compact_pollers(struct loop *l)
{
	unsigned j = 0;

	for (unsigned i = 0; i < l->npollers; i++)
		if (!l->pollers[i].dead)
			l->pollers[j++] = l->pollers[i];
	l->npollers = j;
	l->pollers_dead = false;
}

/* End of an iteration: batch flushes, then free what was deleted. */
static void loop_finish_iteration(struct loop *l)
{
	for (unsigned i = 0; i < l->nidle; i++)
		l->idle[i].cb(l->idle[i].opaque);
	/* A callback running loop_run_until (the control thread removing an
	 * export) nests a batch in a batch: the outer one still holds
	 * pointers to handlers, so the dead are freed only at the outermost. */
	if (!l->dispatching)
		loop_free_graveyard(l);
	if (l->pollers_dead)
		loop_compact_pollers(l);
}

static void loop_iterate(struct loop *l, int timeout_ms)
{
	loop_dispatch(l, timeout_ms);
	loop_finish_iteration(l);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Arm every poller. Returns true if one had work pending (the caller must
 * poll again rather than sleep). Index loop: callbacks may add pollers,
 * which may move the array (realloc), so no entry pointer outlives a call.
 */
static bool loop_arm_pollers(struct loop *l)
{
	bool pending = false;

	for (unsigned i = 0; i < l->npollers; i++) {
		struct loop_poller *p = &l->pollers[i];

		if (p->dead || p->armed)
			continue;
		p->armed = true;
		l->ndisarmed--;
		if (p->arm(p->opaque))
			pending = true;
	}
	return pending;
}

/*
 * EVENT mode after polling: arm every poller, and while one reports work
 * pending, let it process that work and arm again. Returns true if any
 * work was done (the caller must not block before the idle callbacks).
 */
static bool loop_settle_armed(struct loop *l)
{
	bool worked = false;

	for (unsigned i = 0; i < l->npollers; i++) {
		struct loop_poller *p = &l->pollers[i];

		if (p->dead || p->armed)
			continue;
		p->armed = true;
		l->ndisarmed--;
		/* Callbacks may add pollers (realloc): re-index after each. */
		while (!l->pollers[i].dead && l->pollers[i].arm(l->pollers[i].opaque)) {
			l->pollers[i].poll(l->pollers[i].opaque);
			worked = true;
		}
	}
	return worked;
}

/*
 * ADAPTIVE: arm every poller and, unless one had work pending, sleep on
 * the next iteration. Arm, then look once more: work that arrived before
 * a poller published "notify me" is reported here, work after it wakes
 * epoll.
 */
static void loop_adaptive_sleep(struct loop *l)
{
	if (loop_arm_pollers(l))
		l->idle_since = 0;
	else
		l->sleeping = true;
}

/*
 * ADAPTIVE, an iteration that found nothing. Give the CPU to whatever
 * else is runnable on it (io_uring's workers doing this loop's file I/O
 * run on the same CPU), then decide whether to keep polling.
 *
 * How long the yield took tells who else is there. Threads that do a
 * little and sleep (io-wq workers, a guest's vCPU thread that halts)
 * give the CPU back within microseconds: polling stays worth it. A thread
 * that never sleeps (another poller, a CPU hog) holds it for a whole
 * scheduler slice: every empty poll then costs milliseconds, so the loop
 * stops polling for LOOP_CONTENDED_NS and sleeps as soon as it runs out
 * of work, which the scheduler rewards with prompt wakeups.
 */
static void loop_adaptive_idle(struct loop *l)
{
	uint64_t before = now_ns(), now;

	if (before < l->contended_until) {
		loop_adaptive_sleep(l);
		return;
	}
	sched_yield();
	now = now_ns();
	if (now - before >= LOOP_YIELD_LONG_NS) {
		if (now >= l->contended_until + LOOP_CONTENDED_NS)
			log_debug("%s: CPU shared with a busy thread (%.1f ms off it): "
				  "sleeping when idle for %u ms", l->name, (now - before) / 1e6,
				  LOOP_CONTENDED_NS / 1000000u);
		l->contended_until = now + LOOP_CONTENDED_NS;
		loop_adaptive_sleep(l);
		return;
	}
	if (!l->idle_since)
		l->idle_since = now;
	else if (now - l->idle_since >= l->idle_ns)
		loop_adaptive_sleep(l);
}

/* One polling iteration (mode POLL or ADAPTIVE, with pollers). */
static void loop_poll_iteration(struct loop *l)
{
	unsigned n = l->npollers;
	bool found = false;

	if (l->sleeping) {
		/* Armed, nothing pending: block until a notification. */
		loop_dispatch(l, -1);
		l->sleeping = false;
		l->idle_since = 0;
		l->iter = 0;
		loop_finish_iteration(l);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		struct loop_poller *p = &l->pollers[i];

		if (p->dead)
			continue;
		if (p->armed) {
			p->armed = false;
			l->ndisarmed++;
			p->disarm(p->opaque);
			/* disarm may add pollers (realloc) or delete this one. */
			p = &l->pollers[i];
			if (p->dead)
				continue;
		}
		if (p->poll(p->opaque))
			found = true;
	}
	l->iter++;
	if (l->iter % (found ? LOOP_POLL_FD_BUSY : LOOP_POLL_FD_IDLE) == 0 &&
	    loop_dispatch(l, 0) > 0)
		found = true;
	loop_finish_iteration(l);

	if (found) {
		l->idle_since = 0;
		return;
	}
	if (l->mode == LOOP_POLL_BUSY) {
		sched_yield();
		return;
	}
	/* A poller or a call switched to event mode during this iteration:
	 * loop_run settles the disarmed pollers (arm, and poll what they
	 * report pending) before it blocks. The adaptive idle path would arm
	 * them without polling what they report, then block on it. */
	if (l->mode == LOOP_POLL_EVENT)
		return;
	loop_adaptive_idle(l);
}

int loop_run(struct loop *l)
{
	l->owner = pthread_self();
	while (!l->stop) {
		if (l->mode != LOOP_POLL_EVENT && l->npollers) {
			loop_poll_iteration(l);
			continue;
		}
		if (l->ndisarmed && loop_settle_armed(l)) {
			loop_iterate(l, 0);
			continue;
		}
		loop_iterate(l, -1);
	}
	/* Calls posted before the stop still run, so waiters are released. */
	loop_run_calls(l);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int loop_run_until(struct loop *l, bool (*cond)(void *arg), void *arg, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;

	l->owner = pthread_self();
	loop_run_calls(l);
	while (!cond(arg)) {
		int64_t left = deadline - now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		loop_iterate(l, timeout_ms < 0 ? -1 : (int)MIN(left, 1000));
	}
	return 0;
}

void loop_stop(struct loop *l)
{
	l->stop = 1;
	loop_wake(l);
}

static void *loop_thread_main(void *arg)
{
	struct loop *l = arg;

	pthread_setname_np(pthread_self(), l->name);
	l->owner = pthread_self();
	pthread_mutex_lock(&l->start_lock);
	l->started = true;
	pthread_cond_broadcast(&l->start_cond);
	pthread_mutex_unlock(&l->start_lock);
	loop_run(l);
	return NULL;
}

int loop_start(struct loop *l)
{
	int ret = pthread_create(&l->thread, NULL, loop_thread_main, l);

	if (ret)
		return -ret;
	l->has_thread = true;
	/* Wait until owner is set, so loop_in_thread is right at once. */
	pthread_mutex_lock(&l->start_lock);
	while (!l->started)
		pthread_cond_wait(&l->start_cond, &l->start_lock);
	pthread_mutex_unlock(&l->start_lock);
	return 0;
}

void loop_destroy(struct loop *l)
{
	if (!l)
		return;
	if (l->has_thread) {
		loop_stop(l);
		pthread_join(l->thread, NULL);
	}
	loop_run_calls(l);
	while (l->handlers) {
		struct loop_handler *h = l->handlers;

		l->handlers = h->next;
		free(h);
	}
	loop_free_graveyard(l);
	free(l->pollers);
	close(l->wake_fd);
	close(l->epfd);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->start_lock);
	pthread_cond_destroy(&l->start_cond);
	free(l);
}

bool loop_in_thread(const struct loop *l)
{
	return pthread_equal(l->owner, pthread_self());
}

static struct loop_handler *loop_find(struct loop *l, int fd, struct loop_handler ***link)
{
	for (struct loop_handler **p = &l->handlers; *p; p = &(*p)->next) {
		if ((*p)->fd == fd) {
			if (link)
				*link = p;
			return *p;
		}
	}
	return NULL;
}

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *opaque)
{
	struct epoll_event ev = { .events = events };
	struct loop_handler *h;

	if (fd < 0 || !cb)
		return -EINVAL;
	if (loop_find(l, fd, NULL))
		return -EEXIST;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fd = fd;
	h->cb = cb;
	h->opaque = opaque;
	ev.data.ptr = h;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int ret = -errno;

		free(h);
		return ret;
	}
	h->next = l->handlers;
	l->handlers = h;
	return 0;
}

int loop_mod_fd(struct loop *l, int fd, uint32_t events)
{
	struct loop_handler *h = loop_find(l, fd, NULL);
	struct epoll_event ev = { .events = events };

	if (!h)
		return -ENOENT;
	ev.data.ptr = h;
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int loop_del_fd(struct loop *l, int fd)
{
	struct loop_handler **link, *h = loop_find(l, fd, &link);

	if (!h)
		return -ENOENT;
	/* May fail if the fd was already closed; the handler goes anyway. */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	*link = h->next;
	h->dead = true;
	h->next = l->graveyard;
	l->graveyard = h;
	return 0;
}

static int loop_enqueue(struct loop *l, struct loop_callreq *c)
{
	pthread_mutex_lock(&l->lock);
	if (l->call_tail)
		l->call_tail->next = c;
	else
		l->calls = c;
	l->call_tail = c;
	pthread_mutex_unlock(&l->lock);
	loop_wake(l);
	return 0;
}

int loop_call(struct loop *l, loop_fn fn, void *arg)
{
	return loop_call_timeout(l, fn, arg, -1);
}

/* Take @c off the call queue if the loop has not started it. Under lock. */
static bool loop_cancel_locked(struct loop *l, struct loop_callreq *c)
{
	struct loop_callreq *prev = NULL;

	if (c->started)
		return false;
	for (struct loop_callreq *it = l->calls; it; prev = it, it = it->next) {
		if (it != c)
			continue;
		if (prev)
			prev->next = c->next;
		else
			l->calls = c->next;
		if (l->call_tail == c)
			l->call_tail = prev;
		return true;
	}
	return false;
}

int loop_call_timeout(struct loop *l, loop_fn fn, void *arg, int timeout_ms)
{
	struct loop_callreq c = { .fn = fn, .arg = arg, .wait = true };
	struct timespec deadline;
	int ret = 0;

	if (loop_in_thread(l)) {
		fn(arg);
		return 0;
	}
	/* The condvar uses CLOCK_REALTIME; a clock step only moves the bound. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	if (timeout_ms >= 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
	}
	loop_enqueue(l, &c);
	pthread_mutex_lock(&l->lock);
	while (!c.done) {
		if (timeout_ms < 0 || c.started) {
			/* Running: fn uses the caller's data, wait for it to end
			 * (loop functions never block on I/O). */
			pthread_cond_wait(&l->cond, &l->lock);
			continue;
		}
		if (pthread_cond_timedwait(&l->cond, &l->lock, &deadline) == ETIMEDOUT &&
		    loop_cancel_locked(l, &c)) {
			ret = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&l->lock);
	return ret;
}

int loop_post(struct loop *l, loop_fn fn, void *arg)
{
	struct loop_callreq *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->arg = arg;
	return loop_enqueue(l, c);
}

int loop_add_idle(struct loop *l, loop_idle_cb cb, void *opaque)
{
	if (l->nidle == LOOP_MAX_IDLE)
		return -ENOSPC;
	l->idle[l->nidle].cb = cb;
	l->idle[l->nidle].opaque = opaque;
	l->nidle++;
	return 0;
}

int loop_del_idle(struct loop *l, loop_idle_cb cb, void *opaque)
{
	for (unsigned i = 0; i < l->nidle; i++) {
		if (l->idle[i].cb == cb && l->idle[i].opaque == opaque) {
			l->idle[i] = l->idle[--l->nidle];
			return 0;
		}
	}
	return -ENOENT;
}

int loop_add_poller(struct loop *l, loop_poll_cb poll, loop_arm_cb arm,
		    loop_disarm_cb disarm, void *opaque)
{
	if (!poll || !arm || !disarm)
		return -EINVAL;
	if (l->npollers == l->cap_pollers) {
		unsigned cap = l->cap_pollers ? 2 * l->cap_pollers : 8;
		struct loop_poller *p = realloc(l->pollers, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->pollers = p;
		l->cap_pollers = cap;
	}
	l->pollers[l->npollers++] = (struct loop_poller){
		.poll = poll, .arm = arm, .disarm = disarm, .opaque = opaque, .armed = true,
	};
	/* A sleeping polling loop looks at the new poller once it wakes. */
	return 0;
}

int loop_del_poller(struct loop *l, loop_poll_cb poll, void *opaque)
{
	for (unsigned i = 0; i < l->npollers; i++) {
		struct loop_poller *p = &l->pollers[i];

		if (p->dead || p->poll != poll || p->opaque != opaque)
			continue;
		p->dead = true;
		if (!p->armed)
			l->ndisarmed--;
		l->pollers_dead = true;
		return 0;
	}
	return -ENOENT;
}

int loop_set_poll_mode(struct loop *l, enum loop_poll_mode mode, uint64_t idle_ns)
{
	if (mode != LOOP_POLL_EVENT && mode != LOOP_POLL_BUSY && mode != LOOP_POLL_ADAPTIVE)
		return -EINVAL;
	l->mode = mode;
	l->idle_ns = idle_ns;
	l->sleeping = false;
	l->idle_since = 0;
	return 0;
}

static const char *const poll_mode_names[] = {
	[LOOP_POLL_EVENT] = "event",
	[LOOP_POLL_BUSY] = "poll",
	[LOOP_POLL_ADAPTIVE] = "adaptive",
};

const char *loop_poll_mode_name(enum loop_poll_mode mode)
{
	return (unsigned)mode < ARRAY_SIZE(poll_mode_names) ? poll_mode_names[mode] : "?";
}

int loop_poll_mode_parse(const char *s, enum loop_poll_mode *out)
{
	const char *const *names = poll_mode_names;

	for (unsigned i = 0; i < ARRAY_SIZE(poll_mode_names); i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum loop_poll_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}
