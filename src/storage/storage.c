/* SPDX-License-Identifier: MIT */
/*
 * storage.c - the engine-independent part of storage: parameter checks,
 * open/close through the engine ops table, and the checks every request
 * passes before an engine sees it (op, range, read-only). Requests failing
 * them complete through the chan's local list, never synchronously.
 * Knows nothing about virtio, nor about io_uring beyond struct storage_chan.
 */
#include <errno.h>
#include <stdlib.h>

#include "common/iov.h"
#include "common/log.h"
#include "storage/storage_internal.h"

/**
 * storage_open - open a backend described by @p.
 * @p: engine and its parameters
 * @out: the new storage on success
 *
 * Returns 0 or -errno (-EINVAL for bad parameters); the reason is logged.
 * Context: any thread, before the storage is shared.
 */
int storage_open(const struct storage_params *p, struct storage **out)
{
	const struct storage_ops *ops;
	struct storage *st;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!p)
		return -EINVAL;

	switch (p->engine) {
	case STORAGE_FILE:
		if (!p->path || !p->path[0]) {
			log_err("storage: the file engine needs a path");
			return -EINVAL;
		}
		ops = &storage_file_ops;
		break;
	case STORAGE_NULL:
		ops = &storage_null_ops;
		break;
	case STORAGE_RBD:
#ifdef HAVE_RBD
		if (!p->path || !p->path[0]) {
			log_err("storage: the rbd engine needs POOL/IMAGE");
			return -EINVAL;
		}
		ops = &storage_rbd_ops;
		break;
#else
		log_err("storage: this vblkd was built without the rbd engine (librbd)");
		return -ENOTSUP;
#endif
	default:
		log_err("storage: unknown engine %d", (int)p->engine);
		return -EINVAL;
	}

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->ops = ops;
	st->fd = -1;
	st->size_fd = -1;

	ret = ops->open(st, p);
	if (ret < 0)
		goto err_free;
	if (p->read_only)
		st->info.read_only = true;
	if (st->info.read_only) {
		/* Nothing may modify a read-only backend. */
		st->info.can_discard = false;
		st->info.can_write_zeroes = false;
	}
	*out = st;
	return 0;

err_free:
	free(st);
	return ret;
}

/**
 * storage_close - flush (unless read-only) and close a backend opened by
 * storage_open().
 * @st: the storage, or NULL
 *
 * Return: 0, or the flush's -errno; @st is freed either way.
 * Context: after every chan has finished its requests on @st.
 */
int storage_close(struct storage *st)
{
	int ret;

	if (!st)
		return 0;
	ret = st->ops->close(st);
	free(st);
	return ret;
}

int storage_claim(struct storage *st, const char *owner)
{
	if (!st || !owner || !owner[0])
		return -EINVAL;
	return st->ops->claim ? st->ops->claim(st, owner) : 0;
}

/**
 * storage_get_info - size, block sizes and capabilities of @st.
 * @st: an open storage
 *
 * Context: any thread; the info never changes after storage_open(), but
 * for the size (an rbd image resized while served, storage_resize):
 * updated with a relaxed atomic store, read it with __atomic_load_n.
 */
const struct storage_info *storage_get_info(const struct storage *st)
{
	return &st->info;
}

void storage_set_size_fd(struct storage *st, int fd)
{
	__atomic_store_n(&st->size_fd, fd, __ATOMIC_RELEASE);
}

int storage_resize(struct storage *st, uint64_t size, uint64_t *out)
{
	int ret;

	if (size % 512)
		return -EINVAL;
	if (size && st->info.read_only)
		return -EROFS;
	if (!st->ops->resize)
		return -EOPNOTSUPP;
	ret = st->ops->resize(st, size);
	if (ret)
		return ret;
	*out = __atomic_load_n(&st->info.size, __ATOMIC_RELAXED);
	return 0;
}

/* Return 0 if @io may run on @st, storing its byte length in @len. */
static int storage_check(const struct storage *st, const struct storage_io *io, uint64_t *len)
{
	const struct storage_info *info = &st->info;
	/* An rbd image's size changes when it is resized (any thread). */
	uint64_t size = __atomic_load_n(&info->size, __ATOMIC_RELAXED);

	switch (io->op) {
	case STORAGE_OP_READ:
	case STORAGE_OP_WRITE:
		if (io->op == STORAGE_OP_WRITE && info->read_only)
			return -EROFS;
		if (!io->iov && io->iovcnt)
			return -EINVAL;
		*len = iov_size(io->iov, io->iovcnt);
		break;
	case STORAGE_OP_FLUSH:
		*len = 0;
		return 0;
	case STORAGE_OP_DISCARD:
	case STORAGE_OP_WRITE_ZEROES:
		if (info->read_only)
			return -EROFS;
		if (io->op == STORAGE_OP_DISCARD ? !info->can_discard : !info->can_write_zeroes)
			return -EOPNOTSUPP;
		*len = io->len;
		break;
	default:
		return -EINVAL;
	}

	if (io->offset > size || *len > size - io->offset)
		return -EINVAL;
	return 0;
}

/**
 * storage_submit - queue @io on @ch for @st.
 * @ch: the calling thread's chan
 * @st: the backend
 * @io: the request; cb runs from a later storage_chan_reap()
 *
 * Context: the thread that owns @ch.
 */
void storage_submit(struct storage_chan *ch, struct storage *st, struct storage_io *io)
{
	uint64_t len = 0;
	int ret;

	io->st = st;
	io->ch = ch;
	io->done_bytes = 0;
	io->next = NULL;
	io->res = 0;
	io->stage = 0;
	ch->inflight++;

	ret = storage_check(st, io, &len);
	if (ret < 0 || (len == 0 && io->op != STORAGE_OP_FLUSH)) {
		/* Errors, and empty transfers that need no kernel work. */
		storage_chan_complete(ch, io, ret);
		return;
	}
	st->ops->submit(ch, io);
}

bool storage_have_rbd(void)
{
#ifdef HAVE_RBD
	return true;
#else
	return false;
#endif
}

unsigned storage_chan_inflight(const struct storage_chan *ch)
{
	return ch->inflight;
}
