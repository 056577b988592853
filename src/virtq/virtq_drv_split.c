/* SPDX-License-Identifier: MIT */
/*
 * virtq_drv_split.c - driver (guest) side of the split virtqueue: a free
 * list of descriptors kept in next_free[] (never read back from shared
 * memory), making chains available, the kick decision, reaping used
 * entries and interrupt suppression. The mock guest of the unit tests.
 */
#include <errno.h>

#include "common/compiler.h"
#include "common/log.h"
#include "virtq/virtq_internal.h"

static inline uint16_t *drv_used_event(const struct virtq_drv *d)
{
	return (uint16_t *)&d->avail->ring[d->num];
}

static inline uint16_t *drv_avail_event(const struct virtq_drv *d)
{
	return (uint16_t *)&d->used->ring[d->num];
}

static void write_desc(struct vring_desc *desc, uint64_t addr, uint32_t len, uint16_t flags,
		       uint16_t next)
{
	virtq_put64(&desc->addr, addr);
	virtq_put32(&desc->len, len);
	virtq_put16(&desc->flags, flags);
	virtq_put16(&desc->next, next);
}

/*
 * Indices start where the rings say: zero for zeroed memory, or wherever a
 * test put avail->idx and used->idx (both equal) before init.
 */
int virtq_drv_init_split(struct virtq_drv *d)
{
	unsigned i;

	for (i = 0; i < d->num; i++)
		d->next_free[i] = (uint16_t)(i + 1);
	d->free_head = 0;
	d->num_free = d->num;
	d->next_avail = virtq_get16(&d->avail->idx);
	d->kicked_avail = d->next_avail;
	d->last_used = virtq_get16(&d->used->idx);
	return 0;
}

int virtq_drv_add_split(struct virtq_drv *d, const struct virtq_drv_buf *bufs,
			unsigned out, unsigned in, void *token,
			void *indirect_table, uint64_t indirect_addr)
{
	unsigned n = out + in, ndesc = indirect_table ? 1 : n, k;
	uint16_t head = d->free_head, i = head, last = head;

	if (ndesc > d->num_free)
		return -ENOSPC;
	if (indirect_table) {
		struct vring_desc *t = indirect_table;

		for (k = 0; k < n; k++) {
			write_desc(&t[k], bufs[k].addr, bufs[k].len,
				   (uint16_t)((k >= out ? VRING_DESC_F_WRITE : 0) |
					      (k + 1 < n ? VRING_DESC_F_NEXT : 0)),
				   (uint16_t)(k + 1 < n ? k + 1 : 0));
		}
		write_desc(&d->desc[head], indirect_addr,
			   (uint32_t)(n * sizeof(struct vring_desc)), VRING_DESC_F_INDIRECT, 0);
	} else {
		for (k = 0; k < n; k++) {
			last = i;
			write_desc(&d->desc[i], bufs[k].addr, bufs[k].len,
				   (uint16_t)((k >= out ? VRING_DESC_F_WRITE : 0) |
					      (k + 1 < n ? VRING_DESC_F_NEXT : 0)),
				   k + 1 < n ? d->next_free[i] : 0);
			i = d->next_free[i];
		}
	}
	d->free_head = d->next_free[last];
	d->num_free -= ndesc;
	d->tokens[head] = token;
	d->chain_len[head] = (uint16_t)ndesc;

	virtq_put16(&d->avail->ring[d->next_avail & (d->num - 1)], head);
	/* Descriptors and ring entry before the index: pairs with the
	 * device's acquire load of avail->idx. */
	d->next_avail++;
	virtq_store_release16(&d->avail->idx, d->next_avail);
	return 0;
}

bool virtq_drv_kick_prepare_split(struct virtq_drv *d)
{
	uint16_t old = d->kicked_avail, new = d->next_avail;

	/* avail->idx store before the avail_event/flags load: pairs with the
	 * device's smp_mb() in virtq_enable_notify(). */
	smp_mb();
	d->kicked_avail = new;
	if (d->event_idx)
		return vring_need_event(virtq_get16(drv_avail_event(d)), new, old);
	return !(virtq_get16(&d->used->flags) & VRING_USED_F_NO_NOTIFY);
}

void *virtq_drv_get_used_split(struct virtq_drv *d, uint32_t *len)
{
	vring_used_elem_t *u;
	uint16_t head, tail, k;
	uint32_t id;
	void *token;

	/* The entry after the index: pairs with the device's release store
	 * of used->idx. */
	if (d->broken || d->last_used == virtq_load_acquire16(&d->used->idx))
		return NULL;
	u = &d->used->ring[d->last_used & (d->num - 1)];
	id = virtq_get32(&u->id);
	if (id >= d->num || !d->tokens[id]) {
		log_rl(LOG_ERR, "virtq split driver: device returned bad id %u", id);
		d->broken = true;   /* device bug: leave the entry, stop here */
		return NULL;
	}
	head = (uint16_t)id;
	if (len)
		*len = virtq_get32(&u->len);
	token = d->tokens[head];
	d->tokens[head] = NULL;

	/* Our own links: the chain is head and chain_len-1 successors. */
	tail = head;
	for (k = 1; k < d->chain_len[head]; k++)
		tail = d->next_free[tail];
	d->next_free[tail] = d->free_head;
	d->free_head = head;
	d->num_free += d->chain_len[head];
	d->last_used++;
	return token;
}

void virtq_drv_enable_cb_split(struct virtq_drv *d)
{
	if (d->event_idx)
		virtq_put16(drv_used_event(d), d->last_used);
	else
		virtq_put16(&d->avail->flags, 0);
	/* Request before any later used->idx read: pairs with the device's
	 * smp_mb() in virtq_needs_notify(). */
	smp_mb();
}

void virtq_drv_disable_cb_split(struct virtq_drv *d)
{
	if (d->event_idx)
		virtq_put16(drv_used_event(d), (uint16_t)(d->last_used - 1));
	else
		virtq_put16(&d->avail->flags, VRING_AVAIL_F_NO_INTERRUPT);
}
