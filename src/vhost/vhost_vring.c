/* SPDX-License-Identifier: MIT */
/*
 * vhost_vring.c - vring lifecycle of the vhost-user backend: translating
 * ring addresses, starting and stopping rings through the device ops,
 * swapping a running ring's fds and memory table in its own context, and
 * committing a new memory table (stopping the rings it orphans first).
 */
#include <errno.h>
#include <string.h>

#include "vhost/vhost_server_internal.h"

/*
 * Host addresses of vr's three areas in @space (the memory table, or with
 * ACCESS_PLATFORM the IOTLB view, where ring addresses are IOVAs and the
 * device needs read access to what it reads and write access to what it
 * writes), each checked for size and alignment (split: 16/2/4, packed:
 * 16/4/4). -EFAULT: an area is not (all) mapped; with a view, *fault and
 * *perm say the first missing IOVA and the access needed. -EACCES: mapped
 * without the access needed; -ERANGE: not contiguous in host memory;
 * -EINVAL: misaligned.
 */
int vring_translate(const struct vhost_server *s, const struct gmem *space,
		    const struct vhost_vring *vr, bool packed, struct ring_ptrs *p,
		    uint64_t *fault, unsigned *perm)
{
	uint64_t dsz, drsz, dvsz;
	uintptr_t drv_align = packed ? 4 : 2;

	virtq_area_sizes(vr->num, packed, &dsz, &drsz, &dvsz);
	if (iotlb_on(s)) {
		const struct {
			uint64_t iova, size;
			unsigned perm;
			void **out;
		} area[3] = {
			{ vr->desc_uva, dsz, packed ? GMEM_PERM_RW : GMEM_PERM_READ, &p->desc },
			{ vr->avail_uva, drsz, GMEM_PERM_READ, &p->driver },
			{ vr->used_uva, dvsz, GMEM_PERM_RW, &p->device },
		};

		for (unsigned i = 0; i < 3; i++) {
			int ret = gmem_ptr_perm(space, area[i].iova, area[i].size, area[i].perm,
						area[i].out, fault);

			*perm = area[i].perm;
			if (ret)
				return ret;
		}
	} else {
		p->desc = gmem_uva_ptr(space, vr->desc_uva, dsz);
		p->driver = gmem_uva_ptr(space, vr->avail_uva, drsz);
		p->device = gmem_uva_ptr(space, vr->used_uva, dvsz);
		if (!p->desc || !p->driver || !p->device)
			return -EFAULT;
	}
	if (((uintptr_t)p->desc & 15) || ((uintptr_t)p->driver & (drv_align - 1)) ||
	    ((uintptr_t)p->device & 3))
		return -EINVAL;
	return 0;
}

static const char *translate_error(int ret)
{
	switch (ret) {
	case -EFAULT: return "not in guest memory";
	case -EACCES: return "mapped without the access the device needs";
	case -ERANGE: return "not contiguous in guest memory";
	default: return "misaligned";
	}
}

/* Start vr if it is fully configured, enabled and not running. */
void vring_try_start(struct vhost_server *s, struct vhost_vring *vr)
{
	struct vring_priv *p = &s->vpriv[vr->index];
	bool packed = vring_is_packed(s);
	struct virtq_config cfg;
	struct ring_ptrs rp;
	struct gmem *space;
	const char *why;
	unsigned perm = 0;
	uint64_t fault = 0;
	int ret;

	if (vr->started || !p->kick_set || !p->addr_set || !vr->num || !s->mem ||
	    !vring_enabled(s, vr))
		return;
	space = vring_space(s);
	if (!space)
		return;
	ret = vring_translate(s, space, vr, packed, &rp, &fault, &perm);
	if (ret == -EFAULT && iotlb_on(s)) {
		/* Not in the IOTLB yet: ask; an update retries the start. */
		vhost_iotlb_miss(s, vr->index, fault, perm);
		return;
	}
	if (ret) {
		bad(s, "vring %u: ring areas %s; not started", vr->index, translate_error(ret));
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
	vr->mem = gmem_get(space);
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

void vring_try_start_all(struct vhost_server *s)
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
	p->used_base = virtq_get_used_base(&vr->vq);
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
void vring_stop(struct vhost_server *s, struct vhost_vring *vr)
{
	struct vring_priv *p = &s->vpriv[vr->index];

	if (!vr->started || p->stopping)
		return;
	p->stopping = true;
	s->stops_pending++;
	s->ops->queue_stop(s->opaque, vr, stop_done, p);
}

/* Forget a stopped ring's configuration and close its fds. */
void vring_reset(struct vhost_server *s, unsigned i)
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
int vring_stop_all(struct vhost_server *s)
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
int vring_set_queue_fd(struct vhost_server *s, struct vhost_vring *vr, int *field, int fd)
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
	struct vhost_server *s;
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
	virtq_set_rings(&vr->vq, w->rp.desc, w->rp.driver, w->rp.device);
	w->mem = old;
	/* A queue waiting on an IOTLB miss may pop again. */
	if (gmem_is_view(vr->mem) && w->s->ops->queue_iotlb)
		w->s->ops->queue_iotlb(w->s->opaque, vr, 0);
}

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

int vring_space_switch(struct vhost_server *s, struct gmem *space, const char *what)
{
	bool stopping = false;
	unsigned i, perm;
	uint64_t fault;

	for (i = 0; i < s->info.num_queues; i++) {
		struct vhost_vring *vr = &s->vrings[i];
		struct ring_ptrs rp;

		if (!vr->started)
			continue;
		if (vring_translate(s, space, vr, virtq_is_packed(&vr->vq), &rp, &fault, &perm)) {
			bad(s, "vring %u: ring not in the new %s; stopping it", i, what);
			vring_stop(s, vr);
			stopping = true;
		}
	}
	if (stopping)
		return H_PENDING;

	for (i = 0; i < s->info.num_queues; i++) {
		struct vhost_vring *vr = &s->vrings[i];
		struct mem_swap w = { .s = s, .vr = vr };

		if (!vr->started)
			continue;
		/* Checked above; the table cannot have changed since. */
		vring_translate(s, space, vr, virtq_is_packed(&vr->vq), &w.rp, &fault, &perm);
		w.mem = gmem_get(space);
		/* Not swapped: the ring keeps its old table (and mappings) until
		 * the connection, marked broken, is closed. */
		if (s->ops->queue_exec(s->opaque, vr, mem_swap_fn, &w))
			s->broken = true;
		gmem_put(w.mem);
	}
	return 0;
}

/*
 * Make s->next_mem the memory table. If it drops a region, every started
 * ring is stopped (drained) first; else started rings whose areas do not
 * translate in it are stopped (H_PENDING either way; the caller re-runs
 * us); the others switch table and ring pointers inside their queue
 * context. With ACCESS_PLATFORM the rings switch to a new IOTLB view
 * built through the new table.
 */
int mem_commit(struct vhost_server *s)
{
	struct gmem *space;
	int ret;

	/*
	 * A region goes away (REM_MEM_REG, or a SET_MEM_TABLE without it):
	 * once we answer, the frontend may reuse that memory, but requests in
	 * flight may still write into it. Stop every ring first: a stop
	 * completes only when its last request has (like GET_VRING_BASE). The
	 * rings restart with the new table where they stopped.
	 */
	if (mem_drops_region(s->mem, s->next_mem) && vring_stop_all(s) == H_PENDING)
		return H_PENDING;

	if (iotlb_on(s)) {
		ret = vhost_iotlb_view_of(s, s->next_mem, &space);
		if (ret)
			return ret;
	} else {
		space = gmem_get(s->next_mem);
	}
	ret = vring_space_switch(s, space, "memory table");
	if (ret) {
		gmem_put(space);
		return ret;
	}
	gmem_put(s->mem);
	s->mem = s->next_mem;
	s->next_mem = NULL;
	if (iotlb_on(s)) {
		gmem_put(s->view);
		s->view = space;
	} else {
		gmem_put(space);
	}
	/* Ring addresses in guest physical space may have moved. */
	if (s->log && log_all_on(s) && log_apply(s, s->log, true, NULL))
		bad(s, "dirty logging of the rings not updated for the new memory table");
	vring_try_start_all(s);
	return 0;
}
