#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The cost of one client-side option in vblkd: the same vblkperf jobs
# against the same daemon, with the vblkperf flag CLIENT_FLAG and without,
# alternating, REPEAT rounds each. Prints median IOPS and the on/off ratio
# per job. Not a test: numbers, no pass/fail. bench/dirty-log.sh and
# bench/iommu.sh are the two uses.
#   bench/onoff.sh CLIENT_FLAG "VBLKD_ARGS" [BUILD_DIR] [REPEAT] [RUNTIME_S]
# With VBLK_BASELINE_VBLKD=PATH (an older vblkd, e.g. a release build of
# the commit before the feature), that daemon serves the same image on a
# second socket and is measured in the same rounds: the "off" column
# against it shows what the feature costs while it is off.
set -euo pipefail

flag=$1
read -r -a server_args <<<"$2"
shift 2

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-bench}
repeat=${2:-3}
runtime=${3:-5}
vblkd=$build/src/daemon/vblkd
perf=$build/tools/vblkperf
if [[ ! -x $vblkd || ! -x $perf ]]; then
	[[ $build == "$root/build-bench" ]] || { echo "no vblkd/vblkperf in $build" >&2; exit 2; }
	[[ -f $build/build.ninja ]] || meson setup "$build" --buildtype=release >/dev/null
	ninja -C "$build" >/dev/null
fi

base_vblkd=${VBLK_BASELINE_VBLKD:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vblk-onoff.XXXXXX")
pid='' base_pid=''
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	[[ -n $base_pid ]] && kill "$base_pid" 2>/dev/null && wait "$base_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
sock=$tmp/s.sock
# tmpfs image: reads copy real pages into the buffers vblkd then marks.
img=/dev/shm/vblk-onoff-$$.img
trap 'cleanup; rm -f "$img"' EXIT
head -c $((256 << 20)) /dev/zero >"$img"
"$vblkd" --socket-path="$sock" --file="$img" --num-queues=2 --iothreads=1 "${server_args[@]}" \
	>"$tmp/vblkd.log" 2>&1 &
pid=$!
for ((i = 0; i < 100; i++)); do [[ -S $sock ]] && break; sleep 0.05; done
base_sock=$tmp/base.sock
if [[ -n $base_vblkd ]]; then
	"$base_vblkd" --socket-path="$base_sock" --file="$img" --num-queues=2 --iothreads=1 \
		>"$tmp/base.log" 2>&1 &
	base_pid=$!
	for ((i = 0; i < 100; i++)); do [[ -S $base_sock ]] && break; sleep 0.05; done
fi

iops() { # [--sock PATH] JOB-ARGS... -> IOPS
	local path=$sock
	if [[ $1 == --sock ]]; then path=$2; shift 2; fi
	"$perf" --path="$path" --runtime="$runtime" --json=- "$@" 2>/dev/null |
		sed -n 's/.*"iops": \([0-9.]*\).*/\1/p' | tail -n 1
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

jobs=("randread bs=4k qd=32:--rw=randread --bs=4k --qd=32"
	"randread bs=64k qd=8:--rw=randread --bs=64k --qd=8"
	"randwrite bs=4k qd=32:--rw=randwrite --bs=4k --qd=32")
if [[ -n $base_vblkd ]]; then
	printf '%-24s %12s %12s %12s %8s %10s\n' job "IOPS before" "IOPS off" "IOPS on" "on/off" "off/before"
else
	printf '%-24s %12s %12s %8s\n' job "IOPS off" "IOPS on" "on/off"
fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0 ? a / b : 0) }'; }
for j in "${jobs[@]}"; do
	name=${j%%:*}
	read -r -a args <<<"${j#*:}"
	off=() on=() before=()
	for ((r = 0; r < repeat; r++)); do
		[[ -n $base_vblkd ]] && before+=("$(iops --sock "$base_sock" "${args[@]}")")
		off+=("$(iops "${args[@]}")")
		on+=("$(iops "${args[@]}" "$flag")")
	done
	o=$(printf '%s\n' "${off[@]}" | median)
	n=$(printf '%s\n' "${on[@]}" | median)
	if [[ -n $base_vblkd ]]; then
		b=$(printf '%s\n' "${before[@]}" | median)
		printf '%-24s %12.0f %12.0f %12.0f %8.2f %10.2f\n' "$name" "$b" "$o" "$n" \
			"$(ratio "$n" "$o")" "$(ratio "$o" "$b")"
	else
		printf '%-24s %12.0f %12.0f %8.2f\n' "$name" "$o" "$n" "$(ratio "$n" "$o")"
	fi
done
