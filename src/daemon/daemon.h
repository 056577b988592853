/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - vblkd's pieces: iothreads (a loop + a storage channel each)
 * and exports (one storage + one blk device + one vhost-user socket, whose
 * queues are spread over the iothreads).
 */
#ifndef VBLK_DAEMON_H
#define VBLK_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "blk/blk.h"
#include "daemon/qos.h"
#include "loop/loop.h"
#include "storage/storage.h"
#include "vhost/vhost.h"

struct equeue;

/* One thread serving queues: owns its loop, its io_uring and its queues. */
struct iothread {
	unsigned index;
	struct loop *loop;
	struct storage_chan *chan;
	struct equeue *dirty;     /* queues with completions not yet notified */
	clockid_t cpu_clock;      /* the thread's CPU-time clock (statistics) */
	bool has_cpu_clock;
	uint64_t now_ns;          /* statistics: this iteration's time; 0: not read yet */
	struct equeue *throttled; /* queues waiting for QoS tokens */
	int timer_fd;             /* fires at the earliest throttle_until */
	uint64_t timer_at;        /* what timer_fd is armed for; 0: disarmed */
};

int iothread_create(unsigned index, struct iothread **out);
void iothread_destroy(struct iothread *t);
/*
 * iothread_set_poll_mode - event, busy polling or adaptive polling (see
 * loop_set_poll_mode). Context: any thread but the iothread (loop_call).
 */
int iothread_set_poll_mode(struct iothread *t, enum loop_poll_mode mode, uint64_t idle_ns);
/*
 * iothread_cpu_ns - CPU time the thread has used so far (user + system).
 * Return: 0, or -errno (-ENOTSUP: no CPU clock). Context: any thread.
 */
int iothread_cpu_ns(const struct iothread *t, uint64_t *ns);
/* Context: the iothread. Queue q gets a notification check at batch end. */
void iothread_mark_dirty(struct iothread *t, struct equeue *q);
/*
 * iothread_throttle - queue @q waits @wait_ns for QoS tokens: the
 * iothread's timer calls equeue_qos_resume(q) then. iothread_unthrottle
 * takes it off the wait list (a queue stopping). Context: the iothread.
 */
void iothread_throttle(struct iothread *t, struct equeue *q, uint64_t wait_ns);
void iothread_unthrottle(struct iothread *t, struct equeue *q);
/*
 * iothread_qos_recheck - limits changed: every throttled queue on @t
 * retries now (a shorter wait, or no limit any more). Context: any
 * thread; returns at once.
 */
void iothread_qos_recheck(struct iothread *t);

struct export_params {
	const char *name;          /* for logs */
	const char *socket_path;   /* or fd >= 0 */
	int fd;
	struct storage_params storage;
	unsigned num_queues;
	unsigned queue_size;       /* largest ring the frontend may set */
	bool read_only;
	bool writethrough;
	bool packed;               /* offer VIRTIO_F_RING_PACKED */
	bool iommu;                /* offer VIRTIO_F_ACCESS_PLATFORM (the IOTLB) */
	const char *serial;
	unsigned msg_timeout_ms;   /* vhost_dev_info.msg_timeout_ms (0: default) */
	/* Test only (VBLKD_TEST_SKIP_DATA_LOG=1): do not dirty-log request
	 * data during migration, so the e2e test can show it fails. */
	bool test_skip_data_log;
	/* I/O limits (qos.h); none set: no limit. */
	struct qos_limits qos;
	bool qos_given;            /* a limit or burst-ms was given: set them */
	const char *qos_group;     /* share a named group's limits; NULL: own */
};

struct export;

/*
 * export_create - open the storage, build the blk device, listen on the
 * socket. Queues are placed on iothreads[(first + i) % niothreads].
 * Context: the control loop's thread, before or while it runs.
 */
int export_create(const struct export_params *p, struct loop *ctrl,
		  struct iothread **iothreads, unsigned niothreads, unsigned first,
		  struct export **out);
/*
 * export_shutdown - stop @n exports at once (NULL entries are skipped):
 * close their sockets, stop every ring, wait up to @timeout_ms for the
 * requests in flight, then flush, close and free each export (setting
 * its entry to NULL). An export still holding requests after that is not
 * freed (its iothread may yet complete into it): it gets a flush through
 * its iothread, waited for at most @flush_timeout_ms, so a hung storage
 * cannot hang the shutdown.
 * Return: 0; -EIO if a flush failed; -ETIMEDOUT if requests were still in
 * flight (their exports were flushed as far as the storage answered).
 * Context: the control loop's thread, once loop_run returned.
 */
int export_shutdown(struct export **exports, unsigned n, struct loop *ctrl, int timeout_ms,
		    int flush_timeout_ms);
/*
 * export_destroy - one export's export_shutdown (a runtime removal): stop
 * every queue (in-flight requests complete first, the image is synced),
 * close the connection and the socket (its file is removed). Storage that
 * holds requests past the stop timeout leaves the export allocated.
 * Context: the control thread; may run the control loop (from one of its
 * callbacks too) while the queues stop.
 */
void export_destroy(struct export *e);

/* What export-list shows. Strings belong to the export. */
struct export_info {
	const char *name;
	const char *socket_path;   /* NULL: an inherited fd */
	const char *image;         /* NULL: the null engine */
	enum storage_engine engine;
	uint64_t size;             /* bytes the guest sees */
	unsigned num_queues;
	unsigned queue_size;
	bool read_only;
	bool connected;
	uint64_t features;         /* negotiated with the frontend; 0: none yet */
};

/* Context: the control thread. */
void export_get_info(const struct export *e, struct export_info *out);
bool export_connected(const struct export *e);

struct stats_queue;
/* Context: the control thread (these two). */
unsigned export_num_queues(const struct export *e);
/*
 * export_queue_stats - add a snapshot of queue @i's statistics to @sum
 * (queues are read while their iothreads count on: see stats.h); the
 * index of the iothread serving it goes to *@iothread (may be NULL).
 */
void export_queue_stats(const struct export *e, unsigned i, struct stats_queue *sum,
			unsigned *iothread);

struct export_resize_result {
	uint64_t old_size, new_size;
	/* Telling the frontend: 0 (sent, or the size did not change),
	 * -ENOTCONN (no frontend, or it gave no backend channel: the guest
	 * sees the new size when it next reads the config), other -errno. */
	int notify;
};

/*
 * export_resize - make the export @size bytes (a multiple of 512), or with
 * @size 0 take the image's current size; then tell a connected frontend
 * with VHOST_USER_BACKEND_CONFIG_CHANGE_MSG (the guest re-reads the
 * capacity). Requests past a shrunken end fail with IOERR.
 * Return: 0 or storage_resize's -errno (nothing changed then).
 * Context: the control thread.
 */
int export_resize(struct export *e, uint64_t size, struct export_resize_result *res);

/*
 * export_set_qos - I/O limits. @group: NULL keeps the export where it is,
 * "" gives it limits of its own again, a name makes it share that group's
 * (created on first use). @l (NULL: unchanged) then replaces the limits of
 * wherever the export now is: its own, or the whole group's. Requests
 * waiting under the old limits are re-timed at once.
 * Return: 0, -EINVAL (a bad group name), -ENOSPC (too many groups).
 * Context: the control thread.
 */
int export_set_qos(struct export *e, const struct qos_limits *l, const char *group);
/* The limits in force and the group (NULL: its own). Context: the control thread. */
void export_get_qos(struct export *e, struct qos_limits *out, const char **group);

#endif
