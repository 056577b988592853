/* SPDX-License-Identifier: MIT */
/*
 * gmem_guard.c - survive SIGBUS from memory the frontend shares. A file
 * that shrinks under a mapping (hugetlbfs, tmpfs or disk files cannot be
 * sealed; a block device can be resized) makes any access past its new end
 * raise SIGBUS. Each guest mapping is entered in a lock-free registry with
 * its guard; the SIGBUS handler looks the faulting address up, maps an
 * anonymous zero page over the faulting page (the access then completes,
 * on memory nobody shares), and trips the guard: its eventfd wakes the
 * owner, which drops that connection. A SIGBUS anywhere else kills the
 * process as it always did. Knows nothing of rings or sockets.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "gmem/gmem.h"

/*
 * Every exported region and inflight area of every connection, with room
 * for the old and new tables of a change: 64 regions for 60 exports.
 */
#define GUARD_SLOTS 4096

struct gmem_guard {
	int efd;                       /* written by the handler */
	atomic_uint trips;             /* faults seen since the last reset */
};

/*
 * Slot i is live while start[i] != 0. A writer fills len and guard, then
 * publishes start (release); the handler loads start (acquire), then the
 * rest. A mapping is unwatched (start cleared) before it is unmapped, and
 * a thread can only fault in a mapping it holds, so the handler never
 * sees a slot change under a fault it is handling.
 */
static _Atomic uintptr_t slot_start[GUARD_SLOTS];
static _Atomic size_t slot_len[GUARD_SLOTS];
static struct gmem_guard *_Atomic slot_guard[GUARD_SLOTS];
static atomic_uint slots_high;          /* slots in use are below this */
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;   /* writers */

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static int handler_err;

/*
 * Map an anonymous page over the page of @addr inside [start, start+len).
 * Try base pages first, then the huge page sizes (a hugetlbfs mapping
 * cannot be split below its page size: mmap fails and leaves it intact).
 * Async-signal-safe.
 */
static bool replace_page(uintptr_t addr, uintptr_t start, size_t len)
{
	static const size_t sizes[] = { 4096, 2u << 20, 1u << 30 };

	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uintptr_t base = addr & ~(uintptr_t)(sizes[i] - 1);

		if (base < start || base - start + sizes[i] > len)
			break;
		if (mmap((void *)base, sizes[i], PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED)
			return true;
	}
	return false;
}

static void gmem_sigbus(int sig, siginfo_t *si, void *uctx)
{
	uintptr_t addr = (uintptr_t)si->si_addr;
	unsigned high = atomic_load_explicit(&slots_high, memory_order_acquire);
	int saved = errno;
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	(void)uctx;
	/* Only faults (si_code > 0) come with an address worth looking up. */
	for (unsigned i = 0; si->si_code > 0 && i < high; i++) {
		uintptr_t start = atomic_load_explicit(&slot_start[i], memory_order_acquire);
		size_t len = atomic_load_explicit(&slot_len[i], memory_order_relaxed);
		struct gmem_guard *g;
		uint64_t one = 1;
		ssize_t n;

		if (!start || addr - start >= len)
			continue;
		g = atomic_load_explicit(&slot_guard[i], memory_order_relaxed);
		if (!replace_page(addr, start, len))
			break;
		atomic_fetch_add_explicit(&g->trips, 1, memory_order_relaxed);
		n = write(g->efd, &one, sizeof(one));
		(void)n;
		errno = saved;
		return;
	}
	/* Not guest memory: die of it as before. A fault re-executes and
	 * takes the default action; a sent signal is raised again. */
	sigaction(sig, &dfl, NULL);
	if (si->si_code <= 0)
		raise(sig);
	errno = saved;
}

static void install_handler(void)
{
	struct sigaction sa = { .sa_sigaction = gmem_sigbus, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) < 0)
		handler_err = -errno;
}

int gmem_guard_create(struct gmem_guard **out)
{
	struct gmem_guard *g;

	pthread_once(&handler_once, install_handler);
	if (handler_err)
		return handler_err;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->efd < 0) {
		int ret = -errno;

		free(g);
		return ret;
	}
	atomic_init(&g->trips, 0);
	*out = g;
	return 0;
}

void gmem_guard_destroy(struct gmem_guard *g)
{
	if (!g)
		return;
	close(g->efd);
	free(g);
}

int gmem_guard_fd(const struct gmem_guard *g)
{
	return g->efd;
}

unsigned gmem_guard_reset(struct gmem_guard *g)
{
	uint64_t v;
	ssize_t n = read(g->efd, &v, sizeof(v));

	(void)n;
	return atomic_exchange_explicit(&g->trips, 0, memory_order_relaxed);
}

int gmem_guard_watch(struct gmem_guard *g, void *addr, size_t len)
{
	int slot = -ENOSPC;

	if (!g || !addr || !len)
		return -EINVAL;
	pthread_mutex_lock(&slots_lock);
	for (unsigned i = 0; i < GUARD_SLOTS; i++) {
		if (atomic_load_explicit(&slot_start[i], memory_order_relaxed))
			continue;
		atomic_store_explicit(&slot_len[i], len, memory_order_relaxed);
		atomic_store_explicit(&slot_guard[i], g, memory_order_relaxed);
		/* Pairs with the handler's acquire load of slot_start. */
		atomic_store_explicit(&slot_start[i], (uintptr_t)addr, memory_order_release);
		if (i >= atomic_load_explicit(&slots_high, memory_order_relaxed))
			atomic_store_explicit(&slots_high, i + 1, memory_order_release);
		slot = (int)i;
		break;
	}
	pthread_mutex_unlock(&slots_lock);
	return slot;
}

void gmem_guard_unwatch(int slot)
{
	if (slot < 0 || slot >= GUARD_SLOTS)
		return;
	pthread_mutex_lock(&slots_lock);
	atomic_store_explicit(&slot_start[slot], 0, memory_order_release);
	pthread_mutex_unlock(&slots_lock);
}
