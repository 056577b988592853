/* SPDX-License-Identifier: MIT */
/*
 * storage_uring.c - the per-thread chan (one io_uring, its registered
 * eventfd, the pending and locally-completed lists) and the file engine
 * that runs requests on it: readv/writev, fdatasync, fallocate, with the
 * retries a request may need (short transfers, -EAGAIN, write-zeroes
 * fallbacks). Each ring is restricted to the operations the engine uses.
 * Knows nothing about virtio.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/iov.h"
#include "common/log.h"
#include "storage/storage_internal.h"

#define STORAGE_CHAN_MAX_DEPTH 32768u   /* io_uring's own limit on entries */
#define STORAGE_MAX_SINGLE_XFER (1u << 30)
#define STORAGE_ZERO_BUF_SIZE (128u * 1024)

/* Steps of a file request (storage_io.stage). */
enum storage_stage {
	STAGE_RW,          /* READ / WRITE: readv/writev, resubmitting the rest */
	STAGE_FLUSH,       /* FLUSH: fdatasync */
	STAGE_PUNCH,       /* DISCARD, WRITE_ZEROES+unmap: PUNCH_HOLE|KEEP_SIZE */
	STAGE_ZERO_RANGE,  /* WRITE_ZEROES: ZERO_RANGE|KEEP_SIZE */
	STAGE_ZERO_WRITE,  /* WRITE_ZEROES fallback: write zero_buf in chunks */
	STAGE_SYNC,        /* WRITE_ZEROES with fua: fdatasync afterwards */
};

uint32_t storage_uring_test_max_xfer;

/* Source of zero-fill writes; never written. Aligned for O_DIRECT. */
static uint8_t zero_buf[STORAGE_ZERO_BUF_SIZE] __attribute__((aligned(4096)));

/* ---- chan ---------------------------------------------------------- */

/*
 * The seccomp filter cannot see what an io_uring does: an SQE may open
 * files, connect sockets, and so on, from io-wq workers. So each ring
 * accepts only the operations below (kernel-checked, -EACCES otherwise),
 * no SQE flag, and no io_uring_register() call once it is enabled.
 */
static const uint8_t storage_chan_ops[] = {
	IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_READ, IORING_OP_WRITE,
	IORING_OP_FSYNC, IORING_OP_FALLOCATE,
};

/*
 * Register the restrictions of a disabled ring, then enable it. Through
 * io_uring_register(): liburing 2.3 (Debian 12) declares
 * io_uring_register_restrictions and io_uring_enable_rings but does not
 * export them.
 */
static int storage_chan_restrict(struct storage_chan *ch)
{
	struct io_uring_restriction res[ARRAY_SIZE(storage_chan_ops)];
	int ret;

	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < ARRAY_SIZE(storage_chan_ops); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = storage_chan_ops[i];
	}
	ret = io_uring_register(ch->ring.ring_fd, IORING_REGISTER_RESTRICTIONS, res,
				ARRAY_SIZE(res));
	if (ret < 0) {
		log_err("storage: io_uring restrictions: %s", strerror(-ret));
		return ret;
	}
	ret = io_uring_register(ch->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (ret < 0)
		log_err("storage: io_uring enable: %s", strerror(-ret));
	return ret;
}

/**
 * storage_chan_create - one io_uring of @depth entries for the calling thread.
 * @depth: most requests handed to the kernel at once (1..32768); more wait
 *         on the chan's pending list
 * @out: the new chan
 *
 * Context: the chan is used only by the thread that created it.
 */
int storage_chan_create(unsigned depth, struct storage_chan **out)
{
	struct storage_chan *ch;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (depth == 0 || depth > STORAGE_CHAN_MAX_DEPTH) {
		log_err("storage: chan depth %u out of range 1..%u", depth, STORAGE_CHAN_MAX_DEPTH);
		return -EINVAL;
	}

	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->depth = depth;
	storage_io_list_init(&ch->pending);
	storage_io_list_init(&ch->done);

	/* Disabled until the restrictions are in place (storage_chan_restrict). */
	ret = io_uring_queue_init(depth, &ch->ring, IORING_SETUP_R_DISABLED);
	if (ret < 0) {
		log_err("storage: io_uring_queue_init(%u): %s", depth, strerror(-ret));
		goto err_free;
	}
	ch->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ch->efd < 0) {
		ret = -errno;
		log_err("storage: eventfd: %s", strerror(-ret));
		goto err_exit_ring;
	}
	ret = io_uring_register_eventfd(&ch->ring, ch->efd);
	if (ret < 0) {
		log_err("storage: io_uring_register_eventfd: %s", strerror(-ret));
		goto err_close_efd;
	}
	ret = storage_chan_restrict(ch);
	if (ret < 0)
		goto err_close_efd;
	*out = ch;
	return 0;

err_close_efd:
	close(ch->efd);
err_exit_ring:
	io_uring_queue_exit(&ch->ring);
err_free:
	free(ch);
	return ret;
}

/**
 * storage_chan_destroy - free a chan. Requests still in flight are
 * abandoned (their callbacks never run), so drain it first.
 * @ch: the chan, or NULL
 *
 * Context: the chan's thread.
 */
void storage_chan_destroy(struct storage_chan *ch)
{
	if (!ch)
		return;
	if (ch->inflight)
		log_warn("storage: chan destroyed with %u requests in flight", ch->inflight);
	io_uring_queue_exit(&ch->ring);
	close(ch->efd);
	free(ch);
}

int storage_chan_fd(const struct storage_chan *ch)
{
	return ch->efd;
}

void storage_chan_kick(struct storage_chan *ch)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already huge: the fd is readable. */
	if (write(ch->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_rl(LOG_ERR, "storage: eventfd write: %s", strerror(errno));
}

void storage_chan_complete(struct storage_chan *ch, struct storage_io *io, int res)
{
	bool was_empty = storage_io_list_empty(&ch->done);

	io->res = res;
	storage_io_list_push(&ch->done, io);
	if (was_empty && !ch->polled && !ch->drained)
		storage_chan_kick(ch);
}

void storage_chan_complete_local(struct storage_chan *ch, struct storage_io *io, int res)
{
	io->res = res;
	storage_io_list_push(&ch->done, io);
}

void storage_chan_complete_remote(struct storage_io *io, int res)
{
	struct storage_chan *ch = io->ch;
	struct storage_io *old = __atomic_load_n(&ch->remote, __ATOMIC_RELAXED);

	io->res = res;
	/* Release: the consumer's acquire exchange sees io's fields. */
	do {
		io->next = old;
	} while (!__atomic_compare_exchange_n(&ch->remote, &old, io, true, __ATOMIC_RELEASE,
					      __ATOMIC_RELAXED));
	/* The first one since the consumer took the list wakes it; the
	 * consumer takes the list only after draining the fd. */
	if (!old)
		storage_chan_kick(ch);
}

/* Move what other threads completed to the local done list, oldest first. */
static void storage_chan_take_remote(struct storage_chan *ch)
{
	struct storage_io *io, *rev = NULL;

	if (!__atomic_load_n(&ch->remote, __ATOMIC_RELAXED))
		return;
	/* Acquire: pairs with the release in storage_chan_complete_remote. */
	io = __atomic_exchange_n(&ch->remote, NULL, __ATOMIC_ACQUIRE);
	while (io) {
		struct storage_io *next = io->next;

		io->next = rev;
		rev = io;
		io = next;
	}
	while (rev) {
		io = rev;
		rev = rev->next;
		storage_io_list_push(&ch->done, io);
	}
}

/* Completion sources and other threads' completions to the done list. */
static void storage_chan_collect(struct storage_chan *ch)
{
	struct storage_chan_src *src, *next;

	for (src = ch->srcs; src; src = next) {
		next = src->next;   /* a source may detach itself */
		src->poll(ch, src);
	}
	storage_chan_take_remote(ch);
}

void storage_chan_add_src(struct storage_chan *ch, struct storage_chan_src *src)
{
	src->next = ch->srcs;
	ch->srcs = src;
}

void storage_chan_del_src(struct storage_chan *ch, struct storage_chan_src *src)
{
	for (struct storage_chan_src **pp = &ch->srcs; *pp; pp = &(*pp)->next) {
		if (*pp == src) {
			*pp = src->next;
			src->next = NULL;
			return;
		}
	}
}

/* Run the callback: the last thing done with @io. */
static void storage_chan_finish(struct storage_chan *ch, struct storage_io *io, int res)
{
	ch->inflight--;
	ch->callbacks++;
	io->cb(io, res);
}

/* ---- file engine: SQE preparation ---------------------------------- */

static void storage_uring_prep_rw(struct io_uring_sqe *sqe, struct storage_io *io)
{
	const struct iovec *iov = io->iov;
	unsigned cnt = io->iovcnt;
	uint64_t skip = io->done_bytes;
	uint64_t off = io->offset + io->done_bytes;
	int fd = io->st->fd;
	bool write = io->op == STORAGE_OP_WRITE;

	/* Caller guarantees done_bytes < total, so an entry remains. */
	while (cnt > 1 && skip >= iov->iov_len) {
		skip -= iov->iov_len;
		iov++;
		cnt--;
	}

	if (skip == 0 && cnt > 1 && !storage_uring_test_max_xfer) {
		/* More than IOV_MAX entries: the rest goes in a later SQE. */
		cnt = MIN(cnt, (unsigned)IOV_MAX);
		if (write)
			io_uring_prep_writev(sqe, fd, iov, cnt, off);
		else
			io_uring_prep_readv(sqe, fd, iov, cnt, off);
	} else {
		/* One entry left (most requests: READ/WRITE need no iovec
		 * import, nor its copy when io-wq takes the request), or
		 * resuming inside an entry: move the rest of it alone. */
		uint64_t n = MIN(iov->iov_len - skip, (uint64_t)STORAGE_MAX_SINGLE_XFER);
		char *base = (char *)iov->iov_base + skip;

		if (storage_uring_test_max_xfer)
			n = MIN(n, (uint64_t)storage_uring_test_max_xfer);
		if (write)
			io_uring_prep_write(sqe, fd, base, (unsigned)n, off);
		else
			io_uring_prep_read(sqe, fd, base, (unsigned)n, off);
	}
	if (write && io->fua)
		sqe->rw_flags = RWF_DSYNC;
}

static void storage_uring_prep_sqe(struct io_uring_sqe *sqe, struct storage_io *io)
{
	int fd = io->st->fd;
	uint64_t n;

	switch ((enum storage_stage)io->stage) {
	case STAGE_RW:
		storage_uring_prep_rw(sqe, io);
		break;
	case STAGE_FLUSH:
	case STAGE_SYNC:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case STAGE_PUNCH:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)io->offset, (off_t)io->len);
		break;
	case STAGE_ZERO_RANGE:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					(off_t)io->offset, (off_t)io->len);
		break;
	case STAGE_ZERO_WRITE:
		n = MIN(io->len - io->done_bytes, (uint64_t)sizeof(zero_buf));
		if (storage_uring_test_max_xfer)
			n = MIN(n, (uint64_t)storage_uring_test_max_xfer);
		io_uring_prep_write(sqe, fd, zero_buf, (unsigned)n, io->offset + io->done_bytes);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
}

/* Give @io an SQE if the kernel has room for one more; false if not. */
static bool storage_uring_try_prep(struct storage_chan *ch, struct storage_io *io)
{
	struct io_uring_sqe *sqe;

	if (ch->in_kernel >= ch->depth)
		return false;
	sqe = io_uring_get_sqe(&ch->ring);
	if (!sqe)
		return false;
	storage_uring_prep_sqe(sqe, io);
	ch->in_kernel++;
	return true;
}

/* Queue @io (again) for its current stage; it waits in order if full. */
static void storage_uring_queue(struct storage_chan *ch, struct storage_io *io)
{
	if (storage_io_list_empty(&ch->pending) && storage_uring_try_prep(ch, io))
		return;
	storage_io_list_push(&ch->pending, io);
}

static void storage_file_submit(struct storage_chan *ch, struct storage_io *io)
{
	switch (io->op) {
	case STORAGE_OP_READ:
	case STORAGE_OP_WRITE:
		io->stage = STAGE_RW;
		break;
	case STORAGE_OP_FLUSH:
		io->stage = STAGE_FLUSH;
		break;
	case STORAGE_OP_DISCARD:
		io->stage = STAGE_PUNCH;
		break;
	case STORAGE_OP_WRITE_ZEROES:
		if (io->unmap)
			io->stage = STAGE_PUNCH;
		else if (__atomic_load_n(&io->st->no_zero_range, __ATOMIC_RELAXED))
			io->stage = STAGE_ZERO_WRITE;
		else
			io->stage = STAGE_ZERO_RANGE;
		break;
	}
	storage_uring_queue(ch, io);
}

/* ---- file engine: completion --------------------------------------- */

/* The requested zeroing is done: sync it if asked to, else finish. */
static void storage_uring_zeroed(struct storage_chan *ch, struct storage_io *io)
{
	if (io->fua) {
		io->stage = STAGE_SYNC;
		storage_uring_queue(ch, io);
		return;
	}
	storage_chan_finish(ch, io, 0);
}

static void storage_uring_cqe(struct storage_chan *ch, struct storage_io *io, int res)
{
	ch->in_kernel--;

	if (res == -EAGAIN || res == -EINTR) {
		storage_uring_queue(ch, io);
		return;
	}

	switch ((enum storage_stage)io->stage) {
	case STAGE_RW:
		if (res < 0)
			break;
		if (res == 0) {
			/* The range was checked against the size at open: a
			 * file that shrank since is an I/O error. */
			res = -EIO;
			break;
		}
		io->done_bytes += (unsigned)res;
		if (io->done_bytes < iov_size(io->iov, io->iovcnt)) {
			storage_uring_queue(ch, io);
			return;
		}
		res = 0;
		break;
	case STAGE_FLUSH:
	case STAGE_SYNC:
		break;
	case STAGE_PUNCH:
		if (io->op == STORAGE_OP_DISCARD) {
			/* Discard is a hint: a backend that cannot do it
			 * leaves the data in place. */
			if (res == -EOPNOTSUPP)
				res = 0;
			break;
		}
		if (res == -EOPNOTSUPP) {
			io->stage = __atomic_load_n(&io->st->no_zero_range, __ATOMIC_RELAXED) ?
				    STAGE_ZERO_WRITE : STAGE_ZERO_RANGE;
			storage_uring_queue(ch, io);
			return;
		}
		if (res < 0)
			break;
		storage_uring_zeroed(ch, io);
		return;
	case STAGE_ZERO_RANGE:
		if (res == -EOPNOTSUPP) {
			__atomic_store_n(&io->st->no_zero_range, true, __ATOMIC_RELAXED);
			io->stage = STAGE_ZERO_WRITE;
			io->done_bytes = 0;
			storage_uring_queue(ch, io);
			return;
		}
		if (res < 0)
			break;
		storage_uring_zeroed(ch, io);
		return;
	case STAGE_ZERO_WRITE:
		if (res < 0)
			break;
		if (res == 0) {
			res = -EIO;
			break;
		}
		io->done_bytes += (unsigned)res;
		if (io->done_bytes < io->len) {
			storage_uring_queue(ch, io);
			return;
		}
		storage_uring_zeroed(ch, io);
		return;
	}
	storage_chan_finish(ch, io, res > 0 ? 0 : res);
}

/* ---- chan: flush and reap ------------------------------------------ */

/**
 * storage_chan_flush - hand every queued request the kernel has room for
 * to the kernel; the rest stays pending, in order, until completions
 * free room (storage_chan_reap() flushes again).
 * @ch: the chan
 *
 * Context: the chan's thread.
 */
void storage_chan_flush(struct storage_chan *ch)
{
	unsigned tries = 0;
	int ret;

	while (!storage_io_list_empty(&ch->pending)) {
		if (!storage_uring_try_prep(ch, ch->pending.head))
			break;
		storage_io_list_pop(&ch->pending);
	}

	while (io_uring_sq_ready(&ch->ring) && tries++ < 8) {
		ret = io_uring_submit(&ch->ring);
		if (ret >= 0 || ret == -EINTR)
			continue;
		/* The SQEs stay in the ring: retry from the next reap,
		 * and make sure there will be one. */
		log_rl(LOG_WARN, "storage: io_uring_submit: %s (retrying)", strerror(-ret));
		storage_chan_kick(ch);
		return;
	}
}

/**
 * storage_chan_reap - run the callbacks of finished requests.
 * @ch: the chan
 *
 * Drains the eventfd, then every CQE, then the requests that completed
 * without the kernel (only those queued before this call: more queued by
 * callbacks make the fd readable again), then flushes.
 * Returns the number of callbacks run.
 * Context: the chan's thread; not from a storage callback.
 */
unsigned storage_chan_reap(struct storage_chan *ch)
{
	uint64_t cnt;
	ssize_t r;

	/* Clear readiness first: anything posted after this sets it again. */
	r = read(ch->efd, &cnt, sizeof(cnt));
	(void)r;
	return storage_chan_poll(ch);
}

/**
 * storage_chan_poll - run the callbacks of finished requests, no syscall
 * unless something is flushed.
 * @ch: the chan
 *
 * Every CQE already posted, then the requests that completed without the
 * kernel (only those queued before this call: callbacks that queue more
 * make the fd readable again, or are found by the next poll), then flushes.
 * Returns the number of callbacks run.
 * Context: the chan's thread; not from a storage callback.
 */
unsigned storage_chan_poll(struct storage_chan *ch)
{
	struct storage_io_list done;
	struct io_uring_cqe *cqe;
	struct storage_io *io;
	unsigned start = ch->callbacks;

	storage_chan_collect(ch);
	/* Take the local list now, so callbacks adding to it cannot keep
	 * this call looping. */
	storage_io_list_init(&done);
	if (!storage_io_list_empty(&ch->done)) {
		done.head = ch->done.head;
		done.tail = ch->done.tail;
		storage_io_list_init(&ch->done);
	}

	while (io_uring_peek_cqe(&ch->ring, &cqe) == 0) {
		int res = cqe->res;

		io = io_uring_cqe_get_data(cqe);
		io_uring_cqe_seen(&ch->ring, cqe);
		if (io)
			storage_uring_cqe(ch, io, res);
	}

	while ((io = storage_io_list_pop(&done)))
		storage_chan_finish(ch, io, io->res);

	if (!storage_io_list_empty(&ch->pending) || io_uring_sq_ready(&ch->ring))
		storage_chan_flush(ch);

	return ch->callbacks - start;
}

void storage_chan_set_drained(struct storage_chan *ch, bool on)
{
	ch->drained = on;
}

/* Rounds of callbacks queueing more local completions (a completion that
 * lets a full queue pop again, whose request the null engine finishes at
 * once) before the rest is left to the next loop iteration. */
#define STORAGE_DRAIN_ROUNDS 4

unsigned storage_chan_drain(struct storage_chan *ch)
{
	unsigned n = 0;

	for (unsigned i = 0; i < STORAGE_DRAIN_ROUNDS && !storage_io_list_empty(&ch->done); i++)
		n += storage_chan_poll(ch);
	if (!storage_io_list_empty(&ch->done) && !ch->polled)
		storage_chan_kick(ch);
	return n;
}

void storage_chan_poll_start(struct storage_chan *ch)
{
	ch->polled = true;
}

bool storage_chan_poll_stop(struct storage_chan *ch)
{
	uint64_t cnt;
	ssize_t r;

	ch->polled = false;
	/* Drain first: the kernel posts a CQE before it signals the fd, so a
	 * CQE whose signal this read consumed is visible to the check below,
	 * and any later one signals the fd again. The read is a full barrier. */
	r = read(ch->efd, &cnt, sizeof(cnt));
	(void)r;
	/* Engine sources signal the same fd: what they hold now goes to done. */
	storage_chan_collect(ch);
	return !storage_io_list_empty(&ch->done) || io_uring_cq_ready(&ch->ring);
}

/* ---- file engine: open/close --------------------------------------- */

static void storage_file_log_open_error(const struct storage_params *p, int err)
{
	switch (err) {
	case -ENOENT:
		log_err("storage: %s: no such file or device", p->path);
		break;
	case -EACCES:
	case -EPERM:
		log_err("storage: %s: permission denied for %s access", p->path,
			p->read_only ? "read" : "read-write");
		break;
	case -EROFS:
		log_err("storage: %s: on a read-only file system; export it read-only", p->path);
		break;
	case -EISDIR:
		log_err("storage: %s: is a directory, not a file or block device", p->path);
		break;
	case -EINVAL:
		if (p->direct) {
			log_err("storage: %s: O_DIRECT is not supported here", p->path);
			break;
		}
		/* fallthrough */
	default:
		log_err("storage: %s: open: %s", p->path, strerror(-err));
		break;
	}
}

static int storage_file_blkdev_info(struct storage *st, const char *path)
{
	uint64_t size = 0;
	unsigned int pbs = 0;
	int lbs = 0;

	if (ioctl(st->fd, BLKGETSIZE64, &size) < 0) {
		log_err("storage: %s: BLKGETSIZE64: %s", path, strerror(errno));
		return -errno;
	}
	if (ioctl(st->fd, BLKSSZGET, &lbs) < 0) {
		log_err("storage: %s: BLKSSZGET: %s", path, strerror(errno));
		return -errno;
	}
	if (lbs < 512 || lbs > 65536 || (lbs & (lbs - 1))) {
		log_err("storage: %s: unusable logical block size %d", path, lbs);
		return -EINVAL;
	}
	if (ioctl(st->fd, BLKPBSZGET, &pbs) < 0 || pbs < (unsigned)lbs || (pbs & (pbs - 1)))
		pbs = (unsigned)lbs;

	st->info.size = size;
	st->info.logical_block_size = (uint32_t)lbs;
	st->info.physical_block_size = pbs;
	return 0;
}

static int storage_file_open(struct storage *st, const struct storage_params *p)
{
	int flags = (p->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	struct stat sb;
	int ret;

	if (p->direct)
		flags |= O_DIRECT;
	st->fd = open(p->path, flags);
	if (st->fd < 0) {
		ret = -errno;
		storage_file_log_open_error(p, ret);
		return ret;
	}
	if (fstat(st->fd, &sb) < 0) {
		ret = -errno;
		log_err("storage: %s: fstat: %s", p->path, strerror(-ret));
		goto err_close_fd;
	}

	if (S_ISREG(sb.st_mode)) {
		st->info.size = (uint64_t)sb.st_size;
		st->info.logical_block_size = 512;
		st->info.physical_block_size = 512;
	} else if (S_ISBLK(sb.st_mode)) {
		st->is_blkdev = true;
		ret = storage_file_blkdev_info(st, p->path);
		if (ret < 0)
			goto err_close_fd;
	} else if (S_ISDIR(sb.st_mode)) {
		ret = -EISDIR;
		storage_file_log_open_error(p, ret);
		goto err_close_fd;
	} else {
		ret = -EINVAL;
		log_err("storage: %s: not a regular file or block device", p->path);
		goto err_close_fd;
	}

	/* Punch-hole and zero-range work on regular files and (since 4.9)
	 * block devices; where they do not, discard is skipped and
	 * write-zeroes falls back to writing zeroes. */
	st->info.can_discard = true;
	st->info.can_write_zeroes = true;
	st->info.read_only = p->read_only;
	return 0;

err_close_fd:
	close(st->fd);
	st->fd = -1;
	return ret;
}

static int storage_file_close(struct storage *st)
{
	int ret = 0;

	/*
	 * Writes the guest sent with a writeback cache and never flushed are
	 * not owed durability, but a clean shutdown makes them durable anyway.
	 */
	if (st->fd >= 0 && !st->info.read_only && fdatasync(st->fd) < 0) {
		ret = -errno;
		log_err("storage: flush at close: %s", strerror(errno));
	}
	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
	return ret;
}

/*
 * A file grows or shrinks with ftruncate (shrinking drops the data past
 * the new end, as qemu-img resize does on a raw image); a block device
 * cannot be resized from here: its size is only read again.
 */
static int storage_file_resize(struct storage *st, uint64_t size)
{
	uint64_t cur;
	struct stat sb;

	if (st->is_blkdev) {
		if (ioctl(st->fd, BLKGETSIZE64, &cur) < 0)
			return -errno;
		if (size && size != cur)
			return -EOPNOTSUPP;
	} else {
		if (size && ftruncate(st->fd, (off_t)size) < 0)
			return -errno;
		if (fstat(st->fd, &sb) < 0)
			return -errno;
		cur = (uint64_t)sb.st_size;
	}
	__atomic_store_n(&st->info.size, cur, __ATOMIC_RELAXED);
	return 0;
}

const struct storage_ops storage_file_ops = {
	.name = "file",
	.open = storage_file_open,
	.close = storage_file_close,
	.submit = storage_file_submit,
	.resize = storage_file_resize,
};
