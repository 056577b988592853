/* SPDX-License-Identifier: MIT */
/*
 * virtq_packed.c - device side of the packed virtqueue (VIRTIO_F_RING_PACKED):
 * walking available chains (direct and indirect), writing used descriptors,
 * and both directions of event suppression.
 *
 * Everything in the ring is written by an untrusted guest: each field is
 * read once into a local, and any malformed chain marks the queue broken.
 * Address translation and indirect-table checks are the shared helpers of
 * virtq.c; this file knows nothing of fds, threads or sockets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "virtq/virtq_internal.h"
#include "virtq/virtq_packed_event.h"

/* One descriptor as read from guest memory, fields already host-endian. */
struct pdesc_snap {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

static void read_desc_body(const struct vring_packed_desc *d, struct pdesc_snap *s)
{
	s->addr = virtq_get64(&d->addr);
	s->len = virtq_get32(&d->len);
	s->id = virtq_get16(&d->id);
}

/* Advance a ring position by @n slots (n <= num), toggling @wrap on wrap. */
static uint16_t ring_advance(unsigned num, uint16_t idx, unsigned n, bool *wrap)
{
	unsigned next = idx + n;

	if (next >= num) {
		next -= num;
		*wrap = !*wrap;
	}
	return (uint16_t)next;
}

int virtq_init_packed(struct virtq *vq, const struct virtq_config *cfg)
{
	uint16_t idx = cfg->base & VIRTQ_POS_IDX;
	bool wrap = cfg->base & VIRTQ_POS_WRAP;

	if (cfg->num == 0 || cfg->num > VIRTQ_MAX_SIZE || idx >= cfg->num)
		return -EINVAL;
	if (!cfg->desc || !cfg->driver || !cfg->device)
		return -EINVAL;
	if ((uintptr_t)cfg->desc % 16 || (uintptr_t)cfg->driver % 4 ||
	    (uintptr_t)cfg->device % 4)
		return -EINVAL;

	memset(vq, 0, sizeof(*vq));
	vq->num = cfg->num;
	vq->packed = true;
	vq->event_idx = cfg->event_idx;
	vq->indirect = cfg->indirect;
	vq->pdesc = cfg->desc;
	vq->driver_event = cfg->driver;
	vq->device_event = cfg->device;
	vq->last_avail_idx = idx;
	vq->avail_wrap_counter = wrap;
	vq->used_idx = idx;
	vq->used_wrap_counter = wrap;
	/* signalled_used holds a virtq_pos() (index and wrap) for packed. */
	vq->signalled_used = virtq_pos(idx, wrap);
	vq->signalled_used_valid = false;
	return 0;
}

/* A broken queue reports nothing available so callers do not spin on it. */
bool virtq_has_avail_packed(struct virtq *vq)
{
	if (vq->broken)
		return false;
	return virtq_pflags_is_avail(virtq_get16(&vq->pdesc[vq->last_avail_idx].flags),
				     vq->avail_wrap_counter);
}

/*
 * Walk the indirect table @d points at into @e. The table is validated
 * (size, mapping) by virtq_indirect_table(); a table that crosses a region
 * boundary is copied into a bounce buffer allocated for this call only.
 */
static int pop_indirect(struct virtq *vq, const struct gmem *mem, struct virtq_elem *e,
			unsigned max_iov, const struct pdesc_snap *d)
{
	const struct vring_packed_desc *table;
	void *bounce = NULL;
	unsigned i, n;
	int ret = 0;

	if (!vq->indirect) {
		virtq_set_broken(vq, "packed: indirect descriptor not negotiated");
		return -EIO;
	}
	if (d->flags & VRING_DESC_F_NEXT) {
		virtq_set_broken(vq, "packed: indirect descriptor with NEXT");
		return -EIO;
	}
	/* The helper copies a table that crosses regions or is misaligned into
	 * a bounce buffer; only then is one worth allocating (rare: guests
	 * allocate tables inside one region). Sizes it would refuse get none. */
	if (d->len && d->len % sizeof(*table) == 0 &&
	    d->len <= VIRTQ_MAX_SIZE * sizeof(*table)) {
		const void *p = gmem_ptr(mem, d->addr, d->len);

		if (!p || (uintptr_t)p % _Alignof(struct vring_packed_desc))
			bounce = malloc(d->len);
	}
	table = virtq_indirect_table(vq, mem, d->addr, d->len, bounce, bounce ? d->len : 0);
	if (!table) {
		ret = -EIO;
		goto out_free_bounce;
	}

	n = d->len / sizeof(*table);
	for (i = 0; i < n; i++) {
		struct pdesc_snap s;

		/* Table entries: only WRITE is meaningful; NEXT and id are
		 * ignored (entries are taken in order), INDIRECT is refused. */
		s.flags = virtq_get16(&table[i].flags);
		read_desc_body(&table[i], &s);
		if (s.flags & VRING_DESC_F_INDIRECT) {
			virtq_set_broken(vq, "packed: nested indirect table");
			ret = -EIO;
			goto out_free_bounce;
		}
		ret = virtq_map_buf(vq, mem, e, max_iov, s.addr, s.len,
				    s.flags & VRING_DESC_F_WRITE);
		if (ret < 0)
			goto out_free_bounce;
	}

out_free_bounce:
	free(bounce);
	return ret;
}

/*
 * Inflight tracking, packed layout. A popped chain's descriptors are copied
 * into entries taken from the region's free list (the ring slots may be
 * overwritten by used entries before the chain completes); nothing counts
 * until track_commit() moves old_free_head past them, so a chain we die in
 * the middle of is simply popped again from the ring.
 */
struct track_cursor {
	uint16_t cur;    /* next free entry */
	uint16_t last;   /* entry holding the chain's last descriptor */
};

static int track_desc(struct virtq *vq, struct track_cursor *c, const struct pdesc_snap *d)
{
	struct virtq_inflight_packed *r = vq->track;
	struct virtq_inflight_desc_packed *e;

	if (c->cur >= vq->track_num) {
		virtq_set_broken(vq, "packed: inflight area free list corrupt");
		return -EIO;
	}
	e = &r->desc[c->cur];
	WRITE_ONCE(e->addr, d->addr);
	WRITE_ONCE(e->len, d->len);
	WRITE_ONCE(e->id, d->id);
	WRITE_ONCE(e->flags, d->flags);
	c->last = c->cur;
	c->cur = READ_ONCE(e->next);
	return 0;
}

static void track_commit(struct virtq *vq, const struct track_cursor *c, unsigned n,
			 struct virtq_elem *e)
{
	struct virtq_inflight_packed *r = vq->track;
	uint16_t h = vq->track_free;

	WRITE_ONCE(r->desc[h].num, (uint16_t)n);
	WRITE_ONCE(r->desc[h].last, c->last);
	WRITE_ONCE(r->desc[h].counter, vq->track_counter++);
	WRITE_ONCE(r->desc[h].inflight, 1);
	/* The entries before the commit, the commit before the request can
	 * have any effect: pairs with virtq_track_init_packed() run by our
	 * successor after a crash. */
	smp_wmb();
	WRITE_ONCE(r->free_head, c->cur);
	WRITE_ONCE(r->old_free_head, c->cur);
	smp_wmb();
	vq->track_free = c->cur;
	e->inflight_head = h;
	e->inflight_last = c->last;
}

/*
 * Map one descriptor of a chain into e: an indirect table (which must be
 * the chain's only descriptor, n == 1) or a plain buffer. Shared by pops
 * from the ring and replays from the inflight area. -EIO after marking vq
 * broken.
 */
static int map_desc(struct virtq *vq, const struct gmem *mem, struct virtq_elem *e,
		    unsigned max_iov, const struct pdesc_snap *d, unsigned n)
{
	if (d->flags & VRING_DESC_F_INDIRECT) {
		/* An indirect descriptor stands alone in the ring. */
		if (n != 1) {
			virtq_set_broken(vq, "packed: indirect descriptor inside a chain");
			return -EIO;
		}
		return pop_indirect(vq, mem, e, max_iov, d) < 0 ? -EIO : 0;
	}
	return virtq_map_buf(vq, mem, e, max_iov, d->addr, d->len,
			     d->flags & VRING_DESC_F_WRITE) < 0 ? -EIO : 0;
}

/**
 * virtq_pop_packed - take the chain at last_avail_idx (see virtq_pop()).
 * @vq: the queue; @mem: guest memory for this batch; @elem: filled on
 * success only; @iov/@max_iov: where the iovecs go.
 *
 * Every field is read once; the head's flags first (an acquire load), the
 * rest after them. Any rule the guest breaks marks @vq broken.
 *
 * Context: the queue's owning thread. Return: 1, 0 (nothing), or -EIO.
 */
int virtq_pop_packed(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		     struct iovec *iov, unsigned max_iov)
{
	struct virtq_elem e = { .iov = iov };
	struct track_cursor tc = { .cur = vq->track_free };
	uint16_t idx = vq->last_avail_idx;
	bool wrap = vq->avail_wrap_counter;
	struct pdesc_snap d;
	unsigned n = 0;

	if (vq->broken)
		return -EIO;

	/* Pairs with the driver's release store of the head's flags: the
	 * rest of the chain is visible once the head is. */
	d.flags = virtq_load_acquire16(&vq->pdesc[idx].flags);
	if (!virtq_pflags_is_avail(d.flags, wrap))
		return 0;

	for (;;) {
		read_desc_body(&vq->pdesc[idx], &d);
		n++;
		if (vq->track && track_desc(vq, &tc, &d) < 0)
			return -EIO;

		if (map_desc(vq, mem, &e, max_iov, &d, n) < 0)
			return -EIO;

		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (n == vq->num) {
			virtq_set_broken(vq, "packed: chain longer than the ring");
			return -EIO;
		}
		idx = ring_advance(vq->num, idx, 1, &wrap);
		/* The avail bits of chained descriptors are not checked: the
		 * head's flags published the whole chain. */
		d.flags = virtq_get16(&vq->pdesc[idx].flags);
	}

	/* The buffer id is the one in the last descriptor of the chain. */
	e.id = d.id;
	e.ndesc = (uint16_t)n;
	if (vq->track)
		track_commit(vq, &tc, n, &e);
	vq->last_avail_idx = ring_advance(vq->num, vq->last_avail_idx, n,
					  &vq->avail_wrap_counter);
	vq->inflight++;
	*elem = e;
	return 1;
}

/*
 * The next recovered request, rebuilt from the copies in the inflight
 * area (its ring slots may hold used entries by now) and validated like a
 * chain read from the ring. The ring position already accounts for it.
 */
int virtq_repop_packed(struct virtq *vq, const struct gmem *mem, struct virtq_elem *elem,
		       struct iovec *iov, unsigned max_iov)
{
	struct virtq_inflight_packed *r = vq->track;
	struct virtq_elem e = { .iov = iov };
	uint16_t h = vq->resubmit[vq->resubmit_pos++].head, j = h, last = h;
	struct pdesc_snap d = { 0 };
	unsigned n, k;

	if (h >= vq->track_num) {
		virtq_set_broken(vq, "packed: inflight head out of range");
		return -EIO;
	}
	n = READ_ONCE(r->desc[h].num);
	if (n == 0 || n > vq->num) {
		virtq_set_broken(vq, "packed: inflight chain length invalid");
		return -EIO;
	}
	for (k = 0; k < n; k++) {
		const struct virtq_inflight_desc_packed *s;

		if (j >= vq->track_num) {
			virtq_set_broken(vq, "packed: inflight chain link out of range");
			return -EIO;
		}
		s = &r->desc[j];
		d.addr = READ_ONCE(s->addr);
		d.len = READ_ONCE(s->len);
		d.id = READ_ONCE(s->id);
		d.flags = READ_ONCE(s->flags);
		if (!(d.flags & VRING_DESC_F_NEXT) != (k == n - 1)) {
			virtq_set_broken(vq, "packed: inflight chain flags inconsistent");
			return -EIO;
		}
		if (map_desc(vq, mem, &e, max_iov, &d, n) < 0)
			return -EIO;
		last = j;
		if (k + 1 < n)
			j = READ_ONCE(s->next);
	}
	e.id = d.id;
	e.ndesc = (uint16_t)n;
	e.inflight_head = h;
	e.inflight_last = last;
	vq->inflight++;
	*elem = e;
	return 1;
}

/*
 * virtq_track_init_packed - take over the inflight region: initialise a
 * fresh one (every entry on the free list), or recover per the spec's
 * "When reconnecting" rules: finish or roll back a push we died in (did
 * the used flags reach the ring?), clear the marks of free entries, and
 * resubmit what is still in flight in counter order. Both ring positions
 * restart at the committed used position; popping resumes after the slots
 * the in-flight chains occupy. Bad contents break the queue.
 */
void virtq_track_init_packed(struct virtq *vq, const struct virtq_config *cfg)
{
	struct virtq_inflight_packed *r = vq->track;
	struct virtq_resubmit *list = NULL;
	uint16_t fh, ofh, u, ou, i, k;
	uint8_t w, ow;
	unsigned n = 0, slots = 0;
	bool wrap;

	if (READ_ONCE(r->version) == 0) {
		for (i = 0; i < vq->track_num; i++) {
			memset(&r->desc[i], 0, sizeof(r->desc[i]));
			r->desc[i].next = (uint16_t)(i + 1);   /* track_num ends it */
		}
		WRITE_ONCE(r->features, 0);
		WRITE_ONCE(r->desc_num, (uint16_t)vq->track_num);
		WRITE_ONCE(r->free_head, 0);
		WRITE_ONCE(r->old_free_head, 0);
		WRITE_ONCE(r->used_idx, vq->used_idx);
		WRITE_ONCE(r->old_used_idx, vq->used_idx);
		WRITE_ONCE(r->used_wrap_counter, vq->used_wrap_counter);
		WRITE_ONCE(r->old_used_wrap_counter, vq->used_wrap_counter);
		vq->track_free = 0;
		/* Contents before the version that says they are valid. */
		smp_wmb();
		WRITE_ONCE(r->version, VIRTQ_INFLIGHT_VERSION);
		return;
	}
	if (READ_ONCE(r->version) != VIRTQ_INFLIGHT_VERSION ||
	    READ_ONCE(r->desc_num) != vq->track_num) {
		virtq_set_broken(vq, "packed: inflight area: unknown version or size");
		return;
	}
	fh = READ_ONCE(r->free_head);
	ofh = READ_ONCE(r->old_free_head);
	u = READ_ONCE(r->used_idx);
	ou = READ_ONCE(r->old_used_idx);
	w = READ_ONCE(r->used_wrap_counter);
	ow = READ_ONCE(r->old_used_wrap_counter);
	if (fh > vq->track_num || ofh > vq->track_num || u >= vq->num || ou >= vq->num ||
	    w > 1 || ow > 1) {
		virtq_set_broken(vq, "packed: inflight area: bad indices");
		return;
	}
	/* A push in progress: if its used flags reached the ring, it
	 * completed (commit it); otherwise roll it back. */
	if ((u != ou || w != ow) &&
	    !virtq_pflags_is_avail(virtq_get16(&vq->pdesc[ou].flags), ow)) {
		ofh = fh;
		ou = u;
		ow = w;
	}
	WRITE_ONCE(r->free_head, ofh);
	WRITE_ONCE(r->used_idx, ou);
	WRITE_ONCE(r->used_wrap_counter, ow);
	WRITE_ONCE(r->old_free_head, ofh);
	WRITE_ONCE(r->old_used_idx, ou);
	WRITE_ONCE(r->old_used_wrap_counter, ow);

	/* Free entries are not in flight, whatever they say (a pop we died
	 * in). A free list longer than the region loops. */
	for (i = ofh, k = 0; i < vq->track_num; k++) {
		if (k >= vq->track_num) {
			virtq_set_broken(vq, "packed: inflight free list loops");
			return;
		}
		WRITE_ONCE(r->desc[i].inflight, 0);
		i = READ_ONCE(r->desc[i].next);
	}
	for (i = 0; i < vq->track_num; i++) {
		uint8_t f = READ_ONCE(r->desc[i].inflight);
		uint16_t num, j = i;

		if (f > 1) {
			virtq_set_broken(vq, "packed: inflight area: bad descriptor state");
			goto err;
		}
		if (!f)
			continue;
		num = READ_ONCE(r->desc[i].num);
		if (num == 0 || num > vq->num || slots + num > vq->num) {
			virtq_set_broken(vq, "packed: inflight chains exceed the ring");
			goto err;
		}
		for (k = 1; k < num; k++) {
			j = READ_ONCE(r->desc[j].next);
			if (j >= vq->track_num) {
				virtq_set_broken(vq, "packed: inflight chain link out of range");
				goto err;
			}
		}
		if (j != READ_ONCE(r->desc[i].last)) {
			virtq_set_broken(vq, "packed: inflight chain end mismatch");
			goto err;
		}
		slots += num;
		if (!list) {
			list = calloc(vq->num, sizeof(*list));
			if (!list) {
				virtq_set_broken(vq, "packed: inflight area: out of memory");
				return;
			}
		}
		list[n].head = i;
		list[n].counter = READ_ONCE(r->desc[i].counter);
		n++;
	}
	vq->used_idx = ou;
	vq->used_wrap_counter = ow;
	vq->signalled_used = virtq_pos(ou, ow);
	wrap = ow;
	vq->last_avail_idx = ring_advance(vq->num, ou, slots, &wrap);
	vq->avail_wrap_counter = wrap;
	vq->track_free = ofh;
	virtq_resubmit_set(vq, list, n);
	return;

err:
	free(list);
}

/**
 * virtq_push_packed - write the used descriptor for @elem at used_idx and
 * skip used_idx forward by elem->ndesc (completions may come in any order).
 *
 * Context: the queue's owning thread; @elem came from virtq_pop() on @vq.
 */
void virtq_push_packed(struct virtq *vq, const struct virtq_elem *elem, uint32_t len)
{
	struct vring_packed_desc *d = &vq->pdesc[vq->used_idx];
	uint16_t flags = virtq_pflags_used(vq->used_wrap_counter), new_used;
	struct virtq_inflight_packed *r = vq->track;
	bool new_wrap = vq->used_wrap_counter;

	if (unlikely(!vq->inflight || elem->ndesc == 0 || elem->ndesc > vq->num ||
		     (r && (elem->inflight_head >= vq->track_num ||
			    elem->inflight_last >= vq->track_num)))) {
		virtq_set_broken(vq, "packed: push of an element that was not popped");
		return;
	}
	if (len)
		flags |= VRING_DESC_F_WRITE;
	new_used = ring_advance(vq->num, vq->used_idx, elem->ndesc, &new_wrap);
	if (r) {
		/* Spec order: free list and used position first (undone on
		 * recovery unless the flags below reached the ring). */
		WRITE_ONCE(r->desc[elem->inflight_last].next, vq->track_free);
		vq->track_free = elem->inflight_head;
		WRITE_ONCE(r->free_head, elem->inflight_head);
		WRITE_ONCE(r->used_idx, new_used);
		WRITE_ONCE(r->used_wrap_counter, new_wrap);
		smp_wmb();
	}
	virtq_put16(&d->id, elem->id);
	virtq_put32(&d->len, len);
	/* Publish: a release store orders id and len before flags. Pairs with
	 * the driver's acquire load of the flags. */
	virtq_store_release16(&d->flags, flags);
	virtq_log_desc(vq, (uint64_t)vq->used_idx * sizeof(*d), sizeof(*d));
	if (r) {
		/* Flags, then the mark, then the commit: recovery looks at the
		 * flags to tell a finished push from an unfinished one. */
		smp_wmb();
		WRITE_ONCE(r->desc[elem->inflight_head].inflight, 0);
		smp_wmb();
		WRITE_ONCE(r->old_free_head, elem->inflight_head);
		WRITE_ONCE(r->old_used_idx, new_used);
		WRITE_ONCE(r->old_used_wrap_counter, new_wrap);
	}

	vq->used_idx = new_used;
	vq->used_wrap_counter = new_wrap;
	vq->inflight--;
}

bool virtq_needs_notify_packed(struct virtq *vq)
{
	uint16_t off_wrap, flags, old = vq->signalled_used;
	uint16_t new = virtq_pos(vq->used_idx, vq->used_wrap_counter);
	bool valid = vq->signalled_used_valid;

	/* Order our used-flag stores before reading the driver's event
	 * structure. Pairs with the driver's full barrier between writing
	 * driver_event and re-checking the ring for used descriptors. */
	smp_mb();
	virtq_pevent_read(vq->driver_event, &off_wrap, &flags);

	vq->signalled_used = new;
	vq->signalled_used_valid = true;

	switch (flags) {
	case VRING_PACKED_EVENT_FLAG_DISABLE:
		return false;
	case VRING_PACKED_EVENT_FLAG_DESC:
		if (!vq->event_idx)
			return true;
		return !valid || virtq_packed_need_event(vq->num, off_wrap, old, new);
	case VRING_PACKED_EVENT_FLAG_ENABLE:
	default:
		/* ENABLE, or a reserved value: notifying is always safe. */
		return true;
	}
}

void virtq_disable_notify_packed(struct virtq *vq)
{
	virtq_pevent_write(vq->device_event, 0, VRING_PACKED_EVENT_FLAG_DISABLE);
	virtq_log_device(vq, 0, sizeof(*vq->device_event));
}

bool virtq_enable_notify_packed(struct virtq *vq)
{
	if (vq->event_idx)
		virtq_pevent_write(vq->device_event,
				   virtq_pos(vq->last_avail_idx, vq->avail_wrap_counter),
				   VRING_PACKED_EVENT_FLAG_DESC);
	else
		virtq_pevent_write(vq->device_event, 0, VRING_PACKED_EVENT_FLAG_ENABLE);
	virtq_log_device(vq, 0, sizeof(*vq->device_event));
	/* Publish the request before looking at the ring again. Pairs with
	 * the driver's full barrier between making a head available and
	 * reading device_event in its kick decision. */
	smp_mb();
	return virtq_has_avail_packed(vq);
}
