/* SPDX-License-Identifier: MIT */
/*
 * blk.h - the virtio-blk device model: a request is a pair (device-
 * readable iovecs, device-writable iovecs); blk parses it, runs it on a
 * storage engine and completes it with a status byte and a used length.
 * blk never sees rings or sockets, so the same model can sit behind
 * another transport.
 */
#ifndef VBLK_BLK_H
#define VBLK_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <linux/virtio_blk.h>

#include "storage/storage.h"

#define BLK_SECTOR_SIZE 512u
#define BLK_MAX_DISCARD_SEG 16u
#define BLK_ID_BYTES 20u       /* VIRTIO_BLK_ID_BYTES */

struct blk_dev_params {
	struct storage *st;      /* not owned */
	bool read_only;          /* also forced if the storage is read-only */
	bool writeback;          /* initial cache mode the guest sees (wce) */
	unsigned num_queues;
	uint32_t seg_max;        /* most data segments per request */
	uint32_t size_max;       /* largest segment, bytes */
	uint32_t queue_size;     /* for seg_max sanity: seg_max <= queue_size - 2 */
	const char *serial;      /* GET_ID, up to 20 bytes; NULL = "vblk" */
};

struct blk_dev;

int blk_dev_create(const struct blk_dev_params *p, struct blk_dev **out);
void blk_dev_destroy(struct blk_dev *dev);

/* VIRTIO_BLK_F_* bits this device offers (device-specific bits only). */
uint64_t blk_dev_features(const struct blk_dev *dev);

/* The config space (little-endian, as the guest reads it). */
void blk_dev_get_config(const struct blk_dev *dev, struct virtio_blk_config *cfg);

/*
 * blk_dev_set_config - a guest write to config space. Only the writeback
 * byte is writable (VIRTIO_BLK_F_CONFIG_WCE); -EINVAL otherwise.
 * Context: any thread (the cache mode is read atomically by iothreads).
 */
int blk_dev_set_config(struct blk_dev *dev, uint32_t offset, const void *buf, uint32_t len);

/* Set by vhost after feature negotiation; writeback then depends on wce. */
void blk_dev_set_features(struct blk_dev *dev, uint64_t features);

/* Device reset: the configured cache mode again, no features negotiated. */
void blk_dev_reset(struct blk_dev *dev);
/*
 * blk_dev_set_capacity / blk_dev_capacity - the capacity in sectors the
 * config space shows and requests are checked against (online resize).
 * Requests checked after the store see the new capacity; one already
 * checked runs against the old. Context: any thread (relaxed atomics).
 */
void blk_dev_set_capacity(struct blk_dev *dev, uint64_t sectors);
uint64_t blk_dev_capacity(const struct blk_dev *dev);

struct blk_req;
/* used_len: bytes written to the device-writable buffers, status included. */
typedef void (*blk_req_done_cb)(struct blk_req *req, uint32_t used_len);

/* Embedded by the caller in its per-request struct; private to blk. */
struct blk_req {
	struct blk_dev *dev;
	blk_req_done_cb cb;
	uint8_t *status;            /* host address of the status byte, or NULL */
	uint32_t used_len;
	uint32_t type;
	int pending;                /* storage ops outstanding */
	uint8_t result;             /* VIRTIO_BLK_S_* accumulated */
	struct iovec *data;         /* data iovecs: a view into the caller's array */
	unsigned data_cnt;
	uint32_t data_written;      /* leading bytes of data the device wrote */
	uint64_t bytes;             /* for statistics: the data a read or write
				     * moves, the range a discard/write-zeroes
				     * covers (once parsed as valid); else 0 */
	struct storage_io io[BLK_MAX_DISCARD_SEG];
};

/*
 * blk_req_submit - parse and run one request. iov[0..out_num) readable,
 * iov[out_num..out_num+in_num) writable. Exactly one cb call follows,
 * possibly before this returns (requests rejected at parse time, GET_ID,
 * and DISCARD/WRITE_ZEROES whose segments are all empty).
 * Malformed requests complete with VIRTIO_BLK_S_IOERR or _UNSUPP; a
 * request with no room for a status byte completes with used_len 0.
 * blk may rewrite entries of @iov in place (to trim the header and the
 * status byte); the array must stay alive until cb. Storage ops are only
 * queued on @ch: the caller runs storage_chan_flush() (once per batch).
 * Context: the iothread that owns @ch.
 */
void blk_req_submit(struct blk_dev *dev, struct storage_chan *ch, struct blk_req *req,
		    struct iovec *iov, unsigned out_num, unsigned in_num, blk_req_done_cb cb);

/*
 * blk_req_peek - what a request asks for, before it runs (for I/O
 * limits): its type (VIRTIO_BLK_T_*; UINT32_MAX without a header) and
 * the data bytes it moves (reads: the writable part less the status
 * byte; writes: the readable part less the header; others: 0). Reads the
 * header only; blk_req_submit still checks everything.
 */
void blk_req_peek(const struct iovec *iov, unsigned out_num, unsigned in_num, uint32_t *type,
		  uint64_t *bytes);

/*
 * blk_req_written - call fn(arg, p, len) for each piece of guest memory
 * the completed request @req wrote: the data of a read (all of it, even
 * on error: storage may have filled part), the GET_ID string, the status
 * byte. Pieces are parts of the request's writable iovecs. For dirty
 * logging; call it from the completion callback.
 */
void blk_req_written(const struct blk_req *req, void (*fn)(void *arg, void *p, size_t len),
		     void *arg);

#endif
