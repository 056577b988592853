/* SPDX-License-Identifier: MIT */
/*
 * vhost_msg.c - vhost-user message I/O and format rules: incremental
 * receive with SCM_RIGHTS fds (bounded, close-on-exec, never leaked),
 * send with fds, and the exact size/fd-count check of every request
 * before anyone acts on it. Knows nothing about devices or memory.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/compiler.h"
#include "vhost/vhost_msg.h"

void vhost_msg_rx_init(struct vhost_msg_rx *rx)
{
	memset(rx, 0, sizeof(*rx));
	for (unsigned i = 0; i < VHOST_USER_MAX_FDS; i++)
		rx->msg.fds[i] = -1;
}

void vhost_msg_close_fds(struct vhost_msg *msg)
{
	for (unsigned i = 0; i < msg->nfds; i++) {
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
		msg->fds[i] = -1;
	}
	msg->nfds = 0;
}

void vhost_msg_rx_reset(struct vhost_msg_rx *rx)
{
	vhost_msg_close_fds(&rx->msg);
	vhost_msg_rx_init(rx);
}

int vhost_msg_take_fd(struct vhost_msg *msg, unsigned i)
{
	int fd;

	if (i >= msg->nfds)
		return -1;
	fd = msg->fds[i];
	msg->fds[i] = -1;
	return fd;
}

/*
 * Keep the fds of one control message. More than VHOST_USER_MAX_FDS in
 * total for the message is an error; the surplus is closed at once.
 * Return: true if every fd fitted.
 */
static bool rx_collect_fds(struct vhost_msg *msg, struct msghdr *mh)
{
	bool fit = !(mh->msg_flags & MSG_CTRUNC);

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			/* CMSG_DATA may be unaligned for int: copy bytes. */
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (msg->nfds < VHOST_USER_MAX_FDS) {
				msg->fds[msg->nfds++] = fd;
			} else {
				close(fd);
				fit = false;
			}
		}
	}
	return fit;
}

/* One recvmsg into buf; fds go to rx->msg. Return: bytes, 0 on EOF, -errno. */
static ssize_t rx_recv(int fd, struct vhost_msg_rx *rx, void *buf, size_t len, bool *fit)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	ssize_t n;

	do {
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	*fit = rx_collect_fds(&rx->msg, &mh);
	return n;
}

int vhost_msg_rx_read(int fd, struct vhost_msg_rx *rx)
{
	struct vhost_msg *msg = &rx->msg;
	const size_t hdr_len = sizeof(msg->hdr);

	for (;;) {
		uint8_t *buf;
		size_t want;
		ssize_t n;
		bool fit = true;

		if (rx->hdr_got < hdr_len) {
			buf = (uint8_t *)&msg->hdr + rx->hdr_got;
			want = hdr_len - rx->hdr_got;
		} else {
			if (msg->hdr.size > VHOST_MSG_MAX_PAYLOAD)
				return -EMSGSIZE;
			if (rx->payload_got == msg->hdr.size)
				return 1;
			buf = (uint8_t *)&msg->payload + rx->payload_got;
			want = msg->hdr.size - rx->payload_got;
		}
		n = rx_recv(fd, rx, buf, want, &fit);
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return 0;
		if (n < 0)
			return (int)n;
		if (!fit)
			return -EBADMSG;
		if (n == 0)
			return -EPIPE;
		if (rx->hdr_got < hdr_len)
			rx->hdr_got += (size_t)n;
		else
			rx->payload_got += (size_t)n;
	}
}

int vhost_msg_recv(int fd, struct vhost_msg *msg)
{
	struct vhost_msg_rx rx;
	int ret;

	vhost_msg_rx_init(&rx);
	ret = vhost_msg_rx_read(fd, &rx);
	if (ret == 1) {
		*msg = rx.msg;
		return 0;
	}
	vhost_msg_rx_reset(&rx);
	/* 0 here means a receive timeout on a blocking socket. */
	return ret == 0 ? -EAGAIN : ret;
}

int vhost_msg_send(int fd, const struct vhost_msg_hdr *hdr, const void *payload,
		   uint32_t size, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov[2] = {
		{ .iov_base = (void *)hdr, .iov_len = sizeof(*hdr) },
		{ .iov_base = (void *)payload, .iov_len = payload ? size : 0 },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	size_t left = iov[0].iov_len + iov[1].iov_len;

	if (nfds > VHOST_USER_MAX_FDS || (size && !payload))
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	while (left) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* The fds went with the first byte; never send them twice. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		left -= (size_t)n;
		while (n > 0 && mh.msg_iovlen) {
			size_t step = MIN((size_t)n, mh.msg_iov->iov_len);

			mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + step;
			mh.msg_iov->iov_len -= step;
			n -= (ssize_t)step;
			if (!mh.msg_iov->iov_len) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
	return 0;
}

void vhost_msg_tx_init(struct vhost_msg_tx *tx)
{
	tx->len = tx->off = 0;
	tx->fd = -1;
}

void vhost_msg_tx_reset(struct vhost_msg_tx *tx)
{
	if (tx->fd >= 0)
		close(tx->fd);
	vhost_msg_tx_init(tx);
}

bool vhost_msg_tx_pending(const struct vhost_msg_tx *tx)
{
	return tx->off < tx->len;
}

int vhost_msg_tx_queue(struct vhost_msg_tx *tx, const struct vhost_msg_hdr *hdr,
		       const void *payload, uint32_t size, int fd)
{
	if (vhost_msg_tx_pending(tx) || size > VHOST_MSG_MAX_PAYLOAD || (size && !payload)) {
		if (fd >= 0)
			close(fd);
		return vhost_msg_tx_pending(tx) ? -EBUSY : -EINVAL;
	}
	vhost_msg_tx_reset(tx);
	memcpy(tx->buf, hdr, sizeof(*hdr));
	if (size)
		memcpy(tx->buf + sizeof(*hdr), payload, size);
	tx->len = sizeof(*hdr) + size;
	tx->fd = fd;
	return 0;
}

int vhost_msg_tx_write(int sock, struct vhost_msg_tx *tx)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf;

	while (vhost_msg_tx_pending(tx)) {
		struct iovec iov = { .iov_base = tx->buf + tx->off, .iov_len = tx->len - tx->off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (tx->fd >= 0) {
			struct cmsghdr *c;

			memset(&cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = sizeof(cbuf.buf);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &tx->fd, sizeof(int));
		}
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		/* The fd went with the first byte; never send it twice. */
		if (tx->fd >= 0) {
			close(tx->fd);
			tx->fd = -1;
		}
		tx->off += (size_t)n;
	}
	vhost_msg_tx_reset(tx);
	return 1;
}

/* ---- format rules --------------------------------------------------- */

enum rule_kind {
	R_UNKNOWN = 0,
	R_FIXED,        /* exact size, exact fd count */
	R_FIXED_FD01,   /* exact size, 0 or 1 fd (REM_MEM_REG, see spec) */
	R_VRING_FD,     /* u64 index | NOFD flag; 1 fd unless NOFD */
	R_MEM_TABLE,    /* 8 + n * 32 bytes, n fds, 1 <= n <= 8 */
	R_CONFIG,       /* 12 + size bytes, size <= 256 */
};

struct rule {
	const char *name;
	uint8_t kind;
	uint8_t fds;
	uint8_t has_reply;
	uint16_t size;
};

#define FIXED(n, sz, nfd, rep) [VHOST_USER_##n] = { #n, R_FIXED, nfd, rep, sz }

static const struct rule rules[VHOST_USER_REQUEST_MAX] = {
	FIXED(GET_FEATURES, 0, 0, 1),
	FIXED(SET_FEATURES, 8, 0, 0),
	FIXED(SET_OWNER, 0, 0, 0),
	FIXED(RESET_OWNER, 0, 0, 0),
	/* The backend answers with an empty SET_LOG_BASE reply. */
	FIXED(SET_LOG_BASE, sizeof(struct vhost_msg_log), 1, 1),
	[VHOST_USER_SET_MEM_TABLE] = { "SET_MEM_TABLE", R_MEM_TABLE, 0, 0, 0 },
	FIXED(SET_VRING_NUM, sizeof(struct vhost_msg_vring_state), 0, 0),
	FIXED(SET_VRING_ADDR, sizeof(struct vhost_msg_vring_addr), 0, 0),
	FIXED(SET_VRING_BASE, sizeof(struct vhost_msg_vring_state), 0, 0),
	FIXED(GET_VRING_BASE, sizeof(struct vhost_msg_vring_state), 0, 1),
	[VHOST_USER_SET_VRING_KICK] = { "SET_VRING_KICK", R_VRING_FD, 0, 0, 8 },
	[VHOST_USER_SET_VRING_CALL] = { "SET_VRING_CALL", R_VRING_FD, 0, 0, 8 },
	[VHOST_USER_SET_VRING_ERR] = { "SET_VRING_ERR", R_VRING_FD, 0, 0, 8 },
	FIXED(GET_PROTOCOL_FEATURES, 0, 0, 1),
	FIXED(SET_PROTOCOL_FEATURES, 8, 0, 0),
	FIXED(GET_QUEUE_NUM, 0, 0, 1),
	FIXED(SET_VRING_ENABLE, sizeof(struct vhost_msg_vring_state), 0, 0),
	FIXED(SET_BACKEND_REQ_FD, 0, 1, 0),
	FIXED(IOTLB_MSG, sizeof(struct vhost_msg_iotlb), 0, 0),
	[VHOST_USER_GET_CONFIG] = { "GET_CONFIG", R_CONFIG, 0, 1, 0 },
	[VHOST_USER_SET_CONFIG] = { "SET_CONFIG", R_CONFIG, 0, 0, 0 },
	FIXED(GET_MAX_MEM_SLOTS, 0, 0, 1),
	FIXED(ADD_MEM_REG, sizeof(struct vhost_msg_mem_single), 1, 0),
	FIXED(GET_INFLIGHT_FD, sizeof(struct vhost_msg_inflight), 0, 1),
	FIXED(SET_INFLIGHT_FD, sizeof(struct vhost_msg_inflight), 1, 0),
	[VHOST_USER_REM_MEM_REG] = { "REM_MEM_REG", R_FIXED_FD01, 0, 0,
				     sizeof(struct vhost_msg_mem_single) },
};

static const struct rule *rule_of(uint32_t request)
{
	if (request >= VHOST_USER_REQUEST_MAX || rules[request].kind == R_UNKNOWN)
		return NULL;
	return &rules[request];
}

bool vhost_msg_known(uint32_t request)
{
	return rule_of(request) != NULL;
}

bool vhost_msg_has_reply(uint32_t request)
{
	const struct rule *r = rule_of(request);

	return r && r->has_reply;
}

const char *vhost_msg_name(uint32_t request)
{
	const struct rule *r = rule_of(request);

	return r ? r->name : "UNKNOWN";
}

#define BAD(msg_) do { *why = (msg_); return -EPROTO; } while (0)

int vhost_msg_check(const struct vhost_msg *msg, const char **why)
{
	const struct vhost_msg_hdr *h = &msg->hdr;
	const struct rule *r = rule_of(h->request);
	const char *dummy;
	uint32_t n;

	if (!why)
		why = &dummy;
	*why = NULL;
	if ((h->flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
		BAD("bad version");
	if (h->flags & ~(VHOST_USER_VERSION_MASK | VHOST_USER_NEED_REPLY_MASK))
		BAD("bad flags");
	if (h->size > VHOST_MSG_MAX_PAYLOAD)
		BAD("payload too large");
	if (msg->nfds > VHOST_USER_MAX_FDS)
		BAD("too many fds");
	if (!r)
		return 0;

	switch (r->kind) {
	case R_FIXED:
		if (h->size != r->size)
			BAD("wrong payload size");
		if (msg->nfds != r->fds)
			BAD("wrong fd count");
		return 0;
	case R_FIXED_FD01:
		if (h->size != r->size)
			BAD("wrong payload size");
		if (msg->nfds > 1)
			BAD("wrong fd count");
		return 0;
	case R_VRING_FD:
		if (h->size != sizeof(uint64_t))
			BAD("wrong payload size");
		if (msg->payload.u64 & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK |
						   VHOST_USER_VRING_NOFD_MASK))
			BAD("reserved bits set in vring fd payload");
		if (msg->nfds != ((msg->payload.u64 & VHOST_USER_VRING_NOFD_MASK) ? 0u : 1u))
			BAD("wrong fd count");
		return 0;
	case R_MEM_TABLE:
		if (h->size < offsetof(struct vhost_msg_memory, regions))
			BAD("wrong payload size");
		n = msg->payload.memory.nregions;
		if (n == 0 || n > VHOST_USER_MAX_MEM_REGIONS)
			BAD("bad region count");
		if (h->size != offsetof(struct vhost_msg_memory, regions) +
			       n * sizeof(struct vhost_msg_mem_region))
			BAD("wrong payload size");
		if (msg->nfds != n)
			BAD("wrong fd count");
		return 0;
	case R_CONFIG:
		if (h->size < VHOST_USER_CONFIG_HDR_SIZE)
			BAD("wrong payload size");
		if (msg->payload.config.size > VHOST_USER_MAX_CONFIG_SIZE)
			BAD("config size too large");
		if (h->size != VHOST_USER_CONFIG_HDR_SIZE + msg->payload.config.size)
			BAD("wrong payload size");
		if (msg->nfds)
			BAD("wrong fd count");
		return 0;
	}
	BAD("internal: no rule");
}
