/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for gmem_guard: a watched mapping whose file shrinks costs a
 * zero page and a tripped guard, not the process; an unwatched one, or a
 * SIGBUS sent from outside, still kills (checked in forked children).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "tap.h"
#include "gmem/gmem.h"

#define LEN (64u << 10)

/* A shared mapping of a fresh memfd of LEN bytes; *fd gets the memfd. */
static uint8_t *map_memfd(int *fd)
{
	uint8_t *p;

	*fd = memfd_create("guard-test", MFD_CLOEXEC);
	if (*fd < 0 || ftruncate(*fd, LEN))
		tap_bail("memfd: %s", strerror(errno));
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	if (p == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	memset(p, 0x11, LEN);
	return p;
}

/* Run fn in a child; its wait status. */
static int in_child(void (*fn)(void))
{
	pid_t pid = fork();
	int st = 0;

	if (pid == 0) {
		fn();
		_exit(0);
	}
	waitpid(pid, &st, 0);
	return st;
}

static void touch_unwatched(void)
{
	struct gmem_guard *g;
	int fd;
	uint8_t *p = map_memfd(&fd);

	gmem_guard_create(&g);       /* the handler is installed */
	if (ftruncate(fd, 0))
		_exit(2);
	*(volatile uint8_t *)p = 1;  /* not guest memory: must die */
}

static void sigbus_sent(void)
{
	struct gmem_guard *g;

	gmem_guard_create(&g);
	kill(getpid(), SIGBUS);
}

int main(void)
{
	struct pollfd pfd;
	struct gmem_guard *g;
	int fd, slot, st;
	uint8_t *p;

	is(gmem_guard_create(&g), 0, "create a guard (installs the handler)");
	p = map_memfd(&fd);
	slot = gmem_guard_watch(g, p, LEN);
	ok(slot >= 0, "watch a mapping");
	if (ftruncate(fd, 4096))
		tap_bail("ftruncate");
	is(p[0], 0x11, "the part still in the file reads as before");
	is(((volatile uint8_t *)p)[5 * 4096 + 7], 0, "a page past the new end reads zeroes");
	p[9 * 4096] = 5;
	is(p[9 * 4096], 5, "and another can be written (private memory now)");
	pfd = (struct pollfd){ .fd = gmem_guard_fd(g), .events = POLLIN };
	is(poll(&pfd, 1, 0), 1, "the guard's fd is readable");
	is(gmem_guard_reset(g), 2u, "two faulting pages were counted");
	is(poll(&pfd, 1, 0), 0, "reset drains the fd");
	gmem_guard_unwatch(slot);
	munmap(p, LEN);
	close(fd);

	st = in_child(touch_unwatched);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS, "a SIGBUS outside watched memory still kills");
	st = in_child(sigbus_sent);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS, "a SIGBUS sent by kill() still kills");
	gmem_guard_destroy(g);
	return tap_done();
}
