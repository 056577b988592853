/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_hostile.c - a hostile guest and a hostile frontend against
 * the real vblkd process. Export A (2 queues) is attacked while, in the
 * same daemon, a thread keeps verifying I/O on export B over one connection
 * and another keeps attaching new frontends to export C and doing I/O:
 * each phase checks that both completed work, none failed, and none took
 * LIVENESS_MS or more (noisy neighbour). The attacks on A:
 *  - queue 0 of A gets each bad descriptor shape (split and packed): its
 *    error eventfd fires, it stops completing, queue 1 of the same
 *    connection still serves, and a fresh connection serves fully;
 *  - malformed vhost-user messages close only that connection;
 *  - a kick storm on a queue with no buffers;
 *  - a frontend stalled mid-message, one that never reads its replies, and
 *    a flood of oversized ring sizes (NACKed);
 *  - 1000 connect/handshake/disconnect cycles leave the daemon's fd count
 *    where it was and its RSS growth bounded.
 * The daemon must never die, and must exit 0 on SIGTERM at the end.
 *
 * Usage: test_daemon_hostile PATH-TO-VBLKD. Prints TAP.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "common/compiler.h"
#include "tap.h"
#include "vblk_client.h"

#define IMG_SIZE    (64ull << 20)
#define QSIZE       64u
#define TMO         5000       /* ms: anything that should happen */
#define QUIET_MS    300        /* ms: how long "nothing happens" is watched */
#define CYCLES      1000
#define RSS_SLACK_KIB (4 * 1024)

static const char *vblkd;
static struct vblkd_proc proc;
static char sock_a[256], sock_b[256];

/* ---- helpers ------------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool rw_check(struct vblk_client *c, unsigned q, uint64_t seed, unsigned flags)
{
	return vblk_client_rw_check(c, q, seed, flags, TMO);
}

/* Stop at once, saying how, if the daemon is gone: nothing after means much. */
static void require_daemon(void)
{
	char how[96];

	if (!vblkd_proc_alive(&proc))
		tap_bail("vblkd died: %s", vblkd_proc_describe(&proc, how, sizeof(how)));
}

static struct vblk_client *connect_a(bool packed)
{
	struct vblk_client_opts o = {
		.num_queues = 2, .queue_size = QSIZE, .packed = packed, .err_fds = true,
		.mem_size = 2u << 20,
	};
	struct vblk_client *c = NULL;
	int ret = vblk_client_connect(sock_a, &o, &c);

	if (ret) {
		diag("connect %s: %s", sock_a, strerror(-ret));
		require_daemon();
	}
	return ret ? NULL : c;
}

/* A fresh connection to A where both queues serve. */
static bool fresh_connection_works(bool packed)
{
	struct vblk_client *c = connect_a(packed);
	static uint64_t seed = 1000;
	bool good;

	if (!c)
		return false;
	good = rw_check(c, 0, seed++, 0) && rw_check(c, 1, seed++, VBLK_REQ_INDIRECT) &&
	       rw_check(c, 0, seed++, VBLK_REQ_SCATTER);
	vblk_client_destroy(c);
	return good;
}

static void newcomers_hold(bool on);

/* The daemon's fd count, with export C's newcomers held off meanwhile. */
static int fd_count_settles(int want)
{
	int n;

	newcomers_hold(true);
	n = vblkd_proc_fd_count_settles(&proc, want);
	newcomers_hold(false);
	return n;
}

static int fd_count_stable(void)
{
	int n;

	newcomers_hold(true);
	n = vblkd_proc_fd_count_stable(&proc);
	newcomers_hold(false);
	return n;
}

/* ---- exports B and C: the neighbours ------------------------------------- */

/*
 * While export A is attacked, a client on export B keeps doing verified I/O
 * (one connection throughout), and clients come and go on export C (a new
 * frontend each time: handshake, I/O, disconnect). Each counts what
 * completed and the longest any one took: a liveness check with a bound
 * far above normal (milliseconds), not a speed test.
 */
#define LIVENESS_MS 3000

struct neighbour {
	const char *name;
	atomic_uint done, failed;
	atomic_uint max_ms;      /* longest check since the phase began */
};

static atomic_bool b_stop;
static struct neighbour nb_b = { .name = "export B (steady client)" };
static struct neighbour nb_c = { .name = "export C (new frontends)" };
static pthread_t b_thread, c_thread;
static char sock_c[256];

static void neighbour_count(struct neighbour *n, bool good, uint64_t t0)
{
	unsigned ms = (unsigned)(now_ms() - t0), old = atomic_load(&n->max_ms);

	while (ms > old && !atomic_compare_exchange_weak(&n->max_ms, &old, ms))
		;
	atomic_fetch_add(good ? &n->done : &n->failed, 1);
}

static void *bystander(void *arg)
{
	struct vblk_client_opts o = { .mem_size = 1u << 20 };
	struct vblk_client *c = NULL;
	uint64_t seed = 1;
	int ret;

	(void)arg;
	ret = vblk_client_connect(sock_b, &o, &c);
	if (ret) {
		diag("bystander: connect: %s", strerror(-ret));
		atomic_fetch_add(&nb_b.failed, 1);
		return NULL;
	}
	while (!atomic_load(&b_stop)) {
		uint64_t t0 = now_ms();

		seed++;
		neighbour_count(&nb_b, rw_check(c, 0, seed, seed % 2 ? VBLK_REQ_INDIRECT : 0), t0);
	}
	vblk_client_destroy(c);
	return NULL;
}

/* Export C's newcomers pause (with no connection open) while the daemon's
 * fd count is looked at. */
static atomic_bool c_hold, c_idle;

static void newcomers_hold(bool on)
{
	atomic_store(&c_hold, on);
	for (int i = 0; on && i < 1000 && !atomic_load(&c_idle); i++)
		usleep(10000);
}

static void *newcomer(void *arg)
{
	struct vblk_client_opts o = { .mem_size = 1u << 20, .queue_size = 256 };
	uint64_t seed = 1u << 20;

	(void)arg;
	while (!atomic_load(&b_stop)) {
		struct vblk_client *c = NULL;
		uint64_t t0;
		int ret;

		atomic_store(&c_idle, atomic_load(&c_hold));
		if (atomic_load(&c_idle)) {
			usleep(1000);
			continue;
		}
		t0 = now_ms();
		ret = vblk_client_connect(sock_c, &o, &c);

		if (ret)
			diag("newcomer: connect: %s", strerror(-ret));
		neighbour_count(&nb_c, !ret && rw_check(c, 0, seed++, 0), t0);
		vblk_client_destroy(c);
	}
	return NULL;
}

struct phase_mark {
	unsigned b_done, c_done;
};

static void phase_begin(struct phase_mark *m)
{
	m->b_done = atomic_load(&nb_b.done);
	m->c_done = atomic_load(&nb_c.done);
	atomic_store(&nb_b.max_ms, 0);
	atomic_store(&nb_c.max_ms, 0);
}

static void check_neighbour(struct neighbour *n, unsigned since, const char *phase)
{
	unsigned done = atomic_load(&n->done), failed = atomic_load(&n->failed);
	unsigned max = atomic_load(&n->max_ms);

	/* At least one: a short phase on a loaded machine may leave room for
	 * no more. */
	ok(failed == 0 && done > since && max < LIVENESS_MS, "%s kept serving during %s (%u "
	   "checks, %u failed, longest %u ms; bound %u)", n->name, phase, done - since, failed,
	   max, LIVENESS_MS);
}

static void check_bystander(const struct phase_mark *m, const char *phase)
{
	/* Let each neighbour finish at least one check inside the phase. */
	for (int i = 0; i < 500 && (atomic_load(&nb_b.done) == m->b_done ||
				    atomic_load(&nb_c.done) == m->c_done); i++)
		usleep(10000);
	check_neighbour(&nb_b, m->b_done, phase);
	check_neighbour(&nb_c, m->c_done, phase);
}

/* ---- bad descriptor shapes ------------------------------------------------ */

/* Three valid buffers for a request chain, at the client's guest addresses. */
struct bufs {
	uint64_t hdr, data, status;
};

static void bufs_alloc(struct vblk_client *c, struct bufs *b)
{
	struct virtio_blk_outhdr *h = vblk_client_alloc(c, sizeof(*h), 16, &b->hdr);

	if (!h || !vblk_client_alloc(c, 4096, 16, &b->data) ||
	    !vblk_client_alloc(c, 1, 1, &b->status))
		tap_bail("guest memory");
	h->type = VIRTIO_BLK_T_IN;
	h->sector = 0;
}

static void *table_alloc(struct vblk_client *c, unsigned n, uint64_t *gpa)
{
	void *t = vblk_client_alloc(c, n * 16u, 16, gpa);

	if (!t)
		tap_bail("guest memory");
	memset(t, 0, n * 16u);
	return t;
}

static void sd(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

#define N VRING_DESC_F_NEXT
#define W VRING_DESC_F_WRITE
#define I VRING_DESC_F_INDIRECT

/* Split: write a bad chain on queue 0 with heads from the top of the table
 * (the driver's free list hands out the bottom first) and publish it. */
typedef void (*split_case_fn)(struct vblk_client *c, struct virtq_drv *d, struct bufs *b);

static void s_loop(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	unsigned h = d->num - 1, k = d->num - 2;

	sd(&d->desc[h], b->hdr, 16, N, (uint16_t)k);
	sd(&d->desc[k], b->data, 512, N, (uint16_t)h);
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
}

static void s_longer_than_ring(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	/* Every descriptor, each pointing at the next: a chain with no end. */
	for (unsigned i = 0; i < d->num; i++)
		sd(&d->desc[i], b->data, 16, N, (uint16_t)((i + 1) % d->num));
	vblk_client_raw_publish_split(c, 0, 0);
}

static void s_outside(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	unsigned h = d->num - 1;

	sd(&d->desc[h], b->hdr, 16, N, (uint16_t)(h - 1));
	sd(&d->desc[h - 1], vblk_client_gpa_end(c) + 8192, 512, N | W, (uint16_t)(h - 2));
	sd(&d->desc[h - 2], b->status, 1, W, 0);
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
}

static void s_below(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	unsigned h = d->num - 1;

	/* The gap below the first region (GPA 0 is not guest memory here). */
	sd(&d->desc[h], 0x1000, 16, N, (uint16_t)(h - 1));
	sd(&d->desc[h - 1], b->status, 1, W, 0);
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
}

static void s_overflow(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	unsigned h = d->num - 1;

	sd(&d->desc[h], b->hdr, 16, N, (uint16_t)(h - 1));
	sd(&d->desc[h - 1], 0xfffffffffffff000ull, 0x2000, N | W, (uint16_t)(h - 2));
	sd(&d->desc[h - 2], b->status, 1, W, 0);
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
}

static void s_read_after_write(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	unsigned h = d->num - 1;

	sd(&d->desc[h], b->hdr, 16, N, (uint16_t)(h - 1));
	sd(&d->desc[h - 1], b->status, 1, N | W, (uint16_t)(h - 2));
	sd(&d->desc[h - 2], b->data, 512, 0, 0);
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
}

static void s_nested_indirect(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	uint64_t t1, t2;
	struct vring_desc *a = table_alloc(c, 2, &t1), *z = table_alloc(c, 2, &t2);
	unsigned h = d->num - 1;

	sd(&z[0], b->data, 512, N | W, 1);
	sd(&z[1], b->status, 1, W, 0);
	sd(&a[0], b->hdr, 16, N, 1);
	sd(&a[1], t2, 32, I, 0);
	sd(&d->desc[h], t1, 32, I, 0);
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
}

static void s_indirect_len(struct vblk_client *c, struct virtq_drv *d, struct bufs *b,
			   uint32_t len)
{
	uint64_t t;
	struct vring_desc *a = table_alloc(c, 3, &t);
	unsigned h = d->num - 1;

	sd(&a[0], b->hdr, 16, N, 1);
	sd(&a[1], b->status, 1, W, 0);
	sd(&d->desc[h], t, len, I, 0);
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
}

static void s_indirect_len24(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	s_indirect_len(c, d, b, 24);
}

static void s_indirect_len0(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	s_indirect_len(c, d, b, 0);
}

static void s_indirect_outside(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	unsigned h = d->num - 1;

	sd(&d->desc[h], vblk_client_gpa_end(c) - 16, 32, I, 0);
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
}

static void s_indirect_next_out(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	uint64_t t;
	struct vring_desc *a = table_alloc(c, 2, &t);
	unsigned h = d->num - 1;

	sd(&a[0], b->hdr, 16, N, 7);    /* table has 2 entries */
	sd(&a[1], b->status, 1, W, 0);
	sd(&d->desc[h], t, 32, I, 0);
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
}

static void s_next_out(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	unsigned h = d->num - 1;

	sd(&d->desc[h], b->hdr, 16, N, (uint16_t)(d->num + 3));
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
}

static void s_avail_jump(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	/* The driver claims more new buffers than the ring holds. */
	WRITE_ONCE(d->avail->idx, (uint16_t)(d->next_avail + d->num + 1));
}

static void s_head_out(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	vblk_client_raw_publish_split(c, 0, (uint16_t)(d->num + 5));
}

/* Packed: the chain goes into the next slots; flags get AVAIL/USED there. */

static void pd(struct vring_packed_desc *x, uint64_t addr, uint32_t len, uint16_t flags)
{
	x->addr = addr;
	x->len = len;
	x->id = 0;
	x->flags = flags;
}

static void p_longer_than_ring(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	struct vring_packed_desc x[QSIZE];

	for (unsigned i = 0; i < QSIZE; i++)
		pd(&x[i], b->data, 16, N);   /* the last one says NEXT too */
	vblk_client_raw_publish_packed(c, 0, x, QSIZE);
}

static void p_outside(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	struct vring_packed_desc x[3];

	pd(&x[0], b->hdr, 16, N);
	pd(&x[1], vblk_client_gpa_end(c) + 4096, 512, N | W);
	pd(&x[2], b->status, 1, W);
	vblk_client_raw_publish_packed(c, 0, x, 3);
}

static void p_overflow(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	struct vring_packed_desc x[3];

	pd(&x[0], b->hdr, 16, N);
	pd(&x[1], UINT64_MAX - 255, 512, N | W);
	pd(&x[2], b->status, 1, W);
	vblk_client_raw_publish_packed(c, 0, x, 3);
}

static void p_read_after_write(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	struct vring_packed_desc x[3];

	pd(&x[0], b->hdr, 16, N);
	pd(&x[1], b->status, 1, N | W);
	pd(&x[2], b->data, 512, 0);
	vblk_client_raw_publish_packed(c, 0, x, 3);
}

static void p_nested_indirect(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	uint64_t t1, t2;
	struct vring_packed_desc *a = table_alloc(c, 2, &t1), *z = table_alloc(c, 2, &t2), x;

	pd(&z[0], b->data, 512, W);
	pd(&z[1], b->status, 1, W);
	pd(&a[0], b->hdr, 16, 0);
	pd(&a[1], t2, 32, I);
	pd(&x, t1, 32, I);
	vblk_client_raw_publish_packed(c, 0, &x, 1);
}

static void p_indirect_len(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	uint64_t t;
	struct vring_packed_desc *a = table_alloc(c, 3, &t), x;

	pd(&a[0], b->hdr, 16, 0);
	pd(&a[1], b->status, 1, W);
	pd(&x, t, 40, I);
	vblk_client_raw_publish_packed(c, 0, &x, 1);
}

static void p_indirect_in_chain(struct vblk_client *c, struct virtq_drv *d, struct bufs *b)
{
	uint64_t t;
	struct vring_packed_desc *a = table_alloc(c, 2, &t), x[2];

	pd(&a[0], b->data, 512, W);
	pd(&a[1], b->status, 1, W);
	pd(&x[0], b->hdr, 16, N);
	pd(&x[1], t, 32, I);
	vblk_client_raw_publish_packed(c, 0, x, 2);
}

struct ring_case {
	const char *name;
	bool packed;
	split_case_fn fn;
};

static const struct ring_case ring_cases[] = {
	{ "split: descriptor loop", false, s_loop },
	{ "split: chain longer than the ring", false, s_longer_than_ring },
	{ "split: buffer past the end of guest memory", false, s_outside },
	{ "split: buffer below guest memory", false, s_below },
	{ "split: addr + len overflows", false, s_overflow },
	{ "split: readable after writable", false, s_read_after_write },
	{ "split: nested indirect", false, s_nested_indirect },
	{ "split: indirect table of 24 bytes", false, s_indirect_len24 },
	{ "split: indirect table of 0 bytes", false, s_indirect_len0 },
	{ "split: indirect table past the end of memory", false, s_indirect_outside },
	{ "split: indirect next out of the table", false, s_indirect_next_out },
	{ "split: next index out of range", false, s_next_out },
	{ "split: avail idx jumps by more than the ring size", false, s_avail_jump },
	{ "split: head index out of range", false, s_head_out },
	{ "packed: chain longer than the ring", true, p_longer_than_ring },
	{ "packed: buffer past the end of guest memory", true, p_outside },
	{ "packed: addr + len overflows", true, p_overflow },
	{ "packed: readable after writable", true, p_read_after_write },
	{ "packed: nested indirect", true, p_nested_indirect },
	{ "packed: indirect table of 40 bytes", true, p_indirect_len },
	{ "packed: indirect descriptor inside a chain", true, p_indirect_in_chain },
};

static void test_ring_case(const struct ring_case *rc)
{
	struct vblk_client *c = connect_a(rc->packed);
	struct vblk_req *r = NULL;
	struct bufs b;
	int err, ret;
	bool q1_ok = true;

	if (!ok(c, "%s: connect", rc->name))
		return;
	if (!ok(rw_check(c, 0, 1, 0) && rw_check(c, 1, 2, 0), "%s: both queues serve before",
		rc->name))
		goto out;
	bufs_alloc(c, &b);
	rc->fn(c, vblk_client_vq(c, 0), &b);
	vblk_client_kick(c, 0, true);
	err = vblk_client_wait_err(c, 0, TMO);
	is(err, 1, "%s: queue 0's error eventfd fires", rc->name);

	/* A good request after the bad one must not be served. */
	r = calloc(1, sizeof(*r));
	if (!r || vblk_client_submit(c, 0, r, VIRTIO_BLK_T_IN, 0, NULL, 0, 512, 0)) {
		ok(0, "%s: submit a good request on queue 0", rc->name);
	} else {
		vblk_client_kick(c, 0, true);
		ret = vblk_client_wait(c, 0, r, QUIET_MS);
		ok(ret == -ETIMEDOUT, "%s: queue 0 stops completing", rc->name);
	}

	for (unsigned i = 0; i < 3; i++)
		q1_ok &= rw_check(c, 1, 100 + i, i == 1 ? VBLK_REQ_INDIRECT : 0);
	ok(q1_ok, "%s: queue 1 of the same connection still serves", rc->name);
out:
	vblk_client_destroy(c);
	free(r);      /* only after the client (it may still sit on the ring) */
	ok(fresh_connection_works(rc->packed), "%s: a fresh connection serves both queues",
	   rc->name);
	ok(vblkd_proc_alive(&proc), "%s: vblkd still runs", rc->name);
	require_daemon();
}

/* ---- malformed messages ----------------------------------------------------- */

enum msg_case {
	M_TRUNCATED_HEADER, M_TRUNCATED_PAYLOAD, M_OVERSIZED, M_BAD_VERSION,
	M_KICK_TWO_FDS, M_CALL_NO_FD, M_MEM_FEWER_FDS, M_SIXTEEN_FDS,
	M_BAD_INDEX_NUM, M_BAD_INDEX_KICK, M_MEM_9_REGIONS, M_MEM_9_REGIONS_BIG,
	M_MEM_BEYOND_FILE, M_BAD_SIZE, M_UNOFFERED_FEATURES, M_CONFIG_SIZE_MISMATCH, M_GARBAGE,
	M_COUNT,
};

static const char *const msg_names[M_COUNT] = {
	[M_TRUNCATED_HEADER] = "truncated header",
	[M_TRUNCATED_PAYLOAD] = "truncated payload",
	[M_OVERSIZED] = "payload size 1 MiB",
	[M_BAD_VERSION] = "header version 2",
	[M_KICK_TWO_FDS] = "SET_VRING_KICK with two fds",
	[M_CALL_NO_FD] = "SET_VRING_CALL without fd or NOFD flag",
	[M_MEM_FEWER_FDS] = "SET_MEM_TABLE: 2 regions, 1 fd",
	[M_SIXTEEN_FDS] = "16 fds on one message",
	[M_BAD_INDEX_NUM] = "SET_VRING_NUM for vring 99",
	[M_BAD_INDEX_KICK] = "SET_VRING_KICK for vring 200",
	[M_MEM_9_REGIONS] = "SET_MEM_TABLE with nregions 9",
	[M_MEM_9_REGIONS_BIG] = "SET_MEM_TABLE with 9 regions' bytes",
	[M_MEM_BEYOND_FILE] = "SET_MEM_TABLE region beyond its file",
	[M_BAD_SIZE] = "SET_VRING_NUM with a 4-byte payload",
	[M_UNOFFERED_FEATURES] = "SET_FEATURES with bits not offered",
	[M_CONFIG_SIZE_MISMATCH] = "GET_CONFIG whose size field disagrees with the payload",
	[M_GARBAGE] = "4 KiB of garbage",
};

static void send_bad(struct vblk_client *c, enum msg_case m)
{
	int sock = vhost_frontend_fd(vblk_client_frontend(c));
	uint8_t buf[4096] = { 0 };
	int fds[16], nfds = 0, memfd = -1;
	union vhost_msg_payload p;
	uint64_t u;
	const uint32_t V = VHOST_USER_VERSION;

	memset(&p, 0, sizeof(p));
	switch (m) {
	case M_TRUNCATED_HEADER:
		u = VHOST_USER_GET_FEATURES;
		fixture_send_fds(sock, &u, 6, NULL, 0);
		shutdown(sock, SHUT_WR);
		break;
	case M_TRUNCATED_PAYLOAD:
		fixture_send_raw_msg(sock, VHOST_USER_SET_VRING_NUM, V, 8, &p, 4, NULL, 0);
		shutdown(sock, SHUT_WR);
		break;
	case M_OVERSIZED:
		fixture_send_raw_msg(sock, VHOST_USER_GET_FEATURES, V, 1u << 20, buf, sizeof(buf),
				     NULL, 0);
		break;
	case M_BAD_VERSION:
		fixture_send_raw_msg(sock, VHOST_USER_GET_FEATURES, 0x2, 0, NULL, 0, NULL, 0);
		break;
	case M_KICK_TWO_FDS:
		fds[nfds++] = eventfd(0, EFD_CLOEXEC);
		fds[nfds++] = eventfd(0, EFD_CLOEXEC);
		u = 0;
		fixture_send_raw_msg(sock, VHOST_USER_SET_VRING_KICK, V, 8, &u, 8, fds, 2);
		break;
	case M_CALL_NO_FD:
		u = 1;
		fixture_send_raw_msg(sock, VHOST_USER_SET_VRING_CALL, V, 8, &u, 8, NULL, 0);
		break;
	case M_MEM_FEWER_FDS:
		memfd = memfd_create("bad", MFD_CLOEXEC);
		if (ftruncate(memfd, 1 << 20))
			tap_bail("ftruncate");
		p.memory.nregions = 2;
		p.memory.regions[0] = (struct vhost_msg_mem_region){ 0, 4096, 0x10000, 0 };
		p.memory.regions[1] = (struct vhost_msg_mem_region){ 8192, 4096, 0x20000, 4096 };
		fds[nfds++] = memfd;
		fixture_send_raw_msg(sock, VHOST_USER_SET_MEM_TABLE, V, 8 + 2 * 32, &p, 8 + 2 * 32,
				     fds, 1);
		nfds = 0;
		break;
	case M_SIXTEEN_FDS:
		for (int i = 0; i < 16; i++)
			fds[nfds++] = eventfd(0, EFD_CLOEXEC);
		u = 0;
		fixture_send_raw_msg(sock, VHOST_USER_SET_VRING_KICK, V, 8, &u, 8, fds, 16);
		break;
	case M_BAD_INDEX_NUM:
		p.state = (struct vhost_msg_vring_state){ .index = 99, .num = 64 };
		fixture_send_raw_msg(sock, VHOST_USER_SET_VRING_NUM, V, 8, &p, 8, NULL, 0);
		break;
	case M_BAD_INDEX_KICK:
		fds[nfds++] = eventfd(0, EFD_CLOEXEC);
		u = 200;
		fixture_send_raw_msg(sock, VHOST_USER_SET_VRING_KICK, V, 8, &u, 8, fds, 1);
		break;
	case M_MEM_9_REGIONS:
	case M_MEM_9_REGIONS_BIG: {
		uint8_t raw[8 + 9 * 32] = { 0 };
		struct vhost_msg_mem_region r;
		uint32_t n = 9;

		memfd = memfd_create("bad", MFD_CLOEXEC);
		if (ftruncate(memfd, 1 << 20))
			tap_bail("ftruncate");
		memcpy(raw, &n, 4);
		for (unsigned i = 0; i < 9; i++) {
			r = (struct vhost_msg_mem_region){ (uint64_t)i << 16, 4096,
							   0x100000 + ((uint64_t)i << 16),
							   (uint64_t)i * 4096 };
			memcpy(raw + 8 + i * 32, &r, 32);
		}
		for (int i = 0; i < 8; i++)
			fds[i] = memfd;
		/* nregions 9 inside the largest legal size, or the bytes of 9. */
		n = m == M_MEM_9_REGIONS ? 8 + 8 * 32 : 8 + 9 * 32;
		fixture_send_raw_msg(sock, VHOST_USER_SET_MEM_TABLE, V, n, raw, n, fds, 8);
		break;
	}
	case M_MEM_BEYOND_FILE:
		memfd = memfd_create("bad", MFD_CLOEXEC);
		if (ftruncate(memfd, 4096))
			tap_bail("ftruncate");
		p.memory.nregions = 1;
		p.memory.regions[0] = (struct vhost_msg_mem_region){ 0, 1 << 20, 0x10000, 0 };
		fds[0] = memfd;
		fixture_send_raw_msg(sock, VHOST_USER_SET_MEM_TABLE, V, 8 + 32, &p, 8 + 32, fds, 1);
		break;
	case M_BAD_SIZE:
		fixture_send_raw_msg(sock, VHOST_USER_SET_VRING_NUM, V, 4, &p, 4, NULL, 0);
		break;
	case M_UNOFFERED_FEATURES:
		u = 1ull << 63;
		fixture_send_raw_msg(sock, VHOST_USER_SET_FEATURES, V, 8, &u, 8, NULL, 0);
		break;
	case M_CONFIG_SIZE_MISMATCH:
		/* (A read beyond the config space is answered: see test_daemon_frontends.) */
		p.config.offset = 0;
		p.config.size = 200;
		fixture_send_raw_msg(sock, VHOST_USER_GET_CONFIG, V, 12 + 8, &p, 12 + 8, NULL, 0);
		break;
	case M_GARBAGE:
		vblk_fill(buf, sizeof(buf), 0xbad);
		fixture_send_fds(sock, buf, sizeof(buf), NULL, 0);
		break;
	case M_COUNT:
		break;
	}
	for (int i = 0; i < nfds; i++)
		if (fds[i] != memfd)
			close(fds[i]);
	if (memfd >= 0)
		close(memfd);
}

static void test_messages(void)
{
	int fds0 = fd_count_stable();

	for (unsigned m = 0; m < M_COUNT; m++) {
		/* A working session with both queues running gets the bad message. */
		struct vblk_client *c = connect_a(m % 2);
		bool closed;

		if (!ok(c && rw_check(c, 0, m, 0), "%s: session serves before", msg_names[m])) {
			vblk_client_destroy(c);
			continue;
		}
		send_bad(c, m);
		closed = vblk_sock_closed_by_peer(vhost_frontend_fd(vblk_client_frontend(c)), TMO);
		ok(closed, "%s: the daemon closes the connection", msg_names[m]);
		vblk_client_destroy(c);
		ok(fresh_connection_works(m % 2), "%s: a new connection serves I/O", msg_names[m]);
		ok(vblkd_proc_alive(&proc), "%s: vblkd still runs", msg_names[m]);
		require_daemon();
	}
	is(fd_count_settles(fds0), fds0, "malformed messages leak no fd in the daemon");
}

/*
 * IOTLB messages to a daemon that did not negotiate ACCESS_PLATFORM (this
 * one runs without --iommu; tests/func/test_daemon_iommu.c has the rest):
 * each refused with a failure ack, the session unharmed, also after a storm.
 */
static void test_iotlb_refused(void)
{
	struct vblk_client *c = connect_a(0);
	struct vhost_msg_iotlb m = { .iova = 0x1000, .size = 0x1000,
				     .uaddr = 0x7e0000000000ull, .perm = VHOST_ACCESS_RW,
				     .type = VHOST_IOTLB_UPDATE };
	unsigned refused = 0;

	if (!ok(c != NULL, "iotlb: session"))
		return;
	is(vblk_client_iotlb_raw(c, &m), -EIO, "iotlb: an update without ACCESS_PLATFORM refused");
	for (unsigned i = 0; i < 2000; i++) {
		m.type = i % 2 ? VHOST_IOTLB_INVALIDATE : VHOST_IOTLB_UPDATE;
		m.iova = (uint64_t)i << 12;
		m.size = i % 3 ? 0x1000 : ~0ull;
		refused += vblk_client_iotlb_raw(c, &m) == -EIO;
	}
	is(refused, 2000u, "iotlb: a storm of 2000 refused one by one");
	ok(rw_check(c, 0, 77, 0), "iotlb: the session still serves I/O");
	vblk_client_destroy(c);
	ok(vblkd_proc_alive(&proc), "iotlb: vblkd still runs");
}

/* ---- kick storm -------------------------------------------------------- */

static void test_kick_storm(void)
{
	struct vblk_client *c = connect_a(false);
	uint64_t one = 1, end;
	unsigned failed = 0, i, n;
	int kfd;

	if (!ok(c, "kick storm: connect"))
		return;
	kfd = vblk_client_kick_fd(c, 0);
	end = now_ms();
	for (i = 0; i < 100000; i++) {
		if (write(kfd, &one, sizeof(one)) != sizeof(one))
			failed++;
		/* Queue 1 serves meanwhile. */
		if (i % 10000 == 0 && !rw_check(c, 1, 500 + i, 0))
			failed++;
	}
	n = (unsigned)(now_ms() - end);
	ok(failed == 0, "kick storm: 100000 kicks on queue 0 with no buffers in %u ms, queue 1 "
	   "served meanwhile", n);
	ok(rw_check(c, 0, 600, 0) && rw_check(c, 0, 601, VBLK_REQ_INDIRECT),
	   "kick storm: queue 0 serves afterwards");
	vblk_client_destroy(c);
	ok(vblkd_proc_alive(&proc), "kick storm: vblkd still runs");
}

/* ---- stalled and flooding frontends on A --------------------------------- */

/*
 * Export A held by frontends that misbehave without sending anything
 * malformed: half a message then silence, requests pipelined while no
 * reply is read, and a flood of ring sizes above --queue-size (each
 * NACKed). Each holds A for a while, then goes; A serves afterwards.
 */
static void test_stalls(void)
{
	struct vhost_msg_hdr h = { .request = VHOST_USER_GET_FEATURES,
				   .flags = VHOST_USER_VERSION };
	struct vhost_frontend *f = NULL;
	struct vblk_client *c;
	unsigned nacks = 0;

	if (ok(vhost_frontend_connect(sock_a, &f) == 0, "stall: connect")) {
		ok(send(vhost_frontend_fd(f), &h, 6, MSG_NOSIGNAL) == 6, "stall: half a header sent");
		usleep(1000 * 1000);
		vhost_frontend_destroy(f);
	}
	if (ok(vhost_frontend_connect(sock_a, &f) == 0, "unread replies: connect")) {
		int fd = vhost_frontend_fd(f);
		unsigned sent = 0;

		for (;;) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };

			if (send(fd, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(h)) {
				sent++;
				continue;
			}
			if (errno != EAGAIN || poll(&pfd, 1, 500) <= 0)
				break;
		}
		ok(sent > 100, "unread replies: %u requests sent, none read", sent);
		usleep(1000 * 1000);
		vhost_frontend_destroy(f);
	}
	c = connect_a(false);
	if (ok(c, "oversized rings: connect")) {
		/* Queue 1 of A is set up by connect_a: stop it to size it again. */
		unsigned base;

		vhost_frontend_get_vring_base(vblk_client_frontend(c), 1, &base);
		for (unsigned i = 0; i < 1000; i++)
			nacks += vhost_frontend_set_vring_num(vblk_client_frontend(c), 1,
							      2048 + i) == -EIO;
		is(nacks, 1000, "oversized rings: 1000 SET_VRING_NUM above the limit NACKed");
		ok(rw_check(c, 0, 4242, 0), "oversized rings: queue 0 serves meanwhile");
		vblk_client_destroy(c);
	}
	ok(fresh_connection_works(false), "stalls: a fresh connection to A serves both queues");
	require_daemon();
}

/* ---- disconnects with requests in flight ------------------------------- */

/* Submit @n writes on every queue, kick, and return without waiting. */
static unsigned submit_and_leave(struct vblk_client *c, struct vblk_req *reqs, unsigned n,
				 uint64_t seed)
{
	uint8_t buf[8192];
	unsigned added = 0;

	vblk_fill(buf, sizeof(buf), seed);
	for (unsigned q = 0; q < vblk_client_num_queues(c); q++) {
		for (unsigned i = 0; i < n; i++)
			if (!vblk_client_submit(c, q, &reqs[q * n + i], VIRTIO_BLK_T_OUT,
						(seed % 1000 + i) * 16, buf, sizeof(buf), 0,
						VBLK_REQ_INDIRECT))
				added++;
		vblk_client_kick(c, q, true);
	}
	return added;
}

static void test_inflight_disconnect(void)
{
	static struct vblk_req reqs[2 * 60];
	unsigned added = 0, failed = 0;
	int fds0 = fd_count_stable();

	for (unsigned round = 0; round < 20; round++) {
		struct vblk_client *c = connect_a(round % 2);

		if (!c) {
			failed++;
			continue;
		}
		added += submit_and_leave(c, reqs, 60, round);
		if (round % 4 == 3)
			usleep(200);     /* some already running, some not yet popped */
		vblk_client_destroy(c);
	}
	ok(failed == 0 && added == 20 * 2 * 60, "disconnect with 120 writes in flight, 20 times "
	   "(%u submitted)", added);
	ok(fresh_connection_works(false) && fresh_connection_works(true),
	   "in-flight disconnects: a fresh connection serves both queues");
	is(fd_count_stable(), fds0, "in-flight disconnects: no fd left behind");
	ok(vblkd_proc_alive(&proc), "in-flight disconnects: vblkd still runs");
	require_daemon();
}

/* ---- blocking notification fds ------------------------------------------- */

/*
 * Submit a 4 KiB read on queue q, kick it through @kick_fd, and wait for
 * the used ring (polled: the call fd may not be the client's) for up to
 * TMO, kicking again every millisecond (with a kick fd shared by two
 * queues, the other queue's thread may take a kick meant for this one).
 * True once it completed OK.
 */
static bool read_kick_poll(struct vblk_client *c, unsigned q, int kick_fd)
{
	static struct vblk_req reqs[64];
	static unsigned next;
	struct vblk_req *r = &reqs[next++ % ARRAY_SIZE(reqs)];
	uint64_t one = 1, end = now_ms() + TMO;

	memset(r, 0, sizeof(*r));
	if (vblk_client_submit(c, q, r, VIRTIO_BLK_T_IN, 8, NULL, 0, 4096, 0))
		return false;
	while (!r->done && now_ms() < end) {
		if (write(kick_fd, &one, sizeof(one)) != sizeof(one))
			return false;
		usleep(1000);
		vblk_client_reap(c, q);
	}
	return r->done && *r->status == VIRTIO_BLK_S_OK;
}

/*
 * A frontend hands over ordinary blocking eventfds: a call fd at its
 * maximum count (a write to it would sleep) and one kick fd shared by both
 * queues (two iothreads woken, one finds it empty: a read would sleep).
 * Neither may stop an iothread, the control thread or another export.
 */
static void test_blocking_fds(void)
{
	struct vhost_frontend *f;
	struct vblk_client *c = connect_a(false);
	uint64_t max = 0xfffffffffffffffeull, v = 0;
	unsigned done = 0, i;
	int efd = -1, kfd = -1, err2 = -1;

	if (!ok(c, "blocking fds: connect"))
		return;
	f = vblk_client_frontend(c);
	efd = eventfd(0, EFD_CLOEXEC);    /* blocking */
	if (efd < 0 || write(efd, &max, sizeof(max)) != sizeof(max))
		tap_bail("eventfd");
	is(vhost_frontend_set_vring_call(f, 0, efd), 0,
	   "blocking fds: SET_VRING_CALL with a blocking eventfd at its maximum count");
	for (i = 0; i < 4; i++)
		done += read_kick_poll(c, 0, vblk_client_kick_fd(c, 0));
	is(done, 4, "blocking fds: queue 0 completes requests while its call fd is full");
	ok(rw_check(c, 1, 700, 0), "blocking fds: queue 1 serves");
	is(vhost_frontend_set_vring_call(f, 0, efd), 0,
	   "blocking fds: the control thread still reaches queue 0's iothread");
	ok(read(efd, &v, sizeof(v)) == sizeof(v) && v == max,
	   "blocking fds: the pending interrupt is still pending");

	kfd = eventfd(0, EFD_CLOEXEC);    /* blocking, shared by both queues */
	if (kfd < 0)
		tap_bail("eventfd");
	ok(vhost_frontend_set_vring_kick(f, 0, kfd) == 0 &&
	   vhost_frontend_set_vring_kick(f, 1, kfd) == 0,
	   "blocking fds: one blocking kick eventfd for both queues");
	for (i = 0, done = 0; i < 200; i++)
		done += read_kick_poll(c, i % 2, kfd);
	is(done, 200, "blocking fds: 200 requests kicked through the shared fd completed");
	err2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ok(vhost_frontend_set_vring_err(f, 0, err2) == 0 &&
	   vhost_frontend_set_vring_err(f, 1, err2) == 0,
	   "blocking fds: the control thread still reaches both queues' iothreads");
	vblk_client_destroy(c);
	close(efd);
	close(kfd);
	close(err2);
	ok(fresh_connection_works(false), "blocking fds: a fresh connection serves");
	require_daemon();
}

/* ---- kick/call/err fds that cannot signal ------------------------------- */

enum fd_kind { FK_FILE, FK_DIR, FK_EOF_SOCKET, FK_LISTENING, FK_EOF_PIPE };

/* An fd of @kind; *extra gets a second fd to close afterwards (or -1). */
static int make_fd(enum fd_kind kind, int *extra)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sv[2], fd = -1;

	*extra = -1;
	switch (kind) {
	case FK_FILE: {
		char path[256];

		vblkd_proc_path(&proc, "a.img", path, sizeof(path));
		return open(path, O_RDONLY | O_CLOEXEC);
	}
	case FK_DIR:
		return open(proc.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	case FK_EOF_SOCKET:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			return -1;
		close(sv[1]);
		return sv[0];
	case FK_EOF_PIPE:
		if (pipe2(sv, O_CLOEXEC))
			return -1;
		close(sv[1]);
		return sv[0];
	case FK_LISTENING:
		vblkd_proc_path(&proc, "kick.sock", sa.sun_path, sizeof(sa.sun_path));
		unlink(sa.sun_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		*extra = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		/* A pending connection makes the listening socket readable. */
		if (fd < 0 || *extra < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
		    listen(fd, 4) || connect(*extra, (struct sockaddr *)&sa, sizeof(sa)))
			tap_bail("listening socket: %s", strerror(errno));
		return fd;
	}
	return -1;
}

/*
 * A regular file or a directory as kick fd (the ring would never run), a
 * regular file as call fd or a directory as error fd: refused, the
 * connection closes. A kick fd that reads EOF or fails (socket or pipe
 * whose writer is gone, listening socket): that queue stops and says so on
 * its error fd (it used to spin a CPU for ever); the other queue serves.
 */
static void test_fd_kinds(void)
{
	static const struct {
		const char *name;
		enum fd_kind kind;
		int which;      /* 0 kick, 1 call, 2 err */
		bool refused;
	} cases[] = {
		{ "a regular file as kick fd", FK_FILE, 0, true },
		{ "a directory as kick fd", FK_DIR, 0, true },
		{ "a regular file as call fd", FK_FILE, 1, true },
		{ "a directory as error fd", FK_DIR, 2, true },
		{ "a socket at EOF as kick fd", FK_EOF_SOCKET, 0, false },
		{ "a pipe at EOF as kick fd", FK_EOF_PIPE, 0, false },
		{ "a listening socket as kick fd", FK_LISTENING, 0, false },
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		struct vblk_client *c = connect_a(false);
		struct vhost_frontend *f;
		int fd, extra, ret;

		if (!ok(c && rw_check(c, 0, 800 + i, 0), "%s: session serves before",
			cases[i].name)) {
			vblk_client_destroy(c);
			continue;
		}
		f = vblk_client_frontend(c);
		fd = make_fd(cases[i].kind, &extra);
		if (fd < 0)
			tap_bail("%s: %s", cases[i].name, strerror(errno));
		ret = cases[i].which == 0 ? vhost_frontend_set_vring_kick(f, 0, fd) :
		      cases[i].which == 1 ? vhost_frontend_set_vring_call(f, 0, fd) :
		      vhost_frontend_set_vring_err(f, 0, fd);
		if (cases[i].refused) {
			ok(ret != 0 && vblk_sock_closed_by_peer(vhost_frontend_fd(f), 5000),
			   "%s: refused, the connection closes", cases[i].name);
		} else {
			is(ret, 0, "%s: accepted", cases[i].name);
			is(vblk_client_wait_err(c, 0, TMO), 1,
			   "%s: queue 0 stops and its error eventfd fires", cases[i].name);
			ok(rw_check(c, 1, 820 + i, 0), "%s: queue 1 serves", cases[i].name);
		}
		close(fd);
		if (extra >= 0)
			close(extra);
		vblk_client_destroy(c);
		ok(fresh_connection_works(false), "%s: a fresh connection serves", cases[i].name);
		require_daemon();
	}
}

/* ---- shared memory that shrinks (SIGBUS) ---------------------------------- */

static void make_image(const char *path, uint64_t size);

#define PROTO_BASE ((1ull << VHOST_USER_PROTOCOL_F_MQ) | \
		    (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
		    (1ull << VHOST_USER_PROTOCOL_F_CONFIG))

/* Publish on queue 0 a request {header at @hdr_gpa, status}, and kick. */
static void publish_header_at(struct vblk_client *c, uint64_t hdr_gpa, uint64_t status_gpa)
{
	struct virtq_drv *d = vblk_client_vq(c, 0);
	unsigned h = d->num - 1;

	sd(&d->desc[h], hdr_gpa, 16, N, (uint16_t)(h - 1));
	sd(&d->desc[h - 1], status_gpa, 1, W, 0);
	vblk_client_raw_publish_split(c, 0, (uint16_t)h);
	vblk_client_kick(c, 0, true);
}

/* After the frontend's memory shrank: connection closed, daemon serving. */
static void check_sigbus_survived(struct vblk_client *c, const char *name)
{
	ok(vblk_sock_closed_by_peer(vhost_frontend_fd(vblk_client_frontend(c)), 5000),
	   "%s: the daemon closes that connection", name);
	vblk_client_destroy(c);
	ok(vblkd_proc_alive(&proc), "%s: vblkd still runs", name);
	require_daemon();
	ok(fresh_connection_works(false), "%s: a fresh connection serves", name);
}

/* Guest memory (an unsealable memfd) truncated under a running ring. */
static void sigbus_guest_memory(void)
{
	const char *name = "guest memory truncated under the daemon";
	struct vblk_client *c = connect_a(false);
	uint64_t free_gpa;
	struct bufs b;

	if (!ok(c && rw_check(c, 0, 900, 0), "%s: session serves before", name)) {
		vblk_client_destroy(c);
		return;
	}
	/* The request's buffers lie past the new end; the rings stay. The
	 * chain is published only then (a polling daemon takes it at once). */
	if (!vblk_client_alloc(c, 1, 4096, &free_gpa))
		tap_bail("guest memory");
	bufs_alloc(c, &b);
	if (ftruncate(vblk_client_memfd(c), (off_t)(free_gpa - VBLK_CLIENT_GPA_BASE)))
		tap_bail("ftruncate");
	publish_header_at(c, b.hdr, b.status);
	check_sigbus_survived(c, name);
}

/* The inflight area (an unsealable memfd) truncated after SET_INFLIGHT_FD. */
static void sigbus_inflight(void)
{
	const char *name = "inflight area truncated under the daemon";
	struct vblk_client *c = connect_a(false);
	struct vhost_msg_inflight in = { .num_queues = 2, .queue_size = QSIZE };
	struct vhost_frontend *f;
	struct bufs b;
	int ifd = memfd_create("vblk-test-inflight", MFD_CLOEXEC);

	if (!ok(c && ifd >= 0, "%s: connect", name))
		goto out;
	f = vblk_client_frontend(c);
	in.mmap_size = (2 * virtq_inflight_size(QSIZE, false) + 4095) & ~4095ull;
	if (ftruncate(ifd, (off_t)in.mmap_size))
		tap_bail("ftruncate");
	ok(vhost_frontend_set_protocol_features(f, PROTO_BASE |
		(1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)) == 0 &&
	   vhost_frontend_request(f, VHOST_USER_SET_INFLIGHT_FD, &in, sizeof(in), &ifd, 1) == 0 &&
	   rw_check(c, 0, 910, 0), "%s: serves with an inflight area", name);
	if (ftruncate(ifd, 0))
		tap_bail("ftruncate");
	bufs_alloc(c, &b);
	publish_header_at(c, b.hdr, b.status);
	check_sigbus_survived(c, name);
	c = NULL;
out:
	vblk_client_destroy(c);
	if (ifd >= 0)
		close(ifd);
}

/* losetup --find --show @img into @dev; false if that is not possible here. */
static bool loop_attach(const char *img, char *dev, size_t n)
{
	char cmd[512];
	FILE *p;
	bool good;

	snprintf(cmd, sizeof(cmd), "losetup --find --show '%s' 2>/dev/null", img);
	p = popen(cmd, "r");
	if (!p)
		return false;
	good = fgets(dev, (int)n, p) != NULL;
	if (pclose(p) != 0)
		good = false;
	dev[strcspn(dev, "\n")] = '\0';
	return good && dev[0] == '/';
}

static void loop_run(const char *fmt, const char *arg)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), fmt, arg);
	if (system(cmd) != 0)
		diag("'%s' failed", cmd);
}

/*
 * A memory region on a block device: smaller than the region (refused at
 * ADD_MEM_REG), or shrunk after it was mapped (the guard). Root and loop
 * devices only.
 */
static void sigbus_block_device(void)
{
	struct gmem_region_desc rd = {
		.gpa = 0x200000000ull, .size = 1u << 20, .uva = 0x7f0000000000ull,
	};
	char img[256], dev[128];
	int i;

	if (geteuid() != 0 || access("/dev/loop-control", F_OK)) {
		skip("block device regions: needs root and loop devices");
		return;
	}
	vblkd_proc_path(&proc, "small.img", img, sizeof(img));
	for (i = 0; i < 2; i++) {
		const char *name = i == 0 ? "a block device smaller than its region" :
				   "a block device shrunk under its region";
		struct vblk_client *c;
		int bfd, ret;

		make_image(img, i == 0 ? 64u << 10 : rd.size);
		if (!loop_attach(img, dev, sizeof(dev))) {
			skip("%s: losetup does not work here", name);
			continue;
		}
		c = connect_a(false);
		bfd = open(dev, O_RDWR | O_CLOEXEC);
		if (!c || bfd < 0)
			tap_bail("%s: setup: %s", name, strerror(errno));
		ret = vhost_frontend_set_protocol_features(vblk_client_frontend(c), PROTO_BASE |
			(1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS));
		ret = ret ?: vhost_frontend_add_mem_reg(vblk_client_frontend(c), &rd, bfd);
		if (i == 0) {
			ok(ret != 0, "%s: ADD_MEM_REG is refused", name);
		} else {
			is(ret, 0, "%s: ADD_MEM_REG of a device as large as the region", name);
			if (truncate(img, 64 << 10))
				tap_bail("truncate");
			loop_run("losetup --set-capacity %s", dev);
		}
		if (ret == 0) {   /* a header past the device's end */
			struct bufs b;

			bufs_alloc(c, &b);
			publish_header_at(c, rd.gpa + (512u << 10), b.status);
		}
		check_sigbus_survived(c, name);
		close(bfd);
		loop_run("losetup --detach %s", dev);
	}
	unlink(img);
}

static void test_sigbus(void)
{
	sigbus_guest_memory();
	sigbus_inflight();
	sigbus_block_device();
}

/* ---- connection cycles ----------------------------------------------------- */

static void test_cycles(void)
{
	struct vblk_client_opts o = {
		.num_queues = 2, .queue_size = QSIZE, .err_fds = true, .mem_size = 1u << 20,
	};
	unsigned failed = 0, io_failed = 0, i;
	long rss0, rss1;
	int fds0, fds1;
	uint64_t t0;

	/* Warm up: thread arenas, request pools and the like reach steady state. */
	for (i = 0; i < 50; i++) {
		struct vblk_client *c = NULL;

		if (vblk_client_connect(sock_a, &o, &c) == 0)
			rw_check(c, i % 2, i, 0);
		vblk_client_destroy(c);
	}
	fds0 = fd_count_stable();
	rss0 = vblkd_proc_rss_kib(&proc);
	t0 = now_ms();
	for (i = 0; i < CYCLES; i++) {
		struct vblk_client *c = NULL;

		o.packed = i % 2;
		if (vblk_client_connect(sock_a, &o, &c)) {
			failed++;
		} else if (i % 50 == 0 && !(rw_check(c, 0, i, 0) && rw_check(c, 1, i + 1, 0))) {
			io_failed++;
		}
		vblk_client_destroy(c);
	}
	ok(failed == 0 && io_failed == 0, "%d connect/handshake/disconnect cycles in %llu ms "
	   "(%u failed, %u I/O checks failed)", CYCLES, (unsigned long long)(now_ms() - t0),
	   failed, io_failed);
	fds1 = fd_count_settles(fds0);
	is(fds1, fds0, "cycles: the daemon's fd count is back where it was");
	rss1 = vblkd_proc_rss_kib(&proc);
	ok(rss0 > 0 && rss1 > 0 && rss1 - rss0 < RSS_SLACK_KIB,
	   "cycles: RSS grew by %ld KiB (%ld -> %ld; limit %d)", rss1 - rss0, rss0, rss1,
	   RSS_SLACK_KIB);
	ok(vblkd_proc_alive(&proc), "cycles: vblkd still runs");
}

/* ---- main ------------------------------------------------------------------ */

/* Stop the daemon (if it still runs) and remove the temp dir, however we end. */
static void cleanup_at_exit(void)
{
	vblkd_proc_cleanup(&proc);
}

static void make_image(const char *path, uint64_t size)
{
	int ret = fixture_image(path, size);

	if (ret)
		tap_bail("image %s: %s", path, strerror(-ret));
}

int main(int argc, char **argv)
{
	char img_a[256], img_b[256], img_c[256], ea[700], eb[700], ec[700], how[96];
	const char *args[] = { ea, eb, ec, NULL };
	struct phase_mark pm;
	int st;

	vblkd = vblk_test_start(argc, argv, &proc);
	atexit(cleanup_at_exit);    /* also after a Bail out */
	vblkd_proc_path(&proc, "a.sock", sock_a, sizeof(sock_a));
	vblkd_proc_path(&proc, "b.sock", sock_b, sizeof(sock_b));
	vblkd_proc_path(&proc, "a.img", img_a, sizeof(img_a));
	vblkd_proc_path(&proc, "b.img", img_b, sizeof(img_b));
	vblkd_proc_path(&proc, "c.sock", sock_c, sizeof(sock_c));
	vblkd_proc_path(&proc, "c.img", img_c, sizeof(img_c));
	make_image(img_a, IMG_SIZE);
	make_image(img_b, IMG_SIZE);
	make_image(img_c, IMG_SIZE);
	snprintf(ea, sizeof(ea), "--export=socket-path=%s,file=%s,num-queues=2", sock_a, img_a);
	snprintf(eb, sizeof(eb), "--export=socket-path=%s,file=%s", sock_b, img_b);
	snprintf(ec, sizeof(ec), "--export=socket-path=%s,file=%s", sock_c, img_c);
	{
		/*
		 * Under ASan, freed memory sits in a quarantine of up to 256 MiB
		 * by design, which the RSS bound would measure instead of leaks:
		 * keep it small (use-after-free right after free is still caught).
		 * No effect on a daemon built without ASan.
		 */
		const char *old = getenv("ASAN_OPTIONS");
		char env[1024];

		snprintf(env, sizeof(env), "%s%squarantine_size_mb=1:thread_local_quarantine_size_kb=64",
			 old ? old : "", old && *old ? ":" : "");
		setenv("ASAN_OPTIONS", env, 1);
	}
	if (vblkd_proc_start(&proc, vblkd, args))
		tap_bail("cannot start %s", vblkd);

	if (pthread_create(&b_thread, NULL, bystander, NULL) ||
	    pthread_create(&c_thread, NULL, newcomer, NULL))
		tap_bail("pthread_create");

	phase_begin(&pm);
	for (unsigned i = 0; i < ARRAY_SIZE(ring_cases); i++)
		test_ring_case(&ring_cases[i]);
	check_bystander(&pm, "the ring attacks");

	phase_begin(&pm);
	test_messages();
	check_bystander(&pm, "the malformed messages");

	phase_begin(&pm);
	test_iotlb_refused();
	check_bystander(&pm, "the IOTLB messages");

	phase_begin(&pm);
	test_kick_storm();
	check_bystander(&pm, "the kick storm");

	phase_begin(&pm);
	test_stalls();
	check_bystander(&pm, "stalled, flooding and oversized-ring frontends");

	phase_begin(&pm);
	test_inflight_disconnect();
	check_bystander(&pm, "the in-flight disconnects");

	phase_begin(&pm);
	test_blocking_fds();
	check_bystander(&pm, "the blocking fds");

	phase_begin(&pm);
	test_fd_kinds();
	check_bystander(&pm, "the unusable notification fds");

	phase_begin(&pm);
	test_sigbus();
	check_bystander(&pm, "the shrinking shared memory");

	phase_begin(&pm);
	test_cycles();
	check_bystander(&pm, "the connection cycles");

	ok(vblkd_proc_alive(&proc), "vblkd survived everything");
	{
		/* SIGTERM with a live session on A: queue 0 broken, writes in
		 * flight on queue 1, and the bystander still busy on B. */
		static struct vblk_req reqs[2 * 60];
		struct vblk_client *c = connect_a(false);
		struct bufs b;

		if (c) {
			bufs_alloc(c, &b);
			s_loop(c, vblk_client_vq(c, 0), &b);
			vblk_client_kick(c, 0, true);
			vblk_client_wait_err(c, 0, TMO);
			submit_and_leave(c, reqs, 60, 77);
		}
		st = vblkd_proc_stop(&proc);
		ok(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		   "vblkd exits 0 on SIGTERM during a session with a broken queue and I/O in flight");
		if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			diag("vblkd %s", st < 0 ? strerror(-st) :
			     vblkd_proc_describe(&proc, how, sizeof(how)));
		vblk_client_destroy(c);
	}
	atomic_store(&b_stop, true);
	pthread_join(b_thread, NULL);
	pthread_join(c_thread, NULL);
	vblkd_proc_cleanup(&proc);
	return tap_done();
}
