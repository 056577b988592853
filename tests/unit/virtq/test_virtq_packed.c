/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the packed ring (src/virtq/virtq_packed.c and
 * virtq_drv_packed.c): the driver side is the mock guest for the device
 * side in one process. One memfd is mapped by the "driver" at one address
 * and by the device through gmem at another, so a translation mistake
 * cannot hide; in "tiny" mode guest memory is many 4 KiB regions so
 * buffers and tables cross region boundaries.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"
#include "fixture/fixture.h"
#include "common/compiler.h"
#include "common/iov.h"
#include "virtq/virtq.h"
#include "virtq/virtq_packed_event.h"

#define GPA_BASE 0x100000000ull
#define UVA_BASE 0x7e0000000000ull
#define PAGE 4096u
#define TINY_PAGES 64u             /* GMEM_MAX_REGIONS */
#define MAX_BUFS 12u
#define MAX_IOV 128u
/* A fresh queue: index 0, wrap counters 1 (what SET_VRING_BASE sends). */
#define FRESH 0x8000u

/* ---- guest memory: one memfd, two views --------------------------------- */

struct env {
	int fd;
	size_t size;
	uint8_t *drv;        /* the driver's mapping */
	struct gmem *mem;    /* the device's view */
	bool tiny;
};

static void env_init(struct env *e, size_t size, bool tiny)
{
	size_t off, step;

	memset(e, 0, sizeof(*e));
	e->tiny = tiny;
	e->size = tiny ? TINY_PAGES * PAGE : size;
	if (fixture_memfd_map("vq-packed-test", e->size, &e->fd, &e->drv))
		tap_bail("guest memory");
	step = tiny ? PAGE : e->size;
	for (off = 0; off < e->size; off += step) {
		int r = fixture_gmem_add(&e->mem, e->fd, GPA_BASE + off, UVA_BASE + off, off, step);

		if (r)
			tap_bail("gmem_add at %zu: %d", off, r);
	}
}

static void env_fini(struct env *e)
{
	gmem_put(e->mem);
	munmap(e->drv, e->size);
	close(e->fd);
}

static uint64_t gpa(size_t off)
{
	return GPA_BASE + off;
}

/* ---- a queue pair: device queue + driver over the same ring ------------- */

struct qp {
	struct env *e;
	unsigned num;
	size_t ring_off, ev_off;  /* descriptors; driver event at ev_off, device at +64 */
	struct virtq vq;
	struct virtq_drv d;
};

static size_t ring_pages(unsigned num)
{
	return (num * 16u + PAGE - 1) / PAGE + 1;
}

/* Resume both sides at @base (index | wrap << 15); ring memory zeroed. */
static int qp_init(struct qp *q, struct env *e, size_t ring_off, unsigned num, bool event_idx,
		   bool indirect, uint16_t base)
{
	struct virtq_config cfg;
	int r;

	memset(q, 0, sizeof(*q));
	q->e = e;
	q->num = num;
	q->ring_off = ring_off;
	q->ev_off = ring_off + (ring_pages(num) - 1) * PAGE;
	memset(e->drv + ring_off, 0, ring_pages(num) * PAGE);
	cfg = (struct virtq_config){
		.num = num, .packed = true, .event_idx = event_idx, .indirect = indirect,
		.desc = gmem_ptr(e->mem, gpa(ring_off), num * 16u),
		.driver = gmem_ptr(e->mem, gpa(q->ev_off), 4),
		.device = gmem_ptr(e->mem, gpa(q->ev_off + 64), 4),
		.base = base,
	};
	if (!cfg.desc || !cfg.driver || !cfg.device)
		tap_bail("ring not mapped");
	r = virtq_init(&q->vq, &cfg);
	if (r)
		return r;
	r = virtq_drv_init(&q->d, num, true, event_idx, e->drv + ring_off,
			   e->drv + q->ev_off, e->drv + q->ev_off + 64);
	if (r)
		return r;
	q->d.next_avail = q->d.last_used = base & 0x7fff;
	q->d.avail_wrap_counter = q->d.used_wrap_counter = base >> 15;
	q->d.kicked_avail = base;
	return 0;
}

static void qp_fini(struct qp *q)
{
	virtq_drv_fini(&q->d);
}

/* Write a raw descriptor as a (hostile) guest would, avail bits for @wrap. */
static void raw_desc(struct qp *q, unsigned slot, bool wrap, uint64_t addr, uint32_t len,
		     uint16_t id, uint16_t flags)
{
	struct vring_packed_desc *d = (struct vring_packed_desc *)(q->e->drv + q->ring_off) + slot;

	d->addr = htole64(addr);
	d->len = htole32(len);
	d->id = htole16(id);
	d->flags = htole16(flags | virtq_pflags_avail(wrap));
}

/* Entry @i of an indirect table at memfd offset @off (may be misaligned). */
static void raw_table(struct env *e, size_t off, unsigned i, uint64_t addr, uint32_t len,
		      uint16_t flags)
{
	struct vring_packed_desc d = {
		.addr = htole64(addr), .len = htole32(len), .flags = htole16(flags),
	};

	memcpy(e->drv + off + i * sizeof(d), &d, sizeof(d));
}

/* ---- requests with checkable contents ----------------------------------- */

/*
 * Out data starts with a header the device checks; every other out byte
 * and every in byte is a function of (seq, position).
 */
struct hdr {
	uint64_t seq;
	uint32_t in_len;
	uint16_t ndesc;
	uint16_t pad;
};

struct req {
	bool busy;
	uint64_t seq;
	unsigned nout, nin;
	struct virtq_drv_buf bufs[MAX_BUFS];
	size_t off[MAX_BUFS];   /* memfd offsets of the buffers */
	uint32_t out_len, in_len;
	bool indirect;
};

static uint8_t out_byte(uint64_t seq, size_t i)
{
	return (uint8_t)(seq * 131 + i * 7 + 1);
}

static uint8_t in_byte(uint64_t seq, size_t i)
{
	return (uint8_t)(seq * 17 + i * 13 + 5);
}

static uint32_t rng_state = 12345;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return n ? rng_state % n : 0;
}

/* Lay out @nout/@nin buffers of random sizes from @area (odd offsets, so
 * that in tiny mode they cross 4 KiB regions) and fill the out bytes. */
static void req_build(struct env *e, struct req *r, size_t area, uint64_t seq, unsigned nout,
		      unsigned nin, unsigned maxlen)
{
	size_t pos = area + 1 + rnd(64), o = 0, i;
	unsigned b;

	r->seq = seq;
	r->nout = nout;
	r->nin = nin;
	r->out_len = r->in_len = 0;
	for (b = 0; b < nout + nin; b++) {
		uint32_t len = 1 + rnd(maxlen);

		if (b == 0 && len < sizeof(struct hdr))
			len = sizeof(struct hdr) + rnd(8);
		r->off[b] = pos;
		r->bufs[b].addr = gpa(pos);
		r->bufs[b].len = len;
		pos += len + rnd(9);
		if (b < nout)
			r->out_len += len;
		else
			r->in_len += len;
	}
	for (b = 0; b < nout; b++) {
		for (i = 0; i < r->bufs[b].len; i++, o++)
			e->drv[r->off[b] + i] = out_byte(seq, o);
	}
	for (b = nout; b < nout + nin; b++)
		memset(e->drv + r->off[b], 0, r->bufs[b].len);
}

/* Put the header into the first out buffer (after req_build). */
static void req_set_hdr(struct env *e, struct req *r, uint16_t ndesc)
{
	struct hdr h = { .seq = r->seq, .in_len = r->in_len, .ndesc = ndesc };

	memcpy(e->drv + r->off[0], &h, sizeof(h));
}

struct dev_stats {
	unsigned bad;
	char first[160];
};

static void dev_fail(struct dev_stats *st, const char *what, uint64_t seq)
{
	if (!st->bad++)
		snprintf(st->first, sizeof(st->first), "%s (seq %llu)", what,
			 (unsigned long long)seq);
}

/*
 * The device's side of one request: check the out bytes through the
 * device iovecs, write the in bytes, return the used length.
 */
static uint32_t dev_serve(struct env *e, const struct virtq_elem *el, struct dev_stats *st)
{
	static uint8_t buf[MAX_BUFS * 4096];
	size_t out = iov_size(el->iov, el->out_num), in, i;
	const struct iovec *win = el->iov + el->out_num;
	struct hdr h;

	for (i = 0; i < el->out_num + el->in_num; i++) {
		uint8_t *p = el->iov[i].iov_base;

		if (p >= e->drv && p < e->drv + e->size)
			dev_fail(st, "iovec points into the driver's mapping", 0);
	}
	if (out < sizeof(h) || out > sizeof(buf)) {
		dev_fail(st, "out length", 0);
		return 0;
	}
	iov_to_buf(el->iov, el->out_num, 0, buf, out);
	memcpy(&h, buf, sizeof(h));
	for (i = sizeof(h); i < out; i++) {
		if (buf[i] != out_byte(h.seq, i)) {
			dev_fail(st, "out byte mismatch", h.seq);
			break;
		}
	}
	if (el->ndesc != h.ndesc)
		dev_fail(st, "ndesc mismatch", h.seq);
	in = iov_size(win, el->in_num);
	if (in != h.in_len)
		dev_fail(st, "in length mismatch", h.seq);
	if (in > sizeof(buf))
		return 0;
	for (i = 0; i < in; i++)
		buf[i] = in_byte(h.seq, i);
	iov_from_buf(win, el->in_num, 0, buf, in);
	return (uint32_t)in;
}

/* The driver's check of a completed request. */
static void drv_check(struct env *e, const struct req *r, uint32_t len, struct dev_stats *st)
{
	size_t o = 0, i;
	unsigned b;

	if (len != r->in_len)
		dev_fail(st, "used length mismatch", r->seq);
	for (b = r->nout; b < r->nout + r->nin; b++) {
		for (i = 0; i < r->bufs[b].len; i++, o++) {
			if (e->drv[r->off[b] + i] != in_byte(r->seq, o)) {
				dev_fail(st, "in byte mismatch", r->seq);
				return;
			}
		}
	}
}

/* ---- a whole run: driver and device in lock step, random shapes --------- */

struct run_opts {
	unsigned nreq;
	unsigned max_chain;     /* buffers per request */
	unsigned maxlen;        /* bytes per buffer */
	bool use_indirect;      /* some requests indirect (queue must allow it) */
	bool reorder;           /* complete in random order */
	size_t data_off;        /* memfd offset of the request areas */
	size_t area;            /* bytes per request area */
};

struct inflight {
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
};

/* Returns the number of requests completed and checked; stats in @st. */
static unsigned run(struct qp *q, const struct run_opts *o, struct dev_stats *st)
{
	unsigned nslots = MIN(q->num, 64u), submitted = 0, completed = 0, nin_fl = 0, i, guard = 0;
	struct req *reqs = calloc(nslots, sizeof(*reqs));
	struct inflight *fl = calloc(nslots, sizeof(*fl));

	if (!reqs || !fl)
		tap_bail("calloc");
	while (completed < o->nreq && guard++ < o->nreq * 20 + 100) {
		unsigned want = 1 + rnd(nslots), npop;

		/* driver: add up to @want requests */
		for (i = 0; i < nslots && want && submitted < o->nreq; i++) {
			struct req *r = &reqs[i];
			unsigned total, nout, nin, ndesc;
			size_t area = o->data_off + i * o->area;
			void *table = NULL;
			int ret;

			if (r->busy)
				continue;
			r->indirect = o->use_indirect && rnd(2);
			total = 1 + rnd(r->indirect ? o->max_chain : MIN(o->max_chain, q->num));
			nout = 1 + rnd(total);
			nin = total - nout;
			req_build(q->e, r, area + 16 * MAX_BUFS + 64, submitted, nout, nin,
				  o->maxlen);
			ndesc = r->indirect ? 1 : total;
			req_set_hdr(q->e, r, (uint16_t)ndesc);
			if (r->indirect)
				table = q->e->drv + area;
			ret = virtq_drv_add(&q->d, r->bufs, nout, nin, r, table, gpa(area));
			if (ret == -ENOSPC)
				break;
			if (ret) {
				dev_fail(st, "virtq_drv_add failed", submitted);
				break;
			}
			r->busy = true;
			submitted++;
			want--;
		}
		virtq_drv_kick_prepare(&q->d);

		/* device: pop a random number of chains */
		npop = rnd(nslots + 1);
		while (npop-- && nin_fl < nslots) {
			int ret = virtq_pop(&q->vq, q->e->mem, &fl[nin_fl].el, fl[nin_fl].iov,
					    MAX_IOV);

			if (ret < 0) {
				dev_fail(st, "virtq_pop error", 0);
				goto out;
			}
			if (ret == 0)
				break;
			if (fl[nin_fl].el.id >= q->num)
				dev_fail(st, "id out of range", 0);
			nin_fl++;
		}
		/* device: complete some, in random or FIFO order */
		for (i = rnd(nin_fl + 1); i > 0 && nin_fl; i--) {
			unsigned k = o->reorder ? rnd(nin_fl) : 0;
			uint32_t len = dev_serve(q->e, &fl[k].el, st);

			virtq_push(&q->vq, &fl[k].el, len);
			if (o->reorder) {
				fl[k] = fl[--nin_fl];
				fl[k].el.iov = fl[k].iov;
			} else {
				memmove(&fl[0], &fl[1], (nin_fl - 1) * sizeof(fl[0]));
				nin_fl--;
				for (k = 0; k < nin_fl; k++)
					fl[k].el.iov = fl[k].iov;
			}
		}
		virtq_needs_notify(&q->vq);
		/* driver: reap */
		for (;;) {
			uint32_t len = 0xdeadbeef;
			struct req *r = virtq_drv_get_used(&q->d, &len);

			if (!r)
				break;
			if (!r->busy)
				dev_fail(st, "token not in flight", r->seq);
			drv_check(q->e, r, len, st);
			r->busy = false;
			completed++;
		}
	}
	if (q->d.num_free != q->num)
		dev_fail(st, "driver did not get every slot back", 0);
	if (q->vq.inflight)
		dev_fail(st, "device inflight not zero", 0);
out:
	free(reqs);
	free(fl);
	return completed;
}

static void run_case(const char *name, bool tiny, unsigned num, uint16_t base,
		     struct run_opts o)
{
	struct env e;
	struct qp q;
	struct dev_stats st = { 0 };
	unsigned done;
	int r;

	env_init(&e, (ring_pages(num) + 2) * PAGE + num * o.area + PAGE, tiny);
	o.data_off = ring_pages(num) * PAGE;
	r = qp_init(&q, &e, 0, num, false, o.use_indirect, base);
	is(r, 0, "%s: init", name);
	if (r)
		goto out;
	done = run(&q, &o, &st);
	is(done, o.nreq, "%s: %u requests completed", name, o.nreq);
	ok(st.bad == 0, "%s: contents, lengths and ids check out (%u bad%s%s)", name, st.bad,
	   st.bad ? ": " : "", st.first);
	ok(!q.vq.broken, "%s: queue healthy", name);
	qp_fini(&q);
out:
	env_fini(&e);
}

/* ---- small focused tests ------------------------------------------------- */

static void test_need_event(void)
{
	/* num 7; positions (idx, wrap) */
#define P(i, w) virtq_pos(i, w)
	ok(virtq_packed_need_event(7, P(3, 1), P(3, 1), P(4, 1)), "need_event: event == old");
	ok(!virtq_packed_need_event(7, P(4, 1), P(3, 1), P(4, 1)), "need_event: event == new");
	ok(!virtq_packed_need_event(7, P(2, 1), P(3, 1), P(4, 1)), "need_event: event behind old");
	ok(virtq_packed_need_event(7, P(6, 1), P(5, 1), P(1, 0)), "need_event: across the wrap");
	ok(virtq_packed_need_event(7, P(0, 0), P(5, 1), P(1, 0)), "need_event: just after wrap");
	ok(!virtq_packed_need_event(7, P(1, 0), P(5, 1), P(1, 0)), "need_event: at new after wrap");
	ok(!virtq_packed_need_event(7, P(4, 1), P(5, 1), P(1, 0)), "need_event: before old, prev wrap");
	ok(!virtq_packed_need_event(7, P(5, 0), P(5, 1), P(1, 0)), "need_event: future slot");
	ok(virtq_packed_need_event(7, P(2, 1), P(2, 1), P(2, 0)), "need_event: a full ring moved");
	ok(!virtq_packed_need_event(7, P(2, 1), P(2, 1), P(2, 1)), "need_event: nothing moved");
	ok(virtq_packed_need_event(7, P(0, 1), P(3, 1), P(4, 0)), "need_event: more than a ring moved");
	ok(!virtq_packed_need_event(7, P(0x7fff, 1), P(3, 1), P(4, 1)), "need_event: garbage event");
	ok(virtq_packed_need_event(32768, P(32767, 0), P(32767, 0), P(0, 1)),
	   "need_event: largest ring, wrap");
#undef P
}

static void test_init(void)
{
	struct env e;
	struct qp q;

	env_init(&e, 4 * PAGE, false);
	is(qp_init(&q, &e, 0, 0, false, false, FRESH), -EINVAL, "init: size 0 refused");
	is(qp_init(&q, &e, 0, 7, false, false, 7), -EINVAL, "init: base index == num refused");
	is(qp_init(&q, &e, 0, 7, false, false, 0x8000 | 9), -EINVAL,
	   "init: base index > num refused (wrap set)");
	is(qp_init(&q, &e, 0, 7, false, false, 0x8000 | 6), 0, "init: base 6 with wrap");
	is(q.vq.last_avail_idx, 6, "init: last_avail_idx from base");
	is(q.vq.avail_wrap_counter, 1, "init: wrap from base");
	is(virtq_get_base(&q.vq), 0x8006, "init: get_base round trip");
	ok(!virtq_has_avail(&q.vq), "init: zeroed ring has nothing available (wrap 1)");
	qp_fini(&q);
	is(qp_init(&q, &e, 0, 7, false, false, 3), 0, "init: base 3 without wrap");
	ok(!virtq_has_avail(&q.vq), "init: zeroed ring has nothing available (wrap 0)");
	is(virtq_get_base(&q.vq), 3, "init: get_base round trip, wrap 0");
	qp_fini(&q);
	env_fini(&e);
}

/* One out-only request of 16 bytes at @off: added, popped, returned in @el. */
static void one_popped(struct qp *q, struct virtq_drv_buf *b, struct virtq_elem *el,
		       struct iovec *iov, void *token)
{
	if (virtq_drv_add(&q->d, b, 1, 0, token, NULL, 0) ||
	    virtq_pop(&q->vq, q->e->mem, el, iov, MAX_IOV) != 1)
		tap_bail("packed round trip");
}

/*
 * virtq_get_used_base reports the used index and wrap counter (the high
 * half of a packed GET_VRING_BASE), and virtq_set_rings moves a running
 * queue to a new mapping of the same memory (the old one is unmapped).
 */
static void test_set_rings(void)
{
	struct env e;
	struct qp q;
	struct gmem *remap = NULL;
	struct virtq_elem el, held;
	struct iovec iov[MAX_IOV], iov_held[MAX_IOV];
	struct virtq_drv_buf b = { .len = 16 };
	int tok[2];
	void *desc;
	unsigned i;

	env_init(&e, 16 * PAGE, false);
	if (qp_init(&q, &e, 0, 4, true, false, FRESH))
		tap_bail("qp_init");
	b.addr = gpa(4 * PAGE);
	is(virtq_get_used_base(&q.vq), 0x8000, "used_base: fresh ring (wrap 1)");
	for (i = 0; i < 5; i++) {
		one_popped(&q, &b, &el, iov, &tok[0]);
		virtq_push(&q.vq, &el, 0);
		if (virtq_drv_get_used(&q.d, NULL) != &tok[0])
			tap_bail("packed completion");
	}
	one_popped(&q, &b, &held, iov_held, &tok[1]);
	is(virtq_get_base(&q.vq), 2, "used_base: avail side wrapped once (index 2, wrap 0)");
	is(virtq_get_used_base(&q.vq), 1, "used_base: used side one behind (index 1, wrap 0)");

	if (fixture_gmem_add(&remap, e.fd, GPA_BASE, UVA_BASE, 0, e.size))
		tap_bail("second mapping");
	desc = gmem_ptr(remap, gpa(0), 4 * 16);
	ok(desc && desc != (void *)q.vq.pdesc, "set_rings: the new mapping is elsewhere");
	virtq_set_rings(&q.vq, desc, gmem_ptr(remap, gpa(q.ev_off), 4),
			gmem_ptr(remap, gpa(q.ev_off + 64), 4));
	ok((void *)q.vq.pdesc == desc, "set_rings: the queue uses the new areas");
	gmem_put(e.mem);   /* unmaps the old view */
	e.mem = remap;

	virtq_push(&q.vq, &held, 0);
	ok(virtq_drv_get_used(&q.d, NULL) == &tok[1], "set_rings: in-flight request completes");
	one_popped(&q, &b, &el, iov, &tok[0]);
	virtq_push(&q.vq, &el, 0);
	ok(virtq_drv_get_used(&q.d, NULL) == &tok[0], "set_rings: a new request after the remap");
	is(virtq_get_used_base(&q.vq), 3, "used_base: follows the pushes");
	is(virtq_get_base(&q.vq), 3, "used_base: equals base when idle");
	qp_fini(&q);
	env_fini(&e);
}

/* One request of fixed shape through both sides, checked step by step. */
static void test_basic(bool tiny)
{
	struct env e;
	struct qp q;
	struct req r;
	struct virtq_elem el, el2;
	struct iovec iov[MAX_IOV], iov2[MAX_IOV];
	struct dev_stats st = { 0 };
	uint32_t len, used = 0;
	const char *m = tiny ? "tiny" : "flat";
	unsigned i;

	env_init(&e, 16 * PAGE, tiny);
	qp_init(&q, &e, 0, 8, false, false, FRESH);
	/* buffers of 3000 bytes at odd offsets cross 4 KiB regions */
	memset(&r, 0, sizeof(r));
	r.seq = 42;
	r.nout = 2;
	r.nin = 2;
	r.off[0] = 2 * PAGE + 100;  r.bufs[0].len = 24;
	r.off[1] = 2 * PAGE + 4000; r.bufs[1].len = 3000;
	r.off[2] = 4 * PAGE + 4090; r.bufs[2].len = 3000;
	r.off[3] = 7 * PAGE + 3;    r.bufs[3].len = 1;
	for (i = 0; i < 4; i++)
		r.bufs[i].addr = gpa(r.off[i]);
	r.out_len = 3024;
	r.in_len = 3001;
	for (i = 0; i < 24; i++)
		e.drv[r.off[0] + i] = out_byte(42, i);
	for (i = 0; i < 3000; i++)
		e.drv[r.off[1] + i] = out_byte(42, 24 + i);
	req_set_hdr(&e, &r, 4);

	ok(!virtq_has_avail(&q.vq), "%s: nothing available before add", m);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 0, "%s: pop on empty ring", m);
	is(virtq_drv_add(&q.d, r.bufs, 2, 2, &r, NULL, 0), 0, "%s: add", m);
	ok(virtq_drv_kick_prepare(&q.d), "%s: kick wanted (notifications enabled)", m);
	ok(virtq_has_avail(&q.vq), "%s: available after add", m);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "%s: pop", m);
	is(el.ndesc, 4, "%s: ndesc", m);
	is(el.out_num, tiny ? 3 : 2, "%s: out iovecs (split at a region boundary in tiny)", m);
	is(el.in_num, tiny ? 3 : 2, "%s: in iovecs", m);
	is(iov_size(el.iov, el.out_num), 3024, "%s: out bytes", m);
	is(iov_size(el.iov + el.out_num, el.in_num), 3001, "%s: in bytes", m);
	is(q.vq.inflight, 1, "%s: inflight", m);
	is(q.vq.last_avail_idx, 4, "%s: last_avail_idx advanced by the chain", m);
	ok(el.iov[0].iov_base != e.drv + r.off[0], "%s: device address differs from driver's", m);
	len = dev_serve(&e, &el, &st);
	ok(st.bad == 0, "%s: device saw the right bytes (%s)", m, st.first);
	is(virtq_pop(&q.vq, e.mem, &el2, iov2, MAX_IOV), 0, "%s: nothing more", m);
	ok(virtq_drv_get_used(&q.d, &used) == NULL, "%s: nothing used before push", m);
	virtq_push(&q.vq, &el, len);
	is(q.vq.inflight, 0, "%s: inflight back to 0", m);
	ok(virtq_needs_notify(&q.vq), "%s: notify (enabled)", m);
	ok(virtq_drv_get_used(&q.d, &used) == &r, "%s: token back", m);
	is(used, 3001, "%s: used length", m);
	drv_check(&e, &r, used, &st);
	ok(st.bad == 0, "%s: driver sees the device's bytes (%s)", m, st.first);
	is(q.d.num_free, 8, "%s: all slots free again", m);
	ok(virtq_drv_get_used(&q.d, &used) == NULL, "%s: nothing more used", m);

	/* a push with len 0 is reported as 0 (WRITE clear in the used desc) */
	is(virtq_drv_add(&q.d, r.bufs, 1, 0, &r, NULL, 0), 0, "%s: add out-only", m);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "%s: pop out-only", m);
	virtq_push(&q.vq, &el, 0);
	used = 77;
	ok(virtq_drv_get_used(&q.d, &used) == &r && used == 0, "%s: len 0 completion", m);
	qp_fini(&q);
	env_fini(&e);
}

static void test_indirect_basic(bool tiny, bool cross)
{
	struct env e;
	struct qp q;
	struct req r;
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
	struct dev_stats st = { 0 };
	const char *m = cross ? "indirect table across regions" :
			tiny ? "indirect tiny" : "indirect flat";
	size_t toff = cross ? 3 * PAGE - 48 : 3 * PAGE;
	uint32_t len;

	env_init(&e, 32 * PAGE, tiny);
	qp_init(&q, &e, 0, 4, false, true, FRESH);
	memset(&r, 0, sizeof(r));
	req_build(&e, &r, 5 * PAGE, 9, 3, 5, 2500);
	req_set_hdr(&e, &r, 1);
	is(virtq_drv_add(&q.d, r.bufs, 3, 5, &r, e.drv + toff, gpa(toff)), 0, "%s: add", m);
	is(q.d.num_free, 3, "%s: one slot used", m);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "%s: pop", m);
	is(el.ndesc, 1, "%s: ndesc 1", m);
	is(iov_size(el.iov, el.out_num), r.out_len, "%s: out bytes", m);
	is(iov_size(el.iov + el.out_num, el.in_num), r.in_len, "%s: in bytes", m);
	if (tiny)
		ok(el.out_num + el.in_num > 8, "%s: buffers split at regions (%u iovecs)", m,
		   el.out_num + el.in_num);
	len = dev_serve(&e, &el, &st);
	virtq_push(&q.vq, &el, len);
	ok(virtq_drv_get_used(&q.d, &len) == &r, "%s: token back", m);
	drv_check(&e, &r, len, &st);
	ok(st.bad == 0, "%s: contents (%s)", m, st.first);
	ok(!q.vq.broken, "%s: healthy", m);
	qp_fini(&q);
	env_fini(&e);
}

/* Completions in reverse order, chains of different lengths. */
static void test_out_of_order(void)
{
	struct env e;
	struct qp q;
	struct req r[4];
	struct virtq_elem el[4];
	struct iovec iov[4][MAX_IOV];
	struct dev_stats st = { 0 };
	unsigned shape[4] = { 3, 1, 2, 1 }, i;
	uint16_t ids[4];
	uint32_t len;
	bool distinct = true, order = true;

	env_init(&e, 64 * PAGE, false);
	qp_init(&q, &e, 0, 7, false, false, FRESH);
	for (int round = 0; round < 5; round++) {
		for (i = 0; i < 4; i++) {
			memset(&r[i], 0, sizeof(r[i]));
			req_build(&e, &r[i], (8 + 8 * i) * PAGE, round * 4 + i, 1, shape[i] - 1, 300);
			req_set_hdr(&e, &r[i], (uint16_t)shape[i]);
			if (virtq_drv_add(&q.d, r[i].bufs, 1, shape[i] - 1, &r[i], NULL, 0))
				break;
		}
		is(i, 4, "ooo round %d: four chains added (7 slots)", round);
		is(q.d.num_free, 0, "ooo round %d: ring full", round);
		ok(virtq_drv_add(&q.d, r[0].bufs, 1, 0, &r[0], NULL, 0) == -ENOSPC,
		   "ooo round %d: full ring refuses", round);
		for (i = 0; i < 4; i++) {
			is(virtq_pop(&q.vq, e.mem, &el[i], iov[i], MAX_IOV), 1, "ooo round %d: pop %u",
			   round, i);
			ids[i] = el[i].id;
		}
		for (i = 0; i < 4; i++)
			for (unsigned j = 0; j < i; j++)
				distinct &= ids[i] != ids[j];
		/* complete in reverse */
		for (i = 4; i-- > 0;)
			virtq_push(&q.vq, &el[i], dev_serve(&e, &el[i], &st));
		for (i = 4; i-- > 0;) {
			struct req *got = virtq_drv_get_used(&q.d, &len);

			order &= got == &r[i];
			if (got)
				drv_check(&e, got, len, &st);
		}
		ok(virtq_drv_get_used(&q.d, &len) == NULL, "ooo round %d: nothing extra", round);
		is(q.d.num_free, 7, "ooo round %d: all slots back", round);
	}
	ok(distinct, "ooo: ids of in-flight chains distinct");
	ok(order, "ooo: completions arrive in completion (reverse) order");
	ok(st.bad == 0, "ooo: contents (%s)", st.first);
	qp_fini(&q);
	env_fini(&e);
}

/* Device-side kick suppression (device_event) and driver-side interrupt
 * suppression (driver_event), with and without EVENT_IDX. */
static void test_notify(bool event_idx)
{
	struct env e;
	struct qp q;
	struct req r[8];
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
	struct dev_stats st = { 0 };
	const char *m = event_idx ? "event_idx" : "flags";
	uint32_t len;
	unsigned i;

	env_init(&e, 64 * PAGE, false);
	qp_init(&q, &e, 0, 5, event_idx, false, FRESH);
	for (i = 0; i < 8; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		req_build(&e, &r[i], (4 + 2 * i) * PAGE, i, 1, 0, 64);
		req_set_hdr(&e, &r[i], 1);
	}

	/* kicks */
	ok(!virtq_enable_notify(&q.vq), "%s: enable_notify, ring empty", m);
	virtq_drv_add(&q.d, r[0].bufs, 1, 0, &r[0], NULL, 0);
	ok(virtq_drv_kick_prepare(&q.d), "%s: first add kicks", m);
	virtq_drv_add(&q.d, r[1].bufs, 1, 0, &r[1], NULL, 0);
	is(virtq_drv_kick_prepare(&q.d), !event_idx,
	   "%s: second add without device re-arming %s", m,
	   event_idx ? "does not kick (event passed)" : "kicks (ENABLE)");
	virtq_disable_notify(&q.vq);
	virtq_drv_add(&q.d, r[2].bufs, 1, 0, &r[2], NULL, 0);
	ok(!virtq_drv_kick_prepare(&q.d), "%s: disabled: no kick", m);
	/* the lost-wakeup race: buffer raced in while notifications were off */
	ok(virtq_enable_notify(&q.vq), "%s: enable_notify sees the raced-in buffer", m);
	for (i = 0; i < 3; i++) {
		is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "%s: pop %u", m, i);
		virtq_push(&q.vq, &el, dev_serve(&e, &el, &st));
	}
	ok(!virtq_enable_notify(&q.vq), "%s: enable_notify after draining: false", m);
	for (i = 0; i < 3; i++)
		ok(virtq_drv_get_used(&q.d, &len) == &r[i], "%s: used %u", m, i);
	/* slots 3,4 then wrap to 0: the event index sits at slot 3 */
	virtq_drv_add(&q.d, r[3].bufs, 1, 0, &r[3], NULL, 0);
	virtq_drv_add(&q.d, r[4].bufs, 1, 0, &r[4], NULL, 0);
	virtq_drv_add(&q.d, r[5].bufs, 1, 0, &r[5], NULL, 0);
	ok(virtq_drv_kick_prepare(&q.d), "%s: batch across the wrap kicks", m);
	is(q.d.avail_wrap_counter, 0, "%s: driver wrapped", m);
	/* interrupts */
	virtq_drv_disable_cb(&q.d);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "%s: pop (cb disabled)", m);
	virtq_push(&q.vq, &el, dev_serve(&e, &el, &st));
	ok(!virtq_needs_notify(&q.vq), "%s: cb disabled: no interrupt", m);
	virtq_drv_enable_cb(&q.d);
	/* the driver re-checks after enabling and finds r[3] */
	ok(virtq_drv_get_used(&q.d, &len) == &r[3], "%s: recheck after enable_cb finds it", m);
	virtq_drv_enable_cb(&q.d);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "%s: pop r4", m);
	virtq_push(&q.vq, &el, dev_serve(&e, &el, &st));
	ok(virtq_needs_notify(&q.vq), "%s: cb enabled: interrupt", m);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "%s: pop r5 (wrapped slot 0)", m);
	virtq_push(&q.vq, &el, dev_serve(&e, &el, &st));
	is(virtq_needs_notify(&q.vq), !event_idx,
	   "%s: second completion without driver re-arming %s", m,
	   event_idx ? "is suppressed" : "interrupts (ENABLE)");
	ok(virtq_drv_get_used(&q.d, &len) == &r[4], "%s: used r4", m);
	ok(virtq_drv_get_used(&q.d, &len) == &r[5], "%s: used r5", m);
	is(q.vq.used_wrap_counter, 0, "%s: device used wrap toggled", m);

	if (event_idx) {
		/* the driver asks for an interrupt two completions ahead */
		virtq_pevent_write(q.d.driver_event,
				   virtq_pos((uint16_t)((q.d.last_used + 1) % 5), q.d.used_wrap_counter),
				   VRING_PACKED_EVENT_FLAG_DESC);
		virtq_drv_add(&q.d, r[6].bufs, 1, 0, &r[6], NULL, 0);
		virtq_drv_add(&q.d, r[7].bufs, 1, 0, &r[7], NULL, 0);
		is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "%s: pop r6", m);
		virtq_push(&q.vq, &el, 0);
		ok(!virtq_needs_notify(&q.vq), "%s: delayed event: not yet", m);
		is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "%s: pop r7", m);
		virtq_push(&q.vq, &el, 0);
		ok(virtq_needs_notify(&q.vq), "%s: delayed event: now", m);
		ok(virtq_drv_get_used(&q.d, &len) == &r[6], "%s: used r6", m);
		ok(virtq_drv_get_used(&q.d, &len) == &r[7], "%s: used r7", m);
	}
	ok(st.bad == 0, "%s: contents (%s)", m, st.first);
	qp_fini(&q);
	env_fini(&e);
}

/* After (re)start the device does not know what was signalled: the first
 * check always notifies, later ones follow the driver's event. */
static void test_notify_first(void)
{
	struct env e;
	struct qp q;
	struct req r;
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
	uint32_t len;
	unsigned i;

	env_init(&e, 16 * PAGE, false);
	qp_init(&q, &e, 0, 4, true, false, FRESH);
	memset(&r, 0, sizeof(r));
	req_build(&e, &r, 4 * PAGE, 0, 1, 0, 64);
	virtq_pevent_write(q.d.driver_event, virtq_pos(3, 1), VRING_PACKED_EVENT_FLAG_DESC);
	for (i = 0; i < 3; i++)
		virtq_drv_add(&q.d, r.bufs, 1, 0, &r, NULL, 0);
	virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV);
	virtq_push(&q.vq, &el, 0);
	ok(virtq_needs_notify(&q.vq), "first notify after start is always sent");
	virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV);
	virtq_push(&q.vq, &el, 0);
	ok(!virtq_needs_notify(&q.vq), "then the event (slot 3) is honoured: slot 1 no");
	virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV);
	virtq_push(&q.vq, &el, 0);
	ok(!virtq_needs_notify(&q.vq), "slot 2 no");
	virtq_drv_add(&q.d, r.bufs, 1, 0, &r, NULL, 0);
	virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV);
	virtq_push(&q.vq, &el, 0);
	ok(virtq_needs_notify(&q.vq), "slot 3 yes");
	for (i = 0; i < 4; i++)
		ok(virtq_drv_get_used(&q.d, &len) == &r, "first notify: used %u", i);
	qp_fini(&q);
	env_fini(&e);
}

/* Event-idx kick suppression over many wraps of a 3-entry ring: exactly
 * one kick per batch when the device re-arms after each drain. */
static void test_notify_wraps(void)
{
	struct env e;
	struct qp q;
	struct req r;
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
	unsigned round, kicks_ok = 0, irq_ok = 0, rounds = 1000;
	uint32_t len;

	env_init(&e, 16 * PAGE, false);
	qp_init(&q, &e, 0, 3, true, false, 0x8001);
	memset(&r, 0, sizeof(r));
	req_build(&e, &r, 4 * PAGE, 0, 1, 0, 64);
	virtq_needs_notify(&q.vq);
	for (round = 0; round < rounds; round++) {
		unsigned n = 1 + round % 3, i, k = 0, irq = 0;

		virtq_enable_notify(&q.vq);
		virtq_drv_enable_cb(&q.d);
		for (i = 0; i < n; i++) {
			virtq_drv_add(&q.d, r.bufs, 1, 0, &r, NULL, 0);
			k += virtq_drv_kick_prepare(&q.d);
		}
		for (i = 0; i < n; i++) {
			if (virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV) != 1)
				break;
			virtq_push(&q.vq, &el, 0);
			irq += virtq_needs_notify(&q.vq);
		}
		kicks_ok += k == 1;
		irq_ok += irq == 1;
		while (virtq_drv_get_used(&q.d, &len))
			;
	}
	is(kicks_ok, rounds, "event_idx wraps: exactly one kick per batch");
	is(irq_ok, rounds, "event_idx wraps: exactly one interrupt per batch");
	ok(!q.vq.broken && q.d.num_free == 3, "event_idx wraps: healthy");
	qp_fini(&q);
	env_fini(&e);
}

/* ---- two threads: real concurrency, notifications with sleeping --------- */

/*
 * The device runs in its own thread and sleeps on a "kick" eventfd when the
 * ring is empty; the driver sleeps on a "call" eventfd when it waits for
 * completions. A wrong barrier or event-suppression decision shows up as a
 * lost wakeup (a 5 s poll timeout, reported as a failure) or as corrupt
 * data.
 */
struct mt {
	struct qp *q;
	int kick_fd, call_fd;
	atomic_bool stop;
	struct dev_stats dev_st;
	unsigned served, lost_wakeups;
};

static bool wait_fd(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, 5000) != 1)
		return false;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return false;
	return true;
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		tap_bail("eventfd write");
}

static void *mt_device(void *arg)
{
	struct mt *t = arg;
	struct qp *q = t->q;
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];

	virtq_disable_notify(&q->vq);
	while (!atomic_load(&t->stop)) {
		int r = virtq_pop(&q->vq, q->e->mem, &el, iov, MAX_IOV);

		if (r < 0) {
			dev_fail(&t->dev_st, "device thread: pop error", 0);
			break;
		}
		if (r == 0) {
			if (virtq_enable_notify(&q->vq)) {
				virtq_disable_notify(&q->vq);
				continue;
			}
			if (!wait_fd(t->kick_fd) && !atomic_load(&t->stop)) {
				t->lost_wakeups++;
				break;
			}
			virtq_disable_notify(&q->vq);
			continue;
		}
		virtq_push(&q->vq, &el, dev_serve(q->e, &el, &t->dev_st));
		t->served++;
		if (virtq_needs_notify(&q->vq))
			signal_fd(t->call_fd);
	}
	return NULL;
}

static void test_threads(unsigned num, bool event_idx, unsigned nreq)
{
	struct run_opts o = { .max_chain = 4, .maxlen = 300, .area = PAGE };
	const char *m = event_idx ? "event_idx" : "flags";
	struct dev_stats st = { 0 };
	unsigned submitted = 0, completed = 0, i, lost = 0, kicks = 0, sleeps = 0;
	struct req *reqs = calloc(num, sizeof(*reqs));
	struct env e;
	struct qp q;
	struct mt t;
	pthread_t th;

	env_init(&e, (ring_pages(num) + 1 + num) * PAGE, false);
	o.data_off = ring_pages(num) * PAGE;
	if (!reqs || qp_init(&q, &e, 0, num, event_idx, false, FRESH))
		tap_bail("threads: init");
	memset(&t, 0, sizeof(t));
	t.q = &q;
	t.kick_fd = eventfd(0, EFD_CLOEXEC);
	t.call_fd = eventfd(0, EFD_CLOEXEC);
	atomic_init(&t.stop, false);
	if (t.kick_fd < 0 || t.call_fd < 0 || pthread_create(&th, NULL, mt_device, &t))
		tap_bail("threads: setup");

	virtq_drv_disable_cb(&q.d);
	while (completed < nreq) {
		bool added = false, reaped = false;
		struct req *r;
		uint32_t len;

		for (i = 0; i < num && submitted < nreq; i++) {
			unsigned total, nout;

			if (reqs[i].busy)
				continue;
			total = 1 + rnd(MIN(o.max_chain, num));
			nout = 1 + rnd(total);
			req_build(&e, &reqs[i], o.data_off + i * o.area, submitted, nout,
				  total - nout, o.maxlen);
			req_set_hdr(&e, &reqs[i], (uint16_t)total);
			if (virtq_drv_add(&q.d, reqs[i].bufs, nout, total - nout, &reqs[i], NULL, 0))
				break;
			reqs[i].busy = true;
			submitted++;
			added = true;
		}
		if (added && virtq_drv_kick_prepare(&q.d)) {
			signal_fd(t.kick_fd);
			kicks++;
		}
		while ((r = virtq_drv_get_used(&q.d, &len))) {
			drv_check(&e, r, len, &st);
			r->busy = false;
			completed++;
			reaped = true;
		}
		if (reaped || added)
			continue;
		/* nothing to do: sleep until the device calls */
		virtq_drv_enable_cb(&q.d);
		if (!(r = virtq_drv_get_used(&q.d, &len))) {
			sleeps++;
			if (!wait_fd(t.call_fd)) {
				lost++;
				break;
			}
		} else {
			drv_check(&e, r, len, &st);
			r->busy = false;
			completed++;
		}
		virtq_drv_disable_cb(&q.d);
	}
	atomic_store(&t.stop, true);
	signal_fd(t.kick_fd);
	pthread_join(th, NULL);

	is(completed, nreq, "threads %s num %u: all requests completed", m, num);
	is(lost + t.lost_wakeups, 0, "threads %s num %u: no lost wakeups", m, num);
	ok(st.bad == 0 && t.dev_st.bad == 0, "threads %s num %u: contents (%s%s)", m, num,
	   st.first, t.dev_st.first);
	diag("threads %s num %u: %u kicks, %u driver sleeps for %u requests", m, num, kicks,
	     sleeps, nreq);
	close(t.kick_fd);
	close(t.call_fd);
	qp_fini(&q);
	env_fini(&e);
	free(reqs);
}

/* ---- hostile guests ------------------------------------------------------ */

typedef void (*hostile_cb)(struct qp *q, struct env *e);
#define DATA (16 * PAGE)

static void h_chain_too_long(struct qp *q, struct env *e)
{
	for (unsigned i = 0; i < q->num; i++)
		raw_desc(q, i, 1, gpa(DATA), 16, 0, VRING_DESC_F_NEXT);
}

/* Zero-length descriptors add no iovec: only the length check stops this. */
static void h_chain_too_long_empty(struct qp *q, struct env *e)
{
	for (unsigned i = 0; i < q->num; i++)
		raw_desc(q, i, 1, gpa(DATA), 0, 0, VRING_DESC_F_NEXT);
}

static void h_unmapped(struct qp *q, struct env *e)
{
	raw_desc(q, 0, 1, gpa(e->size) + 4096, 16, 0, 0);
}

static void h_unmapped_low(struct qp *q, struct env *e)
{
	raw_desc(q, 0, 1, 0x1000, 16, 0, 0);
}

static void h_straddle_end(struct qp *q, struct env *e)
{
	raw_desc(q, 0, 1, gpa(e->size) - 8, 16, 0, 0);
}

static void h_overflow(struct qp *q, struct env *e)
{
	raw_desc(q, 0, 1, UINT64_MAX - 10, 100, 0, 0);
}

static void h_read_after_write(struct qp *q, struct env *e)
{
	raw_desc(q, 0, 1, gpa(DATA), 16, 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT);
	raw_desc(q, 1, 1, gpa(DATA + 64), 16, 0, 0);
}

static void h_nested_indirect(struct qp *q, struct env *e)
{
	raw_table(e, DATA, 0, gpa(DATA + 256), 16, 0);
	raw_table(e, DATA, 1, gpa(DATA + 512), 32, VRING_DESC_F_INDIRECT);
	raw_desc(q, 0, 1, gpa(DATA), 32, 0, VRING_DESC_F_INDIRECT);
}

static void h_indirect_next(struct qp *q, struct env *e)
{
	raw_table(e, DATA, 0, gpa(DATA + 256), 16, 0);
	raw_desc(q, 0, 1, gpa(DATA), 16, 0, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT);
	raw_desc(q, 1, 1, gpa(DATA + 512), 16, 0, 0);
}

static void h_indirect_in_chain(struct qp *q, struct env *e)
{
	raw_table(e, DATA, 0, gpa(DATA + 256), 16, 0);
	raw_desc(q, 0, 1, gpa(DATA + 512), 16, 0, VRING_DESC_F_NEXT);
	raw_desc(q, 1, 1, gpa(DATA), 16, 0, VRING_DESC_F_INDIRECT);
}

static void h_indirect_len(struct qp *q, struct env *e, uint32_t len)
{
	raw_table(e, DATA, 0, gpa(DATA + 256), 16, 0);
	raw_table(e, DATA, 1, gpa(DATA + 512), 16, VRING_DESC_F_WRITE);
	raw_desc(q, 0, 1, gpa(DATA), len, 0, VRING_DESC_F_INDIRECT);
}

static void h_indirect_len0(struct qp *q, struct env *e)
{
	h_indirect_len(q, e, 0);
}

static void h_indirect_len15(struct qp *q, struct env *e)
{
	h_indirect_len(q, e, 15);
}

static void h_indirect_len17(struct qp *q, struct env *e)
{
	h_indirect_len(q, e, 17);
}

static void h_indirect_huge(struct qp *q, struct env *e)
{
	h_indirect_len(q, e, (VIRTQ_MAX_SIZE + 1) * 16);
}

static void h_indirect_unmapped(struct qp *q, struct env *e)
{
	raw_desc(q, 0, 1, gpa(e->size) - 16, 32, 0, VRING_DESC_F_INDIRECT);
}

static void h_indirect_bad_entry(struct qp *q, struct env *e)
{
	raw_table(e, DATA, 0, gpa(DATA + 256), 16, 0);
	raw_table(e, DATA, 1, UINT64_MAX - 4, 16, VRING_DESC_F_WRITE);
	raw_desc(q, 0, 1, gpa(DATA), 32, 0, VRING_DESC_F_INDIRECT);
}

static void h_indirect_read_after_write(struct qp *q, struct env *e)
{
	raw_table(e, DATA, 0, gpa(DATA + 256), 16, VRING_DESC_F_WRITE);
	raw_table(e, DATA, 1, gpa(DATA + 512), 16, 0);
	raw_desc(q, 0, 1, gpa(DATA), 32, 0, VRING_DESC_F_INDIRECT);
}

static void h_indirect_valid(struct qp *q, struct env *e)
{
	raw_table(e, DATA, 0, gpa(DATA + 256), 16, 0);
	raw_table(e, DATA, 1, gpa(DATA + 512), 16, VRING_DESC_F_WRITE);
	raw_desc(q, 0, 1, gpa(DATA), 32, 0, VRING_DESC_F_INDIRECT);
}

static void h_too_many_iov(struct qp *q, struct env *e)
{
	/* the caller passes max_iov 2 */
	raw_desc(q, 0, 1, gpa(DATA), 16, 0, VRING_DESC_F_NEXT);
	raw_desc(q, 1, 1, gpa(DATA + 64), 16, 0, VRING_DESC_F_NEXT);
	raw_desc(q, 2, 1, gpa(DATA + 128), 16, 0, 0);
}

static void h_too_many_iov_regions(struct qp *q, struct env *e)
{
	/* one buffer over three 4 KiB regions; max_iov 2 (tiny env) */
	raw_desc(q, 0, 1, gpa(DATA + 100), 2 * PAGE, 0, 0);
}

static void h_too_many_iov_indirect(struct qp *q, struct env *e)
{
	for (unsigned i = 0; i < 3; i++)
		raw_table(e, DATA, i, gpa(DATA + 256 + 64 * i), 16, 0);
	raw_desc(q, 0, 1, gpa(DATA), 48, 0, VRING_DESC_F_INDIRECT);
}

/* Resume in the middle of wrap 0: a chain running off the ring end. */
static void h_chain_too_long_wrapped(struct qp *q, struct env *e)
{
	/* device starts at slot 2, wrap 0: slots 2,3 wrap 0, then 0,1 wrap 1 */
	raw_desc(q, 2, 0, gpa(DATA), 16, 0, VRING_DESC_F_NEXT);
	raw_desc(q, 3, 0, gpa(DATA), 16, 0, VRING_DESC_F_NEXT);
	raw_desc(q, 0, 1, gpa(DATA), 16, 0, VRING_DESC_F_NEXT);
	raw_desc(q, 1, 1, gpa(DATA), 16, 0, VRING_DESC_F_NEXT);
}

struct hostile {
	const char *name;
	hostile_cb setup;
	bool indirect;      /* negotiated */
	bool tiny;
	unsigned max_iov;
	uint16_t base;      /* 0: FRESH */
};

/* One healthy request on a queue: 1 if it round-trips. */
static int healthy_once(struct qp *q, struct env *e)
{
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
	struct dev_stats st = { 0 };
	struct req r;
	uint32_t len;

	memset(&r, 0, sizeof(r));
	req_build(e, &r, 24 * PAGE, 1000, 1, 1, 200);
	req_set_hdr(e, &r, 2);
	if (virtq_drv_add(&q->d, r.bufs, 1, 1, &r, NULL, 0) ||
	    virtq_pop(&q->vq, e->mem, &el, iov, MAX_IOV) != 1)
		return 0;
	virtq_push(&q->vq, &el, dev_serve(e, &el, &st));
	if (virtq_drv_get_used(&q->d, &len) != &r)
		return 0;
	drv_check(e, &r, len, &st);
	return st.bad == 0;
}

static void test_hostile(const struct hostile *h)
{
	struct env e;
	struct qp bad, good;
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
	unsigned max_iov = h->max_iov ? h->max_iov : MAX_IOV;

	env_init(&e, 32 * PAGE, h->tiny);
	uint16_t base = h->base ? h->base : FRESH;

	if (qp_init(&bad, &e, 0, 4, false, h->indirect, base) ||
	    qp_init(&good, &e, 4 * PAGE, 4, false, true, FRESH))
		tap_bail("hostile %s: init", h->name);
	h->setup(&bad, &e);
	ok(virtq_has_avail(&bad.vq), "hostile %s: chain is available", h->name);
	is(virtq_pop(&bad.vq, e.mem, &el, iov, max_iov), -EIO, "hostile %s: pop -EIO", h->name);
	is(virtq_pop(&bad.vq, e.mem, &el, iov, max_iov), -EIO, "hostile %s: stays broken",
	   h->name);
	ok(bad.vq.broken && bad.vq.inflight == 0, "hostile %s: broken, nothing in flight",
	   h->name);
	is(virtq_get_base(&bad.vq), base, "hostile %s: did not advance", h->name);
	ok(healthy_once(&good, &e), "hostile %s: another queue still works", h->name);
	qp_fini(&bad);
	qp_fini(&good);
	env_fini(&e);
}

/* The limits just inside the hostile cases are accepted. */
static void test_limits(void)
{
	struct env e;
	struct qp q;
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
	unsigned i;

	env_init(&e, 32 * PAGE, false);
	qp_init(&q, &e, 0, 4, false, true, FRESH);
	for (i = 0; i < 4; i++)
		raw_desc(&q, 3 - i, 1, gpa(DATA + 64 * i), 16, 5,
			 i ? VRING_DESC_F_NEXT : 0);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "limits: chain of exactly num");
	ok(el.ndesc == 4 && el.id == 5 && el.out_num == 4, "limits: ndesc 4, id from last");
	virtq_push(&q.vq, &el, 0);
	/* id only in the last descriptor of a chain */
	raw_desc(&q, 0, 0, gpa(DATA), 16, 9, VRING_DESC_F_NEXT);
	raw_desc(&q, 1, 0, gpa(DATA + 64), 16, 2, VRING_DESC_F_WRITE);
	is(virtq_pop(&q.vq, e.mem, &el, iov, 2), 1, "limits: max_iov exactly enough");
	is(el.id, 2, "limits: buffer id from the last descriptor");
	ok(el.out_num == 1 && el.in_num == 1, "limits: one out, one in");
	virtq_push(&q.vq, &el, 16);
	/* zero-length buffers give no iovec */
	raw_desc(&q, 2, 0, gpa(DATA), 0, 1, VRING_DESC_F_NEXT);
	raw_desc(&q, 3, 0, gpa(DATA), 8, 1, 0);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "limits: zero-length descriptor");
	ok(el.out_num == 1 && el.ndesc == 2, "limits: zero-length gives no iovec");
	virtq_push(&q.vq, &el, 0);
	/* a misaligned (but mapped) indirect table is bounced, not refused */
	raw_table(&e, DATA + 4, 0, gpa(DATA + 256), 16, 0);
	raw_table(&e, DATA + 4, 1, gpa(DATA + 512), 32, VRING_DESC_F_WRITE);
	raw_desc(&q, 0, 1, gpa(DATA + 4), 32, 3, VRING_DESC_F_INDIRECT);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "limits: misaligned indirect table");
	ok(el.out_num == 1 && el.in_num == 1 && el.iov[1].iov_len == 32,
	   "limits: misaligned table entries read");
	virtq_push(&q.vq, &el, 0);
	/* NEXT inside an indirect table is ignored: entries are sequential */
	raw_table(&e, DATA, 0, gpa(DATA + 256), 16, VRING_DESC_F_NEXT);
	raw_table(&e, DATA, 1, gpa(DATA + 512), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT);
	raw_desc(&q, 1, 1, gpa(DATA), 32, 3, VRING_DESC_F_INDIRECT);
	is(virtq_pop(&q.vq, e.mem, &el, iov, MAX_IOV), 1, "limits: NEXT in table ignored");
	ok(el.out_num == 1 && el.in_num == 1, "limits: both table entries taken");
	virtq_push(&q.vq, &el, 0);
	ok(!q.vq.broken, "limits: healthy");
	qp_fini(&q);
	env_fini(&e);
}

/* The largest ring: resume near the end with wrap clear, run across it. */
static void test_big_ring(void)
{
	struct run_opts o = { .nreq = 300, .max_chain = 3, .maxlen = 100, .reorder = true,
			      .area = 1024 };
	struct env e;
	struct qp q;
	struct dev_stats st = { 0 };
	size_t rp = ring_pages(32768);

	env_init(&e, (rp + 2) * PAGE + 64 * o.area, false);
	o.data_off = rp * PAGE;
	is(qp_init(&q, &e, 0, 32768, true, false, 32700), 0, "big ring: init at 32700");
	is(run(&q, &o, &st), 300, "big ring: requests across the wrap");
	ok(st.bad == 0, "big ring: contents (%s)", st.first);
	ok(q.vq.avail_wrap_counter == 1 && q.vq.last_avail_idx < 32700,
	   "big ring: device wrapped (%u)", q.vq.last_avail_idx);
	qp_fini(&q);
	env_fini(&e);
}

int main(void)
{
	static const struct hostile hostile[] = {
		{ .name = "chain longer than ring", .setup = h_chain_too_long },
		{ .name = "chain longer than ring across wrap", .setup = h_chain_too_long_wrapped, .base = 2 },
		{ .name = "chain longer than ring, zero-length", .setup = h_chain_too_long_empty },
		{ .name = "address outside memory", .setup = h_unmapped },
		{ .name = "address below memory", .setup = h_unmapped_low },
		{ .name = "buffer past the end of memory", .setup = h_straddle_end, .tiny = true },
		{ .name = "addr+len overflow", .setup = h_overflow },
		{ .name = "readable after writable", .setup = h_read_after_write },
		{ .name = "nested indirect", .setup = h_nested_indirect, .indirect = true },
		{ .name = "indirect+NEXT", .setup = h_indirect_next, .indirect = true },
		{ .name = "indirect inside a chain", .setup = h_indirect_in_chain, .indirect = true },
		{ .name = "indirect len 0", .setup = h_indirect_len0, .indirect = true },
		{ .name = "indirect len 15", .setup = h_indirect_len15, .indirect = true },
		{ .name = "indirect len 17", .setup = h_indirect_len17, .indirect = true },
		{ .name = "indirect too big", .setup = h_indirect_huge, .indirect = true },
		{ .name = "indirect table unmapped", .setup = h_indirect_unmapped, .indirect = true, .tiny = true },
		{ .name = "indirect entry overflow", .setup = h_indirect_bad_entry, .indirect = true },
		{ .name = "indirect readable after writable", .setup = h_indirect_read_after_write, .indirect = true },
		{ .name = "indirect not negotiated", .setup = h_indirect_valid },
		{ .name = "too many iovecs", .setup = h_too_many_iov, .max_iov = 2 },
		{ .name = "too many iovecs (regions)", .setup = h_too_many_iov_regions, .tiny = true, .max_iov = 2 },
		{ .name = "too many iovecs (indirect)", .setup = h_too_many_iov_indirect, .indirect = true,
		  .max_iov = 2 },
	};
	static const unsigned sizes[] = { 1, 2, 7, 8, 5 };
	unsigned i;

	test_need_event();
	test_init();
	test_basic(false);
	test_basic(true);
	test_indirect_basic(false, false);
	test_indirect_basic(true, false);
	test_indirect_basic(true, true);
	test_out_of_order();
	test_notify(false);
	test_notify(true);
	test_notify_wraps();
	test_notify_first();
	test_limits();
	test_set_rings();

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		char name[64];
		struct run_opts o = { .nreq = 3000, .max_chain = 6, .maxlen = 700,
				      .use_indirect = true, .reorder = i % 2 == 0, .area = 6 * PAGE };

		snprintf(name, sizeof(name), "wraps num %u %s", sizes[i],
			 o.reorder ? "reordered" : "in order");
		run_case(name, false, sizes[i], FRESH, o);
	}
	{
		struct run_opts o = { .nreq = 3000, .max_chain = 5, .maxlen = 1500,
				      .use_indirect = true, .reorder = true, .area = 2 * PAGE };
		/* tiny: 64 regions of 4 KiB; ring 7 = 2 pages + 7 areas of 2 pages */
		run_case("tiny regions num 7", true, 7, FRESH, o);
		o.use_indirect = false;
		run_case("tiny regions num 7 resume wrap 1", true, 7, 0x8000 | 5, o);
		run_case("flat num 7 resume wrap 0", false, 7, 4, o);
		o.use_indirect = true;
		o.max_chain = 12;
		o.area = 5 * PAGE;
		run_case("flat num 8 resume wrap 1, long indirect", false, 8, 0x8000 | 7, o);
	}
	test_big_ring();
	test_threads(7, true, 30000);
	test_threads(7, false, 30000);
	test_threads(8, true, 30000);

	for (i = 0; i < ARRAY_SIZE(hostile); i++)
		test_hostile(&hostile[i]);
	return tap_done();
}
