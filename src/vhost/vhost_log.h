/* SPDX-License-Identifier: MIT */
/*
 * vhost_log.h - dirty logging for live migration, the vhost-user side:
 * mapping the log a frontend sends with SET_LOG_BASE (LOG_SHMFD) and
 * working out what each ring logs with (VHOST_F_LOG_ALL, the vring log
 * address). The bitmap itself is a struct gmem_log; rings hold a
 * reference to the one they use and switch logs in their own context.
 *
 * Context: the control thread, except vhost_log_swap_fn (the ring's).
 */
#ifndef VBLK_VHOST_LOG_H
#define VBLK_VHOST_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "gmem/gmem_log.h"
#include "vhost/vhost.h"
#include "vhost/vhost_msg.h"

/* Virtio feature: log every write to guest memory. */
#define VHOST_F_LOG_ALL 26
/* SET_VRING_ADDR flags bit: the log address is valid. */
#define VHOST_VRING_F_LOG 0

/*
 * vhost_log_open - map the log a SET_LOG_BASE message describes (@fd, the
 * message's fd) and check it covers every region of @mem (NULL: none).
 * Return: 0, or -EINVAL / -errno with *why saying what is wrong.
 */
int vhost_log_open(const struct vhost_msg_log *p, int fd, const struct gmem *mem,
		   struct gmem_log **out, const char **why);

/* What one ring logs with; log NULL: nothing. */
struct vhost_log_ring {
	struct gmem_log *log;
	uint64_t desc_gpa;     /* packed: the descriptor ring */
	uint64_t device_gpa;   /* the device area (split: used ring) */
};

/*
 * vhost_log_ring_cfg - how vr must log now: off unless @on (LOG_ALL
 * negotiated) and @log is set. The device area is at the vring's log
 * address when SET_VRING_ADDR had VHOST_VRING_F_LOG, else at the GPA of
 * its used address in @mem; a packed ring's descriptors at the GPA of its
 * descriptor address. No reference is taken on @log.
 * Return: 0, -ERANGE with *why if an area is not in @mem or not covered
 * by @log (the caller refuses what asked for it).
 */
int vhost_log_ring_cfg(struct gmem_log *log, bool on, const struct gmem *mem,
		       const struct vhost_vring *vr, bool packed, struct vhost_log_ring *out,
		       const char **why);

/*
 * vhost_log_ring_start - a ring about to start (virtq initialised) takes
 * the logging @log and @on ask for, holding a reference to the log.
 * Return: 0, or -ERANGE with *why (vhost_log_ring_cfg): do not start it.
 */
int vhost_log_ring_start(struct gmem_log *log, bool on, const struct gmem *mem,
			 struct vhost_vring *vr, bool packed, const char **why);

/* vhost_log_ring_stop - a stopped (or never started) ring lets its log go. */
void vhost_log_ring_stop(struct vhost_vring *vr);

/*
 * vhost_log_apply - give the started rings of vrings[0..n) (or only
 * @only) the logging @log and @on ask for, each switched inside its own
 * context (ops->queue_exec); a ring's previous log is put once it no
 * longer uses it. Every ring is checked first: -ERANGE, nothing changed,
 * with *bad_index and *why naming the first ring that does not fit. A
 * ring whose thread does not take the switch (queue_exec fails) keeps its
 * old logging: its error, with *bad_index and *why; the caller must then
 * drop the connection (the frontend would trust a log that misses pages).
 */
int vhost_log_apply(struct vhost_vring *vrings, unsigned n, struct vhost_vring *only,
		    struct gmem_log *log, bool on, const struct gmem *mem,
		    const struct vhost_dev_ops *ops, void *opaque, unsigned *bad_index,
		    const char **why);

#endif
