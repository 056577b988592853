/* SPDX-License-Identifier: MIT */
/*
 * storage.h - storage engines behind one interface: a file or block device
 * through io_uring (buffered or O_DIRECT), a Ceph RBD image through
 * librbd (when built with it), and a null engine for benchmarks (reads
 * return zeroes, writes are dropped).
 *
 * A struct storage is one opened backend, shared by every thread serving
 * it. A struct storage_chan is one thread's submission context (one
 * io_uring); a thread submits I/O for any storage through its own chan.
 * storage knows nothing about virtio.
 */
#ifndef VBLK_STORAGE_H
#define VBLK_STORAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

enum storage_engine { STORAGE_FILE, STORAGE_NULL, STORAGE_RBD };

/* Default STORAGE_RBD request/connect timeout, seconds. */
#define STORAGE_RBD_DEFAULT_TIMEOUT 30u

struct storage_params {
	enum storage_engine engine;
	const char *path;     /* STORAGE_FILE: file or block device;
			       * STORAGE_RBD: POOL/IMAGE or POOL/IMAGE@SNAP */
	uint64_t size;        /* STORAGE_NULL: capacity in bytes */
	bool direct;          /* O_DIRECT */
	bool read_only;
	/* STORAGE_RBD only (NULL: librados' defaults) */
	const char *ceph_conf;   /* ceph.conf path */
	const char *rbd_id;      /* client name without "client.", e.g. "admin" */
	const char *keyring;     /* keyring path */
	unsigned rbd_timeout;    /* seconds a request or the connect may take;
				  * 0: STORAGE_RBD_DEFAULT_TIMEOUT */
};

struct storage_info {
	uint64_t size;               /* bytes */
	uint32_t logical_block_size; /* 512 for files, BLKSSZGET for devices */
	uint32_t physical_block_size;
	bool read_only;
	bool can_discard;            /* punch-hole / BLKDISCARD works */
	bool can_write_zeroes;
};

struct storage;
struct storage_chan;

/* true if this build has the STORAGE_RBD engine. */
bool storage_have_rbd(void);

/*
 * storage_open - open a backend. Errors: -ENOENT, -EACCES, -EISDIR,
 * -EINVAL (bad params, size not a multiple of 512), other -errno from
 * open/fstat/ioctl. A message for the user is logged.
 */
int storage_open(const struct storage_params *p, struct storage **out);
/* storage_close - flush (a writable image) and close. Return: 0, or the
 * flush's -errno (the storage is closed and freed either way). */
int storage_close(struct storage *st);
const struct storage_info *storage_get_info(const struct storage *st);
/*
 * storage_resize - make the backend @size bytes (a file: ftruncate; null:
 * its capacity), or with @size 0 read its current size again (an image
 * grown by other means, a resized block device or rbd image). *@out: the
 * size now. Requests are bounded by it from then on.
 * Return: 0; -EINVAL (@size not a multiple of 512); -EROFS; -EOPNOTSUPP
 * (a block device or rbd image asked for another size); other -errno.
 * Context: the control thread; requests may be in flight.
 */
int storage_resize(struct storage *st, uint64_t size, uint64_t *out);

/*
 * storage_set_size_fd - an eventfd the backend adds 1 to when its size
 * changed by other means than storage_resize (an rbd image resized with
 * `rbd resize`, seen by librbd's watch); storage_resize(st, 0, ...) then
 * gives the new size. -1: none (the default). The fd must stay open
 * until storage_close has returned.
 * Context: the control thread; the fd is written from any thread.
 */
void storage_set_size_fd(struct storage *st, int fd);

/*
 * storage_claim - the caller now serves @st on @owner (an export's socket
 * path, unique on this host), having made sure no other process serves
 * there: take the backend over from a predecessor on @owner that died
 * without letting go of it. Only the rbd engine has anything to take over:
 * the exclusive lock of a SIGKILLed vblkd on the same socket, broken (and
 * that client blocklisted) now instead of after its watch expires.
 * Returns 0 or -errno (logged); a failure leaves @st serving as before.
 * Context: the control thread, before the export is served.
 */
int storage_claim(struct storage *st, const char *owner);

enum storage_op {
	STORAGE_OP_READ,
	STORAGE_OP_WRITE,
	STORAGE_OP_FLUSH,        /* fdatasync */
	STORAGE_OP_DISCARD,      /* may leave data as is or zero it */
	STORAGE_OP_WRITE_ZEROES, /* reads back as zeroes afterwards */
};

struct storage_io;
typedef void (*storage_done_cb)(struct storage_io *io, int res);

/*
 * One request. The caller fills the public part, keeps the struct (and
 * iov array) alive until cb runs, and gets exactly one callback: res is 0
 * on success (the whole length was transferred) or -errno.
 */
struct storage_io {
	enum storage_op op;
	uint64_t offset;           /* bytes */
	uint64_t len;              /* DISCARD / WRITE_ZEROES: bytes */
	const struct iovec *iov;   /* READ / WRITE (length = sum of iov) */
	unsigned iovcnt;
	bool fua;                  /* WRITE, WRITE_ZEROES: durable before completion */
	bool unmap;                /* WRITE_ZEROES: may deallocate */
	storage_done_cb cb;
	void *priv;                /* the caller's; storage never touches it */
	/* engine-private below */
	struct storage *st;
	struct storage_chan *ch;   /* the chan it was submitted on */
	uint64_t done_bytes;       /* progress for short reads/writes */
	struct storage_io *next;   /* engine's deferred/retry lists */
	int res;                   /* result while on the chan's done list */
	uint8_t stage;             /* file engine: which step of the op is running */
};

/*
 * storage_chan_create - a submission context for the calling thread
 * (one io_uring of @depth entries).
 * Context: the chan is used only by the thread that created it.
 */
int storage_chan_create(unsigned depth, struct storage_chan **out);
void storage_chan_destroy(struct storage_chan *ch);

/* fd to poll (EPOLLIN) for completions. */
int storage_chan_fd(const struct storage_chan *ch);

/*
 * storage_submit - queue io; it is sent to the kernel on the next
 * storage_chan_flush() (batching). Never calls cb synchronously: errors
 * detected at submission (range beyond size, read-only) are reported
 * from storage_chan_reap(). io->st is set by this call.
 */
void storage_submit(struct storage_chan *ch, struct storage *st, struct storage_io *io);

/* Send every queued request to the kernel. */
void storage_chan_flush(struct storage_chan *ch);

/*
 * storage_chan_reap - run callbacks for completed requests (and requests
 * completed without the kernel: null engine, errors). Resubmits short
 * transfers and -EAGAIN, and ends with a storage_chan_flush() of whatever
 * got queued meanwhile (by callbacks too). Returns the number of callbacks
 * run. Callbacks may call storage_submit()/storage_chan_flush(), not reap.
 */
unsigned storage_chan_reap(struct storage_chan *ch);

/*
 * storage_chan_poll - storage_chan_reap without the system call: runs the
 * callbacks of the local done list and of the CQEs already posted (a
 * memory read), then flushes. Returns the number of callbacks run.
 * Context: the chan's thread; not from a storage callback.
 */
unsigned storage_chan_poll(struct storage_chan *ch);

/*
 * storage_chan_poll_start / storage_chan_poll_stop - a poller calls
 * storage_chan_poll from now on / no longer. While polled, requests that
 * complete without the kernel do not signal the fd (a write each batch).
 * poll_stop drains the fd and returns true if completions are already
 * waiting: the caller must poll (or reap) before sleeping on the fd.
 * Context: the chan's thread.
 */
void storage_chan_poll_start(struct storage_chan *ch);
bool storage_chan_poll_stop(struct storage_chan *ch);

/*
 * storage_chan_set_drained / storage_chan_drain - for an owner that runs
 * storage_chan_drain at the end of every loop iteration: requests that
 * complete without the kernel (null engine, errors found at submission)
 * then do not signal the fd, which saves a write, a wakeup and a read per
 * batch. drain runs the callbacks of those local completions (and of CQEs
 * already posted); whatever callbacks keep queueing after a few rounds
 * signals the fd, so the next iteration finds it. Returns the number of
 * callbacks run.
 * Context: the chan's thread; drain not from a storage callback.
 */
void storage_chan_set_drained(struct storage_chan *ch, bool on);
unsigned storage_chan_drain(struct storage_chan *ch);

/* Requests submitted and not yet called back. */
unsigned storage_chan_inflight(const struct storage_chan *ch);

#endif
