/* SPDX-License-Identifier: MIT */
/*
 * vhost_server_internal.h - what the files of the vhost-user backend share
 * (not installed, not for other modules): the server and per-vring state,
 * handler results, and the functions each file offers the others.
 *
 *   vhost_server.c       the connection: listen, accept, receive, replies,
 *                        the paused/resumed message state machine, the stall
 *                        timer, the SIGBUS guard; create/destroy
 *   vhost_handlers.c     the message handlers and the dispatch table
 *   vhost_vring.c        vring lifecycle: translate, start, stop, reset, fd
 *                        swaps, committing a new memory table
 *   vhost_inflight.c     INFLIGHT_SHMFD: the shared inflight area
 *   vhost_server_log.c   dirty logging: SET_LOG_BASE, LOG_ALL on running rings
 *
 * Context: everything here runs in the control loop's thread.
 *
 * States, all in one place:
 *
 * - The connection, s->conn_state (enum vhost_conn_state below): NONE (no
 *   frontend), READING, PAUSED (a handler waits for queue stops), CLOSING
 *   (the rings are stopping before the teardown).
 * - A vring: stopped (!vr->started), running (vr->started), or stopping
 *   (vr->started and vpriv.stopping: queue_stop was called, its done() not
 *   yet). s->stops_pending counts the stopping rings.
 * - Re-run handlers: a message that needs queues stopped (GET_VRING_BASE,
 *   disable, kick change, memory changes that orphan a ring, inflight
 *   area, RESET_OWNER) calls vring_stop / vring_stop_all and returns
 *   H_PENDING. The connection then stops reading the socket (PAUSED) and
 *   calls the same handler with the same message again once the last
 *   done() arrived (server_resume); until then no other message runs.
 *   Handlers are written to be re-run: the first run checks and stops,
 *   a later run finds the rings stopped and acts. s->in_dispatch is set
 *   while a handler runs, so a done() called synchronously does not
 *   re-enter it.
 * - Memory messages (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG) have two
 *   steps and may be re-run between them: step 1 builds the new table
 *   into s->next_mem from the message's fds (once: mem_table_built() is
 *   true from then on); step 2, mem_commit, stops what must stop
 *   (H_PENDING) and then swaps the table in and clears next_mem.
 * - Who turns guest kicks back on once a ring runs: docs/architecture.md,
 *   "Who turns notifications back on".
 */
#ifndef VBLK_VHOST_SERVER_INTERNAL_H
#define VBLK_VHOST_SERVER_INTERNAL_H

#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "common/compiler.h"
#include "common/log.h"
#include "common/sock.h"
#include "vhost/vhost.h"
#include "vhost/vhost_backend_req.h"
#include "vhost/vhost_log.h"
#include "vhost/vhost_msg.h"
#include "gmem/iotlb.h"

/* Handler results besides 0 (done, ack success) and -errno (close). */
#define H_NACK    1   /* refused, state unchanged: ack with failure */
#define H_PENDING 2   /* queue stops issued: re-run when all are done */

/* Where the connection stands; see "States" above. */
enum vhost_conn_state {
	CONN_NONE,          /* no frontend (conn_fd -1): listening, if we listen */
	CONN_READING,       /* reading and dispatching messages */
	CONN_PAUSED,        /* rx.msg's handler returned H_PENDING: not reading
			     * until every stop is done, then it re-runs */
	CONN_CLOSING,       /* stopping every ring before the teardown */
};

/* Per-vring state that is vhost's business only. */
struct vring_priv {
	struct vhost_server *s;
	bool kick_set;      /* SET_VRING_KICK seen (an fd or NOFD = polling) */
	bool addr_set;      /* SET_VRING_ADDR seen */
	bool stopping;      /* queue_stop issued, done() not yet called */
	bool num_refused;   /* SET_VRING_NUM refused without an ack: broken until a valid one */
	bool miss_pending;  /* an IOTLB miss for this ring awaits its answer */
	bool miss_answered; /* an update covering it came meanwhile */
	uint64_t miss_iova; /* what it asked for */
	unsigned miss_perm;
	bool miss_queued;   /* another miss waits for that answer */
	uint64_t next_iova;
	unsigned next_perm;
	uint16_t used_base; /* packed: used index | wrap << 15 (base's high half) */
};

struct vhost_server {
	struct loop *ctrl;
	struct vhost_dev_info info;
	const struct vhost_dev_ops *ops;
	void *opaque;
	char name[96];              /* for logs: the path or "fd N" */

	int listen_fd;              /* -1 when given a connected fd */
	bool listen_watched;
	struct sock_file file;      /* socket file we created (path NULL: none) */

	int conn_fd;                /* -1: no frontend */
	int timer_fd;               /* times a partial message or an unsent reply */
	bool timer_watched, timer_armed;
	bool conn_watched;          /* conn_fd is registered on ctrl */
	enum vhost_conn_state conn_state;
	bool destroying;
	sem_t *destroyed;           /* posted once freed (cross-thread destroy) */

	/* per connection */
	uint64_t features;          /* acked by SET_FEATURES */
	uint64_t protocol_features;
	bool owner;
	struct gmem *mem;
	struct gmem *next_mem;      /* built by a memory message awaiting stops */
	struct vhost_vring *vrings;
	struct vring_priv *vpriv;
	bool features_set;          /* SET_FEATURES seen this session */
	/* SET_INFLIGHT_FD: the shared inflight area, one region per queue */
	int inflight_fd;
	int inflight_slot;          /* gmem_guard_watch slot of the area, or -1 */
	void *inflight;
	uint64_t inflight_size;
	unsigned inflight_nq, inflight_qsize;
	struct gmem_log *log;       /* SET_LOG_BASE: the dirty log, or NULL */
	struct vhost_backend_req *breq; /* SET_BACKEND_REQ_FD: the backend channel */
	/* ACCESS_PLATFORM (vhost_iotlb.c): what IOTLB messages said, and the
	 * view of it through s->mem that running rings use (NULL: none yet) */
	struct iotlb *iotlb;
	struct gmem *view;

	struct vhost_msg_rx rx;
	struct vhost_msg_tx tx;     /* a reply the socket did not take yet */
	unsigned long progress;     /* messages dispatched + replies drained (stall timer) */
	unsigned stops_pending;
	bool in_dispatch;           /* done() called synchronously: don't resume */
	bool broken;                /* the device failed us: close after this message */
	/* SIGBUS in this connection's guest memory or inflight area */
	struct gmem_guard *guard;
	bool guard_watched;
};

/* ---- small helpers ---------------------------------------------------- */

static inline uint64_t offered_features(const struct vhost_server *s)
{
	/* What the device offers. ACCESS_PLATFORM (the IOTLB) and dirty
	 * logging (LOG_ALL) only if the device says so in info.features. */
	return s->info.features | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

static inline bool has_feature(const struct vhost_server *s, unsigned bit)
{
	return s->features & (1ull << bit);
}

/* Ring and buffer addresses are IOVAs, translated through the IOTLB. */
static inline bool iotlb_on(const struct vhost_server *s)
{
	return has_feature(s, VIRTIO_F_ACCESS_PLATFORM);
}

static inline bool reply_ack_on(const struct vhost_server *s)
{
	return s->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
}

static inline bool is_pow2(unsigned x)
{
	return x && !(x & (x - 1));
}

static inline void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- vrings ----------------------------------------------------------- */

static inline bool vring_is_packed(const struct vhost_server *s)
{
	return has_feature(s, VIRTIO_F_RING_PACKED);
}

static inline bool vring_enabled(const struct vhost_server *s, const struct vhost_vring *vr)
{
	/* Without protocol features a ring is enabled from the start. */
	return vr->enabled || !has_feature(s, VHOST_USER_F_PROTOCOL_FEATURES);
}

/* A frontend is connected and not being closed. */
static inline bool conn_live(const struct vhost_server *s)
{
	return s->conn_state == CONN_READING || s->conn_state == CONN_PAUSED;
}

/* A memory message's step 1 (the new table in s->next_mem) is done. */
static inline bool mem_table_built(const struct vhost_server *s)
{
	return s->next_mem != NULL;
}

/* ---- dirty logging -------------------------------------------------- */

static inline bool log_all_on(const struct vhost_server *s)
{
	return has_feature(s, VHOST_F_LOG_ALL);
}

/* ---- shared between the files ------------------------------------------ */

/* Rate-limited warning about what the frontend sent, one limiter per site. */
#define bad(s, ...) do { \
		static struct log_ratelimit rl__; \
		server_warn(&rl__, (s), __VA_ARGS__); \
	} while (0)

void server_warn(struct log_ratelimit *rl, const struct vhost_server *s,
		 const char *fmt, ...) PRINTF(3, 4);

/* vhost_server.c */
int send_msg_fd(struct vhost_server *s, uint32_t request, const void *payload,
		uint32_t size, int fd);
int send_reply(struct vhost_server *s, uint32_t request, const void *payload, uint32_t size);
int reply_u64(struct vhost_server *s, uint32_t request, uint64_t v);
void server_resume(struct vhost_server *s);

/* vhost_handlers.c */
int vhost_server_handle(struct vhost_server *s, struct vhost_msg *m);
void vring_fd_probe(void);

/* vhost_vring.c */
struct ring_ptrs {
	void *desc, *driver, *device;
};

int vring_translate(const struct vhost_server *s, const struct gmem *space,
		    const struct vhost_vring *vr, bool packed, struct ring_ptrs *p,
		    uint64_t *fault, unsigned *perm);
/* Move started rings to @space (a table or view; a reference is taken
 * per ring); rings it lacks are stopped first (H_PENDING). */
int vring_space_switch(struct vhost_server *s, struct gmem *space, const char *what);
void vring_try_start(struct vhost_server *s, struct vhost_vring *vr);
void vring_try_start_all(struct vhost_server *s);
void vring_stop(struct vhost_server *s, struct vhost_vring *vr);
void vring_reset(struct vhost_server *s, unsigned i);
int vring_stop_all(struct vhost_server *s);
int vring_set_queue_fd(struct vhost_server *s, struct vhost_vring *vr, int *field, int fd);
int mem_commit(struct vhost_server *s);

/* vhost_inflight.c */
void inflight_unmap(struct vhost_server *s);
int h_get_inflight_fd(struct vhost_server *s, struct vhost_msg *m);
int h_set_inflight_fd(struct vhost_server *s, struct vhost_msg *m);

/* vhost_iotlb.c */
/* The address space rings use: s->mem, or with ACCESS_PLATFORM the IOTLB
 * view (built on first use; NULL if that failed). */
struct gmem *vring_space(struct vhost_server *s);
int vhost_iotlb_view_of(struct vhost_server *s, const struct gmem *mem, struct gmem **out);
void vhost_iotlb_miss(struct vhost_server *s, unsigned index, uint64_t iova, unsigned perm);
int h_iotlb_msg(struct vhost_server *s, struct vhost_msg *m);
/* Forget the IOTLB (disconnect, RESET_OWNER). */
void vhost_iotlb_reset(struct vhost_server *s);
/* After GET_VRING_BASE: with no ring left running, forget the IOTLB. */
void vhost_iotlb_device_stopped(struct vhost_server *s);

/* vhost_server_log.c */
int log_apply(struct vhost_server *s, struct gmem_log *log, bool on, struct vhost_vring *only);
int h_set_log_base(struct vhost_server *s, struct vhost_msg *m);

#endif
