/* SPDX-License-Identifier: MIT */
/*
 * vhost_test.h - shared fixture for the vhost protocol tests: a fake
 * device that records every ops call, a control loop in its own thread,
 * a server on a unix socket in a temp dir, guest memory in a memfd, and
 * a QEMU-like "healthy session" that must work after anything else.
 */
#ifndef VBLK_TESTS_VHOST_TEST_H
#define VBLK_TESTS_VHOST_TEST_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "common/log.h"
#include "vhost/vhost.h"
#include "vhost/vhost_frontend.h"
#include "vhost/vhost_msg.h"
#include "fixture/fixture.h"
#include "tap.h"

#define T_NUM_QUEUES   2
#define T_MAX_QSIZE    1024
#define T_CONFIG_SIZE  60
#define T_DEV_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) | \
			(1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_F_RING_PACKED) | \
			(1ull << 9) /* VIRTIO_BLK_F_FLUSH */)
#define T_PROTO_ALL ((1ull << VHOST_USER_PROTOCOL_F_MQ) | \
		     (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
		     (1ull << VHOST_USER_PROTOCOL_F_CONFIG) | \
		     (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

/* Guest memory: two regions of one memfd, rings in the second. */
#define T_MEM_SIZE   (2u << 20)
#define T_REG_SIZE   (1u << 20)
#define T_UVA0       0x7f0000000000ull
#define T_UVA1       0x7f0000400000ull    /* not contiguous with region 0 */
#define T_RING_OFF(q) (T_REG_SIZE + (q) * 0x10000u)   /* offset in the memfd */
#define T_DESC   0x0000u
#define T_AVAIL  0x1000u
#define T_USED   0x2000u

struct fake_dev {
	pthread_mutex_t lock;
	struct loop *ctrl;
	int starts, stops, execs, disconnects, set_features_calls, set_config_calls;
	uint64_t features;
	bool async_stop;          /* done() posted to the loop, not called inline */
	uint16_t stop_advance;    /* "progress" made by the queue before stopping */
	bool refuse_set_config;
	int exec_fail;            /* queue_exec: not run, this error (a stuck thread) */
	bool running[T_NUM_QUEUES];
	struct vhost_vring *vr[T_NUM_QUEUES];
	/* snapshot at the last queue_start / queue_exec of each vring */
	unsigned num[T_NUM_QUEUES];
	uint16_t start_base[T_NUM_QUEUES];
	bool packed[T_NUM_QUEUES], event_idx[T_NUM_QUEUES];
	uint64_t mark_desc[T_NUM_QUEUES], mark_drv[T_NUM_QUEUES], mark_dev[T_NUM_QUEUES];
	void *desc_ptr[T_NUM_QUEUES];
	struct gmem *mem[T_NUM_QUEUES];
	int call_fd[T_NUM_QUEUES], kick_fd[T_NUM_QUEUES];
	uint8_t config[T_CONFIG_SIZE];
	uint32_t set_cfg_off, set_cfg_len;
	uint8_t set_cfg_buf[VHOST_USER_MAX_CONFIG_SIZE];
};

struct env {
	struct fake_dev dev;
	struct loop *ctrl;
	struct vhost_server *srv;
	struct vhost_dev_info info;
	char dir[64];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int memfd;
	uint8_t *gmem;            /* the test's own mapping of the memfd */
};

/* ---- fake device ------------------------------------------------------ */

static int fd_get_config(void *o, uint32_t off, void *buf, uint32_t len)
{
	struct fake_dev *d = o;

	memcpy(buf, d->config + off, len);
	return 0;
}

static int fd_set_config(void *o, uint32_t off, const void *buf, uint32_t len)
{
	struct fake_dev *d = o;

	pthread_mutex_lock(&d->lock);
	d->set_config_calls++;
	d->set_cfg_off = off;
	d->set_cfg_len = len;
	memcpy(d->set_cfg_buf, buf, len);
	pthread_mutex_unlock(&d->lock);
	return d->refuse_set_config ? -EINVAL : 0;
}

static void fd_set_features(void *o, uint64_t f)
{
	struct fake_dev *d = o;

	pthread_mutex_lock(&d->lock);
	d->set_features_calls++;
	d->features = f;
	pthread_mutex_unlock(&d->lock);
}

/* Record what the ring looks like now (called with d->lock held). */
static void fd_snapshot(struct fake_dev *d, struct vhost_vring *vr)
{
	unsigned i = vr->index;
	void *desc = vr->vq.packed ? (void *)vr->vq.pdesc : (void *)vr->vq.desc;
	void *drv = vr->vq.packed ? (void *)vr->vq.driver_event : (void *)vr->vq.avail;
	void *dev = vr->vq.packed ? (void *)vr->vq.device_event : (void *)vr->vq.used;

	d->vr[i] = vr;
	d->num[i] = vr->vq.num;
	d->packed[i] = vr->vq.packed;
	d->event_idx[i] = vr->vq.event_idx;
	d->desc_ptr[i] = desc;
	/* The areas are the server's own mapping: read the test's markers. */
	memcpy(&d->mark_desc[i], desc, 8);
	memcpy(&d->mark_drv[i], drv, 4);
	memcpy(&d->mark_dev[i], dev, 4);
	d->mem[i] = vr->mem;
	d->call_fd[i] = vr->call_fd;
	d->kick_fd[i] = vr->kick_fd;
}

static int fd_queue_start(void *o, struct vhost_vring *vr)
{
	struct fake_dev *d = o;

	pthread_mutex_lock(&d->lock);
	d->starts++;
	d->running[vr->index] = true;
	d->start_base[vr->index] = vr->vq.last_avail_idx;
	fd_snapshot(d, vr);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static void fd_queue_stop(void *o, struct vhost_vring *vr, vhost_done_cb done, void *arg)
{
	struct fake_dev *d = o;

	pthread_mutex_lock(&d->lock);
	d->stops++;
	d->running[vr->index] = false;
	vr->vq.last_avail_idx += d->stop_advance;
	pthread_mutex_unlock(&d->lock);
	if (d->async_stop)
		loop_post(d->ctrl, done, arg);
	else
		done(arg);
}

static int fd_queue_exec(void *o, struct vhost_vring *vr, loop_fn fn, void *arg)
{
	struct fake_dev *d = o;

	if (d->exec_fail)
		return d->exec_fail;   /* withdrawn, as loop_call_timeout does */
	fn(arg);
	pthread_mutex_lock(&d->lock);
	d->execs++;
	fd_snapshot(d, vr);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static void fd_disconnected(void *o)
{
	struct fake_dev *d = o;

	pthread_mutex_lock(&d->lock);
	d->disconnects++;
	pthread_mutex_unlock(&d->lock);
}

static const struct vhost_dev_ops fake_ops = {
	.get_config = fd_get_config,
	.set_config = fd_set_config,
	.set_features = fd_set_features,
	.queue_start = fd_queue_start,
	.queue_stop = fd_queue_stop,
	.queue_exec = fd_queue_exec,
	.disconnected = fd_disconnected,
};

/* Read a fake-device field under its lock. */
#define DEV(e, field) ({ \
		__typeof__((e)->dev.field) v__; \
		pthread_mutex_lock(&(e)->dev.lock); \
		v__ = (e)->dev.field; \
		pthread_mutex_unlock(&(e)->dev.lock); \
		v__; })

/* Poll (up to 5 s) until cond holds, evaluated under the device lock. */
#define WAIT_FOR(e, cond) ({ \
		bool ok__ = false; \
		for (int i__ = 0; i__ < 5000 && !ok__; i__++) { \
			pthread_mutex_lock(&(e)->dev.lock); \
			ok__ = (cond); \
			pthread_mutex_unlock(&(e)->dev.lock); \
			if (!ok__) \
				usleep(1000); \
		} \
		ok__; })

/* ---- environment ------------------------------------------------------ */

#define count_fds() fixture_count_fds(0)

struct create_call {
	struct env *e;
	const char *path;
	int fd;
	int ret;
};

static void env_create_server_fn(void *arg)
{
	struct create_call *c = arg;

	c->ret = vhost_server_create(c->e->ctrl, c->path, c->fd, &c->e->info, &fake_ops,
				     &c->e->dev, &c->e->srv);
}

/* Create the server from inside the control thread. */
static int env_server_create(struct env *e, const char *path, int fd)
{
	struct create_call c = { .e = e, .path = path, .fd = fd };

	loop_call(e->ctrl, env_create_server_fn, &c);
	return c.ret;
}

static void env_server_destroy(struct env *e)
{
	vhost_server_destroy(e->srv);   /* from the test thread: waits */
	e->srv = NULL;
}

static void env_init(struct env *e, bool with_server)
{
	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->dev.lock, NULL);
	for (unsigned i = 0; i < T_CONFIG_SIZE; i++)
		e->dev.config[i] = (uint8_t)(0xa0 + i);
	e->info = (struct vhost_dev_info){
		.num_queues = T_NUM_QUEUES,
		.max_queue_size = T_MAX_QSIZE,
		.features = T_DEV_FEATURES,
		.config_size = T_CONFIG_SIZE,
	};
	if (loop_create("ctrl", &e->ctrl) || loop_start(e->ctrl))
		tap_bail("loop");
	e->dev.ctrl = e->ctrl;
	if (fixture_tmpdir("vblk-vhost", e->dir, sizeof(e->dir)))
		tap_bail("mkdtemp: %s", strerror(errno));
	snprintf(e->path, sizeof(e->path), "%s/sock", e->dir);
	if (fixture_memfd_map("guest", T_MEM_SIZE, &e->memfd, &e->gmem))
		tap_bail("guest memory");
	/* Markers the device side must see through its own mapping. */
	for (unsigned q = 0; q < T_NUM_QUEUES; q++) {
		uint64_t md = 0x1111000000000000ull | q;
		uint32_t ma = 0x22220000u | q, mu = 0x33330000u | q;

		memcpy(e->gmem + T_RING_OFF(q) + T_DESC, &md, 8);
		memcpy(e->gmem + T_RING_OFF(q) + T_AVAIL, &ma, 4);
		memcpy(e->gmem + T_RING_OFF(q) + T_USED, &mu, 4);
	}
	if (with_server && env_server_create(e, e->path, -1))
		tap_bail("server create");
}

static void env_fini(struct env *e)
{
	if (e->srv)
		env_server_destroy(e);
	loop_destroy(e->ctrl);
	munmap(e->gmem, T_MEM_SIZE);
	close(e->memfd);
	unlink(e->path);
	rmdir(e->dir);
	pthread_mutex_destroy(&e->dev.lock);
}

static void env_regions(struct gmem_region_desc r[2])
{
	r[0] = (struct gmem_region_desc){ .gpa = 0, .size = T_REG_SIZE, .uva = T_UVA0,
					  .mmap_offset = 0 };
	r[1] = (struct gmem_region_desc){ .gpa = T_REG_SIZE, .size = T_REG_SIZE, .uva = T_UVA1,
					  .mmap_offset = T_REG_SIZE };
}

static uint64_t ring_uva(unsigned q, unsigned area)
{
	return T_UVA1 + (T_RING_OFF(q) - T_REG_SIZE) + area;
}

/*
 * Configure and enable vring q on an open, negotiated connection whose
 * memory is set: size @num, resuming at @base, kick and call fds (-1:
 * none), in QEMU's order.
 */
static inline int env_start_ring(struct vhost_frontend *f, unsigned q, int kick, int call,
				 unsigned num, unsigned base)
{
	int ret;

	ret = vhost_frontend_set_vring_num(f, q, num);
	ret = ret ?: vhost_frontend_set_vring_base(f, q, base);
	ret = ret ?: vhost_frontend_set_vring_addr(f, q, 0, ring_uva(q, T_DESC),
						   ring_uva(q, T_USED), ring_uva(q, T_AVAIL), 0);
	ret = ret ?: vhost_frontend_set_vring_kick(f, q, kick);
	ret = ret ?: vhost_frontend_set_vring_call(f, q, call);
	ret = ret ?: vhost_frontend_set_vring_enable(f, q, true);
	return ret;
}

static bool markers_ok(struct env *e, unsigned q)
{
	bool ok_ = DEV(e, mark_desc[q]) == (0x1111000000000000ull | q) &&
		   (uint32_t)DEV(e, mark_drv[q]) == (0x22220000u | q) &&
		   (uint32_t)DEV(e, mark_dev[q]) == (0x33330000u | q);

	if (!ok_)
		diag("markers for vring %u: %#llx %#llx %#llx", q,
		     (unsigned long long)DEV(e, mark_desc[q]),
		     (unsigned long long)DEV(e, mark_drv[q]),
		     (unsigned long long)DEV(e, mark_dev[q]));
	return ok_;
}

static struct vhost_frontend *fe_connect(struct env *e)
{
	struct vhost_frontend *f;
	int ret = vhost_frontend_connect(e->path, &f);

	if (ret) {
		diag("connect %s: %s", e->path, strerror(-ret));
		return NULL;
	}
	vhost_frontend_set_timeout(f, 5000);
	return f;
}

/*
 * True once the backend closed the connection: EOF (or reset) within 5 s.
 * Any reply bytes before the EOF are skipped.
 */
static inline bool fe_closed_by_peer(struct vhost_frontend *f)
{
	char buf[512];

	for (;;) {
		ssize_t n = recv(vhost_frontend_fd(f), buf, sizeof(buf), 0);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return false;   /* timeout: still open */
	}
}

#define CHECK(expr) do { \
		int r__ = (expr); \
		if (r__) { \
			diag("%s:%d: %s: %s", __FILE__, __LINE__, #expr, strerror(-r__)); \
			goto out; \
		} \
	} while (0)

#define CHECK_TRUE(cond) do { \
		if (!(cond)) { \
			diag("%s:%d: %s is false", __FILE__, __LINE__, #cond); \
			goto out; \
		} \
	} while (0)

/*
 * What QEMU 7.2 does for vhost-user-blk, in its order, for vring q:
 * features, protocol features, owner, queue num, mem slots, config,
 * call fds, features, memory, num/base/addr/kick/call, enable; then
 * check the ring started with the right pointers, and stop it.
 * Leaves the connection open in *out (if out) or closes it.
 */
static bool healthy_session(struct env *e, unsigned q, struct vhost_frontend **out)
{
	struct gmem_region_desc r[2];
	struct vhost_frontend *f = NULL;
	uint64_t v, feat;
	int efd_kick = -1, efd_call = -1, fds[2];
	int starts0 = DEV(e, starts), stops0 = DEV(e, stops);
	uint8_t cfg[T_CONFIG_SIZE];
	unsigned base;
	bool good = false;

	f = fe_connect(e);
	CHECK_TRUE(f);
	CHECK(vhost_frontend_get_features(f, &feat));
	CHECK_TRUE(feat == (e->info.features | (1ull << VHOST_USER_F_PROTOCOL_FEATURES)));
	CHECK(vhost_frontend_get_protocol_features(f, &v));
	CHECK_TRUE((v & T_PROTO_ALL) == T_PROTO_ALL);
	CHECK(vhost_frontend_set_protocol_features(f, T_PROTO_ALL));
	CHECK(vhost_frontend_get_queue_num(f, &v));
	CHECK_TRUE(v == T_NUM_QUEUES);
	CHECK(vhost_frontend_get_max_mem_slots(f, &v));
	CHECK_TRUE(v == GMEM_MAX_REGIONS);
	CHECK(vhost_frontend_set_owner(f));
	CHECK(vhost_frontend_get_config(f, 0, cfg, sizeof(cfg)));
	CHECK_TRUE(memcmp(cfg, e->dev.config, sizeof(cfg)) == 0);
	efd_kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	efd_call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_TRUE(efd_kick >= 0 && efd_call >= 0);
	CHECK(vhost_frontend_set_vring_call(f, q, efd_call));
	CHECK(vhost_frontend_set_features(f, (1ull << VIRTIO_F_VERSION_1) |
					  (1ull << VIRTIO_RING_F_EVENT_IDX) |
					  (1ull << VHOST_USER_F_PROTOCOL_FEATURES)));
	env_regions(r);
	fds[0] = fds[1] = e->memfd;
	CHECK(vhost_frontend_set_mem_table(f, r, fds, 2));
	CHECK(vhost_frontend_set_vring_num(f, q, 256));
	CHECK(vhost_frontend_set_vring_base(f, q, 7));
	CHECK(vhost_frontend_set_vring_addr(f, q, 0, ring_uva(q, T_DESC), ring_uva(q, T_USED),
					    ring_uva(q, T_AVAIL), 0));
	CHECK(vhost_frontend_set_vring_kick(f, q, efd_kick));
	CHECK_TRUE(DEV(e, starts) == starts0);   /* still disabled */
	CHECK(vhost_frontend_set_vring_enable(f, q, true));
	CHECK_TRUE(DEV(e, starts) == starts0 + 1);
	CHECK_TRUE(DEV(e, running[q]) && DEV(e, num[q]) == 256 && DEV(e, start_base[q]) == 7);
	CHECK_TRUE(markers_ok(e, q));
	CHECK(vhost_frontend_set_vring_enable(f, q, false));
	CHECK(vhost_frontend_get_vring_base(f, q, &base));
	CHECK_TRUE(base == 7u + DEV(e, stop_advance));
	CHECK_TRUE(DEV(e, stops) == stops0 + 1 && !DEV(e, running[q]));
	good = true;
out:
	if (efd_kick >= 0)
		close(efd_kick);
	if (efd_call >= 0)
		close(efd_call);
	if (out && good)
		*out = f;
	else
		vhost_frontend_destroy(f);
	return good;
}

/* healthy_session + disconnect, waiting until the server has let go. */
static bool healthy_and_close(struct env *e)
{
	struct vhost_frontend *f = NULL;
	bool good = healthy_session(e, 1, &f);
	int disc;

	if (!good)
		return false;
	/*
	 * Count disconnects only now: the server serves one frontend at a
	 * time, so while ours is served every earlier connection has been
	 * torn down (sampling before connecting could race with the last one).
	 */
	disc = DEV(e, disconnects);
	vhost_frontend_destroy(f);
	return WAIT_FOR(e, e->dev.disconnects == disc + 1);
}

#endif
