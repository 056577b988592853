/* SPDX-License-Identifier: MIT */
/*
 * vblk-engine.c - a fio external ioengine that drives a vhost-user-blk
 * server (vblkd, qemu-storage-daemon, ...) through libvblk. A thin mapping
 * of fio's hooks onto libvblk: one libvblk instance per fio job, requests
 * spread round-robin over its queues, completions reaped by polling or by
 * waiting on the queues' completion eventfds.
 *
 *   fio --ioengine=external:/path/to/libfio-vblk.so --filename=/run/vblk.sock ...
 *   (or --vblk_path=SOCKET; --vblk_queues=N; --vblk_mode=poll|event)
 *
 * Built against the headers of the exact fio version that loads it
 * (scripts/fio-headers.sh).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "fio.h"
#include "optgroup.h"

#include <vblk/vblk.h>

#define VBLK_ENGINE_MAX_QUEUES 64

struct vblk_fio_options {
	void *pad;           /* fio's convention: the first field is unused */
	char *path;
	unsigned int queues;
	char *mode;
};

struct vblk_fio_data {
	struct vblk *v;
	struct vblkq *q[VBLK_ENGINE_MAX_QUEUES];
	int nq;
	int next_q;          /* round-robin submission */
	bool event_mode;
	struct vblk_mem_region mem;
	bool have_mem;
	struct vblk_completion *comps;  /* iodepth entries */
	struct io_u **events;
	int nevents;
};

static struct fio_option options[] = {
	{
		.name = "vblk_path",
		.lname = "vhost-user socket",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct vblk_fio_options, path),
		.help = "vhost-user-blk socket of the server (default: the job's filename)",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "vblk_queues",
		.lname = "number of queues",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct vblk_fio_options, queues),
		.def = "1",
		.minval = 1,
		.maxval = VBLK_ENGINE_MAX_QUEUES,
		.help = "request queues to use per job",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "vblk_mode",
		.lname = "completion mode",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct vblk_fio_options, mode),
		.def = "poll",
		.help = "poll: busy-poll for completions; event: sleep on the completion eventfd",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = NULL,
	},
};

static const char *vblk_fio_path(struct thread_data *td)
{
	struct vblk_fio_options *o = td->eo;

	if (o->path && *o->path)
		return o->path;
	if (td->files_index && td->files[0] && td->files[0]->file_name)
		return td->files[0]->file_name;
	return NULL;
}

static int vblk_fio_mode(struct thread_data *td, bool *event)
{
	struct vblk_fio_options *o = td->eo;

	if (!o->mode || !strcmp(o->mode, "poll")) {
		*event = false;
	} else if (!strcmp(o->mode, "event")) {
		*event = true;
	} else {
		log_err("fio: vblk: vblk_mode must be poll or event, not '%s'\n", o->mode);
		return 1;
	}
	return 0;
}

/* Connect (and, if start, start) an instance; logs why on failure. */
static int vblk_fio_open(struct thread_data *td, bool start, struct vblk **out)
{
	struct vblk_fio_options *o = td->eo;
	const char *path = vblk_fio_path(td);
	struct vblk *v = NULL;
	bool event = false;
	int ret;

	if (!path) {
		log_err("fio: vblk: give the server's socket as --filename or --vblk_path\n");
		return 1;
	}
	if (vblk_fio_mode(td, &event))
		return 1;
	ret = vblk_create(&v);
	if (ret)
		goto err;
	ret = vblk_set_str(v, "path", path);
	if (!ret)
		ret = vblk_set_int(v, "num-queues", (int)o->queues);
	if (!ret)
		ret = vblk_connect(v);
	if (!ret && start)
		ret = vblk_set_bool(v, "poll", !event);
	if (!ret && start)
		ret = vblk_start(v);
	if (ret)
		goto err;
	*out = v;
	return 0;
err:
	log_err("fio: vblk: %s: %s\n", path, vblk_get_error_msg());
	vblk_destroy(&v);
	return 1;
}

/*
 * setup: runs once in the main process before the jobs fork. Learn the
 * capacity so fio can size the "file" (the socket is not a file).
 */
static int vblk_fio_setup(struct thread_data *td)
{
	struct vblk *v;
	uint64_t capacity = 0;
	int ret;

	if (!td->files_index) {
		struct vblk_fio_options *o = td->eo;

		if (!o->path || !*o->path) {
			log_err("fio: vblk: give the server's socket as --filename or --vblk_path\n");
			return 1;
		}
		add_file(td, o->path, 0, 0);
		td->o.nr_files = td->o.nr_files ? : 1;
		td->o.open_files++;
	}
	if (td->o.nr_files > 1) {
		log_err("fio: vblk: one server per job (got %u files)\n", td->o.nr_files);
		return 1;
	}
	if (vblk_fio_open(td, false, &v))
		return 1;
	ret = vblk_get_u64(v, "capacity", &capacity);
	vblk_destroy(&v);
	if (ret) {
		log_err("fio: vblk: cannot read the capacity: %s\n", vblk_get_error_msg());
		return 1;
	}
	for (unsigned i = 0; i < td->files_index; i++) {
		td->files[i]->real_file_size = capacity;
		fio_file_set_size_known(td->files[i]);
	}
	return 0;
}

/* init: runs in the job's thread/process: connect and start the rings. */
static int vblk_fio_init(struct thread_data *td)
{
	struct vblk_fio_options *o = td->eo;
	struct vblk_fio_data *d;

	d = calloc(1, sizeof(*d));
	if (!d)
		return 1;
	td->io_ops_data = d;
	if (vblk_fio_mode(td, &d->event_mode) || vblk_fio_open(td, true, &d->v))
		return 1;
	d->nq = (int)o->queues;
	for (int i = 0; i < d->nq; i++) {
		d->q[i] = vblk_get_queue(d->v, i);
		if (!d->q[i]) {
			log_err("fio: vblk: no queue %d: %s\n", i, vblk_get_error_msg());
			return 1;
		}
		vblkq_set_completion_fd_enabled(d->q[i], d->event_mode);
	}
	d->comps = calloc(td->o.iodepth, sizeof(*d->comps));
	d->events = calloc(td->o.iodepth, sizeof(*d->events));
	if (!d->comps || !d->events)
		return 1;
	return 0;
}

static void vblk_fio_cleanup(struct thread_data *td)
{
	struct vblk_fio_data *d = td->io_ops_data;

	if (!d)
		return;
	vblk_destroy(&d->v);   /* also frees its memory regions */
	free(d->comps);
	free(d->events);
	free(d);
	td->io_ops_data = NULL;
}

/* I/O buffers must be memory the server maps: allocate them from libvblk. */
static int vblk_fio_iomem_alloc(struct thread_data *td, size_t size)
{
	struct vblk_fio_data *d = td->io_ops_data;

	if (!d || !d->v)
		return 1;
	if (vblk_alloc_mem_region(d->v, size, &d->mem)) {
		log_err("fio: vblk: cannot allocate %zu bytes of shared memory: %s\n", size,
			vblk_get_error_msg());
		return 1;
	}
	d->have_mem = true;
	td->orig_buffer = d->mem.addr;
	return 0;
}

static void vblk_fio_iomem_free(struct thread_data *td)
{
	struct vblk_fio_data *d = td->io_ops_data;

	if (d && d->have_mem && d->v) {
		vblk_free_mem_region(d->v, &d->mem);
		d->have_mem = false;
	}
	td->orig_buffer = NULL;
}

static int vblk_fio_open_file(struct thread_data *td, struct fio_file *f)
{
	return 0;
}

static int vblk_fio_close_file(struct thread_data *td, struct fio_file *f)
{
	return 0;
}

static enum fio_q_status vblk_fio_queue(struct thread_data *td, struct io_u *io_u)
{
	struct vblk_fio_data *d = td->io_ops_data;
	struct vblkq *q = d->q[d->next_q];
	int ret;

	fio_ro_check(td, io_u);
	d->next_q = (d->next_q + 1) % d->nq;
	switch (io_u->ddir) {
	case DDIR_READ:
		ret = vblkq_read(q, io_u->offset, io_u->xfer_buf, io_u->xfer_buflen, io_u, 0);
		break;
	case DDIR_WRITE:
		ret = vblkq_write(q, io_u->offset, io_u->xfer_buf, io_u->xfer_buflen, io_u, 0);
		break;
	case DDIR_TRIM:
		ret = vblkq_discard(q, io_u->offset, io_u->xfer_buflen, io_u, 0);
		break;
	case DDIR_SYNC:
	case DDIR_DATASYNC:
		ret = vblkq_flush(q, io_u, 0);
		break;
	default:
		io_u->error = ENOTSUP;
		return FIO_Q_COMPLETED;
	}
	if (ret == -EAGAIN || ret == -ENOSPC || ret == -EBUSY)
		return FIO_Q_BUSY;
	if (ret < 0) {
		io_u->error = -ret;
		td_verror(td, io_u->error, "vblk submit");
		return FIO_Q_COMPLETED;
	}
	return FIO_Q_QUEUED;
}

/* Submission is batched: libvblk kicks once per vblkq_do_io call. */
static int vblk_fio_commit(struct thread_data *td)
{
	struct vblk_fio_data *d = td->io_ops_data;

	for (int i = 0; i < d->nq; i++)
		if (vblkq_do_io(d->q[i], NULL, 0, 0, NULL) < 0)
			return -EIO;
	return 0;
}

/* Append to d->events, without blocking, what every queue has finished;
 * at most max entries in all. Returns the new count or -errno. */
static int vblk_fio_reap(struct vblk_fio_data *d, int got, int max)
{
	for (int i = 0; i < d->nq && got < max; i++) {
		int n = vblkq_do_io(d->q[i], d->comps, 0, max - got, NULL);

		if (n < 0)
			return n;
		for (int k = 0; k < n; k++) {
			struct io_u *io_u = d->comps[k].user_data;

			io_u->error = d->comps[k].ret < 0 ? -d->comps[k].ret : 0;
			d->events[got++] = io_u;
		}
	}
	return got;
}

static int vblk_fio_wait(struct vblk_fio_data *d, const struct timespec *t)
{
	struct pollfd pfd[VBLK_ENGINE_MAX_QUEUES];
	int ms = t ? (int)(t->tv_sec * 1000 + t->tv_nsec / 1000000) : -1;

	for (int i = 0; i < d->nq; i++) {
		pfd[i].fd = vblkq_get_completion_fd(d->q[i]);
		pfd[i].events = POLLIN;
		pfd[i].revents = 0;
	}
	if (poll(pfd, (nfds_t)d->nq, ms) < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < d->nq; i++) {
		if (pfd[i].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(pfd[i].fd, &v, sizeof(v));
			(void)r;
		}
	}
	return 0;
}

static int vblk_fio_getevents(struct thread_data *td, unsigned int min, unsigned int max,
			      const struct timespec *t)
{
	struct vblk_fio_data *d = td->io_ops_data;
	struct timespec start;
	int got = 0, n;

	clock_gettime(CLOCK_MONOTONIC, &start);
	if (max > td->o.iodepth)
		max = td->o.iodepth;
	for (;;) {
		n = vblk_fio_reap(d, got, (int)max);
		if (n < 0)
			return n;
		got = n;
		if ((unsigned)got >= min)
			break;
		if (t) {
			struct timespec now;
			int64_t el;

			clock_gettime(CLOCK_MONOTONIC, &now);
			el = (now.tv_sec - start.tv_sec) * 1000000000LL + now.tv_nsec - start.tv_nsec;
			if (el >= t->tv_sec * 1000000000LL + t->tv_nsec)
				break;
		}
		if (d->event_mode) {
			n = vblk_fio_wait(d, t);
			if (n < 0)
				return n;
		}
	}
	d->nevents = got;
	return got;
}

static struct io_u *vblk_fio_event(struct thread_data *td, int event)
{
	struct vblk_fio_data *d = td->io_ops_data;

	return d->events[event];
}

struct ioengine_ops ioengine = {
	.name = "vblk",
	.version = FIO_IOOPS_VERSION,
	.flags = FIO_DISKLESSIO | FIO_NOEXTEND | FIO_NODISKUTIL,
	.setup = vblk_fio_setup,
	.init = vblk_fio_init,
	.cleanup = vblk_fio_cleanup,
	.queue = vblk_fio_queue,
	.commit = vblk_fio_commit,
	.getevents = vblk_fio_getevents,
	.event = vblk_fio_event,
	.open_file = vblk_fio_open_file,
	.close_file = vblk_fio_close_file,
	.iomem_alloc = vblk_fio_iomem_alloc,
	.iomem_free = vblk_fio_iomem_free,
	.options = options,
	.option_struct_size = sizeof(struct vblk_fio_options),
};
