/* SPDX-License-Identifier: MIT */
/*
 * test_vhost_backend_req.c - the backend request channel on its own (a
 * socketpair stands in for the frontend's end, the loop runs in this
 * thread) and through the server (SET_BACKEND_REQ_FD rules, a message
 * sent to a connected frontend, reset on disconnect).
 */
#include <fcntl.h>

#include "vhost/vhost_backend_req.h"
#include "vhost_test.h"

struct result {
	int calls;
	int last;
	int order[8];
};

static void record_cb(void *arg, int result)
{
	struct result *r = arg;

	if (r->calls < 8)
		r->order[r->calls] = result;
	r->calls++;
	r->last = result;
}

static bool called(void *arg)
{
	return ((struct result *)arg)->calls > 0;
}

struct want {
	struct result *r;
	int n;
};

static bool called_n(void *arg)
{
	struct want *w = arg;

	return w->r->calls >= w->n;
}

/* Run the loop a few iterations (nothing expected to finish). */
static bool never(void *arg)
{
	(void)arg;
	return false;
}

static void spin(struct loop *l, int ms)
{
	loop_run_until(l, never, NULL, ms);
}

/* The frontend's end: one message, non-blocking; 0 if none yet. */
static int peer_recv(int fd, struct vhost_msg *m)
{
	struct vhost_msg_rx rx;
	int ret;

	vhost_msg_rx_init(&rx);
	ret = vhost_msg_rx_read(fd, &rx);
	if (ret == 1)
		*m = rx.msg;
	else
		vhost_msg_rx_reset(&rx);
	return ret;
}

static int peer_ack(int fd, uint32_t request, uint64_t v)
{
	struct vhost_msg_hdr h = {
		.request = request,
		.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
		.size = sizeof(v),
	};

	return vhost_msg_send(fd, &h, &v, sizeof(v), NULL, 0);
}

static void pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		tap_bail("socketpair");
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
}

static void test_module(void)
{
	struct vhost_backend_req *b;
	struct loop *l;
	struct result r = { 0 };
	struct vhost_msg m;
	struct vhost_msg_iotlb io = { .iova = 0x1000, .perm = VHOST_ACCESS_RW,
				      .type = VHOST_IOTLB_MISS };
	int sv[2], p[2];

	if (loop_create("breq", &l))
		tap_bail("loop");
	is(vhost_backend_req_create(l, "test", 200, &b), 0, "create");

	is(vhost_backend_req_send(b, 1, NULL, 0, NULL, NULL), -ENOTCONN,
	   "send without a channel: -ENOTCONN");
	if (pipe(p))
		tap_bail("pipe");
	close(p[1]);
	is(vhost_backend_req_set_fd(b, p[0], true), -ENOTSOCK, "a pipe is refused");
	ok(!vhost_backend_req_connected(b), "not connected after a refused fd");

	/* With REPLY_ACK: NEED_REPLY set, completion on the ack. */
	pair(sv);
	is(vhost_backend_req_set_fd(b, sv[0], true), 0, "socket accepted");
	is(vhost_backend_req_send(b, VHOST_USER_BACKEND_IOTLB_MSG, &io, sizeof(io),
				  record_cb, &r), 0, "queued");
	is(r.calls, 0, "no callback inside send");
	is(vhost_backend_req_send(b, VHOST_USER_BACKEND_IOTLB_MSG, &io,
				  VHOST_BACKEND_REQ_MAX_PAYLOAD + 1, record_cb, &r), -EINVAL,
	   "oversized payload refused");
	is(vhost_backend_req_send(b, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, NULL, 0,
				  record_cb, &r), 0, "second queued");
	spin(l, 30);
	is(peer_recv(sv[1], &m), 1, "peer got the first message");
	ok(m.hdr.request == VHOST_USER_BACKEND_IOTLB_MSG && m.hdr.size == sizeof(io) &&
	   m.hdr.flags == (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK) &&
	   !memcmp(&m.payload.iotlb, &io, sizeof(io)), "header, flags and payload as sent");
	is(peer_recv(sv[1], &m), 0, "second not sent before the first is acked");
	is(r.calls, 0, "not completed before the ack");
	peer_ack(sv[1], VHOST_USER_BACKEND_IOTLB_MSG, 0);
	loop_run_until(l, called, &r, 2000);
	is(r.calls, 1, "first completed");
	is(r.last, 0, "ack 0: success");
	spin(l, 30);
	is(peer_recv(sv[1], &m), 1, "second sent after the ack");
	is(m.hdr.request, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, "in order");
	peer_ack(sv[1], VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 1);
	{
		struct want w = { &r, 2 };

		loop_run_until(l, called_n, &w, 2000);
	}
	is(r.last, -EIO, "a failure ack completes with -EIO");

	/* No ack: bounded. */
	memset(&r, 0, sizeof(r));
	is(vhost_backend_req_send(b, 1, &io, sizeof(io), record_cb, &r), 0, "queued");
	is(vhost_backend_req_send(b, 1, &io, sizeof(io), record_cb, &r), 0, "queued");
	{
		struct want w = { &r, 2 };

		loop_run_until(l, called_n, &w, 5000);
	}
	ok(r.calls == 2 && r.order[0] == -ETIMEDOUT && r.order[1] == -ETIMEDOUT,
	   "no ack within the timeout: all complete with -ETIMEDOUT (%d %d)", r.order[0],
	   r.order[1]);
	ok(!vhost_backend_req_connected(b), "channel closed after the timeout");
	is(vhost_backend_req_send(b, 1, NULL, 0, NULL, NULL), -ENOTCONN, "then -ENOTCONN");
	close(sv[1]);

	/* A reply that answers nothing closes the channel. */
	pair(sv);
	is(vhost_backend_req_set_fd(b, sv[0], true), 0, "new channel");
	memset(&r, 0, sizeof(r));
	vhost_backend_req_send(b, 1, &io, sizeof(io), record_cb, &r);
	spin(l, 30);
	peer_recv(sv[1], &m);
	peer_ack(sv[1], 2, 0);    /* wrong request */
	loop_run_until(l, called, &r, 2000);
	is(r.last, -ECONNRESET, "mismatched reply: -ECONNRESET");
	ok(!vhost_backend_req_connected(b), "and the channel is closed");
	close(sv[1]);

	/* Peer closes: queued messages fail, nothing hangs. */
	pair(sv);
	vhost_backend_req_set_fd(b, sv[0], true);
	memset(&r, 0, sizeof(r));
	vhost_backend_req_send(b, 1, &io, sizeof(io), record_cb, &r);
	spin(l, 30);
	close(sv[1]);
	loop_run_until(l, called, &r, 2000);
	is(r.last, -ECONNRESET, "peer closed: -ECONNRESET");

	/* Without REPLY_ACK: no NEED_REPLY, complete once written; bounded queue. */
	pair(sv);
	vhost_backend_req_set_fd(b, sv[0], false);
	memset(&r, 0, sizeof(r));
	vhost_backend_req_send(b, 2, NULL, 0, record_cb, &r);
	loop_run_until(l, called, &r, 2000);
	is(r.last, 0, "no REPLY_ACK: done when written");
	is(peer_recv(sv[1], &m), 1, "peer got it");
	is(m.hdr.flags, VHOST_USER_VERSION, "without NEED_REPLY");
	{
		unsigned n = 0;

		while (vhost_backend_req_send(b, 2, NULL, 0, NULL, NULL) == 0)
			n++;
		is(n, VHOST_BACKEND_REQ_MAX_QUEUED, "queue bounded at %u", n);
		is(vhost_backend_req_send(b, 2, NULL, 0, NULL, NULL), -EBUSY, "full: -EBUSY");
	}
	vhost_backend_req_reset(b);
	is(vhost_backend_req_pending(b), 0u, "reset empties the queue");
	close(sv[1]);

	vhost_backend_req_destroy(b);
	loop_destroy(l);
}

static uint64_t proto_with_breq(void)
{
	return T_PROTO_ALL | (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ);
}

struct srv_send {
	struct env *e;
	uint32_t request;
	int ret;
	struct result *r;
};

static void srv_send_fn(void *arg)
{
	struct srv_send *a = arg;

	a->ret = vhost_server_backend_send(a->e->srv, a->request, NULL, 0, record_cb, a->r);
}

/* Calls of a callback run in the control thread. */
static int result_calls(struct result *r)
{
	return __atomic_load_n(&r->calls, __ATOMIC_SEQ_CST);
}

static void test_server(void)
{
	struct env e;
	struct vhost_frontend *f;
	struct vhost_msg m;
	struct result r = { 0 };
	struct srv_send a;
	uint64_t v;
	int sv[2], p[2];

	env_init(&e, true);

	/* Offered. */
	f = fe_connect(&e);
	ok(f && !vhost_frontend_get_protocol_features(f, &v) &&
	   (v & (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ)), "BACKEND_REQ offered");

	/* Not negotiated: the message closes the connection. */
	pair(sv);
	vhost_frontend_send(f, VHOST_USER_SET_BACKEND_REQ_FD, VHOST_USER_VERSION, NULL, 0,
			    &sv[0], 1);
	ok(fe_closed_by_peer(f), "SET_BACKEND_REQ_FD before BACKEND_REQ: connection closed");
	vhost_frontend_destroy(f);
	close(sv[0]);
	close(sv[1]);

	/* Not a socket: closed. */
	f = fe_connect(&e);
	vhost_frontend_set_protocol_features(f, proto_with_breq());
	if (pipe(p))
		tap_bail("pipe");
	vhost_frontend_send(f, VHOST_USER_SET_BACKEND_REQ_FD, VHOST_USER_VERSION, NULL, 0,
			    &p[0], 1);
	ok(fe_closed_by_peer(f), "SET_BACKEND_REQ_FD with a pipe: connection closed");
	vhost_frontend_destroy(f);
	close(p[0]);
	close(p[1]);

	/* No fd at all: malformed. */
	f = fe_connect(&e);
	vhost_frontend_set_protocol_features(f, proto_with_breq());
	vhost_frontend_send(f, VHOST_USER_SET_BACKEND_REQ_FD, VHOST_USER_VERSION, NULL, 0,
			    NULL, 0);
	ok(fe_closed_by_peer(f), "SET_BACKEND_REQ_FD without an fd: connection closed");
	vhost_frontend_destroy(f);

	/* Healthy: as QEMU does it (with REPLY_ACK, so NEED_REPLY + ack). */
	f = fe_connect(&e);
	pair(sv);
	is(vhost_frontend_set_protocol_features(f, proto_with_breq()), 0, "protocol features");
	is(vhost_frontend_send(f, VHOST_USER_SET_BACKEND_REQ_FD,
			       VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, NULL, 0,
			       &sv[0], 1), 0, "SET_BACKEND_REQ_FD sent");
	is(vhost_frontend_recv_reply(f, VHOST_USER_SET_BACKEND_REQ_FD, &v, sizeof(v), NULL), 0,
	   "acked");
	is(v, 0u, "with success");
	close(sv[0]);
	a = (struct srv_send){ .e = &e, .request = VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
			       .r = &r };
	loop_call(e.ctrl, srv_send_fn, &a);
	is(a.ret, 0, "vhost_server_backend_send queued");
	{
		struct timeval tv = { .tv_sec = 5 };
		int fl = fcntl(sv[1], F_GETFL);

		fcntl(sv[1], F_SETFL, fl & ~O_NONBLOCK);
		setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	is(vhost_msg_recv(sv[1], &m), 0, "frontend got it on its channel");
	ok(m.hdr.request == VHOST_USER_BACKEND_CONFIG_CHANGE_MSG &&
	   (m.hdr.flags & VHOST_USER_NEED_REPLY_MASK), "config change with NEED_REPLY");
	peer_ack(sv[1], VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, 0);
	ok(WAIT_FOR(&e, result_calls(&r) == 1), "completed");
	is(r.last, 0, "acked");

	/* Disconnect resets the channel: the frontend's end sees EOF. */
	memset(&r, 0, sizeof(r));
	loop_call(e.ctrl, srv_send_fn, &a);
	vhost_frontend_destroy(f);
	ok(WAIT_FOR(&e, result_calls(&r) == 1), "pending message completed on disconnect");
	ok(r.last == -ECONNRESET || r.last == 0, "with -ECONNRESET (%d)", r.last);
	{
		char c;
		ssize_t n;

		do
			n = read(sv[1], &c, 1);
		while (n > 0);
		is(n, 0, "channel closed with the connection");
	}
	close(sv[1]);
	loop_call(e.ctrl, srv_send_fn, &a);
	is(a.ret, -ENOTCONN, "no frontend: -ENOTCONN");

	ok(healthy_and_close(&e), "a healthy session works afterwards");
	env_fini(&e);
}

int main(void)
{
	log_max_level = LOG_ERR;
	test_module();
	test_server();
	return tap_done();
}
