/* SPDX-License-Identifier: MIT */
/*
 * vblk.h - libvblk: a userspace virtio-blk driver that talks to a
 * vhost-user-blk server (vblkd, qemu-storage-daemon, ...) over a unix
 * socket. The one installed header.
 *
 * Lifecycle (phases, like libblkio):
 *   vblk_create() -> set properties -> vblk_connect() (handshake, config
 *   read) -> set more properties -> vblk_start() (memory shared, rings
 *   running) -> vblk_get_queue() -> vblkq_*() I/O -> vblk_destroy().
 *
 * Data buffers must lie inside memory the server can see: regions from
 * vblk_alloc_mem_region() or fd-backed memory given to
 * vblk_map_mem_region(). Each request is one buffer (or iovec element)
 * per region; a buffer may not cross regions.
 *
 * Threads: a struct vblk is used by one thread at a time; each struct
 * vblkq by one thread at a time (different queues from different threads
 * is fine). vblk_get_error_msg() is per thread.
 */
#ifndef VBLK_VBLK_H
#define VBLK_VBLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vblk;
struct vblkq;
struct timespec;

/* Memory shared with the server. iova is assigned by libvblk. */
struct vblk_mem_region {
	void *addr;          /* start of the mapping in this process */
	size_t len;          /* bytes */
	uint64_t iova;       /* device address of addr (set by libvblk) */
	int64_t fd_offset;   /* offset of addr's byte in fd */
	int fd;              /* the fd the server maps (memfd, file, ...) */
	uint32_t flags;      /* must be 0 */
};

/* One finished request (vblkq_do_io). */
struct vblk_completion {
	void *user_data;     /* as given at submission */
	const char *error_msg; /* static text when ret != 0, else NULL */
	int ret;             /* 0, -EIO, -ENOTSUP, -ENOTCONN, ... */
	int reserved;
};

/* Request flags. */
#define VBLK_REQ_NO_UNMAP (1u << 1) /* write_zeroes: do not deallocate */

/* ---- instance and lifecycle ---------------------------------------------- */
int vblk_create(struct vblk **out);
void vblk_destroy(struct vblk **v);
int vblk_connect(struct vblk *v);
int vblk_start(struct vblk *v);
const char *vblk_get_error_msg(void);

/* ---- properties ------------------------------------------------------------ */
int vblk_get_bool(struct vblk *v, const char *name, bool *value);
int vblk_get_int(struct vblk *v, const char *name, int *value);
int vblk_get_u64(struct vblk *v, const char *name, uint64_t *value);
int vblk_get_str(struct vblk *v, const char *name, char **value);
int vblk_set_bool(struct vblk *v, const char *name, bool value);
int vblk_set_int(struct vblk *v, const char *name, int value);
int vblk_set_u64(struct vblk *v, const char *name, uint64_t value);
int vblk_set_str(struct vblk *v, const char *name, const char *value);

/* ---- memory ------------------------------------------------------------------ */
int vblk_alloc_mem_region(struct vblk *v, size_t len, struct vblk_mem_region *region);
void vblk_free_mem_region(struct vblk *v, const struct vblk_mem_region *region);
int vblk_map_mem_region(struct vblk *v, struct vblk_mem_region *region);
void vblk_unmap_mem_region(struct vblk *v, const struct vblk_mem_region *region);

/* ---- queues and I/O --------------------------------------------------------- */
struct vblkq *vblk_get_queue(struct vblk *v, int index);

int vblkq_read(struct vblkq *q, uint64_t offset, void *buf, size_t len, void *user_data,
	       uint32_t flags);
int vblkq_write(struct vblkq *q, uint64_t offset, const void *buf, size_t len,
		void *user_data, uint32_t flags);
int vblkq_readv(struct vblkq *q, uint64_t offset, const struct iovec *iov, int iovcnt,
		void *user_data, uint32_t flags);
int vblkq_writev(struct vblkq *q, uint64_t offset, const struct iovec *iov, int iovcnt,
		 void *user_data, uint32_t flags);
int vblkq_flush(struct vblkq *q, void *user_data, uint32_t flags);
int vblkq_discard(struct vblkq *q, uint64_t offset, uint64_t len, void *user_data,
		  uint32_t flags);
int vblkq_write_zeroes(struct vblkq *q, uint64_t offset, uint64_t len, void *user_data,
		       uint32_t flags);
int vblkq_do_io(struct vblkq *q, struct vblk_completion *completions, int min_completions,
		int max_completions, struct timespec *timeout);
int vblkq_get_completion_fd(struct vblkq *q);
void vblkq_set_completion_fd_enabled(struct vblkq *q, bool enable);

#ifdef __cplusplus
}
#endif

#endif
