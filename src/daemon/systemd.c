/* SPDX-License-Identifier: MIT */
/*
 * systemd.c - socket activation and sd_notify by hand (see systemd.h): the
 * protocol is a few environment variables and one unix datagram, simpler
 * to carry than a dependency on libsystemd. Knows nothing of serving.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/log.h"
#include "daemon/systemd.h"

static int notify_fd = -1;
/* Socket paths handed to exports that gave none (they outlive the exports). */
static char fd_paths[SYSTEMD_MAX_FDS][sizeof(((struct sockaddr_un *)0)->sun_path)];

static int env_uint(const char *name, unsigned long max, unsigned long *out)
{
	const char *s = getenv(name);
	char *end;

	if (!s)
		return -ENOENT;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (!*s || *end || errno || *out > max || *s == '-')
		return -EINVAL;
	return 0;
}

/* The bound path of a unix socket; "" if it has none (or is abstract). */
static void sock_path(int fd, char *buf, size_t n)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);

	buf[0] = '\0';
	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX ||
	    len <= offsetof(struct sockaddr_un, sun_path) || sa.sun_path[0] == '\0')
		return;
	snprintf(buf, n, "%.*s", (int)(len - offsetof(struct sockaddr_un, sun_path)),
		 sa.sun_path);
}

static void unset_listen_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int systemd_take_listen_fds(struct export_opts *ex, unsigned n)
{
	unsigned long pid, nfds;
	int ret;

	ret = env_uint("LISTEN_PID", 0x7fffffff, &pid);
	if (ret == -ENOENT)
		return 0;
	if (ret || (pid_t)pid != getpid()) {
		/* Meant for another process (a parent that did not clear it). */
		if (ret)
			log_warn("ignoring an invalid LISTEN_PID");
		unset_listen_env();
		return 0;
	}
	ret = env_uint("LISTEN_FDS", SYSTEMD_MAX_FDS, &nfds);
	unset_listen_env();
	if (ret) {
		fprintf(stderr, "vblkd: LISTEN_FDS must be a number from 0 to %d\n",
			SYSTEMD_MAX_FDS);
		return -EINVAL;
	}
	for (unsigned i = 0; i < nfds; i++) {
		int fd = SYSTEMD_FDS_START + (int)i, type;
		socklen_t tlen = sizeof(type);
		char path[sizeof(fd_paths[0])];
		struct export_opts *to = NULL;

		if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM) {
			fprintf(stderr, "vblkd: socket-activation fd %d is not a stream socket\n",
				fd);
			return -EINVAL;
		}
		sock_path(fd, path, sizeof(path));
		for (unsigned j = 0; path[0] && !to && j < n; j++)
			if (ex[j].p.socket_path && !strcmp(ex[j].p.socket_path, path) &&
			    ex[j].p.fd < 0)
				to = &ex[j];
		for (unsigned j = 0; !to && j < n; j++)
			if (!ex[j].p.socket_path && ex[j].p.fd < 0)
				to = &ex[j];
		if (!to) {
			log_warn("socket-activation fd %d (%s): no export for it; closing it", fd,
				 path[0] ? path : "no path");
			close(fd);
			continue;
		}
		to->p.fd = fd;
		to->activated = true;
		if (!to->p.socket_path && path[0]) {
			memcpy(fd_paths[i], path, sizeof(path));
			to->p.socket_path = fd_paths[i];
		}
		log_info("serving socket-activation fd %d%s%s", fd, path[0] ? " on " : "", path);
	}
	return (int)nfds;
}

void systemd_notify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (!path || !*path)
		return;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path)) {
		log_warn("ignoring NOTIFY_SOCKET '%s': not a unix socket path", path);
		goto out;
	}
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';   /* abstract namespace */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
		log_warn("cannot reach NOTIFY_SOCKET %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	notify_fd = fd;
out:
	unsetenv("NOTIFY_SOCKET");
}

void systemd_notify(const char *fmt, ...)
{
	char buf[512];
	struct iovec iov = { .iov_base = buf };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	va_list ap;
	int n;

	if (notify_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	iov.iov_len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
	/* sendmsg, not send (sendto): the one the sandbox allows. */
	if (sendmsg(notify_fd, &msg, MSG_NOSIGNAL) < 0)
		log_rl(LOG_WARN, "systemd notification failed: %s", strerror(errno));
}
