/* SPDX-License-Identifier: MIT */
/*
 * test_export_budget.c - an iothread's work per queue is bounded: a guest
 * filling one ring with requests that complete at once (unsupported type,
 * GET_ID) must not keep the iothread from a second queue. The export runs
 * in this process (daemon library, null storage, one iothread) and the
 * guest is vblk_client; the iothread is held in a loop call while both
 * queues are filled and kicked, so the order of work is fixed, not timed.
 *
 * Queue 0 gets 512 unsupported requests whose status bytes are contiguous;
 * queue 1 one GET_ID whose 20-byte answer (the serial) lands on the status
 * bytes of queue-0 requests 400..419. Whichever is processed last wins:
 * serial bytes left there mean queue 1 waited for more than 400 requests
 * of queue 0 (the budget is 256).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "daemon/daemon.h"
#include "func/vblk_client.h"

#define QSIZE    1024u
#define N0       512u       /* queue 0 requests: 2 descriptors each */
#define PROBE    400u       /* first status byte the GET_ID answer covers */
#define SERIAL   "ZZZZZZZZZZZZZZZZZZZZ"
#define T_UNSUPP 0x7fff0000u

struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool held, open;
};

/* Runs in the iothread: hold it until the test opens the gate. */
static void gate_fn(void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->lock);
	g->held = true;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static bool always(void *arg)
{
	return true;
}

static void *ctrl_main(void *arg)
{
	loop_run(arg);
	return NULL;
}

/* One request of header + @in_len writable bytes at @in_gpa + status. */
static int add_req(struct vblk_client *c, unsigned q, uint32_t type, uint64_t in_gpa,
		   uint32_t in_len, uint64_t status_gpa, unsigned token)
{
	uint64_t hdr_gpa;
	struct virtio_blk_outhdr *h = vblk_client_alloc(c, sizeof(*h), 16, &hdr_gpa);
	struct virtq_drv_buf b[3];
	unsigned n = 0;

	if (!h)
		return -ENOMEM;
	h->type = htole32(type);
	h->ioprio = 0;
	h->sector = 0;
	b[n++] = (struct virtq_drv_buf){ hdr_gpa, sizeof(*h) };
	if (in_len)
		b[n++] = (struct virtq_drv_buf){ in_gpa, in_len };
	b[n++] = (struct virtq_drv_buf){ status_gpa, 1 };
	return virtq_drv_add(vblk_client_vq(c, q), b, 1, n - 1, (void *)(uintptr_t)token,
			     NULL, 0);
}

/* Every status byte written (the probe range holds 2 or the serial). */
static bool all_done(volatile uint8_t *st, unsigned n, volatile uint8_t *probe_status)
{
	for (unsigned i = 0; i < n; i++)
		if ((i < PROBE || i >= PROBE + 20) && st[i] == 0xff)
			return false;
	return *probe_status != 0xff;
}

int main(void)
{
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };
	struct vblk_client_opts o = { .num_queues = 2, .queue_size = QSIZE };
	struct export_params p = {
		.name = "budget", .fd = -1,
		.storage = { .engine = STORAGE_NULL, .size = 1 << 20 },
		.num_queues = 2, .queue_size = QSIZE, .serial = SERIAL,
	};
	struct vblk_client *c = NULL;
	struct loop *ctrl;
	struct iothread *t;
	struct export *e;
	pthread_t ctrl_thread;
	char dir[64], sock[96];
	uint64_t st_gpa, ps_gpa;
	volatile uint8_t *st, *ps;
	unsigned serial_left = 0, unsupp = 0, added = 0;
	int ret;

	if (fixture_tmpdir("vblk-budget", dir, sizeof(dir)))
		tap_bail("mkdtemp");
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	p.socket_path = sock;
	/* As vblkd: exports made before the control loop runs, destroyed after. */
	if (loop_create("ctrl", &ctrl) || iothread_create(0, &t))
		tap_bail("loops");
	ret = export_create(&p, ctrl, &t, 1, 0, &e);
	if (ret)
		tap_bail("export_create: %s", strerror(-ret));
	pthread_create(&ctrl_thread, NULL, ctrl_main, ctrl);
	ret = vblk_client_connect(sock, &o, &c);
	if (ret)
		tap_bail("connect: %s", strerror(-ret));

	st = vblk_client_alloc(c, N0, 64, &st_gpa);
	ps = vblk_client_alloc(c, 1, 1, &ps_gpa);
	if (!st || !ps)
		tap_bail("guest memory");
	memset((void *)st, 0xff, N0);
	*ps = 0xff;

	/* Hold the iothread, fill both rings, kick queue 0 then queue 1. */
	loop_post(t->loop, gate_fn, &g);
	pthread_mutex_lock(&g.lock);
	while (!g.held)
		pthread_cond_wait(&g.cond, &g.lock);
	pthread_mutex_unlock(&g.lock);
	for (unsigned i = 0; i < N0; i++)
		added += add_req(c, 0, T_UNSUPP, 0, 0, st_gpa + i, i + 1) == 0;
	is(added, N0, "queue 0: %u unsupported requests made available", N0);
	is(add_req(c, 1, VIRTIO_BLK_T_GET_ID, st_gpa + PROBE, 20, ps_gpa, 1), 0,
	   "queue 1: one GET_ID made available");
	ok(vblk_client_kick(c, 0, true) == 0 && vblk_client_kick(c, 1, true) == 0,
	   "both queues kicked (queue 0 first)");
	pthread_mutex_lock(&g.lock);
	g.open = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);

	/* Wait for every status byte (a bound for a broken build, not a check). */
	for (int i = 0; i < 20000 && !all_done(st, N0, ps); i++)
		usleep(1000);
	ok(all_done(st, N0, ps), "every request completed");
	is(*ps, VIRTIO_BLK_S_OK, "queue 1: GET_ID OK");
	for (unsigned i = 0; i < N0; i++) {
		unsupp += st[i] == VIRTIO_BLK_S_UNSUPP;
		serial_left += st[i] == 'Z';
	}
	if (serial_left)
		diag("queue 1 was served only after queue-0 request %u and later ones: it "
		     "waited behind more than %u requests of one queue", PROBE + 19, PROBE);
	is(serial_left, 0u, "queue 1 served before queue-0 request %u: work per queue is bounded",
	   PROBE);
	is(unsupp, N0, "queue 0: every request completed UNSUPP");

	vblk_client_destroy(c);
	loop_stop(ctrl);
	pthread_join(ctrl_thread, NULL);
	/* This thread runs the control loop from now on (as vblkd's main). */
	loop_run_until(ctrl, always, NULL, 0);
	ok(export_shutdown(&e, 1, ctrl, 30000, 5000) == 0, "export shut down cleanly");
	iothread_destroy(t);
	loop_destroy(ctrl);
	unlink(sock);
	rmdir(dir);
	return tap_done();
}
