/* SPDX-License-Identifier: MIT */
/*
 * vhost_backend_req.c - the backend request channel: a bounded queue of
 * backend-initiated messages written to a non-blocking socket, acks read
 * back in order, and one timer bounding both a half-written message and
 * an unanswered one. Knows the wire format, not what the messages mean.
 *
 * Context: the control loop's thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#include "common/log.h"
#include "vhost/vhost_backend_req.h"
#include "vhost/vhost_msg.h"

struct breq_entry {
	uint32_t request;
	uint32_t size;
	vhost_backend_req_cb cb;
	void *arg;
	uint8_t payload[VHOST_BACKEND_REQ_MAX_PAYLOAD];
};

struct vhost_backend_req {
	struct loop *ctrl;
	char name[96];
	unsigned timeout_ms;
	int fd;                    /* -1: no channel */
	bool reply_ack;
	uint32_t watched;          /* epoll events registered for fd, 0: none */
	int timer_fd;
	bool timer_armed;
	/* the queue: a ring of entries, head first */
	struct breq_entry q[VHOST_BACKEND_REQ_MAX_QUEUED];
	unsigned head, count;
	bool sending;              /* q[head] is in tx, not all written */
	bool awaiting;             /* q[head] written, its ack not yet read */
	struct vhost_msg_tx tx;
	struct vhost_msg_rx rx;
};

static void breq_cb(void *opaque, uint32_t events);

static void breq_timer(struct vhost_backend_req *b, bool on)
{
	struct itimerspec its = { 0 };

	if (!on && !b->timer_armed)
		return;
	if (on) {
		its.it_value.tv_sec = b->timeout_ms / 1000;
		its.it_value.tv_nsec = (long)(b->timeout_ms % 1000) * 1000000L;
	}
	if (timerfd_settime(b->timer_fd, 0, &its, NULL))
		log_rl(LOG_WARN, "vhost %s: backend channel timer: %s", b->name,
		       strerror(errno));
	b->timer_armed = on;
}

/* Take q[head] off the queue and complete it with @result. */
static void breq_complete_head(struct vhost_backend_req *b, int result)
{
	struct breq_entry *e = &b->q[b->head];
	vhost_backend_req_cb cb = e->cb;
	void *arg = e->arg;

	b->head = (b->head + 1) % VHOST_BACKEND_REQ_MAX_QUEUED;
	b->count--;
	b->sending = b->awaiting = false;
	if (cb)
		cb(arg, result);
}

/* Close the channel; every queued message completes with @result. */
static void breq_close(struct vhost_backend_req *b, int result)
{
	if (b->fd >= 0) {
		if (b->watched)
			loop_del_fd(b->ctrl, b->fd);
		b->watched = 0;
		close(b->fd);
		b->fd = -1;
	}
	breq_timer(b, false);
	vhost_msg_tx_reset(&b->tx);
	vhost_msg_rx_reset(&b->rx);
	/* Callbacks may queue again: that fails (no channel), so this ends. */
	while (b->count)
		breq_complete_head(b, result);
}

/* Watch for what we wait for: replies and EOF always, room if we write. */
static void breq_watch(struct vhost_backend_req *b)
{
	uint32_t ev = EPOLLIN;
	int ret;

	if (b->fd < 0)
		return;
	if (b->count && !b->awaiting)
		ev |= EPOLLOUT;
	if (ev == b->watched)
		return;
	ret = b->watched ? loop_mod_fd(b->ctrl, b->fd, ev)
			 : loop_add_fd(b->ctrl, b->fd, ev, breq_cb, b);
	if (ret) {
		log_rl(LOG_ERR, "vhost %s: watching the backend channel: %s", b->name,
		       strerror(-ret));
		breq_close(b, -ECONNRESET);
		return;
	}
	b->watched = ev;
}

static bool breq_wants_ack(const struct vhost_backend_req *b, const struct breq_entry *e)
{
	return b->reply_ack && e->cb;
}

/* Write queued messages until one waits for its ack or the socket is full.
 * Return: 0, or -errno after which the channel must close. */
static int breq_write(struct vhost_backend_req *b)
{
	while (b->count && !b->awaiting) {
		struct breq_entry *e = &b->q[b->head];
		int ret;

		if (!b->sending) {
			struct vhost_msg_hdr hdr = {
				.request = e->request,
				.flags = VHOST_USER_VERSION |
					 (breq_wants_ack(b, e) ? VHOST_USER_NEED_REPLY_MASK : 0),
				.size = e->size,
			};

			ret = vhost_msg_tx_queue(&b->tx, &hdr, e->payload, e->size, -1);
			if (ret)
				return ret;
			b->sending = true;
			breq_timer(b, true);   /* bounds the write and the ack */
		}
		ret = vhost_msg_tx_write(b->fd, &b->tx);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return 0;      /* full: EPOLLOUT brings us back */
		b->sending = false;
		if (breq_wants_ack(b, e)) {
			b->awaiting = true;
			return 0;
		}
		breq_timer(b, false);
		breq_complete_head(b, 0);
		if (b->fd < 0)
			return 0;      /* a callback reset the channel */
	}
	return 0;
}

/* Read acks. Return: 0, or -errno after which the channel must close. */
static int breq_read(struct vhost_backend_req *b)
{
	for (;;) {
		const struct vhost_msg *m = &b->rx.msg;
		int ret = vhost_msg_rx_read(b->fd, &b->rx);
		uint64_t v;

		if (ret <= 0)
			return ret == 0 ? 0 : ret;
		if (!b->awaiting || m->hdr.request != b->q[b->head].request ||
		    !(m->hdr.flags & VHOST_USER_REPLY_MASK) ||
		    (m->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
		    m->hdr.size != sizeof(uint64_t) || m->nfds) {
			log_rl(LOG_WARN, "vhost %s: backend channel: unexpected message "
			       "(request %u, flags %#x, size %u, %u fds): closing it", b->name,
			       m->hdr.request, m->hdr.flags, m->hdr.size, m->nfds);
			return -EPROTO;
		}
		v = m->payload.u64;
		vhost_msg_rx_reset(&b->rx);
		breq_timer(b, false);
		breq_complete_head(b, v ? -EIO : 0);
		if (b->fd < 0)
			return 0;
	}
}

static void breq_cb(void *opaque, uint32_t events)
{
	struct vhost_backend_req *b = opaque;
	int ret = 0;

	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		ret = breq_read(b);
	if (!ret && b->fd >= 0)
		ret = breq_write(b);
	if (ret) {
		if (ret != -EPROTO)
			log_rl(LOG_WARN, "vhost %s: backend channel closed: %s", b->name,
			       ret == -EPIPE ? "frontend closed it" : strerror(-ret));
		breq_close(b, -ECONNRESET);
		return;
	}
	breq_watch(b);
}

static void breq_timer_cb(void *opaque, uint32_t events)
{
	struct vhost_backend_req *b = opaque;
	uint64_t n;

	(void)events;
	if (read(b->timer_fd, &n, sizeof(n)) != (ssize_t)sizeof(n) || !b->timer_armed)
		return;
	b->timer_armed = false;
	log_rl(LOG_WARN, "vhost %s: backend channel: no %s within %u ms: closing it",
	       b->name, b->awaiting ? "ack" : "room for a message", b->timeout_ms);
	breq_close(b, -ETIMEDOUT);
}

int vhost_backend_req_create(struct loop *ctrl, const char *name, unsigned timeout_ms,
			     struct vhost_backend_req **out)
{
	struct vhost_backend_req *b = calloc(1, sizeof(*b));
	int ret;

	if (!b)
		return -ENOMEM;
	b->ctrl = ctrl;
	snprintf(b->name, sizeof(b->name), "%s", name ? name : "?");
	b->timeout_ms = timeout_ms ? timeout_ms : VHOST_BACKEND_REQ_TIMEOUT_MS_DEFAULT;
	b->fd = -1;
	vhost_msg_tx_init(&b->tx);
	vhost_msg_rx_init(&b->rx);
	b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (b->timer_fd < 0) {
		ret = -errno;
		goto err_free;
	}
	ret = loop_add_fd(ctrl, b->timer_fd, EPOLLIN, breq_timer_cb, b);
	if (ret)
		goto err_close_timer;
	*out = b;
	return 0;

err_close_timer:
	close(b->timer_fd);
err_free:
	free(b);
	return ret;
}

void vhost_backend_req_destroy(struct vhost_backend_req *b)
{
	if (!b)
		return;
	breq_close(b, -ECONNRESET);
	loop_del_fd(b->ctrl, b->timer_fd);
	close(b->timer_fd);
	free(b);
}

int vhost_backend_req_set_fd(struct vhost_backend_req *b, int fd, bool reply_ack)
{
	struct stat st;
	int fl;

	if (fstat(fd, &st) || !S_ISSOCK(st.st_mode)) {
		close(fd);
		return -ENOTSOCK;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK)) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	breq_close(b, -ECONNRESET);
	b->fd = fd;
	b->reply_ack = reply_ack;
	breq_watch(b);
	return b->fd >= 0 ? 0 : -EIO;
}

void vhost_backend_req_reset(struct vhost_backend_req *b)
{
	breq_close(b, -ECONNRESET);
}

bool vhost_backend_req_connected(const struct vhost_backend_req *b)
{
	return b->fd >= 0;
}

unsigned vhost_backend_req_pending(const struct vhost_backend_req *b)
{
	return b->count;
}

int vhost_backend_req_send(struct vhost_backend_req *b, uint32_t request,
			   const void *payload, uint32_t size, vhost_backend_req_cb cb,
			   void *arg)
{
	struct breq_entry *e;

	if (size > VHOST_BACKEND_REQ_MAX_PAYLOAD || (size && !payload))
		return -EINVAL;
	if (b->fd < 0)
		return -ENOTCONN;
	if (b->count == VHOST_BACKEND_REQ_MAX_QUEUED)
		return -EBUSY;
	e = &b->q[(b->head + b->count) % VHOST_BACKEND_REQ_MAX_QUEUED];
	e->request = request;
	e->size = size;
	e->cb = cb;
	e->arg = arg;
	if (size)
		memcpy(e->payload, payload, size);
	b->count++;
	/* Written from the loop (EPOLLOUT), so cb never runs inside this call. */
	breq_watch(b);
	return 0;
}
