/* SPDX-License-Identifier: MIT */
/*
 * test_libvblk_hostile.c - libvblk against a server that corrupts its
 * used ring: the vhost fixture's fake device (tests/unit/vhost) accepts
 * the queue, and this test writes a used entry whose id names no request
 * (out of range, or a slot not in flight). vblkq_do_io must not spin: the
 * requests in flight complete with -EPROTO, then the queue reports
 * -EPROTO for every call. Split and packed, event and poll mode.
 */
#include <signal.h>
#include <linux/virtio_blk.h>

/* The fixture's helpers this test does not need. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "unit/vhost/vhost_test.h"
#pragma GCC diagnostic pop
#include "common/compiler.h"
#include "vblk/vblk.h"

#define QSIZE 64

static void on_alarm(int sig)
{
	static const char msg[] = "not ok - vblkq_do_io still running past its timeout "
				  "(spinning on the corrupt ring)\n";
	ssize_t r = write(1, msg, sizeof(msg) - 1);

	(void)r;
	(void)sig;
	_exit(1);
}

/* Write one used entry with id @id on vring 0 and signal the driver. */
static void corrupt_used(struct env *e, uint16_t id)
{
	struct vhost_vring *vr;
	uint64_t one = 1;
	int call;

	pthread_mutex_lock(&e->dev.lock);
	vr = e->dev.vr[0];
	call = e->dev.call_fd[0];
	pthread_mutex_unlock(&e->dev.lock);
	if (vr->vq.packed) {
		/* First used slot: 0, wrap counter 1 (AVAIL and USED set). */
		struct vring_packed_desc *d = &vr->vq.pdesc[0];

		d->id = htole16(id);
		d->len = 0;
		smp_wmb();
		WRITE_ONCE(d->flags, htole16((1u << VRING_PACKED_DESC_F_AVAIL) |
					     (1u << VRING_PACKED_DESC_F_USED)));
	} else {
		struct vring_used *u = vr->vq.used;
		uint16_t idx = u->idx;

		u->ring[idx % vr->vq.num].id = id;
		u->ring[idx % vr->vq.num].len = 0;
		smp_wmb();
		WRITE_ONCE(u->idx, (uint16_t)(idx + 1));
	}
	if (write(call, &one, sizeof(one)) < 0)
		diag("call fd: %s", strerror(errno));
}

static void run(bool packed, bool poll_mode, uint16_t bad_id)
{
	const char *tag = packed ? (poll_mode ? "packed/poll" : "packed") :
				   (poll_mode ? "split/poll" : "split");
	struct virtio_blk_config cfg = { .capacity = 2048 };
	struct vblk_completion c[8];
	struct vblk_mem_region r;
	struct timespec t = { 5, 0 };
	struct vblk *v = NULL;
	struct vblkq *q;
	struct env e;
	int n, ret, bad = 0;

	env_init(&e, true);
	memcpy(e.dev.config, &cfg, MIN(sizeof(cfg), sizeof(e.dev.config)));
	ret = vblk_create(&v);
	ret = ret ?: vblk_set_str(v, "path", e.path);
	ret = ret ?: vblk_set_bool(v, "packed", packed);
	ret = ret ?: vblk_connect(v);
	ret = ret ?: vblk_set_int(v, "num-queues", 1);
	ret = ret ?: vblk_set_int(v, "queue-size", QSIZE);
	ret = ret ?: vblk_set_bool(v, "poll", poll_mode);
	ret = ret ?: vblk_start(v);
	ret = ret ?: vblk_alloc_mem_region(v, 1 << 20, &r);
	if (ret || !WAIT_FOR(&e, e.dev.running[0])) {
		diag("%s: set-up: %d %s", tag, ret, vblk_get_error_msg());
		ok(0, "%s: client started against the fake server", tag);
		goto out;
	}
	q = vblk_get_queue(v, 0);
	for (int i = 0; i < 3; i++)
		ret = ret ?: vblkq_read(q, (uint64_t)i * 512, (uint8_t *)r.addr + i * 512, 512,
					(void *)(uintptr_t)(i + 1), 0);
	ret = ret ?: vblkq_do_io(q, NULL, 0, 0, NULL);
	is(ret, 0, "%s: 3 reads submitted", tag);

	corrupt_used(&e, bad_id);
	alarm(30);
	n = vblkq_do_io(q, c, 1, 8, &t);
	alarm(0);
	for (int i = 0; i < n; i++)
		bad += c[i].ret != -EPROTO;
	is(n, 3, "%s: used id %u: vblkq_do_io returned every request in flight", tag, bad_id);
	is(bad, 0, "%s: each completed with -EPROTO", tag);
	if (n > 0 && c[0].error_msg)
		diag("%s: error_msg: %s", tag, c[0].error_msg);
	is(vblkq_do_io(q, c, 1, 8, &t), -EPROTO, "%s: the broken queue then returns -EPROTO", tag);
	is(vblkq_read(q, 0, r.addr, 512, NULL, 0), -EPROTO, "%s: and refuses new requests", tag);
out:
	if (v)
		vblk_destroy(&v);
	env_fini(&e);
}

int main(void)
{
	signal(SIGALRM, on_alarm);
	run(false, false, 200);        /* beyond the ring */
	run(false, false, 40);         /* in range, never in flight */
	run(false, true, 200);
	run(true, false, 200);
	run(true, false, 40);
	run(true, true, 200);
	return tap_done();
}
