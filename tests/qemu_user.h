/* SPDX-License-Identifier: MIT */
/*
 * qemu_user.h - whether this test program runs under qemu-user, for the
 * tests and fuzz replays (tap.h and fuzz.h include it).
 */
#ifndef VBLK_TESTS_QEMU_USER_H
#define VBLK_TESTS_QEMU_USER_H

#include <stdlib.h>
#include <string.h>

/*
 * test_qemu_user - the wrapper's path when meson runs this program under
 * qemu-user (a cross build's exe_wrapper: scripts/test-arm64.sh), else
 * NULL. There system calls reach the host kernel through qemu's
 * translation, which has no io_uring_setup() or seccomp(), and emulates
 * /proc/self/maps and SCM_RIGHTS truncation its own way (it takes every fd
 * the sender passed): tests skip what depends on those, and say so.
 */
static inline const char *test_qemu_user(void)
{
	const char *w = getenv("MESON_EXE_WRAPPER");

	return w && strstr(w, "qemu-") ? w : NULL;
}

#endif
