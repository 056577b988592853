/* SPDX-License-Identifier: MIT */
/*
 * vhost_frontend.c - the frontend (client) side of vhost-user: blocking
 * request/reply over one unix stream socket, with fds and REPLY_ACK.
 * It owns only the socket; memory, rings and eventfds belong to the caller.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "common/compiler.h"
#include "common/sock.h"
#include "vhost/vhost_frontend.h"

struct vhost_frontend {
	int fd;
	bool reply_ack;
};

int vhost_frontend_from_fd(int fd, struct vhost_frontend **out)
{
	struct vhost_frontend *f;

	if (fd < 0)
		return -EBADF;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = fd;
	*out = f;
	return 0;
}

int vhost_frontend_connect(const char *path, struct vhost_frontend **out)
{
	int fd = sock_connect_unix(path), ret;

	if (fd < 0)
		return fd;
	ret = vhost_frontend_from_fd(fd, out);
	if (ret)
		close(fd);
	return ret;
}

void vhost_frontend_destroy(struct vhost_frontend *f)
{
	if (!f)
		return;
	close(f->fd);
	free(f);
}

int vhost_frontend_fd(const struct vhost_frontend *f)
{
	return f->fd;
}

int vhost_frontend_set_timeout(struct vhost_frontend *f, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

void vhost_frontend_set_reply_ack(struct vhost_frontend *f, bool on)
{
	f->reply_ack = on;
}

int vhost_frontend_send(struct vhost_frontend *f, uint32_t request, uint32_t flags,
			const void *payload, uint32_t size, const int *fds, unsigned nfds)
{
	struct vhost_msg_hdr hdr = { .request = request, .flags = flags, .size = size };

	return vhost_msg_send(f->fd, &hdr, payload, size, fds, nfds);
}

int vhost_frontend_recv(struct vhost_frontend *f, struct vhost_msg *msg)
{
	return vhost_msg_recv(f->fd, msg);
}

int vhost_frontend_recv_reply(struct vhost_frontend *f, uint32_t request, void *payload,
			      uint32_t size, uint32_t *got)
{
	struct vhost_msg msg;
	int ret;

	ret = vhost_msg_recv(f->fd, &msg);
	if (ret)
		return ret;
	vhost_msg_close_fds(&msg);
	if (msg.hdr.flags != (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK) ||
	    msg.hdr.request != request)
		return -EPROTO;
	if (size != UINT32_MAX && msg.hdr.size != size)
		return -EPROTO;
	if (payload)
		memcpy(payload, &msg.payload, msg.hdr.size);
	if (got)
		*got = msg.hdr.size;
	return 0;
}

int vhost_frontend_request(struct vhost_frontend *f, uint32_t request, const void *payload,
			   uint32_t size, const int *fds, unsigned nfds)
{
	uint32_t flags = VHOST_USER_VERSION;
	uint64_t ack;
	int ret;

	if (f->reply_ack)
		flags |= VHOST_USER_NEED_REPLY_MASK;
	ret = vhost_frontend_send(f, request, flags, payload, size, fds, nfds);
	if (ret || !f->reply_ack)
		return ret;
	ret = vhost_frontend_recv_reply(f, request, &ack, sizeof(ack), NULL);
	if (ret)
		return ret;
	return ack ? -EIO : 0;
}

/* A request whose reply is a u64 (GET_FEATURES and friends). */
static int get_u64(struct vhost_frontend *f, uint32_t request, uint64_t *val)
{
	int ret = vhost_frontend_send(f, request, VHOST_USER_VERSION, NULL, 0, NULL, 0);

	if (ret)
		return ret;
	return vhost_frontend_recv_reply(f, request, val, sizeof(*val), NULL);
}

static int set_u64(struct vhost_frontend *f, uint32_t request, uint64_t val)
{
	return vhost_frontend_request(f, request, &val, sizeof(val), NULL, 0);
}

int vhost_frontend_get_features(struct vhost_frontend *f, uint64_t *features)
{
	return get_u64(f, VHOST_USER_GET_FEATURES, features);
}

int vhost_frontend_set_features(struct vhost_frontend *f, uint64_t features)
{
	return set_u64(f, VHOST_USER_SET_FEATURES, features);
}

int vhost_frontend_get_protocol_features(struct vhost_frontend *f, uint64_t *features)
{
	return get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES, features);
}

int vhost_frontend_set_protocol_features(struct vhost_frontend *f, uint64_t features)
{
	/* Not acked itself: REPLY_ACK applies from the next message on. */
	struct vhost_msg_hdr hdr = {
		.request = VHOST_USER_SET_PROTOCOL_FEATURES,
		.flags = VHOST_USER_VERSION,
		.size = sizeof(features),
	};
	int ret = vhost_msg_send(f->fd, &hdr, &features, sizeof(features), NULL, 0);

	if (!ret)
		f->reply_ack = features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
	return ret;
}

int vhost_frontend_set_owner(struct vhost_frontend *f)
{
	return vhost_frontend_request(f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
}

int vhost_frontend_reset_owner(struct vhost_frontend *f)
{
	return vhost_frontend_request(f, VHOST_USER_RESET_OWNER, NULL, 0, NULL, 0);
}

int vhost_frontend_get_queue_num(struct vhost_frontend *f, uint64_t *num)
{
	return get_u64(f, VHOST_USER_GET_QUEUE_NUM, num);
}

int vhost_frontend_get_max_mem_slots(struct vhost_frontend *f, uint64_t *slots)
{
	return get_u64(f, VHOST_USER_GET_MAX_MEM_SLOTS, slots);
}

static void region_to_wire(struct vhost_msg_mem_region *w, const struct gmem_region_desc *r)
{
	w->gpa = r->gpa;
	w->size = r->size;
	w->uva = r->uva;
	w->mmap_offset = r->mmap_offset;
}

int vhost_frontend_set_mem_table(struct vhost_frontend *f, const struct gmem_region_desc *regions,
				 const int *fds, unsigned n)
{
	struct vhost_msg_memory mem = { .nregions = n };

	if (n == 0 || n > VHOST_USER_MAX_MEM_REGIONS)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		region_to_wire(&mem.regions[i], &regions[i]);
	return vhost_frontend_request(f, VHOST_USER_SET_MEM_TABLE, &mem,
				      (uint32_t)(offsetof(struct vhost_msg_memory, regions) +
						 n * sizeof(mem.regions[0])),
				      fds, n);
}

int vhost_frontend_add_mem_reg(struct vhost_frontend *f, const struct gmem_region_desc *r, int fd)
{
	struct vhost_msg_mem_single m = { 0 };

	region_to_wire(&m.region, r);
	return vhost_frontend_request(f, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), &fd, 1);
}

int vhost_frontend_rem_mem_reg(struct vhost_frontend *f, const struct gmem_region_desc *r, int fd)
{
	struct vhost_msg_mem_single m = { 0 };

	region_to_wire(&m.region, r);
	return vhost_frontend_request(f, VHOST_USER_REM_MEM_REG, &m, sizeof(m), &fd,
				      fd >= 0 ? 1 : 0);
}

static int set_state(struct vhost_frontend *f, uint32_t request, unsigned index, unsigned num)
{
	struct vhost_msg_vring_state st = { .index = index, .num = num };

	return vhost_frontend_request(f, request, &st, sizeof(st), NULL, 0);
}

int vhost_frontend_set_vring_num(struct vhost_frontend *f, unsigned index, unsigned num)
{
	return set_state(f, VHOST_USER_SET_VRING_NUM, index, num);
}

int vhost_frontend_set_vring_base(struct vhost_frontend *f, unsigned index, unsigned base)
{
	return set_state(f, VHOST_USER_SET_VRING_BASE, index, base);
}

int vhost_frontend_set_vring_enable(struct vhost_frontend *f, unsigned index, bool enable)
{
	return set_state(f, VHOST_USER_SET_VRING_ENABLE, index, enable ? 1 : 0);
}

int vhost_frontend_set_log_base(struct vhost_frontend *f, int fd, uint64_t size, uint64_t offset)
{
	struct vhost_msg_log l = { .mmap_size = size, .mmap_offset = offset };
	int ret = vhost_frontend_send(f, VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION, &l,
				      sizeof(l), &fd, 1);

	return ret ?: vhost_frontend_recv_reply(f, VHOST_USER_SET_LOG_BASE, NULL, 0, NULL);
}

int vhost_frontend_get_inflight_fd(struct vhost_frontend *f, const struct vhost_msg_inflight *in,
				   struct vhost_msg_inflight *out, int *fd)
{
	struct vhost_msg m;
	int ret;

	*fd = -1;
	ret = vhost_frontend_send(f, VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_VERSION, in,
				  sizeof(*in), NULL, 0);
	ret = ret ?: vhost_frontend_recv(f, &m);
	if (ret)
		return ret;
	if (m.hdr.request != VHOST_USER_GET_INFLIGHT_FD || m.hdr.size != sizeof(*out) ||
	    !(m.hdr.flags & VHOST_USER_REPLY_MASK) || m.nfds > 1) {
		vhost_msg_close_fds(&m);
		return -EPROTO;
	}
	memcpy(out, &m.payload.inflight, sizeof(*out));
	*fd = vhost_msg_take_fd(&m, 0);
	vhost_msg_close_fds(&m);
	return 0;
}

int vhost_frontend_set_inflight_fd(struct vhost_frontend *f, const struct vhost_msg_inflight *in,
				   int fd)
{
	return vhost_frontend_request(f, VHOST_USER_SET_INFLIGHT_FD, in, sizeof(*in), &fd,
				      fd >= 0 ? 1 : 0);
}

int vhost_frontend_set_vring_addr(struct vhost_frontend *f, unsigned index, uint32_t flags,
				  uint64_t desc, uint64_t used, uint64_t avail, uint64_t log)
{
	struct vhost_msg_vring_addr a = {
		.index = index, .flags = flags, .desc = desc, .used = used, .avail = avail, .log = log,
	};

	return vhost_frontend_request(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

int vhost_frontend_get_vring_base(struct vhost_frontend *f, unsigned index, unsigned *base)
{
	struct vhost_msg_vring_state st = { .index = index };
	int ret;

	ret = vhost_frontend_send(f, VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &st,
				  sizeof(st), NULL, 0);
	if (ret)
		return ret;
	ret = vhost_frontend_recv_reply(f, VHOST_USER_GET_VRING_BASE, &st, sizeof(st), NULL);
	if (ret)
		return ret;
	if (st.index != index)
		return -EPROTO;
	*base = st.num;
	return 0;
}

static int set_vring_fd(struct vhost_frontend *f, uint32_t request, unsigned index, int fd)
{
	uint64_t v = index & VHOST_USER_VRING_IDX_MASK;

	if (index > VHOST_USER_VRING_IDX_MASK)
		return -EINVAL;
	if (fd < 0)
		v |= VHOST_USER_VRING_NOFD_MASK;
	return vhost_frontend_request(f, request, &v, sizeof(v), &fd, fd < 0 ? 0 : 1);
}

int vhost_frontend_set_vring_kick(struct vhost_frontend *f, unsigned index, int fd)
{
	return set_vring_fd(f, VHOST_USER_SET_VRING_KICK, index, fd);
}

int vhost_frontend_set_vring_call(struct vhost_frontend *f, unsigned index, int fd)
{
	return set_vring_fd(f, VHOST_USER_SET_VRING_CALL, index, fd);
}

int vhost_frontend_set_vring_err(struct vhost_frontend *f, unsigned index, int fd)
{
	return set_vring_fd(f, VHOST_USER_SET_VRING_ERR, index, fd);
}

int vhost_frontend_get_config(struct vhost_frontend *f, uint32_t offset, void *buf, uint32_t len)
{
	return vhost_frontend_get_config_flags(f, offset, buf, len, 0);
}

int vhost_frontend_get_config_flags(struct vhost_frontend *f, uint32_t offset, void *buf,
				    uint32_t len, uint32_t flags)
{
	union vhost_msg_payload p = { .config = { .offset = offset, .size = len, .flags = flags } };
	uint32_t got;
	int ret;

	if (len > VHOST_USER_MAX_CONFIG_SIZE)
		return -EINVAL;
	ret = vhost_frontend_send(f, VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, &p,
				  VHOST_USER_CONFIG_HDR_SIZE + len, NULL, 0);
	if (ret)
		return ret;
	ret = vhost_frontend_recv_reply(f, VHOST_USER_GET_CONFIG, &p, UINT32_MAX, &got);
	if (ret)
		return ret;
	if (got == 0)
		return -EIO;
	if (got != VHOST_USER_CONFIG_HDR_SIZE + len || p.config.size != len ||
	    p.config.offset != offset)
		return -EPROTO;
	memcpy(buf, p.config.payload, len);
	return 0;
}

int vhost_frontend_set_config(struct vhost_frontend *f, uint32_t offset, const void *buf,
			      uint32_t len, uint32_t flags)
{
	struct vhost_msg_config c = { .offset = offset, .size = len, .flags = flags };

	if (len > VHOST_USER_MAX_CONFIG_SIZE)
		return -EINVAL;
	memcpy(c.payload, buf, len);
	return vhost_frontend_request(f, VHOST_USER_SET_CONFIG, &c,
				      VHOST_USER_CONFIG_HDR_SIZE + len, NULL, 0);
}
