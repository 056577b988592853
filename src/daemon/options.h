/* SPDX-License-Identifier: MIT */
/*
 * options.h - parsing an export's KEY=VALUE options, shared by the
 * command line (--export, the flat options) and the control socket's
 * export-add. Errors go to stderr, or into a buffer while captured.
 */
#ifndef VBLK_DAEMON_OPTIONS_H
#define VBLK_DAEMON_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/compiler.h"
#include "daemon/daemon.h"

#define DEFAULT_QUEUE_SIZE 1024
#define MAX_QUEUE_SIZE 1024

struct export_opts {
	struct export_params p;
	uint64_t null_size;
	bool have_target;       /* file, rbd or null given */
	bool rbd_opts;          /* ceph-conf, id, keyring or rbd-timeout given */
	bool activated;         /* fd came from systemd (socket-path names it) */
};

/*
 * opt_fail - report a bad option: "vblkd: MESSAGE" and a --help hint on
 * stderr, or only MESSAGE into the buffer given to opt_capture().
 * Return: -EINVAL.
 */
int opt_fail(const char *fmt, ...) PRINTF(1, 2);
/* Send opt_fail's messages to @buf (size @n) from now on; NULL: stderr. */
void opt_capture(char *buf, size_t n);

int opt_parse_uint(const char *name, const char *s, unsigned min, unsigned max, unsigned *out);
/* "64M", "1G", "512" (bytes); a non-zero multiple of 512. */
int opt_parse_size(const char *name, const char *s, uint64_t *out);
/* on/off, true/false, yes/no, 1/0; NULL (a bare key) is on. */
int opt_parse_bool(const char *name, const char *s, bool *out);

/* A per-second rate; 0 is no limit; @units: K/M/G/T allowed (bytes). */
int opt_parse_rate(const char *name, const char *s, bool units, uint64_t *out);
/* iops, iops-rd, iops-wr, bps, bps-rd, bps-wr, burst-ms, qos-group. */
bool qos_opt_key(const char *key);
/* Apply one QoS key to @l / @group (@val must outlive them). */
int qos_opt(struct qos_limits *l, const char **group, const char *key, const char *val);

void export_opts_init(struct export_opts *o);
/* Apply one key=value (@val may be NULL); @val must outlive @o. */
int export_opt(struct export_opts *o, const char *key, const char *val);
/* "a=b,c=d", parsed in place. */
int export_opt_list(struct export_opts *o, char *list);
/* A complete export? @idx is for messages. */
int export_opts_check(struct export_opts *o, unsigned idx);

#endif
