#!/bin/bash
# SPDX-License-Identifier: MIT
# test_vblkperf.sh VBLKD VBLKPERF - smoke test of the load generator: a
# short run per mode against vblkd --null, checking the JSON it writes.
vblkd=$1 perf=$2
dir=$(mktemp -d /tmp/vblkperf-test.XXXXXX) || exit 1
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
n=0 fail=0
check() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }

"$vblkd" --socket-path="$dir/sock" --null=64M --num-queues=2 -q >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 200); do [ -S "$dir/sock" ] && break; sleep 0.02; done
sleep 0.1
for args in "--mode poll --qd 8" "--mode event --qd 8 --rw randrw" "--mode poll --queues 2 --qd 4 --rw write" "--packed --mode event --qd 1 --rw read"; do
	"$perf" --path "$dir/sock" --runtime 1 $args --json "$dir/out.json" >"$dir/stdout" 2>&1
	r=$?
	[ $r = 0 ] || sed 's/^/# /' "$dir/stdout"
	check $r "vblkperf $args exits 0"
	grep -q '"iops": [1-9]' "$dir/out.json" && grep -q '"errors": 0' "$dir/out.json" &&
		grep -q '"p99": [1-9]' "$dir/out.json"
	check $? "vblkperf $args: JSON has IOPS, no errors, latency"
	grep -q 'IOPS' "$dir/stdout"
	check $? "vblkperf $args: text report"
done
echo "1..$n"
exit $fail
