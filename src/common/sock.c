/* SPDX-License-Identifier: MIT */
/*
 * sock.c - listening unix sockets by path (see sock.h). Used by the
 * vhost-user server and the control socket.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/log.h"
#include "common/sock.h"

/* Is a live process listening on @sa? ECONNREFUSED means a stale file. */
static int probe_stale(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int ret;

	if (fd < 0)
		return -errno;
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
	close(fd);
	if (ret == -ECONNREFUSED)
		return 0;
	return -EADDRINUSE;
}

static int bind_mode(int fd, const struct sockaddr_un *sa, mode_t mode)
{
	mode_t old = 0;
	int ret;

	if (mode)
		old = umask(~mode & 0777);
	ret = bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
	if (mode)
		umask(old);
	return ret;
}

int sock_listen_unix(const char *path, int backlog, mode_t mode, struct sock_file *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	ret = bind_mode(fd, &sa, mode);
	if (ret) {
		if (ret != -EADDRINUSE)
			goto err_close;
		/* Replace only a socket file nobody answers on. */
		if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
			ret = -EADDRINUSE;
			goto err_close;
		}
		ret = probe_stale(&sa);
		if (ret)
			goto err_close;
		log_info("replacing stale socket %s", path);
		if (unlink(path) < 0 && errno != ENOENT) {
			ret = -errno;
			goto err_close;
		}
		ret = bind_mode(fd, &sa, mode);
		if (ret)
			goto err_close;
	}
	if (lstat(path, &st) < 0) {
		ret = -errno;
		goto err_unlink;
	}
	if (listen(fd, backlog) < 0) {
		ret = -errno;
		goto err_unlink;
	}
	f->path = strdup(path);
	if (!f->path) {
		ret = -ENOMEM;
		goto err_unlink;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	return fd;

err_unlink:
	unlink(path);
err_close:
	close(fd);
	return ret;
}

void sock_file_remove(struct sock_file *f)
{
	struct stat st;

	if (f->path && lstat(f->path, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino)
		unlink(f->path);
	free(f->path);
	f->path = NULL;
}

int sock_connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}
