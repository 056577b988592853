/* SPDX-License-Identifier: MIT */
/*
 * iotlb.c - the IOTLB table: a sorted array of non-overlapping entries,
 * updated by copy-free insertion with trimming and splitting. Views for
 * the data path are built by gmem (gmem_view_create). No ring, socket or
 * thread knowledge here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gmem/iotlb.h"

struct iotlb_ent {
	struct gmem_view_entry e;
	uint64_t seq;         /* insertion order, for eviction */
};

struct iotlb {
	struct iotlb_ent *ent;    /* sorted by e.iova */
	unsigned n, cap;
	uint64_t seq;
	struct gmem_view_entry *scratch;  /* iotlb_view's flat copy */
};

int iotlb_create(struct iotlb **out)
{
	struct iotlb *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	*out = t;
	return 0;
}

void iotlb_destroy(struct iotlb *t)
{
	if (!t)
		return;
	free(t->ent);
	free(t->scratch);
	free(t);
}

static uint64_t ent_last(const struct iotlb_ent *x)
{
	return x->e.iova + x->e.size - 1;
}

/* Room for @extra more entries (beyond IOTLB_MAX_ENTRIES only briefly). */
static int iotlb_reserve(struct iotlb *t, unsigned extra)
{
	unsigned want = t->n + extra;
	struct iotlb_ent *ne;
	struct gmem_view_entry *ns;

	if (want <= t->cap)
		return 0;
	want = want < 16 ? 16 : want * 2;
	ne = realloc(t->ent, (size_t)want * sizeof(*ne));
	if (!ne)
		return -ENOMEM;
	t->ent = ne;
	ns = realloc(t->scratch, (size_t)want * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	t->scratch = ns;
	t->cap = want;
	return 0;
}

static void iotlb_remove_at(struct iotlb *t, unsigned i)
{
	memmove(&t->ent[i], &t->ent[i + 1], (size_t)(t->n - i - 1) * sizeof(t->ent[0]));
	t->n--;
}

static void iotlb_insert_at(struct iotlb *t, unsigned i, const struct iotlb_ent *x)
{
	memmove(&t->ent[i + 1], &t->ent[i], (size_t)(t->n - i) * sizeof(t->ent[0]));
	t->ent[i] = *x;
	t->n++;
}

/* First entry whose last byte is >= iova. */
static unsigned iotlb_first_ending_at_or_after(const struct iotlb *t, uint64_t iova)
{
	unsigned lo = 0, hi = t->n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (ent_last(&t->ent[mid]) < iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Cut [iova, last] out of the table. Needs room for one more entry (a
 * split of one entry into two); the caller reserved it. Returns the index
 * where an entry starting at iova belongs.
 */
static unsigned iotlb_cut(struct iotlb *t, uint64_t iova, uint64_t last)
{
	unsigned i = iotlb_first_ending_at_or_after(t, iova);

	while (i < t->n && t->ent[i].e.iova <= last) {
		struct iotlb_ent *x = &t->ent[i];
		uint64_t x_last = ent_last(x);

		if (x->e.iova < iova && x_last > last) {
			/* Hole in the middle: split into a head and a tail. */
			struct iotlb_ent tail = *x;

			tail.e.iova = last + 1;
			tail.e.size = x_last - last;
			tail.e.uva = x->e.uva + (last + 1 - x->e.iova);
			x->e.size = iova - x->e.iova;
			iotlb_insert_at(t, i + 1, &tail);
			return i + 1;
		}
		if (x->e.iova < iova) {
			x->e.size = iova - x->e.iova;   /* keep the head */
			i++;
		} else if (x_last > last) {
			uint64_t cut = last + 1 - x->e.iova;   /* keep the tail */

			x->e.iova += cut;
			x->e.uva += cut;
			x->e.size -= cut;
			return i;
		} else {
			iotlb_remove_at(t, i);    /* wholly inside */
		}
	}
	return i;
}

static bool range_ok(uint64_t a, uint64_t size)
{
	return size && a + (size - 1) >= a;
}

/* Drop the oldest entry (never the one at @keep). */
static void iotlb_evict(struct iotlb *t, unsigned keep)
{
	unsigned victim = keep == 0 ? 1 : 0;

	for (unsigned i = 0; i < t->n; i++) {
		if (i != keep && t->ent[i].seq < t->ent[victim].seq)
			victim = i;
	}
	iotlb_remove_at(t, victim);
}

int iotlb_update(struct iotlb *t, uint64_t iova, uint64_t size, uint64_t uva,
		 unsigned perm)
{
	struct iotlb_ent x = {
		.e = { .iova = iova, .size = size, .uva = uva, .perm = perm },
	};
	unsigned pos;

	if (!range_ok(iova, size) || !range_ok(uva, size) || !perm || (perm & ~GMEM_PERM_RW))
		return -EINVAL;
	if (iotlb_reserve(t, 2))
		return -ENOMEM;
	x.seq = t->seq++;
	pos = iotlb_cut(t, iova, iova + size - 1);
	iotlb_insert_at(t, pos, &x);
	if (t->n > IOTLB_MAX_ENTRIES)
		iotlb_evict(t, pos);
	return 0;
}

int iotlb_invalidate(struct iotlb *t, uint64_t iova, uint64_t size)
{
	if (!range_ok(iova, size))
		return -EINVAL;
	if (iotlb_reserve(t, 1))
		return -ENOMEM;
	iotlb_cut(t, iova, iova + size - 1);
	return 0;
}

void iotlb_clear(struct iotlb *t)
{
	t->n = 0;
}

unsigned iotlb_count(const struct iotlb *t)
{
	return t->n;
}

const struct gmem_view_entry *iotlb_entry(const struct iotlb *t, unsigned i)
{
	return i < t->n ? &t->ent[i].e : NULL;
}

const struct gmem_view_entry *iotlb_lookup(const struct iotlb *t, uint64_t iova)
{
	unsigned i = iotlb_first_ending_at_or_after(t, iova);

	if (i < t->n && t->ent[i].e.iova <= iova)
		return &t->ent[i].e;
	return NULL;
}

int iotlb_view(const struct iotlb *t, const struct gmem *mem, struct gmem **out)
{
	for (unsigned i = 0; i < t->n; i++)
		t->scratch[i] = t->ent[i].e;
	return gmem_view_create(mem, t->scratch, t->n, out);
}
