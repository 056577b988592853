/* SPDX-License-Identifier: MIT */
/*
 * vhost_backend_req.h - the backend request channel (protocol feature
 * BACKEND_REQ, formerly SLAVE_REQ): messages the backend starts, sent on
 * the socket the frontend hands over with SET_BACKEND_REQ_FD. Used for
 * IOTLB misses and configuration-change notifications; knows nothing
 * about what the messages mean.
 *
 * Sending never blocks the caller: messages are queued (at most
 * VHOST_BACKEND_REQ_MAX_QUEUED), written as the socket takes them, and,
 * with REPLY_ACK, sent one at a time, each waiting for its ack before
 * the next goes out (replies carry no tag, so order is the only match).
 * A frontend that leaves a message half-written or unacknowledged for
 * longer than the timeout loses the channel: it is closed, every queued
 * message completes with -ETIMEDOUT, and later sends fail with -ENOTCONN
 * (the main connection is not touched; the caller decides).
 *
 * Context: the control loop's thread, for every function and callback.
 * Other threads reach it with loop_post.
 */
#ifndef VBLK_VHOST_BACKEND_REQ_H
#define VBLK_VHOST_BACKEND_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "loop/loop.h"

#define VHOST_BACKEND_REQ_MAX_QUEUED   64u
#define VHOST_BACKEND_REQ_MAX_PAYLOAD  256u
#define VHOST_BACKEND_REQ_TIMEOUT_MS_DEFAULT 5000u

/*
 * Completion of one message: 0 (acked with success; without REPLY_ACK:
 * written to the socket), -EIO (the frontend acked with failure),
 * -ETIMEDOUT (no ack in time: the channel is closed), -ECONNRESET (the
 * channel was reset or closed before an answer).
 */
typedef void (*vhost_backend_req_cb)(void *arg, int result);

struct vhost_backend_req;

/*
 * vhost_backend_req_create - a channel (not connected) on @ctrl. Its
 * timer is created here (before a sandbox forbids it). @timeout_ms 0:
 * VHOST_BACKEND_REQ_TIMEOUT_MS_DEFAULT. @name is for logs.
 * Return: 0 or -errno.
 */
int vhost_backend_req_create(struct loop *ctrl, const char *name, unsigned timeout_ms,
			     struct vhost_backend_req **out);

/* vhost_backend_req_destroy - reset (callbacks run) and free. NULL: no-op. */
void vhost_backend_req_destroy(struct vhost_backend_req *b);

/*
 * vhost_backend_req_set_fd - use @fd (taken, whatever the result) for
 * backend requests; a channel already open is reset first. @reply_ack:
 * REPLY_ACK was negotiated, so messages with a callback ask for an ack.
 * The fd is made non-blocking.
 * Return: 0, -ENOTSOCK if @fd is not a socket (nothing else changes),
 * other -errno.
 */
int vhost_backend_req_set_fd(struct vhost_backend_req *b, int fd, bool reply_ack);

/*
 * vhost_backend_req_reset - close the channel (disconnect, RESET_OWNER):
 * every queued message completes with -ECONNRESET, in order.
 */
void vhost_backend_req_reset(struct vhost_backend_req *b);

/* True while a channel fd is set. */
bool vhost_backend_req_connected(const struct vhost_backend_req *b);

/* Messages queued or waiting for an ack. */
unsigned vhost_backend_req_pending(const struct vhost_backend_req *b);

/*
 * vhost_backend_req_send - queue @request (VHOST_USER_BACKEND_*) with
 * @size payload bytes. @cb (may be NULL: fire and forget, no ack asked)
 * runs once with the result, never from inside this call.
 * Return: 0 (queued), -ENOTCONN (no channel), -EBUSY (queue full: try
 * again after a completion), -EINVAL (@size above
 * VHOST_BACKEND_REQ_MAX_PAYLOAD), -ENOMEM.
 */
int vhost_backend_req_send(struct vhost_backend_req *b, uint32_t request,
			   const void *payload, uint32_t size, vhost_backend_req_cb cb,
			   void *arg);

#endif
