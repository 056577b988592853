/* SPDX-License-Identifier: MIT */
/*
 * vhost_iotlb.c - VIRTIO_F_ACCESS_PLATFORM for the vhost-user backend:
 * IOTLB_MSG updates and invalidations from the frontend, the IOTLB view
 * running rings translate through, and IOTLB misses sent on the backend
 * request channel. See docs/architecture.md, "The IOTLB".
 *
 * Context: the control loop's thread, like the rest of vhost_server.
 */
#include <errno.h>
#include <string.h>

#include "vhost/vhost_server_internal.h"

static int iotlb_ensure(struct vhost_server *s)
{
	return s->iotlb ? 0 : iotlb_create(&s->iotlb);
}

int vhost_iotlb_view_of(struct vhost_server *s, const struct gmem *mem, struct gmem **out)
{
	int ret = iotlb_ensure(s);

	return ret ? ret : iotlb_view(s->iotlb, mem, out);
}

struct gmem *vring_space(struct vhost_server *s)
{
	if (!iotlb_on(s))
		return s->mem;
	if (!s->view && vhost_iotlb_view_of(s, s->mem, &s->view)) {
		log_rl(LOG_ERR, "vhost %s: no memory for the IOTLB view", s->name);
		s->view = NULL;
	}
	return s->view;
}

void vhost_iotlb_reset(struct vhost_server *s)
{
	if (s->iotlb)
		iotlb_clear(s->iotlb);
	gmem_put(s->view);
	s->view = NULL;
}

/*
 * The frontend stopped the device (QEMU: GET_VRING_BASE on every ring at
 * vhost_dev_stop, e.g. a guest reset or reboot). What the guest's IOMMU
 * mapped may be gone without an invalidation reaching us (QEMU forwards
 * only device-IOTLB invalidations), so the next start begins with an empty
 * IOTLB and asks again.
 */
void vhost_iotlb_device_stopped(struct vhost_server *s)
{
	for (unsigned i = 0; i < s->info.num_queues; i++)
		if (s->vrings[i].started)
			return;
	if (s->iotlb && iotlb_count(s->iotlb))
		vhost_iotlb_reset(s);
}

/* True if the current view translates [iova] with @perm. */
static bool view_has(struct vhost_server *s, uint64_t iova, unsigned perm)
{
	void *p;
	uint64_t fault;

	return s->view && !gmem_ptr_perm(s->view, iova, 1, perm, &p, &fault);
}

/* Inside the queue's context: the device fails what waited on the miss. */
struct iotlb_fail {
	struct vhost_server *s;
	struct vhost_vring *vr;
	uint64_t iova;
};

static void iotlb_fail_fn(void *arg)
{
	struct iotlb_fail *w = arg;
	uint64_t iova;

	/*
	 * Only if the queue still waits on that address: a miss can be
	 * answered by an earlier update before it goes out, the request
	 * complete and the guest unmap or remap the page; the frontend then
	 * rightly refuses a miss that nobody needs any more.
	 */
	if (!virtq_miss(&w->vr->vq, &iova, NULL) || iova != w->iova)
		return;
	w->s->ops->queue_iotlb(w->s->opaque, w->vr, -EFAULT);
}

/*
 * A miss could not be answered: a started ring's device fails what
 * waits on it (the queue breaks: docs "The IOTLB"); a ring that could
 * not start signals its error fd.
 */
static void miss_failed(struct vhost_server *s, struct vhost_vring *vr, const char *why)
{
	struct vring_priv *p = &s->vpriv[vr->index];

	bad(s, "vring %u: IOTLB miss for IOVA %#llx %s (fatal only if the queue still needs it)",
	    vr->index,
	    (unsigned long long)p->miss_iova, why);
	if (vr->started && !p->stopping && s->ops->queue_iotlb) {
		struct iotlb_fail w = { .s = s, .vr = vr, .iova = p->miss_iova };

		if (s->ops->queue_exec(s->opaque, vr, iotlb_fail_fn, &w))
			s->broken = true;
	} else if (!vr->started) {
		vhost_vring_signal_err(vr);
	}
}

static void miss_done(void *arg, int result)
{
	struct vring_priv *p = arg;
	struct vhost_server *s = p->s;
	struct vhost_vring *vr = &s->vrings[p - s->vpriv];

	if (!p->miss_pending)
		return;            /* the connection was reset meanwhile */
	p->miss_pending = false;
	if (s->conn_fd < 0)
		return;
	/*
	 * The frontend answers a miss by sending the update first (and
	 * waiting for our ack of it), then acking the miss: by now an update
	 * covering the address came, if it ever will. (It may be gone again:
	 * the request completed and the guest unmapped it meanwhile.)
	 */
	if (!p->miss_answered && !view_has(s, p->miss_iova, p->miss_perm))
		miss_failed(s, vr, result == -ETIMEDOUT ? "not answered in time" :
			    result ? "refused by the frontend" : "answered without a mapping");
	/* What the ring needed next while this one was out. */
	if (p->miss_queued) {
		p->miss_queued = false;
		vhost_iotlb_miss(s, vr->index, p->next_iova, p->next_perm);
	}
	if (!vr->started)
		vring_try_start(s, vr);
}

void vhost_iotlb_miss(struct vhost_server *s, unsigned index, uint64_t iova, unsigned perm)
{
	struct vring_priv *p;
	struct vhost_msg_iotlb msg = {
		.iova = iova,
		.perm = (uint8_t)perm,
		.type = VHOST_IOTLB_MISS,
	};
	int ret;

	if (index >= s->info.num_queues || s->conn_fd < 0 || !iotlb_on(s))
		return;
	p = &s->vpriv[index];
	if (view_has(s, iova, perm)) {
		/* An update came in after the queue looked: it was already
		 * handed the new view (and popped again). */
		return;
	}
	if (p->miss_pending) {
		/* One out at a time per ring (acks match by order only): the
		 * latest need goes out when the current one is answered. */
		p->miss_queued = true;
		p->next_iova = iova;
		p->next_perm = perm;
		return;
	}
	p->miss_pending = true;
	p->miss_answered = false;
	p->miss_iova = iova;
	p->miss_perm = perm;
	log_debug("vhost %s: vring %u: IOTLB miss iova %#llx perm %u", s->name, index,
		  (unsigned long long)iova, perm);
	ret = vhost_backend_req_send(s->breq, VHOST_USER_BACKEND_IOTLB_MSG, &msg, sizeof(msg),
				     miss_done, p);
	if (ret) {
		p->miss_pending = false;
		miss_failed(s, &s->vrings[index], ret == -ENOTCONN ?
			    "cannot be sent: no backend request channel" :
			    "cannot be sent: channel full");
	}
}

int vhost_server_iotlb_miss(struct vhost_server *s, unsigned index, uint64_t iova,
			    unsigned perm)
{
	if (index >= s->info.num_queues || !s->vrings[index].started)
		return -ENOENT;
	vhost_iotlb_miss(s, index, iova, perm);
	return 0;
}

/* Is every byte of the frontend's [uva, uva+size) in shared memory? */
static bool uva_shared(const struct gmem *mem, uint64_t uva, uint64_t size)
{
	uint64_t cur = uva, left = size;

	while (left) {
		const struct gmem_region_desc *r = NULL;
		uint64_t piece;

		for (unsigned i = 0; i < gmem_nregions(mem); i++) {
			const struct gmem_region_desc *q = gmem_region(mem, i);

			if (cur >= q->uva && cur - q->uva < q->size) {
				r = q;
				break;
			}
		}
		if (!r)
			return false;
		piece = r->size - (cur - r->uva);
		if (piece >= left)
			return true;
		left -= piece;
		cur += piece;
	}
	return true;
}

/* Pending misses this update answers (see miss_done). */
static void note_answers(struct vhost_server *s, const struct vhost_msg_iotlb *io)
{
	for (unsigned i = 0; i < s->info.num_queues; i++) {
		struct vring_priv *p = &s->vpriv[i];

		if (p->miss_pending && p->miss_iova >= io->iova &&
		    p->miss_iova - io->iova < io->size && (io->perm & p->miss_perm) == p->miss_perm)
			p->miss_answered = true;
	}
}

/* The rings move to a view of the new table (those it lacks stop first:
 * H_PENDING, and we are re-run; the table change itself is idempotent). */
static int iotlb_commit(struct vhost_server *s)
{
	struct gmem *v;
	int ret = iotlb_view(s->iotlb, s->mem, &v);

	if (ret)
		return ret;
	ret = vring_space_switch(s, v, "IOTLB");
	if (ret) {
		gmem_put(v);
		return ret;
	}
	gmem_put(s->view);
	s->view = v;
	vring_try_start_all(s);
	return 0;
}

int h_iotlb_msg(struct vhost_server *s, struct vhost_msg *m)
{
	const struct vhost_msg_iotlb *io = &m->payload.iotlb;
	int ret;

	if (!s->features_set || !iotlb_on(s)) {
		bad(s, "IOTLB_MSG: ACCESS_PLATFORM not negotiated");
		return H_NACK;
	}
	if (!s->mem) {
		bad(s, "IOTLB_MSG: no memory table yet");
		return H_NACK;
	}
	ret = iotlb_ensure(s);
	if (ret)
		return ret;
	log_debug("vhost %s: IOTLB %s iova %#llx size %#llx uaddr %#llx perm %u", s->name,
		  io->type == VHOST_IOTLB_UPDATE ? "update" :
		  io->type == VHOST_IOTLB_INVALIDATE ? "invalidate" : "?",
		  (unsigned long long)io->iova, (unsigned long long)io->size,
		  (unsigned long long)io->uaddr, io->perm);
	switch (io->type) {
	case VHOST_IOTLB_UPDATE:
		if (!io->size || io->iova + io->size - 1 < io->iova ||
		    io->uaddr + io->size - 1 < io->uaddr || !io->perm ||
		    (io->perm & ~VHOST_ACCESS_RW)) {
			bad(s, "IOTLB update: invalid range or permission (iova %#llx size %#llx "
			    "perm %u)", (unsigned long long)io->iova,
			    (unsigned long long)io->size, io->perm);
			return H_NACK;
		}
		if (!uva_shared(s->mem, io->uaddr, io->size)) {
			bad(s, "IOTLB update: iova %#llx maps memory that was never shared",
			    (unsigned long long)io->iova);
			return H_NACK;
		}
		ret = iotlb_update(s->iotlb, io->iova, io->size, io->uaddr, io->perm);
		if (!ret)
			note_answers(s, io);
		break;
	case VHOST_IOTLB_INVALIDATE:
		/*
		 * Never refused: forgetting too much only costs misses. Size 0
		 * is 2^64 bytes, all of IOVA space: what QEMU sends for a
		 * guest's global device-IOTLB flush (intel-iommu in lazy mode
		 * flushes that way; Linux vhost reads it the same). A range
		 * that wraps is cut in two.
		 */
		if (!io->size) {
			iotlb_clear(s->iotlb);
			ret = 0;
		} else if (io->iova + io->size - 1 < io->iova) {
			ret = iotlb_invalidate(s->iotlb, io->iova, 0 - io->iova);
			if (!ret && io->iova + io->size)
				ret = iotlb_invalidate(s->iotlb, 0, io->iova + io->size);
		} else {
			ret = iotlb_invalidate(s->iotlb, io->iova, io->size);
		}
		break;
	default:
		bad(s, "IOTLB_MSG: type %u is not for the backend", io->type);
		return H_NACK;
	}
	if (ret)
		return ret == -EINVAL ? H_NACK : ret;
	return iotlb_commit(s);
}
