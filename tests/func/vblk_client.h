/* SPDX-License-Identifier: MIT */
/*
 * vblk_client.h - a small virtio-blk "guest" for the functional tests: it
 * connects to a running vblkd over vhost-user (vhost_frontend), does the
 * QEMU-like handshake, shares a memfd as guest memory (optionally cut into
 * many small regions at scattered frontend addresses), drives the rings
 * with the driver half of virtq, and waits for completions on the call
 * eventfds, always with a timeout. Also: helpers to start and stop a vblkd
 * process and to look at its fd count and RSS.
 *
 * Knows nothing of the daemon's internals: only the socket, the rings and
 * /proc. Context: one thread per struct vblk_client.
 */
#ifndef VBLK_TESTS_FUNC_VBLK_CLIENT_H
#define VBLK_TESTS_FUNC_VBLK_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/virtio_blk.h>

#include "virtq/virtq.h"
#include "fixture/fixture.h"
#include "vhost/vhost_frontend.h"

#define VBLK_CLIENT_MAX_QUEUES 8
/* Guest physical base of the memfd: not 0, so "GPA == offset" bugs show. */
#define VBLK_CLIENT_GPA_BASE   0x100000000ull

/* Whose vhost-user message sequence the client replays (see vblk_client.c). */
enum vblk_client_flavor {
	VBLK_FLAVOR_QEMU = 0,   /* QEMU 7.2 vhost-user-blk */
	VBLK_FLAVOR_SPDK,       /* SPDK virtio-user (lib/virtio/virtio_vhost_user.c) */
	VBLK_FLAVOR_DPDK,       /* DPDK virtio_user, stopping with RESET_OWNER */
	VBLK_FLAVOR_RUST_VMM,   /* rust-vmm vhost Frontend, as cloud-hypervisor uses it */
	VBLK_FLAVOR_LEGACY,     /* no protocol features at all */
	VBLK_FLAVOR_CROSVM,     /* crosvm's vhost_user_frontend (vmm_vhost BackendClient) */
};

struct vblk_client_opts {
	unsigned num_queues;    /* queues to set up: 1..VBLK_CLIENT_MAX_QUEUES (0 = 1) */
	unsigned queue_size;    /* ring size (0 = 128) */
	bool packed;            /* negotiate VIRTIO_F_RING_PACKED */
	bool no_event_idx;      /* do not negotiate VIRTIO_RING_F_EVENT_IDX */
	bool no_indirect;       /* do not negotiate VIRTIO_RING_F_INDIRECT_DESC */
	size_t mem_size;        /* guest memory bytes (0 = 8 MiB) */
	/*
	 * 0: one region. Otherwise the data area is cut into regions of this
	 * many bytes (at most 63 of them: 64 with the rings'), each at its own non-contiguous
	 * frontend address; the first 8 go in SET_MEM_TABLE, the rest in
	 * ADD_MEM_REG, so buffers and indirect tables cross region bounds.
	 */
	size_t region_size;
	bool err_fds;           /* give every queue an error eventfd (SET_VRING_ERR) */
	unsigned timeout_ms;    /* vhost-user reply timeout (0 = 5000) */
	/* QEMU flavor: negotiate INFLIGHT_SHMFD, get the daemon's inflight
	 * area (GET_INFLIGHT_FD) and hand it back (SET_INFLIGHT_FD), as QEMU
	 * does so that a restarted backend can resume (vblk_client_reconnect). */
	bool inflight;
	enum vblk_client_flavor flavor;
	/* QEMU flavor: negotiate BACKEND_REQ and give a backend request
	 * channel (vblk_client_backend_fd is our end). */
	bool backend_req;
	/*
	 * Act as a frontend behind an IOMMU: negotiate VIRTIO_F_ACCESS_PLATFORM
	 * (with REPLY_ACK); ring and descriptor addresses are then IOVAs,
	 * numerically the GPAs this client hands out (vblk_client_alloc),
	 * while the memory table says they are VBLK_CLIENT_IOMMU_GPA_SHIFT
	 * higher: a daemon that takes one for the other misses. Nothing is
	 * in the daemon's IOTLB until vblk_client_iotlb() puts it there,
	 * unless @iotlb_prefill maps all guest memory read-write up front.
	 */
	bool iommu;
	bool iotlb_prefill;
};

#define VBLK_CLIENT_IOMMU_GPA_SHIFT (1ull << 44)

struct vblk_client;

/*
 * vblk_client_connect - connect to @path (retrying for up to 5 s while the
 * daemon starts), negotiate and start the queues. -ENOTSUP if the daemon
 * does not offer a feature asked for; other -errno from the protocol.
 */
int vblk_client_connect(const char *path, const struct vblk_client_opts *o,
			struct vblk_client **out);
/*
 * vblk_client_stop - stop the device the way the flavor's frontend does
 * (GET_VRING_BASE on every queue; DPDK: disable, RESET_OWNER; rust-vmm:
 * disable, GET_VRING_BASE). Requests must have completed.
 */
int vblk_client_stop(struct vblk_client *c);
/* vblk_client_restart - after a stop, start again on the same connection
 * (fresh rings), as the flavor's frontend does. */
int vblk_client_restart(struct vblk_client *c);
/*
 * vblk_client_reconnect - what QEMU does when its vhost-user-blk backend
 * died and a new one listens at @path (a client made with .inflight):
 * connect again, handshake, hand over the same inflight area and guest
 * memory, and restart every ring where it is (SET_VRING_BASE = the used
 * index in guest memory; the daemon resumes from the inflight area).
 * Requests in flight stay outstanding and complete on the new connection.
 */
int vblk_client_reconnect(struct vblk_client *c, const char *path);
/*
 * Requests the daemon has marked in flight in queue @q's region of the
 * inflight area (split rings), or -1 without one: what a restarted
 * daemon must resubmit.
 */
int vblk_client_inflight_marked(const struct vblk_client *c, unsigned q);
/* Disconnect and free (the daemon resets the device). NULL is a no-op. */
void vblk_client_destroy(struct vblk_client *c);

struct vhost_frontend *vblk_client_frontend(struct vblk_client *c);
/* Config space read at connect time (little-endian as on the wire). */
const struct virtio_blk_config *vblk_client_config(const struct vblk_client *c);
/* Feature bits the daemon offered / the client acked. */
uint64_t vblk_client_offered(const struct vblk_client *c);
uint64_t vblk_client_acked(const struct vblk_client *c);
unsigned vblk_client_nregions(const struct vblk_client *c);
/* Memory region i as sent to the daemon; NULL if out of range. */
const struct gmem_region_desc *vblk_client_region(const struct vblk_client *c, unsigned i);
unsigned vblk_client_num_queues(const struct vblk_client *c);

/* ---- guest memory ------------------------------------------------------ */

/*
 * vblk_client_alloc - @len bytes of the data area aligned to @align
 * (power of two, 0 = 1); *gpa gets the guest address. NULL when the area
 * is exhausted. The area is recycled once no request is in flight.
 */
void *vblk_client_alloc(struct vblk_client *c, size_t len, size_t align, uint64_t *gpa);
/* Host address of [gpa, gpa+len) in the client's own view; NULL if outside. */
void *vblk_client_host(struct vblk_client *c, uint64_t gpa, size_t len);
/* First GPA past the end of guest memory. */
uint64_t vblk_client_gpa_end(const struct vblk_client *c);
/* The memfd behind guest memory (not sealable): hostile tests shrink it. */
int vblk_client_memfd(const struct vblk_client *c);

/* ---- requests ------------------------------------------------------------ */

enum {
	VBLK_REQ_INDIRECT = 1u << 0, /* the chain goes into an indirect table */
	VBLK_REQ_MERGE    = 1u << 1, /* header+data in one readable descriptor (OUT
				      * types) or data+status in one writable one */
	VBLK_REQ_SCATTER  = 1u << 2, /* data cut into up to 8 descriptors */
};

struct vblk_req {
	unsigned q;
	uint32_t type;
	void *out_data;         /* host addresses of the data in guest memory */
	void *in_data;
	size_t out_len, in_len; /* data bytes the device reads / writes */
	uint8_t *status;        /* host address of the status byte */
	uint32_t used_len;      /* valid once done */
	bool done;
};

/*
 * vblk_client_submit - make a request available on queue @q (no kick):
 * header {type, sector}, @out_len bytes from @out (may be NULL: zeroes)
 * readable, @in_len bytes writable, then the status byte. @r must stay
 * alive until it completes or the client is destroyed.
 * Return: 0, -ENOSPC (ring or memory full), -EINVAL.
 */
int vblk_client_submit(struct vblk_client *c, unsigned q, struct vblk_req *r, uint32_t type,
		       uint64_t sector, const void *out, size_t out_len, size_t in_len,
		       unsigned flags);
/* Kick queue q if the device asks for it (@force: always). */
int vblk_client_kick(struct vblk_client *c, unsigned q, bool force);
/*
 * vblk_client_wait - reap completions of queue @q (interrupt driven: the
 * call eventfd must fire) until @r is done or @timeout_ms passed.
 * Return: 0, -ETIMEDOUT.
 */
int vblk_client_wait(struct vblk_client *c, unsigned q, struct vblk_req *r, int timeout_ms);
/* Completions of queue @q that arrived so far (no waiting). */
unsigned vblk_client_reap(struct vblk_client *c, unsigned q);

/*
 * vblk_client_io - synchronous request: submit, kick, wait (@timeout_ms).
 * @in (may be NULL) gets the @in_len data bytes back. *status gets the
 * status byte, *used_len (may be NULL) the used length.
 * Return: 0 (completed; look at *status), -ETIMEDOUT, other -errno.
 * Once a request timed out on a queue, later calls on that queue fail at
 * once with -ETIMEDOUT (a queue that lost a request is not trusted again,
 * and a broken daemon then fails a test quickly instead of slowly).
 */
int vblk_client_io(struct vblk_client *c, unsigned q, uint32_t type, uint64_t sector,
		   const void *out, size_t out_len, void *in, size_t in_len, unsigned flags,
		   int timeout_ms, uint8_t *status, uint32_t *used_len);

/* ---- low level, for hostile tests ---------------------------------------- */

struct virtq_drv *vblk_client_vq(struct vblk_client *c, unsigned q);
int vblk_client_kick_fd(const struct vblk_client *c, unsigned q);
/* 1 if queue q's error eventfd fired within @timeout_ms, 0 if not, -errno. */
int vblk_client_wait_err(struct vblk_client *c, unsigned q, int timeout_ms);
/*
 * Split ring: put @head in the next avail slot and publish it (the driver
 * state moves on as if the chain had been added). The caller wrote the
 * descriptors itself with vblk_client_vq(c, q)->desc.
 */
void vblk_client_raw_publish_split(struct vblk_client *c, unsigned q, uint16_t head);
/*
 * Packed ring: write @n descriptors at the next avail slots (flags get the
 * AVAIL/USED bits of the current wrap counter; the head's are stored
 * last) and move the driver state on.
 */
void vblk_client_raw_publish_packed(struct vblk_client *c, unsigned q,
				    const struct vring_packed_desc *descs, unsigned n);

/* Our end of the backend request channel (opts.backend_req), or -1. */
int vblk_client_backend_fd(const struct vblk_client *c);
/* Read the next message on backend channel @fd (waiting up to
 * @timeout_ms), acking it when it asks for a reply: its request, or -1. */
int vblk_client_backend_take(int fd, int timeout_ms);
/*
 * vblk_client_iotlb - send an IOTLB_MSG of @type (VHOST_IOTLB_UPDATE /
 * INVALIDATE) for [iova, iova+size) of this client's guest memory (an
 * update names the frontend address behind @iova itself; @size must stay
 * in one region), waiting for the ack. Return: 0, -EIO (refused), other
 * -errno.
 */
int vblk_client_iotlb(struct vblk_client *c, uint8_t type, uint64_t iova, uint64_t size,
		      uint8_t perm);
/* vblk_client_iotlb_raw - any IOTLB_MSG payload at all, waiting for the ack. */
int vblk_client_iotlb_raw(struct vblk_client *c, const struct vhost_msg_iotlb *m);
/* The IOVA (= client GPA) of host address @p in guest memory. */
uint64_t vblk_client_iova(const struct vblk_client *c, const void *p);
/*
 * vblk_client_serve_iotlb - take the next message on the backend channel
 * (waiting up to @timeout_ms). With VBLK_SERVE_ANSWER an IOTLB miss is
 * answered with an update of the 4 KiB page it names (read-write), sent
 * before the miss is acked, as QEMU does; with VBLK_SERVE_UNMAP_FIRST
 * too, once a request of queue 0 completed (at most 2 s), that page is
 * invalidated again before the ack (a guest whose request completed and
 * was unmapped in between). *iova (may be NULL)
 * gets the miss's address. Messages asking for a reply are acked.
 * Return: the request, or -1 (nothing came).
 */
enum { VBLK_SERVE_ANSWER = 1u << 0, VBLK_SERVE_UNMAP_FIRST = 1u << 1 };
int vblk_client_serve_iotlb(struct vblk_client *c, int timeout_ms, unsigned how, uint64_t *iova);

/* GET_CONFIG again: vblk_client_config() shows the device's config now. */
int vblk_client_refresh_config(struct vblk_client *c);

/* ---- test helpers ---------------------------------------------------------- */

/* A reproducible pattern of @n bytes for @seed. */
void vblk_fill(uint8_t *b, size_t n, uint64_t seed);
/*
 * Write a 4 KiB pattern (from @seed, which also picks the sector) through
 * queue q and read it back. True if both completed OK with the same data;
 * otherwise says what went wrong as a TAP comment.
 */
bool vblk_client_rw_check(struct vblk_client *c, unsigned q, uint64_t seed, unsigned flags,
			  int timeout_ms);
/*
 * Requests on queue 0 at a byte offset (a multiple of 512), waiting up to
 * @timeout_ms, for tests about storage rather than rings.
 * vblk_client_io_at returns the status byte (VIRTIO_BLK_S_*) or -errno
 * (also said as a TAP comment); @out / @in as for vblk_client_io.
 */
int vblk_client_io_at(struct vblk_client *c, uint32_t type, uint64_t off, const void *out,
		      size_t out_len, void *in, size_t in_len, int timeout_ms);
/* Write @len bytes of vblk_fill(@seed) at @off: the status byte or -errno. */
int vblk_client_write_fill(struct vblk_client *c, uint64_t off, size_t len, uint64_t seed,
			   int timeout_ms);
/* Read @len bytes at @off: true if that completed OK with the bytes of
 * vblk_fill(@seed), or zeroes for @seed < 0. */
bool vblk_client_read_check(struct vblk_client *c, uint64_t off, size_t len, int64_t seed,
			    int timeout_ms);
/* DISCARD / WRITE_ZEROES (@type) of one segment [off, off + len): the
 * status byte or -errno. */
int vblk_client_dwz_at(struct vblk_client *c, uint32_t type, uint64_t off, uint64_t len,
		       int timeout_ms);
/* True once the peer closed @fd: EOF or reset within @timeout_ms (bytes
 * before the EOF, such as replies, are read and skipped). */
bool vblk_sock_closed_by_peer(int fd, int timeout_ms);

/* The daemon process: struct vblkd_proc and vblkd_proc_*() are in fixture/fixture.h. */

/*
 * vblk_test_start - the opening of a daemon test's main(): argv[1] names
 * the vblkd under test, and @proc gets a fresh temp dir. Bails out (TAP)
 * without either. Return: argv[1].
 */
const char *vblk_test_start(int argc, char **argv, struct vblkd_proc *proc);

#endif
