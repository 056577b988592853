#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Cross-builds vblk for arm64 (Debian's aarch64-linux-gnu gcc and the arm64
# multiarch libraries, scripts/cross/aarch64.txt) with warnings as errors,
# and runs the unit and fuzz-replay suites under qemu-user (meson's
# exe_wrapper). Tests that need what qemu-user does not emulate (io_uring,
# seccomp, the kernel's /proc/self/maps and SCM_RIGHTS truncation) skip
# those parts and say why (tests/tap.h: tap_qemu_user). No sanitizers:
# ASan's shadow memory does not work under qemu-user.
# Extra arguments go to `meson test` (default: --suite unit --suite fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --arm64

build=${VBLK_ARM64_BUILD:-build-arm64}
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" --cross-file scripts/cross/aarch64.txt \
		-Dwerror=true -Dbuildtype=debugoptimized -Dfio=disabled -De2e=disabled
fi
ninja -C "$build"

(($#)) || set -- --suite unit --suite fuzz
meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
