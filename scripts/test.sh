#!/bin/bash
# SPDX-License-Identifier: MIT
# Run vblk's whole test suite the way CI does: install what is needed, build
# with AddressSanitizer and UndefinedBehaviorSanitizer (warnings are errors),
# and run every suite (unit, func, e2e); then a release build runs the
# daemon tests again with the production sandbox, and the arm64 cross build
# runs its unit tests under qemu-user (scripts/test-arm64.sh). Extra
# arguments go to `meson test` on the sanitized build only (for example:
# scripts/test.sh --suite unit) and skip the release and arm64 runs;
# VBLK_TEST_RELEASE=0 and VBLK_ARM64=0 skip them one by one. For a quick
# loop, skip this script once build-test exists: see "Testing" in README.md.
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

# One Ceph cluster for the whole run (a start costs seconds of the shared
# CPUs): the rbd tests (func daemon_rbd, e2e vblkd-rbd-*) use the one
# VBLK_CEPH_CONF names, each with images of its own, and start their own
# when it is unset (run alone). daemon_rbd stops and freezes the OSD: meson
# runs it, like every e2e test, with nothing else (is_parallel: false).
ceph_dir=''
stop_ceph() { [[ -n $ceph_dir ]] && scripts/ceph-cluster.sh stop "$ceph_dir" || true; }
trap stop_ceph EXIT
if [[ -z ${VBLK_CEPH_CONF:-} ]] && command -v ceph-osd >/dev/null; then
	ceph_dir=$(mktemp -d "${TMPDIR:-/tmp}/vblk-ceph.XXXXXX")
	if VBLK_CEPH_CONF=$(scripts/ceph-cluster.sh start "$ceph_dir/c"); then
		export VBLK_CEPH_CONF
		echo "test.sh: Ceph cluster for this run: $VBLK_CEPH_CONF"
	else
		echo "test.sh: no shared Ceph cluster (logs in $ceph_dir/c/log); rbd tests start their own" >&2
		unset VBLK_CEPH_CONF
	fi
fi

rc=0
meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || rc=$?
logs=("$build/meson-logs/testlog.json")

# What ships: a release build (no sanitizers, so the daemon runs the
# production seccomp allow-list, not the ASan one) runs the daemon tests
# (func suite) and the SIGKILL/restart guest tests (file and rbd), where a restarted vblkd
# recovers requests in flight under its filter.
release=${VBLK_TEST_RELEASE_BUILD:-build-release}
if [[ $# -eq 0 && ${VBLK_TEST_RELEASE:-1} != 0 ]]; then
	if [ ! -f "$release/build.ninja" ]; then
		meson setup "$release" -Dbuildtype=release -Db_ndebug=false -Dwerror=true
	fi
	ninja -C "$release"
	# Two runs (meson ANDs a suite with test names); keep the first log.
	meson test -C "$release" --print-errorlogs --num-processes 2 --suite func || rc=$?
	cp "$release/meson-logs/testlog.json" "$release/meson-logs/testlog-func.json"
	kill_tests=(vblkd-sigkill vblkd-sigkill-packed)
	# The rbd one where this build has the rbd engine (librbd found).
	meson introspect --tests "$release" | grep -q '"vblkd-rbd-sigkill"' &&
		kill_tests+=(vblkd-rbd-sigkill)
	meson test -C "$release" --print-errorlogs "${kill_tests[@]}" || rc=$?
	logs+=("$release/meson-logs/testlog-func.json" "$release/meson-logs/testlog.json")
fi

if (($# == 0)) && [[ ${VBLK_ARM64:-1} != 0 ]]; then
	arm64=${VBLK_ARM64_BUILD:-build-arm64}
	VBLK_ARM64_BUILD=$arm64 scripts/test-arm64.sh || rc=1
	[[ -f $arm64/meson-logs/testlog.json ]] && logs+=("$arm64/meson-logs/testlog.json")
fi

# One plain summary line from meson's own logs (all builds).
python3 - "${logs[@]}" <<'PY' || true
import json, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0}
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)["result"]
        key = "OK" if r == "OK" else "SKIP" if r == "SKIP" else "FAIL"
        counts[key] += 1
print(f"{counts['OK']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
PY
exit $rc
