/* SPDX-License-Identifier: MIT */
/*
 * systemd.h - what vblkd does for systemd, without libsystemd: socket
 * activation (LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES become exports'
 * listening sockets) and readiness notification (READY=1, STATUS=...,
 * STOPPING=1 as datagrams on $NOTIFY_SOCKET). Both do nothing when the
 * variables are absent.
 */
#ifndef VBLK_DAEMON_SYSTEMD_H
#define VBLK_DAEMON_SYSTEMD_H

#include "common/compiler.h"
#include "daemon/options.h"

/* The first fd systemd passes (SD_LISTEN_FDS_START). */
#define SYSTEMD_FDS_START 3
#define SYSTEMD_MAX_FDS 64

/*
 * systemd_take_listen_fds - the listening sockets passed to this process
 * (LISTEN_PID is ours), marked close-on-exec, and each handed to an export:
 * the one whose socket-path is the socket's bound path, else the next
 * export given neither socket-path nor fd (in the order of LISTEN_FDS).
 * A socket no export takes is closed with a warning. The variables are
 * removed from the environment.
 * Return: the number of sockets passed (0: not socket-activated), or
 * -EINVAL (bad variables: message on stderr).
 * Context: startup, before the exports are checked.
 */
int systemd_take_listen_fds(struct export_opts *ex, unsigned n);

/*
 * systemd_notify_open - connect to $NOTIFY_SOCKET if set (and remove it
 * from the environment), so that systemd_notify works under the sandbox
 * (it only sends on the connected socket).
 * Context: startup, before the sandbox.
 */
void systemd_notify_open(void);
/* Send one notification ("READY=1\nSTATUS=..."); nothing if not opened. */
void systemd_notify(const char *fmt, ...) PRINTF(1, 2);

#endif
