/* SPDX-License-Identifier: MIT */
/*
 * virtq_packed_event.h - what the device and driver halves of the packed
 * ring share: flag tests, ring positions (index + wrap counter) and the
 * event-suppression arithmetic. Pure functions of their arguments; no
 * memory is touched here except through the two event-structure accessors.
 * Internal to src/virtq.
 */
#ifndef VBLK_VIRTQ_PACKED_EVENT_H
#define VBLK_VIRTQ_PACKED_EVENT_H

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include "common/compiler.h"

/* Flag bits as 16-bit masks (the uapi header gives bit numbers). */
#define VIRTQ_PF_AVAIL ((uint16_t)(1u << VRING_PACKED_DESC_F_AVAIL))
#define VIRTQ_PF_USED  ((uint16_t)(1u << VRING_PACKED_DESC_F_USED))

/* A ring position packed the way the spec packs off_wrap: bits 0-14 the
 * slot, bit 15 the wrap counter. */
#define VIRTQ_POS_WRAP 0x8000u
#define VIRTQ_POS_IDX  0x7fffu

static inline uint16_t virtq_pos(uint16_t idx, bool wrap)
{
	return (uint16_t)(idx | (wrap ? VIRTQ_POS_WRAP : 0));
}

/* Flags that make a slot available (driver) under wrap counter @wrap. */
static inline uint16_t virtq_pflags_avail(bool wrap)
{
	return wrap ? VIRTQ_PF_AVAIL : VIRTQ_PF_USED;
}

/* Flags that mark a slot used (device) under wrap counter @wrap. */
static inline uint16_t virtq_pflags_used(bool wrap)
{
	return wrap ? (uint16_t)(VIRTQ_PF_AVAIL | VIRTQ_PF_USED) : 0;
}

/* Available for a device whose avail wrap counter is @wrap: AVAIL matches
 * it and USED does not. */
static inline bool virtq_pflags_is_avail(uint16_t flags, bool wrap)
{
	return !!(flags & VIRTQ_PF_AVAIL) == wrap && !!(flags & VIRTQ_PF_USED) != wrap;
}

/* Used, for a driver whose used wrap counter is @wrap: both bits match. */
static inline bool virtq_pflags_is_used(uint16_t flags, bool wrap)
{
	return !!(flags & VIRTQ_PF_AVAIL) == wrap && !!(flags & VIRTQ_PF_USED) == wrap;
}

/*
 * virtq_packed_need_event - did the slots written since @old up to (not
 * including) @new cover the slot the other side asked to hear about?
 * @num:   ring size
 * @event: the other side's off_wrap
 * @old:   position at the previous decision (virtq_pos encoding)
 * @new:   current position
 *
 * The packed-ring analogue of vring_need_event(): positions are mapped
 * onto one line (an index plus num for each wrap the counters differ by),
 * so it is exact for any ring size, not only powers of two. An event in
 * the wrap before @new's is taken to be behind it. If more than a whole
 * ring went by since @old the answer is always yes (the event must have
 * been passed, and a spurious notification is harmless).
 * Guest-supplied @event values out of range give an arbitrary but
 * well-defined answer.
 */
static inline bool virtq_packed_need_event(unsigned num, uint16_t event, uint16_t old,
					   uint16_t new)
{
	int new_idx = new & VIRTQ_POS_IDX, old_idx = old & VIRTQ_POS_IDX;
	int ev_idx = event & VIRTQ_POS_IDX;
	bool new_wrap = new & VIRTQ_POS_WRAP;
	int moved, back;

	moved = new_idx - old_idx + (new_wrap != !!(old & VIRTQ_POS_WRAP) ? (int)num : 0);
	if (moved < 0 || moved > (int)num)
		return true;
	/* how far the event slot lies behind @new */
	back = new_idx - ev_idx + (new_wrap != !!(event & VIRTQ_POS_WRAP) ? (int)num : 0);
	return back >= 1 && back <= moved;
}

/*
 * Event suppression structures are read and written as one 32-bit word so
 * the other side never sees a new flags value with a stale offset (both
 * areas are 4-byte aligned, checked at init).
 */
static inline void virtq_pevent_read(const struct vring_packed_desc_event *e,
				     uint16_t *off_wrap, uint16_t *flags)
{
	struct vring_packed_desc_event snap;
	uint32_t w = READ_ONCE(*(const uint32_t *)e);

	memcpy(&snap, &w, sizeof(snap));
	*off_wrap = le16toh(snap.off_wrap);
	*flags = le16toh(snap.flags);
}

static inline void virtq_pevent_write(struct vring_packed_desc_event *e, uint16_t off_wrap,
				      uint16_t flags)
{
	struct vring_packed_desc_event v = { .off_wrap = htole16(off_wrap),
					     .flags = htole16(flags) };
	uint32_t w;

	memcpy(&w, &v, sizeof(w));
	WRITE_ONCE(*(uint32_t *)e, w);
}

#endif
