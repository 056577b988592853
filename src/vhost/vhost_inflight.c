/* SPDX-License-Identifier: MIT */
/*
 * vhost_inflight.c - INFLIGHT_SHMFD on the backend side: creating the
 * shared inflight area (GET_INFLIGHT_FD) and mapping the one the frontend
 * keeps for us (SET_INFLIGHT_FD); rings pick their region up at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "vhost/vhost_server_internal.h"

/* ---- inflight tracking ------------------------------------------------- */

/* Largest area we create or map: every queue at the largest ring size. */
#define INFLIGHT_MAX_SIZE \
	((uint64_t)VHOST_MAX_QUEUES * (32 + 32 * (uint64_t)VIRTQ_MAX_SIZE + 64))

static bool inflight_on(const struct vhost_server *s)
{
	return s->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD);
}

void inflight_unmap(struct vhost_server *s)
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
int h_get_inflight_fd(struct vhost_server *s, struct vhost_msg *m)
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
int h_set_inflight_fd(struct vhost_server *s, struct vhost_msg *m)
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
	if (vring_stop_all(s) == H_PENDING)
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
