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

#include "blk/blk.h"
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
};

int iothread_create(unsigned index, struct iothread **out);
void iothread_destroy(struct iothread *t);
/*
 * iothread_set_poll_mode - event, busy polling or adaptive polling (see
 * loop_set_poll_mode). Context: any thread but the iothread (loop_call).
 */
int iothread_set_poll_mode(struct iothread *t, enum loop_poll_mode mode, uint64_t idle_ns);
/* Context: the iothread. Queue q gets a notification check at batch end. */
void iothread_mark_dirty(struct iothread *t, struct equeue *q);

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

#endif
