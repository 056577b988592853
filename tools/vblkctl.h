/* SPDX-License-Identifier: MIT */
/* vblkctl.h - what vblkctl.c shares with its commands in other files. */
#ifndef VBLK_TOOLS_VBLKCTL_H
#define VBLK_TOOLS_VBLKCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

enum { EXIT_OK = 0, EXIT_RPC = 1, EXIT_USAGE = 2, EXIT_CONN = 3 };

extern bool opt_json;

/* "vblkctl: " + fmt (one %s: @arg) + a --help hint on stderr. Return: EXIT_USAGE. */
int usage_error(const char *fmt, const char *arg);
const char *jstr(struct json_object *o, const char *key, const char *dflt);
uint64_t ju64(struct json_object *o, const char *key);
const char *human_size(uint64_t v, char *buf, size_t n);
void print_json(struct json_object *o);
/* Connect to the control socket @control; errors are printed. Return: fd or -errno. */
int connect_control(const char *control);
/*
 * call_method - one call on the open connection @fd; errors are printed.
 * Return: EXIT_OK with *@reply set (the caller puts it; its "result" is
 * there), EXIT_RPC (the daemon refused), EXIT_CONN (no answer).
 */
int call_method(int fd, const char *control, const char *method, struct json_object *params,
		int timeout_ms, struct json_object **reply);

/* vblkctl stats (vblkctl_stats.c). Return: an exit status. */
int stats_command(const char *control, int timeout_ms, int argc, char **argv);

#endif
