/* SPDX-License-Identifier: MIT */
/*
 * mgmt_client.h - the client side of the control socket (vblkctl, tests):
 * connect, send a JSON-RPC request line, read the reply line. Blocking
 * with a timeout; no event loop.
 */
#ifndef VBLK_MGMT_CLIENT_H
#define VBLK_MGMT_CLIENT_H

#include <stddef.h>

struct json_object;

/* Connect to the control socket @path. Return: the fd, or -errno. */
int mgmt_client_connect(const char *path);
/* Send all @len bytes of @buf. Return: 0 or -errno. */
int mgmt_client_send(int fd, const void *buf, size_t len, int timeout_ms);
/*
 * mgmt_client_read_line - read one reply line (without the newline) into
 * a malloc'd *@line. Return: 0; -ETIMEDOUT; -EPIPE (the daemon closed the
 * connection); -EMSGSIZE (longer than @max); other -errno. Reads one byte
 * at a time past what it returns: nothing of the next line is consumed.
 */
int mgmt_client_read_line(int fd, char **line, size_t max, int timeout_ms);
/*
 * mgmt_client_call - send {"jsonrpc":"2.0","id":N,"method":@method,
 * "params":@params} (@params: an object, or NULL to leave it out; not
 * consumed) and parse the reply into *@reply (the caller puts it).
 * Return: 0 (the reply may hold "result" or "error"), or -errno.
 */
int mgmt_client_call(int fd, const char *method, struct json_object *params,
		     struct json_object **reply, int timeout_ms);

#endif
