/* SPDX-License-Identifier: MIT */
/*
 * vhost_handlers.c - the vhost-user message handlers of the backend and
 * their dispatch table. Each message has been checked for format
 * (vhost_msg.c) before it gets here; handlers check state and indices.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "vhost/vhost_server_internal.h"

/* Protocol features this backend implements. */
#define SERVER_PROTOCOL_FEATURES \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) | \
	 (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
	 (1ull << VHOST_USER_PROTOCOL_F_CONFIG) | \
	 (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | \
	 (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) | \
	 (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD) | \
	 (1ull << VHOST_USER_PROTOCOL_F_BACKEND_REQ))

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
	/* Rebuilt on first use from the table as it is now. */
	gmem_put(s->view);
	s->view = NULL;
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
	if (vring_stop_all(s) == H_PENDING)
		return H_PENDING;
	for (unsigned i = 0; i < s->info.num_queues; i++)
		vring_reset(s, i);
	gmem_put(s->mem);
	s->mem = NULL;
	vhost_iotlb_reset(s);
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

	if (!mem_table_built(s)) {
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

	if (!mem_table_built(s)) {
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
	if (!mem_table_built(s)) {
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
	vhost_iotlb_device_stopped(s);
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

/* Learn what an eventfd looks like; once, before any sandbox. */
void vring_fd_probe(void)
{
	pthread_once(&anon_once, anon_probe);
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
	[VHOST_USER_IOTLB_MSG] = h_iotlb_msg,
};

int vhost_server_handle(struct vhost_server *s, struct vhost_msg *m)
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
