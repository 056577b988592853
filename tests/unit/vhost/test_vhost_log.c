/* SPDX-License-Identifier: MIT */
/*
 * Dirty logging over the vhost-user socket (LOG_SHMFD): features offered,
 * SET_LOG_BASE answered, LOG_ALL and the vring log address toggled on a
 * running ring (what QEMU sends when migration starts and ends), ring
 * writes landing in the current log, a new log replacing the old one; and
 * every malformed log (too small, unmappable, past its file, huge, ring
 * log address outside it) closing that connection only.
 */
#include "vhost_test.h"
#include "vhost/vhost_log.h"

#define LOG_BYTES 64u                     /* covers 2 MiB = T_MEM_SIZE */
#define F_LOG_ALL (1ull << VHOST_F_LOG_ALL)
#define FEAT ((1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES))
#define PROTO (T_PROTO_ALL | (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD))

static int log_memfd(uint64_t size)
{
	int fd = memfd_create("log", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)size))
		tap_bail("memfd");
	return fd;
}

/* Bits of log fd @fd: the page numbers set, as a small list. */
static unsigned log_pages(int fd, unsigned *pages, unsigned max)
{
	uint8_t b[LOG_BYTES];
	unsigned n = 0;

	if (pread(fd, b, sizeof(b), 0) != (ssize_t)sizeof(b))
		tap_bail("pread");
	for (unsigned i = 0; i < LOG_BYTES * 8; i++)
		if ((b[i / 8] & (1u << (i % 8))) && n < max)
			pages[n++] = i;
	return n;
}

/* Negotiate with LOG_SHMFD, map memory and start ring 0 (split, 256). */
static int start_ring(struct env *e, struct vhost_frontend *f, int kick)
{
	struct gmem_region_desc r[2];
	int fds[2] = { e->memfd, e->memfd }, ret;

	env_regions(r);
	ret = vhost_frontend_set_protocol_features(f, PROTO);
	ret = ret ?: vhost_frontend_set_owner(f);
	ret = ret ?: vhost_frontend_set_features(f, FEAT);
	ret = ret ?: vhost_frontend_set_mem_table(f, r, fds, 2);
	ret = ret ?: vhost_frontend_set_vring_num(f, 0, 256);
	ret = ret ?: vhost_frontend_set_vring_addr(f, 0, 0, ring_uva(0, T_DESC),
						   ring_uva(0, T_USED), ring_uva(0, T_AVAIL), 0);
	ret = ret ?: vhost_frontend_set_vring_kick(f, 0, kick);
	ret = ret ?: vhost_frontend_set_vring_enable(f, 0, true);
	if (!ret && !DEV(e, running[0]))
		ret = -ENODEV;
	return ret;
}

/* The running ring's virtq, as the device sees it. */
static struct virtq *ring0(struct env *e)
{
	return &DEV(e, vr[0])->vq;
}

static void test_flow(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	int kick = eventfd(0, EFD_CLOEXEC), log1 = log_memfd(LOG_BYTES), log2 = log_memfd(LOG_BYTES);
	uint64_t v, used_gpa = T_RING_OFF(0) + T_USED;   /* gpa == memfd offset here */
	unsigned pages[8], n;

	is(vhost_frontend_get_features(f, &v), 0, "GET_FEATURES");
	ok(v & F_LOG_ALL, "LOG_ALL offered (the device logs its writes)");
	is(vhost_frontend_get_protocol_features(f, &v), 0, "GET_PROTOCOL_FEATURES");
	ok(v & (1ull << VHOST_USER_PROTOCOL_F_LOG_SHMFD), "LOG_SHMFD offered");
	is(start_ring(e, f, kick), 0, "ring 0 runs without logging");
	ok(ring0(e)->log == NULL, "no log yet");

	/* QEMU's order when migration starts: log, LOG_ALL, vring addresses. */
	is(vhost_frontend_set_log_base(f, log1, LOG_BYTES, 0), 0, "SET_LOG_BASE answered");
	ok(ring0(e)->log == NULL, "a log alone does not turn logging on");
	is(vhost_frontend_set_features(f, FEAT | F_LOG_ALL), 0, "LOG_ALL on a running ring");
	ok(DEV(e, running[0]) && ring0(e)->log != NULL, "ring keeps running, now logging");
	is(ring0(e)->log_device, used_gpa, "used ring found by its frontend address");
	is(vhost_frontend_set_vring_addr(f, 0, 1u << VHOST_VRING_F_LOG, ring_uva(0, T_DESC),
					 ring_uva(0, T_USED), ring_uva(0, T_AVAIL), used_gpa), 0,
	   "SET_VRING_ADDR with the log flag on a running ring");
	is(ring0(e)->log_device, used_gpa, "ring logs at the vring log address");

	virtq_disable_notify(ring0(e));   /* writes used->flags */
	n = log_pages(log1, pages, 8);
	ok(n == 1 && pages[0] == used_gpa / 4096, "a used ring write marks its page only (%u bits)", n);

	/* A new log replaces the old one; the old one sees no more marks. */
	is(vhost_frontend_set_log_base(f, log2, LOG_BYTES, 0), 0, "second SET_LOG_BASE");
	if (ftruncate(log1, 0) || ftruncate(log1, LOG_BYTES))
		tap_bail("ftruncate");
	virtq_enable_notify(ring0(e));
	ok(log_pages(log1, pages, 8) == 0, "old log untouched after the swap");
	n = log_pages(log2, pages, 8);
	ok(n == 1 && pages[0] == used_gpa / 4096, "new log gets the mark");

	/* Migration over (or cancelled): logging off, ring still running. */
	is(vhost_frontend_set_features(f, FEAT), 0, "LOG_ALL off on a running ring");
	ok(DEV(e, running[0]) && ring0(e)->log == NULL, "ring runs, no longer logging");
	is(vhost_frontend_get_vring_base(f, 0, (unsigned *)&n), 0, "GET_VRING_BASE stops it");
	vhost_frontend_destroy(f);
	close(kick);
	close(log1);
	close(log2);
	ok(healthy_and_close(e), "server serves the next session");
}

/*
 * A ring whose thread does not take the switch to LOG_ALL (the export's
 * queue_exec timed out) would go on writing unlogged while the frontend
 * believes it logs: the connection must close instead of acking.
 */
static void test_switch_not_taken(struct env *e)
{
	struct vhost_frontend *f = fe_connect(e);
	int kick = eventfd(0, EFD_CLOEXEC), log = log_memfd(LOG_BYTES);
	int disc0 = DEV(e, disconnects);

	if (start_ring(e, f, kick) || vhost_frontend_set_log_base(f, log, LOG_BYTES, 0)) {
		ok(0, "stuck ring: setup");
		goto out;
	}
	pthread_mutex_lock(&e->dev.lock);
	e->dev.exec_fail = -ETIMEDOUT;
	pthread_mutex_unlock(&e->dev.lock);
	vhost_frontend_set_features(f, FEAT | F_LOG_ALL);
	ok(fe_closed_by_peer(f), "LOG_ALL a ring's thread did not take: connection closed");
	ok(WAIT_FOR(e, e->dev.disconnects == disc0 + 1 && !e->dev.running[0]),
	   "stuck ring: session torn down");
	pthread_mutex_lock(&e->dev.lock);
	e->dev.exec_fail = 0;
	pthread_mutex_unlock(&e->dev.lock);
out:
	vhost_frontend_destroy(f);
	close(kick);
	close(log);
	ok(healthy_and_close(e), "server serves the next session after the stuck switch");
}

struct bad_log {
	const char *name;
	uint64_t size, offset, file;   /* file 0: an eventfd (cannot be mapped) */
	bool running;                  /* logging on a running ring first */
	uint64_t ring_log;             /* then: SET_VRING_ADDR with this log address */
};

static void bad_case(struct env *e, const struct bad_log *b)
{
	int fds0 = count_fds(), disc0 = DEV(e, disconnects);
	struct vhost_frontend *f = fe_connect(e);
	int kick = eventfd(0, EFD_CLOEXEC), good = log_memfd(LOG_BYTES);
	int fd = b->file ? log_memfd(b->file) : eventfd(0, EFD_CLOEXEC);
	struct vhost_msg_log l = { .mmap_size = b->size, .mmap_offset = b->offset };
	bool closed;

	if (start_ring(e, f, kick)) {
		ok(0, "%s: setup", b->name);
		goto out;
	}
	if (b->running) {
		if (vhost_frontend_set_log_base(f, good, LOG_BYTES, 0) ||
		    vhost_frontend_set_features(f, FEAT | F_LOG_ALL)) {
			ok(0, "%s: logging setup", b->name);
			goto out;
		}
		vhost_frontend_set_vring_addr(f, 0, 1u << VHOST_VRING_F_LOG, ring_uva(0, T_DESC),
					      ring_uva(0, T_USED), ring_uva(0, T_AVAIL), b->ring_log);
	} else {
		vhost_frontend_send(f, VHOST_USER_SET_LOG_BASE, VHOST_USER_VERSION, &l, sizeof(l),
				    &fd, 1);
	}
	closed = fe_closed_by_peer(f);
	ok(closed, "%s: connection closed", b->name);
	ok(WAIT_FOR(e, e->dev.disconnects == disc0 + 1 && !e->dev.running[0]),
	   "%s: session torn down", b->name);
out:
	vhost_frontend_destroy(f);
	close(kick);
	close(good);
	close(fd);
	ok(healthy_and_close(e), "%s: server still serves a healthy session", b->name);
	is(count_fds(), fds0, "%s: no fd leaked", b->name);
}

int main(void)
{
	static const struct bad_log bad[] = {
		{ "log too small for the memory table", LOG_BYTES / 2, 0, LOG_BYTES, false, 0 },
		{ "log longer than its file", 4096, 0, LOG_BYTES, false, 0 },
		{ "log offset beyond its file", LOG_BYTES, 1u << 20, LOG_BYTES, false, 0 },
		{ "log size 2^40", 1ull << 40, 0, LOG_BYTES, false, 0 },
		{ "log size 0", 0, 0, LOG_BYTES, false, 0 },
		{ "offset + size overflow", LOG_BYTES, UINT64_MAX - 8, LOG_BYTES, false, 0 },
		{ "log fd that cannot be mapped", LOG_BYTES, 0, 0, false, 0 },
		{ "ring log address outside the log", 0, 0, LOG_BYTES, true, 1ull << 40 },
		{ "ring log address wrapping", 0, 0, LOG_BYTES, true, UINT64_MAX - 2 },
	};
	struct env e;

	env_init(&e, false);
	e.info.features |= F_LOG_ALL;
	if (env_server_create(&e, e.path, -1))
		tap_bail("server");
	test_flow(&e);
	test_switch_not_taken(&e);
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
		bad_case(&e, &bad[i]);
	env_fini(&e);
	return tap_done();
}
