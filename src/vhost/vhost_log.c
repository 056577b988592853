/* SPDX-License-Identifier: MIT */
/*
 * vhost_log.c - dirty logging for live migration on the vhost-user side:
 * SET_LOG_BASE validation and mapping, and the per-ring log settings
 * (which log, where the ring areas are in guest physical space). The
 * bitmap is gmem's; the message flow is vhost_server.c's.
 */
#include <errno.h>

#include "common/compiler.h"
#include "vhost/vhost_log.h"

int vhost_log_open(const struct vhost_msg_log *p, int fd, const struct gmem *mem,
		   struct gmem_log **out, const char **why)
{
	struct gmem_log *log;
	int ret;

	if (p->mmap_size == 0 || p->mmap_size > GMEM_LOG_MAX_SIZE) {
		*why = "log size is zero or too large";
		return -EINVAL;
	}
	if (p->mmap_offset > GMEM_LOG_MAX_SIZE) {
		*why = "log offset too large";
		return -EINVAL;
	}
	ret = gmem_log_create(fd, p->mmap_size, p->mmap_offset, &log);
	if (ret) {
		*why = ret == -EFBIG ? "log reaches past the end of its file"
				     : "log fd cannot be mapped";
		return ret;
	}
	for (unsigned i = 0; i < gmem_nregions(mem); i++) {
		const struct gmem_region_desc *r = gmem_region(mem, i);

		if (!gmem_log_covers(log, r->gpa, r->size)) {
			*why = "log too small for the memory table";
			gmem_log_put(log);
			return -EINVAL;
		}
	}
	*out = log;
	return 0;
}

int vhost_log_ring_cfg(struct gmem_log *log, bool on, const struct gmem *mem,
		       const struct vhost_vring *vr, bool packed, struct vhost_log_ring *out,
		       const char **why)
{
	uint64_t dsz, drsz, dvsz;

	*out = (struct vhost_log_ring){ 0 };
	if (!log || !on)
		return 0;
	virtq_area_sizes(vr->num, packed, &dsz, &drsz, &dvsz);
	if (vr->addr_flags & (1u << VHOST_VRING_F_LOG)) {
		out->device_gpa = vr->log_addr;
	} else if (gmem_uva_to_gpa(mem, vr->used_uva, dvsz, &out->device_gpa)) {
		*why = "used ring not in guest memory";
		return -ERANGE;
	}
	if (!gmem_log_covers(log, out->device_gpa, dvsz)) {
		*why = "ring log address outside the log";
		return -ERANGE;
	}
	if (packed) {
		if (gmem_uva_to_gpa(mem, vr->desc_uva, dsz, &out->desc_gpa)) {
			*why = "descriptor ring not in guest memory";
			return -ERANGE;
		}
		if (!gmem_log_covers(log, out->desc_gpa, dsz)) {
			*why = "descriptor ring outside the log";
			return -ERANGE;
		}
	}
	out->log = log;
	return 0;
}

int vhost_log_ring_start(struct gmem_log *log, bool on, const struct gmem *mem,
			 struct vhost_vring *vr, bool packed, const char **why)
{
	struct vhost_log_ring c;
	int ret = vhost_log_ring_cfg(log, on, mem, vr, packed, &c, why);

	if (ret)
		return ret;
	virtq_set_log(&vr->vq, gmem_log_get(c.log), c.desc_gpa, c.device_gpa);
	return 0;
}

void vhost_log_ring_stop(struct vhost_vring *vr)
{
	gmem_log_put(virtq_log(&vr->vq));
	virtq_set_log(&vr->vq, NULL, 0, 0);
}

/* A running ring's switch; cfg.log comes in referenced and leaves holding
 * the ring's previous log. */
struct log_swap {
	struct vhost_vring *vr;
	struct vhost_log_ring cfg;
};

/* Context: the thread serving the ring (queue_exec). */
static void log_swap_fn(void *arg)
{
	struct log_swap *w = arg;
	struct virtq *vq = &w->vr->vq;
	struct gmem_log *old = virtq_log(vq);

	virtq_set_log(vq, w->cfg.log, w->cfg.desc_gpa, w->cfg.device_gpa);
	w->cfg.log = old;
}

int vhost_log_apply(struct vhost_vring *vrings, unsigned n, struct vhost_vring *only,
		    struct gmem_log *log, bool on, const struct gmem *mem,
		    const struct vhost_dev_ops *ops, void *opaque, unsigned *bad_index,
		    const char **why)
{
	struct log_swap w[VHOST_MAX_QUEUES];
	unsigned i;
	int ret, err = 0;

	for (i = 0; i < n && i < VHOST_MAX_QUEUES; i++) {
		struct vhost_vring *vr = &vrings[i];

		w[i].vr = NULL;
		if (!vr->started || (only && vr != only))
			continue;
		if (vhost_log_ring_cfg(log, on, mem, vr, virtq_is_packed(&vr->vq), &w[i].cfg, why)) {
			*bad_index = i;
			return -ERANGE;
		}
		w[i].vr = vr;
	}
	for (i = 0; i < n && i < VHOST_MAX_QUEUES; i++) {
		if (!w[i].vr)
			continue;
		gmem_log_get(w[i].cfg.log);
		ret = ops->queue_exec(opaque, w[i].vr, log_swap_fn, &w[i]);
		/* Done: the ring no longer marks the old log, which may go now.
		 * Not done (its thread did not answer, the call was withdrawn):
		 * cfg.log is still the new one, and the ring logs as before,
		 * which the frontend must not believe it does. */
		gmem_log_put(w[i].cfg.log);
		if (ret && !err) {
			err = ret;
			*bad_index = i;
			*why = "the ring's thread does not answer: dirty log not switched";
		}
	}
	return err;
}
