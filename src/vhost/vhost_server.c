/* SPDX-License-Identifier: MIT */
/*
 * vhost_server.c - the backend side of vhost-user: one listening socket,
 * one frontend at a time; this file is the connection (accept, receive,
 * replies, the paused/resumed message state machine, the stall timer) and
 * the server's life cycle. Every message is checked (format in
 * vhost_msg.c, state and indices in vhost_handlers.c) before it acts; a
 * malformed one closes the connection, never the daemon. Reaches the
 * device only through struct vhost_dev_ops; knows nothing about
 * virtio-blk. The other files of the backend: vhost_server_internal.h.
 *
 * Context: the control loop's thread (see vhost_server_internal.h for how
 * a message that needs queues stopped is paused and re-run).
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "common/compiler.h"
#include "common/log.h"
#include "common/sock.h"
#include "vhost/vhost.h"
#include "vhost/vhost_backend_req.h"
#include "vhost/vhost_log.h"
#include "vhost/vhost_msg.h"
#include "vhost/vhost_server_internal.h"

static void conn_close(struct vhost_server *s);
static void listen_cb(void *opaque, uint32_t events);
static void stall_timer_update(struct vhost_server *s);
static void stall_timer_restart(struct vhost_server *s);

#define LISTEN_BACKLOG 128

void server_warn(struct log_ratelimit *rl, const struct vhost_server *s,
		 const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg_rl(rl, LOG_WARN, "vhost %s: %s", s->name, buf);
}

/*
 * Send a reply (with @fd, owned from now on, or -1). A frontend that does
 * not read its replies fills the socket: what does not fit waits in s->tx,
 * and the connection reads no further request until it is written
 * (conn_cb watches for EPOLLOUT meanwhile). That is backpressure, not an
 * error: the frontend's own requests then wait in the socket.
 */
int send_msg_fd(struct vhost_server *s, uint32_t request, const void *payload,
		uint32_t size, int fd)
{
	struct vhost_msg_hdr hdr = {
		.request = request,
		.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
		.size = size,
	};
	int ret = vhost_msg_tx_queue(&s->tx, &hdr, payload, size, fd);

	if (!ret)
		ret = vhost_msg_tx_write(s->conn_fd, &s->tx);
	if (ret < 0) {
		log_rl(LOG_WARN, "vhost %s: sending %s reply: %s", s->name,
		       vhost_msg_name(request), strerror(-ret));
		return ret;
	}
	return 0;
}

int send_reply(struct vhost_server *s, uint32_t request, const void *payload,
	       uint32_t size)
{
	return send_msg_fd(s, request, payload, size, -1);
}

int reply_u64(struct vhost_server *s, uint32_t request, uint64_t v)
{
	return send_reply(s, request, &v, sizeof(v));
}

/* ---- connection ------------------------------------------------------- */

static void conn_cb(void *opaque, uint32_t events);

static void conn_pause(struct vhost_server *s)
{
	if (s->conn_watched) {
		loop_del_fd(s->ctrl, s->conn_fd);
		s->conn_watched = false;
	}
}

/* Read requests, or wait until a pending reply can be written. */
static uint32_t conn_events(const struct vhost_server *s)
{
	return vhost_msg_tx_pending(&s->tx) ? EPOLLOUT : EPOLLIN;
}

static int conn_resume(struct vhost_server *s)
{
	int ret;

	if (s->conn_watched || s->conn_fd < 0 || s->conn_state == CONN_CLOSING)
		return 0;
	ret = loop_add_fd(s->ctrl, s->conn_fd, conn_events(s), conn_cb, s);
	if (ret) {
		log_err("vhost %s: watching the connection: %s", s->name, strerror(-ret));
		return ret;
	}
	s->conn_watched = true;
	return 0;
}

/* The handler of rx.msg returned @r (not H_PENDING): ack, then next. */
static void finish_msg(struct vhost_server *s, int r)
{
	struct vhost_msg *m = &s->rx.msg;

	if (r < 0 || s->broken) {
		conn_close(s);
		return;
	}
	if ((m->hdr.flags & VHOST_USER_NEED_REPLY_MASK) && reply_ack_on(s) &&
	    !vhost_msg_has_reply(m->hdr.request)) {
		if (reply_u64(s, m->hdr.request, r == 0 ? 0 : 1)) {
			conn_close(s);
			return;
		}
	}
	vhost_msg_rx_reset(&s->rx);
}

/* Run the handler for the complete, well-formed rx.msg. */
static void conn_dispatch(struct vhost_server *s)
{
	int r;

	s->in_dispatch = true;
	do {
		r = vhost_server_handle(s, &s->rx.msg);
	} while (r == H_PENDING && !s->stops_pending);
	s->in_dispatch = false;
	if (r == H_PENDING) {
		/* No more messages until the device has stopped the queues. */
		s->conn_state = CONN_PAUSED;
		conn_pause(s);
		return;
	}
	finish_msg(s, r);
}

static void conn_cb(void *opaque, uint32_t events)
{
	struct vhost_server *s = opaque;
	const char *why;
	int ret;

	if (vhost_msg_tx_pending(&s->tx)) {
		ret = vhost_msg_tx_write(s->conn_fd, &s->tx);
		if (ret == 0)
			return;     /* the timer runs since the reply was queued */
		if (ret < 0) {
			log_debug("vhost %s: frontend gone with a reply unsent: %s", s->name,
				  strerror(-ret));
			conn_close(s);
			return;
		}
		/* Drained: read requests again (a new message gets its own time). */
		s->progress++;
		stall_timer_restart(s);
		if (loop_mod_fd(s->ctrl, s->conn_fd, EPOLLIN)) {
			conn_close(s);
			return;
		}
	}
	/* Bounded batch; the loop is level-triggered and brings us back. */
	for (int n = 0; n < 64 && s->conn_watched; n++) {
		ret = vhost_msg_rx_read(s->conn_fd, &s->rx);
		if (ret == 0) {
			stall_timer_update(s);
			return;
		}
		if (ret < 0) {
			if (ret == -EPIPE && s->rx.hdr_got == 0)
				log_debug("vhost %s: frontend disconnected", s->name);
			else
				bad(s, "receive: %s", ret == -EPIPE ? "truncated message" :
				    ret == -EMSGSIZE ? "message too large" :
				    ret == -EBADMSG ? "too many fds" : strerror(-ret));
			conn_close(s);
			return;
		}
		if (vhost_msg_check(&s->rx.msg, &why)) {
			bad(s, "malformed %s (request %u, size %u, %u fds): %s",
			    vhost_msg_name(s->rx.msg.hdr.request), s->rx.msg.hdr.request,
			    s->rx.msg.hdr.size, s->rx.msg.nfds, why);
			conn_close(s);
			return;
		}
		log_debug("vhost %s: %s", s->name, vhost_msg_name(s->rx.msg.hdr.request));
		conn_dispatch(s);
		s->progress++;
		stall_timer_restart(s);   /* progress: the next message starts afresh */
		if (s->conn_watched && vhost_msg_tx_pending(&s->tx)) {
			/* The frontend is not reading: neither do we, until it does. */
			if (loop_mod_fd(s->ctrl, s->conn_fd, EPOLLOUT))
				conn_close(s);
			else
				stall_timer_update(s);
			return;
		}
	}
	stall_timer_update(s);
}

/* ---- stalled connections ---------------------------------------------- */

static unsigned msg_timeout_ms(const struct vhost_server *s)
{
	return s->info.msg_timeout_ms ? s->info.msg_timeout_ms : VHOST_MSG_TIMEOUT_MS_DEFAULT;
}

/* Bytes of a request received, or of a reply sent, but not all of it? */
static bool conn_mid_message(const struct vhost_server *s)
{
	return s->conn_state == CONN_READING &&
	       (s->rx.hdr_got > 0 || vhost_msg_tx_pending(&s->tx));
}

/*
 * Arm the timer when a message starts to be received or a reply waits for
 * the frontend to read, disarm it when that is over. One timer for both:
 * they never overlap (no request is read while a reply waits). Idle time
 * between messages, and waits for our own queue stops, are not timed.
 */
static void stall_timer_update(struct vhost_server *s)
{
	bool want = conn_mid_message(s);
	struct itimerspec its = { 0 };
	unsigned ms = msg_timeout_ms(s);

	if (s->timer_fd < 0 || want == s->timer_armed)
		return;
	if (want) {
		its.it_value.tv_sec = ms / 1000;
		its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
	}
	if (timerfd_settime(s->timer_fd, 0, &its, NULL) == 0)
		s->timer_armed = want;
	else
		log_rl(LOG_ERR, "vhost %s: timerfd_settime: %s", s->name, strerror(errno));
}

/* A message was completed or a reply sent: stop timing; the next partial
 * message or unsent reply arms the timer anew. */
static void stall_timer_restart(struct vhost_server *s)
{
	struct itimerspec off = { 0 };

	if (!s->timer_armed)
		return;
	if (timerfd_settime(s->timer_fd, 0, &off, NULL) == 0)
		s->timer_armed = false;
}

/*
 * Serve the connection once (read what is there, or write the pending
 * reply). Return: true if that made progress or ended the connection;
 * the timer is then armed afresh if still mid-message.
 */
static bool stall_progress(struct vhost_server *s)
{
	size_t rx0 = s->rx.hdr_got + s->rx.payload_got, tx0 = s->tx.off;
	unsigned long p0 = s->progress;

	conn_cb(s, vhost_msg_tx_pending(&s->tx) ? EPOLLOUT : EPOLLIN);
	if (!conn_live(s))
		return true;
	if (p0 == s->progress && rx0 == s->rx.hdr_got + s->rx.payload_got && tx0 == s->tx.off)
		return false;
	stall_timer_update(s);
	return true;
}

static void timer_cb(void *opaque, uint32_t events)
{
	struct vhost_server *s = opaque;
	uint64_t n;
	ssize_t r UNUSED;

	r = read(s->timer_fd, &n, sizeof(n));
	if (!s->timer_armed)
		return;
	s->timer_armed = false;
	if (!conn_mid_message(s))
		return;
	/*
	 * The bytes may have arrived while this thread was not running, and
	 * the timer's wakeup come before the socket's: look at the socket
	 * first, and count it a stall only if nothing moved.
	 */
	if (s->conn_watched && stall_progress(s))
		return;
	if (!conn_mid_message(s))
		return;
	bad(s, "%s stalled for %u ms; closing the connection",
	    vhost_msg_tx_pending(&s->tx) ? "frontend not reading its reply," :
	    "message received in part,", msg_timeout_ms(s));
	conn_close(s);
}

/*
 * The SIGBUS handler tripped our guard: the frontend shrank a file it
 * shared (guest memory or the inflight area) under our mapping. The
 * faulting pages now read as zeroes; drop the connection.
 */
static void guard_cb(void *opaque, uint32_t events)
{
	struct vhost_server *s = opaque;
	unsigned n = gmem_guard_reset(s->guard);

	if (!n || !conn_live(s))
		return;
	log_rl(LOG_ERR, "vhost %s: the frontend's shared memory shrank under its mapping "
	       "(SIGBUS at %u page%s): closing the connection", s->name, n, n == 1 ? "" : "s");
	conn_close(s);
}

static void guard_watch(struct vhost_server *s, bool on)
{
	int ret;

	if (!s->guard || s->guard_watched == on)
		return;
	if (on) {
		ret = loop_add_fd(s->ctrl, gmem_guard_fd(s->guard), EPOLLIN, guard_cb, s);
		if (ret) {
			log_err("vhost %s: watching the memory guard: %s", s->name, strerror(-ret));
			return;
		}
	} else {
		loop_del_fd(s->ctrl, gmem_guard_fd(s->guard));
	}
	s->guard_watched = on;
}

static void server_free(struct vhost_server *s)
{
	sem_t *sem = s->destroyed;

	guard_watch(s, false);
	gmem_guard_destroy(s->guard);
	vhost_backend_req_destroy(s->breq);
	iotlb_destroy(s->iotlb);
	gmem_put(s->view);
	if (s->timer_watched)
		loop_del_fd(s->ctrl, s->timer_fd);
	close_fd(&s->timer_fd);
	free(s->vrings);
	free(s->vpriv);
	free(s->file.path);
	free(s);
	if (sem)
		sem_post(sem);
}

static void listen_watch(struct vhost_server *s, bool on)
{
	int ret;

	if (s->listen_fd < 0 || s->listen_watched == on)
		return;
	if (on) {
		ret = loop_add_fd(s->ctrl, s->listen_fd, EPOLLIN, listen_cb, s);
		if (ret) {
			log_err("vhost %s: watching the socket: %s", s->name, strerror(-ret));
			return;
		}
	} else {
		loop_del_fd(s->ctrl, s->listen_fd);
	}
	s->listen_watched = on;
}

/* Every ring is stopped: drop the session and listen again. */
static void conn_finish_close(struct vhost_server *s)
{
	for (unsigned i = 0; i < s->info.num_queues; i++)
		vring_reset(s, i);
	gmem_put(s->mem);
	s->mem = NULL;
	gmem_put(s->next_mem);
	s->next_mem = NULL;
	vhost_iotlb_reset(s);
	s->features = 0;
	s->features_set = false;
	s->protocol_features = 0;
	s->owner = false;
	s->broken = false;
	inflight_unmap(s);
	gmem_guard_reset(s->guard);   /* every mapping is gone: start afresh */
	gmem_log_put(s->log);
	s->log = NULL;
	vhost_backend_req_reset(s->breq);
	vhost_msg_rx_reset(&s->rx);
	vhost_msg_tx_reset(&s->tx);
	s->conn_state = CONN_NONE;
	stall_timer_update(s);
	conn_pause(s);
	close_fd(&s->conn_fd);
	if (s->ops->disconnected)
		s->ops->disconnected(s->opaque);
	if (s->destroying) {
		server_free(s);
		return;
	}
	listen_watch(s, true);
}

/* Close the connection: stop rings (maybe asynchronously), then tear down.
 * @s may be freed on return if it is being destroyed. */
static void conn_close(struct vhost_server *s)
{
	if (!conn_live(s))
		return;
	s->conn_state = CONN_CLOSING;
	conn_pause(s);
	s->in_dispatch = true;
	vring_stop_all(s);
	s->in_dispatch = false;
	if (!s->stops_pending)
		conn_finish_close(s);
}

/* Every queue stop has completed. */
void server_resume(struct vhost_server *s)
{
	if (s->conn_state == CONN_CLOSING) {
		conn_finish_close(s);
		return;
	}
	if (s->conn_state != CONN_PAUSED)
		return;
	s->conn_state = CONN_READING;
	conn_dispatch(s);
	if (s->conn_state == CONN_READING)
		conn_resume(s);
	stall_timer_update(s);
}

static int conn_open(struct vhost_server *s, int fd)
{
	int ret;

	s->conn_fd = fd;
	vhost_msg_rx_init(&s->rx);
	vhost_msg_tx_init(&s->tx);
	ret = conn_resume(s);
	if (ret) {
		s->conn_fd = -1;
		return ret;
	}
	s->conn_state = CONN_READING;
	/* One frontend at a time: others wait in the backlog. */
	listen_watch(s, false);
	log_info("vhost %s: frontend connected", s->name);
	return 0;
}

static void listen_cb(void *opaque, uint32_t events)
{
	struct vhost_server *s = opaque;
	int fd;

	fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			log_rl(LOG_ERR, "vhost %s: accept: %s", s->name, strerror(errno));
		return;
	}
	if (s->conn_fd >= 0 || conn_open(s, fd))
		close(fd);
}

/* ---- socket setup ----------------------------------------------------- */

static int listen_on_path(struct vhost_server *s, const char *path)
{
	int fd = sock_listen_unix(path, LISTEN_BACKLOG, 0, &s->file);

	if (fd < 0)
		return fd;
	s->listen_fd = fd;
	return 0;
}

/* An inherited fd: a listening socket, or an already connected one. */
static int adopt_fd(struct vhost_server *s, int fd)
{
	int type, acc, fl;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	if (type != SOCK_STREAM)
		return -EINVAL;
	len = sizeof(acc);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
		return -errno;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	if (acc)
		s->listen_fd = fd;
	else
		s->conn_fd = fd;
	return 0;
}

struct create_args {
	struct vhost_server *s;
	int ret;
};

static void create_in_loop(void *arg)
{
	struct create_args *a = arg;
	struct vhost_server *s = a->s;
	int fd = s->conn_fd;

	guard_watch(s, true);
	if (!s->guard_watched) {
		a->ret = -ENOMEM;
		return;
	}
	a->ret = loop_add_fd(s->ctrl, s->timer_fd, EPOLLIN, timer_cb, s);
	if (a->ret) {
		guard_watch(s, false);
		return;
	}
	s->timer_watched = true;
	/* Backend messages get as long as frontend ones: an IOTLB miss under
	 * a busy software-emulated guest can wait seconds for QEMU's ack. */
	a->ret = vhost_backend_req_create(s->ctrl, s->name, msg_timeout_ms(s), &s->breq);
	if (a->ret) {
		guard_watch(s, false);
		loop_del_fd(s->ctrl, s->timer_fd);
		s->timer_watched = false;
		return;
	}
	if (fd >= 0) {
		s->conn_fd = -1;
		a->ret = conn_open(s, fd);
		if (a->ret)
			s->conn_fd = fd;   /* still ours to close */
	} else {
		listen_watch(s, true);
		a->ret = s->listen_watched ? 0 : -ENOMEM;
	}
	if (a->ret) {
		/* server_free runs in the caller's thread: leave the loop now. */
		guard_watch(s, false);
		loop_del_fd(s->ctrl, s->timer_fd);
		s->timer_watched = false;
		vhost_backend_req_destroy(s->breq);
		s->breq = NULL;
	}
}

int vhost_server_create(struct loop *ctrl, const char *path, int fd,
			const struct vhost_dev_info *info,
			const struct vhost_dev_ops *ops, void *opaque,
			struct vhost_server **out)
{
	struct create_args a;
	struct vhost_server *s;
	int ret;

	if (!ctrl || !info || !ops || !ops->queue_start || !ops->queue_stop ||
	    !ops->queue_exec || info->num_queues == 0 || info->num_queues > VHOST_MAX_QUEUES ||
	    info->max_queue_size == 0 || info->max_queue_size > VIRTQ_MAX_SIZE ||
	    (!path && fd < 0))
		return -EINVAL;
	vring_fd_probe();   /* before any sandbox */
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ctrl = ctrl;
	s->info = *info;
	s->ops = ops;
	s->opaque = opaque;
	s->listen_fd = -1;
	s->conn_fd = -1;
	s->inflight_fd = -1;
	s->inflight_slot = -1;
	s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->timer_fd < 0) {
		ret = -errno;
		goto err_free;
	}
	vhost_msg_rx_init(&s->rx);
	vhost_msg_tx_init(&s->tx);
	ret = gmem_guard_create(&s->guard);
	if (ret)
		goto err_free;
	s->vrings = calloc(info->num_queues, sizeof(*s->vrings));
	s->vpriv = calloc(info->num_queues, sizeof(*s->vpriv));
	if (!s->vrings || !s->vpriv) {
		ret = -ENOMEM;
		goto err_free;
	}
	for (unsigned i = 0; i < info->num_queues; i++) {
		s->vrings[i].kick_fd = s->vrings[i].call_fd = s->vrings[i].err_fd = -1;
		vring_reset(s, i);
	}
	if (fd >= 0) {
		/* With a path too: the socket systemd made on it (and owns). */
		if (path)
			snprintf(s->name, sizeof(s->name), "%s", path);
		else
			snprintf(s->name, sizeof(s->name), "fd %d", fd);
		ret = adopt_fd(s, fd);
	} else {
		snprintf(s->name, sizeof(s->name), "%s", path);
		ret = listen_on_path(s, path);
	}
	if (ret)
		goto err_free;

	a = (struct create_args){ .s = s };
	loop_call(ctrl, create_in_loop, &a);
	if (a.ret) {
		ret = a.ret;
		goto err_close;
	}
	*out = s;
	return 0;

err_close:
	if (s->listen_fd >= 0 && fd < 0) {
		sock_file_remove(&s->file);
		close(s->listen_fd);
	}
	/* An inherited fd stays the caller's on failure. */
err_free:
	server_free(s);
	return ret;
}

static void destroy_in_loop(void *arg)
{
	struct vhost_server *s = arg;

	s->destroying = true;
	listen_watch(s, false);
	if (s->listen_fd >= 0) {
		sock_file_remove(&s->file);
		close(s->listen_fd);
		s->listen_fd = -1;
	}
	if (s->conn_fd >= 0) {
		if (s->conn_state != CONN_CLOSING)
			conn_close(s);   /* frees s once the rings are stopped */
		return;
	}
	server_free(s);
}

void vhost_server_destroy(struct vhost_server *s)
{
	sem_t sem;

	if (!s)
		return;
	if (loop_in_thread(s->ctrl)) {
		/* Freed now, or when the last queue_stop done() arrives. */
		destroy_in_loop(s);
		return;
	}
	sem_init(&sem, 0, 0);
	s->destroyed = &sem;
	loop_call(s->ctrl, destroy_in_loop, s);
	while (sem_wait(&sem) < 0 && errno == EINTR)
		;
	sem_destroy(&sem);
}

int vhost_server_backend_send(struct vhost_server *s, uint32_t request,
			      const void *payload, uint32_t size, vhost_backend_req_cb cb,
			      void *arg)
{
	if (!conn_live(s))
		return -ENOTCONN;
	return vhost_backend_req_send(s->breq, request, payload, size, cb, arg);
}

bool vhost_server_connected(const struct vhost_server *s)
{
	return conn_live(s);
}

void vhost_vring_signal_err(struct vhost_vring *vr)
{
	uint64_t one = 1;
	ssize_t r UNUSED;

	if (vr->err_fd >= 0)
		r = write(vr->err_fd, &one, sizeof(one));
}
