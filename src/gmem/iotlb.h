/* SPDX-License-Identifier: MIT */
/*
 * iotlb.h - the vhost-user IOTLB: what the frontend told us about I/O
 * virtual address ranges (VHOST_IOTLB_UPDATE / VHOST_IOTLB_INVALIDATE),
 * kept as sorted, non-overlapping entries IOVA -> frontend virtual address
 * with permissions. The data path never reads this table: it reads
 * immutable views built from it (iotlb_view -> gmem_view_create).
 *
 * Context: one thread at a time (vhost's control thread). Knows nothing
 * about rings, sockets or threads.
 */
#ifndef VBLK_IOTLB_H
#define VBLK_IOTLB_H

#include <stdint.h>

#include "gmem/gmem.h"

/*
 * Entries kept at most. The IOTLB is a cache the frontend refills on a
 * miss, so when it is full the entry inserted longest ago is dropped
 * (as Linux vhost does), never refused.
 */
#define IOTLB_MAX_ENTRIES 8192u

struct iotlb;

int iotlb_create(struct iotlb **out);
void iotlb_destroy(struct iotlb *t);

/*
 * iotlb_update - map [iova, iova+size) to the frontend's [uva, uva+size)
 * with @perm (GMEM_PERM_READ, _WRITE or _RW). What it overlaps of older
 * entries is replaced (they are trimmed or split); the newest word wins.
 * Return: 0, -EINVAL (zero size, wrap-around in either space, bad perm),
 * -ENOMEM.
 */
int iotlb_update(struct iotlb *t, uint64_t iova, uint64_t size, uint64_t uva,
		 unsigned perm);

/*
 * iotlb_invalidate - forget every mapping of [iova, iova+size): entries
 * inside are dropped, entries crossing an edge are trimmed or split.
 * Return: 0, -EINVAL (zero size, wrap-around), -ENOMEM (a split needed
 * room and there was none: nothing changed).
 */
int iotlb_invalidate(struct iotlb *t, uint64_t iova, uint64_t size);

/* iotlb_clear - forget everything. */
void iotlb_clear(struct iotlb *t);

unsigned iotlb_count(const struct iotlb *t);
/* Entry i in IOVA order, or NULL. */
const struct gmem_view_entry *iotlb_entry(const struct iotlb *t, unsigned i);

/*
 * iotlb_lookup - the entry containing @iova, or NULL.
 */
const struct gmem_view_entry *iotlb_lookup(const struct iotlb *t, uint64_t iova);

/*
 * iotlb_view - a new immutable view of the table through the memory
 * table @mem (see gmem_view_create). Return: 0 or -errno.
 */
int iotlb_view(const struct iotlb *t, const struct gmem *mem, struct gmem **out);

#endif
