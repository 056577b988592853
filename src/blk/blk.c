/* SPDX-License-Identifier: MIT */
/*
 * blk.c - the virtio-blk device model: parses one request from its
 * device-readable and device-writable iovecs, runs it as storage ops and
 * completes it with a status byte and a used length. Also owns the config
 * space and the feature bits. Never sees rings, sockets or guest addresses.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "common/compiler.h"
#include "common/iov.h"
#include "common/log.h"

#define BIT64(n) (1ull << (n))

/* Per-segment limits we advertise (2 GiB, a multiple of any alignment). */
#define BLK_MAX_DISCARD_SECTORS      (1u << 22)
#define BLK_MAX_WRITE_ZEROES_SECTORS (1u << 22)
#define BLK_DEFAULT_SEG_MAX          126u
/* Largest IN/OUT data length: used_len (u32) must hold it plus status. */
#define BLK_MAX_DATA_BYTES           (UINT32_MAX & ~(uint32_t)(BLK_SECTOR_SIZE - 1))

struct blk_dev {
	struct storage *st;
	uint64_t capacity;           /* sectors */
	uint32_t blk_size;           /* storage logical block size */
	uint32_t phys_size;
	uint32_t seg_max;
	uint32_t size_max;
	uint16_t num_queues;
	bool read_only;
	uint64_t offered;            /* VIRTIO_BLK_F_* bits */
	uint8_t wce_default;         /* wce after creation and every reset */
	char serial[BLK_ID_BYTES];   /* NUL-padded */
	/*
	 * Written from any thread (config writes, feature negotiation), read
	 * by iothreads per request: accessed with __atomic builtins only.
	 */
	uint8_t wce;
	uint64_t features;           /* negotiated */
	bool features_set;
};

/* ---- device --------------------------------------------------------- */

static uint64_t blk_offered_features(const struct blk_dev *dev, const struct storage_info *info)
{
	uint64_t f = BIT64(VIRTIO_BLK_F_SEG_MAX) | BIT64(VIRTIO_BLK_F_BLK_SIZE) |
		     BIT64(VIRTIO_BLK_F_TOPOLOGY) | BIT64(VIRTIO_BLK_F_FLUSH) |
		     BIT64(VIRTIO_BLK_F_CONFIG_WCE);

	if (dev->size_max)
		f |= BIT64(VIRTIO_BLK_F_SIZE_MAX);
	if (dev->num_queues > 1)
		f |= BIT64(VIRTIO_BLK_F_MQ);
	if (dev->read_only) {
		f |= BIT64(VIRTIO_BLK_F_RO);
	} else {
		if (info->can_discard)
			f |= BIT64(VIRTIO_BLK_F_DISCARD);
		if (info->can_write_zeroes)
			f |= BIT64(VIRTIO_BLK_F_WRITE_ZEROES);
	}
	return f;
}

/**
 * blk_dev_create - a virtio-blk device over an open storage.
 * @p: parameters; p->st must stay open until blk_dev_destroy()
 * @out: the new device
 *
 * seg_max 0 means queue_size - 2 (126 without a queue_size); size_max 0
 * means no limit (VIRTIO_BLK_F_SIZE_MAX is then not offered).
 * Returns 0, -EINVAL (bad parameters, logged) or -ENOMEM.
 * Context: any thread.
 */
int blk_dev_create(const struct blk_dev_params *p, struct blk_dev **out)
{
	const struct storage_info *info;
	struct blk_dev *dev;
	uint32_t seg_max;
	size_t serial_len;
	const char *serial;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!p || !p->st)
		return -EINVAL;
	if (p->num_queues == 0 || p->num_queues > UINT16_MAX) {
		log_err("blk: num_queues %u out of range 1..%u", p->num_queues, UINT16_MAX);
		return -EINVAL;
	}
	if (p->queue_size) {
		if (p->queue_size < 3) {
			log_err("blk: queue_size %u too small", p->queue_size);
			return -EINVAL;
		}
		seg_max = p->seg_max ? p->seg_max : p->queue_size - 2;
		if (seg_max > p->queue_size - 2) {
			log_err("blk: seg_max %u exceeds queue_size - 2 (%u)", seg_max,
				p->queue_size - 2);
			return -EINVAL;
		}
	} else {
		seg_max = p->seg_max ? p->seg_max : BLK_DEFAULT_SEG_MAX;
	}
	serial = p->serial ? p->serial : "vblk";
	serial_len = strlen(serial);
	if (serial_len > BLK_ID_BYTES) {
		log_err("blk: serial \"%s\" longer than %u bytes", serial, BLK_ID_BYTES);
		return -EINVAL;
	}

	info = storage_get_info(p->st);
	if (info->logical_block_size < BLK_SECTOR_SIZE ||
	    (info->logical_block_size & (info->logical_block_size - 1))) {
		log_err("blk: storage block size %u unusable", info->logical_block_size);
		return -EINVAL;
	}

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->st = p->st;
	dev->capacity = info->size / BLK_SECTOR_SIZE;
	if (info->size % BLK_SECTOR_SIZE)
		log_warn("blk: storage size %" PRIu64 " not a multiple of %u; the tail is unused",
			 info->size, BLK_SECTOR_SIZE);
	dev->blk_size = info->logical_block_size;
	dev->phys_size = info->physical_block_size >= dev->blk_size ?
			 info->physical_block_size : dev->blk_size;
	dev->seg_max = seg_max;
	dev->size_max = p->size_max;
	dev->num_queues = (uint16_t)p->num_queues;
	dev->read_only = p->read_only || info->read_only;
	memcpy(dev->serial, serial, serial_len);
	dev->wce_default = p->writeback ? 1 : 0;
	dev->wce = dev->wce_default;
	dev->offered = blk_offered_features(dev, info);
	*out = dev;
	return 0;
}

void blk_dev_destroy(struct blk_dev *dev)
{
	free(dev);
}

uint64_t blk_dev_features(const struct blk_dev *dev)
{
	return dev->offered;
}

static uint8_t blk_ilog2(uint32_t v)
{
	uint8_t r = 0;

	while (v > 1) {
		v >>= 1;
		r++;
	}
	return r;
}

/**
 * blk_dev_get_config - the config space as the guest reads it.
 * @dev: the device
 * @cfg: filled, little-endian; fields of features not offered are 0
 *
 * Context: any thread.
 */
void blk_dev_get_config(const struct blk_dev *dev, struct virtio_blk_config *cfg)
{
	uint32_t lbs_per_pbs = dev->phys_size / dev->blk_size;

	memset(cfg, 0, sizeof(*cfg));
	cfg->capacity = htole64(__atomic_load_n(&dev->capacity, __ATOMIC_RELAXED));
	cfg->size_max = htole32(dev->size_max);
	cfg->seg_max = htole32(dev->seg_max);
	cfg->blk_size = htole32(dev->blk_size);
	cfg->physical_block_exp = blk_ilog2(lbs_per_pbs);
	cfg->alignment_offset = 0;
	cfg->min_io_size = htole16((uint16_t)lbs_per_pbs);
	cfg->opt_io_size = htole32(0);
	cfg->wce = __atomic_load_n(&dev->wce, __ATOMIC_RELAXED);
	cfg->num_queues = htole16(dev->num_queues);
	if (dev->offered & BIT64(VIRTIO_BLK_F_DISCARD)) {
		cfg->max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
		cfg->max_discard_seg = htole32(BLK_MAX_DISCARD_SEG);
		cfg->discard_sector_alignment = htole32(dev->blk_size / BLK_SECTOR_SIZE);
	}
	if (dev->offered & BIT64(VIRTIO_BLK_F_WRITE_ZEROES)) {
		cfg->max_write_zeroes_sectors = htole32(BLK_MAX_WRITE_ZEROES_SECTORS);
		cfg->max_write_zeroes_seg = htole32(BLK_MAX_DISCARD_SEG);
		cfg->write_zeroes_may_unmap = 1;
	}
}

/**
 * blk_dev_set_config - a guest write to config space.
 * @dev: the device
 * @offset: byte offset in struct virtio_blk_config
 * @buf: @len bytes
 * @len: must be 1, at the offset of writeback
 *
 * Only the writeback byte is writable: any other write is -EINVAL and
 * changes nothing. A non-zero value enables writeback.
 * Context: any thread (iothreads read the cache mode atomically).
 */
int blk_dev_set_config(struct blk_dev *dev, uint32_t offset, const void *buf, uint32_t len)
{
	if (!buf || offset != offsetof(struct virtio_blk_config, wce) || len != 1)
		return -EINVAL;
	__atomic_store_n(&dev->wce, *(const uint8_t *)buf ? 1 : 0, __ATOMIC_RELAXED);
	return 0;
}

/**
 * blk_dev_set_features - the features the driver accepted.
 * @dev: the device
 * @features: negotiated bits
 *
 * Without VIRTIO_BLK_F_FLUSH the device is write-through whatever
 * writeback says; with CONFIG_WCE but not FLUSH, writeback starts at 0
 * (virtio spec, device initialization).
 * Context: any thread, typically the vhost thread.
 */
void blk_dev_set_features(struct blk_dev *dev, uint64_t features)
{
	if ((features & BIT64(VIRTIO_BLK_F_CONFIG_WCE)) && !(features & BIT64(VIRTIO_BLK_F_FLUSH)))
		__atomic_store_n(&dev->wce, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&dev->features, features, __ATOMIC_RELAXED);
	/* Pairs with the acquire in blk_writeback(). */
	__atomic_store_n(&dev->features_set, true, __ATOMIC_RELEASE);
}

/**
 * blk_dev_reset - back to the state after blk_dev_create: the configured
 * cache mode, no negotiated features. What one driver wrote to the config
 * space must not be inherited by the next.
 * @dev: the device
 *
 * Context: the control thread, with no queue running.
 */
void blk_dev_reset(struct blk_dev *dev)
{
	__atomic_store_n(&dev->features_set, false, __ATOMIC_RELEASE);
	__atomic_store_n(&dev->features, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&dev->wce, dev->wce_default, __ATOMIC_RELAXED);
}

/* Writes may be volatile until a FLUSH: otherwise they use FUA. */
static bool blk_writeback(const struct blk_dev *dev)
{
	/* Pairs with the release in blk_dev_set_features(). */
	if (__atomic_load_n(&dev->features_set, __ATOMIC_ACQUIRE) &&
	    !(__atomic_load_n(&dev->features, __ATOMIC_RELAXED) & BIT64(VIRTIO_BLK_F_FLUSH)))
		return false;
	return __atomic_load_n(&dev->wce, __ATOMIC_RELAXED) != 0;
}

void blk_dev_set_capacity(struct blk_dev *dev, uint64_t sectors)
{
	__atomic_store_n(&dev->capacity, sectors, __ATOMIC_RELAXED);
}

uint64_t blk_dev_capacity(const struct blk_dev *dev)
{
	return __atomic_load_n(&dev->capacity, __ATOMIC_RELAXED);
}

/* ---- requests -------------------------------------------------------- */

static bool blk_range_ok(const struct blk_dev *dev, uint64_t sector, uint64_t nsect)
{
	/* Changed by blk_dev_set_capacity (control thread) while served. */
	uint64_t cap = __atomic_load_n(&dev->capacity, __ATOMIC_RELAXED);

	return sector <= cap && nsect <= cap - sector;
}

static void blk_req_finish(struct blk_req *req)
{
	if (req->result != VIRTIO_BLK_S_OK)
		req->used_len = 1;
	/* The status byte lives in guest memory: one plain store. */
	WRITE_ONCE(*req->status, req->result);
	req->cb(req, req->used_len);
}

static void blk_req_fail(struct blk_req *req, uint8_t status)
{
	req->result = status;
	blk_req_finish(req);
}

static void blk_io_done(struct storage_io *io, int res)
{
	struct blk_req *req = io->priv;

	if (res < 0) {
		log_rl(LOG_WARN, "blk: request type %" PRIu32 " at byte %" PRIu64 ": %s",
		       req->type, io->offset, strerror(-res));
		if (req->result < VIRTIO_BLK_S_IOERR)
			req->result = VIRTIO_BLK_S_IOERR;
	}
	if (--req->pending == 0)
		blk_req_finish(req);
}

static void blk_io_init(struct blk_req *req, struct storage_io *io, enum storage_op op,
			uint64_t offset)
{
	memset(io, 0, sizeof(*io));
	io->op = op;
	io->offset = offset;
	io->cb = blk_io_done;
	io->priv = req;
}

static void blk_req_rw(struct blk_dev *dev, struct storage_chan *ch, struct blk_req *req,
		       uint64_t sector, bool write, struct iovec *data, unsigned cnt)
{
	struct storage_io *io = &req->io[0];
	uint64_t len = iov_size(data, cnt);

	if (write && dev->read_only) {
		blk_req_fail(req, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (len % BLK_SECTOR_SIZE || len > BLK_MAX_DATA_BYTES ||
	    !blk_range_ok(dev, sector, len / BLK_SECTOR_SIZE)) {
		log_rl(LOG_WARN, "blk: bad %s: sector %" PRIu64 " + %" PRIu64 " bytes (capacity %"
		       PRIu64 " sectors)", write ? "write" : "read", sector, len,
		       __atomic_load_n(&dev->capacity, __ATOMIC_RELAXED));
		blk_req_fail(req, VIRTIO_BLK_S_IOERR);
		return;
	}

	req->data = data;
	req->data_cnt = cnt;
	req->bytes = len;
	req->data_written = write ? 0 : (uint32_t)len;
	req->used_len = write ? 1 : (uint32_t)len + 1;
	blk_io_init(req, io, write ? STORAGE_OP_WRITE : STORAGE_OP_READ, sector * BLK_SECTOR_SIZE);
	io->iov = data;
	io->iovcnt = cnt;
	io->fua = write && !blk_writeback(dev);
	req->pending = 1;
	storage_submit(ch, dev->st, io);
}

static void blk_req_flush(struct blk_dev *dev, struct storage_chan *ch, struct blk_req *req)
{
	req->used_len = 1;
	blk_io_init(req, &req->io[0], STORAGE_OP_FLUSH, 0);
	req->pending = 1;
	storage_submit(ch, dev->st, &req->io[0]);
}

static void blk_req_get_id(struct blk_dev *dev, struct blk_req *req, struct iovec *in,
			   unsigned in_cnt)
{
	size_t n = MIN(iov_size(in, in_cnt), (size_t)BLK_ID_BYTES);

	n = iov_from_buf(in, in_cnt, 0, dev->serial, n);
	req->data = in;
	req->data_cnt = in_cnt;
	req->data_written = (uint32_t)n;
	req->used_len = (uint32_t)n + 1;
	blk_req_finish(req);
}

/*
 * DISCARD and WRITE_ZEROES. Every segment is checked before any runs.
 * Status choices: empty or ragged segment data -> IOERR; more segments
 * than max_*_seg -> UNSUPP (as QEMU does); unknown flags, or UNMAP on a
 * discard -> UNSUPP (spec); num_sectors over the advertised max or a range
 * beyond capacity -> IOERR.
 */
/* Check the segments of a DISCARD / WRITE_ZEROES; VIRTIO_BLK_S_OK if all pass. */
static uint8_t blk_dwz_check(const struct blk_dev *dev, bool wz,
			     const struct virtio_blk_discard_write_zeroes *seg, unsigned nseg)
{
	uint32_t max_sectors = wz ? BLK_MAX_WRITE_ZEROES_SECTORS : BLK_MAX_DISCARD_SECTORS;

	for (unsigned i = 0; i < nseg; i++) {
		uint64_t sector = le64toh(seg[i].sector);
		uint32_t nsect = le32toh(seg[i].num_sectors);
		uint32_t flags = le32toh(seg[i].flags);

		if (flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
			return VIRTIO_BLK_S_UNSUPP;
		if (!wz && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))
			return VIRTIO_BLK_S_UNSUPP;
		if (nsect > max_sectors || !blk_range_ok(dev, sector, nsect)) {
			log_rl(LOG_WARN, "blk: bad %s segment: sector %" PRIu64 " + %" PRIu32,
			       wz ? "write-zeroes" : "discard", sector, nsect);
			return VIRTIO_BLK_S_IOERR;
		}
	}
	return VIRTIO_BLK_S_OK;
}

/*
 * DISCARD and WRITE_ZEROES: one storage op per non-empty segment, after
 * every segment passed its checks. Status choices: empty or ragged segment
 * data -> IOERR; more segments than max_*_seg -> UNSUPP (as QEMU does);
 * unknown flags, or UNMAP on a discard -> UNSUPP (spec); num_sectors over
 * the advertised max or beyond capacity -> IOERR; read-only -> IOERR.
 */
static void blk_req_dwz(struct blk_dev *dev, struct storage_chan *ch, struct blk_req *req,
			bool wz, struct iovec *data, unsigned cnt)
{
	struct virtio_blk_discard_write_zeroes seg[BLK_MAX_DISCARD_SEG];
	uint64_t feature = BIT64(wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD);
	uint64_t len = iov_size(data, cnt);
	unsigned nseg, nops = 0;
	uint8_t status;

	req->used_len = 1;
	if (dev->read_only)
		status = VIRTIO_BLK_S_IOERR;
	else if (!(dev->offered & feature))
		status = VIRTIO_BLK_S_UNSUPP;
	else if (len == 0 || len % sizeof(seg[0]))
		status = VIRTIO_BLK_S_IOERR;
	else if (len / sizeof(seg[0]) > BLK_MAX_DISCARD_SEG)
		status = VIRTIO_BLK_S_UNSUPP;
	else
		status = VIRTIO_BLK_S_OK;
	if (status != VIRTIO_BLK_S_OK)
		goto fail;

	nseg = (unsigned)(len / sizeof(seg[0]));
	/* One copy: the guest may change its buffer while we look at it. */
	iov_to_buf(data, cnt, 0, seg, len);
	status = blk_dwz_check(dev, wz, seg, nseg);
	if (status != VIRTIO_BLK_S_OK)
		goto fail;

	for (unsigned i = 0; i < nseg; i++) {
		struct storage_io *io = &req->io[nops];
		uint32_t nsect = le32toh(seg[i].num_sectors);

		if (nsect == 0)
			continue;
		blk_io_init(req, io, wz ? STORAGE_OP_WRITE_ZEROES : STORAGE_OP_DISCARD,
			    le64toh(seg[i].sector) * BLK_SECTOR_SIZE);
		io->len = (uint64_t)nsect * BLK_SECTOR_SIZE;
		io->unmap = wz && (le32toh(seg[i].flags) & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
		io->fua = wz && !blk_writeback(dev);
		req->bytes += io->len;
		nops++;
	}
	if (nops == 0) {
		blk_req_finish(req);
		return;
	}
	req->pending = (int)nops;
	for (unsigned i = 0; i < nops; i++)
		storage_submit(ch, dev->st, &req->io[i]);
	return;

fail:
	blk_req_fail(req, status);
}

/*
 * Point @iov[0..cnt) past its first @skip bytes, rewriting the entry where
 * the data starts. Returns the index of that entry (cnt if none is left).
 */
static unsigned blk_iov_skip(struct iovec *iov, unsigned cnt, size_t skip)
{
	unsigned k = 0;

	while (k < cnt && skip >= iov[k].iov_len) {
		skip -= iov[k].iov_len;
		k++;
	}
	if (k < cnt) {
		iov[k].iov_base = (char *)iov[k].iov_base + skip;
		iov[k].iov_len -= skip;
	}
	return k;
}

void blk_req_peek(const struct iovec *iov, unsigned out_num, unsigned in_num, uint32_t *type,
		  uint64_t *bytes)
{
	struct virtio_blk_outhdr hdr;
	size_t n;

	*bytes = 0;
	if (iov_to_buf(iov, out_num, 0, &hdr, sizeof(hdr)) < sizeof(hdr)) {
		*type = UINT32_MAX;
		return;
	}
	*type = le32toh(hdr.type);
	if (*type == VIRTIO_BLK_T_IN) {
		n = iov_size(iov + out_num, in_num);
		*bytes = n ? n - 1 : 0;
	} else if (*type == VIRTIO_BLK_T_OUT) {
		*bytes = iov_size(iov, out_num) - sizeof(hdr);
	}
}

/**
 * blk_req_submit - parse and run one request; see blk.h.
 *
 * Storage ops are queued on @ch; the caller flushes the chan.
 * Context: the iothread that owns @ch.
 */
void blk_req_submit(struct blk_dev *dev, struct storage_chan *ch, struct blk_req *req,
		    struct iovec *iov, unsigned out_num, unsigned in_num, blk_req_done_cb cb)
{
	struct iovec *in = iov + out_num;
	struct virtio_blk_outhdr hdr;
	unsigned in_cnt = in_num, k;
	uint64_t sector;

	req->dev = dev;
	req->cb = cb;
	req->status = NULL;
	req->used_len = 0;
	req->type = 0;
	req->pending = 0;
	req->result = VIRTIO_BLK_S_OK;
	req->data = NULL;
	req->data_cnt = 0;
	req->data_written = 0;
	req->bytes = 0;

	/* The status byte is the last byte of the writable part. */
	while (in_cnt > 0 && in[in_cnt - 1].iov_len == 0)
		in_cnt--;
	if (in_cnt == 0 || iov_to_buf(iov, out_num, 0, &hdr, sizeof(hdr)) < sizeof(hdr)) {
		log_rl(LOG_WARN, "blk: request without %s", in_cnt ? "a header" : "a status byte");
		cb(req, 0);
		return;
	}
	in[in_cnt - 1].iov_len--;
	req->status = (uint8_t *)in[in_cnt - 1].iov_base + in[in_cnt - 1].iov_len;
	if (in[in_cnt - 1].iov_len == 0)
		in_cnt--;

	/* Readable data starts right after the header. */
	k = blk_iov_skip(iov, out_num, sizeof(hdr));

	req->type = le32toh(hdr.type);
	sector = le64toh(hdr.sector);

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		blk_req_rw(dev, ch, req, sector, false, in, in_cnt);
		break;
	case VIRTIO_BLK_T_OUT:
		blk_req_rw(dev, ch, req, sector, true, iov + k, out_num - k);
		break;
	case VIRTIO_BLK_T_FLUSH:
		blk_req_flush(dev, ch, req);
		break;
	case VIRTIO_BLK_T_GET_ID:
		blk_req_get_id(dev, req, in, in_cnt);
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		blk_req_dwz(dev, ch, req, req->type == VIRTIO_BLK_T_WRITE_ZEROES, iov + k,
			    out_num - k);
		break;
	default:
		log_rl(LOG_DEBUG, "blk: unsupported request type %" PRIu32, req->type);
		req->used_len = 1;
		blk_req_fail(req, VIRTIO_BLK_S_UNSUPP);
		break;
	}
}

void blk_req_written(const struct blk_req *req, void (*fn)(void *arg, void *p, size_t len),
		     void *arg)
{
	size_t left = req->data_written;

	for (unsigned i = 0; i < req->data_cnt && left; i++) {
		size_t n = MIN(left, req->data[i].iov_len);

		if (n)
			fn(arg, req->data[i].iov_base, n);
		left -= n;
	}
	if (req->status)
		fn(arg, req->status, 1);
}
