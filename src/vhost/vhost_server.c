/* SPDX-License-Identifier: MIT */
/*
 * vhost_server.c - the backend side of vhost-user: one listening socket,
 * one frontend at a time, negotiated features, the memory table and the
 * vring configuration. Every message is checked (format in vhost_msg.c,
 * state and indices here) before it acts; a malformed one closes the
 * connection, never the daemon. Reaches the device only through
 * struct vhost_dev_ops; knows nothing about virtio-blk.
 *
 * Context: everything runs in the control loop's thread. Messages that
 * need a queue stopped (GET_VRING_BASE, disable, kick change, memory
 * changes that orphan a ring, RESET_OWNER, disconnect) call queue_stop,
 * stop reading the socket, and re-run the handler once every done()
 * arrived; handlers are written to be re-run.
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

/* Handler results besides 0 (done, ack success) and -errno (close). */
#define H_NACK    1   /* refused, state unchanged: ack with failure */
#define H_PENDING 2   /* queue stops issued: re-run when all are done */

#define LISTEN_BACKLOG 128

/* Protocol features this backend implements. */
#define SERVER_PROTOCOL_FEATURES \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) | \
	 (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
	 (1ull << VHOST_USER_PROTOCOL_F_CONFIG) | \
	 (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | \
	 (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) | \
	 (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD) | \
	 (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ))

/* Per-vring state that is vhost's business only. */
struct vring_priv {
	struct vhost_server *s;
	bool kick_set;      /* SET_VRING_KICK seen (an fd or NOFD = polling) */
	bool addr_set;      /* SET_VRING_ADDR seen */
	bool stopping;      /* queue_stop issued, done() not yet called */
	bool num_refused;   /* SET_VRING_NUM refused without an ack: broken until a valid one */
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
	bool closing;               /* waiting for stops before tearing down */
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

	struct vhost_msg_rx rx;
	struct vhost_msg_tx tx;     /* a reply the socket did not take yet */
	bool msg_pending;           /* rx.msg waits for queue stops */
	unsigned long progress;     /* messages dispatched + replies drained (stall timer) */
	unsigned stops_pending;
	bool in_dispatch;           /* done() called synchronously: don't resume */
	bool broken;                /* the device failed us: close after this message */
	/* SIGBUS in this connection's guest memory or inflight area */
	struct gmem_guard *guard;
	bool guard_watched;
};

static void conn_close(struct vhost_server *s);
static void inflight_unmap(struct vhost_server *s);
static void server_resume(struct vhost_server *s);
static void listen_cb(void *opaque, uint32_t events);
static void stall_timer_update(struct vhost_server *s);
static void stall_timer_restart(struct vhost_server *s);

/* ---- small helpers ---------------------------------------------------- */

static uint64_t offered_features(const struct vhost_server *s)
{
	/* No IOTLB: never offer what needs it. Dirty logging (LOG_ALL) only
	 * if the device logs its own writes, and says so in info.features. */
	uint64_t f = s->info.features | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);

	f &= ~(1ull << VIRTIO_F_ACCESS_PLATFORM);
	return f;
}

static bool has_feature(const struct vhost_server *s, unsigned bit)
{
	return s->features & (1ull << bit);
}

static bool reply_ack_on(const struct vhost_server *s)
{
	return s->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
}

static bool is_pow2(unsigned x)
{
	return x && !(x & (x - 1));
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Rate-limited warning about what the frontend sent, one limiter per site. */
#define bad(s, ...) do { \
		static struct log_ratelimit rl__; \
		server_warn(&rl__, (s), __VA_ARGS__); \
	} while (0)

static void server_warn(struct log_ratelimit *rl, const struct vhost_server *s,
			const char *fmt, ...) PRINTF(3, 4);

static void server_warn(struct log_ratelimit *rl, const struct vhost_server *s,
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
static int send_msg_fd(struct vhost_server *s, uint32_t request, const void *payload,
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

static int send_reply(struct vhost_server *s, uint32_t request, const void *payload,
		      uint32_t size)
{
	return send_msg_fd(s, request, payload, size, -1);
}

static int reply_u64(struct vhost_server *s, uint32_t request, uint64_t v)
{
	return send_reply(s, request, &v, sizeof(v));
}

/* ---- vrings ----------------------------------------------------------- */

static bool vring_is_packed(const struct vhost_server *s)
{
	return has_feature(s, VIRTIO_F_RING_PACKED);
}

static bool vring_enabled(const struct vhost_server *s, const struct vhost_vring *vr)
{
	/* Without protocol features a ring is enabled from the start. */
	return vr->enabled || !has_feature(s, VHOST_USER_F_PROTOCOL_FEATURES);
}

struct ring_ptrs {
	void *desc, *driver, *device;
};

/*
 * Host addresses of vr's three areas in @mem, each checked for size and
 * alignment (split: 16/2/4, packed: 16/4/4).
 */
static int vring_translate(const struct gmem *mem, const struct vhost_vring *vr, bool packed,
			   struct ring_ptrs *p)
{
	uint64_t dsz, drsz, dvsz;
	uintptr_t drv_align = packed ? 4 : 2;

	virtq_area_sizes(vr->num, packed, &dsz, &drsz, &dvsz);
	p->desc = gmem_uva_ptr(mem, vr->desc_uva, dsz);
	p->driver = gmem_uva_ptr(mem, vr->avail_uva, drsz);
	p->device = gmem_uva_ptr(mem, vr->used_uva, dvsz);
	if (!p->desc || !p->driver || !p->device)
		return -EFAULT;
	if (((uintptr_t)p->desc & 15) || ((uintptr_t)p->driver & (drv_align - 1)) ||
	    ((uintptr_t)p->device & 3))
		return -EINVAL;
	return 0;
}

/* ---- dirty logging (vhost_log.c) -------------------------------------- */

static bool log_all_on(const struct vhost_server *s)
{
	return has_feature(s, VHOST_F_LOG_ALL);
}

/* Running rings (all, or only @only) take @log's logging; -EPROTO, nothing
 * changed, if one's areas are outside it. */
static int log_apply(struct vhost_server *s, struct gmem_log *log, bool on,
		     struct vhost_vring *only)
{
	const char *why;
	unsigned i;

	if (vhost_log_apply(s->vrings, s->info.num_queues, only, log, on, s->mem, s->ops,
			    s->opaque, &i, &why)) {
		bad(s, "vring %u: %s", i, why);
		return -EPROTO;
	}
	return 0;
}

/* Start vr if it is fully configured, enabled and not running. */
static void vring_try_start(struct vhost_server *s, struct vhost_vring *vr)
{
	struct vring_priv *p = &s->vpriv[vr->index];
	bool packed = vring_is_packed(s);
	struct virtq_config cfg;
	struct ring_ptrs rp;
	const char *why;
	int ret;

	if (vr->started || !p->kick_set || !p->addr_set || !vr->num || !s->mem ||
	    !vring_enabled(s, vr))
		return;
	ret = vring_translate(s->mem, vr, packed, &rp);
	if (ret) {
		bad(s, "vring %u: ring areas %s; not started", vr->index,
		    ret == -EFAULT ? "not in guest memory" : "misaligned");
		return;
	}
	cfg = (struct virtq_config){
		.num = vr->num,
		.packed = packed,
		.event_idx = has_feature(s, VIRTIO_RING_F_EVENT_IDX),
		.indirect = has_feature(s, VIRTIO_RING_F_INDIRECT_DESC),
		.desc = rp.desc,
		.driver = rp.driver,
		.device = rp.device,
		.base = vr->base,
	};
	if (s->inflight) {
		uint64_t rsz = virtq_inflight_size(s->inflight_qsize, packed);

		/* The region must fit, and cover every descriptor. */
		if (vr->index >= s->inflight_nq || vr->num > s->inflight_qsize ||
		    (uint64_t)(vr->index + 1) * rsz > s->inflight_size) {
			bad(s, "vring %u: inflight area (%u queues of %u) does not fit the ring "
			    "(size %u); not started", vr->index, s->inflight_nq,
			    s->inflight_qsize, vr->num);
			return;
		}
		cfg.inflight = (uint8_t *)s->inflight + vr->index * rsz;
		cfg.inflight_num = s->inflight_qsize;
	}
	virtq_fini(&vr->vq);
	ret = virtq_init(&vr->vq, &cfg);
	if (ret) {
		bad(s, "vring %u: invalid ring (num %u, base %u); not started", vr->index,
		    vr->num, vr->base);
		return;
	}
	if (vhost_log_ring_start(s->log, log_all_on(s), s->mem, vr, packed, &why)) {
		bad(s, "vring %u: %s; not started", vr->index, why);
		virtq_fini(&vr->vq);
		return;
	}
	vr->mem = gmem_get(s->mem);
	vr->started = true;
	ret = s->ops->queue_start(s->opaque, vr);
	if (ret) {
		log_rl(LOG_ERR, "vhost %s: vring %u: device failed to start: %s", s->name,
		       vr->index, strerror(-ret));
		if (ret == -ETIMEDOUT)
			s->broken = true;   /* its thread is stuck: close */
		vhost_log_ring_stop(vr);
		virtq_fini(&vr->vq);
		vr->started = false;
		gmem_put(vr->mem);
		vr->mem = NULL;
	}
}

static void vring_try_start_all(struct vhost_server *s)
{
	for (unsigned i = 0; i < s->info.num_queues; i++)
		vring_try_start(s, &s->vrings[i]);
}

static void stop_done(void *arg)
{
	struct vring_priv *p = arg;
	struct vhost_server *s = p->s;
	struct vhost_vring *vr = &s->vrings[p - s->vpriv];

	/* The device has let go of the (queue) fields. */
	vr->base = virtq_get_base(&vr->vq);
	p->used_base = (uint16_t)((vr->vq.used_idx & 0x7fff) |
				  ((unsigned)vr->vq.used_wrap_counter << 15));
	vhost_log_ring_stop(vr);
	virtq_fini(&vr->vq);
	vr->started = false;
	gmem_put(vr->mem);
	vr->mem = NULL;
	p->stopping = false;
	s->stops_pending--;
	if (!s->stops_pending && !s->in_dispatch)
		server_resume(s);
}

/* Ask the device to stop vr; done() may run before this returns. */
static void vring_stop(struct vhost_server *s, struct vhost_vring *vr)
{
	struct vring_priv *p = &s->vpriv[vr->index];

	if (!vr->started || p->stopping)
		return;
	p->stopping = true;
	s->stops_pending++;
	s->ops->queue_stop(s->opaque, vr, stop_done, p);
}

/* Forget a stopped ring's configuration and close its fds. */
static void vring_reset(struct vhost_server *s, unsigned i)
{
	struct vhost_vring *vr = &s->vrings[i];

	close_fd(&vr->kick_fd);
	close_fd(&vr->call_fd);
	close_fd(&vr->err_fd);
	gmem_put(vr->mem);
	vhost_log_ring_stop(vr);
	virtq_fini(&vr->vq);
	memset(vr, 0, sizeof(*vr));
	vr->index = i;
	vr->kick_fd = vr->call_fd = vr->err_fd = -1;
	s->vpriv[i] = (struct vring_priv){ .s = s };
}

/* Issue a stop for every started ring. Return: H_PENDING if any. */
static int stop_all(struct vhost_server *s)
{
	bool any = false;

	for (unsigned i = 0; i < s->info.num_queues; i++) {
		if (s->vrings[i].started) {
			vring_stop(s, &s->vrings[i]);
			any = true;
		}
	}
	return any ? H_PENDING : 0;
}

struct fd_swap {
	int *field;
	int fd;
};

static void fd_swap_fn(void *arg)
{
	struct fd_swap *w = arg;
	int old = *w->field;

	*w->field = w->fd;
	w->fd = old;
}

/*
 * Replace a (queue) fd field; in the queue's context if the ring runs.
 * Return: 0, or -EIO if that context did not answer (close).
 */
static int vring_set_queue_fd(struct vhost_server *s, struct vhost_vring *vr, int *field, int fd)
{
	struct fd_swap w = { .field = field, .fd = fd };
	int ret = 0;

	if (!vr->started)
		fd_swap_fn(&w);
	else if (s->ops->queue_exec(s->opaque, vr, fd_swap_fn, &w))
		ret = -EIO;     /* not swapped: w.fd is still the new fd */
	close_fd(&w.fd);
	return ret;
}

struct mem_swap {
	struct vhost_vring *vr;
	struct gmem *mem;
	struct ring_ptrs rp;
};

static void mem_swap_fn(void *arg)
{
	struct mem_swap *w = arg;
	struct vhost_vring *vr = w->vr;
	struct gmem *old = vr->mem;

	vr->mem = w->mem;
	if (vr->vq.packed) {
		vr->vq.pdesc = w->rp.desc;
		vr->vq.driver_event = w->rp.driver;
		vr->vq.device_event = w->rp.device;
	} else {
		vr->vq.desc = w->rp.desc;
		vr->vq.avail = w->rp.driver;
		vr->vq.used = w->rp.device;
	}
	w->mem = old;
}

/*
 * Make s->next_mem the memory table. If it drops a region, every started
 * ring is stopped (drained) first; else started rings whose areas do not
 * translate in it are stopped (H_PENDING either way; the caller re-runs
 * us); the others switch table and ring pointers inside their queue
 * context.
 */
/* Does @next lack a region of @old (same gpa, size and uva)? */
static bool mem_drops_region(const struct gmem *old, const struct gmem *next)
{
	for (unsigned i = 0; i < gmem_nregions(old); i++) {
		const struct gmem_region_desc *o = gmem_region(old, i);
		bool kept = false;

		for (unsigned j = 0; !kept && j < gmem_nregions(next); j++) {
			const struct gmem_region_desc *n = gmem_region(next, j);

			kept = n->gpa == o->gpa && n->size == o->size && n->uva == o->uva;
		}
		if (!kept)
			return true;
	}
	return false;
}

static int mem_commit(struct vhost_server *s)
{
	bool stopping = false;
	unsigned i;

	/*
	 * A region goes away (REM_MEM_REG, or a SET_MEM_TABLE without it):
	 * once we answer, the frontend may reuse that memory, but requests in
	 * flight may still write into it. Stop every ring first: a stop
	 * completes only when its last request has (like GET_VRING_BASE). The
	 * rings restart with the new table where they stopped.
	 */
	if (mem_drops_region(s->mem, s->next_mem) && stop_all(s) == H_PENDING)
		return H_PENDING;

	for (i = 0; i < s->info.num_queues; i++) {
		struct vhost_vring *vr = &s->vrings[i];
		struct ring_ptrs rp;

		if (!vr->started)
			continue;
		if (vring_translate(s->next_mem, vr, vr->vq.packed, &rp)) {
			bad(s, "vring %u: ring not in the new memory table; stopping it", i);
			vring_stop(s, vr);
			stopping = true;
		}
	}
	if (stopping)
		return H_PENDING;

	for (i = 0; i < s->info.num_queues; i++) {
		struct vhost_vring *vr = &s->vrings[i];
		struct mem_swap w = { .vr = vr };

		if (!vr->started)
			continue;
		/* Checked above; the table cannot have changed since. */
		vring_translate(s->next_mem, vr, vr->vq.packed, &w.rp);
		w.mem = gmem_get(s->next_mem);
		/* Not swapped: the ring keeps its old table (and mappings) until
		 * the connection, marked broken, is closed. */
		if (s->ops->queue_exec(s->opaque, vr, mem_swap_fn, &w))
			s->broken = true;
		gmem_put(w.mem);
	}
	gmem_put(s->mem);
	s->mem = s->next_mem;
	s->next_mem = NULL;
	/* Ring addresses in guest physical space may have moved. */
	if (s->log && log_all_on(s) && log_apply(s, s->log, true, NULL))
		bad(s, "dirty logging of the rings not updated for the new memory table");
	vring_try_start_all(s);
	return 0;
}

/* ---- message handlers ---------------------------------------------------
 * Each returns 0, H_NACK, H_PENDING (re-run later) or -errno (close). */

static struct vhost_vring *vring_of(struct vhost_server *s, uint64_t index, const char *req)
{
	if (index >= s->info.num_queues) {
		bad(s, "%s: vring index %llu out of range", req,
		    (unsigned long long)index);
		return NULL;
	}
	return &s->vrings[index];
}

static int h_get_features(struct vhost_server *s, struct vhost_msg *m)
{
	return reply_u64(s, m->hdr.request, offered_features(s));
}

static int h_set_features(struct vhost_server *s, struct vhost_msg *m)
{
	uint64_t f = m->payload.u64;
	bool running = false;

	if (f & ~offered_features(s)) {
		bad(s, "SET_FEATURES: bits %#llx were not offered",
		    (unsigned long long)(f & ~offered_features(s)));
		return -EPROTO;
	}
	for (unsigned i = 0; i < s->info.num_queues; i++)
		running |= s->vrings[i].started;
	if (running) {
		if (f == s->features)
			return 0;
		/* Migration turns dirty logging on and off on a running device. */
		if ((f ^ s->features) == (1ull << VHOST_F_LOG_ALL)) {
			if (log_apply(s, s->log, f & (1ull << VHOST_F_LOG_ALL), NULL))
				return -EPROTO;
			s->features = f;
			return 0;
		}
		bad(s, "SET_FEATURES: features changed while rings run");
		return -EPROTO;
	}
	s->features = f;
	s->features_set = true;
	if (s->ops->set_features)
		s->ops->set_features(s->opaque, f);
	vring_try_start_all(s);
	return 0;
}

static int h_get_protocol_features(struct vhost_server *s, struct vhost_msg *m)
{
	return reply_u64(s, m->hdr.request, SERVER_PROTOCOL_FEATURES);
}

static int h_set_protocol_features(struct vhost_server *s, struct vhost_msg *m)
{
	if (m->payload.u64 & ~SERVER_PROTOCOL_FEATURES) {
		bad(s, "SET_PROTOCOL_FEATURES: bits %#llx were not offered",
		    (unsigned long long)(m->payload.u64 & ~SERVER_PROTOCOL_FEATURES));
		return -EPROTO;
	}
	s->protocol_features = m->payload.u64;
	return 0;
}

static int h_set_owner(struct vhost_server *s, struct vhost_msg *m)
{
	s->owner = true;
	return 0;
}

/* Deprecated; handled as "stop every ring and forget the session state"
 * (protocol features are kept so the ack still works). */
static int h_reset_owner(struct vhost_server *s, struct vhost_msg *m)
{
	if (stop_all(s) == H_PENDING)
		return H_PENDING;
	for (unsigned i = 0; i < s->info.num_queues; i++)
		vring_reset(s, i);
	gmem_put(s->mem);
	s->mem = NULL;
	s->features = 0;
	s->features_set = false;
	s->owner = false;
	inflight_unmap(s);
	if (s->ops->reset)
		s->ops->reset(s->opaque);
	gmem_log_put(s->log);
	s->log = NULL;
	return 0;
}

static int h_set_backend_req_fd(struct vhost_server *s, struct vhost_msg *m)
{
	int ret;

	if (!(s->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ))) {
		bad(s, "SET_BACKEND_REQ_FD: protocol feature BACKEND_REQ not negotiated");
		return -EPROTO;
	}
	ret = vhost_backend_req_set_fd(s->breq, vhost_msg_take_fd(m, 0), reply_ack_on(s));
	if (ret) {
		bad(s, "SET_BACKEND_REQ_FD: %s", ret == -ENOTSOCK ? "not a socket" : strerror(-ret));
		return -EPROTO;
	}
	return 0;
}

static int h_get_queue_num(struct vhost_server *s, struct vhost_msg *m)
{
	return reply_u64(s, m->hdr.request, s->info.num_queues);
}

static int h_get_max_mem_slots(struct vhost_server *s, struct vhost_msg *m)
{
	return reply_u64(s, m->hdr.request, GMEM_MAX_REGIONS);
}

static void region_from_wire(struct gmem_region_desc *d, const struct vhost_msg_mem_region *w)
{
	d->gpa = w->gpa;
	d->size = w->size;
	d->uva = w->uva;
	d->mmap_offset = w->mmap_offset;
}

/*
 * Map one region into a new snapshot of @old. A region reaching past the
 * end of its file would SIGBUS on access: refuse it up front.
 */
static int region_add(struct vhost_server *s, const struct gmem *old,
		      const struct gmem_region_desc *d, int fd, struct gmem **out)
{
	struct stat st;
	int ret;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) &&
	    (d->mmap_offset > (uint64_t)st.st_size ||
	     d->size > (uint64_t)st.st_size - d->mmap_offset)) {
		bad(s, "memory region gpa %#llx size %#llx beyond its file (%lld bytes)",
		    (unsigned long long)d->gpa, (unsigned long long)d->size,
		    (long long)st.st_size);
		return -EINVAL;
	}
	ret = gmem_add_guarded(old, d, fd, s->guard, out);
	if (ret)
		bad(s, "memory region gpa %#llx size %#llx uva %#llx: %s",
		    (unsigned long long)d->gpa, (unsigned long long)d->size,
		    (unsigned long long)d->uva, strerror(-ret));
	return ret;
}

static int h_set_mem_table(struct vhost_server *s, struct vhost_msg *m)
{
	const struct vhost_msg_memory *mt = &m->payload.memory;
	struct gmem *cur = NULL, *next;
	int ret;

	if (!s->next_mem) {
		for (unsigned i = 0; i < mt->nregions; i++) {
			struct gmem_region_desc d;

			region_from_wire(&d, &mt->regions[i]);
			ret = region_add(s, cur, &d, m->fds[i], &next);
			gmem_put(cur);
			if (ret)
				return -EPROTO;
			cur = next;
		}
		s->next_mem = cur;
	}
	return mem_commit(s);
}

static int h_add_mem_reg(struct vhost_server *s, struct vhost_msg *m)
{
	struct gmem_region_desc d;

	if (!s->next_mem) {
		region_from_wire(&d, &m->payload.mem_reg.region);
		if (region_add(s, s->mem, &d, m->fds[0], &s->next_mem))
			return -EPROTO;
	}
	return mem_commit(s);
}

static int h_rem_mem_reg(struct vhost_server *s, struct vhost_msg *m)
{
	struct gmem_region_desc d;
	int ret;

	/* A fd sent along (QEMU 7.2 does) is closed unused with the message. */
	if (!s->next_mem) {
		region_from_wire(&d, &m->payload.mem_reg.region);
		ret = gmem_remove(s->mem, &d, &s->next_mem);
		if (ret == -ENOENT) {
			bad(s, "REM_MEM_REG: no region gpa %#llx size %#llx uva %#llx",
			    (unsigned long long)d.gpa, (unsigned long long)d.size,
			    (unsigned long long)d.uva);
			return H_NACK;
		}
		if (ret)
			return ret;
	}
	return mem_commit(s);
}

/*
 * A ring size we cannot serve (0, above --queue-size, not a power of two
 * for a split ring) is the frontend's configuration, not corruption: the
 * connection stays. With REPLY_ACK and NEED_REPLY the frontend is told
 * (NACK, state unchanged). Without, it cannot be: the ring is left
 * without a size, so it never starts, and is reported broken on its
 * error eventfd (now, or once SET_VRING_ERR gives one); other rings serve
 * on, and a later valid SET_VRING_NUM repairs it.
 */
static int vring_refuse_num(struct vhost_server *s, struct vhost_msg *m, struct vhost_vring *vr)
{
	unsigned num = m->payload.state.num;

	if ((m->hdr.flags & VHOST_USER_NEED_REPLY_MASK) && reply_ack_on(s)) {
		bad(s, "SET_VRING_NUM: size %u for vring %u refused (largest %u%s)", num,
		    vr->index, s->info.max_queue_size,
		    vring_is_packed(s) ? "" : ", a power of two");
		return H_NACK;
	}
	bad(s, "SET_VRING_NUM: size %u for vring %u refused (largest %u%s); the ring is "
	    "broken until a valid size", num, vr->index, s->info.max_queue_size,
	    vring_is_packed(s) ? "" : ", a power of two");
	vr->num = 0;
	s->vpriv[vr->index].num_refused = true;
	vhost_vring_signal_err(vr);
	return 0;
}

static int h_set_vring_num(struct vhost_server *s, struct vhost_msg *m)
{
	struct vhost_vring *vr = vring_of(s, m->payload.state.index, "SET_VRING_NUM");
	unsigned num = m->payload.state.num;

	if (!vr)
		return -EPROTO;
	if (vr->started) {
		bad(s, "SET_VRING_NUM: vring %u is running", vr->index);
		return -EPROTO;
	}
	if (num == 0 || num > s->info.max_queue_size || num > VIRTQ_MAX_SIZE ||
	    (!vring_is_packed(s) && !is_pow2(num)))
		return vring_refuse_num(s, m, vr);
	vr->num = num;
	s->vpriv[vr->index].num_refused = false;
	vring_try_start(s, vr);
	return 0;
}

static int h_set_vring_addr(struct vhost_server *s, struct vhost_msg *m)
{
	const struct vhost_msg_vring_addr *a = &m->payload.addr;
	struct vhost_vring *vr = vring_of(s, a->index, "SET_VRING_ADDR");

	if (!vr)
		return -EPROTO;
	if (vr->started) {
		/* Only the log flag and address may change (migration). */
		uint32_t flags = vr->addr_flags;
		uint64_t log = vr->log_addr;

		if (a->desc != vr->desc_uva || a->avail != vr->avail_uva || a->used != vr->used_uva) {
			bad(s, "SET_VRING_ADDR: vring %u is running", vr->index);
			return -EPROTO;
		}
		vr->addr_flags = a->flags;
		vr->log_addr = a->log;
		if (log_apply(s, s->log, log_all_on(s), vr)) {
			vr->addr_flags = flags;
			vr->log_addr = log;
			return -EPROTO;
		}
		return 0;
	}
	/* The loosest alignment either layout allows; exact checks at start. */
	if ((a->desc & 15) || (a->avail & 1) || (a->used & 3)) {
		bad(s, "SET_VRING_ADDR: misaligned ring address for vring %u", vr->index);
		return -EPROTO;
	}
	vr->addr_flags = a->flags;
	vr->desc_uva = a->desc;
	vr->avail_uva = a->avail;
	vr->used_uva = a->used;
	vr->log_addr = a->log;
	s->vpriv[vr->index].addr_set = true;
	vring_try_start(s, vr);
	return 0;
}

static int h_set_vring_base(struct vhost_server *s, struct vhost_msg *m)
{
	struct vhost_vring *vr = vring_of(s, m->payload.state.index, "SET_VRING_BASE");
	uint32_t num = m->payload.state.num;

	if (!vr)
		return -EPROTO;
	if (vr->started) {
		bad(s, "SET_VRING_BASE: vring %u is running", vr->index);
		return -EPROTO;
	}
	if (vring_is_packed(s)) {
		/*
		 * Packed: bits 0-15 the avail index and wrap counter, bits 16-31
		 * the used ones (QEMU sends both). virtq resumes with used ==
		 * avail; with an inflight area the area decides instead (after a
		 * crash QEMU sends a stale position) and in-flight requests are
		 * resubmitted.
		 */
		uint16_t avail = (uint16_t)num, used = (uint16_t)(num >> 16);

		if (used != avail && !s->inflight)
			log_rl(LOG_WARN, "vhost %s: vring %u: resuming packed ring at avail %#x, "
			       "used %#x: in-flight requests are lost", s->name, vr->index,
			       avail, used);
		vr->base = avail;
		s->vpriv[vr->index].used_base = avail;
	} else {
		if (num > UINT16_MAX) {
			bad(s, "SET_VRING_BASE: base %u out of range", num);
			return -EPROTO;
		}
		vr->base = (uint16_t)num;
	}
	vring_try_start(s, vr);
	return 0;
}

static int h_get_vring_base(struct vhost_server *s, struct vhost_msg *m)
{
	struct vhost_vring *vr = vring_of(s, m->payload.state.index, "GET_VRING_BASE");
	struct vhost_msg_vring_state st;

	if (!vr)
		return -EPROTO;
	if (vr->started) {
		vring_stop(s, vr);
		return H_PENDING;
	}
	/* Stopped: it restarts only after a new SET_VRING_KICK. */
	close_fd(&vr->kick_fd);
	s->vpriv[vr->index].kick_set = false;
	st.index = vr->index;
	st.num = vr->base;
	if (vring_is_packed(s))
		st.num |= (uint32_t)s->vpriv[vr->index].used_base << 16;
	return send_reply(s, m->hdr.request, &st, sizeof(st));
}

/* st_dev and file type of anonymous inodes (eventfd), from a probe. */
static pthread_once_t anon_once = PTHREAD_ONCE_INIT;
static bool anon_known;
static dev_t anon_dev;
static mode_t anon_type;

static void anon_probe(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	struct stat st;

	if (fd >= 0 && fstat(fd, &st) == 0) {
		anon_dev = st.st_dev;
		anon_type = st.st_mode & S_IFMT;
		anon_known = true;
	}
	if (fd >= 0)
		close(fd);
}

/*
 * NULL if @fd can carry notifications: an eventfd (any anonymous inode:
 * an unreadable one fails at read time and stops its queue), a pipe or a
 * socket. Otherwise what it is: a regular file would never wake a kick
 * watcher (the ring would silently never run) and would fill up with
 * call writes; a directory or device cannot signal.
 */
static const char *notify_fd_refused(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return "not stat-able";
	switch (st.st_mode & S_IFMT) {
	case S_IFIFO:
	case S_IFSOCK:
		return NULL;
	default:
		break;
	}
	if (anon_known && st.st_dev == anon_dev && (st.st_mode & S_IFMT) == anon_type)
		return NULL;
	switch (st.st_mode & S_IFMT) {
	case S_IFREG: return "a regular file";
	case S_IFDIR: return "a directory";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	default: return "of an unknown kind";
	}
}

/*
 * The kick, call or error fd of a SET_VRING_* message (-1: none, polling),
 * made non-blocking. O_NONBLOCK belongs to the open file description, so
 * the frontend's copy changes too: QEMU's eventfds are non-blocking
 * already, and a frontend that shares a blocking one must not make a
 * thread of ours sleep in read() or write() for good (a call eventfd at
 * its maximum count, a kick eventfd shared by two queues). libvhost-user,
 * DPDK and rust-vmm use the fds as received; we do not trust them.
 * Return: the fd, -1, or -EPROTO (refused: close).
 */
static int vring_fd_take(struct vhost_server *s, struct vhost_msg *m, const char *req)
{
	int fd = vhost_msg_take_fd(m, 0);
	const char *kind;
	int fl;

	if (fd < 0)
		return -1;
	kind = notify_fd_refused(fd);
	if (kind) {
		bad(s, "%s: the fd is %s, not an eventfd, pipe or socket", req, kind);
		close(fd);
		return -EPROTO;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
		bad(s, "%s: cannot make the fd non-blocking: %s", req, strerror(errno));
		close(fd);
		return -EPROTO;
	}
	return fd;
}

static int h_set_vring_kick(struct vhost_server *s, struct vhost_msg *m)
{
	struct vhost_vring *vr = vring_of(s, m->payload.u64 & VHOST_USER_VRING_IDX_MASK,
					  "SET_VRING_KICK");
	int fd;

	if (!vr)
		return -EPROTO;
	/* The device watches the kick fd: restart the ring around a change. */
	if (vr->started) {
		vring_stop(s, vr);
		return H_PENDING;
	}
	fd = vring_fd_take(s, m, "SET_VRING_KICK");
	if (fd == -EPROTO)
		return -EPROTO;
	close_fd(&vr->kick_fd);
	vr->kick_fd = fd;
	s->vpriv[vr->index].kick_set = true;
	vring_try_start(s, vr);
	return 0;
}

static int h_set_vring_call(struct vhost_server *s, struct vhost_msg *m)
{
	struct vhost_vring *vr = vring_of(s, m->payload.u64 & VHOST_USER_VRING_IDX_MASK,
					  "SET_VRING_CALL");
	int fd;

	if (!vr)
		return -EPROTO;
	fd = vring_fd_take(s, m, "SET_VRING_CALL");
	if (fd == -EPROTO)
		return -EPROTO;
	return vring_set_queue_fd(s, vr, &vr->call_fd, fd);
}

static int h_set_vring_err(struct vhost_server *s, struct vhost_msg *m)
{
	struct vhost_vring *vr = vring_of(s, m->payload.u64 & VHOST_USER_VRING_IDX_MASK,
					  "SET_VRING_ERR");
	int fd, ret;

	if (!vr)
		return -EPROTO;
	fd = vring_fd_take(s, m, "SET_VRING_ERR");
	if (fd == -EPROTO)
		return -EPROTO;
	ret = vring_set_queue_fd(s, vr, &vr->err_fd, fd);
	if (ret)
		return ret;
	if (s->vpriv[vr->index].num_refused)
		vhost_vring_signal_err(vr);
	return 0;
}

static int h_set_vring_enable(struct vhost_server *s, struct vhost_msg *m)
{
	struct vhost_vring *vr = vring_of(s, m->payload.state.index, "SET_VRING_ENABLE");
	uint32_t on = m->payload.state.num;

	if (!vr)
		return -EPROTO;
	if (on > 1) {
		bad(s, "SET_VRING_ENABLE: invalid value %u", on);
		return -EPROTO;
	}
	if (!on && vr->started) {
		/* A disabled block queue is simply not served: stop it, keeping
		 * its base so that enabling resumes where it stopped. */
		vring_stop(s, vr);
		return H_PENDING;
	}
	vr->enabled = on;
	if (on)
		vring_try_start(s, vr);
	return 0;
}

/* ---- inflight tracking ------------------------------------------------- */

/* Largest area we create or map: every queue at the largest ring size. */
#define INFLIGHT_MAX_SIZE \
	((uint64_t)VHOST_MAX_QUEUES * (32 + 32 * (uint64_t)VIRTQ_MAX_SIZE + 64))

static bool inflight_on(const struct vhost_server *s)
{
	return s->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
}

static void inflight_unmap(struct vhost_server *s)
{
	gmem_guard_unwatch(s->inflight_slot);
	s->inflight_slot = -1;
	if (s->inflight)
		munmap(s->inflight, s->inflight_size);
	s->inflight = NULL;
	s->inflight_size = 0;
	s->inflight_nq = s->inflight_qsize = 0;
	close_fd(&s->inflight_fd);
}

/* Queue count and size of an inflight description within our limits? */
static bool inflight_geometry_ok(struct vhost_server *s, const struct vhost_msg_inflight *in,
				 const char *req)
{
	if (in->num_queues == 0 || in->num_queues > s->info.num_queues ||
	    in->queue_size == 0 || in->queue_size > s->info.max_queue_size) {
		bad(s, "%s: %u queues of %u entries: beyond %u queues of %u", req,
		    in->num_queues, in->queue_size, s->info.num_queues, s->info.max_queue_size);
		return false;
	}
	return true;
}

/*
 * Bytes the area needs. Before SET_FEATURES the ring format is unknown:
 * size for the larger (packed) layout if we offer it, so either fits.
 */
static uint64_t inflight_area_size(const struct vhost_server *s, unsigned nq, unsigned qsize,
				   bool creating)
{
	bool packed = vring_is_packed(s);

	if (!s->features_set)
		packed = creating && (offered_features(s) & (1ull << VIRTIO_F_RING_PACKED));
	return (uint64_t)nq * virtq_inflight_size(qsize, packed);
}


/*
 * A new, zeroed area in a sealed memfd (it can never shrink under a
 * mapping). We keep no reference: SET_INFLIGHT_FD hands it back. If we
 * cannot make one, mmap_size 0 tells the frontend to do without.
 */
static int h_get_inflight_fd(struct vhost_server *s, struct vhost_msg *m)
{
	struct vhost_msg_inflight in = m->payload.inflight, r = { 0 };
	long page = sysconf(_SC_PAGESIZE);
	uint64_t size;
	int fd;

	if (!inflight_on(s)) {
		bad(s, "GET_INFLIGHT_FD: protocol feature not negotiated");
		return -EPROTO;
	}
	if (!inflight_geometry_ok(s, &in, "GET_INFLIGHT_FD"))
		return -EPROTO;
	size = inflight_area_size(s, in.num_queues, in.queue_size, true);
	size = (size + (uint64_t)page - 1) & ~((uint64_t)page - 1);
	fd = memfd_create("vblk-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		log_rl(LOG_ERR, "vhost %s: GET_INFLIGHT_FD: creating the area: %s", s->name,
		       strerror(errno));
		if (fd >= 0)
			close(fd);
		return send_reply(s, m->hdr.request, &r, sizeof(r));
	}
	r.mmap_size = size;
	r.mmap_offset = 0;
	r.num_queues = in.num_queues;
	r.queue_size = in.queue_size;
	return send_msg_fd(s, m->hdr.request, &r, sizeof(r), fd);   /* takes fd */
}

/*
 * Map the area the frontend keeps for us (ours from GET_INFLIGHT_FD, or
 * one a previous instance of the backend filled before it died). Rings
 * pick their region up when they start; running ones are restarted.
 */
static int h_set_inflight_fd(struct vhost_server *s, struct vhost_msg *m)
{
	const struct vhost_msg_inflight *in = &m->payload.inflight;
	long page = sysconf(_SC_PAGESIZE);
	struct stat st;
	void *p;
	int fd = m->fds[0], seals, slot;

	if (!inflight_on(s)) {
		bad(s, "SET_INFLIGHT_FD: protocol feature not negotiated");
		return -EPROTO;
	}
	if (!inflight_geometry_ok(s, in, "SET_INFLIGHT_FD"))
		return -EPROTO;
	if (in->mmap_size < inflight_area_size(s, in->num_queues, in->queue_size, false) ||
	    in->mmap_size > INFLIGHT_MAX_SIZE || in->mmap_offset % (uint64_t)page ||
	    in->mmap_offset > INFLIGHT_MAX_SIZE) {
		bad(s, "SET_INFLIGHT_FD: size %#llx offset %#llx invalid for %u queues of %u",
		    (unsigned long long)in->mmap_size, (unsigned long long)in->mmap_offset,
		    in->num_queues, in->queue_size);
		return -EPROTO;
	}
	/* Mapping beyond the end of the file would SIGBUS on access. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    in->mmap_offset + in->mmap_size > (uint64_t)st.st_size) {
		bad(s, "SET_INFLIGHT_FD: fd is not a file of at least %#llx bytes",
		    (unsigned long long)(in->mmap_offset + in->mmap_size));
		return -EPROTO;
	}
	/* Rings hold pointers into the old area: stop them first. */
	if (stop_all(s) == H_PENDING)
		return H_PENDING;
	/* Ours is sealed already; seal a sealable one against shrinking. The
	 * guard covers the rest (a file truncated after this point). */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals >= 0 && !(seals & (F_SEAL_SHRINK | F_SEAL_SEAL)))
		(void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
	p = mmap(NULL, in->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)in->mmap_offset);
	if (p == MAP_FAILED) {
		bad(s, "SET_INFLIGHT_FD: mmap: %s", strerror(errno));
		return -EPROTO;
	}
	slot = gmem_guard_watch(s->guard, p, in->mmap_size);
	if (slot < 0) {
		bad(s, "SET_INFLIGHT_FD: cannot guard the area: %s", strerror(-slot));
		munmap(p, in->mmap_size);
		return -EPROTO;
	}
	inflight_unmap(s);
	s->inflight_slot = slot;
	s->inflight = p;
	s->inflight_size = in->mmap_size;
	s->inflight_nq = in->num_queues;
	s->inflight_qsize = in->queue_size;
	s->inflight_fd = vhost_msg_take_fd(m, 0);
	vring_try_start_all(s);
	return 0;
}

/*
 * The dirty log for migration (protocol feature LOG_SHMFD): checked,
 * mapped, then swapped into every running ring before the old one is
 * unmapped, so no iothread ever marks an unmapped log. QEMU waits for an
 * (empty) reply.
 */
static int h_set_log_base(struct vhost_server *s, struct vhost_msg *m)
{
	struct gmem_log *log, *old = s->log;
	const char *why;
	int ret;

	if (!(s->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD))) {
		bad(s, "SET_LOG_BASE: protocol feature LOG_SHMFD not negotiated");
		return -EPROTO;
	}
	ret = vhost_log_open(&m->payload.log, m->fds[0], s->mem, &log, &why);
	if (ret) {
		bad(s, "SET_LOG_BASE: size %#llx offset %#llx: %s",
		    (unsigned long long)m->payload.log.mmap_size,
		    (unsigned long long)m->payload.log.mmap_offset, why);
		return -EPROTO;
	}
	if (log_apply(s, log, log_all_on(s), NULL)) {
		gmem_log_put(log);
		return -EPROTO;
	}
	s->log = log;
	gmem_log_put(old);
	return send_reply(s, m->hdr.request, NULL, 0);
}

/* Config space access within the device's config size? */
static bool config_range_ok(const struct vhost_server *s, const struct vhost_msg_config *c)
{
	return c->offset <= s->info.config_size && c->size <= s->info.config_size - c->offset;
}

/*
 * Read [offset, offset + size) of the config space into @buf, the bytes
 * past the device's config size as zeroes. Frontends read more than the
 * device has: SPDK's virtio-user always asks for offset 0, size 256
 * (VHOST_USER_MAX_CONFIG_SIZE) and wants exactly that many bytes back.
 * Return: 0, -ERANGE beyond the message limit, or the device's -errno.
 */
static int config_read(const struct vhost_server *s, uint32_t offset, uint8_t *buf,
		       uint32_t size)
{
	uint32_t have;

	if (offset > VHOST_USER_MAX_CONFIG_SIZE || size > VHOST_USER_MAX_CONFIG_SIZE - offset)
		return -ERANGE;
	memset(buf, 0, size);
	have = offset < s->info.config_size ? MIN(size, s->info.config_size - offset) : 0;
	if (!have)
		return 0;
	if (!s->ops->get_config)
		return -ENOTSUP;
	return s->ops->get_config(s->opaque, offset, buf, have);
}

static int h_get_config(struct vhost_server *s, struct vhost_msg *m)
{
	const struct vhost_msg_config *c = &m->payload.config;
	union vhost_msg_payload r;
	int ret;

	memset(&r, 0, sizeof(r));
	r.config.offset = c->offset;
	r.config.size = c->size;
	r.config.flags = c->flags;
	ret = config_read(s, c->offset, r.config.payload, c->size);
	if (ret) {
		/* An empty payload is the protocol's way of saying "failed";
		 * the connection stays. */
		bad(s, "GET_CONFIG: offset %u size %u refused: %s", c->offset, c->size,
		    ret == -ERANGE ? "beyond the 256-byte message limit" : strerror(-ret));
		return send_reply(s, m->hdr.request, NULL, 0);
	}
	return send_reply(s, m->hdr.request, &r, VHOST_USER_CONFIG_HDR_SIZE + c->size);
}

static int h_set_config(struct vhost_server *s, struct vhost_msg *m)
{
	const struct vhost_msg_config *c = &m->payload.config;
	int ret = -ENOTSUP;

	/* The guest may reach this through its config writes: refuse, never
	 * close. */
	if (!config_range_ok(s, c) || c->flags > VHOST_SET_CONFIG_TYPE_MIGRATION) {
		bad(s, "SET_CONFIG: offset %u size %u flags %u refused", c->offset,
		    c->size, c->flags);
		return H_NACK;
	}
	if (s->ops->set_config)
		ret = s->ops->set_config(s->opaque, c->offset, c->payload, c->size);
	return ret ? H_NACK : 0;
}

typedef int (*handler_fn)(struct vhost_server *s, struct vhost_msg *m);

static const handler_fn handlers[VHOST_USER_REQUEST_MAX] = {
	[VHOST_USER_GET_FEATURES] = h_get_features,
	[VHOST_USER_SET_FEATURES] = h_set_features,
	[VHOST_USER_SET_OWNER] = h_set_owner,
	[VHOST_USER_RESET_OWNER] = h_reset_owner,
	[VHOST_USER_SET_LOG_BASE] = h_set_log_base,
	[VHOST_USER_SET_MEM_TABLE] = h_set_mem_table,
	[VHOST_USER_SET_VRING_NUM] = h_set_vring_num,
	[VHOST_USER_SET_VRING_ADDR] = h_set_vring_addr,
	[VHOST_USER_SET_VRING_BASE] = h_set_vring_base,
	[VHOST_USER_GET_VRING_BASE] = h_get_vring_base,
	[VHOST_USER_SET_VRING_KICK] = h_set_vring_kick,
	[VHOST_USER_SET_VRING_CALL] = h_set_vring_call,
	[VHOST_USER_SET_VRING_ERR] = h_set_vring_err,
	[VHOST_USER_GET_PROTOCOL_FEATURES] = h_get_protocol_features,
	[VHOST_USER_SET_PROTOCOL_FEATURES] = h_set_protocol_features,
	[VHOST_USER_GET_QUEUE_NUM] = h_get_queue_num,
	[VHOST_USER_SET_VRING_ENABLE] = h_set_vring_enable,
	[VHOST_USER_GET_CONFIG] = h_get_config,
	[VHOST_USER_SET_CONFIG] = h_set_config,
	[VHOST_USER_GET_MAX_MEM_SLOTS] = h_get_max_mem_slots,
	[VHOST_USER_ADD_MEM_REG] = h_add_mem_reg,
	[VHOST_USER_REM_MEM_REG] = h_rem_mem_reg,
	[VHOST_USER_GET_INFLIGHT_FD] = h_get_inflight_fd,
	[VHOST_USER_SET_INFLIGHT_FD] = h_set_inflight_fd,
	[VHOST_USER_SET_BACKEND_REQ_FD] = h_set_backend_req_fd,
};

static int handle(struct vhost_server *s, struct vhost_msg *m)
{
	uint32_t req = m->hdr.request;
	handler_fn h = req < VHOST_USER_REQUEST_MAX ? handlers[req] : NULL;

	if (h)
		return h(s, m);
	/* Not implemented: refuse politely if the frontend asked for an
	 * answer; otherwise it might wait for a reply we cannot know. */
	bad(s, "unsupported request %u", req);
	if ((m->hdr.flags & VHOST_USER_NEED_REPLY_MASK) && reply_ack_on(s))
		return H_NACK;
	return -EPROTO;
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

	if (s->conn_watched || s->conn_fd < 0 || s->closing)
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
		r = handle(s, &s->rx.msg);
	} while (r == H_PENDING && !s->stops_pending);
	s->in_dispatch = false;
	if (r == H_PENDING) {
		/* No more messages until the device has stopped the queues. */
		s->msg_pending = true;
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
	return s->conn_fd >= 0 && !s->closing && !s->msg_pending &&
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
	if (s->conn_fd < 0 || s->closing)
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

	if (!n || s->conn_fd < 0 || s->closing)
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
	s->msg_pending = false;
	stall_timer_update(s);
	conn_pause(s);
	close_fd(&s->conn_fd);
	s->closing = false;
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
	if (s->conn_fd < 0 || s->closing)
		return;
	s->closing = true;
	s->msg_pending = false;
	conn_pause(s);
	s->in_dispatch = true;
	stop_all(s);
	s->in_dispatch = false;
	if (!s->stops_pending)
		conn_finish_close(s);
}

/* Every queue stop has completed. */
static void server_resume(struct vhost_server *s)
{
	if (s->closing) {
		conn_finish_close(s);
		return;
	}
	if (!s->msg_pending)
		return;
	s->msg_pending = false;
	conn_dispatch(s);
	if (!s->msg_pending && s->conn_fd >= 0)
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
	a->ret = vhost_backend_req_create(s->ctrl, s->name, 0, &s->breq);
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
	pthread_once(&anon_once, anon_probe);   /* before any sandbox */
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
		if (!s->closing)
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
	if (s->conn_fd < 0 || s->closing)
		return -ENOTCONN;
	return vhost_backend_req_send(s->breq, request, payload, size, cb, arg);
}

bool vhost_server_connected(const struct vhost_server *s)
{
	return s->conn_fd >= 0 && !s->closing;
}

void vhost_vring_signal_err(struct vhost_vring *vr)
{
	uint64_t one = 1;
	ssize_t r UNUSED;

	if (vr->err_fd >= 0)
		r = write(vr->err_fd, &one, sizeof(one));
}
