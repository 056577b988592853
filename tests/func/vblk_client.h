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
#include "vhost/vhost_frontend.h"

#define VBLK_CLIENT_MAX_QUEUES 8
/* Guest physical base of the memfd: not 0, so "GPA == offset" bugs show. */
#define VBLK_CLIENT_GPA_BASE   0x100000000ull

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
};

struct vblk_client;

/*
 * vblk_client_connect - connect to @path (retrying for up to 5 s while the
 * daemon starts), negotiate and start the queues. -ENOTSUP if the daemon
 * does not offer a feature asked for; other -errno from the protocol.
 */
int vblk_client_connect(const char *path, const struct vblk_client_opts *o,
			struct vblk_client **out);
/* Disconnect and free (the daemon resets the device). NULL is a no-op. */
void vblk_client_destroy(struct vblk_client *c);

struct vhost_frontend *vblk_client_frontend(struct vblk_client *c);
/* Config space read at connect time (little-endian as on the wire). */
const struct virtio_blk_config *vblk_client_config(const struct vblk_client *c);
/* Feature bits the daemon offered / the client acked. */
uint64_t vblk_client_offered(const struct vblk_client *c);
uint64_t vblk_client_acked(const struct vblk_client *c);
unsigned vblk_client_nregions(const struct vblk_client *c);
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

/* ---- the daemon process ---------------------------------------------------- */

struct vblkd_proc {
	pid_t pid;              /* 0: not started */
	bool exited;            /* reaped; wstatus is valid */
	int wstatus;
	char dir[64];           /* temp dir for sockets and images */
};

/* A fresh temp dir for sockets and images (removed by vblkd_proc_cleanup). */
int vblkd_proc_init(struct vblkd_proc *p);
/*
 * vblkd_proc_start - fork/exec @vblkd with the NULL-terminated @args
 * (argv[0] excluded). It dies with the test (PDEATHSIG).
 */
int vblkd_proc_start(struct vblkd_proc *p, const char *vblkd, const char *const *args);
/*
 * vblkd_proc_start_logged - vblkd_proc_start with the daemon's stderr (its
 * log) going to @log_path (truncated).
 */
int vblkd_proc_start_logged(struct vblkd_proc *p, const char *vblkd, const char *const *args,
			    const char *log_path);
/* Lines of the file @log_path that contain @what (0 if it cannot be read). */
unsigned vblkd_log_count(const char *log_path, const char *what);
/* True while the process runs (not exited, not a zombie). */
bool vblkd_proc_alive(struct vblkd_proc *p);
/*
 * vblkd_proc_stop - SIGTERM, wait up to 10 s (then SIGKILL).
 * Return: the wait status (0 for a clean exit 0), -ETIMEDOUT if it had to
 * be killed, -ECHILD if it had already gone.
 */
int vblkd_proc_stop(struct vblkd_proc *p);
/* How it ended ("exited with 1", "killed by signal 31 (Bad system call)"). */
const char *vblkd_proc_describe(const struct vblkd_proc *p, char *buf, size_t n);
/* Remove the temp dir and what is in it. */
void vblkd_proc_cleanup(struct vblkd_proc *p);
/* Entries of /proc/pid/fd, VmRSS in KiB; -errno on error. */
int vblkd_proc_fd_count(const struct vblkd_proc *p);
long vblkd_proc_rss_kib(const struct vblkd_proc *p);
/* "<dir>/<name>" into @buf (size @n). */
const char *vblkd_proc_path(const struct vblkd_proc *p, const char *name, char *buf, size_t n);

#endif
