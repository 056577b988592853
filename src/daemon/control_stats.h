/* SPDX-License-Identifier: MIT */
/* control_stats.h - the export-stats control method (control_stats.c). */
#ifndef VBLK_DAEMON_CONTROL_STATS_H
#define VBLK_DAEMON_CONTROL_STATS_H

struct control;
struct mgmt;

/*
 * Register export-stats on @m; its result names @metrics_url (the
 * --metrics endpoint, NULL: none; must outlive @m).
 * Context: the control thread.
 */
int control_stats_register(struct control *c, struct mgmt *m, const char *metrics_url);

#endif
