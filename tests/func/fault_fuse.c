/* SPDX-License-Identifier: MIT */
/*
 * fault_fuse.c - see fault_fuse.h. Speaks just enough of the FUSE kernel
 * protocol for one regular file: INIT, LOOKUP, GETATTR, SETATTR, OPEN,
 * READ, WRITE, FLUSH, FSYNC, RELEASE; ENOSYS for the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <sys/uio.h>
#include <linux/fuse.h>

#include "fault_fuse.h"

#define FILE_INO   2
#define FILE_NAME  "disk.img"
#define MAX_WRITE  (128u << 10)
#define BUF_SIZE   (MAX_WRITE + 4096)

struct fault_fuse {
	int fd;
	char dir[256];
	uint8_t *data;
	uint64_t size;
	bool fail;                /* atomic */
	bool stall;               /* atomic */
	bool paused;              /* atomic: the thread takes no request */
	bool pause_seen;          /* atomic: the thread is in its pause loop */
	unsigned stalled;         /* atomic: reads held right now */
	unsigned long failed;     /* atomic */
	unsigned long fsyncs;     /* atomic: FSYNC requests answered OK */
	pthread_t thread;
	bool mounted, running;
	int ctl_minor;            /* the connection's fusectl number, or -1 */
};

static void fuse_attr_fill(const struct fault_fuse *f, uint64_t ino, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->nlink = 1;
	a->blksize = 4096;
	if (ino == FUSE_ROOT_ID) {
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
	} else {
		a->mode = S_IFREG | 0600;
		a->size = f->size;
		a->blocks = f->size / 512;
	}
}

static void fuse_reply(struct fault_fuse *f, uint64_t unique, int error, const void *arg,
		       size_t len)
{
	struct fuse_out_header h = {
		.len = (uint32_t)(sizeof(h) + (error ? 0 : len)),
		.error = error,
		.unique = unique,
	};
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)arg, error ? 0 : len } };

	/* ENOENT: the request was interrupted meanwhile; nothing to do. */
	(void)!writev(f->fd, iov, 2);
}

static bool fuse_failing(struct fault_fuse *f)
{
	if (!__atomic_load_n(&f->fail, __ATOMIC_ACQUIRE))
		return false;
	__atomic_fetch_add(&f->failed, 1, __ATOMIC_RELAXED);
	return true;
}

static void fuse_handle(struct fault_fuse *f, const struct fuse_in_header *in, const void *arg)
{
	union {
		struct fuse_init_out init;
		struct fuse_entry_out entry;
		struct fuse_attr_out attr;
		struct fuse_open_out open;
		struct fuse_write_out write;
	} o;

	memset(&o, 0, sizeof(o));
	switch (in->opcode) {
	case FUSE_INIT: {
		const struct fuse_init_in *ii = arg;

		o.init.major = FUSE_KERNEL_VERSION;
		o.init.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ? ii->minor :
			       FUSE_KERNEL_MINOR_VERSION;
		o.init.max_readahead = ii->max_readahead;
		o.init.flags = ii->flags & FUSE_MAX_PAGES;
		o.init.max_background = 16;
		o.init.congestion_threshold = 12;
		o.init.max_write = MAX_WRITE;
		o.init.time_gran = 1;
		o.init.max_pages = MAX_WRITE / 4096;
		fuse_reply(f, in->unique, 0, &o.init, sizeof(o.init));
		break;
	}
	case FUSE_LOOKUP:
		if (in->nodeid != FUSE_ROOT_ID || strcmp(arg, FILE_NAME)) {
			fuse_reply(f, in->unique, -ENOENT, NULL, 0);
			break;
		}
		o.entry.nodeid = FILE_INO;
		o.entry.generation = 1;
		fuse_attr_fill(f, FILE_INO, &o.entry.attr);
		fuse_reply(f, in->unique, 0, &o.entry, sizeof(o.entry));
		break;
	case FUSE_GETATTR:
	case FUSE_SETATTR:   /* nothing changes: the size is fixed */
		fuse_attr_fill(f, in->nodeid, &o.attr.attr);
		fuse_reply(f, in->unique, 0, &o.attr, sizeof(o.attr));
		break;
	case FUSE_OPEN:
		o.open.fh = 1;
		o.open.open_flags = FOPEN_DIRECT_IO;
		fuse_reply(f, in->unique, 0, &o.open, sizeof(o.open));
		break;
	case FUSE_READ: {
		const struct fuse_read_in *r = arg;
		uint64_t len = r->size;

		if (fuse_failing(f)) {
			fuse_reply(f, in->unique, -EIO, NULL, 0);
			break;
		}
		if (__atomic_load_n(&f->stall, __ATOMIC_ACQUIRE)) {
			/* Hold this read (and the filesystem) until released. */
			__atomic_fetch_add(&f->stalled, 1, __ATOMIC_RELEASE);
			while (__atomic_load_n(&f->stall, __ATOMIC_ACQUIRE))
				usleep(1000);
			__atomic_fetch_sub(&f->stalled, 1, __ATOMIC_RELEASE);
		}
		if (r->offset >= f->size)
			len = 0;
		else if (len > f->size - r->offset)
			len = f->size - r->offset;
		fuse_reply(f, in->unique, 0, f->data + r->offset, len);
		break;
	}
	case FUSE_WRITE: {
		const struct fuse_write_in *w = arg;

		if (fuse_failing(f)) {
			fuse_reply(f, in->unique, -EIO, NULL, 0);
			break;
		}
		if (w->offset > f->size || w->size > f->size - w->offset) {
			fuse_reply(f, in->unique, -ENOSPC, NULL, 0);
			break;
		}
		memcpy(f->data + w->offset, (const uint8_t *)(w + 1), w->size);
		o.write.size = w->size;
		fuse_reply(f, in->unique, 0, &o.write, sizeof(o.write));
		break;
	}
	case FUSE_FSYNC:
		if (fuse_failing(f)) {
			fuse_reply(f, in->unique, -EIO, NULL, 0);
			break;
		}
		__atomic_fetch_add(&f->fsyncs, 1, __ATOMIC_RELEASE);
		fuse_reply(f, in->unique, 0, NULL, 0);
		break;
	case FUSE_FLUSH:
	case FUSE_RELEASE:
		fuse_reply(f, in->unique, 0, NULL, 0);
		break;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		break;       /* no reply */
	default:
		fuse_reply(f, in->unique, -ENOSYS, NULL, 0);
		break;
	}
}

static void *fuse_thread(void *arg)
{
	struct fault_fuse *f = arg;
	uint8_t *buf = malloc(BUF_SIZE);

	while (buf) {
		ssize_t n;

		struct pollfd pfd = { .fd = f->fd, .events = POLLIN };

		/* Look at the switch at least every 10 ms, and never take a
		 * request once the pause was acknowledged. */
		if (__atomic_load_n(&f->paused, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&f->pause_seen, true, __ATOMIC_RELEASE);
			usleep(1000);
			continue;
		}
		__atomic_store_n(&f->pause_seen, false, __ATOMIC_RELEASE);
		if (poll(&pfd, 1, 10) == 0)
			continue;
		if (__atomic_load_n(&f->paused, __ATOMIC_ACQUIRE))
			continue;
		n = read(f->fd, buf, BUF_SIZE);

		if (n < 0 && (errno == EINTR || errno == ENOENT || errno == EAGAIN))
			continue;
		if (n < (ssize_t)sizeof(struct fuse_in_header))
			break;   /* ENODEV: unmounted */
		fuse_handle(f, (const struct fuse_in_header *)buf,
			    buf + sizeof(struct fuse_in_header));
	}
	free(buf);
	return NULL;
}

int fault_fuse_mount(const char *dir, uint64_t size, struct fault_fuse **out)
{
	struct fault_fuse *f = calloc(1, sizeof(*f));
	struct stat st;
	char opts[128];
	int ret;

	if (!f)
		return -ENOMEM;
	f->ctl_minor = -1;
	f->data = calloc(1, size);
	f->size = size;
	snprintf(f->dir, sizeof(f->dir), "%s", dir);
	f->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (!f->data || f->fd < 0) {
		ret = f->data ? -errno : -ENOMEM;
		goto err;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", f->fd);
	if (mount("vblk-fault", dir, "fuse.vblk-fault", MS_NOSUID | MS_NODEV, opts) < 0) {
		ret = -errno;
		goto err;
	}
	f->mounted = true;
	ret = -pthread_create(&f->thread, NULL, fuse_thread, f);
	if (ret)
		goto err;
	f->running = true;
	/* fusectl: where the kernel counts waiting requests (and aborts a
	 * connection); systemd mounts it at boot, a bare container may not. */
	if (access("/sys/fs/fuse/connections/", F_OK) == 0)
		(void)mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
	/* Known now, not later: a stat while paused would wait for ever. */
	f->ctl_minor = stat(dir, &st) == 0 ? (int)minor(st.st_dev) : -1;
	*out = f;
	return 0;
err:
	fault_fuse_destroy(f);
	return ret;
}

void fault_fuse_set_fail(struct fault_fuse *f, bool fail)
{
	__atomic_store_n(&f->fail, fail, __ATOMIC_RELEASE);
}

void fault_fuse_set_stall(struct fault_fuse *f, bool stall)
{
	__atomic_store_n(&f->stall, stall, __ATOMIC_RELEASE);
}

void fault_fuse_set_paused(struct fault_fuse *f, bool paused)
{
	__atomic_store_n(&f->paused, paused, __ATOMIC_RELEASE);
	/* Wait for the thread to see it (it looks every 10 ms unless busy
	 * answering, which takes no longer). */
	while (paused && f->running && !__atomic_load_n(&f->pause_seen, __ATOMIC_ACQUIRE))
		usleep(1000);
}

/* The connection's directory in fusectl: /sys/fs/fuse/connections/<minor>. */
static int fuse_ctl_path(const struct fault_fuse *f, const char *file, char *buf, size_t n)
{
	if (f->ctl_minor < 0)
		return -ENOENT;
	snprintf(buf, n, "/sys/fs/fuse/connections/%d/%s", f->ctl_minor, file);
	return 0;
}

int fault_fuse_waiting(const struct fault_fuse *f)
{
	char path[96];
	FILE *fp;
	int n = -1;

	if (fuse_ctl_path(f, "waiting", path, sizeof(path)))
		return -1;
	fp = fopen(path, "r");
	if (fp) {
		if (fscanf(fp, "%d", &n) != 1)
			n = -1;
		fclose(fp);
	}
	return n;
}

unsigned long fault_fuse_fsyncs(const struct fault_fuse *f)
{
	return __atomic_load_n(&f->fsyncs, __ATOMIC_ACQUIRE);
}

const uint8_t *fault_fuse_data(const struct fault_fuse *f)
{
	return f->data;
}

unsigned fault_fuse_stalled(const struct fault_fuse *f)
{
	return __atomic_load_n(&f->stalled, __ATOMIC_ACQUIRE);
}

unsigned long fault_fuse_failed(const struct fault_fuse *f)
{
	return __atomic_load_n(&f->failed, __ATOMIC_RELAXED);
}

void fault_fuse_destroy(struct fault_fuse *f)
{
	struct timespec until;
	char path[96];
	int fd;

	if (!f)
		return;
	if (f->mounted) {
		/* Abort the connection too: the thread's read then ends (ENODEV)
		 * even if something still holds the file open. */
		bool have_dev = fuse_ctl_path(f, "abort", path, sizeof(path)) == 0;

		__atomic_store_n(&f->paused, false, __ATOMIC_RELEASE);
		umount2(f->dir, MNT_DETACH);
		fd = have_dev ? open(path, O_WRONLY | O_CLOEXEC) : -1;
		if (fd >= 0) {
			(void)!write(fd, "1", 1);
			close(fd);
		}
	}
	if (f->running) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5;
		if (pthread_timedjoin_np(f->thread, NULL, &until)) {
			/* Still blocked: leave it (and its memory) to process exit. */
			pthread_detach(f->thread);
			return;
		}
	}
	if (f->fd >= 0)
		close(f->fd);
	free(f->data);
	free(f);
}
