/* SPDX-License-Identifier: MIT */
/*
 * virtq_drv_packed.c - driver (guest) side of the packed virtqueue: buffer
 * ids, writing chains so the device never sees a partial one, reading used
 * descriptors, and both directions of event suppression. Used by the unit
 * tests as the mock guest and by libvblk.
 *
 * Bookkeeping: d->num_free counts free ring slots; buffer ids come from a
 * stack threaded through d->next_free with d->free_head as its top (at most
 * num buffers are outstanding, since each uses at least one slot, so a free
 * slot implies a free id). d->kicked_avail and the device's replies use the
 * virtq_pos() encoding (index | wrap << 15).
 */
#include <errno.h>
#include <string.h>

#include "common/compiler.h"
#include "common/log.h"
#include "virtq/virtq_internal.h"
#include "virtq/virtq_packed_event.h"

int virtq_drv_init_packed(struct virtq_drv *d)
{
	unsigned i;

	if (d->num == 0 || d->num > VIRTQ_MAX_SIZE || !d->pdesc || !d->driver_event ||
	    !d->device_event || !d->next_free || !d->tokens || !d->chain_len)
		return -EINVAL;
	if ((uintptr_t)d->pdesc % 16 || (uintptr_t)d->driver_event % 4 ||
	    (uintptr_t)d->device_event % 4)
		return -EINVAL;

	d->avail_wrap_counter = true;
	d->used_wrap_counter = true;
	d->next_avail = 0;
	d->last_used = 0;
	d->kicked_avail = virtq_pos(0, true);
	d->num_free = d->num;
	for (i = 0; i < d->num; i++) {
		d->next_free[i] = (uint16_t)(i + 1);
		d->tokens[i] = NULL;
		d->chain_len[i] = 0;
	}
	d->free_head = 0;
	virtq_pevent_write(d->driver_event, 0, VRING_PACKED_EVENT_FLAG_ENABLE);
	return 0;
}

static void write_desc(struct vring_packed_desc *slot, uint64_t addr, uint32_t len,
		       uint16_t id)
{
	virtq_put64(&slot->addr, addr);
	virtq_put32(&slot->len, len);
	virtq_put16(&slot->id, id);
}

/**
 * virtq_drv_add_packed - see virtq_drv_add(). A direct chain takes out+in
 * slots, an indirect one a single slot; the head's flags are stored last.
 *
 * Context: the driver's owning thread.
 * Return: 0; -ENOSPC if the ring has too few free slots now; -EINVAL if the
 * chain can never fit (more than num direct or VIRTQ_MAX_SIZE indirect
 * buffers) or the token is NULL.
 */
int virtq_drv_add_packed(struct virtq_drv *d, const struct virtq_drv_buf *bufs,
			 unsigned out, unsigned in, void *token,
			 void *indirect_table, uint64_t indirect_addr)
{
	unsigned total = out + in, nslots = indirect_table ? 1 : total, i;
	uint16_t idx = d->next_avail, id, head_flags = 0;
	bool wrap = d->avail_wrap_counter;

	if (total == 0 || total < out || !token)
		return -EINVAL;
	if (indirect_table ? total > VIRTQ_MAX_SIZE : total > d->num)
		return -EINVAL;
	if (nslots > d->num_free)
		return -ENOSPC;

	id = d->free_head;
	d->free_head = d->next_free[id];

	if (indirect_table) {
		struct vring_packed_desc *t = indirect_table;

		for (i = 0; i < total; i++) {
			write_desc(&t[i], bufs[i].addr, bufs[i].len, 0);
			virtq_put16(&t[i].flags, i >= out ? VRING_DESC_F_WRITE : 0);
		}
		write_desc(&d->pdesc[idx], indirect_addr,
			   total * (uint32_t)sizeof(struct vring_packed_desc), id);
		head_flags = VRING_DESC_F_INDIRECT | virtq_pflags_avail(wrap);
		if (++idx == d->num) {
			idx = 0;
			wrap = !wrap;
		}
	} else {
		for (i = 0; i < total; i++) {
			uint16_t f = virtq_pflags_avail(wrap);

			if (i >= out)
				f |= VRING_DESC_F_WRITE;
			if (i + 1 < total)
				f |= VRING_DESC_F_NEXT;
			/* The id belongs in the last descriptor; writing it in
			 * every one costs nothing and helps debugging. */
			write_desc(&d->pdesc[idx], bufs[i].addr, bufs[i].len, id);
			if (i == 0)
				head_flags = f;
			else
				virtq_put16(&d->pdesc[idx].flags, f);
			if (++idx == d->num) {
				idx = 0;
				wrap = !wrap;
			}
		}
	}

	d->tokens[id] = token;
	d->chain_len[id] = (uint16_t)nslots;
	d->num_free -= nslots;
	/* Expose the chain by its head's flags last, as a release store: the
	 * device's acquire load of the head's flags pairs with this, so it
	 * never observes a partial chain. */
	virtq_store_release16(&d->pdesc[d->next_avail].flags, head_flags);
	d->next_avail = idx;
	d->avail_wrap_counter = wrap;
	return 0;
}

bool virtq_drv_kick_prepare_packed(struct virtq_drv *d)
{
	uint16_t new = virtq_pos(d->next_avail, d->avail_wrap_counter);
	uint16_t old = d->kicked_avail, off_wrap, flags;

	/* Make the new heads visible before reading the device's request.
	 * Pairs with the device's full barrier between writing device_event
	 * and re-checking the ring in virtq_enable_notify_packed(). */
	smp_mb();
	virtq_pevent_read(d->device_event, &off_wrap, &flags);
	d->kicked_avail = new;

	switch (flags) {
	case VRING_PACKED_EVENT_FLAG_DISABLE:
		return false;
	case VRING_PACKED_EVENT_FLAG_DESC:
		if (!d->event_idx)
			return true;
		return virtq_packed_need_event(d->num, off_wrap, old, new);
	case VRING_PACKED_EVENT_FLAG_ENABLE:
	default:
		return true;
	}
}

void *virtq_drv_get_used_packed(struct virtq_drv *d, uint32_t *len)
{
	struct vring_packed_desc *slot = &d->pdesc[d->last_used];
	/* Pairs with the device's release store of the used flags. */
	uint16_t flags = virtq_load_acquire16(&slot->flags), id;
	uint32_t used_len;
	unsigned next;
	void *token;

	if (d->broken || !virtq_pflags_is_used(flags, d->used_wrap_counter))
		return NULL;
	id = virtq_get16(&slot->id);
	used_len = virtq_get32(&slot->len);
	if (id >= d->num || !d->tokens[id]) {
		log_rl(LOG_ERR, "virtq packed driver: device returned bad id %u", id);
		d->broken = true;
		return NULL;
	}

	token = d->tokens[id];
	d->tokens[id] = NULL;
	next = d->last_used + d->chain_len[id];
	if (next >= d->num) {
		next -= d->num;
		d->used_wrap_counter = !d->used_wrap_counter;
	}
	d->last_used = (uint16_t)next;
	d->num_free += d->chain_len[id];
	d->next_free[id] = d->free_head;
	d->free_head = id;
	/* len is only meaningful when the device set WRITE. */
	if (len)
		*len = (flags & VRING_DESC_F_WRITE) ? used_len : 0;
	return token;
}

void virtq_drv_enable_cb_packed(struct virtq_drv *d)
{
	if (d->event_idx)
		virtq_pevent_write(d->driver_event, virtq_pos(d->last_used, d->used_wrap_counter),
				   VRING_PACKED_EVENT_FLAG_DESC);
	else
		virtq_pevent_write(d->driver_event, 0, VRING_PACKED_EVENT_FLAG_ENABLE);
	/* The caller re-checks for used descriptors next. Pairs with the
	 * device's full barrier between writing used flags and reading
	 * driver_event in virtq_needs_notify_packed(). */
	smp_mb();
}

void virtq_drv_disable_cb_packed(struct virtq_drv *d)
{
	virtq_pevent_write(d->driver_event, 0, VRING_PACKED_EVENT_FLAG_DISABLE);
}
