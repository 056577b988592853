/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - vblkd's optional Prometheus endpoint (--metrics=ADDR:PORT):
 * the numbers of export-stats in the Prometheus text exposition format,
 * served over HTTP by libmicrohttpd on a thread of its own.
 */
#ifndef VBLK_DAEMON_METRICS_H
#define VBLK_DAEMON_METRICS_H

#include <stdio.h>

struct control;
struct loop;
struct metrics;

/*
 * metrics_start - listen on @addr ("IPV4:PORT" or "[IPV6]:PORT", numeric;
 * port 0: any free port) and serve GET /metrics. The page is built on the
 * control thread (@ctrl, by loop_call) from @c's exports, so the HTTP
 * thread never touches an export. Logs "metrics on http://ADDR:PORT/metrics"
 * with the port bound. Return: 0, -EINVAL (a bad address), -ENOTSUP (built
 * without libmicrohttpd or statistics), -errno of socket/bind.
 * Context: the control thread, before the sandbox (it binds, starts a thread).
 */
int metrics_start(const char *addr, struct loop *ctrl, struct control *c, struct metrics **out);
/*
 * metrics_check_addr - is @addr a valid --metrics value? Return: 0,
 * -EINVAL, -ENOTSUP (this vblkd cannot serve metrics). Context: any thread.
 */
int metrics_check_addr(const char *addr);
/* The URL served ("http://127.0.0.1:9100/metrics", the port bound). */
const char *metrics_url(const struct metrics *m);
/* Stop serving (waits for the HTTP thread), close, free. NULL is fine. */
void metrics_stop(struct metrics *m);

/*
 * metrics_render - write the exposition text of @c's exports and
 * iothreads to @f. Return: 0, -ENOMEM. Context: the control thread.
 */
int metrics_render(struct control *c, FILE *f);

#endif
