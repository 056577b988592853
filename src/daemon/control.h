/* SPDX-License-Identifier: MIT */
/*
 * control.h - vblkd's exports as a set the control socket changes: the
 * exports given on the command line and those added at runtime, and the
 * export-* methods (export-add, export-remove, export-list,
 * export-resize; docs/control.md). Owned by the control thread.
 */
#ifndef VBLK_DAEMON_CONTROL_H
#define VBLK_DAEMON_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/daemon.h"
#include "daemon/options.h"

#define CONTROL_MAX_EXPORTS 64

struct control;
struct mgmt;

struct control_params {
	struct loop *ctrl;
	struct iothread **iothreads;
	unsigned niothreads;
	unsigned msg_timeout_ms;     /* for exports added at runtime (0: default) */
	bool test_skip_data_log;     /* VBLKD_TEST_SKIP_DATA_LOG (tests only) */
	/* Exports added at runtime may use the rbd engine (its network and
	 * threads are allowed by the sandbox, or there is no sandbox). */
	bool runtime_rbd;
	/* No --poll-mode was given and iothreads poll adaptively: the first rbd
	 * export added switches them to event mode (as at start, see vblkd.c). */
	bool poll_event_for_rbd;
};

/* Context: the control thread (all of these). */
int control_create(const struct control_params *p, struct control **out);
/* Remove every export (stopping queues, syncing images), free. */
void control_destroy(struct control *c);
/*
 * control_shutdown - stop every export at once with export_shutdown()
 * (one deadline for all) and take them out of the set; exports still
 * holding requests stay allocated until the exit. Return: as
 * export_shutdown.
 */
int control_shutdown(struct control *c, int timeout_ms, int flush_timeout_ms);
/*
 * control_add - create an export from @o (checked with
 * export_opts_check; its strings must outlive the export, or be handed
 * over in @owned: @nowned malloc'd strings freed with the export, or on
 * failure). A message for the user goes to @err.
 * Return: 0, -EDOM (incomplete or contradictory options), -EEXIST
 * (socket used by another export or process), -ENOSPC (too many
 * exports), export_create's -errno.
 */
int control_add(struct control *c, struct export_opts *o, char **owned, unsigned nowned,
		char *err, size_t errlen);
/* Register the export-* methods on @m. */
int control_register(struct control *c, struct mgmt *m);
/* The export called @name (or served on socket @name); NULL if none. */
struct export *control_lookup(struct control *c, const char *name);
/* export-set-qos, export-get-qos (control_qos.c). */
int control_qos_register(struct control *c, struct mgmt *m);

/* The set as it is now, for readers such as the statistics (stats_*.c). */
unsigned control_count(const struct control *c);
struct export *control_export(const struct control *c, unsigned i);
/* The export named @name, or whose socket is @name; NULL if none. */
struct export *control_lookup(struct control *c, const char *name);
/* The iothreads serving the set. */
struct iothread *const *control_iothreads(const struct control *c, unsigned *n);

#endif
