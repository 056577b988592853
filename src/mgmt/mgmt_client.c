/* SPDX-License-Identifier: MIT */
/*
 * mgmt_client.c - a blocking JSON-RPC client for the control socket (see
 * mgmt_client.h). Used by vblkctl and the tests, never by vblkd.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <json-c/json.h>

#include "common/sock.h"
#include "mgmt/mgmt_client.h"

int mgmt_client_connect(const char *path)
{
	return sock_connect_unix(path);
}

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

int mgmt_client_send(int fd, const void *buf, size_t len, int timeout_ms)
{
	const char *p = buf;

	while (len) {
		ssize_t n;
		int ret = wait_fd(fd, POLLOUT, timeout_ms);

		if (ret)
			return ret;
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int mgmt_client_read_line(int fd, char **line, size_t max, int timeout_ms)
{
	size_t len = 0, cap = 256;
	char *buf = malloc(cap), *p;
	int ret;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		ret = wait_fd(fd, POLLIN, timeout_ms);
		if (ret)
			goto err;
		n = recv(fd, buf + len, 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			ret = errno == ECONNRESET ? -EPIPE : -errno;
			goto err;
		}
		if (n == 0) {
			ret = -EPIPE;
			goto err;
		}
		if (buf[len] == '\n')
			break;
		if (++len >= max) {
			ret = -EMSGSIZE;
			goto err;
		}
		if (len + 1 >= cap) {
			p = realloc(buf, cap * 2);
			if (!p) {
				ret = -ENOMEM;
				goto err;
			}
			buf = p;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	*line = buf;
	return 0;

err:
	free(buf);
	return ret;
}

int mgmt_client_call(int fd, const char *method, struct json_object *params,
		     struct json_object **reply, int timeout_ms)
{
	static int next_id = 1;
	struct json_object *req = json_object_new_object();
	const char *text;
	char *line;
	int ret;

	if (!req)
		return -ENOMEM;
	json_object_object_add(req, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(req, "id", json_object_new_int(next_id++));
	json_object_object_add(req, "method", json_object_new_string(method));
	if (params)
		json_object_object_add(req, "params", json_object_get(params));
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	ret = text ? mgmt_client_send(fd, text, strlen(text), timeout_ms) : -ENOMEM;
	if (!ret)
		ret = mgmt_client_send(fd, "\n", 1, timeout_ms);
	json_object_put(req);
	if (ret)
		return ret;
	ret = mgmt_client_read_line(fd, &line, 64u << 20, timeout_ms);
	if (ret)
		return ret;
	*reply = json_tokener_parse(line);
	free(line);
	return *reply ? 0 : -EBADMSG;
}
