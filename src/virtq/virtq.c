/* SPDX-License-Identifier: MIT */
/*
 * virtq.c - the format-independent half of the device-side virtqueue:
 * area sizes, dispatch to the split/packed implementations, the in-flight
 * count, translation of one descriptor's buffer into iovecs, indirect table
 * validation (with a bounce copy for tables crossing regions) and the
 * sticky broken state. Knows nothing of fds, threads or sockets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "common/log.h"
#include "virtq/virtq_internal.h"

void virtq_area_sizes(unsigned num, bool packed, uint64_t *desc, uint64_t *driver,
		      uint64_t *device)
{
	if (packed) {
		*desc = (uint64_t)num * sizeof(struct vring_packed_desc);
		*driver = sizeof(struct vring_packed_desc_event);
		*device = sizeof(struct vring_packed_desc_event);
		return;
	}
	*desc = (uint64_t)num * sizeof(struct vring_desc);
	/* flags, idx, ring[num], used_event */
	*driver = sizeof(struct vring_avail) + (uint64_t)num * sizeof(uint16_t) + sizeof(uint16_t);
	/* flags, idx, ring[num], avail_event */
	*device = sizeof(struct vring_used) + (uint64_t)num * sizeof(struct vring_used_elem) +
		  sizeof(uint16_t);
}

uint64_t virtq_inflight_size(unsigned inflight_num, bool packed)
{
	uint64_t n = packed ? sizeof(struct virtq_inflight_packed) +
			      (uint64_t)inflight_num * sizeof(struct virtq_inflight_desc_packed)
			    : sizeof(struct virtq_inflight_split) +
			      (uint64_t)inflight_num * sizeof(struct virtq_inflight_desc_split);

	return (n + 63) & ~(uint64_t)63;
}

/*
 * virtq_init - common checks (size range, non-NULL areas) and fields, then
 * the format's own init checks alignment, size rules and base. Format init
 * functions may rely on *vq being zeroed with num/packed/event_idx/indirect
 * already set.
 */
int virtq_init(struct virtq *vq, const struct virtq_config *cfg)
{
	int ret;

	if (!vq || !cfg || cfg->num == 0 || cfg->num > VIRTQ_MAX_SIZE ||
	    !cfg->desc || !cfg->driver || !cfg->device)
		return -EINVAL;
	if (cfg->inflight && (cfg->inflight_num < cfg->num || cfg->inflight_num > VIRTQ_MAX_SIZE ||
			      (uintptr_t)cfg->inflight % 8))
		return -EINVAL;
	memset(vq, 0, sizeof(*vq));
	vq->num = cfg->num;
	vq->packed = cfg->packed;
	vq->event_idx = cfg->event_idx;
	vq->indirect = cfg->indirect;
	ret = cfg->packed ? virtq_init_packed(vq, cfg) : virtq_init_split(vq, cfg);
	if (ret || !cfg->inflight)
		return ret;
	/* Contents the frontend kept for us: anything wrong breaks the queue. */
	vq->track = cfg->inflight;
	vq->track_num = cfg->inflight_num;
	if (cfg->packed)
		virtq_track_init_packed(vq, cfg);
	else
		virtq_track_init_split(vq, cfg);
	return 0;
}

void virtq_fini(struct virtq *vq)
{
	free(vq->resubmit);
	vq->resubmit = NULL;
	vq->nresubmit = vq->resubmit_pos = 0;
}

unsigned virtq_resubmit_pending(const struct virtq *vq)
{
	return vq->nresubmit - vq->resubmit_pos;
}

/* Move list[i] down the max-heap of the first n entries, by counter. */
static void resubmit_sift(struct virtq_resubmit *list, unsigned i, unsigned n)
{
	struct virtq_resubmit v = list[i];

	for (unsigned c; (c = 2 * i + 1) < n; i = c) {
		if (c + 1 < n && list[c + 1].counter > list[c].counter)
			c++;
		if (list[c].counter <= v.counter)
			break;
		list[i] = list[c];
	}
	list[i] = v;
}

/*
 * Heap sort by counter: O(n log n), in place, no system call. Not qsort:
 * glibc's qsort of 1 KiB or more mallocs a buffer and asks sysinfo() how
 * much memory there is, which the daemon's seccomp filter forbids, and
 * recovery runs after the filter is on.
 */
static void resubmit_sort(struct virtq_resubmit *list, unsigned n)
{
	for (unsigned i = n / 2; i-- > 0;)
		resubmit_sift(list, i, n);
	for (unsigned end = n; end-- > 1;) {
		struct virtq_resubmit top = list[0];

		list[0] = list[end];
		list[end] = top;
		resubmit_sift(list, 0, end);
	}
}

void virtq_resubmit_set(struct virtq *vq, struct virtq_resubmit *list, unsigned n)
{
	uint64_t next = 0;

	if (n) {
		resubmit_sort(list, n);
		next = list[n - 1].counter + 1;
	}
	free(vq->resubmit);
	vq->resubmit = list;
	vq->nresubmit = n;
	vq->resubmit_pos = 0;
	/* New pops sort after every recovered one, should we crash again. */
	vq->track_counter = next;
}

/* Dispatch. Each format keeps vq->inflight itself (++ on pop, -- on push).
 * Recovered requests come first, in the order they were first popped. */
int virtq_pop(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
	      struct iovec *iov, unsigned max_iov)
{
	int ret;

	if (vq->broken)
		return -EIO;
	elem->iov = iov;
	elem->out_num = 0;
	elem->in_num = 0;
	elem->ndesc = 0;
	elem->inflight_head = elem->inflight_last = 0;
	elem->denied = elem->status_denied = false;
	vq->missed = false;
	if (vq->resubmit_pos < vq->nresubmit) {
		ret = vq->packed ? virtq_repop_packed(vq, mem, elem, iov, max_iov)
				 : virtq_repop_split(vq, mem, elem, iov, max_iov);
		if (ret < 0 && vq->missed && !vq->broken) {
			vq->resubmit_pos--;    /* the same request again later */
			return -EAGAIN;
		}
		if (vq->resubmit_pos == vq->nresubmit)
			virtq_fini(vq);
		return ret < 0 ? -EIO : ret;
	}
	ret = vq->packed ? virtq_pop_packed(vq, mem, elem, iov, max_iov)
			 : virtq_pop_split(vq, mem, elem, iov, max_iov);
	if (ret < 0 && vq->missed && !vq->broken)
		return -EAGAIN;   /* nothing was consumed */
	return ret < 0 ? -EIO : ret;
}

void virtq_fill(struct virtq *vq, const struct virtq_elem *elem, uint32_t len)
{
	if (vq->packed)
		virtq_push_packed(vq, elem, len);
	else
		virtq_fill_split(vq, elem, len);
}

void virtq_flush(struct virtq *vq)
{
	if (!vq->packed)
		virtq_flush_split(vq);
}

void virtq_push(struct virtq *vq, const struct virtq_elem *elem, uint32_t len)
{
	virtq_fill(vq, elem, len);
	virtq_flush(vq);
}

bool virtq_needs_notify(struct virtq *vq)
{
	if (vq->packed)
		return virtq_needs_notify_packed(vq);
	virtq_flush_split(vq);
	return virtq_needs_notify_split(vq);
}

void virtq_disable_notify(struct virtq *vq)
{
	if (vq->packed)
		virtq_disable_notify_packed(vq);
	else
		virtq_disable_notify_split(vq);
}

bool virtq_enable_notify(struct virtq *vq)
{
	bool avail = vq->packed ? virtq_enable_notify_packed(vq) : virtq_enable_notify_split(vq);

	return avail || (!vq->broken && vq->resubmit_pos < vq->nresubmit);
}

bool virtq_has_avail(struct virtq *vq)
{
	if (!vq->broken && vq->resubmit_pos < vq->nresubmit)
		return true;
	return vq->packed ? virtq_has_avail_packed(vq) : virtq_has_avail_split(vq);
}

uint16_t virtq_get_base(const struct virtq *vq)
{
	if (vq->packed)
		return (uint16_t)((vq->last_avail_idx & 0x7fff) |
				  ((unsigned)vq->avail_wrap_counter << 15));
	return vq->last_avail_idx;
}

uint16_t virtq_get_used_base(const struct virtq *vq)
{
	if (vq->packed)
		return (uint16_t)((vq->used_idx & 0x7fff) |
				  ((unsigned)vq->used_wrap_counter << 15));
	return vq->used_idx;
}

void virtq_set_rings(struct virtq *vq, void *desc, void *driver, void *device)
{
	if (vq->packed) {
		vq->pdesc = desc;
		vq->driver_event = driver;
		vq->device_event = device;
	} else {
		vq->desc = desc;
		vq->avail = driver;
		vq->used = device;
	}
}

void virtq_set_log(struct virtq *vq, struct gmem_log *log, uint64_t desc_gpa,
		   uint64_t device_gpa)
{
	vq->log = log;
	vq->log_desc = desc_gpa;
	vq->log_device = device_gpa;
}

void virtq_set_broken(struct virtq *vq, const char *why)
{
	if (vq->broken)
		return;
	vq->broken = true;
	log_rl(LOG_ERR, "virtq %p (%s, size %u): broken: %s", (void *)vq,
	       vq->packed ? "packed" : "split", vq->num, why);
}

/* An IOTLB view lacks @iova: not the guest's fault (yet); see virtq_pop. */
static int virtq_set_miss(struct virtq *vq, uint64_t iova, unsigned perm)
{
	vq->missed = true;
	vq->miss_iova = iova;
	vq->miss_perm = perm;
	return -EIO;
}

int virtq_map_buf(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		  unsigned max_iov, uint64_t addr, uint32_t len, bool writable)
{
	unsigned used = elem->out_num + elem->in_num;
	bool this_denied = false;
	unsigned perm = 0;
	uint64_t fault;
	int n;

	if (!writable && elem->in_num) {
		virtq_set_broken(vq, "device-readable descriptor after a writable one");
		return -EIO;
	}
	if (len == 0)
		return 0;      /* allowed; contributes no iovec */
	if (addr + len - 1 < addr) {
		virtq_set_broken(vq, "buffer address + length overflows");
		return -EIO;
	}
	if (used >= max_iov) {
		virtq_set_broken(vq, "too many iovecs for one chain");
		return -EIO;
	}
	if (gmem_is_view(mem))
		perm = writable ? GMEM_PERM_WRITE : GMEM_PERM_READ;
	n = gmem_map_iov_perm(mem, addr, len, perm, elem->iov + used, max_iov - used,
			      &vq->hint, &fault);
	if (n == -EFAULT && perm)
		return virtq_set_miss(vq, fault, perm);
	if (n == -EACCES) {
		/* Mapped, but not for this access: the request fails, the
		 * queue goes on. Map it anyway so the chain's shape (and the
		 * status byte's place) is known; nothing touches it. */
		elem->denied = this_denied = true;
		n = gmem_map_iov_perm(mem, addr, len, 0, elem->iov + used, max_iov - used,
				      &vq->hint, &fault);
	}
	if (writable)
		elem->status_denied = this_denied;
	if (n == -ENOBUFS) {
		virtq_set_broken(vq, "too many iovecs for one chain");
		return -EIO;
	}
	if (n < 0) {
		virtq_set_broken(vq, "buffer outside guest memory");
		return -EIO;
	}
	if (writable)
		elem->in_num += (unsigned)n;
	else
		elem->out_num += (unsigned)n;
	return 0;
}

/* The region holding gpa, by binary search over the public region list. */
static const struct gmem_region_desc *virtq_region_of(const struct gmem *mem, uint64_t gpa)
{
	unsigned lo = 0, hi = gmem_nregions(mem);
	const struct gmem_region_desc *r;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (gmem_region(mem, mid)->gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	r = gmem_region(mem, lo - 1);
	return gpa - r->gpa < r->size ? r : NULL;
}

const void *virtq_indirect_table(struct virtq *vq, const struct gmem *mem,
				 uint64_t addr, uint32_t len, void *bounce,
				 size_t bounce_size)
{
	uint64_t cur = addr, left = len;
	uint8_t *dst = bounce;
	const void *p;
	uint64_t fault;

	if (len == 0 || len % sizeof(struct vring_desc) ||
	    len / sizeof(struct vring_desc) > VIRTQ_MAX_SIZE) {
		virtq_set_broken(vq, "indirect table length invalid");
		return NULL;
	}
	if (addr + len - 1 < addr) {
		virtq_set_broken(vq, "indirect table address + length overflows");
		return NULL;
	}
	if (gmem_is_view(mem)) {
		/* Through an IOTLB: every byte must be there and readable; a
		 * table spanning entries is copied like one spanning regions. */
		struct iovec one;
		int n = gmem_map_iov_perm(mem, addr, len, GMEM_PERM_READ, &one, 1, &vq->hint,
					  &fault);

		if (n == -EFAULT) {
			virtq_set_miss(vq, fault, GMEM_PERM_READ);
			return NULL;
		}
		if (n == -EACCES) {
			virtq_set_broken(vq, "indirect table in a mapping the device may not read");
			return NULL;
		}
	}
	p = gmem_ptr(mem, addr, len);
	if (p && !((uintptr_t)p % _Alignof(struct vring_desc)))
		return p;
	if (!bounce || bounce_size < len) {
		virtq_set_broken(vq, p ? "indirect table misaligned"
				       : "indirect table not contiguous in guest memory");
		return NULL;
	}
	/* Crosses regions, is misaligned or partly unmapped: copy piece by
	 * piece (an unmapped piece is found below). The copy also means the
	 * guest cannot change the table while it is walked. */
	while (left) {
		const struct gmem_region_desc *r = virtq_region_of(mem, cur);
		uint64_t piece;
		const void *src;

		if (!r) {
			virtq_set_broken(vq, "indirect table outside guest memory");
			return NULL;
		}
		piece = MIN(left, r->size - (cur - r->gpa));
		src = gmem_ptr(mem, cur, piece);
		if (!src) {
			virtq_set_broken(vq, "indirect table outside guest memory");
			return NULL;
		}
		memcpy(dst, src, (size_t)piece);
		dst += piece;
		cur += piece;
		left -= piece;
	}
	return bounce;
}
