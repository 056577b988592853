/* SPDX-License-Identifier: MIT */
/*
 * export.c - one export: a storage backend, a virtio-blk device model and a
 * vhost-user socket. Implements the vhost device ops: each started vring is
 * handed to an iothread, which pops chains, runs them through blk on its
 * io_uring, and pushes completions. The control thread never touches a
 * running ring; it asks the iothread by loop_call.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "common/compiler.h"
#include "common/log.h"
#include "daemon/export_internal.h"
#include "vhost/vhost_log.h"
#include "vhost/vhost_msg.h"

struct ereq {
	struct blk_req blk;
	struct virtq_elem elem;
	struct equeue *q;
	struct gmem *mem;          /* the table the iovecs point into */
	struct ereq *next_free;
	uint64_t start_ns;         /* statistics: when it was popped */
	struct iovec iov[VIRTQ_MAX_IOV];
};

struct export_flush;

struct export {
	char *name;
	char *socket_path;         /* NULL for an inherited fd */
	char *image;               /* file, POOL/IMAGE, or NULL (null engine) */
	enum storage_engine engine;
	unsigned queue_size;
	bool read_only;
	uint64_t features;         /* (control thread) negotiated; 0: none yet */
	struct loop *ctrl;
	struct storage *st;
	struct blk_dev *blk;
	struct vhost_server *vs;
	/* Written by the storage when its size changed by itself (an rbd
	 * image resized elsewhere); read on the control thread. -1: none. */
	int size_efd;
	struct iothread **iothreads;
	unsigned niothreads;
	unsigned first;
	unsigned num_queues;
	unsigned nstarted;         /* (control thread) queues between start and stop done */
	bool test_skip_data_log;   /* test only: break migration on purpose */
	struct export_flush *flush; /* export_shutdown's flush of a stuck export */
	/* I/O limits: NULL (none: the data path's one test), &own_qos, or a
	 * named group. Written by the control thread, read by iothreads
	 * (atomic); whatever it points to outlives the export's queues. */
	struct qos_shared *qos;
	struct qos_shared own_qos;
	struct equeue queues[VHOST_MAX_QUEUES];
};

/*
 * Chains one equeue_process call may pop before it lets the loop run other
 * queues and control calls (Linux vhost's "weight"). Requests that finish
 * at once (GET_ID, bad requests) free their slot immediately, so without
 * it a guest refilling its ring keeps the iothread in one call.
 */
#define EQUEUE_WEIGHT 256u
/*
 * How long the control thread waits for an iothread to take a call (start
 * a queue, swap its fds or memory). Calls are short and never block, so
 * only a stuck iothread takes this long; its connection is then closed
 * (the stop completes whenever the iothread answers) and every other
 * export carries on.
 */
#define EXPORT_CALL_TIMEOUT_MS 5000

/* ---- iothread side ---------------------------------------------------- */

static void equeue_process(struct equeue *q);

static struct ereq *equeue_req_get(struct equeue *q)
{
	struct ereq *r = q->free_reqs;

	if (r) {
		q->free_reqs = r->next_free;
		return r;
	}
	r = malloc(sizeof(*r));
	if (r) {
		r->q = q;
		q->nreqs++;
	}
	return r;
}

static void equeue_req_put(struct equeue *q, struct ereq *r)
{
	r->next_free = q->free_reqs;
	q->free_reqs = r;
}

static void equeue_free_pool(struct equeue *q)
{
	while (q->free_reqs) {
		struct ereq *r = q->free_reqs;

		q->free_reqs = r->next_free;
		free(r);
		q->nreqs--;
	}
}

void equeue_notify(struct equeue *q)
{
	struct vhost_vring *vr = q->vr;
	uint64_t one = 1;
	ssize_t n UNUSED;

	/* A stopped queue's vring belongs to the control thread again. */
	if ((!q->running && !q->stopping) || !vr)
		return;
	if (vr->call_fd < 0) {
		virtq_flush(&vr->vq);   /* the driver polls: publish, no interrupt */
		return;
	}
	/* Non-blocking (vhost made it so): EAGAIN means the counter is at
	 * its maximum, i.e. an interrupt is pending already; nothing is lost. */
	if (virtq_needs_notify(&vr->vq))
		n = write(vr->call_fd, &one, sizeof(one));
}

/* Context: control thread, posted by equeue_finish_stop. */
static void export_stop_done(void *arg)
{
	struct equeue *q = arg;
	struct export *e = q->exp;
	vhost_done_cb done = q->stop_done;

	q->stop_done = NULL;
	q->vr = NULL;
	e->nstarted--;
	done(q->stop_arg);
}

/* Context: iothread. The stop is complete: tell the control thread. */
static void equeue_finish_stop(struct equeue *q)
{
	equeue_notify(q);
	q->stopping = false;
	equeue_free_pool(q);
	loop_post(q->exp->ctrl, export_stop_done, q);
}

/* blk_req_written callback: one piece of guest memory the request wrote. */
static void equeue_log_piece(void *arg, void *p, size_t len)
{
	struct ereq *r = arg;

	if (r->q->exp->test_skip_data_log && p != r->blk.status)
		return;
	if (gmem_log_mark_host(virtq_log(&r->q->vr->vq), r->mem, p, len))
		log_rl(LOG_ERR, "%s: dirty log: a buffer is not in guest memory", r->q->exp->name);
}

/* One completed request into the queue's statistics (-Dstats=false: none). */
static inline void equeue_account(struct equeue *q, const struct ereq *r, uint32_t used_len)
{
#if VBLK_STATS
	/* No status byte: not even the header was readable (type unknown). */
	enum stats_op op = used_len ? stats_op_of(r->blk.type) : STATS_OP_OTHER;

	stats_queue_done(&q->stats, op, r->blk.bytes,
			 used_len == 0 || r->blk.result != VIRTIO_BLK_S_OK, r->start_ns,
			 iothread_now(q->t));
#else
	(void)q, (void)r, (void)used_len;
#endif
}

static void equeue_req_done(struct blk_req *breq, uint32_t used_len)
{
	struct ereq *r = container_of(breq, struct ereq, blk);
	struct equeue *q = r->q;
	bool was_full = q->vr && q->inflight >= virtq_size(&q->vr->vq);

	equeue_account(q, r, used_len);

	/* Migration: what the request wrote is dirty before the guest can
	 * see it used (after storage wrote it, so no copy misses it). */
	if (unlikely(virtq_log(&q->vr->vq)))
		blk_req_written(&r->blk, equeue_log_piece, r);
	virtq_fill(&q->vr->vq, &r->elem, used_len);
	gmem_put(r->mem);
	equeue_req_put(q, r);
	q->inflight--;
	q->completed++;
	iothread_mark_dirty(q->t, q);
	if (q->stopping && q->inflight == 0)
		equeue_finish_stop(q);
	else if (was_full && q->running && !q->processing)
		equeue_process(q);   /* we stopped popping at the cap */
	/* else completed inside equeue_process (synchronously): its loop
	 * goes on, no re-entry, no stack growth */
}

static void equeue_mark_broken(struct equeue *q, const char *why)
{
	struct vhost_vring *vr = q->vr;

	if (q->broken_reported)
		return;
	q->broken_reported = true;
	log_rl(LOG_ERR, "%s: queue %u: %s; queue stopped", q->exp->name, vr->index, why);
	if (vr->kick_fd >= 0)
		loop_del_fd(q->t->loop, vr->kick_fd);
	q->running = false;
	vhost_vring_signal_err(vr);
}

/* What an iothread tells the control thread about a miss. */
struct equeue_miss {
	struct export *e;
	unsigned index;
	uint64_t iova;
	unsigned perm;
};

static void equeue_miss_fn(void *arg)
{
	struct equeue_miss *w = arg;

	if (vhost_server_iotlb_miss(w->e->vs, w->index, w->iova, w->perm))
		log_rl(LOG_WARN, "%s: queue %u: IOTLB miss for a stopped ring dropped",
		       w->e->name, w->index);
	free(w);
}

/*
 * The IOTLB view lacks an address the next chain needs: stop popping and
 * have the control thread ask the frontend. The answer comes back as a new
 * view (export_queue_iotlb), or as a failure that breaks the queue.
 */
static void equeue_park(struct equeue *q)
{
	struct equeue_miss *w = malloc(sizeof(*w));

	q->iotlb_wait = true;
	if (!w) {
		equeue_mark_broken(q, "out of memory for an IOTLB miss");
		return;
	}
	*w = (struct equeue_miss){ .e = q->exp, .index = q->vr->index };
	virtq_miss(&q->vr->vq, &w->iova, &w->perm);
	if (loop_post(q->exp->ctrl, equeue_miss_fn, w)) {
		free(w);
		equeue_mark_broken(q, "cannot reach the control thread for an IOTLB miss");
	}
}

/*
 * A chain whose buffers the IOTLB maps without the access it asks for:
 * fail it alone with IOERR (in the status byte, unless that byte is one
 * of the denied buffers), touching nothing else.
 */
static void equeue_fail_denied(struct equeue *q, struct ereq *r)
{
	struct virtq_elem *el = &r->elem;
	uint32_t len = 0;

	log_rl(LOG_WARN, "%s: queue %u: a request uses a buffer against its IOTLB permissions; "
	       "failed", q->exp->name, q->vr->index);
	if (!el->status_denied && el->in_num) {
		struct iovec *last = &el->iov[el->out_num + el->in_num - 1];
		uint8_t *status = (uint8_t *)last->iov_base + last->iov_len - 1;

		*status = VIRTIO_BLK_S_IOERR;
		if (unlikely(virtq_log(&q->vr->vq)))
			gmem_log_mark_host(virtq_log(&q->vr->vq), q->vr->mem, status, 1);
		len = 1;
	}
	virtq_fill(&q->vr->vq, el, len);
	q->completed++;
	iothread_mark_dirty(q->t, q);
}

/*
 * Out of budget with chains still waiting: come back in the next loop
 * iteration, after the other queues, completions and control calls.
 * Notifications stay off. A polled queue is looked at again anyway;
 * otherwise kick ourselves: the kick eventfd is only read by this loop,
 * and one spurious kick costs one empty pass.
 */
static void equeue_yield(struct equeue *q)
{
	uint64_t one = 1;
	ssize_t n UNUSED;

	q->yields++;
	if (!q->polled && q->vr->kick_fd >= 0)
		n = write(q->vr->kick_fd, &one, sizeof(one));
}

/* Not popping for now: an IOTLB miss unanswered (export_queue_iotlb
 * ends the wait), or a request over its QoS limit waiting for tokens
 * (equeue_qos_resume); either then pops again. */
static inline bool equeue_parked(const struct equeue *q)
{
	return q->iotlb_wait || q->qos_parked;
}

/*
 * Charge @r to the export's limits. Over them: park it and stop popping
 * (notifications stay off, so the guest need not kick) until the
 * iothread's timer says the tokens are there.
 */
static bool equeue_qos_park(struct equeue *q, struct ereq *r)
{
	struct qos_shared *qos = __atomic_load_n(&q->exp->qos, __ATOMIC_ACQUIRE);
	enum qos_dir dir = QOS_OTHER;
	uint64_t bytes, wait;
	uint32_t type;

	if (!qos)
		return false;
	blk_req_peek(r->elem.iov, r->elem.out_num, r->elem.in_num, &type, &bytes);
	if (type == VIRTIO_BLK_T_IN)
		dir = QOS_READ;
	else if (type == VIRTIO_BLK_T_OUT || type == VIRTIO_BLK_T_DISCARD ||
		 type == VIRTIO_BLK_T_WRITE_ZEROES)
		dir = QOS_WRITE;
	wait = qos_shared_take(qos, dir, bytes);
	if (!wait)
		return false;
	q->qos_parked = r;
	iothread_throttle(q->t, q, wait);
	return true;
}

void equeue_qos_resume(struct equeue *q)
{
	struct ereq *r = q->qos_parked;

	if (!r || !q->running)
		return;   /* the stop submits it */
	q->qos_parked = NULL;
	if (equeue_qos_park(q, r))
		return;
	q->processing = true;   /* a synchronous completion must not pop */
	blk_req_submit(q->exp->blk, q->t->chan, &r->blk, r->elem.iov, r->elem.out_num,
		       r->elem.in_num, equeue_req_done);
	q->processing = false;
	equeue_process(q);
}

/*
 * Pop available chains (at most EQUEUE_WEIGHT) and start them.
 * Notifications from the guest stay off while we work and are re-enabled
 * before we sleep; if a buffer slipped in meanwhile, go round again (no
 * lost wakeup). Requests completing synchronously do not re-enter.
 */
static void equeue_process(struct equeue *q)
{
	struct vhost_vring *vr;
	struct virtq *vq;
	unsigned budget = EQUEUE_WEIGHT;
	int ret = 0;

	if (!q->running || q->processing || equeue_parked(q))
		return;
	vr = q->vr;
	vq = &vr->vq;
	q->processing = true;
	for (;;) {
		virtq_disable_notify(vq);
		while (q->inflight < virtq_size(vq)) {
			struct ereq *r;

			if (budget == 0) {
				if (virtq_has_avail(vq)) {
					equeue_yield(q);
					goto out;
				}
				/* Spent exactly on what was there: kicks go
				 * back on below, or nothing would wake an
				 * event-mode iothread for the next chain. */
				break;
			}
			r = equeue_req_get(q);

			if (!r) {
				log_rl(LOG_ERR, "%s: out of memory for requests", q->exp->name);
				break;
			}
			ret = virtq_pop(vq, vr->mem, &r->elem, r->iov, VIRTQ_MAX_IOV);
			if (ret != 1) {
				equeue_req_put(q, r);
				break;
			}
			if (unlikely(r->elem.denied)) {
				equeue_fail_denied(q, r);
				equeue_req_put(q, r);
				budget--;
				continue;
			}
			r->mem = gmem_get(vr->mem);
			q->inflight++;
			q->popped++;
#if VBLK_STATS
			r->start_ns = iothread_now(q->t);
			stats_add_u64(&q->stats.started, 1);
#endif
			budget--;
			if (unlikely(__atomic_load_n(&q->exp->qos, __ATOMIC_ACQUIRE)) &&
			    equeue_qos_park(q, r))
				goto out;   /* over the limit: the timer resumes */
			blk_req_submit(q->exp->blk, q->t->chan, &r->blk, r->elem.iov,
				       r->elem.out_num, r->elem.in_num, equeue_req_done);
			if (!q->running)   /* a completion stopped or broke it */
				goto out;
		}
		if (ret == -EAGAIN) {
			equeue_park(q);
			goto out;
		}
		if (ret < 0) {
			equeue_mark_broken(q, "the guest corrupted the ring");
			goto out;
		}
		if (q->inflight >= virtq_size(vq))
			goto out;  /* resumed from a completion */
		if (q->polled)
			goto out;  /* the loop polls again soon */
		if (!virtq_enable_notify(vq))
			goto out;
	}
out:
	q->processing = false;
}

static void equeue_on_kick(void *opaque, uint32_t events)
{
	struct equeue *q = opaque;
	uint64_t v;
	ssize_t n;

	/* Non-blocking (vhost made it so): EAGAIN when another queue sharing
	 * the fd took the kick. EOF (a socket or pipe whose writer is gone)
	 * or an error (a listening socket, an fd that cannot be read) would
	 * keep the level-triggered watch firing for ever: stop the queue. */
	n = read(q->vr->kick_fd, &v, sizeof(v));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		equeue_mark_broken(q, n == 0 ? "its kick fd is at end of file" :
				   "its kick fd cannot be read");
		return;
	}
	equeue_process(q);
}

/* Poller: chains waiting in the avail ring (a memory read when idle). */
static bool equeue_poll(void *opaque)
{
	struct equeue *q = opaque;
	uint64_t popped = q->popped;

	if (!q->running || equeue_parked(q) || q->inflight >= virtq_size(&q->vr->vq) ||
	    !virtq_has_avail(&q->vr->vq))
		return false;
	equeue_process(q);
	return q->popped != popped;
}

/* Before the loop sleeps: kicks on again; true if chains slipped in. */
static bool equeue_arm(void *opaque)
{
	struct equeue *q = opaque;

	q->polled = false;
	if (!q->running || equeue_parked(q))
		return false;   /* throttled: the timer resumes, kicks stay off */
	/* At the cap a completion resumes popping (equeue_req_done). */
	return virtq_enable_notify(&q->vr->vq) && q->inflight < virtq_size(&q->vr->vq);
}

static void equeue_disarm(void *opaque)
{
	struct equeue *q = opaque;

	q->polled = true;
	if (q->running)
		virtq_disable_notify(&q->vr->vq);
}

static void equeue_start_fn(void *arg)
{
	struct equeue *q = arg;
	struct vhost_vring *vr = q->vr;

	q->running = true;
	q->iotlb_wait = false;
	q->broken_reported = false;
	if (vr->kick_fd >= 0 &&
	    loop_add_fd(q->t->loop, vr->kick_fd, EPOLLIN, equeue_on_kick, q) < 0) {
		log_err("%s: queue %u: cannot watch the kick fd", q->exp->name, vr->index);
		q->running = false;
		return;
	}
	q->polled = false;
	if (loop_add_poller(q->t->loop, equeue_poll, equeue_arm, equeue_disarm, q) < 0)
		log_rl(LOG_WARN, "%s: queue %u: cannot poll; waiting for kicks", q->exp->name,
		       vr->index);
	/* Requests a previous instance had in flight when it died come back
	 * first (virtq_pop returns them before any new chain). */
	if (virtq_resubmit_pending(&vr->vq))
		log_info("%s: queue %u: resubmitting %u requests left in flight", q->exp->name,
			 vr->index, virtq_resubmit_pending(&vr->vq));
	/* Buffers may be waiting already (reconnect, or a kick before start). */
	equeue_process(q);
}

static void equeue_stop_fn(void *arg)
{
	struct equeue *q = arg;
	struct vhost_vring *vr = q->vr;

	if (q->running && vr->kick_fd >= 0)
		loop_del_fd(q->t->loop, vr->kick_fd);
	loop_del_poller(q->t->loop, equeue_poll, q);
	q->polled = false;
	q->running = false;
	q->stopping = true;
	if (q->throttled)
		iothread_unthrottle(q->t, q);
	if (q->inflight == 0) {
		equeue_finish_stop(q);
	} else if (q->qos_parked) {
		/* It counts in inflight: its completion (or a later one)
		 * finishes the stop. A stop does not wait for tokens. */
		struct ereq *r = q->qos_parked;
		struct qos_shared *qos = __atomic_load_n(&q->exp->qos, __ATOMIC_ACQUIRE);

		q->qos_parked = NULL;
		if (qos)
			qos_shared_cancel_wait(qos);
		blk_req_submit(q->exp->blk, q->t->chan, &r->blk, r->elem.iov, r->elem.out_num,
			       r->elem.in_num, equeue_req_done);
	}
	/* else the last completion finishes the stop */
}

/* ---- vhost device ops (control thread) -------------------------------- */

static int export_get_config(void *opaque, uint32_t offset, void *buf, uint32_t len)
{
	struct export *e = opaque;
	struct virtio_blk_config cfg;

	if (offset > sizeof(cfg) || len > sizeof(cfg) - offset)
		return -EINVAL;
	blk_dev_get_config(e->blk, &cfg);
	memcpy(buf, (char *)&cfg + offset, len);
	return 0;
}

static int export_set_config(void *opaque, uint32_t offset, const void *buf, uint32_t len)
{
	struct export *e = opaque;

	return blk_dev_set_config(e->blk, offset, buf, len);
}

static void export_set_features(void *opaque, uint64_t features)
{
	struct export *e = opaque;

	e->features = features;
	blk_dev_set_features(e->blk, features);
}

static int export_queue_start(void *opaque, struct vhost_vring *vr)
{
	struct export *e = opaque;
	struct equeue *q;

	if (vr->index >= e->num_queues)
		return -EINVAL;
	q = &e->queues[vr->index];
	if (q->vr)
		return -EBUSY;
	q->vr = vr;
	e->nstarted++;
	if (loop_call_timeout(q->t->loop, equeue_start_fn, q, EXPORT_CALL_TIMEOUT_MS)) {
		log_rl(LOG_ERR, "%s: queue %u: iothread %u does not answer", e->name, vr->index,
		       q->t->index);
		q->vr = NULL;
		e->nstarted--;
		return -ETIMEDOUT;
	}
	return 0;
}

static void export_queue_stop(void *opaque, struct vhost_vring *vr, vhost_done_cb done, void *arg)
{
	struct export *e = opaque;
	struct equeue *q;

	if (vr->index >= e->num_queues || !e->queues[vr->index].vr) {
		done(arg);
		return;
	}
	q = &e->queues[vr->index];
	q->stop_done = done;
	q->stop_arg = arg;
	/* Asynchronous: done() comes back by message (export_stop_done), so
	 * the control thread never waits here for a busy or stuck iothread. */
	if (loop_post(q->t->loop, equeue_stop_fn, q))
		loop_call(q->t->loop, equeue_stop_fn, q);
}

static int export_queue_exec(void *opaque, struct vhost_vring *vr, loop_fn fn, void *arg)
{
	struct export *e = opaque;
	struct equeue *q;

	if (vr->index >= e->num_queues) {
		fn(arg);
		return 0;
	}
	q = &e->queues[vr->index];
	if (loop_call_timeout(q->t->loop, fn, arg, EXPORT_CALL_TIMEOUT_MS)) {
		log_rl(LOG_ERR, "%s: queue %u: iothread %u does not answer", e->name, vr->index,
		       q->t->index);
		return -ETIMEDOUT;
	}
	return 0;
}

/* In the queue's context: a new IOTLB view, or a miss that failed. */
static void export_queue_iotlb(void *opaque, struct vhost_vring *vr, int result)
{
	struct export *e = opaque;
	struct equeue *q;

	if (vr->index >= e->num_queues)
		return;
	q = &e->queues[vr->index];
	if (q->vr != vr || !q->running)
		return;
	if (result < 0) {
		equeue_mark_broken(q, "an IOTLB miss was not answered");
		return;
	}
	if (q->iotlb_wait) {
		q->iotlb_wait = false;
		equeue_process(q);
	}
}

/* Device reset: the next driver sees the configured cache mode again. */
static void export_reset(void *opaque)
{
	struct export *e = opaque;

	blk_dev_reset(e->blk);
}

static void export_disconnected(void *opaque)
{
	struct export *e = opaque;

	blk_dev_reset(e->blk);
	e->features = 0;
	log_debug("%s: device reset after disconnect", e->name);
}

static const struct vhost_dev_ops export_vhost_ops = {
	.get_config = export_get_config,
	.set_config = export_set_config,
	.set_features = export_set_features,
	.queue_start = export_queue_start,
	.queue_stop = export_queue_stop,
	.queue_exec = export_queue_exec,
	.queue_iotlb = export_queue_iotlb,
	.disconnected = export_disconnected,
	.reset = export_reset,
};

static void export_size_changed(void *opaque, uint32_t events);

/* Have the storage signal size changes of its own (storage_set_size_fd). */
static void export_watch_size(struct export *e)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0 || loop_add_fd(e->ctrl, fd, EPOLLIN, export_size_changed, e)) {
		log_warn("%s: cannot watch the backend's size; the guest will not see a "
			 "resize until it reconnects", e->name);
		if (fd >= 0)
			close(fd);
		return;
	}
	e->size_efd = fd;
	storage_set_size_fd(e->st, fd);
}

int export_create(const struct export_params *p, struct loop *ctrl,
		  struct iothread **iothreads, unsigned niothreads, unsigned first,
		  struct export **out)
{
	struct blk_dev_params bp = { 0 };
	struct vhost_dev_info info = { 0 };
	struct export *e;
	int ret;

	if (p->num_queues == 0 || p->num_queues > VHOST_MAX_QUEUES || niothreads == 0)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->size_efd = -1;
	e->name = strdup(p->name ? p->name : "export");
	e->socket_path = p->socket_path ? strdup(p->socket_path) : NULL;
	e->image = p->storage.path ? strdup(p->storage.path) : NULL;
	e->engine = p->storage.engine;
	e->queue_size = p->queue_size;
	e->read_only = p->read_only;
	if (!e->name || (p->socket_path && !e->socket_path) || (p->storage.path && !e->image)) {
		ret = -ENOMEM;
		goto err_free;
	}
	e->ctrl = ctrl;
	e->iothreads = iothreads;
	e->niothreads = niothreads;
	e->first = first;
	e->num_queues = p->num_queues;
	e->test_skip_data_log = p->test_skip_data_log;
	if (e->test_skip_data_log)
		log_warn("%s: TEST MODE: request data is not dirty-logged; live migration "
			 "will corrupt the guest", e->name);
	for (unsigned i = 0; i < p->num_queues; i++) {
		e->queues[i].exp = e;
		e->queues[i].t = iothreads[(first + i) % niothreads];
	}
	qos_shared_init(&e->own_qos, NULL);
	/* A group member given no limits takes the group's as they are. */
	ret = export_set_qos(e, p->qos_given || !p->qos_group ? &p->qos : NULL, p->qos_group);
	if (ret)
		goto err_free;

	ret = storage_open(&p->storage, &e->st);
	if (ret)
		goto err_free;

	bp.st = e->st;
	bp.read_only = p->read_only;
	bp.writeback = !p->writethrough;
	bp.num_queues = p->num_queues;
	bp.queue_size = p->queue_size;
	bp.seg_max = p->queue_size - 2;
	bp.size_max = 1u << 20;
	bp.serial = p->serial;
	ret = blk_dev_create(&bp, &e->blk);
	if (ret)
		goto err_storage;

	info.num_queues = p->num_queues;
	info.max_queue_size = p->queue_size;
	info.config_size = sizeof(struct virtio_blk_config);
	info.msg_timeout_ms = p->msg_timeout_ms;
	/* VHOST_F_LOG_ALL: equeue_req_done logs what requests write. */
	info.features = blk_dev_features(e->blk) |
			(1ULL << VHOST_F_LOG_ALL) |
			(1ULL << VIRTIO_F_VERSION_1) |
			(1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
			(1ULL << VIRTIO_RING_F_EVENT_IDX);
	if (p->iommu)
		info.features |= 1ULL << VIRTIO_F_ACCESS_PLATFORM;
	if (p->packed)
		info.features |= 1ULL << VIRTIO_F_RING_PACKED;
	ret = vhost_server_create(ctrl, p->socket_path, p->fd, &info, &export_vhost_ops, e, &e->vs);
	if (ret)
		goto err_blk;
	/* The socket is ours now (a live process on it would have failed
	 * the create): what a dead predecessor on it held is ours to take. */
	if (p->socket_path && !p->read_only)
		(void)storage_claim(e->st, p->socket_path);
	/* An rbd image may be resized by `rbd resize` while served: tell the
	 * frontend as export_resize does (not fatal: the size still bounds
	 * requests, the guest just keeps the capacity it read). */
	if (p->storage.engine == STORAGE_RBD)
		export_watch_size(e);
	*out = e;
	return 0;

err_blk:
	blk_dev_destroy(e->blk);
err_storage:
	storage_close(e->st);
err_free:
	qos_shared_fini(&e->own_qos);
	free(e->image);
	free(e->socket_path);
	free(e->name);
	free(e);
	return ret;
}

/* Control thread: the storage changed its size by itself. */
static void export_size_changed(void *opaque, uint32_t events)
{
	struct export *e = opaque;
	struct export_resize_result res;
	uint64_t n;
	int ret;

	(void)events;
	if (read(e->size_efd, &n, sizeof(n)) < 0)
		return;
	ret = export_resize(e, 0, &res);
	if (ret)
		log_warn("%s: the backend changed size, but reading it failed: %s", e->name,
			 strerror(-ret));
	else if (res.notify && res.notify != -ENOTCONN)
		log_warn("%s: cannot tell the frontend about the new size: %s", e->name,
			 strerror(-res.notify));
}

static bool export_quiet(const struct export *e)
{
	return e->nstarted == 0;
}

/* Context: control thread. Close the socket, stop every started ring
 * (requests in flight complete first, asynchronously). Idempotent. */
static void export_stop(struct export *e)
{
	vhost_server_destroy(e->vs);
	e->vs = NULL;
}

/* Flush, close and free an export with nothing in flight. */
static int export_free(struct export *e)
{
	int ret;

	blk_dev_destroy(e->blk);
	if (e->size_efd >= 0)
		loop_del_fd(e->ctrl, e->size_efd);
	/* Closes the storage's watch: nothing writes the fd after this
	 * (an image abandoned at exit keeps its watch: it finds no fd). */
	storage_set_size_fd(e->st, -1);
	ret = storage_close(e->st);
	if (e->size_efd >= 0)
		close(e->size_efd);
	qos_shared_fini(&e->own_qos);
	free(e->image);
	free(e->socket_path);
	free(e->name);
	free(e);
	return ret;
}

/*
 * A flush of an export that still has requests stuck in its storage:
 * synchronous fdatasync could hang the daemon with them, so it goes
 * through an iothread's io_uring and is waited for a bounded time. If
 * it never completes, the struct stays allocated until the exit.
 */
struct export_flush {
	struct storage_io io;
	struct export *e;
	bool done;                 /* atomic: set by the iothread */
	int res;
};

static void export_flush_wake(void *arg)
{
	(void)arg;   /* running is the point: loop_run_until looks again */
}

/* Context: iothread (storage callback). */
static void export_flush_cb(struct storage_io *io, int res)
{
	struct export_flush *f = container_of(io, struct export_flush, io);

	f->res = res;
	__atomic_store_n(&f->done, true, __ATOMIC_RELEASE);
	loop_post(f->e->ctrl, export_flush_wake, NULL);
}

/* Context: iothread (posted). */
static void export_flush_submit(void *arg)
{
	struct export_flush *f = arg;

	storage_submit(f->e->queues[0].t->chan, f->e->st, &f->io);
}

struct shutdown_state {
	struct export **exports;
	unsigned n;
};

static bool shutdown_quiet(void *arg)
{
	const struct shutdown_state *s = arg;

	for (unsigned i = 0; i < s->n; i++)
		if (s->exports[i] && !export_quiet(s->exports[i]))
			return false;
	return true;
}

static bool shutdown_flushed(void *arg)
{
	const struct shutdown_state *s = arg;

	for (unsigned i = 0; i < s->n; i++) {
		const struct export_flush *f = s->exports[i] ? s->exports[i]->flush : NULL;

		if (f && !__atomic_load_n(&f->done, __ATOMIC_ACQUIRE))
			return false;
	}
	return true;
}

int export_shutdown(struct export **exports, unsigned n, struct loop *ctrl, int timeout_ms,
		    int flush_timeout_ms)
{
	struct shutdown_state s = { .exports = exports, .n = n };
	unsigned stuck = 0;
	int ret = 0, r;

	/* Every export at once: one deadline for all, not one each. */
	for (unsigned i = 0; i < n; i++)
		if (exports[i])
			export_stop(exports[i]);
	if (loop_run_until(ctrl, shutdown_quiet, &s, timeout_ms) == 0)
		goto close;
	/* Some storage holds requests: start a bounded flush of each such
	 * export (behind its stuck requests, maybe, but it costs no wait). */
	for (unsigned i = 0; i < n; i++) {
		struct export *e = exports[i];
		struct export_flush *f;

		if (!e || export_quiet(e))
			continue;
		stuck++;
		log_err("%s: requests still in flight after %d ms; flushing what can be",
			e->name, timeout_ms);
		f = calloc(1, sizeof(*f));
		if (!f)
			continue;
		f->e = e;
		f->io.op = STORAGE_OP_FLUSH;
		f->io.cb = export_flush_cb;
		if (loop_post(e->queues[0].t->loop, export_flush_submit, f))
			free(f);
		else
			e->flush = f;
	}
close:
	/* Storage that answers is flushed and closed now (not one whose
	 * iothread was handed a flush: that holds on to it). */
	for (unsigned i = 0; i < n; i++) {
		if (!exports[i] || !export_quiet(exports[i]) || exports[i]->flush)
			continue;
		r = export_free(exports[i]);
		exports[i] = NULL;
		if (r && !ret)
			ret = -EIO;
	}
	if (!stuck)
		return ret;
	loop_run_until(ctrl, shutdown_flushed, &s, flush_timeout_ms);
	for (unsigned i = 0; i < n; i++) {
		struct export_flush *f;

		if (!exports[i])
			continue;
		f = exports[i]->flush;
		if (!f || !__atomic_load_n(&f->done, __ATOMIC_ACQUIRE))
			log_err("%s: not flushed: the storage did not answer within %d ms",
				exports[i]->name, flush_timeout_ms);
		else if (f->res)
			log_err("%s: flush: %s", exports[i]->name, strerror(-f->res));
		else
			log_info("%s: flushed; requests still in flight are lost",
				 exports[i]->name);
		/* The export, its storage and the flush stay for the exit:
		 * an iothread may still complete into them. */
	}
	return -ETIMEDOUT;
}

/* A runtime removal waits this long for requests in flight, then as long
 * again for a flush of storage that still holds some. */
#define EXPORT_REMOVE_TIMEOUT_MS 30000

void export_destroy(struct export *e)
{
	struct export *one = e;
	int ret;

	if (!e)
		return;
	ret = export_shutdown(&one, 1, e->ctrl, EXPORT_REMOVE_TIMEOUT_MS,
			      EXPORT_REMOVE_TIMEOUT_MS);
	if (ret == -ETIMEDOUT)   /* not freed: its iothread may complete into it */
		log_err("%s: removed with requests stuck in its storage", e->name);
	else if (ret)            /* freed */
		log_err("an export's image could not be flushed when it was removed");
}

bool export_connected(const struct export *e)
{
	return vhost_server_connected(e->vs);
}

void export_get_info(const struct export *e, struct export_info *out)
{
	*out = (struct export_info){
		.name = e->name,
		.socket_path = e->socket_path,
		.image = e->image,
		.engine = e->engine,
		.size = blk_dev_capacity(e->blk) * BLK_SECTOR_SIZE,
		.num_queues = e->num_queues,
		.queue_size = e->queue_size,
		.read_only = e->read_only,
		.connected = vhost_server_connected(e->vs),
		.features = e->features,
	};
}

unsigned export_num_queues(const struct export *e)
{
	return e->num_queues;
}

void export_queue_stats(const struct export *e, unsigned i, struct stats_queue *sum,
			unsigned *iothread)
{
	if (i >= e->num_queues)
		return;
	stats_queue_read_add(sum, &e->queues[i].stats);
	if (iothread)
		*iothread = e->queues[i].t->index;
}

static void export_config_changed(void *arg, int result)
{
	struct export *e = arg;

	/* @e may be gone: the channel is reset (-ECONNRESET) before the
	 * export is freed, and then nothing of it is touched. */
	if (result == -ECONNRESET)
		return;
	if (result)
		log_warn("%s: the frontend did not take the configuration change: %s", e->name,
			 strerror(-result));
	else
		log_info("%s: the frontend took the configuration change", e->name);
}

int export_resize(struct export *e, uint64_t size, struct export_resize_result *res)
{
	uint64_t old = blk_dev_capacity(e->blk) * BLK_SECTOR_SIZE, now;
	int ret;

	*res = (struct export_resize_result){ .old_size = old, .notify = -ENOTCONN };
	if (size % BLK_SECTOR_SIZE)
		return -EINVAL;
	/* Shrinking: bound the guest's requests before the image goes. */
	if (size && size < old)
		blk_dev_set_capacity(e->blk, size / BLK_SECTOR_SIZE);
	ret = storage_resize(e->st, size, &now);
	if (ret) {
		blk_dev_set_capacity(e->blk, old / BLK_SECTOR_SIZE);
		return ret;
	}
	now -= now % BLK_SECTOR_SIZE;
	blk_dev_set_capacity(e->blk, now / BLK_SECTOR_SIZE);
	res->new_size = now;
	if (now == old) {
		res->notify = 0;
		return 0;
	}
	log_info("%s: resized from %" PRIu64 " to %" PRIu64 " bytes", e->name, old, now);
	if (vhost_server_connected(e->vs))
		res->notify = vhost_server_backend_send(e->vs, VHOST_USER_BACKEND_CONFIG_CHANGE_MSG,
							NULL, 0, export_config_changed, e);
	return 0;
}

/* ---- I/O limits (control thread) ---------------------------------------- */

int export_set_qos(struct export *e, const struct qos_limits *l, const char *group)
{
	struct qos_shared *cur = e->qos, *next;
	int ret;

	if (group && *group) {
		ret = qos_group_get(group, &next);
		if (ret)
			return ret;
	} else if (group || !cur || cur == &e->own_qos) {
		next = &e->own_qos;   /* leaving a group, or not in one */
	} else {
		next = cur;           /* stays in its group */
	}
	if (l)
		qos_shared_set(next, l);
	/* An export of its own with no limit pays nothing on the data path. */
	if (next == &e->own_qos && !next->st.active)
		next = NULL;
	__atomic_store_n(&e->qos, next, __ATOMIC_RELEASE);
	/* Waits computed under the old limits end now, on every iothread
	 * serving a queue of this export. */
	for (unsigned i = 0; i < e->num_queues && i < e->niothreads; i++)
		iothread_qos_recheck(e->queues[i].t);
	return 0;
}

void export_get_qos(struct export *e, struct qos_limits *out, const char **group)
{
	struct qos_shared *q = e->qos ? e->qos : &e->own_qos;

	qos_shared_get(q, out);
	*group = q->name[0] ? q->name : NULL;
}
