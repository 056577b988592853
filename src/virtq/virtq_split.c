/* SPDX-License-Identifier: MIT */
/*
 * virtq_split.c - device side of the split virtqueue: reading the avail
 * ring, walking and validating descriptor chains (direct and indirect),
 * writing the used ring, and notification suppression both ways
 * (flags or EVENT_IDX). Everything in guest memory is untrusted and read
 * once into locals before it is checked.
 */
#include <errno.h>
#include <stdlib.h>

#include "common/compiler.h"
#include "virtq/virtq_internal.h"

/* Split rings are little-endian (virtio 1.x); fields are used as-is. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "split ring code assumes a little-endian host");

/* The event index words after the rings (only meaningful with EVENT_IDX). */
static inline uint16_t *split_used_event(const struct virtq *vq)
{
	return (uint16_t *)&vq->avail->ring[vq->num];
}

static inline uint16_t *split_avail_event(const struct virtq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->num];
}

int virtq_init_split(struct virtq *vq, const struct virtq_config *cfg)
{
	if (cfg->num & (cfg->num - 1))
		return -EINVAL;
	if ((uintptr_t)cfg->desc % VRING_DESC_ALIGN_SIZE ||
	    (uintptr_t)cfg->driver % VRING_AVAIL_ALIGN_SIZE ||
	    (uintptr_t)cfg->device % VRING_USED_ALIGN_SIZE)
		return -EINVAL;
	vq->desc = cfg->desc;
	vq->avail = cfg->driver;
	vq->used = cfg->device;
	vq->last_avail_idx = cfg->base;
	vq->shadow_avail_idx = cfg->base;
	/* Resume after a reconnect: the used ring says how far we got. */
	vq->used_idx = READ_ONCE(vq->used->idx);
	vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = false;
	return 0;
}

/*
 * An indirect table: point at guest memory when it is one aligned piece,
 * else copy it into a heap bounce buffer that the caller frees after the
 * walk. A failed allocation leaves *bounce NULL and the table is rejected.
 */
static const struct vring_desc *split_indirect(struct virtq *vq, const struct gmem *mem,
					       uint64_t addr, uint32_t len, void **bounce)
{
	const void *p = gmem_ptr(mem, addr, len);

	if (len && len <= VIRTQ_MAX_SIZE * sizeof(struct vring_desc) &&
	    (!p || (uintptr_t)p % _Alignof(struct vring_desc)))
		*bounce = malloc(len);
	return virtq_indirect_table(vq, mem, addr, len, *bounce, *bounce ? len : 0);
}

int virtq_pop_split(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		    struct iovec *iov, unsigned max_iov)
{
	const struct vring_desc *table = vq->desc;
	unsigned table_num = vq->num, count = 0;
	bool in_indirect = false;
	void *bounce = NULL;
	uint16_t avail_idx, head, i;

	if (vq->broken)
		return -EIO;
	if (vq->last_avail_idx == vq->shadow_avail_idx) {
		avail_idx = READ_ONCE(vq->avail->idx);
		if ((uint16_t)(avail_idx - vq->last_avail_idx) > vq->num) {
			virtq_set_broken(vq, "avail index moved more than the ring size");
			return -EIO;
		}
		vq->shadow_avail_idx = avail_idx;
		if (avail_idx == vq->last_avail_idx)
			return 0;
		/* Ring entries and descriptors after the index: pairs with the
		 * driver's smp_wmb() before it stores avail->idx. */
		smp_rmb();
	}
	head = READ_ONCE(vq->avail->ring[vq->last_avail_idx & (vq->num - 1)]);
	if (head >= vq->num) {
		virtq_set_broken(vq, "avail ring head index out of range");
		return -EIO;
	}
	elem->id = head;
	elem->iov = iov;
	elem->out_num = 0;
	elem->in_num = 0;

	i = head;
	for (;;) {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;

		/* A chain visits each entry of its table at most once, so
		 * more steps than entries means a loop. */
		if (++count > table_num) {
			virtq_set_broken(vq, in_indirect ? "indirect chain loops"
					 : "descriptor chain loops or exceeds ring size");
			goto err;
		}
		addr = READ_ONCE(table[i].addr);
		len = READ_ONCE(table[i].len);
		flags = READ_ONCE(table[i].flags);
		next = READ_ONCE(table[i].next);

		if (flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect) {
				virtq_set_broken(vq, "indirect descriptor not negotiated");
				goto err;
			}
			if (in_indirect) {
				virtq_set_broken(vq, "nested indirect descriptor");
				goto err;
			}
			if (flags & VRING_DESC_F_NEXT) {
				virtq_set_broken(vq, "indirect descriptor with NEXT");
				goto err;
			}
			elem->ndesc = (uint16_t)count;
			table = split_indirect(vq, mem, addr, len, &bounce);
			if (!table)
				goto err;
			table_num = len / sizeof(struct vring_desc);
			in_indirect = true;
			count = 0;
			i = 0;
			continue;
		}
		if (virtq_map_buf(vq, mem, elem, max_iov, addr, len,
				  flags & VRING_DESC_F_WRITE))
			goto err;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		if (next >= table_num) {
			virtq_set_broken(vq, "descriptor next index out of range");
			goto err;
		}
		i = next;
	}
	if (!in_indirect)
		elem->ndesc = (uint16_t)count;
	free(bounce);
	vq->last_avail_idx++;
	vq->inflight++;
	return 1;

err:
	free(bounce);
	elem->out_num = 0;
	elem->in_num = 0;
	return -EIO;
}

void virtq_push_split(struct virtq *vq, const struct virtq_elem *elem, uint32_t len)
{
	vring_used_elem_t *u = &vq->used->ring[vq->used_idx & (vq->num - 1)];

	WRITE_ONCE(u->id, elem->id);
	WRITE_ONCE(u->len, len);
	/* The entry before the index: pairs with the driver's smp_rmb()
	 * after it reads used->idx. */
	smp_wmb();
	vq->used_idx++;
	WRITE_ONCE(vq->used->idx, vq->used_idx);
	if (vq->inflight)
		vq->inflight--;
}

bool virtq_needs_notify_split(struct virtq *vq)
{
	uint16_t old, new, event;
	bool valid;

	/* Our used->idx store before the flags/used_event load: pairs with
	 * the driver's smp_mb() between storing used_event (or clearing
	 * NO_INTERRUPT) and re-reading used->idx. */
	smp_mb();
	if (!vq->event_idx)
		return !(READ_ONCE(vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	new = vq->used_idx;
	valid = vq->signalled_used_valid;
	vq->signalled_used = new;
	vq->signalled_used_valid = true;
	if (!valid)
		return true;
	event = READ_ONCE(*split_used_event(vq));
	return vring_need_event(event, new, old);
}

void virtq_disable_notify_split(struct virtq *vq)
{
	if (vq->event_idx)
		/* An index just behind us: the driver would have to add 65535
		 * more buffers before it crosses it. */
		WRITE_ONCE(*split_avail_event(vq), (uint16_t)(vq->last_avail_idx - 1));
	else
		WRITE_ONCE(vq->used->flags, VRING_USED_F_NO_NOTIFY);
}

bool virtq_has_avail_split(struct virtq *vq)
{
	if (vq->broken)
		return false;
	if (vq->shadow_avail_idx != vq->last_avail_idx)
		return true;
	return READ_ONCE(vq->avail->idx) != vq->last_avail_idx;
}

bool virtq_enable_notify_split(struct virtq *vq)
{
	if (vq->event_idx)
		WRITE_ONCE(*split_avail_event(vq), vq->shadow_avail_idx);
	else
		WRITE_ONCE(vq->used->flags, 0);
	/* Publish the event/flags before re-reading avail->idx: pairs with
	 * the driver's smp_mb() between storing avail->idx and reading
	 * avail_event/flags. Either it sees our request or we see its
	 * buffer here. */
	smp_mb();
	return virtq_has_avail_split(vq);
}
