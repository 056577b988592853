/* SPDX-License-Identifier: MIT */
/*
 * vhost.h - the backend (device) side of the vhost-user protocol.
 *
 * vhost owns the listening socket, one frontend connection at a time, the
 * negotiated features, the guest memory table and per-vring
 * configuration. Each message's size, fd count, order and indices are
 * checked before it acts; a malformed message closes that connection
 * (never the daemon), and the socket listens again.
 *
 * The device is reached only through struct vhost_dev_ops. vhost knows
 * nothing about virtio-blk.
 *
 * Context: all vhost functions and ops callbacks run in the control loop's
 * thread, except where an op says otherwise.
 */
#ifndef VBLK_VHOST_H
#define VBLK_VHOST_H

#include <stdbool.h>
#include <stdint.h>

#include "gmem/gmem.h"
#include "virtq/virtq.h"
#include "loop/loop.h"
#include "vhost/vhost_backend_req.h"

#define VHOST_MAX_QUEUES 64

/* One vring as configured by the frontend. While started, the fields
 * marked (queue) belong to the thread serving the queue; vhost changes
 * them only inside ops->queue_exec. */
struct vhost_vring {
	unsigned index;
	struct virtq vq;          /* (queue) ring state */
	struct gmem *mem;         /* (queue) memory table the ring was mapped with */
	int kick_fd;              /* -1 if none / polling */
	int call_fd;              /* (queue) -1 if none */
	int err_fd;               /* (queue) -1 if none */
	bool started;
	bool enabled;
	/* raw frontend config */
	unsigned num;
	uint16_t base;
	uint32_t addr_flags;
	uint64_t desc_uva, avail_uva, used_uva, log_addr;
};

/* Features and limits of the device behind this socket. */
struct vhost_dev_info {
	unsigned num_queues;      /* GET_QUEUE_NUM */
	unsigned max_queue_size;  /* largest ring accepted */
	uint64_t features;        /* device + transport bits offered (VIRTIO_F_*, VIRTIO_BLK_F_*) */
	uint32_t config_size;     /* bytes of config space */
	/*
	 * A message received in part, or a reply the frontend does not read,
	 * for this long closes the connection (a frontend stalled mid-message
	 * would own the export forever). Idle time between messages is never
	 * limited. 0: VHOST_MSG_TIMEOUT_MS_DEFAULT.
	 */
	unsigned msg_timeout_ms;
};

#define VHOST_MSG_TIMEOUT_MS_DEFAULT 30000u

typedef void (*vhost_done_cb)(void *arg);

struct vhost_dev_ops {
	/* Config space read; buf has len bytes. */
	int (*get_config)(void *opaque, uint32_t offset, void *buf, uint32_t len);
	/* Config space write by the frontend (guest). -EINVAL to refuse. */
	int (*set_config)(void *opaque, uint32_t offset, const void *buf, uint32_t len);
	/* Negotiated feature bits (SET_FEATURES), before any queue starts. */
	void (*set_features)(void *opaque, uint64_t features);
	/*
	 * Start serving vr (its virtq is initialised, kick/call fds set).
	 * From now the device owns the (queue) fields until queue_stop.
	 */
	int (*queue_start)(void *opaque, struct vhost_vring *vr);
	/*
	 * Stop serving vr: stop popping, finish in-flight requests (or hand
	 * them back), push their completions, then call done(arg) from the
	 * control thread. done may be called before queue_stop returns.
	 * vhost processes no further message of this connection until done.
	 */
	void (*queue_stop)(void *opaque, struct vhost_vring *vr, vhost_done_cb done, void *arg);
	/*
	 * Run fn(arg) in the context serving started vring vr, synchronously.
	 * Used to swap the memory table, ring pointers or call fd safely.
	 * Return: 0 (fn ran), or -ETIMEDOUT if that context did not answer in
	 * time (fn did not run and never will): vhost closes the connection.
	 */
	int (*queue_exec)(void *opaque, struct vhost_vring *vr, loop_fn fn, void *arg);
	/*
	 * Optional (ACCESS_PLATFORM): runs inside the queue's context.
	 * @result 0: vr->mem is a new IOTLB view; a queue waiting on a miss
	 * (vhost_server_iotlb_miss) pops again. @result -errno: the miss the
	 * queue waits on will not be answered; fail it (break the queue).
	 */
	void (*queue_iotlb)(void *opaque, struct vhost_vring *vr, int result);
	/* The frontend went away (after every queue was stopped). */
	void (*disconnected)(void *opaque);
	/* Optional: RESET_OWNER reset the device (every queue stopped). */
	void (*reset)(void *opaque);
};

struct vhost_server;

/*
 * vhost_server_create - listen on the unix socket @path (or use the
 * listening/connected @fd if path is NULL) and serve one frontend at a
 * time on @ctrl. Errors: -EADDRINUSE if another process listens on path
 * (a stale socket file is replaced), other -errno.
 */
int vhost_server_create(struct loop *ctrl, const char *path, int fd,
			const struct vhost_dev_info *info,
			const struct vhost_dev_ops *ops, void *opaque,
			struct vhost_server **out);
/* Close the connection (stopping queues synchronously) and the socket. */
void vhost_server_destroy(struct vhost_server *s);

/*
 * vhost_server_backend_send - send a backend-initiated message
 * (VHOST_USER_BACKEND_*) to the connected frontend on its backend request
 * channel; see vhost_backend_req_send for @cb and the results. -ENOTCONN
 * if no frontend is connected or it gave no channel (BACKEND_REQ not
 * negotiated, or SET_BACKEND_REQ_FD not sent). The channel is closed
 * with the connection (queued messages complete with -ECONNRESET).
 * Context: the control loop's thread.
 */
int vhost_server_backend_send(struct vhost_server *s, uint32_t request,
			      const void *payload, uint32_t size, vhost_backend_req_cb cb,
			      void *arg);

/*
 * vhost_server_iotlb_miss - started ring @index cannot translate @iova
 * with @perm (GMEM_PERM_*) through its IOTLB view (virtq_pop said
 * -EAGAIN): ask the frontend (a VHOST_IOTLB_MISS on the backend request
 * channel, one outstanding per ring). The ring is answered through
 * ops->queue_iotlb: 0 with a new view, or -errno if the frontend cannot
 * be asked, does not answer within the channel's timeout, or answers
 * without that mapping. Return: 0, -ENOENT (not started).
 * Context: the control loop's thread (an iothread posts to it).
 */
int vhost_server_iotlb_miss(struct vhost_server *s, unsigned index, uint64_t iova,
			    unsigned perm);

/* True while a frontend is connected. */
bool vhost_server_connected(const struct vhost_server *s);

/* Called by the device when a queue is broken: signals err_fd. Context: any. */
void vhost_vring_signal_err(struct vhost_vring *vr);

#endif
