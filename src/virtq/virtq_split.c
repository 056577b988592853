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
#include <string.h>

#include "common/compiler.h"
#include "virtq/virtq_internal.h"

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
	vq->used_idx = virtq_get16(&vq->used->idx);
	vq->used_pub = vq->used_idx;
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

/*
 * Walk and map the chain at @head (already checked < num) into @elem.
 * Return: 0, or -EIO with the queue broken.
 */
static int split_walk(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		      unsigned max_iov, uint16_t head)
{
	const struct vring_desc *table = vq->desc;
	unsigned table_num = vq->num, count = 0;
	bool in_indirect = false;
	void *bounce = NULL;
	uint16_t i;

	elem->id = head;
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
		addr = virtq_get64(&table[i].addr);
		len = virtq_get32(&table[i].len);
		flags = virtq_get16(&table[i].flags);
		next = virtq_get16(&table[i].next);

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
	return 0;

err:
	free(bounce);
	elem->out_num = 0;
	elem->in_num = 0;
	return -EIO;
}

int virtq_pop_split(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		    struct iovec *iov, unsigned max_iov)
{
	uint16_t avail_idx, head;

	if (vq->broken)
		return -EIO;
	if (vq->last_avail_idx == vq->shadow_avail_idx) {
		/* Ring entries and descriptors after the index: pairs with the
		 * driver's release store of avail->idx. */
		avail_idx = virtq_load_acquire16(&vq->avail->idx);
		if ((uint16_t)(avail_idx - vq->last_avail_idx) > vq->num) {
			virtq_set_broken(vq, "avail index moved more than the ring size");
			return -EIO;
		}
		vq->shadow_avail_idx = avail_idx;
		if (avail_idx == vq->last_avail_idx)
			return 0;
	}
	head = virtq_get16(&vq->avail->ring[vq->last_avail_idx & (vq->num - 1)]);
	if (head >= vq->num) {
		virtq_set_broken(vq, "avail ring head index out of range");
		return -EIO;
	}
	elem->iov = iov;
	if (split_walk(vq, mem, elem, max_iov, head))
		return -EIO;
	if (vq->track) {
		struct virtq_inflight_split *r = vq->track;

		WRITE_ONCE(r->desc[head].counter, vq->track_counter++);
		WRITE_ONCE(r->desc[head].inflight, 1);
		/* Marked in flight before the request can have any effect
		 * (the caller submits it after we return): pairs with the
		 * recovery in virtq_track_init_split() by our successor. */
		smp_wmb();
	}
	vq->last_avail_idx++;
	vq->inflight++;
	return 1;
}

/* The next recovered request: same checks as a new chain, but the avail
 * ring and the inflight area already account for it. */
int virtq_repop_split(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		      struct iovec *iov, unsigned max_iov)
{
	uint16_t head = vq->resubmit[vq->resubmit_pos++].head;

	if (head >= vq->num) {   /* checked at recovery; never trust twice */
		virtq_set_broken(vq, "inflight area: head out of range");
		return -EIO;
	}
	elem->iov = iov;
	if (split_walk(vq, mem, elem, max_iov, head))
		return -EIO;
	vq->inflight++;
	return 1;
}

/*
 * virtq_track_init_split - take over the inflight region (see
 * virtq_config.inflight): initialise a fresh one, or recover from one a
 * previous instance left behind (the spec's "When reconnecting" rules):
 * undo the last used batch if used->idx moved past it, then resubmit
 * every entry still in flight, in counter order, and resume popping at
 * used->idx + (entries in flight). Bad contents break the queue.
 */
void virtq_track_init_split(struct virtq *vq, const struct virtq_config *cfg)
{
	struct virtq_inflight_split *r = vq->track;
	struct virtq_resubmit *list = NULL;
	uint16_t used = vq->used_idx, ridx, avail;
	unsigned n = 0, i;

	if (READ_ONCE(r->version) == 0) {
		/* Fresh (zeroed by whoever created it): make it ours. */
		for (i = 0; i < vq->track_num; i++)
			memset(&r->desc[i], 0, sizeof(r->desc[i]));
		WRITE_ONCE(r->features, 0);
		WRITE_ONCE(r->desc_num, (uint16_t)vq->track_num);
		WRITE_ONCE(r->last_batch_head, 0);
		WRITE_ONCE(r->used_idx, used);
		/* Contents before the version that says they are valid. */
		smp_wmb();
		WRITE_ONCE(r->version, VIRTQ_INFLIGHT_VERSION);
		return;
	}
	if (READ_ONCE(r->version) != VIRTQ_INFLIGHT_VERSION ||
	    READ_ONCE(r->desc_num) != vq->track_num) {
		virtq_set_broken(vq, "inflight area: unknown version or size");
		return;
	}
	ridx = READ_ONCE(r->used_idx);
	if (ridx != used) {
		/* We died between publishing used->idx and recording it: the
		 * last batch completed, whatever its inflight marks say. */
		uint16_t batch = (uint16_t)(used - ridx), head = READ_ONCE(r->last_batch_head);

		if (batch > vq->num) {
			virtq_set_broken(vq, "inflight area: used index far from the ring's");
			return;
		}
		for (i = 0; i < batch; i++) {
			if (head >= vq->num) {
				virtq_set_broken(vq, "inflight area: batch list out of range");
				return;
			}
			WRITE_ONCE(r->desc[head].inflight, 0);
			head = READ_ONCE(r->desc[head].next);
		}
		smp_wmb();
		WRITE_ONCE(r->used_idx, used);
	}
	for (i = 0; i < vq->track_num; i++) {
		uint8_t f = READ_ONCE(r->desc[i].inflight);

		if (f > 1 || (f && i >= vq->num)) {
			virtq_set_broken(vq, "inflight area: bad descriptor state");
			goto err;
		}
		if (!f)
			continue;
		if (!list) {
			list = calloc(vq->num, sizeof(*list));
			if (!list) {
				virtq_set_broken(vq, "inflight area: out of memory");
				return;
			}
		}
		list[n].head = (uint16_t)i;
		list[n].counter = READ_ONCE(r->desc[i].counter);
		n++;
	}
	/* The driver must have made at least that many buffers available. */
	avail = virtq_get16(&vq->avail->idx);
	if ((uint16_t)(avail - used) < n || (uint16_t)(avail - used) > vq->num) {
		virtq_set_broken(vq, "inflight area: more in flight than the driver made available");
		goto err;
	}
	vq->last_avail_idx = (uint16_t)(used + n);
	vq->shadow_avail_idx = vq->last_avail_idx;
	vq->track_batch_head = READ_ONCE(r->last_batch_head);
	virtq_resubmit_set(vq, list, n);
	return;

err:
	free(list);
}

void virtq_fill_split(struct virtq *vq, const struct virtq_elem *elem, uint32_t len)
{
	vring_used_elem_t *u = &vq->used->ring[vq->used_idx & (vq->num - 1)];
	struct virtq_inflight_split *r = vq->track;

	if (r) {
		/* Join the batch list before used->idx can move: the newest
		 * entry heads it, so the batch is its first used_idx - used_pub
		 * entries (what recovery walks). */
		WRITE_ONCE(r->desc[elem->id].next, vq->track_batch_head);
		WRITE_ONCE(r->last_batch_head, elem->id);
		vq->track_batch_head = elem->id;
	}
	virtq_put32(&u->id, elem->id);
	virtq_put32(&u->len, len);
	virtq_log_device(vq, (uint64_t)((uint8_t *)u - (uint8_t *)vq->used), sizeof(*u));
	/* Entries between used_pub and used_idx are unpublished: at most
	 * the requests in flight, never more than the ring holds. */
	vq->used_idx++;
	if (vq->inflight)
		vq->inflight--;
}

void virtq_flush_split(struct virtq *vq)
{
	struct virtq_inflight_split *r = vq->track;
	uint16_t n = (uint16_t)(vq->used_idx - vq->used_pub), head;

	if (!n)
		return;
	/* The entries (and the batch list) before the index: pairs with the
	 * driver's acquire load of used->idx, and with recovery. */
	virtq_store_release16(&vq->used->idx, vq->used_idx);
	virtq_log_device(vq, offsetof(struct vring_used, idx), sizeof(vq->used->idx));
	vq->used_pub = vq->used_idx;
	if (!r)
		return;
	/* used->idx, then the batch's inflight marks, then our copy of the
	 * index: recovery tells which step we died at by comparing
	 * r->used_idx with used->idx (virtq_track_init_split). */
	smp_wmb();
	head = vq->track_batch_head;
	/* head < track_num: the frontend can write this list too. */
	for (uint16_t i = 0; i < n && head < vq->track_num; i++) {
		WRITE_ONCE(r->desc[head].inflight, 0);
		head = READ_ONCE(r->desc[head].next);
	}
	smp_wmb();
	WRITE_ONCE(r->used_idx, vq->used_idx);
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
		return !(virtq_get16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	new = vq->used_idx;
	valid = vq->signalled_used_valid;
	vq->signalled_used = new;
	vq->signalled_used_valid = true;
	if (!valid)
		return true;
	event = virtq_get16(split_used_event(vq));
	return vring_need_event(event, new, old);
}

/* Where the device's notification word lives in the used ring. */
static void split_log_notify(const struct virtq *vq)
{
	if (vq->event_idx)
		virtq_log_device(vq, (uint64_t)((uint8_t *)split_avail_event(vq) -
						(uint8_t *)vq->used), sizeof(uint16_t));
	else
		virtq_log_device(vq, offsetof(struct vring_used, flags), sizeof(uint16_t));
}

void virtq_disable_notify_split(struct virtq *vq)
{
	if (vq->event_idx)
		/* An index just behind us: the driver would have to add 65535
		 * more buffers before it crosses it. */
		virtq_put16(split_avail_event(vq), (uint16_t)(vq->last_avail_idx - 1));
	else
		virtq_put16(&vq->used->flags, VRING_USED_F_NO_NOTIFY);
	split_log_notify(vq);
}

bool virtq_has_avail_split(struct virtq *vq)
{
	if (vq->broken)
		return false;
	if (vq->shadow_avail_idx != vq->last_avail_idx)
		return true;
	return virtq_get16(&vq->avail->idx) != vq->last_avail_idx;
}

bool virtq_enable_notify_split(struct virtq *vq)
{
	if (vq->event_idx)
		virtq_put16(split_avail_event(vq), vq->shadow_avail_idx);
	else
		virtq_put16(&vq->used->flags, 0);
	split_log_notify(vq);
	/* Publish the event/flags before re-reading avail->idx: pairs with
	 * the driver's smp_mb() between storing avail->idx and reading
	 * avail_event/flags. Either it sees our request or we see its
	 * buffer here. */
	smp_mb();
	return virtq_has_avail_split(vq);
}
