/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue against a hostile driver: each malformed ring or chain on
 * a fresh queue must make pop return -EIO, keep the queue broken, and leave
 * the neighbouring queue in the same memory working.
 */
#include <errno.h>

#include "split_env.h"

#define NUM 16u
#define MAX_IOV 64u

typedef void setup_cb(struct split_env *e);

static struct vring_desc *D(struct split_env *e)
{
	return split_raw_desc(e, 0);
}

static uint64_t G(struct split_env *e, uint64_t k)
{
	return split_gpa(e, e->bufs_off) + k;
}

/* Indirect table slot s: host pointer and guest address. */
static struct vring_desc *T(struct split_env *e, unsigned s)
{
	return (struct vring_desc *)(e->drv + split_table_off(s));
}

static uint64_t TG(struct split_env *e, unsigned s)
{
	return split_gpa(e, split_table_off(s));
}

static void h_loop(struct split_env *e)
{
	split_raw_set(&D(e)[0], G(e, 0), 16, VRING_DESC_F_NEXT, 1);
	split_raw_set(&D(e)[1], G(e, 16), 16, VRING_DESC_F_NEXT, 0);
	split_raw_publish(e, 0, 0);
}

static void h_self_loop(struct split_env *e)
{
	split_raw_set(&D(e)[3], G(e, 0), 16, VRING_DESC_F_NEXT, 3);
	split_raw_publish(e, 0, 3);
}

static void h_too_long(struct split_env *e)
{
	unsigned i;

	/* Every descriptor, then back to the start: NUM + 1 steps. */
	for (i = 0; i < NUM; i++)
		split_raw_set(&D(e)[i], G(e, 16 * i), 16, VRING_DESC_F_NEXT,
			      (uint16_t)((i + 1) % NUM));
	split_raw_publish(e, 0, 0);
}

static void h_outside(struct split_env *e)
{
	split_raw_set(&D(e)[0], split_gpa(e, e->size) + 4096, 16, 0, 0);
	split_raw_publish(e, 0, 0);
}

static void h_below(struct split_env *e)
{
	split_raw_set(&D(e)[0], 0x1000, 16, 0, 0);
	split_raw_publish(e, 0, 0);
}

static void h_straddle_end(struct split_env *e)
{
	split_raw_set(&D(e)[0], split_gpa(e, e->size) - 8, 16, VRING_DESC_F_WRITE, 0);
	split_raw_publish(e, 0, 0);
}

static void h_overflow(struct split_env *e)
{
	split_raw_set(&D(e)[0], UINT64_MAX - 8, 16, 0, 0);
	split_raw_publish(e, 0, 0);
}

static void h_read_after_write(struct split_env *e)
{
	split_raw_set(&D(e)[0], G(e, 0), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	split_raw_set(&D(e)[1], G(e, 16), 16, 0, 0);
	split_raw_publish(e, 0, 0);
}

static void h_read_after_write_indirect(struct split_env *e)
{
	split_raw_set(&T(e, 0)[0], G(e, 0), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	split_raw_set(&T(e, 0)[1], G(e, 16), 16, 0, 0);
	split_raw_set(&D(e)[0], TG(e, 0), 32, VRING_DESC_F_INDIRECT, 0);
	split_raw_publish(e, 0, 0);
}

static void h_nested_indirect(struct split_env *e)
{
	split_raw_set(&T(e, 1)[0], G(e, 0), 16, 0, 0);
	split_raw_set(&T(e, 0)[0], TG(e, 1), 16, VRING_DESC_F_INDIRECT, 0);
	split_raw_set(&D(e)[0], TG(e, 0), 16, VRING_DESC_F_INDIRECT, 0);
	split_raw_publish(e, 0, 0);
}

static void h_indirect_next(struct split_env *e)
{
	split_raw_set(&T(e, 0)[0], G(e, 0), 16, 0, 0);
	split_raw_set(&D(e)[0], TG(e, 0), 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	split_raw_set(&D(e)[1], G(e, 16), 16, VRING_DESC_F_WRITE, 0);
	split_raw_publish(e, 0, 0);
}

static void indirect_len(struct split_env *e, uint32_t len)
{
	unsigned i;

	for (i = 0; i < 2; i++)
		split_raw_set(&T(e, 0)[i], G(e, 16 * i), 16, 0, 0);
	split_raw_set(&D(e)[0], TG(e, 0), len, VRING_DESC_F_INDIRECT, 0);
	split_raw_publish(e, 0, 0);
}

static void h_ind_len0(struct split_env *e) { indirect_len(e, 0); }
static void h_ind_len15(struct split_env *e) { indirect_len(e, 15); }
static void h_ind_len17(struct split_env *e) { indirect_len(e, 17); }
static void h_ind_len_huge(struct split_env *e) { indirect_len(e, (VIRTQ_MAX_SIZE + 1) * 16); }

static void h_ind_not_negotiated(struct split_env *e)
{
	indirect_len(e, 16);     /* well-formed, but the queue has indirect off */
}

static void h_ind_unmapped(struct split_env *e)
{
	split_raw_set(&D(e)[0], split_gpa(e, e->size) + 0x10000, 32, VRING_DESC_F_INDIRECT, 0);
	split_raw_publish(e, 0, 0);
}

static void h_ind_loop(struct split_env *e)
{
	split_raw_set(&T(e, 0)[0], G(e, 0), 16, VRING_DESC_F_NEXT, 1);
	split_raw_set(&T(e, 0)[1], G(e, 16), 16, VRING_DESC_F_NEXT, 0);
	split_raw_set(&D(e)[0], TG(e, 0), 32, VRING_DESC_F_INDIRECT, 0);
	split_raw_publish(e, 0, 0);
}

static void h_ind_next_range(struct split_env *e)
{
	/* Two entries; next = 2 is inside the ring's range but not the table's. */
	split_raw_set(&T(e, 0)[0], G(e, 0), 16, VRING_DESC_F_NEXT, 2);
	split_raw_set(&T(e, 0)[1], G(e, 16), 16, 0, 0);
	split_raw_set(&T(e, 0)[2], G(e, 32), 16, 0, 0);
	split_raw_set(&D(e)[0], TG(e, 0), 32, VRING_DESC_F_INDIRECT, 0);
	split_raw_publish(e, 0, 0);
}

static void h_ind_bad_buffer(struct split_env *e)
{
	split_raw_set(&T(e, 0)[0], UINT64_MAX - 3, 16, 0, 0);
	split_raw_set(&D(e)[0], TG(e, 0), 16, VRING_DESC_F_INDIRECT, 0);
	split_raw_publish(e, 0, 0);
}

static void h_avail_jump(struct split_env *e)
{
	struct vring_avail *avail = (void *)(e->drv + split_ring_off(0, 1));

	split_raw_set(&D(e)[0], G(e, 0), 16, 0, 0);
	WRITE_ONCE(avail->idx, NUM + 1);
}

static void h_head_range(struct split_env *e)
{
	split_raw_publish(e, 0, NUM);
}

static void h_head_range_max(struct split_env *e)
{
	split_raw_publish(e, 0, 0xffff);
}

static void h_next_range(struct split_env *e)
{
	split_raw_set(&D(e)[0], G(e, 0), 16, VRING_DESC_F_NEXT, NUM);
	split_raw_publish(e, 0, 0);
}

static void h_too_many_iov(struct split_env *e)
{
	unsigned i;

	/* Five fine descriptors; the test pops with room for four iovecs. */
	for (i = 0; i < 5; i++)
		split_raw_set(&D(e)[i], G(e, 16 * i), 16, i < 4 ? VRING_DESC_F_NEXT : 0,
			      (uint16_t)(i + 1));
	split_raw_publish(e, 0, 0);
}

/* Tiny mode: one 9000-byte buffer spans three regions; room for two. */
static void h_too_many_iov_split(struct split_env *e)
{
	uint64_t off = (e->bufs_off + 0xfff) & ~0xfffull;

	split_raw_set(&D(e)[0], split_gpa(e, off + 100), 9000, 0, 0);
	split_raw_publish(e, 0, 0);
}

/* Tiny mode: an indirect table running from the last mapped page into the
 * unmapped one. */
static void h_ind_into_hole(struct split_env *e)
{
	uint64_t off = e->bufs_end - 16;

	split_raw_set(&D(e)[0], split_gpa(e, off), 32, VRING_DESC_F_INDIRECT, 0);
	split_raw_publish(e, 0, 0);
}

/* Tiny mode: a buffer crossing into the hole at the end. */
static void h_buf_into_hole(struct split_env *e)
{
	split_raw_set(&D(e)[0], split_gpa(e, e->bufs_end - 100), 200, 0, 0);
	split_raw_publish(e, 0, 0);
}

/* A healthy request on queue 1 of the same memory. */
static bool neighbour_ok(struct split_env *e)
{
	uint64_t off = e->bufs_off + 0x1000;
	struct virtq_drv_buf b[2] = {
		{ split_gpa(e, off), 100 }, { split_gpa(e, off + 200), 50 },
	};
	struct virtq_elem el;
	struct iovec iov[8];
	uint32_t len = 0;
	int tok = 0;

	memset(e->drv + off, 0x5a, 100);
	if (virtq_drv_add(&e->dq[1], b, 1, 1, &tok, NULL, 0) ||
	    virtq_pop(&e->vq[1], e->mem, &el, iov, 8) != 1 || el.out_num < 1 ||
	    iov_size(iov, el.out_num) != 100 || ((uint8_t *)iov[0].iov_base)[99] != 0x5a)
		return false;
	iov_memset(iov + el.out_num, el.in_num, 0, 0xc3, 50);
	virtq_push(&e->vq[1], &el, 50);
	return virtq_drv_get_used(&e->dq[1], &len) == &tok && len == 50 &&
	       e->drv[off + 200 + 49] == 0xc3;
}

static void hostile(const char *name, setup_cb *setup, enum split_mode mode, bool indirect,
		    unsigned max_iov)
{
	struct split_env e;
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];
	unsigned i;

	split_env_init(&e, mode, NUM, false, indirect, 0);
	setup(&e);
	is(virtq_pop(&e.vq[0], e.mem, &el, iov, max_iov), -EIO, "%s: pop -> EIO", name);
	ok(e.vq[0].broken, "%s: queue marked broken", name);
	is(e.vq[0].inflight, 0, "%s: nothing counted in flight", name);
	/* A well-formed chain published afterwards does not revive it. */
	for (i = 0; i < NUM; i++)
		split_raw_set(&D(&e)[i], G(&e, 0), 16, 0, 0);
	split_raw_publish(&e, 0, 2);
	is(virtq_pop(&e.vq[0], e.mem, &el, iov, max_iov), -EIO, "%s: stays broken", name);
	ok(!virtq_has_avail(&e.vq[0]), "%s: broken queue reports nothing to poll", name);
	ok(neighbour_ok(&e), "%s: the other queue still works", name);
	split_env_fini(&e);
}

/* Control: the same harness with a well-formed chain pops fine. */
static void h_control(struct split_env *e)
{
	split_raw_set(&D(e)[0], G(e, 0), 16, VRING_DESC_F_NEXT, 1);
	split_raw_set(&T(e, 0)[0], G(e, 32), 16, VRING_DESC_F_WRITE, 0);
	split_raw_set(&D(e)[1], TG(e, 0), 16, VRING_DESC_F_INDIRECT, 0);
	split_raw_publish(e, 0, 0);
}

int main(void)
{
	struct split_env e;
	struct virtq_elem el;
	struct iovec iov[MAX_IOV];

	split_env_init(&e, SPLIT_FLAT, NUM, false, true, 0);
	h_control(&e);
	is(virtq_pop(&e.vq[0], e.mem, &el, iov, MAX_IOV), 1, "control: well-formed chain pops");
	ok(!e.vq[0].broken && el.out_num == 1 && el.in_num == 1, "control: not broken");
	split_env_fini(&e);

	hostile("loop in chain", h_loop, SPLIT_FLAT, true, MAX_IOV);
	hostile("descriptor pointing at itself", h_self_loop, SPLIT_FLAT, true, MAX_IOV);
	hostile("chain longer than the queue", h_too_long, SPLIT_FLAT, true, MAX_IOV);
	hostile("address beyond guest memory", h_outside, SPLIT_FLAT, true, MAX_IOV);
	hostile("address below guest memory", h_below, SPLIT_FLAT, true, MAX_IOV);
	hostile("buffer straddling the end of memory", h_straddle_end, SPLIT_FLAT, true, MAX_IOV);
	hostile("addr+len overflows 64 bits", h_overflow, SPLIT_FLAT, true, MAX_IOV);
	hostile("readable after writable", h_read_after_write, SPLIT_FLAT, true, MAX_IOV);
	hostile("readable after writable (indirect)", h_read_after_write_indirect, SPLIT_FLAT,
		true, MAX_IOV);
	hostile("nested indirect", h_nested_indirect, SPLIT_FLAT, true, MAX_IOV);
	hostile("indirect with NEXT", h_indirect_next, SPLIT_FLAT, true, MAX_IOV);
	hostile("indirect table len 0", h_ind_len0, SPLIT_FLAT, true, MAX_IOV);
	hostile("indirect table len 15", h_ind_len15, SPLIT_FLAT, true, MAX_IOV);
	hostile("indirect table len 17", h_ind_len17, SPLIT_FLAT, true, MAX_IOV);
	hostile("indirect table > 32768 entries", h_ind_len_huge, SPLIT_FLAT, true, MAX_IOV);
	hostile("indirect not negotiated", h_ind_not_negotiated, SPLIT_FLAT, false, MAX_IOV);
	hostile("indirect table unmapped", h_ind_unmapped, SPLIT_FLAT, true, MAX_IOV);
	hostile("loop in indirect table", h_ind_loop, SPLIT_FLAT, true, MAX_IOV);
	hostile("indirect next out of table", h_ind_next_range, SPLIT_FLAT, true, MAX_IOV);
	hostile("indirect entry overflows", h_ind_bad_buffer, SPLIT_FLAT, true, MAX_IOV);
	hostile("avail idx jumps more than num", h_avail_jump, SPLIT_FLAT, true, MAX_IOV);
	hostile("head index = num", h_head_range, SPLIT_FLAT, true, MAX_IOV);
	hostile("head index 0xffff", h_head_range_max, SPLIT_FLAT, true, MAX_IOV);
	hostile("next out of range", h_next_range, SPLIT_FLAT, true, MAX_IOV);
	hostile("too many iovecs (descriptors)", h_too_many_iov, SPLIT_FLAT, true, 4);
	hostile("too many iovecs (region splits)", h_too_many_iov_split, SPLIT_TINY, true, 2);
	hostile("indirect table into a hole", h_ind_into_hole, SPLIT_TINY, true, MAX_IOV);
	hostile("buffer into a hole", h_buf_into_hole, SPLIT_TINY, true, MAX_IOV);
	return tap_done();
}
