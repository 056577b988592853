/* SPDX-License-Identifier: MIT */
/*
 * log.h - leveled logging to stderr, with a rate-limited variant for
 * anything a guest or frontend can trigger repeatedly.
 */
#ifndef VBLK_COMMON_LOG_H
#define VBLK_COMMON_LOG_H

#include <stdint.h>
#include "common/compiler.h"

enum log_level { LOG_ERR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_max_level;

void log_msg(enum log_level lvl, const char *fmt, ...) PRINTF(2, 3);

/* One per call site: at most `burst` messages per 5 s window. */
struct log_ratelimit {
	int64_t window_start_ns;
	unsigned printed;
	unsigned suppressed;
};

void log_msg_rl(struct log_ratelimit *rl, enum log_level lvl, const char *fmt, ...) PRINTF(3, 4);

#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_max_level >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

/* Rate-limited: each expansion has its own static limiter. */
#define log_rl(lvl, ...) do { \
		static struct log_ratelimit rl__; \
		log_msg_rl(&rl__, lvl, __VA_ARGS__); \
	} while (0)

#endif
