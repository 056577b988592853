/* SPDX-License-Identifier: MIT */
/*
 * sandbox.h - what vblkd gives up once it is set up: root (setgroups,
 * setgid, setuid to --user) and every system call the serving daemon does
 * not make (a seccomp allow-list). Knows nothing of exports or vhost: it
 * only assumes every fd the daemon will use is already open.
 */
#ifndef VBLK_DAEMON_SANDBOX_H
#define VBLK_DAEMON_SANDBOX_H

#include <stdbool.h>

enum sandbox_mode {
	SANDBOX_OFF,    /* no seccomp filter */
	SANDBOX_ON,     /* a syscall outside the list kills the process (SIGSYS) */
	SANDBOX_LOG,    /* a syscall outside the list is allowed and logged by the
			 * kernel (audit / dmesg): for finding what is missing */
};

struct sandbox_opts {
	enum sandbox_mode mode;
	/*
	 * true: failing to install the filter is an error (--sandbox given).
	 * false: where seccomp is unavailable, warn and run without it.
	 */
	bool required;
	const char *user;   /* switch to this user (and its primary group); NULL: stay */
	/*
	 * An rbd export is served: librbd's threads keep talking to the Ceph
	 * cluster (new TCP connections to OSDs and monitors, new threads,
	 * timed sleeps); see sandbox_rbd_allowed in sandbox.c.
	 */
	bool rbd;
	/*
	 * The control socket may add exports at runtime: opening images
	 * (openat without O_CREAT), unix sockets to listen on, and the
	 * timerfds and eventfds an export makes; see sandbox_runtime_allowed
	 * in sandbox.c.
	 */
	bool runtime_exports;
	/*
	 * --metrics: libmicrohttpd's thread accepts, reads and answers HTTP
	 * connections; see sandbox_metrics_allowed in sandbox.c.
	 */
	bool metrics;
};

/*
 * sandbox_parse_mode - "on", "off" or "log". Return: 0 or -EINVAL.
 */
int sandbox_parse_mode(const char *s, enum sandbox_mode *out);

/*
 * sandbox_enter - drop privileges, then install the syscall filter on
 * every thread of the process (TSYNC) with no_new_privs set.
 * After this, the process can open no file or socket, create no thread
 * and exec nothing: call it once every fd, thread and io_uring exists.
 * Return: 0; -ENOENT (no such user), -EPERM (cannot change user),
 * -ENOTSUP (seccomp unavailable and @o->required), other -errno.
 * Messages for the user are logged.
 * Context: the main thread, after setup, before the loops serve anything
 * that a frontend sends (iothreads may already run).
 */
int sandbox_enter(const struct sandbox_opts *o);

/*
 * sandbox_export - write the seccomp filter sandbox_enter() would load, as
 * libseccomp's readable pseudo filter code, for architecture @arch (a
 * libseccomp name: "x86_64", "aarch64"; NULL: this machine's) to @fd.
 * Lets the allow-list be checked for an architecture the tests do not run
 * on. Return: 0; -EINVAL (unknown @arch), -ENOSYS (a call in the list does
 * not exist on @arch), -ENOTSUP (built without libseccomp), other -errno.
 * Context: any thread; loads nothing.
 */
int sandbox_export(enum sandbox_mode mode, const char *arch, int fd);

#endif
