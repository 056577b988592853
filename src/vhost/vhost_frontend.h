/* SPDX-License-Identifier: MIT */
/*
 * vhost_frontend.h - the frontend (driver/VMM) side of vhost-user: connect
 * to a backend socket, send requests with fds, wait for replies and
 * REPLY_ACK acks. Used by the protocol tests and by libvblk's userspace
 * driver. Blocking I/O on one socket; not thread-safe (one user at a time).
 *
 * Every helper returns 0 or -errno: -EPIPE/-ECONNRESET when the backend
 * closed the connection, -EAGAIN when a timeout set with
 * vhost_frontend_set_timeout() expired, -EPROTO for a malformed reply,
 * -EIO when the backend answered a REPLY_ACK with failure.
 *
 * Context: any thread, one at a time per struct vhost_frontend; calls
 * block until the backend answered (or the timeout).
 */
#ifndef VBLK_VHOST_FRONTEND_H
#define VBLK_VHOST_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include "gmem/gmem.h"
#include "vhost/vhost_msg.h"

struct vhost_frontend;

/* Connect to the backend listening on the unix socket @path. */
int vhost_frontend_connect(const char *path, struct vhost_frontend **out);
/* Use the connected stream socket @fd (ownership passes on success). */
int vhost_frontend_from_fd(int fd, struct vhost_frontend **out);
/* Close the connection and free. NULL is a no-op. */
void vhost_frontend_destroy(struct vhost_frontend *f);

int vhost_frontend_fd(const struct vhost_frontend *f);
/* Receive timeout for replies in milliseconds; 0 waits for ever. */
int vhost_frontend_set_timeout(struct vhost_frontend *f, unsigned ms);
/*
 * Whether helpers for requests without their own reply set need_reply and
 * wait for the ack. Turned on by vhost_frontend_set_protocol_features()
 * when it acks VHOST_USER_PROTOCOL_F_REPLY_ACK.
 */
void vhost_frontend_set_reply_ack(struct vhost_frontend *f, bool on);

/* ---- raw messages (tests use these to send anything at all) ---------- */

/*
 * vhost_frontend_send - one message: header {request, flags, size} and
 * @size payload bytes, with @nfds fds (not closed). flags is sent as
 * given (VHOST_USER_VERSION is not added).
 */
int vhost_frontend_send(struct vhost_frontend *f, uint32_t request, uint32_t flags,
			const void *payload, uint32_t size, const int *fds, unsigned nfds);
/*
 * vhost_frontend_recv - the next message from the backend; fds received
 * are in msg->fds (the caller closes them: vhost_msg_close_fds).
 */
int vhost_frontend_recv(struct vhost_frontend *f, struct vhost_msg *msg);
/*
 * vhost_frontend_recv_reply - receive the reply to @request and check its
 * header (version 1 + reply flag, same request, size == @size unless
 * @size is UINT32_MAX: then @payload must hold VHOST_MSG_MAX_PAYLOAD
 * bytes). Copies the payload to @payload (optional); *got (optional) gets
 * the payload size. Fds received with the reply are closed.
 */
int vhost_frontend_recv_reply(struct vhost_frontend *f, uint32_t request, void *payload,
			      uint32_t size, uint32_t *got);
/*
 * vhost_frontend_request - send a request that has no reply of its own;
 * with REPLY_ACK on, sets need_reply and waits for the ack (-EIO on nack).
 */
int vhost_frontend_request(struct vhost_frontend *f, uint32_t request, const void *payload,
			   uint32_t size, const int *fds, unsigned nfds);

/* ---- one helper per request ----------------------------------------- */

int vhost_frontend_get_features(struct vhost_frontend *f, uint64_t *features);
int vhost_frontend_set_features(struct vhost_frontend *f, uint64_t features);
int vhost_frontend_get_protocol_features(struct vhost_frontend *f, uint64_t *features);
int vhost_frontend_set_protocol_features(struct vhost_frontend *f, uint64_t features);
int vhost_frontend_set_owner(struct vhost_frontend *f);
int vhost_frontend_reset_owner(struct vhost_frontend *f);
int vhost_frontend_get_queue_num(struct vhost_frontend *f, uint64_t *num);
int vhost_frontend_get_max_mem_slots(struct vhost_frontend *f, uint64_t *slots);

/* @n regions (1..8), regions[i] is mapped from fds[i]. */
int vhost_frontend_set_mem_table(struct vhost_frontend *f, const struct gmem_region_desc *regions,
				 const int *fds, unsigned n);
int vhost_frontend_add_mem_reg(struct vhost_frontend *f, const struct gmem_region_desc *r, int fd);
/* @fd < 0: none sent (QEMU 7.2 sends one; the backend just closes it). */
int vhost_frontend_rem_mem_reg(struct vhost_frontend *f, const struct gmem_region_desc *r, int fd);

int vhost_frontend_set_vring_num(struct vhost_frontend *f, unsigned index, unsigned num);
int vhost_frontend_set_vring_addr(struct vhost_frontend *f, unsigned index, uint32_t flags,
				  uint64_t desc, uint64_t used, uint64_t avail, uint64_t log);
int vhost_frontend_set_vring_base(struct vhost_frontend *f, unsigned index, unsigned base);
/* Stops the ring in the backend and returns where to resume. */
int vhost_frontend_get_vring_base(struct vhost_frontend *f, unsigned index, unsigned *base);
/* @fd < 0 sends VHOST_USER_VRING_NOFD_MASK (polling / no notification). */
int vhost_frontend_set_vring_kick(struct vhost_frontend *f, unsigned index, int fd);
int vhost_frontend_set_vring_call(struct vhost_frontend *f, unsigned index, int fd);
int vhost_frontend_set_vring_err(struct vhost_frontend *f, unsigned index, int fd);
int vhost_frontend_set_vring_enable(struct vhost_frontend *f, unsigned index, bool enable);
/* SET_LOG_BASE with the log @fd (LOG_SHMFD); waits for the backend's reply. */
int vhost_frontend_set_log_base(struct vhost_frontend *f, int fd, uint64_t size, uint64_t offset);
/*
 * GET_INFLIGHT_FD for @in's num_queues and queue_size: *out gets the
 * backend's answer and *fd the area (-1 if it sent none; the caller
 * closes it). SET_INFLIGHT_FD hands an area (back) to a backend.
 */
int vhost_frontend_get_inflight_fd(struct vhost_frontend *f, const struct vhost_msg_inflight *in,
				   struct vhost_msg_inflight *out, int *fd);
int vhost_frontend_set_inflight_fd(struct vhost_frontend *f, const struct vhost_msg_inflight *in,
				   int fd);

/* Config space; len <= VHOST_USER_MAX_CONFIG_SIZE. -EIO if the backend
 * answered with an empty payload (its way of saying failure). */
int vhost_frontend_get_config(struct vhost_frontend *f, uint32_t offset, void *buf, uint32_t len);
/* The same with the message's flags field set (crosvm: 1, "writable"). */
int vhost_frontend_get_config_flags(struct vhost_frontend *f, uint32_t offset, void *buf,
				    uint32_t len, uint32_t flags);
int vhost_frontend_set_config(struct vhost_frontend *f, uint32_t offset, const void *buf,
			      uint32_t len, uint32_t flags);

#endif
