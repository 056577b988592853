/* SPDX-License-Identifier: MIT */
/*
 * storage_rbd.c - the rbd engine: a Ceph RBD image (or snapshot) through
 * librbd's asynchronous calls. One image handle per storage (one exclusive
 * lock owner); its completions are signalled on the eventfd of the first
 * chan that submits to it (the "home" chan, rbd_set_image_notification)
 * and collected there with rbd_poll_io_events; a completion that belongs to
 * another chan is handed over lock-free (storage_chan_complete_remote).
 * Knows nothing about virtio.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/utsname.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "common/compiler.h"
#include "common/iov.h"
#include "common/log.h"
#include "storage/storage_internal.h"

#define RBD_POLL_BATCH 32
/* storage_close waits this long for the home chan to let go of the image. */
#define RBD_DETACH_WAIT_MS 2000

enum rbd_home_state {
	RBD_HOME_NONE,      /* no request yet: no event notification */
	RBD_HOME_CLAIMING,  /* a chan is setting the notification up */
	RBD_HOME_READY,     /* home chan set; completions arrive on its fd */
	RBD_HOME_CLOSING,   /* storage_close asks the home chan to detach */
	RBD_HOME_GONE,      /* detached: nobody polls the image any more */
};

struct rbd_state {
	struct storage_chan_src src;   /* on the home chan's list */
	struct storage *st;
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	char *spec;                    /* POOL/IMAGE[@SNAP], for logs */
	char *image_name;
	char *owner_oid;               /* storage_rbd_claim's record, or NULL */
	uint64_t watch;
	bool watching;
	struct storage_chan *home;     /* set once state is READY */
	int home_state;                /* enum rbd_home_state, atomic */
	int home_fd;                   /* the home chan's eventfd */
	unsigned inflight;             /* aio submitted, not yet polled (atomic) */
	/* The last finished request timed out (atomic): the cluster does not
	 * answer, so closing would wait rbd-timeout per step. */
	bool unresponsive;
	struct rbd_state *next_abandoned;
};

/* Images left open for the exit (kept reachable: not a leak). */
static struct rbd_state *storage_rbd_abandoned;

/* ---- completion ------------------------------------------------------- */

/* Home chan: every finished aio of the image, to the chan that sent it. */
static void storage_rbd_poll(struct storage_chan *ch, struct storage_chan_src *src)
{
	struct rbd_state *r = container_of(src, struct rbd_state, src);
	rbd_completion_t comps[RBD_POLL_BATCH];
	int n;

	if (__atomic_load_n(&r->home_state, __ATOMIC_ACQUIRE) == RBD_HOME_CLOSING) {
		storage_chan_del_src(ch, src);
		/* Release: storage_close may close the image once it sees it. */
		__atomic_store_n(&r->home_state, RBD_HOME_GONE, __ATOMIC_RELEASE);
		return;
	}
	if (!__atomic_load_n(&r->inflight, __ATOMIC_RELAXED))
		return;   /* a busy-polling loop pays no librbd lock */
	do {
		n = rbd_poll_io_events(r->image, comps, RBD_POLL_BATCH);
		for (int i = 0; i < n; i++) {
			struct storage_io *io = rbd_aio_get_arg(comps[i]);
			ssize_t ret = rbd_aio_get_return_value(comps[i]);
			int res = ret < 0 ? (int)ret : 0;

			rbd_aio_release(comps[i]);
			__atomic_sub_fetch(&r->inflight, 1, __ATOMIC_RELAXED);
			__atomic_store_n(&r->unresponsive, res == -ETIMEDOUT, __ATOMIC_RELAXED);
			if (res == -ETIMEDOUT)
				log_rl(LOG_ERR, "rbd: %s: request timed out (rbd-timeout)", r->spec);
			else if (res < 0)
				log_rl(LOG_ERR, "rbd: %s: request failed: %s", r->spec,
				       strerror(-res));
			if (io->ch == ch)
				storage_chan_complete_local(ch, io, res);
			else
				storage_chan_complete_remote(io, res);
		}
	} while (n == RBD_POLL_BATCH);
}

/*
 * Make sure the image's completions are signalled before @ch submits: the
 * first chan to submit becomes home (librbd marks an aio for notification
 * only if the image has a notification fd when it is submitted).
 */
static int storage_rbd_home(struct rbd_state *r, struct storage_chan *ch)
{
	int state = __atomic_load_n(&r->home_state, __ATOMIC_ACQUIRE);
	int ret;

	if (state == RBD_HOME_READY)
		return 0;
	state = RBD_HOME_NONE;
	if (__atomic_compare_exchange_n(&r->home_state, &state, RBD_HOME_CLAIMING, false,
					__ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
		ret = rbd_set_image_notification(r->image, storage_chan_fd(ch), EVENT_TYPE_EVENTFD);
		if (ret < 0) {
			log_rl(LOG_ERR, "rbd: %s: rbd_set_image_notification: %s", r->spec,
			       strerror(-ret));
			__atomic_store_n(&r->home_state, RBD_HOME_NONE, __ATOMIC_RELEASE);
			return ret;
		}
		r->home = ch;
		r->src.poll = storage_rbd_poll;
		storage_chan_add_src(ch, &r->src);
		__atomic_store_n(&r->home_state, RBD_HOME_READY, __ATOMIC_RELEASE);
		return 0;
	}
	/* Another iothread is claiming it right now (first requests only). */
	while (__atomic_load_n(&r->home_state, __ATOMIC_ACQUIRE) == RBD_HOME_CLAIMING)
		sched_yield();
	return storage_rbd_home(r, ch);
}

static int storage_rbd_start(struct rbd_state *r, struct storage_io *io, rbd_completion_t c)
{
	/* librbd takes at most INT_MAX iovecs; blk sends far fewer. */
	int cnt = (int)io->iovcnt;

	switch (io->op) {
	case STORAGE_OP_READ:
		return rbd_aio_readv(r->image, io->iov, cnt, io->offset, c);
	case STORAGE_OP_WRITE:
		/* No librbd cache (see open): a completed write is on the OSDs,
		 * so FUA needs nothing more. */
		return rbd_aio_writev(r->image, io->iov, cnt, io->offset, c);
	case STORAGE_OP_FLUSH:
		return rbd_aio_flush(r->image, c);
	case STORAGE_OP_DISCARD:
		return rbd_aio_discard(r->image, io->offset, io->len, c);
	case STORAGE_OP_WRITE_ZEROES:
		return rbd_aio_write_zeroes(r->image, io->offset, io->len, c, 0, 0);
	}
	return -EINVAL;
}

static void storage_rbd_submit(struct storage_chan *ch, struct storage_io *io)
{
	struct rbd_state *r = io->st->priv;
	rbd_completion_t c;
	int ret;

	ret = storage_rbd_home(r, ch);
	if (ret < 0)
		goto err;
	ret = rbd_aio_create_completion(io, NULL, &c);
	if (ret < 0)
		goto err;
	__atomic_add_fetch(&r->inflight, 1, __ATOMIC_RELAXED);
	ret = storage_rbd_start(r, io, c);
	if (ret < 0) {
		__atomic_sub_fetch(&r->inflight, 1, __ATOMIC_RELAXED);
		rbd_aio_release(c);
		goto err;
	}
	return;
err:
	log_rl(LOG_ERR, "rbd: %s: cannot submit: %s", r->spec, strerror(-ret));
	storage_chan_complete(ch, io, ret);
}

/* ---- resize ------------------------------------------------------------- */

/*
 * librbd's watch thread: the image header changed (resize, snapshot,
 * features). A new size bounds the requests from now on, and the size fd
 * (storage_set_size_fd) tells the export, which sends the frontend a
 * configuration change (VHOST_USER_BACKEND_CONFIG_CHANGE_MSG) so that the
 * guest sees the new capacity.
 */
static void storage_rbd_updated(void *arg)
{
	struct rbd_state *r = arg;
	struct storage *st = r->st;
	uint64_t size = 0, old, one = 1;
	int ret, fd;

	ret = rbd_get_size(r->image, &size);
	if (ret < 0) {
		log_rl(LOG_WARN, "rbd: %s: image changed, but its size is unknown: %s", r->spec,
		       strerror(-ret));
		return;
	}
	size &= ~(uint64_t)511;
	old = __atomic_exchange_n(&st->info.size, size, __ATOMIC_RELAXED);
	if (old == size)
		return;
	log_info("rbd: %s: resized from %" PRIu64 " to %" PRIu64 " bytes; requests are "
		 "bounded by the new size", r->spec, old, size);
	/* Pairs with the release in storage_set_size_fd. */
	fd = __atomic_load_n(&st->size_fd, __ATOMIC_ACQUIRE);
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		log_rl(LOG_WARN, "rbd: %s: cannot signal the resize: %s", r->spec,
		       strerror(errno));
}

/* ---- taking over from a dead predecessor -------------------------------- */

/*
 * A SIGKILLed vblkd leaves the image's exclusive lock to a client that
 * no longer exists, and its watch on the image header lives on until the
 * OSD times it out (osd_client_watch_timeout, 30 s). librbd breaks such a
 * lock only once the watch is gone: the restarted daemon's first write
 * (the guest's requests replayed from the inflight area) waits that long.
 * librbd cannot tell a dead owner from a live one sooner; vblkd can for
 * its own predecessor: each vblkd records its client address in a small
 * RADOS object next to the image, named after the image, the host and
 * the socket, and a vblkd that got that socket (so nothing serves there)
 * and finds the lock held by the recorded address breaks it, blocklisting
 * that client (rbd_blocklist_on_break_lock): nothing it left in flight
 * can land after our writes. A lock held by anybody else is left alone.
 */

/* FNV-1a, 64 bit: a short, stable name for host + socket path. */
static uint64_t storage_rbd_fnv(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return (h ^ 0xff) * 0x100000001b3ull;   /* a separator */
}

static int storage_rbd_claim(struct storage *st, const char *owner)
{
	struct rbd_state *r = st->priv;
	char oid[320], prev[256], *self = NULL, *owners[4];
	rbd_lock_mode_t mode;
	size_t nowners = ARRAY_SIZE(owners);
	struct utsname u;
	uint64_t h = 0xcbf29ce484222325ull;
	int ret, len;

	if (!r || st->info.read_only)
		return 0;
	if (uname(&u) == 0)
		h = storage_rbd_fnv(h, u.nodename);
	h = storage_rbd_fnv(h, owner);
	snprintf(oid, sizeof(oid), "vblk_owner.%s.%016" PRIx64, r->image_name, h);

	len = rados_read(r->ioctx, oid, prev, sizeof(prev) - 1, 0);
	if (len < 0 && len != -ENOENT) {
		log_warn("rbd: %s: cannot read %s: %s", r->spec, oid, strerror(-len));
		return len;
	}
	prev[len > 0 ? len : 0] = '\0';

	ret = rbd_lock_get_owners(r->image, &mode, owners, &nowners);
	if (ret == 0) {
		for (size_t i = 0; i < nowners; i++) {
			if (!prev[0] || strcmp(owners[i], prev))
				continue;
			log_info("rbd: %s: breaking the exclusive lock of %s, left by the vblkd "
				 "that served %s before", r->spec, prev, owner);
			ret = rbd_lock_break(r->image, mode, owners[i]);
			if (ret < 0)
				log_warn("rbd: %s: cannot break the lock of %s: %s (writes wait "
					 "until its watch expires)", r->spec, prev, strerror(-ret));
		}
		rbd_lock_get_owners_cleanup(owners, nowners);
	}

	ret = rados_getaddrs(r->cluster, &self);
	if (ret < 0 || !self) {
		log_warn("rbd: %s: cannot get our client address: %s", r->spec, strerror(-ret));
		return ret < 0 ? ret : -EINVAL;
	}
	ret = rados_write_full(r->ioctx, oid, self, strlen(self));
	rados_buffer_free(self);
	if (ret < 0) {
		log_warn("rbd: %s: cannot write %s: %s", r->spec, oid, strerror(-ret));
		return ret;
	}
	r->owner_oid = strdup(oid);
	return 0;
}

/* ---- open/close --------------------------------------------------------- */

/* "POOL/IMAGE" or "POOL/IMAGE@SNAP" into its parts (in @buf). */
static int storage_rbd_parse(const char *spec, char *buf, size_t n, char **pool, char **image,
			     char **snap)
{
	char *slash, *at;

	if (strlen(spec) >= n)
		return -EINVAL;
	strcpy(buf, spec);
	slash = strchr(buf, '/');
	if (!slash || slash == buf || strchr(slash + 1, '/'))
		return -EINVAL;
	*slash = '\0';
	*pool = buf;
	*image = slash + 1;
	at = strchr(*image, '@');
	*snap = NULL;
	if (at) {
		*at = '\0';
		*snap = at + 1;
		if (!**snap || strchr(*snap, '@'))
			return -EINVAL;
	}
	return **image ? 0 : -EINVAL;
}

static int storage_rbd_set(struct rbd_state *r, const char *key, const char *val)
{
	int ret = rados_conf_set(r->cluster, key, val);

	if (ret < 0)
		log_err("rbd: %s: cannot set %s=%s: %s", r->spec, key, val, strerror(-ret));
	return ret;
}

static int storage_rbd_connect(struct rbd_state *r, const struct storage_params *p,
			       const char *pool)
{
	char tmo[16], name[128];
	unsigned timeout = p->rbd_timeout ? p->rbd_timeout : STORAGE_RBD_DEFAULT_TIMEOUT;
	static const char *const timeouts[] = {
		/* the connect (monitor session, auth), monitor commands,
		 * every OSD operation: each ends with -ETIMEDOUT */
		"client_mount_timeout", "rados_mon_op_timeout", "rados_osd_op_timeout",
	};
	int ret;

	snprintf(name, sizeof(name), "client.%s", p->rbd_id ? p->rbd_id : "admin");
	ret = rados_create2(&r->cluster, "ceph", name, 0);
	if (ret < 0) {
		log_err("rbd: %s: rados_create2(%s): %s", r->spec, name, strerror(-ret));
		return ret;
	}
	ret = rados_conf_read_file(r->cluster, p->ceph_conf);
	if (ret < 0) {
		log_err("rbd: %s: cannot read the ceph configuration %s: %s", r->spec,
			p->ceph_conf ? p->ceph_conf : "(default locations)", strerror(-ret));
		return ret;
	}
	if (p->keyring && (ret = storage_rbd_set(r, "keyring", p->keyring)) < 0)
		return ret;
	snprintf(tmo, sizeof(tmo), "%u", timeout);
	for (size_t i = 0; i < ARRAY_SIZE(timeouts); i++)
		if ((ret = storage_rbd_set(r, timeouts[i], tmo)) < 0)
			return ret;
	/*
	 * No librbd cache: a write is acknowledged once the OSDs have it, so
	 * a daemon crash loses nothing acknowledged, and the guest's flushes
	 * are cheap. Discards zero partial objects too, so a trimmed range
	 * reads back as zeroes. No admin socket: nothing but the vhost-user
	 * sockets listens in a sandboxed daemon.
	 */
	if ((ret = storage_rbd_set(r, "rbd_cache", "false")) < 0 ||
	    (ret = storage_rbd_set(r, "rbd_skip_partial_discard", "false")) < 0 ||
	    (ret = storage_rbd_set(r, "admin_socket", "")) < 0)
		return ret;

	ret = rados_connect(r->cluster);
	if (ret < 0) {
		log_err("rbd: %s: cannot connect to the Ceph cluster as %s%s%s: %s%s", r->spec,
			name, p->ceph_conf ? " with " : "", p->ceph_conf ? p->ceph_conf : "",
			strerror(-ret),
			ret == -ETIMEDOUT ? " (no monitor answered within rbd-timeout)" : "");
		return ret;
	}
	ret = rados_ioctx_create(r->cluster, pool, &r->ioctx);
	if (ret < 0) {
		log_err("rbd: %s: cannot open pool %s: %s", r->spec, pool, strerror(-ret));
		r->ioctx = NULL;
	}
	return ret;
}

static int storage_rbd_open(struct storage *st, const struct storage_params *p)
{
	char buf[512], *pool, *image, *snap;
	struct rbd_state *r;
	uint64_t size = 0;
	bool ro;
	int ret;

	if (storage_rbd_parse(p->path, buf, sizeof(buf), &pool, &image, &snap)) {
		log_err("rbd: '%s' is not POOL/IMAGE or POOL/IMAGE@SNAPSHOT", p->path);
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->st = st;
	r->spec = strdup(p->path);
	if (!r->spec) {
		ret = -ENOMEM;
		goto err;
	}
	r->image_name = strdup(image);
	if (!r->image_name) {
		ret = -ENOMEM;
		goto err;
	}
	ret = storage_rbd_connect(r, p, pool);
	if (ret < 0)
		goto err;

	/* A snapshot is read-only by nature. */
	ro = p->read_only || snap;
	if (ro)
		ret = rbd_open_read_only(r->ioctx, image, &r->image, snap);
	else
		ret = rbd_open(r->ioctx, image, &r->image, NULL);
	if (ret < 0) {
		log_err("rbd: %s: cannot open image %s%s%s in pool %s: %s", r->spec, image,
			snap ? " snapshot " : "", snap ? snap : "", pool, strerror(-ret));
		r->image = NULL;
		goto err;
	}
	ret = rbd_get_size(r->image, &size);
	if (ret < 0) {
		log_err("rbd: %s: cannot get the image size: %s", r->spec, strerror(-ret));
		goto err;
	}
	if (size % 512)
		log_warn("rbd: %s: size %" PRIu64 " is not a multiple of 512; the tail is unused",
			 r->spec, size);
	st->info = (struct storage_info){
		.size = size & ~(uint64_t)511,
		.logical_block_size = 512,
		.physical_block_size = 512,
		.read_only = ro,
		.can_discard = true,
		.can_write_zeroes = true,
	};
	st->priv = r;
	if (!snap) {
		ret = rbd_update_watch(r->image, &r->watch, storage_rbd_updated, r);
		if (ret < 0)
			log_warn("rbd: %s: cannot watch for resizes: %s", r->spec, strerror(-ret));
		r->watching = ret == 0;
	}
	log_info("rbd: %s: %" PRIu64 " bytes%s", r->spec, size, ro ? ", read-only" : "");
	return 0;

err:
	st->priv = NULL;
	if (r->image)
		rbd_close(r->image);
	if (r->ioctx)
		rados_ioctx_destroy(r->ioctx);
	if (r->cluster)
		rados_shutdown(r->cluster);
	free(r->image_name);
	free(r->spec);
	free(r);
	return ret;
}

/* Wait (bounded) until the home chan no longer polls the image. */
static bool storage_rbd_detach(struct rbd_state *r)
{
	struct timespec ts = { 0, 1000000 };
	int state = RBD_HOME_READY;

	if (!__atomic_compare_exchange_n(&r->home_state, &state, RBD_HOME_CLOSING, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return true;   /* never had a home */
	for (unsigned i = 0; i < RBD_DETACH_WAIT_MS; i++) {
		storage_chan_kick(r->home);   /* wakes the home chan's loop */
		if (__atomic_load_n(&r->home_state, __ATOMIC_ACQUIRE) == RBD_HOME_GONE)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

static int storage_rbd_close(struct storage *st)
{
	struct rbd_state *r = st->priv;
	int ret = 0;

	if (!r)
		return 0;
	if (!storage_rbd_detach(r)) {
		/* Its iothread is stuck: leave the image to the exit. */
		log_err("rbd: %s: the iothread polling the image did not let go; not closing it",
			r->spec);
		goto abandon;
	}
	if (__atomic_load_n(&r->unresponsive, __ATOMIC_RELAXED)) {
		/*
		 * Unwatching, flushing and closing each wait rbd-timeout for
		 * a cluster that just failed to answer. Nothing is owed (every
		 * write that completed is on the OSDs, the rest failed): leave
		 * the image to the exit. Its exclusive lock is broken by the
		 * next client once our watch expires.
		 */
		log_err("rbd: %s: the cluster does not answer; exiting without closing the image",
			r->spec);
		goto abandon;
	}
	if (r->watching)
		rbd_update_unwatch(r->image, r->watch);
	/* Writes are not cached (rbd_cache off), but a clean shutdown asks
	 * the OSDs to persist anyway, as the file engine's fdatasync does. */
	if (!st->info.read_only && (ret = rbd_flush(r->image)) < 0)
		log_err("rbd: %s: flush at close: %s", r->spec, strerror(-ret));
	rbd_close(r->image);
	/* Closed cleanly: no lock left behind, nothing to take over. */
	if (r->owner_oid)
		(void)rados_remove(r->ioctx, r->owner_oid);
	rados_ioctx_destroy(r->ioctx);
	rados_shutdown(r->cluster);
	free(r->owner_oid);
	free(r->image_name);
	free(r->spec);
	free(r);
	st->priv = NULL;
	return ret < 0 ? ret : 0;

abandon:
	/* Context: the control thread, as every storage_close. */
	r->next_abandoned = storage_rbd_abandoned;
	storage_rbd_abandoned = r;
	st->priv = NULL;
	/* Nothing owed: every write that completed is on the OSDs. */
	return 0;
}

/* The image is resized with `rbd resize`; its size is tracked already
 * (storage_rbd_updated): picking it up needs nothing more. */
static int storage_rbd_resize(struct storage *st, uint64_t size)
{
	return size ? -EOPNOTSUPP : 0;
}

const struct storage_ops storage_rbd_ops = {
	.name = "rbd",
	.open = storage_rbd_open,
	.close = storage_rbd_close,
	.claim = storage_rbd_claim,
	.submit = storage_rbd_submit,
	.resize = storage_rbd_resize,
};

#if defined(__SANITIZE_ADDRESS__)
/*
 * LeakSanitizer (test builds only): an image abandoned at exit (cluster
 * unresponsive) leaves librbd's in-flight contexts allocated. They are
 * librbd's, reachable from its threads only; ours stay checked.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:librbd.so\nleak:librados.so\nleak:libceph-common.so\n";
}
#endif
