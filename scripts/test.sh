#!/bin/bash
# SPDX-License-Identifier: MIT
# Run vblk's whole test suite the way CI does: install what is needed, build
# with AddressSanitizer and UndefinedBehaviorSanitizer (warnings are errors),
# and run every suite (unit, func, e2e). Extra arguments go to `meson test`
# (for example: scripts/test.sh --suite unit).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# The fio engine builds against the exact installed fio's source tree.
scripts/fio-headers.sh >/dev/null

build=${VBLK_TEST_BUILD:-build-test}
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false \
		-Dwerror=true -Dbuildtype=debugoptimized -Drbd=enabled
fi
ninja -C "$build"

# Any sanitizer report fails the test that triggered it.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

rc=0
meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || rc=$?

# One plain summary line from meson's own log.
python3 - "$build/meson-logs/testlog.json" <<'PY' || true
import json, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0}
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    key = "OK" if r == "OK" else "SKIP" if r == "SKIP" else "FAIL"
    counts[key] += 1
print(f"{counts['OK']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
PY
exit $rc
