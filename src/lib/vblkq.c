/* SPDX-License-Identifier: MIT */
/*
 * vblkq.c - libvblk data path: turn a request into a virtio-blk
 * descriptor chain (header and status byte in a preallocated slot of the
 * library's shared region, data translated to device addresses), batch
 * kicks, reap completions by polling or by waiting on the call eventfd,
 * and fail everything in flight when the server goes away.
 *
 * No allocation and no system call per request: a kick at most once per
 * vblkq_do_io() call, and only when the device asked for one.
 * Context: one thread per struct vblkq.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <linux/virtio_blk.h>

#include "common/arch.h"
#include "common/compiler.h"
#include "lib/vblk_internal.h"

#define SECTOR 512u

static const char *ret_msg(int ret)
{
	switch (ret) {
	case 0:
		return NULL;
	case -EIO:
		return "I/O error reported by the device";
	case -ENOTSUP:
		return "request not supported by the device";
	case -ENOTCONN:
		return "connection to the vhost-user server lost";
	case -EPROTO:
		return "the server returned a corrupt completion: queue unusable";
	default:
		return "request failed";
	}
}

/* Host address -> device address; the buffer must lie in one region. */
static inline bool xlate(struct vblkq *q, const void *buf, size_t len, uint64_t *iova)
{
	struct vblk *v = q->v;
	uintptr_t a = (uintptr_t)buf;
	const struct lib_region *r = &v->regions[q->last_region];
	unsigned i, n;

	if (likely(a - (uintptr_t)r->addr < r->len && len <= r->len - (a - (uintptr_t)r->addr))) {
		*iova = r->iova + (a - (uintptr_t)r->addr);
		return true;
	}
	n = __atomic_load_n(&v->nregions, __ATOMIC_ACQUIRE);
	for (i = 0; i < n; i++) {
		r = &v->regions[i];
		if (a - (uintptr_t)r->addr < r->len && len <= r->len - (a - (uintptr_t)r->addr)) {
			q->last_region = i;
			*iova = r->iova + (a - (uintptr_t)r->addr);
			return true;
		}
	}
	return false;
}

/* Append a data buffer to bufs[*n..], cut at the device's size_max. */
static inline int add_seg(struct vblkq *q, struct virtq_drv_buf *bufs, unsigned *n,
			  const void *buf, size_t len)
{
	uint32_t size_max = q->size_max;
	uint64_t iova;

	if (unlikely(!xlate(q, buf, len, &iova)))
		return -EFAULT;
	do {
		uint32_t l = len > size_max ? size_max : (uint32_t)len;

		if (unlikely(*n >= q->max_segs))
			return -EINVAL;
		bufs[1 + *n].addr = iova;
		bufs[1 + *n].len = l;
		(*n)++;
		iova += l;
		len -= l;
	} while (len);
	return 0;
}

static inline int check_ready(struct vblkq *q)
{
	if (unlikely(q->failed))
		return q->fail_ret;
	if (unlikely(__atomic_load_n(&q->v->dead, __ATOMIC_RELAXED)))
		return -ENOTCONN;
	if (unlikely(!q->free_reqs))
		return -EAGAIN;
	return 0;
}

/*
 * Put slot @r on the ring: bufs[0] becomes the header, bufs[1..nseg] are
 * the data (already filled), bufs[nseg+1] the status byte.
 */
static inline int req_submit(struct vblkq *q, struct lib_req *r, uint32_t type,
			     uint64_t sector, struct virtq_drv_buf *bufs, unsigned nseg,
			     bool dev_reads_data, void *user_data)
{
	struct virtio_blk_outhdr *hdr = (struct virtio_blk_outhdr *)(r->shared + SLOT_HDR);
	unsigned out = dev_reads_data ? 1 + nseg : 1, total = nseg + 2;
	void *table = NULL;
	int ret;

	hdr->type = type;
	hdr->ioprio = 0;
	hdr->sector = sector;
	r->shared[SLOT_STATUS] = 0xff;      /* not written by the device = error */
	bufs[0].addr = r->iova + SLOT_HDR;
	bufs[0].len = sizeof(*hdr);
	bufs[total - 1].addr = r->iova + SLOT_STATUS;
	bufs[total - 1].len = 1;
	/* Direct chains while the ring has room, an indirect table otherwise. */
	if (q->indirect && (total > q->drv.num_free || total > 4))
		table = r->shared + SLOT_TABLE;
	ret = virtq_drv_add(&q->drv, bufs, out, total - out, r, table, r->iova + SLOT_TABLE);
	if (unlikely(ret))
		return ret == -ENOSPC ? -EAGAIN : ret;
	q->free_reqs = r->next;
	r->user_data = user_data;
	r->on_ring = true;
	q->outstanding++;
	q->need_kick = true;
	return 0;
}

static int rw(struct vblkq *q, uint32_t type, uint64_t offset, const void *buf, size_t len,
	      void *user_data, uint32_t flags)
{
	struct virtq_drv_buf bufs[3];
	unsigned n = 0;
	int ret;

	if (unlikely(!q || flags || ((offset | len) & (SECTOR - 1)) || len == 0 ||
		     len > UINT32_MAX))
		return -EINVAL;
	ret = check_ready(q);
	if (unlikely(ret))
		return ret;
	if (likely(len <= q->size_max) || q->max_segs < 2) {
		uint64_t iova;

		if (unlikely(!xlate(q, buf, len, &iova)))
			return -EFAULT;
		bufs[1].addr = iova;
		bufs[1].len = (uint32_t)len;
		n = 1;
	} else {
		struct virtq_drv_buf big[LIB_MAX_SEGS + 2];

		ret = add_seg(q, big, &n, buf, len);
		if (ret)
			return ret;
		return req_submit(q, q->free_reqs, type, offset / SECTOR, big, n,
				  type == VIRTIO_BLK_T_OUT, user_data);
	}
	return req_submit(q, q->free_reqs, type, offset / SECTOR, bufs, n,
			  type == VIRTIO_BLK_T_OUT, user_data);
}

int vblkq_read(struct vblkq *q, uint64_t offset, void *buf, size_t len, void *user_data,
	       uint32_t flags)
{
	return rw(q, VIRTIO_BLK_T_IN, offset, buf, len, user_data, flags);
}

int vblkq_write(struct vblkq *q, uint64_t offset, const void *buf, size_t len,
		void *user_data, uint32_t flags)
{
	if (q && (q->v->acked & (1ull << VIRTIO_BLK_F_RO)))
		return -EROFS;
	return rw(q, VIRTIO_BLK_T_OUT, offset, buf, len, user_data, flags);
}

static int rwv(struct vblkq *q, uint32_t type, uint64_t offset, const struct iovec *iov,
	       int iovcnt, void *user_data, uint32_t flags)
{
	struct virtq_drv_buf bufs[LIB_MAX_SEGS + 2];
	unsigned n = 0;
	size_t total = 0;
	int i, ret;

	if (!q || flags || (offset & (SECTOR - 1)) || iovcnt <= 0 || !iov)
		return -EINVAL;
	ret = check_ready(q);
	if (ret)
		return ret;
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len == 0)
			continue;
		ret = add_seg(q, bufs, &n, iov[i].iov_base, iov[i].iov_len);
		if (ret)
			return ret;
		total += iov[i].iov_len;
	}
	if (total == 0 || total % SECTOR || total > UINT32_MAX)
		return -EINVAL;
	return req_submit(q, q->free_reqs, type, offset / SECTOR, bufs, n,
			  type == VIRTIO_BLK_T_OUT, user_data);
}

int vblkq_readv(struct vblkq *q, uint64_t offset, const struct iovec *iov, int iovcnt,
		void *user_data, uint32_t flags)
{
	return rwv(q, VIRTIO_BLK_T_IN, offset, iov, iovcnt, user_data, flags);
}

int vblkq_writev(struct vblkq *q, uint64_t offset, const struct iovec *iov, int iovcnt,
		 void *user_data, uint32_t flags)
{
	if (q && (q->v->acked & (1ull << VIRTIO_BLK_F_RO)))
		return -EROFS;
	return rwv(q, VIRTIO_BLK_T_OUT, offset, iov, iovcnt, user_data, flags);
}

/* Complete a slot without the device (e.g. flush on a cache-less disk). */
/* Queue @r on the local done list, returned by the next vblkq_do_io. */
static void done_append(struct vblkq *q, struct lib_req *r)
{
	r->next = NULL;
	if (q->done_tail)
		q->done_tail->next = r;
	else
		q->done_head = r;
	q->done_tail = r;
}

static void complete_local(struct vblkq *q, struct lib_req *r, int ret, void *user_data)
{
	q->free_reqs = r->next;
	r->user_data = user_data;
	r->local_ret = ret;
	done_append(q, r);
	q->outstanding++;
}

int vblkq_flush(struct vblkq *q, void *user_data, uint32_t flags)
{
	struct virtq_drv_buf bufs[2];
	int ret;

	if (!q || flags)
		return -EINVAL;
	ret = check_ready(q);
	if (ret)
		return ret;
	if (!(q->v->acked & (1ull << VIRTIO_BLK_F_FLUSH))) {
		/* No volatile write cache: every write is already stable. */
		complete_local(q, q->free_reqs, 0, user_data);
		return 0;
	}
	return req_submit(q, q->free_reqs, VIRTIO_BLK_T_FLUSH, 0, bufs, 0, true, user_data);
}

static int dwz(struct vblkq *q, uint32_t type, unsigned feature, uint32_t max_sectors,
	       uint64_t offset, uint64_t len, void *user_data, uint32_t wz_flags)
{
	struct virtio_blk_discard_write_zeroes *seg;
	struct virtq_drv_buf bufs[3];
	struct lib_req *r;
	int ret;

	if (((offset | len) & (SECTOR - 1)) || len == 0 || len / SECTOR > UINT32_MAX)
		return -EINVAL;
	if (!(q->v->acked & (1ull << feature)))
		return -ENOTSUP;
	if (max_sectors && len / SECTOR > max_sectors)
		return -EINVAL;
	ret = check_ready(q);
	if (ret)
		return ret;
	r = q->free_reqs;
	seg = (struct virtio_blk_discard_write_zeroes *)(r->shared + SLOT_DWZ);
	seg->sector = offset / SECTOR;
	seg->num_sectors = (uint32_t)(len / SECTOR);
	seg->flags = wz_flags;
	bufs[1].addr = r->iova + SLOT_DWZ;
	bufs[1].len = sizeof(*seg);
	return req_submit(q, r, type, 0, bufs, 1, true, user_data);
}

int vblkq_discard(struct vblkq *q, uint64_t offset, uint64_t len, void *user_data,
		  uint32_t flags)
{
	if (!q || flags)
		return -EINVAL;
	if (q->v->acked & (1ull << VIRTIO_BLK_F_RO))
		return -EROFS;
	return dwz(q, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_F_DISCARD, q->v->cfg.max_discard_sectors,
		   offset, len, user_data, 0);
}

int vblkq_write_zeroes(struct vblkq *q, uint64_t offset, uint64_t len, void *user_data,
		       uint32_t flags)
{
	if (!q || (flags & ~VBLK_REQ_NO_UNMAP))
		return -EINVAL;
	if (q->v->acked & (1ull << VIRTIO_BLK_F_RO))
		return -EROFS;
	return dwz(q, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_F_WRITE_ZEROES,
		   q->v->cfg.max_write_zeroes_sectors, offset, len, user_data,
		   (flags & VBLK_REQ_NO_UNMAP) ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
}

/* ---- completions ------------------------------------------------------------ */

static inline void kick(struct vblkq *q)
{
	uint64_t one = 1;

	q->need_kick = false;
	if (virtq_drv_kick_prepare(&q->drv) && write(q->kick_fd, &one, sizeof(one)) < 0) {
		/* A full eventfd counter still wakes the server. */
	}
}

/* A completion is waiting in the used ring (does not consume it). */
static bool has_used(struct vblkq *q)
{
	return virtq_drv_has_used(&q->drv);
}

static inline int status_ret(uint8_t s)
{
	switch (s) {
	case VIRTIO_BLK_S_OK:
		return 0;
	case VIRTIO_BLK_S_UNSUPP:
		return -ENOTSUP;
	default:
		return -EIO;
	}
}

static inline void req_free(struct vblkq *q, struct lib_req *r)
{
	r->next = q->free_reqs;
	q->free_reqs = r;
	q->outstanding--;
}

/*
 * The ring is unusable (@ret -ENOTCONN: the server is gone; -EPROTO: it
 * wrote a corrupt used entry): everything on it completes with @ret, and
 * the queue accepts nothing more.
 */
static void fail_ring(struct vblkq *q, int ret)
{
	unsigned i;

	if (q->failed)
		return;
	q->failed = true;
	q->fail_ret = ret;
	for (i = 0; i < q->drv.num; i++) {
		struct lib_req *r = &q->reqs[i];

		if (!r->on_ring)
			continue;
		r->on_ring = false;
		r->local_ret = ret;
		done_append(q, r);
	}
}

static int reap(struct vblkq *q, struct vblk_completion *c, int max)
{
	int n = 0;

	while (unlikely(q->done_head) && n < max) {
		struct lib_req *r = q->done_head;

		q->done_head = r->next;
		if (!q->done_head)
			q->done_tail = NULL;
		c[n].user_data = r->user_data;
		c[n].ret = r->local_ret;
		c[n].error_msg = ret_msg(r->local_ret);
		n++;
		req_free(q, r);
	}
	if (unlikely(q->failed))
		return n;
	while (n < max) {
		struct lib_req *r = virtq_drv_get_used(&q->drv, NULL);
		int ret;

		if (!r)
			break;
		r->on_ring = false;
		ret = status_ret(READ_ONCE(r->shared[SLOT_STATUS]));
		c[n].user_data = r->user_data;
		c[n].ret = ret;
		c[n].error_msg = unlikely(ret) ? ret_msg(ret) : NULL;
		n++;
		req_free(q, r);
	}
	if (unlikely(q->drv.broken)) {
		/* Leave nothing waiting for an entry that cannot come. */
		fail_ring(q, -EPROTO);
		n += reap(q, c + n, max - n);
	}
	return n;
}

/* Peek at the socket: EOF or an error means the server went away. */
static bool server_gone(struct vblkq *q)
{
	struct vblk *v = q->v;
	char b;
	ssize_t r;

	if (__atomic_load_n(&v->dead, __ATOMIC_ACQUIRE))
		return true;
	r = recv(v->sock_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		__atomic_store_n(&v->dead, 1, __ATOMIC_RELEASE);
		return true;
	}
	return false;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void drain_call(struct vblkq *q)
{
	uint64_t cnt;

	if (read(q->call_fd, &cnt, sizeof(cnt)) < 0) {
		/* EAGAIN: nothing signalled */
	}
}

int vblkq_do_io(struct vblkq *q, struct vblk_completion *c, int min, int max,
		struct timespec *timeout)
{
	int64_t deadline = -1;
	unsigned spins = 0;
	int n;

	if (unlikely(!q || min < 0 || max < min || (max > 0 && !c)))
		return -EINVAL;
	if (q->need_kick && !q->failed)
		kick(q);
	if (q->completion_fd_enabled)
		drain_call(q);
	n = reap(q, c, max);
	if (timeout)
		deadline = now_ns() + (int64_t)timeout->tv_sec * 1000000000 + timeout->tv_nsec;

	while (n < min) {
		if (!q->failed && __atomic_load_n(&q->v->dead, __ATOMIC_RELAXED))
			fail_ring(q, -ENOTCONN);
		if (q->done_head) {
			n += reap(q, c + n, max - n);
			continue;
		}
		if (!q->outstanding)
			break;      /* nothing left that could complete */
		if (q->v->poll) {
			n += reap(q, c + n, max - n);
			if (n >= min)
				break;
			if (++spins % 4096 == 0) {
				if (server_gone(q))
					continue;
				if (deadline >= 0 && now_ns() >= deadline)
					break;
			}
			cpu_relax();
			continue;
		}
		/* Event mode: ask for an interrupt, re-check, then sleep. */
		{
			struct epoll_event ev[2];
			int ms = -1, k, i;

			virtq_drv_enable_cb(&q->drv);
			if (has_used(q)) {
				if (!q->completion_fd_enabled)
					virtq_drv_disable_cb(&q->drv);
				n += reap(q, c + n, max - n);
				continue;
			}
			if (deadline >= 0) {
				int64_t left = deadline - now_ns();

				if (left <= 0)
					break;
				ms = (int)((left + 999999) / 1000000);
			}
			k = epoll_wait(q->ep_fd, ev, 2, ms);
			if (!q->completion_fd_enabled)
				virtq_drv_disable_cb(&q->drv);
			for (i = 0; i < k; i++) {
				if (ev[i].data.u32 == 0)
					drain_call(q);
				else
					server_gone(q);
			}
			n += reap(q, c + n, max - n);
		}
	}
	/* A corrupt ring: say so once every completion was handed out. */
	if (unlikely(!n && q->failed && q->fail_ret == -EPROTO))
		return -EPROTO;
	if (q->completion_fd_enabled && !q->failed) {
		/* Re-arm; a completion that slipped in before it must still
		 * make the fd readable. */
		virtq_drv_enable_cb(&q->drv);
		if (has_used(q)) {
			uint64_t one = 1;

			if (write(q->call_fd, &one, sizeof(one)) < 0) {
				/* counter full: readable anyway */
			}
		}
	}
	return n;
}

int vblkq_get_completion_fd(struct vblkq *q)
{
	return q ? q->ep_fd : -EINVAL;
}

void vblkq_set_completion_fd_enabled(struct vblkq *q, bool enable)
{
	if (!q || q->failed)
		return;
	q->completion_fd_enabled = enable;
	if (enable) {
		virtq_drv_enable_cb(&q->drv);
		if (has_used(q)) {
			uint64_t one = 1;

			if (write(q->call_fd, &one, sizeof(one)) < 0) {
				/* counter full: readable anyway */
			}
		}
	} else {
		virtq_drv_disable_cb(&q->drv);
	}
}
