/* SPDX-License-Identifier: MIT */
/*
 * storage_null.c - the null engine, for benchmarks and tests: reads return
 * zeroes, writes, flushes and discards succeed and are dropped. Requests
 * never reach the kernel; they complete through the chan's local list.
 */
#include <errno.h>
#include <inttypes.h>

#include "common/iov.h"
#include "common/log.h"
#include "storage/storage_internal.h"

static int storage_null_open(struct storage *st, const struct storage_params *p)
{
	if (p->size == 0 || p->size % 512) {
		log_err("storage: null engine size %" PRIu64 " must be a non-zero multiple of 512",
			p->size);
		return -EINVAL;
	}
	st->info = (struct storage_info){
		.size = p->size,
		.logical_block_size = 512,
		.physical_block_size = 512,
		.read_only = p->read_only,
		.can_discard = true,
		.can_write_zeroes = true,
	};
	return 0;
}

static int storage_null_close(struct storage *st)
{
	(void)st;
	return 0;
}

static void storage_null_submit(struct storage_chan *ch, struct storage_io *io)
{
	if (io->op == STORAGE_OP_READ)
		iov_memset(io->iov, io->iovcnt, 0, 0, iov_size(io->iov, io->iovcnt));
	storage_chan_complete(ch, io, 0);
}

static int storage_null_resize(struct storage *st, uint64_t size)
{
	if (size)
		__atomic_store_n(&st->info.size, size, __ATOMIC_RELAXED);
	return 0;
}

const struct storage_ops storage_null_ops = {
	.name = "null",
	.open = storage_null_open,
	.close = storage_null_close,
	.submit = storage_null_submit,
	.resize = storage_null_resize,
};
