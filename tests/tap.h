/* SPDX-License-Identifier: MIT */
/*
 * tap.h - a tiny TAP producer for the unit and functional tests.
 * Each test program calls ok()/is()/... and ends with `return tap_done();`
 * which exits 0 only when every check passed (meson reads the TAP stream).
 */
#ifndef VBLK_TESTS_TAP_H
#define VBLK_TESTS_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_user.h"

static unsigned tap_count__, tap_failed__;

static inline int tap_ok__(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_count__++;
	printf("%sok %u - ", cond ? "" : "not ", tap_count__);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed__++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok__(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* Integer equality with both values printed on failure. */
#define is(got, want, ...) do { \
		long long g__ = (long long)(got), w__ = (long long)(want); \
		if (!tap_ok__(g__ == w__, __FILE__, __LINE__, __VA_ARGS__)) \
			printf("#   got %lld, want %lld\n", g__, w__); \
	} while (0)

#define diag(...) do { printf("# "); printf(__VA_ARGS__); printf("\n"); fflush(stdout); } while (0)

/* Abort the whole program: for broken test set-up, not for checks. */
#define tap_bail(...) do { printf("Bail out! "); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)

static inline int tap_done(void)
{
	printf("1..%u\n", tap_count__);
	if (tap_failed__)
		printf("# %u of %u checks failed\n", tap_failed__, tap_count__);
	return tap_failed__ ? 1 : 0;
}

/* One check that cannot be made here: counted, never failed. */
#define skip(...) do { printf("ok %u # SKIP ", ++tap_count__); printf(__VA_ARGS__); \
	printf("\n"); fflush(stdout); } while (0)
/*
 * Skip the whole program, before any check. meson's TAP reader calls a
 * "1..0 # SKIP" plan SKIP only with exit status 0 (77 is an ERROR there).
 */
#define tap_skip_all(...) do { printf("1..0 # SKIP "); printf(__VA_ARGS__); printf("\n"); exit(0); } while (0)

#endif
