#!/bin/bash
# SPDX-License-Identifier: MIT
# vblkd's command line: every bad flag, missing file or busy socket gives a
# clear message and a non-zero exit, and good ones serve. Prints TAP.
set -u
VBLKD=${1:?usage: test_cli.sh PATH-TO-VBLKD}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # check, run, json, wait_socket
# expect_fail DESCRIPTION PATTERN ARGS...: exit code 2 or 1, stderr matches
expect_fail() {
	local desc=$1 pat=$2; shift 2
	local out rc
	out=$(timeout 30 "$VBLKD" "$@" 2>&1 >/dev/null); rc=$?
	n=$((n + 1))
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qi -- "$pat" <<<"$out"; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc"; echo "#   rc=$rc output: $out"; failed=$((failed + 1))
	fi
}
wait_socket() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }

truncate -s 64M "$tmp/disk.img"
S=$tmp/s.sock

expect_fail "unknown flag" "unknown option" --bogus
expect_fail "missing value" "needs a value" --socket-path
expect_fail "no export at all" "nothing to serve"
expect_fail "no image" "give --file" --socket-path="$S"
expect_fail "no socket" "socket-path" --file="$tmp/disk.img"
expect_fail "file and null together" "only one of" --socket-path="$S" --file="$tmp/disk.img" --null=1G
expect_fail "missing image file" "No such file" --socket-path="$S" --file="$tmp/nope.img"
expect_fail "image is a directory" "directory" --socket-path="$S" --file="$tmp"
expect_fail "queues out of range" "num-queues" --socket-path="$S" --file="$tmp/disk.img" --num-queues=0
expect_fail "queues not a number" "num-queues" --socket-path="$S" --file="$tmp/disk.img" --num-queues=2x
expect_fail "queue size not a power of two" "power of two" --socket-path="$S" --file="$tmp/disk.img" --queue-size=100
expect_fail "null size not a multiple of 512" "multiple of 512" --socket-path="$S" --null=1000
expect_fail "null size garbage" "size" --socket-path="$S" --null=lots
expect_fail "negative number" "iothreads" --socket-path="$S" --null=1M --iothreads=-1
expect_fail "socket and fd together" "mutually exclusive" --socket-path="$S" --fd=3 --null=1M
expect_fail "socket directory missing" "No such file" --socket-path="$tmp/no/dir/s" --null=1M
expect_fail "bad --export key" "unknown export option" --export=socket-path="$S",colour=blue
expect_fail "two exports on one socket" "two exports" --export=socket-path="$S",null=1M --export=socket-path="$S",null=1M
expect_fail "bad poll mode" "poll-mode.*event, poll or adaptive" --socket-path="$S" --null=1M --poll-mode=spin
expect_fail "empty poll mode" "poll-mode" --socket-path="$S" --null=1M --poll-mode=
expect_fail "poll mode case matters" "poll-mode" --socket-path="$S" --null=1M --poll-mode=POLL
expect_fail "poll idle not a number" "poll-idle-us" --socket-path="$S" --null=1M --poll-idle-us=10us
expect_fail "poll idle out of range" "poll-idle-us" --socket-path="$S" --null=1M --poll-idle-us=2000000
expect_fail "stray argument" "unexpected argument" --socket-path="$S" --null=1M extra

out=$("$VBLKD" --print-capabilities); rc=$?
check "--print-capabilities exits 0" [ $rc -eq 0 ]
check "--print-capabilities says type block" grep -q '"type": "block"' <<<"$out"
help_ok() { "$VBLKD" --help | grep -q -- "--socket-path"; }
check "--help exits 0 and describes --socket-path" help_ok

# A good export listens; a second daemon on the same socket is refused.
"$VBLKD" --socket-path="$S" --file="$tmp/disk.img" -q & pids+=($!)
check "daemon creates its socket" wait_socket "$S"
expect_fail "socket in use by a live daemon" "in use" --socket-path="$S" --null=1M
check "first daemon still alive" kill -0 "${pids[0]}"
kill -TERM "${pids[0]}"; wait "${pids[0]}"; rc=$?
check "SIGTERM exits 0" [ $rc -eq 0 ]

# A stale socket file (nobody listening) is replaced.
python3 - "$tmp/stale.sock" <<'PY' 2>/dev/null || true
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])
PY
"$VBLKD" --socket-path="$tmp/stale.sock" --null=1M -q & pids+=($!)
sleep 0.5
check "stale socket file is taken over" kill -0 "${pids[1]}"
kill -TERM "${pids[1]}"; wait "${pids[1]}"

# Several exports in one daemon.
"$VBLKD" --export=socket-path="$tmp/a.sock",file="$tmp/disk.img",num-queues=2 \
	--export=socket-path="$tmp/b.sock",null=1G,read-only=on -q & pids+=($!)
check "first of two exports listens" wait_socket "$tmp/a.sock"
check "second of two exports listens" wait_socket "$tmp/b.sock"
kill -TERM "${pids[2]}"; wait "${pids[2]}"; rc=$?
check "multi-export daemon exits 0 on SIGTERM" [ $rc -eq 0 ]

echo "1..$n"
[ $failed -eq 0 ]
