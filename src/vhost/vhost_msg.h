/* SPDX-License-Identifier: MIT */
/*
 * vhost_msg.h - the vhost-user wire format (shared by the backend and the
 * frontend side of this module): header, payloads, request and protocol
 * feature numbers, message I/O with SCM_RIGHTS fds, and the per-request
 * size/fd-count rules. Knows nothing about devices, rings or memory.
 *
 * All numbers are in native byte order, as the protocol specifies.
 *
 * Context: any thread; a struct vhost_msg_rx or a socket is used by one
 * thread at a time. Nothing here keeps global state.
 */
#ifndef VBLK_VHOST_MSG_H
#define VBLK_VHOST_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Header flags. */
#define VHOST_USER_VERSION          0x1u
#define VHOST_USER_VERSION_MASK     0x3u
#define VHOST_USER_REPLY_MASK       (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK  (1u << 3)

/* Virtio feature bit 30 reused to announce protocol feature negotiation. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

/* u64 payload of SET_VRING_KICK / CALL / ERR. */
#define VHOST_USER_VRING_IDX_MASK   0xffu
#define VHOST_USER_VRING_NOFD_MASK  (1u << 8)

#define VHOST_USER_MAX_FDS          8u
#define VHOST_USER_MAX_MEM_REGIONS  8u   /* in one SET_MEM_TABLE */
#define VHOST_USER_MAX_CONFIG_SIZE  256u
#define VHOST_USER_CONFIG_HDR_SIZE  12u

/* SET_CONFIG flags. */
#define VHOST_SET_CONFIG_TYPE_FRONTEND  0u
#define VHOST_SET_CONFIG_TYPE_MIGRATION 1u

enum vhost_user_request {
	VHOST_USER_NONE = 0,
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SEND_RARP = 19,
	VHOST_USER_NET_SET_MTU = 20,
	VHOST_USER_SET_BACKEND_REQ_FD = 21,
	VHOST_USER_IOTLB_MSG = 22,
	VHOST_USER_SET_VRING_ENDIAN = 23,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_CREATE_CRYPTO_SESSION = 26,
	VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
	VHOST_USER_POSTCOPY_ADVISE = 28,
	VHOST_USER_POSTCOPY_LISTEN = 29,
	VHOST_USER_POSTCOPY_END = 30,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
	VHOST_USER_GPU_SET_SOCKET = 33,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_VRING_KICK = 35,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
	VHOST_USER_SET_STATUS = 39,
	VHOST_USER_GET_STATUS = 40,
	VHOST_USER_REQUEST_MAX
};

enum vhost_user_protocol_feature {
	VHOST_USER_PROTOCOL_F_MQ = 0,
	VHOST_USER_PROTOCOL_F_LOG_SHMFD = 1,
	VHOST_USER_PROTOCOL_F_RARP = 2,
	VHOST_USER_PROTOCOL_F_REPLY_ACK = 3,
	VHOST_USER_PROTOCOL_F_MTU = 4,
	VHOST_USER_PROTOCOL_F_BACKEND_REQ = 5,
	VHOST_USER_PROTOCOL_F_CROSS_ENDIAN = 6,
	VHOST_USER_PROTOCOL_F_CRYPTO_SESSION = 7,
	VHOST_USER_PROTOCOL_F_PAGEFAULT = 8,
	VHOST_USER_PROTOCOL_F_CONFIG = 9,
	VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD = 10,
	VHOST_USER_PROTOCOL_F_HOST_NOTIFIER = 11,
	VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD = 12,
	VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13,
	VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS = 14,
	VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
	VHOST_USER_PROTOCOL_F_STATUS = 16,
};

/*
 * Requests the backend sends on the backend request channel (the socket
 * given by SET_BACKEND_REQ_FD, a.k.a. SET_SLAVE_REQ_FD). The frontend
 * answers with the same request number, the REPLY flag and a u64 (0:
 * success) when NEED_REPLY was set and REPLY_ACK negotiated.
 */
enum vhost_user_backend_request {
	VHOST_USER_BACKEND_NONE = 0,
	VHOST_USER_BACKEND_IOTLB_MSG = 1,
	VHOST_USER_BACKEND_CONFIG_CHANGE_MSG = 2,
	VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
};

/* struct vhost_iotlb_msg (linux/vhost_types.h) as vhost-user carries it. */
#define VHOST_IOTLB_MISS        1u
#define VHOST_IOTLB_UPDATE      2u
#define VHOST_IOTLB_INVALIDATE  3u
#define VHOST_IOTLB_ACCESS_FAIL 4u
#define VHOST_ACCESS_RO         0x1u
#define VHOST_ACCESS_WO         0x2u
#define VHOST_ACCESS_RW         0x3u

struct vhost_msg_iotlb {
	uint64_t iova;
	uint64_t size;
	uint64_t uaddr;
	uint8_t perm;
	uint8_t type;
	uint8_t padding[6];
};

struct vhost_msg_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;       /* payload bytes that follow */
};

struct vhost_msg_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vhost_msg_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;       /* frontend virtual addresses */
	uint64_t used;
	uint64_t avail;
	uint64_t log;        /* guest physical, for dirty logging */
};

struct vhost_msg_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
	uint64_t mmap_offset;
};

struct vhost_msg_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_msg_mem_region regions[VHOST_USER_MAX_MEM_REGIONS];
};

/* ADD_MEM_REG / REM_MEM_REG. */
struct vhost_msg_mem_single {
	uint64_t padding;
	struct vhost_msg_mem_region region;
};

struct vhost_msg_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t payload[VHOST_USER_MAX_CONFIG_SIZE];
};

/* GET_INFLIGHT_FD / SET_INFLIGHT_FD (natural alignment: 24 bytes). */
struct vhost_msg_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	uint32_t padding;
};

/* SET_LOG_BASE (with the log fd). */
struct vhost_msg_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

union vhost_msg_payload {
	uint64_t u64;
	struct vhost_msg_vring_state state;
	struct vhost_msg_vring_addr addr;
	struct vhost_msg_memory memory;
	struct vhost_msg_mem_single mem_reg;
	struct vhost_msg_config config;
	struct vhost_msg_inflight inflight;
	struct vhost_msg_log log;
	struct vhost_msg_iotlb iotlb;
	uint8_t raw[1];
};

/* Largest payload accepted; anything bigger closes the connection. */
#define VHOST_MSG_MAX_PAYLOAD ((uint32_t)sizeof(union vhost_msg_payload))

_Static_assert(sizeof(struct vhost_msg_hdr) == 12, "header is 12 bytes on the wire");
_Static_assert(sizeof(struct vhost_msg_vring_addr) == 40, "vring addr layout");
_Static_assert(sizeof(struct vhost_msg_mem_region) == 32, "region layout");
_Static_assert(offsetof(struct vhost_msg_memory, regions) == 8, "memory table layout");
_Static_assert(sizeof(struct vhost_msg_mem_single) == 40, "single region layout");
_Static_assert(sizeof(struct vhost_msg_inflight) == 24, "inflight description layout");
_Static_assert(sizeof(struct vhost_msg_iotlb) == 32, "iotlb message layout");
_Static_assert(offsetof(struct vhost_msg_config, payload) == VHOST_USER_CONFIG_HDR_SIZE,
	       "config header layout");

/*
 * One received message. fds[0..nfds) are owned by the message: a handler
 * takes the ones it keeps (vhost_msg_take_fd) and vhost_msg_close_fds()
 * closes the rest.
 */
struct vhost_msg {
	struct vhost_msg_hdr hdr;
	union vhost_msg_payload payload;
	int fds[VHOST_USER_MAX_FDS];
	unsigned nfds;
};

/*
 * Incremental receiver for a non-blocking stream socket: a message may
 * arrive in pieces; fds may ride on any piece.
 */
struct vhost_msg_rx {
	struct vhost_msg msg;
	size_t hdr_got;
	size_t payload_got;
};

/* vhost_msg_rx_init - empty receiver (no fds held). */
void vhost_msg_rx_init(struct vhost_msg_rx *rx);

/*
 * vhost_msg_rx_read - read more of the current message from @fd.
 * Return: 1 when rx->msg is complete (header and payload; the caller
 * validates it and then calls vhost_msg_rx_reset), 0 if more bytes are
 * needed (EAGAIN), -EPIPE if the peer closed (mid-message or between
 * messages), -EMSGSIZE if the header announces a payload larger than
 * VHOST_MSG_MAX_PAYLOAD, -EBADMSG for more than VHOST_USER_MAX_FDS fds
 * (control data truncated), other -errno from recvmsg. On error, fds
 * already received stay in rx->msg; vhost_msg_rx_reset closes them.
 * Context: any thread; @rx is used by one thread at a time.
 */
int vhost_msg_rx_read(int fd, struct vhost_msg_rx *rx);

/* vhost_msg_rx_reset - close fds still held by rx->msg and start over. */
void vhost_msg_rx_reset(struct vhost_msg_rx *rx);

/*
 * vhost_msg_recv - blocking receive of one whole message (the frontend
 * side; @fd may have SO_RCVTIMEO set: -EAGAIN/-ETIMEDOUT then).
 * Return: 0, or -errno as vhost_msg_rx_read. On error no fd is left open.
 */
int vhost_msg_recv(int fd, struct vhost_msg *msg);

/*
 * vhost_msg_send - send header + @size payload bytes (+ @nfds fds, at most
 * VHOST_USER_MAX_FDS) in one sendmsg, retrying short writes without the
 * fds. hdr->size is not looked at: @size is what is written. The caller
 * keeps ownership of the fds.
 * Return: 0, -EAGAIN if a non-blocking socket is full, other -errno
 * (-EPIPE when the peer is gone; SIGPIPE is never raised).
 */
int vhost_msg_send(int fd, const struct vhost_msg_hdr *hdr, const void *payload,
		   uint32_t size, const int *fds, unsigned nfds);

/*
 * Outgoing message for a non-blocking socket whose peer may not be
 * reading: queued whole, written as far as the socket takes it, and the
 * rest later (when the socket is writable again). The fd, if any, goes
 * with the first byte.
 */
struct vhost_msg_tx {
	uint8_t buf[sizeof(struct vhost_msg_hdr) + VHOST_MSG_MAX_PAYLOAD];
	size_t len, off;
	int fd;              /* owned until sent; -1: none */
};

/* vhost_msg_tx_init - nothing queued. */
void vhost_msg_tx_init(struct vhost_msg_tx *tx);
/* vhost_msg_tx_reset - drop what is queued (closing its fd). */
void vhost_msg_tx_reset(struct vhost_msg_tx *tx);
/* True while bytes of a queued message are still to be written. */
bool vhost_msg_tx_pending(const struct vhost_msg_tx *tx);

/*
 * vhost_msg_tx_queue - queue header + @size payload bytes and @fd (-1:
 * none; the tx owns it from now on, whatever the result).
 * Return: 0, -EBUSY if a message is still pending (it is one at a time),
 * -EINVAL if @size exceeds VHOST_MSG_MAX_PAYLOAD.
 */
int vhost_msg_tx_queue(struct vhost_msg_tx *tx, const struct vhost_msg_hdr *hdr,
		       const void *payload, uint32_t size, int fd);

/*
 * vhost_msg_tx_write - write what is queued to @sock (non-blocking).
 * Return: 1 when all is written (nothing pending), 0 if the socket is
 * full (call again once it is writable), -errno (-EPIPE: the peer left;
 * SIGPIPE is never raised).
 * Context: any thread; @tx is used by one thread at a time.
 */
int vhost_msg_tx_write(int sock, struct vhost_msg_tx *tx);

/* vhost_msg_take_fd - hand fd i over to the caller (-1 if none). */
int vhost_msg_take_fd(struct vhost_msg *msg, unsigned i);

/* vhost_msg_close_fds - close every fd still owned by @msg. */
void vhost_msg_close_fds(struct vhost_msg *msg);

/*
 * vhost_msg_check - the size and fd-count rules of a frontend request,
 * before it is acted upon: header version, exact payload size per
 * request, exact fd count, and internal consistency (SET_MEM_TABLE
 * region count vs size and fds; config size vs payload size). Requests
 * this module does not know are accepted here (size already bounded by
 * vhost_msg_rx_read); the caller decides what to do with them.
 * Return: 0 if well formed, -EPROTO otherwise (*why says what).
 */
int vhost_msg_check(const struct vhost_msg *msg, const char **why);

/* True if @request is a known frontend request this module can check. */
bool vhost_msg_known(uint32_t request);

/* True if the request has its own reply payload (GET_*), so REPLY_ACK
 * does not add an ack. */
bool vhost_msg_has_reply(uint32_t request);

/* Name for logs ("SET_MEM_TABLE"), "UNKNOWN" if unknown. */
const char *vhost_msg_name(uint32_t request);

#endif
