/* SPDX-License-Identifier: MIT */
/*
 * sock.h - listening unix sockets by path: creation that replaces only a
 * stale socket file, and removal that leaves a file someone else put in
 * its place. Knows nothing of what is spoken over them.
 */
#ifndef VBLK_COMMON_SOCK_H
#define VBLK_COMMON_SOCK_H

#include <sys/types.h>

struct sock_file {
	char *path;     /* malloc'd */
	dev_t dev;
	ino_t ino;
};

/*
 * sock_listen_unix - a non-blocking, close-on-exec listening socket on
 * @path. A socket file nobody answers on is replaced; a live one, or a
 * file that is not a socket, gives -EADDRINUSE. @mode: the file's
 * permissions (0: leave them to the umask); the file is created with them
 * (umask), so no client can connect through wider ones first.
 * Return: the fd (and @f filled), or -errno.
 * Context: any thread; with @mode, only while no other thread creates files.
 */
int sock_listen_unix(const char *path, int backlog, mode_t mode, struct sock_file *f);
/*
 * sock_connect_unix - a blocking, close-on-exec stream socket connected
 * to @path. Return: the fd, or -errno (-ENAMETOOLONG for a path that does
 * not fit sun_path).
 */
int sock_connect_unix(const char *path);
/* Remove the file made by sock_listen_unix unless it was replaced; free. */
void sock_file_remove(struct sock_file *f);

#endif
