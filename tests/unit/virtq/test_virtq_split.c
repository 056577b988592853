/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue, driver against device in one process: round trips with
 * direct and indirect chains over flat and tiny-region memory, out-of-order
 * completion, 16-bit index wrap, resume from a saved base, and notification
 * suppression both ways with and without EVENT_IDX.
 */
#include <errno.h>
#include <stdlib.h>

#include "split_env.h"

#define MAX_IOV 64u
#define MAX_BUFS 6u

struct req {
	uint32_t no;
	unsigned nout, nin, slot;
	bool indirect;
	uint64_t off[MAX_BUFS];
	uint32_t len[MAX_BUFS];
	uint32_t out_total, in_total;
};

static uint8_t pat_out(uint32_t no, uint32_t k)
{
	return (uint8_t)(no * 13 + k * 7 + (k >> 8));
}

static uint8_t pat_in(uint32_t no, uint32_t k)
{
	return (uint8_t)~(no * 29 + k * 11 + (k >> 9));
}

/* Build request no: buffers in guest memory, out bytes filled (the first
 * four bytes are the request number, like a request header). */
static void req_make(struct split_env *e, struct req *r, uint32_t no, unsigned nout,
		     unsigned nin, uint32_t maxlen, bool indirect)
{
	unsigned b;
	uint32_t k = 0;

	memset(r, 0, sizeof(*r));
	r->no = no;
	r->nout = nout;
	r->nin = nin;
	r->indirect = indirect;
	r->slot = no % e->num;
	for (b = 0; b < nout + nin; b++) {
		uint32_t len = (uint32_t)(split_rand(e) % maxlen) + 1;

		if (b == 0 && len < 4)
			len = 4;
		if (b >= nout && split_rand(e) % 8 == 0)
			len = 0;       /* zero-length writable buffer: allowed */
		r->len[b] = len;
		r->off[b] = split_alloc(e, len);
		if (b < nout)
			r->out_total += len;
		else
			r->in_total += len;
	}
	/* Fill the out buffers as one concatenated byte stream. */
	for (b = 0; b < nout; b++) {
		uint8_t *p = e->drv + r->off[b];
		uint32_t i;

		for (i = 0; i < r->len[b]; i++, k++)
			p[i] = k < 4 ? (uint8_t)(no >> (8 * k)) : pat_out(no, k);
	}
	for (b = nout; b < nout + nin; b++)
		memset(e->drv + r->off[b], 0, r->len[b]);
}

static int req_submit(struct split_env *e, unsigned q, struct req *r)
{
	struct virtq_drv_buf bufs[MAX_BUFS];
	unsigned b;

	for (b = 0; b < r->nout + r->nin; b++)
		bufs[b] = (struct virtq_drv_buf){ split_gpa(e, r->off[b]), r->len[b] };
	if (r->indirect)
		return virtq_drv_add(&e->dq[q], bufs, r->nout, r->nin, r,
				     e->drv + split_table_off(r->slot),
				     split_gpa(e, split_table_off(r->slot)));
	return virtq_drv_add(&e->dq[q], bufs, r->nout, r->nin, r, NULL, 0);
}

static unsigned req_pieces(const struct split_env *e, const struct req *r, bool in)
{
	unsigned b, n = 0;

	for (b = in ? r->nout : 0; b < (in ? r->nout + r->nin : r->nout); b++)
		n += split_pieces(e, r->off[b], r->len[b]);
	return n;
}

/*
 * Device side of one popped element: find the request by its header,
 * check iovec shape and every out byte, write the in bytes.
 * Returns NULL (and counts the failure) on any mismatch.
 */
struct dev_stats {
	unsigned bad_shape, bad_data, split_seen, bad_view;
};

static struct req *dev_serve(struct split_env *e, struct req *reqs, unsigned nreqs,
			     const struct virtq_elem *el, struct dev_stats *st, uint32_t *written)
{
	uint8_t buf[MAX_BUFS * 8192];
	struct req *r;
	uint32_t no = 0, k;
	size_t got;

	got = iov_to_buf(el->iov, el->out_num, 0, buf, sizeof(buf));
	if (got < 4) {
		st->bad_data++;
		return NULL;
	}
	memcpy(&no, buf, 4);
	if (no >= nreqs) {
		st->bad_data++;
		return NULL;
	}
	r = &reqs[no];
	if (el->out_num != req_pieces(e, r, false) || el->in_num != req_pieces(e, r, true) ||
	    got != r->out_total ||
	    iov_size(el->iov + el->out_num, el->in_num) != r->in_total ||
	    el->ndesc != (r->indirect ? 1 : r->nout + r->nin))
		st->bad_shape++;
	if (el->out_num + el->in_num > r->nout + r->nin)
		st->split_seen++;
	if (!split_iov_not_driver_view(e, el->iov, el->out_num + el->in_num))
		st->bad_view++;
	for (k = 4; k < got; k++)
		if (buf[k] != pat_out(no, k)) {
			st->bad_data++;
			break;
		}
	for (k = 0; k < r->in_total; k++)
		buf[k] = pat_in(no, k);
	*written = (uint32_t)iov_from_buf(el->iov + el->out_num, el->in_num, 0, buf, r->in_total);
	return r;
}

static bool drv_check_in(struct split_env *e, const struct req *r)
{
	uint32_t k = 0;
	unsigned b;

	for (b = r->nout; b < r->nout + r->nin; b++) {
		const uint8_t *p = e->drv + r->off[b];
		uint32_t i;

		for (i = 0; i < r->len[b]; i++, k++)
			if (p[i] != pat_in(r->no, k))
				return false;
	}
	return true;
}

/*
 * Batches of random requests: the driver adds a batch, the device pops it
 * all, pushes in a shuffled order, and the driver reaps in push order.
 */
static void test_roundtrip(enum split_mode mode, unsigned num, bool indirect, bool event_idx,
			   unsigned rounds)
{
	const char *mname = mode == SPLIT_FLAT ? "flat" : "tiny";
	unsigned batch_max = mode == SPLIT_FLAT ? num : MIN(num, 8u);
	uint32_t maxlen = mode == SPLIT_TINY ? 4000 : num > 64 ? 2000 : 6000;
	unsigned nreqs = rounds * batch_max, done = 0, round;
	struct req *reqs = calloc(nreqs, sizeof(*reqs));
	struct virtq_elem *els = calloc(num, sizeof(*els));
	struct iovec (*iovs)[MAX_IOV] = calloc(num, sizeof(*iovs));
	unsigned bad_add = 0, bad_pop = 0, bad_order = 0, bad_len = 0, bad_in = 0;
	unsigned bad_free = 0, indirect_used = 0, popped_total = 0, full_seen = 0;
	struct dev_stats st = { 0 };
	struct split_env e;
	uint32_t no = 0;

	split_env_init(&e, mode, num, event_idx, indirect, 0);
	for (round = 0; round < rounds; round++) {
		unsigned n = 1 + (unsigned)(split_rand(&e) % batch_max), i, npop = 0;
		unsigned order[1024];
		struct elem_len { struct req *r; uint32_t len; } pushed[1024];

		split_reset_bufs(&e);
		for (i = 0; i < n; i++, no++) {
			unsigned maxb = mode == SPLIT_FLAT ? 3 : 2;
			unsigned nout = 1 + (unsigned)(split_rand(&e) % maxb);
			unsigned nin = (unsigned)(split_rand(&e) % (maxb + 1));
			bool ind = indirect && (split_rand(&e) & 1);

			req_make(&e, &reqs[no], no, nout, nin, maxlen, ind);
			if (e.dq[0].num_free < (ind ? 1 : nout + nin)) {
				/* Ring full: add must say so and change nothing. */
				if (req_submit(&e, 0, &reqs[no]) != -ENOSPC)
					bad_add++;
				full_seen++;
				break;
			}
			indirect_used += ind;
			if (req_submit(&e, 0, &reqs[no]))
				bad_add++;
		}
		n = i;
		for (;;) {
			int ret = virtq_pop(&e.vq[0], e.mem, &els[npop], iovs[npop], MAX_IOV);

			if (ret == 0)
				break;
			if (ret != 1 || npop == num) {
				bad_pop++;
				break;
			}
			npop++;
		}
		if (npop != n)
			bad_pop++;
		if (e.vq[0].inflight != npop)
			bad_pop++;
		popped_total += npop;
		/* Shuffle the completion order. */
		for (i = 0; i < npop; i++)
			order[i] = i;
		for (i = npop; i > 1; i--) {
			unsigned j = (unsigned)(split_rand(&e) % i), t = order[i - 1];

			order[i - 1] = order[j];
			order[j] = t;
		}
		for (i = 0; i < npop; i++) {
			uint32_t w = 0;
			struct req *r = dev_serve(&e, reqs, nreqs, &els[order[i]], &st, &w);

			pushed[i].r = r;
			pushed[i].len = w;
			virtq_push(&e.vq[0], &els[order[i]], w);
		}
		for (i = 0; i < npop; i++) {
			uint32_t len = 0;
			struct req *r = virtq_drv_get_used(&e.dq[0], &len);

			if (r != pushed[i].r)
				bad_order++;
			else if (len != r->in_total)
				bad_len++;
			else if (!drv_check_in(&e, r))
				bad_in++;
		}
		if (virtq_drv_get_used(&e.dq[0], NULL) != NULL)
			bad_order++;
		if (e.dq[0].num_free != num || e.vq[0].inflight != 0)
			bad_free++;
		done += npop;
	}
	diag("%s num=%u indirect=%d event_idx=%d: %u requests (%u indirect), ring full %u times",
	     mname, num, indirect, event_idx, done, indirect_used, full_seen);
	is(bad_add, 0, "%s/%u%s: every add accepted", mname, num, indirect ? "/ind" : "");
	is(bad_pop, 0, "%s/%u%s: pop returns each batch exactly", mname, num,
	   indirect ? "/ind" : "");
	is(st.bad_shape, 0, "%s/%u%s: iovec counts match region pieces, ndesc right", mname, num,
	   indirect ? "/ind" : "");
	is(st.bad_data, 0, "%s/%u%s: device reads every out byte correctly", mname, num,
	   indirect ? "/ind" : "");
	is(st.bad_view, 0, "%s/%u%s: device iovecs come from gmem, not the driver's mapping",
	   mname, num, indirect ? "/ind" : "");
	is(bad_order, 0, "%s/%u%s: driver reaps tokens in (shuffled) push order", mname, num,
	   indirect ? "/ind" : "");
	is(bad_len + bad_in, 0, "%s/%u%s: used len and written bytes reach the driver", mname,
	   num, indirect ? "/ind" : "");
	is(bad_free, 0, "%s/%u%s: all descriptors freed, nothing in flight after each batch",
	   mname, num, indirect ? "/ind" : "");
	if (mode == SPLIT_TINY)
		ok(st.split_seen > 0, "tiny%s: some buffers were split across regions (%u)",
		   indirect ? "/ind" : "", st.split_seen);
	is(e.vq[0].last_avail_idx, (uint16_t)popped_total, "%s/%u: last_avail_idx advanced",
	   mname, num);
	split_env_fini(&e);
	free(iovs);
	free(els);
	free(reqs);
}

/* One-request round trip on queue q; true if everything matched. */
static bool one_trip(struct split_env *e, unsigned q, uint32_t no, bool indirect)
{
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
	struct dev_stats st = { 0 };
	struct req r;
	uint32_t w = 0, len = 0;
	int ret;

	split_reset_bufs(e);
	(void)no;
	req_make(e, &r, 0, 1, 1, 512, indirect);
	if (req_submit(e, q, &r))
		return false;
	ret = virtq_pop(&e->vq[q], e->mem, &el, iov, MAX_IOV);
	if (ret != 1 || dev_serve(e, &r, 1, &el, &st, &w) != &r || st.bad_data || st.bad_shape)
		return false;
	virtq_push(&e->vq[q], &el, w);
	return virtq_drv_get_used(&e->dq[q], &len) == &r && len == r.in_total &&
	       virtq_pop(&e->vq[q], e->mem, &el, iov, MAX_IOV) == 0;
}

static void test_wrap(void)
{
	struct split_env e;
	struct vring_used *used;
	unsigned i, bad = 0;

	/* Start just below 65536 and cross it. */
	split_env_init(&e, SPLIT_FLAT, 8, true, true, 65530);
	for (i = 0; i < 20; i++)
		if (!one_trip(&e, 0, i, i & 1))
			bad++;
	used = (void *)(e.drv + split_ring_off(0, 2));
	is(bad, 0, "base 65530: 20 round trips across the 16-bit wrap");
	is(used->idx, (uint16_t)(65530 + 20), "used->idx wrapped to 14");
	is(e.vq[0].last_avail_idx, 14, "last_avail_idx wrapped to 14");
	is(virtq_get_base(&e.vq[0]), 14, "get_base reports the wrapped index");
	split_env_fini(&e);

	/* More than 65536 requests through a small ring. */
	split_env_init(&e, SPLIT_FLAT, 4, false, false, 0);
	for (i = 0, bad = 0; i < 70000; i++)
		if (!one_trip(&e, 0, i, false))
			bad++;
	is(bad, 0, "70000 round trips on a 4-entry ring");
	is(e.vq[0].used_idx, (uint16_t)70000, "used_idx is 70000 mod 65536");
	split_env_fini(&e);
}

static void add_simple(struct split_env *e, unsigned q, struct req *r, uint32_t no)
{
	req_make(e, r, no, 1, 1, 64, false);
	if (req_submit(e, q, r))
		tap_bail("add failed");
}

static int pop1(struct split_env *e, unsigned q, struct virtq_elem *el, struct iovec *iov)
{
	return virtq_pop(&e->vq[q], e->mem, el, iov, MAX_IOV);
}

static void test_event_idx(void)
{
	struct split_env e;
	struct virtq *vq;
	struct virtq_drv *dq;
	struct req r[16];
	struct virtq_elem el[16];
	struct iovec iov[16][MAX_IOV];
	uint16_t *used_event;
	unsigned i, hits = 0, hit_at = 0;

	split_env_init(&e, SPLIT_FLAT, 16, true, false, 0);
	vq = &e.vq[0];
	dq = &e.dq[0];
	used_event = (uint16_t *)&dq->avail->ring[16];

	/* Available buffer notifications (driver -> device). */
	add_simple(&e, 0, &r[0], 0);
	ok(virtq_drv_kick_prepare(dq), "ev: first add kicks (avail_event 0)");
	ok(virtq_enable_notify(vq), "ev: enable_notify reports the pending buffer");
	is(pop1(&e, 0, &el[0], iov[0]), 1, "ev: pop A");
	virtq_disable_notify(vq);
	add_simple(&e, 0, &r[1], 1);
	ok(!virtq_drv_kick_prepare(dq), "ev: no kick while the device disabled notifications");
	ok(virtq_has_avail(vq), "ev: has_avail sees B");
	ok(virtq_enable_notify(vq), "ev: enable_notify returns true: B raced in");
	is(pop1(&e, 0, &el[1], iov[1]), 1, "ev: pop B");
	ok(!virtq_enable_notify(vq), "ev: enable_notify false when nothing is pending");
	ok(!virtq_has_avail(vq), "ev: has_avail false when nothing is pending");
	add_simple(&e, 0, &r[2], 2);
	ok(virtq_drv_kick_prepare(dq), "ev: add after enable kicks");
	add_simple(&e, 0, &r[3], 3);
	ok(!virtq_drv_kick_prepare(dq), "ev: second add before the device re-arms: no kick");
	is(pop1(&e, 0, &el[2], iov[2]), 1, "ev: pop C");
	is(pop1(&e, 0, &el[3], iov[3]), 1, "ev: pop D");

	/* Used buffer notifications (device -> driver). */
	virtq_push(vq, &el[0], 0);
	ok(virtq_needs_notify(vq), "ev: first needs_notify is true (nothing signalled yet)");
	virtq_drv_disable_cb(dq);
	virtq_push(vq, &el[1], 0);
	ok(!virtq_needs_notify(vq), "ev: no interrupt while the driver disabled callbacks");
	ok(virtq_drv_get_used(dq, NULL) == &r[0] && virtq_drv_get_used(dq, NULL) == &r[1],
	   "ev: driver reaps A and B");
	virtq_drv_enable_cb(dq);
	is(*used_event, 2, "ev: enable_cb publishes used_event = last_used");
	virtq_push(vq, &el[2], 0);
	ok(virtq_needs_notify(vq), "ev: interrupt after the driver re-enabled");
	ok(virtq_drv_get_used(dq, NULL) == &r[2], "ev: driver reaps C");
	/* Driver wants an interrupt only once entry 8 is used. */
	WRITE_ONCE(*used_event, 8);
	virtq_push(vq, &el[3], 0);
	ok(!virtq_needs_notify(vq), "ev: used_event far ahead: no interrupt");
	virtq_drv_get_used(dq, NULL);
	for (i = 4; i < 12; i++) {
		add_simple(&e, 0, &r[i], i);
		if (pop1(&e, 0, &el[i], iov[i]) != 1)
			tap_bail("pop");
		virtq_push(vq, &el[i], 0);
		if (virtq_needs_notify(vq)) {
			hits++;
			hit_at = vq->used_idx;
		}
		virtq_drv_get_used(dq, NULL);
	}
	is(hits, 1, "ev: exactly one interrupt while used idx went 4 -> 12");
	is(hit_at, 9, "ev: ... when used idx passed used_event 8");
	split_env_fini(&e);
}

static void test_flags_notify(void)
{
	struct split_env e;
	struct virtq *vq;
	struct virtq_drv *dq;
	struct req r[4];
	struct virtq_elem el[4];
	struct iovec iov[4][MAX_IOV];

	split_env_init(&e, SPLIT_FLAT, 8, false, false, 0);
	vq = &e.vq[0];
	dq = &e.dq[0];
	add_simple(&e, 0, &r[0], 0);
	ok(virtq_drv_kick_prepare(dq), "flags: kick with notifications enabled");
	virtq_disable_notify(vq);
	is(dq->used->flags & VRING_USED_F_NO_NOTIFY, VRING_USED_F_NO_NOTIFY,
	   "flags: disable_notify sets NO_NOTIFY");
	add_simple(&e, 0, &r[1], 1);
	ok(!virtq_drv_kick_prepare(dq), "flags: no kick while NO_NOTIFY");
	ok(virtq_enable_notify(vq), "flags: enable_notify reports pending buffers");
	is(dq->used->flags, 0, "flags: enable_notify clears NO_NOTIFY");
	add_simple(&e, 0, &r[2], 2);
	ok(virtq_drv_kick_prepare(dq), "flags: kick again after enable");
	is(pop1(&e, 0, &el[0], iov[0]), 1, "flags: pop");
	is(pop1(&e, 0, &el[1], iov[1]), 1, "flags: pop");
	is(pop1(&e, 0, &el[2], iov[2]), 1, "flags: pop");
	ok(!virtq_enable_notify(vq), "flags: enable_notify false when drained");
	virtq_drv_disable_cb(dq);
	virtq_push(vq, &el[0], 0);
	ok(!virtq_needs_notify(vq), "flags: no interrupt with NO_INTERRUPT");
	virtq_drv_enable_cb(dq);
	virtq_push(vq, &el[1], 0);
	ok(virtq_needs_notify(vq), "flags: interrupt without NO_INTERRUPT");
	split_env_fini(&e);
}

static void test_resume(void)
{
	struct split_env e;
	struct req r[5];
	struct virtq_elem el[4];
	struct iovec iov[4][MAX_IOV];
	uint32_t no = 0;
	unsigned i;

	split_env_init(&e, SPLIT_FLAT, 16, false, true, 0);
	for (i = 0; i < 5; i++)
		add_simple(&e, 0, &r[i], i);
	for (i = 0; i < 3; i++)
		pop1(&e, 0, &el[i], iov[i]);
	is(e.vq[0].inflight, 3, "resume: three in flight");
	virtq_push(&e.vq[0], &el[1], 0);
	is(e.vq[0].inflight, 2, "resume: push decrements inflight");
	is(virtq_get_base(&e.vq[0]), 3, "resume: base is the next avail entry");
	is(split_dev_init(&e, 0, virtq_get_base(&e.vq[0]), true), 0, "resume: re-init at base");
	is(e.vq[0].used_idx, 1, "resume: used index taken from the used ring");
	ok(!e.vq[0].signalled_used_valid, "resume: signalled_used not valid after init");
	is(pop1(&e, 0, &el[3], iov[3]), 1, "resume: pop after re-init");
	iov_to_buf(el[3].iov, el[3].out_num, 0, &no, 4);
	is(no, 3, "resume: the fourth request comes next");
	virtq_push(&e.vq[0], &el[3], 0);
	ok(virtq_drv_get_used(&e.dq[0], NULL) == &r[1] &&
	   virtq_drv_get_used(&e.dq[0], NULL) == &r[3], "resume: driver sees both completions");
	split_env_fini(&e);
}

/*
 * The guest memory is mapped anew (a new memory table) while requests are
 * in flight: after virtq_set_rings the queue works through the new
 * mapping only (the old one is unmapped, so a stale pointer would fault),
 * keeping its indices.
 */
static void test_set_rings(void)
{
	struct split_env e;
	struct req r[4];
	struct virtq_elem el[4];
	struct iovec iov[4][MAX_IOV];
	struct gmem *remap = NULL;
	uint64_t ds, as, us;
	void *desc, *avail, *used;
	uint32_t no = 0;
	unsigned i;

	split_env_init(&e, SPLIT_FLAT, 16, true, false, 0xfffe);
	for (i = 0; i < 3; i++)
		add_simple(&e, 0, &r[i], i);
	for (i = 0; i < 2; i++)
		is(pop1(&e, 0, &el[i], iov[i]), 1, "set_rings: pop %u before the remap", i);
	virtq_push(&e.vq[0], &el[0], 0);
	is(virtq_get_base(&e.vq[0]), 0, "set_rings: base past the 16-bit wrap");
	is(virtq_get_used_base(&e.vq[0]), 0xffff, "set_rings: used base one behind (one in flight)");

	if (fixture_gmem_add(&remap, e.fd, split_gpa(&e, 0), SPLIT_UVA_BASE, 0, e.size))
		tap_bail("second mapping");
	virtq_area_sizes(e.num, false, &ds, &as, &us);
	desc = gmem_ptr(remap, split_gpa(&e, split_ring_off(0, 0)), ds);
	avail = gmem_ptr(remap, split_gpa(&e, split_ring_off(0, 1)), as);
	used = gmem_ptr(remap, split_gpa(&e, split_ring_off(0, 2)), us);
	ok(desc && desc != (void *)e.vq[0].desc, "set_rings: the new mapping is elsewhere");
	virtq_set_rings(&e.vq[0], desc, avail, used);
	ok(e.vq[0].desc == desc && (void *)e.vq[0].avail == avail &&
	   (void *)e.vq[0].used == used, "set_rings: the queue uses the new areas");
	gmem_put(e.mem);   /* unmaps the old view */
	e.mem = remap;

	is(pop1(&e, 0, &el[2], iov[2]), 1, "set_rings: pop after the remap");
	iov_to_buf(el[2].iov, el[2].out_num, 0, &no, 4);
	is(no, 2, "set_rings: the third request comes next");
	virtq_push(&e.vq[0], &el[1], 0);
	virtq_push(&e.vq[0], &el[2], 0);
	add_simple(&e, 0, &r[3], 3);
	is(pop1(&e, 0, &el[3], iov[3]), 1, "set_rings: a new request after the remap");
	virtq_push(&e.vq[0], &el[3], 0);
	ok(virtq_drv_get_used(&e.dq[0], NULL) == &r[0] &&
	   virtq_drv_get_used(&e.dq[0], NULL) == &r[1] &&
	   virtq_drv_get_used(&e.dq[0], NULL) == &r[2] &&
	   virtq_drv_get_used(&e.dq[0], NULL) == &r[3], "set_rings: the driver sees all four");
	is(virtq_get_used_base(&e.vq[0]), 2, "set_rings: used base after all completed");
	is(virtq_get_base(&e.vq[0]), 2, "set_rings: base equals used base when idle");
	split_env_fini(&e);
}

static void test_init_errors(void)
{
	struct split_env e;
	struct virtq vq;
	struct virtq_config cfg;
	uint64_t d, a, u;

	virtq_area_sizes(256, false, &d, &a, &u);
	ok(d == 4096 && a == 6 + 512 && u == 6 + 2048, "area sizes for a split ring of 256");
	split_env_init(&e, SPLIT_FLAT, 8, false, false, 0);
	cfg = (struct virtq_config){ .num = 8, .desc = e.drv, .driver = e.drv + 0x4000,
				     .device = e.drv + 0x6000 };
	is(virtq_init(&vq, &cfg), 0, "init with valid areas");
	cfg.num = 12;
	is(virtq_init(&vq, &cfg), -EINVAL, "split size not a power of two -> EINVAL");
	cfg.num = 0;
	is(virtq_init(&vq, &cfg), -EINVAL, "size 0 -> EINVAL");
	cfg.num = 65536;
	is(virtq_init(&vq, &cfg), -EINVAL, "size above 32768 -> EINVAL");
	cfg.num = 8;
	cfg.desc = e.drv + 8;
	is(virtq_init(&vq, &cfg), -EINVAL, "misaligned descriptor table -> EINVAL");
	cfg.desc = e.drv;
	cfg.device = e.drv + 0x6002;
	is(virtq_init(&vq, &cfg), -EINVAL, "misaligned used ring -> EINVAL");
	cfg.device = NULL;
	is(virtq_init(&vq, &cfg), -EINVAL, "NULL area -> EINVAL");
	split_env_fini(&e);
}

/* Zero-length descriptors and a direct descriptor followed by an indirect one. */
static void test_chain_shapes(void)
{
	struct split_env e;
	struct vring_desc *d, *t;
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
	uint64_t g;

	split_env_init(&e, SPLIT_FLAT, 16, false, true, 0);
	g = split_gpa(&e, e.bufs_off);
	d = split_raw_desc(&e, 0);
	split_raw_set(&d[0], g, 16, VRING_DESC_F_NEXT, 1);
	split_raw_set(&d[1], g + 16, 0, VRING_DESC_F_NEXT, 2);
	split_raw_set(&d[2], g + 32, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
	split_raw_set(&d[3], 0xdead0000, 0, VRING_DESC_F_WRITE, 0);
	split_raw_publish(&e, 0, 0);
	is(pop1(&e, 0, &el, iov), 1, "shapes: chain with zero-length descriptors pops");
	ok(el.out_num == 1 && el.in_num == 1 && el.ndesc == 4 && el.id == 0 &&
	   iov[0].iov_len == 16 && iov[1].iov_len == 8,
	   "shapes: zero-length descriptors give no iovec (even unmapped)");

	t = (struct vring_desc *)(e.drv + split_table_off(3));
	split_raw_set(&t[0], g + 100, 20, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	split_raw_set(&t[1], g + 200, 30, VRING_DESC_F_WRITE, 0);
	split_raw_set(&d[5], g, 10, VRING_DESC_F_NEXT, 9);
	split_raw_set(&d[9], SPLIT_GPA_BASE + split_table_off(3), 32, VRING_DESC_F_INDIRECT, 0);
	split_raw_publish(&e, 0, 5);
	is(pop1(&e, 0, &el, iov), 1, "shapes: direct descriptor then indirect table pops");
	ok(el.out_num == 1 && el.in_num == 2 && el.ndesc == 2 && el.id == 5 &&
	   iov[1].iov_len == 20 && iov[2].iov_len == 30 &&
	   iov[2].iov_base == gmem_ptr(e.mem, g + 200, 30),
	   "shapes: mixed chain translated in order");

	/* Misaligned indirect table: copied, not rejected. */
	{
		struct vring_desc one;

		split_raw_set(&one, g + 300, 40, VRING_DESC_F_WRITE, 0);
		memcpy(e.drv + split_table_off(4) + 4, &one, sizeof(one));
	}
	split_raw_set(&d[6], SPLIT_GPA_BASE + split_table_off(4) + 4, 16, VRING_DESC_F_INDIRECT,
		      0);
	split_raw_publish(&e, 0, 6);
	is(pop1(&e, 0, &el, iov), 1, "shapes: misaligned indirect table pops (bounced)");
	ok(el.in_num == 1 && iov[0].iov_len == 40 && iov[0].iov_base == gmem_ptr(e.mem, g + 300, 40),
	   "shapes: misaligned table read correctly");
	ok(!e.vq[0].broken, "shapes: queue healthy");

	/* A chain using every descriptor of the ring is legal. */
	{
		unsigned i;

		for (i = 0; i < 16; i++)
			split_raw_set(&d[i], g + 8 * i, 8, i < 15 ? VRING_DESC_F_NEXT : 0,
				      (uint16_t)((i + 7) % 16));
		/* next = i + 7 mod 16 visits all 16 entries; fix up the flags so
		 * the chain starting at 9 ends at its 16th entry. */
		for (i = 0; i < 16; i++)
			d[(9 + 7 * i) % 16].flags = i < 15 ? VRING_DESC_F_NEXT : 0;
		split_raw_publish(&e, 0, 9);
		is(pop1(&e, 0, &el, iov), 1, "shapes: chain of exactly num descriptors pops");
		is(el.out_num, 16, "shapes: ... with 16 iovecs");
		is(el.ndesc, 16, "shapes: ... and ndesc 16");
	}
	split_env_fini(&e);
}

int main(void)
{
	test_init_errors();
	test_roundtrip(SPLIT_FLAT, 64, false, false, 200);
	test_roundtrip(SPLIT_FLAT, 64, true, true, 200);
	test_roundtrip(SPLIT_FLAT, 256, true, false, 40);
	test_roundtrip(SPLIT_TINY, 16, false, false, 300);
	test_roundtrip(SPLIT_TINY, 64, true, true, 300);
	test_chain_shapes();
	test_wrap();
	test_event_idx();
	test_flags_notify();
	test_resume();
	test_set_rings();
	return tap_done();
}
