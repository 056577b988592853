/* SPDX-License-Identifier: MIT */
/* log.c - stderr logging with levels and per-site rate limiting. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <pthread.h>

#include "common/log.h"

enum log_level log_max_level = LOG_INFO;

static const char *const level_names[] = { "error", "warning", "info", "debug" };
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "vblk: %s: ", level_names[lvl]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (lvl > log_max_level)
		return;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

#define RL_WINDOW_NS (5LL * 1000000000LL)
#define RL_BURST 5

void log_msg_rl(struct log_ratelimit *rl, enum log_level lvl, const char *fmt, ...)
{
	struct timespec ts;
	int64_t now;
	va_list ap;

	if (lvl > log_max_level)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	/* Racy across threads by design: a limiter is a hint, not a lock. */
	if (now - rl->window_start_ns > RL_WINDOW_NS) {
		if (rl->suppressed)
			log_msg(lvl, "(%u similar messages suppressed)", rl->suppressed);
		rl->window_start_ns = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed >= RL_BURST) {
		rl->suppressed++;
		return;
	}
	rl->printed++;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}
