/* SPDX-License-Identifier: MIT */
/*
 * storage_internal.h - what the storage engines share and nobody else sees:
 * the engine ops table, the struct storage and struct storage_chan layouts,
 * and the chan-local completion list. Private to src/storage (and its unit
 * tests); callers use storage.h only.
 */
#ifndef VBLK_STORAGE_INTERNAL_H
#define VBLK_STORAGE_INTERNAL_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/storage.h"

/* FIFO of requests linked through storage_io.next. */
struct storage_io_list {
	struct storage_io *head;
	struct storage_io **tail;
};

static inline void storage_io_list_init(struct storage_io_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
}

static inline bool storage_io_list_empty(const struct storage_io_list *l)
{
	return l->head == NULL;
}

static inline void storage_io_list_push(struct storage_io_list *l, struct storage_io *io)
{
	io->next = NULL;
	*l->tail = io;
	l->tail = &io->next;
}

static inline struct storage_io *storage_io_list_pop(struct storage_io_list *l)
{
	struct storage_io *io = l->head;

	if (io) {
		l->head = io->next;
		if (!l->head)
			l->tail = &l->head;
		io->next = NULL;
	}
	return io;
}

/*
 * A completion source an engine attaches to a chan: polled (on the chan's
 * thread) whenever the chan is reaped or polled, it moves finished
 * requests to the chan (storage_chan_complete_local / _remote). The rbd
 * engine's image event notification writes the chan's own eventfd.
 */
struct storage_chan_src {
	void (*poll)(struct storage_chan *ch, struct storage_chan_src *src);
	struct storage_chan_src *next;
};

struct storage_chan {
	struct io_uring ring;
	int efd;                       /* registered eventfd: storage_chan_fd() */
	unsigned depth;                /* cap on SQEs owned by the kernel */
	unsigned in_kernel;            /* SQEs prepared and not yet completed */
	unsigned inflight;             /* storage_submit()ed, cb not yet run */
	unsigned callbacks;            /* callbacks run so far (wraps) */
	struct storage_io_list pending; /* waiting for an SQE (ring full) */
	struct storage_io_list done;   /* completed without the kernel */
	bool polled;                   /* a poller checks done: no eventfd kicks */
	bool drained;                  /* the owner calls storage_chan_drain */
	struct storage_chan_src *srcs; /* engine completion sources (chan's thread) */
	/* Completed on another thread: a lock-free LIFO (atomic builtins),
	 * taken whole by this chan's thread (storage_chan_complete_remote). */
	struct storage_io *remote;
};

struct storage_ops {
	const char *name;
	/* Fill st->info (and engine fields); log why on failure. */
	int (*open)(struct storage *st, const struct storage_params *p);
	int (*close)(struct storage *st);   /* 0, or -errno of the final flush */
	/* Optional: storage_claim. */
	int (*claim)(struct storage *st, const char *owner);
	/* io already validated (range, read-only, length > 0). */
	void (*submit)(struct storage_chan *ch, struct storage_io *io);
	/*
	 * Optional (storage_resize): make the backend @size bytes (a
	 * multiple of 512, not read-only), or with @size 0 find its current
	 * size; store it in st->info.size (relaxed atomic). NULL: -EOPNOTSUPP.
	 */
	int (*resize)(struct storage *st, uint64_t size);
};

struct storage {
	const struct storage_ops *ops;
	struct storage_info info;
	void *priv;                    /* engine state (rbd) */
	int fd;                        /* STORAGE_FILE, else -1 */
	bool is_blkdev;
	/* Set (relaxed atomic, any thread) once FALLOC_FL_ZERO_RANGE said
	 * -EOPNOTSUPP: later WRITE_ZEROES go straight to writing zeroes. */
	bool no_zero_range;
	/* storage_set_size_fd (atomic), -1: none. */
	int size_fd;
};

extern const struct storage_ops storage_file_ops;
extern const struct storage_ops storage_null_ops;
#ifdef HAVE_RBD
extern const struct storage_ops storage_rbd_ops;
#endif

/*
 * storage_chan_complete - finish @io without the kernel: cb(io, res) runs
 * from the next storage_chan_reap(), and the chan fd becomes readable.
 * Context: the chan's thread.
 */
void storage_chan_complete(struct storage_chan *ch, struct storage_io *io, int res);

/*
 * storage_chan_complete_local - as storage_chan_complete, without making
 * the fd readable: for a completion source, which runs from the chan's own
 * reap/poll (the callback runs before that call returns).
 * Context: the chan's thread, from a storage_chan_src poll.
 */
void storage_chan_complete_local(struct storage_chan *ch, struct storage_io *io, int res);

/*
 * storage_chan_complete_remote - finish @io on its chan (io->ch) from
 * another thread: a lock-free push, and the chan's fd made readable if the
 * list was empty. cb runs on the chan's thread.
 * Context: any thread.
 */
void storage_chan_complete_remote(struct storage_io *io, int res);

/*
 * storage_chan_add_src / storage_chan_del_src - attach or detach an
 * engine's completion source. Context: the chan's thread.
 */
void storage_chan_add_src(struct storage_chan *ch, struct storage_chan_src *src);
void storage_chan_del_src(struct storage_chan *ch, struct storage_chan_src *src);

/* Make the chan's fd readable (any thread: an eventfd write). */
void storage_chan_kick(struct storage_chan *ch);

/*
 * Test hook: when non-zero, the file engine moves at most this many bytes
 * per read/write SQE, which drives the short-transfer resubmission path
 * exactly as a short kernel completion would. 0 in production.
 */
extern uint32_t storage_uring_test_max_xfer;

#endif
