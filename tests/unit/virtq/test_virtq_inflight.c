/* SPDX-License-Identifier: MIT */
/*
 * test_virtq_inflight.c - inflight tracking (vhost-user INFLIGHT_SHMFD) for
 * split and packed rings: the device side is "crashed" (its struct virtq
 * dropped) at random points and rebuilt from the rings and the inflight
 * region; every request the driver made available must then complete
 * exactly once, the un-pushed ones resubmitted first in their pop order.
 * Torn pushes and pops (a crash between the spec's steps) are replayed by
 * hand, and hostile region contents must break the queue, never the
 * process. The driver half is virtq_drv over the same memfd. A full ring
 * is also recovered inside vblkd's production seccomp filter.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "fixture/fixture.h"
#include "common/compiler.h"
#include "daemon/sandbox.h"
#include "virtq/virtq_internal.h"
#include "virtq/virtq_packed_event.h"

#define GPA_BASE  0x40000000ull
#define MEM_SIZE  (1u << 20)
#define RING_OFF  0x0u
#define DRV_OFF   0x8000u
#define DEV_OFF   0xa000u
#define HDR_OFF   0x10000u     /* 64 bytes per request slot */
#define TBL_OFF   0x50000u     /* indirect tables, 64 bytes per slot */
#define SLOTS     4096u
#define MAX_REQ   4096u
#define MAX_OUT   1024u        /* requests the device may hold: a full ring */

struct t {
	bool packed;
	unsigned num, inflight_num;
	int fd;
	uint8_t *drv;
	struct gmem *mem;
	void *region;
	uint64_t region_size;
	struct virtq vq;
	struct virtq_drv d;
	/* bookkeeping */
	uint64_t next_seq;
	uint8_t state[MAX_REQ];        /* 0 unused, 1 driver made available, 2 completed */
	struct out { struct virtq_elem el; uint64_t seq, order; } outst[MAX_OUT];
	unsigned nout;
	struct out filled[MAX_OUT];         /* split: used entries written, not yet published */
	unsigned nfilled;
	uint64_t pop_order;
	bool failed;
};

static uint64_t gpa(uint64_t off)
{
	return GPA_BASE + off;
}

static int dev_init(struct t *t, uint16_t base)
{
	uint64_t ds, as, us;
	struct virtq_config cfg = {
		.num = t->num, .packed = t->packed, .event_idx = false, .indirect = true,
		.base = base, .inflight = t->region, .inflight_num = t->inflight_num,
	};

	virtq_area_sizes(t->num, t->packed, &ds, &as, &us);
	cfg.desc = gmem_ptr(t->mem, gpa(RING_OFF), ds);
	cfg.driver = gmem_ptr(t->mem, gpa(DRV_OFF), as);
	cfg.device = gmem_ptr(t->mem, gpa(DEV_OFF), us);
	virtq_fini(&t->vq);
	return virtq_init(&t->vq, &cfg);
}

static void t_init(struct t *t, bool packed, unsigned num, unsigned inflight_num)
{
	uint64_t ds, as, us;

	memset(t, 0, sizeof(*t));
	t->packed = packed;
	t->num = num;
	t->inflight_num = inflight_num;
	if (fixture_memfd_map("vq-inflight-test", MEM_SIZE, &t->fd, &t->drv) ||
	    fixture_gmem_add(&t->mem, t->fd, GPA_BASE, 0x7f0000000000ull, 0, MEM_SIZE))
		tap_bail("memory");
	t->region_size = virtq_inflight_size(inflight_num, packed);
	t->region = aligned_alloc(64, t->region_size);
	if (!t->region)
		tap_bail("region");
	memset(t->region, 0, t->region_size);
	virtq_area_sizes(num, packed, &ds, &as, &us);
	if (virtq_drv_init(&t->d, num, packed, false, t->drv + RING_OFF, t->drv + DRV_OFF,
			   t->drv + DEV_OFF))
		tap_bail("virtq_drv_init");
	/* Both packed wrap counters start at 1. */
	if (dev_init(t, packed ? 0x8000 : 0))
		tap_bail("virtq_init");
}

static void t_fini(struct t *t)
{
	virtq_fini(&t->vq);
	virtq_drv_fini(&t->d);
	free(t->region);
	gmem_put(t->mem);
	munmap(t->drv, MEM_SIZE);
	close(t->fd);
}

static void fail(struct t *t, const char *what, uint64_t seq)
{
	if (!t->failed)
		diag("%s ring %u: %s (seq %llu)", t->packed ? "packed" : "split", t->num, what,
		     (unsigned long long)seq);
	t->failed = true;
}

/* Driver: one request of 1-3 readable descriptors (or an indirect table)
 * whose first 8 bytes carry its sequence number, plus a status byte. */
static int drv_add(struct t *t, unsigned shape)
{
	uint64_t seq = t->next_seq, slot = seq % SLOTS;
	uint64_t hdr = HDR_OFF + slot * 64, tbl = TBL_OFF + slot * 64;
	struct virtq_drv_buf b[4];
	unsigned nout = 1 + shape % 3;
	int ret;

	if (seq >= MAX_REQ)
		return -ENOSPC;
	memcpy(t->drv + hdr, &seq, 8);
	for (unsigned i = 0; i < nout; i++)
		b[i] = (struct virtq_drv_buf){ gpa(hdr + i * 8), 8 };
	b[nout] = (struct virtq_drv_buf){ gpa(hdr + 40), 1 };
	ret = virtq_drv_add(&t->d, b, nout, 1, (void *)(uintptr_t)(seq + 1),
			    shape % 5 == 4 ? t->drv + tbl : NULL, gpa(tbl));
	if (ret)
		return ret;
	t->state[seq] = 1;
	t->next_seq++;
	return 0;
}

/* Driver: reap completions; each must be outstanding, exactly once. */
static void drv_reap(struct t *t)
{
	void *tok;
	uint32_t len;

	while ((tok = virtq_drv_get_used(&t->d, &len))) {
		uint64_t seq = (uintptr_t)tok - 1;

		if (seq >= MAX_REQ || t->state[seq] != 1)
			fail(t, "completion of a request not outstanding", seq);
		else
			t->state[seq] = 2;
	}
}

/* Device: pop one; it must be outstanding at the driver and not held. */
static int dev_pop(struct t *t, uint64_t *seq_out)
{
	struct iovec iov[16];
	struct virtq_elem el;
	uint64_t seq;
	int ret = virtq_pop(&t->vq, t->mem, &el, iov, 16);

	if (ret != 1)
		return ret;
	if (el.out_num < 1 || iov[0].iov_len < 8) {
		fail(t, "popped chain has no header", 0);
		return -EIO;
	}
	memcpy(&seq, iov[0].iov_base, 8);
	if (seq >= MAX_REQ || t->state[seq] != 1)
		fail(t, "popped a request the driver does not have outstanding", seq);
	for (unsigned i = 0; i < t->nout; i++)
		if (t->outst[i].seq == seq)
			fail(t, "popped a request twice", seq);
	if (t->nout >= MAX_OUT)
		tap_bail("too many outstanding");
	t->outst[t->nout++] = (struct out){ .el = el, .seq = seq, .order = t->pop_order++ };
	if (seq_out)
		*seq_out = seq;
	return 1;
}

static void dev_push(struct t *t, unsigned i)
{
	virtq_push(&t->vq, &t->outst[i].el, 1);
	t->outst[i] = t->outst[--t->nout];
}

/* Device, batched: write the used entry now, publish it at dev_flush. */
static void dev_fill(struct t *t, unsigned i)
{
	virtq_fill(&t->vq, &t->outst[i].el, 1);
	if (!t->packed)   /* a packed ring publishes in virtq_fill */
		t->filled[t->nfilled++] = t->outst[i];
	t->outst[i] = t->outst[--t->nout];
}

static void dev_flush(struct t *t)
{
	virtq_flush(&t->vq);
	t->nfilled = 0;
}

/* Every request the driver made available has completed. */
static void check_all_completed(struct t *t)
{
	for (uint64_t q = 0; q < t->next_seq; q++)
		if (t->state[q] != 2)
			fail(t, "request never completed", q);
}

static int cmp_order(const void *a, const void *b)
{
	const struct out *x = a, *y = b;

	return x->order < y->order ? -1 : x->order > y->order;
}

/* What QEMU 7.2 sends after a backend crash: used->idx (split), the
 * stale position of the last clean stop (packed). virtq must not care. */
static uint16_t qemu_base(struct t *t, uint16_t junk)
{
	if (!t->packed)
		return ((struct vring_used *)(t->drv + DEV_OFF))->idx;
	return junk % t->num;
}

/*
 * Crash and recover; the requests held must come back first, in their
 * original pop order. Return: false if the queue broke or order differed.
 */
static bool crash_and_check(struct t *t, uint16_t junk)
{
	struct out held[MAX_OUT];
	unsigned n, i;

	/* Filled but unpublished: the driver never saw them, so they are
	 * still in flight and must come back. */
	memcpy(t->outst + t->nout, t->filled, t->nfilled * sizeof(t->filled[0]));
	t->nout += t->nfilled;
	t->nfilled = 0;
	n = t->nout;
	memcpy(held, t->outst, n * sizeof(held[0]));
	qsort(held, n, sizeof(held[0]), cmp_order);
	memset(&t->vq, 0xa5, sizeof(t->vq));   /* the process is gone */
	t->vq.resubmit = NULL;
	t->nout = 0;
	if (dev_init(t, qemu_base(t, junk)) || t->vq.broken) {
		fail(t, "recovery failed", 0);
		return false;
	}
	if (virtq_resubmit_pending(&t->vq) != n) {
		fail(t, "wrong number of recovered requests", virtq_resubmit_pending(&t->vq));
		return false;
	}
	for (i = 0; i < n; i++) {
		uint64_t seq;

		if (dev_pop(t, &seq) != 1 || seq != held[i].seq) {
			fail(t, "recovered request out of order", held[i].seq);
			return false;
		}
	}
	return true;
}

/*
 * Random adds, pops, out-of-order pushes and crashes, then a drain.
 * @batch: completions are filled and published in batches (virtq_fill /
 * virtq_flush), so crashes also land between the two.
 */
static void run_random(bool packed, unsigned num, unsigned steps, uint32_t seed, bool batch)
{
	struct t t;
	unsigned crashes = 0;

	t_init(&t, packed, num, num);
	srand(seed);
	for (unsigned s = 0; s < steps && !t.failed; s++) {
		unsigned r = (unsigned)rand() % 100;

		if (r < 35)
			(void)drv_add(&t, (unsigned)rand());
		else if (r < 65)
			(void)dev_pop(&t, NULL);
		else if (r < 88 && t.nout)
			(batch ? dev_fill : dev_push)(&t, (unsigned)rand() % t.nout);
		else if (r < 91)
			dev_flush(&t);
		else if (r < 96)
			drv_reap(&t);
		else if (crash_and_check(&t, (uint16_t)rand()))
			crashes++;
	}
	/* Drain: everything the driver made available completes. */
	for (unsigned round = 0; round < 4 * MAX_REQ && !t.failed; round++) {
		int ret = dev_pop(&t, NULL);

		while (t.nout)
			(batch ? dev_fill : dev_push)(&t, (unsigned)rand() % t.nout);
		dev_flush(&t);
		drv_reap(&t);
		if (ret == 0)
			break;
		if (ret < 0)
			fail(&t, "queue broke", 0);
	}
	check_all_completed(&t);
	ok(!t.failed && !t.vq.broken, "%s ring %u%s: %llu requests, %u crashes: each completed "
	   "once, recovered ones first in order", packed ? "packed" : "split", num,
	   batch ? " (batched completions)" : "", (unsigned long long)t.next_seq, crashes);
	t_fini(&t);
}

/* Pop n requests (after adding them): indirect ones (one slot) and one
 * two-descriptor chain. */
static void fill(struct t *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		int a = drv_add(t, i == 1 ? 0 : 4), p = a ? 0 : dev_pop(t, NULL);

		if (a || p != 1)
			tap_bail("fill: add %d pop %d broken %d", a, p, t->vq.broken);
	}
}

/*
 * A push torn by a crash: @published says whether the used entry reached
 * the ring. Region contents: after the push, with the final steps (mark
 * cleared, commit) undone, as the spec's order leaves them.
 */
static void test_torn_push(bool packed, bool published)
{
	struct t t;
	uint8_t *before = malloc(MEM_SIZE);
	uint64_t seq;
	unsigned held;

	t_init(&t, packed, 8, 8);
	fill(&t, 5);
	dev_push(&t, 1);
	drv_reap(&t);
	seq = t.outst[2].seq;
	memcpy(before, t.drv, MEM_SIZE);
	{
		struct out o = t.outst[2];
		uint16_t h = o.el.inflight_head;
		struct virtq_inflight_packed *rp = t.region;
		uint16_t ofh = rp->old_free_head, ou = rp->old_used_idx;
		uint8_t ow = rp->old_used_wrap_counter;

		dev_push(&t, 2);
		if (packed) {
			struct virtq_inflight_packed *r = t.region;
			uint16_t ring_slot = ou;

			/* commit not written, mark not cleared */
			r->desc[h].inflight = 1;
			r->old_free_head = ofh;
			r->old_used_idx = ou;
			r->old_used_wrap_counter = ow;
			if (!published)
				memcpy(t.drv + RING_OFF + ring_slot * 16, before + RING_OFF + ring_slot * 16, 16);
		} else {
			struct virtq_inflight_split *r = t.region;

			r->desc[o.el.id].inflight = 1;
			r->used_idx = (uint16_t)(r->used_idx - 1);
			if (!published)
				((struct vring_used *)(t.drv + DEV_OFF))->idx--;
		}
	}
	/* The driver sees the completion only if it was published. */
	drv_reap(&t);
	held = t.nout + !published;
	if (!published) {
		/* it is still held by the device, in its pop order */
		t.outst[t.nout++] = (struct out){ .seq = seq, .order = 2 };
	}
	ok(crash_and_check(&t, 3) && virtq_resubmit_pending(&t.vq) == 0,
	   "%s: push torn %s publishing: %u requests resubmitted", packed ? "packed" : "split",
	   published ? "after" : "before", held);
	while (t.nout)
		dev_push(&t, 0);
	drv_reap(&t);
	check_all_completed(&t);
	ok(!t.failed, "%s: torn push (%s): every request completed once",
	   packed ? "packed" : "split", published ? "published" : "not published");
	free(before);
	t_fini(&t);
}

/*
 * Split, a batch of three completions torn after used->idx moved: the
 * inflight marks and the recorded used index are as before the flush.
 * Recovery must count all three as done (they are in the driver's hands)
 * and resubmit only the two never completed.
 */
static void test_torn_batch(void)
{
	struct virtq_inflight_split *r;
	struct vring_used *used;
	uint64_t seq[3];
	uint16_t u0, h;
	struct t t;
	bool sane;

	t_init(&t, false, 8, 8);
	fill(&t, 5);
	used = (struct vring_used *)(t.drv + DEV_OFF);
	r = t.region;
	u0 = used->idx;
	for (int i = 0; i < 3; i++) {
		seq[i] = t.outst[0].seq;
		dev_fill(&t, 0);
	}
	sane = used->idx == u0;
	dev_flush(&t);
	ok(sane && used->idx == (uint16_t)(u0 + 3) && r->used_idx == used->idx,
	   "split batch: used->idx moves once, at the flush, by 3");
	/* undo the flush's last steps: marks set again, index not recorded */
	h = r->last_batch_head;
	for (int i = 0; i < 3; i++) {
		r->desc[h].inflight = 1;
		h = r->desc[h].next;
	}
	r->used_idx = u0;
	drv_reap(&t);
	ok(t.state[seq[0]] == 2 && t.state[seq[1]] == 2 && t.state[seq[2]] == 2,
	   "split batch: the driver saw all three completions");
	ok(crash_and_check(&t, 0) && virtq_resubmit_pending(&t.vq) == 0 && !t.failed,
	   "split batch torn after publishing: 2 requests resubmitted, the batch of 3 not");
	while (t.nout)
		dev_push(&t, 0);
	drv_reap(&t);
	check_all_completed(&t);
	ok(!t.failed, "split batch torn: every request completed once");
	t_fini(&t);
}

/* Packed: a pop torn before its commit is popped again from the ring. */
static void test_torn_pop_packed(void)
{
	struct t t;
	struct virtq_inflight_packed *r;
	uint16_t ofh;
	uint64_t seq;

	t_init(&t, true, 8, 8);
	fill(&t, 3);
	r = t.region;
	ofh = r->old_free_head;
	if (drv_add(&t, 2) || dev_pop(&t, &seq) != 1)
		tap_bail("pop");
	/* undo the commit: free_head / old_free_head as before the pop */
	r->free_head = r->old_free_head = ofh;
	t.nout--;   /* forget it: it must come back from the ring, not the area */
	ok(crash_and_check(&t, 0), "packed: torn pop: the 3 committed requests resubmitted");
	ok(dev_pop(&t, NULL) == 1 && t.outst[t.nout - 1].seq == seq && dev_pop(&t, NULL) == 0,
	   "packed: torn pop: the uncommitted chain is popped again from the ring, once");
	while (t.nout)
		dev_push(&t, 0);
	drv_reap(&t);
	ok(!t.failed && t.state[seq] == 2, "packed: torn pop: all complete");
	t_fini(&t);
}

/* ---- hostile region contents ------------------------------------------- */

typedef void (*spoil_fn)(struct t *t);

static void hostile(bool packed, const char *what, spoil_fn spoil)
{
	struct t t;
	struct iovec iov[16];
	struct virtq_elem el;
	int ret = 0;

	t_init(&t, packed, 8, 16);
	fill(&t, 4);
	dev_push(&t, 0);
	drv_reap(&t);
	spoil(&t);
	memset(&t.vq, 0, sizeof(t.vq));
	if (dev_init(&t, qemu_base(&t, 0)) == 0) {
		for (int i = 0; i < 20 && (ret = virtq_pop(&t.vq, t.mem, &el, iov, 16)) == 1; i++)
			;
	}
	ok(t.vq.broken && ret == -EIO, "%s: %s: queue broken", packed ? "packed" : "split", what);
	t_fini(&t);
}

#define RS(t) ((struct virtq_inflight_split *)(t)->region)
#define RP(t) ((struct virtq_inflight_packed *)(t)->region)

static void s_version(struct t *t) { RS(t)->version = 7; }
static void s_desc_num(struct t *t) { RS(t)->desc_num = 8; }
static void s_flag(struct t *t) { RS(t)->desc[1].inflight = 9; }
static void s_beyond(struct t *t) { RS(t)->desc[12].inflight = 1; }
static void s_batch(struct t *t) { RS(t)->used_idx = 100; }
static void s_batch_head(struct t *t)
{
	RS(t)->used_idx--;
	RS(t)->last_batch_head = 0xffff;
}
static void s_too_many(struct t *t)
{
	for (unsigned i = 0; i < 8; i++)
		RS(t)->desc[i].inflight = 1;
}

static void p_version(struct t *t) { RP(t)->version = 2; }
static void p_free_head(struct t *t) { RP(t)->free_head = RP(t)->old_free_head = 17; }
static void p_wrap(struct t *t) { RP(t)->old_used_wrap_counter = 5; }
static void p_used(struct t *t) { RP(t)->used_idx = RP(t)->old_used_idx = 8; }
static void p_loop(struct t *t)
{
	uint16_t f = RP(t)->old_free_head;

	RP(t)->desc[f].next = f;
}
static void p_num(struct t *t)
{
	for (unsigned i = 0; i < 16; i++)
		if (RP(t)->desc[i].inflight)
			RP(t)->desc[i].num = 9;
}
static void p_link(struct t *t)
{
	for (unsigned i = 0; i < 16; i++)
		if (RP(t)->desc[i].inflight && RP(t)->desc[i].num > 1)
			RP(t)->desc[i].next = 0x7777;
}
static void p_last(struct t *t)
{
	for (unsigned i = 0; i < 16; i++)
		if (RP(t)->desc[i].inflight)
			RP(t)->desc[i].last = (uint16_t)(RP(t)->desc[i].last + 1);
}
static void p_flags(struct t *t)
{
	for (unsigned i = 0; i < 16; i++)
		if (RP(t)->desc[i].inflight)
			RP(t)->desc[RP(t)->desc[i].last % 16].flags |= VRING_DESC_F_NEXT;
}
static void p_addr(struct t *t)
{
	for (unsigned i = 0; i < 16; i++)
		RP(t)->desc[i].addr = 0xdead000000000000ull;
}
static void p_flag(struct t *t) { RP(t)->desc[3].inflight = 2; }

/* Garbage counters are not detectable; they must only reorder, safely. */
static void test_garbage_counters(bool packed)
{
	struct t t;
	unsigned n = 0;

	t_init(&t, packed, 8, 8);
	fill(&t, 5);
	for (unsigned i = 0; i < 8; i++) {
		if (packed)
			RP(&t)->desc[i].counter = ~0ull - i * 77;
		else
			RS(&t)->desc[i].counter = ~0ull - i * 77;
	}
	t.nout = 0;
	memset(&t.vq, 0, sizeof(t.vq));
	if (dev_init(&t, qemu_base(&t, 0)) == 0)
		while (dev_pop(&t, NULL) == 1)
			n++;
	ok(!t.vq.broken && n == 5 && !t.failed, "%s: garbage counters: 5 requests, reordered, safe",
	   packed ? "packed" : "split");
	t_fini(&t);
}

/* A fresh area, and a clean stop: nothing to resubmit; base is used. */
static void test_fresh_and_clean(bool packed)
{
	struct t t;

	t_init(&t, packed, 8, 8);
	ok(RS(&t)->version == 1 && RS(&t)->desc_num == 8, "%s: fresh area initialised",
	   packed ? "packed" : "split");
	fill(&t, 3);
	while (t.nout)
		dev_push(&t, t.nout - 1);
	drv_reap(&t);
	ok(crash_and_check(&t, 0) && virtq_resubmit_pending(&t.vq) == 0 &&
	   dev_pop(&t, NULL) == 0, "%s: drained queue: nothing resubmitted, nothing re-popped",
	   packed ? "packed" : "split");
	fill(&t, 2);
	ok(!t.failed, "%s: new requests after a clean restart", packed ? "packed" : "split");
	t_fini(&t);
}

/*
 * A restarted vblkd recovers its rings after sandbox_enter(): the recovery
 * (sorting up to a ring's worth of requests by pop order) must make no
 * system call outside the allow-list. glibc's qsort of 1 KiB or more
 * calls sysinfo() once per process, so this runs first in main(), before
 * any large qsort, and the recovery itself in a forked, sandboxed child.
 * Every slot is held, half of them popped again after a completion, so
 * pop order and ring order differ.
 */
static void test_recover_sandboxed(bool packed, unsigned num)
{
	static uint64_t order_of[MAX_REQ];
	struct t *t = calloc(1, sizeof(*t));
	struct sandbox_opts so = { .mode = SANDBOX_ON, .required = true };
	unsigned n;
	int status;
	pid_t pid;

	if (!t)
		tap_bail("calloc");
	t_init(t, packed, num, num);
	for (unsigned i = 0; i < num; i++)
		if (drv_add(t, 4) || dev_pop(t, NULL) != 1)
			tap_bail("fill %u", i);
	/* Complete every other held request, newest first, and refill. */
	for (unsigned i = t->nout; i-- > 0;)
		if (i % 2)
			dev_push(t, i);
	drv_reap(t);
	while (drv_add(t, 4) == 0 && dev_pop(t, NULL) == 1)
		;
	n = t->nout;
	for (unsigned i = 0; i < n; i++)
		order_of[t->outst[i].seq] = t->outst[i].order;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		uint64_t seq, last = 0;
		int bad = 0;

		if (sandbox_enter(&so))
			_exit(3);
		memset(&t->vq, 0xa5, sizeof(t->vq));   /* the process is gone */
		t->vq.resubmit = NULL;
		t->nout = 0;
		if (dev_init(t, qemu_base(t, 0)) || t->vq.broken)
			_exit(4);
		if (virtq_resubmit_pending(&t->vq) != n)
			_exit(5);
		for (unsigned i = 0; i < n && !bad; i++) {
			bad = dev_pop(t, &seq) != 1 || (i && order_of[seq] <= last);
			last = order_of[seq];
		}
		_exit(bad || t->failed ? 6 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		tap_bail("fork/wait");
	if (WIFSIGNALED(status))
		diag("child killed by signal %d%s", WTERMSIG(status),
		     WTERMSIG(status) == SIGSYS ? " (SIGSYS: a call outside the filter)" : "");
	else if (WEXITSTATUS(status))
		diag("child exit %d", WEXITSTATUS(status));
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "%s ring %u: %u in-flight requests recovered in pop order under the seccomp filter",
	   packed ? "packed" : "split", num, n);
	t_fini(t);
	free(t);
}

static void test_bad_config(void)
{
	struct t t;
	uint64_t ds, as, us;
	struct virtq_config cfg;
	struct virtq vq = { 0 };

	t_init(&t, false, 8, 8);
	virtq_area_sizes(8, false, &ds, &as, &us);
	cfg = (struct virtq_config){
		.num = 8, .desc = gmem_ptr(t.mem, gpa(RING_OFF), ds),
		.driver = gmem_ptr(t.mem, gpa(DRV_OFF), as),
		.device = gmem_ptr(t.mem, gpa(DEV_OFF), us),
		.inflight = t.region, .inflight_num = 4,
	};
	ok(virtq_init(&vq, &cfg) == -EINVAL, "inflight_num < num refused");
	cfg.inflight_num = 8;
	cfg.inflight = (uint8_t *)t.region + 4;
	ok(virtq_init(&vq, &cfg) == -EINVAL, "misaligned region refused");
	ok(virtq_inflight_size(128, false) == 2112 && virtq_inflight_size(128, true) == 4160 &&
	   virtq_inflight_size(1, false) == 64,
	   "region sizes follow the spec layout, 64-byte rounded");
	t_fini(&t);
}

int main(void)
{
	static const struct { const char *what; spoil_fn fn; } split_bad[] = {
		{ "unknown version", s_version }, { "desc_num mismatch", s_desc_num },
		{ "inflight flag not 0/1", s_flag }, { "mark beyond the ring", s_beyond },
		{ "used index far off", s_batch }, { "batch head out of range", s_batch_head },
		{ "more in flight than available", s_too_many },
	}, packed_bad[] = {
		{ "unknown version", p_version }, { "free head out of range", p_free_head },
		{ "wrap counter not 0/1", p_wrap }, { "used index out of range", p_used },
		{ "free list loops", p_loop }, { "chain length beyond the ring", p_num },
		{ "chain link out of range", p_link }, { "chain end mismatch", p_last },
		{ "chain flags inconsistent", p_flags }, { "buffer outside memory", p_addr },
		{ "inflight flag not 0/1", p_flag },
	};

	/* First: no qsort of 1 KiB or more may have run in this process. */
	for (int packed = 0; packed < 2; packed++) {
		if (test_qemu_user()) {
			skip("%s ring: recovery under the seccomp filter (no seccomp() under %s)",
			     packed ? "packed" : "split", test_qemu_user());
			continue;
		}
		test_recover_sandboxed(packed, 128);
		test_recover_sandboxed(packed, 1024);
	}
	test_bad_config();
	for (int packed = 0; packed < 2; packed++) {
		test_fresh_and_clean(packed);
		test_torn_push(packed, true);
		test_torn_push(packed, false);
		test_garbage_counters(packed);
		run_random(packed, 8, 3000, 1, false);
		run_random(packed, 16, 20000, 2, false);
		run_random(packed, 4, 20000, 3, false);
	}
	run_random(true, 5, 20000, 4, false);    /* packed rings need not be a power of two */
	run_random(false, 8, 20000, 5, true);
	run_random(false, 16, 20000, 6, true);
	run_random(false, 4, 20000, 7, true);
	run_random(true, 8, 5000, 8, true);
	test_torn_batch();
	test_torn_pop_packed();
	for (size_t i = 0; i < sizeof(split_bad) / sizeof(split_bad[0]); i++)
		hostile(false, split_bad[i].what, split_bad[i].fn);
	for (size_t i = 0; i < sizeof(packed_bad) / sizeof(packed_bad[0]); i++)
		hostile(true, packed_bad[i].what, packed_bad[i].fn);
	return tap_done();
}
