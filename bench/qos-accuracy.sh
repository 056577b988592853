#!/bin/bash
# SPDX-License-Identifier: MIT
#
# How closely QoS limits hold: for several IOPS and bytes/s limits, vblkperf
# (libvblk) drives a null export flat out through the limit for RUNTIME
# seconds, and the achieved rate is compared with the target. The same jobs
# run against qemu-storage-daemon's throttle filter (throttle-group with
# the same limit and QEMU's default burst) side by side, one server at a
# time. Prints a table: target, achieved, error % for each, and the
# vblkd/QSD ratio of the absolute errors. Not a test: nothing is asserted.
#
#   bench/qos-accuracy.sh                 10 s per run, build-release
#   bench/qos-accuracy.sh --runtime 3     shorter
#   bench/qos-accuracy.sh --build DIR     another build tree (vblkd, vblkperf)
#   bench/qos-accuracy.sh --no-qsd        vblkd only
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=$root/build-release runtime=10 qsd=1
usage() { sed -n '3,16s/^# \{0,1\}//p' "$0"; }
while (($#)); do
	case $1 in
	--runtime) runtime=${2:?}; shift ;;
	--build) build=${2:?}; shift ;;
	--no-qsd) qsd=0 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "qos-accuracy.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
vblkd=$build/src/daemon/vblkd perf=$build/tools/vblkperf
[[ -x $vblkd && -x $perf ]] || { echo "qos-accuracy.sh: build $build first (meson setup $build --buildtype=release; ninja -C $build)" >&2; exit 2; }
if ((qsd)) && ! command -v qemu-storage-daemon >/dev/null; then
	echo "qos-accuracy.sh: no qemu-storage-daemon: vblkd only" >&2
	qsd=0
fi

tmp=$(mktemp -d)
spid=
stop() { [[ -n $spid ]] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null; spid=; }
trap 'stop; rm -rf "$tmp"' EXIT
wait_sock() { for _ in $(seq 400); do [[ -S $1 ]] && return 0; sleep 0.05; done; return 1; }

# name  vblkd-key  qsd-key  value  unit(iops|bps)  vblkperf-args...
jobs=(
	"iops=200      iops    x-iops-total 200      iops --qd=32 --rw=randread"
	"iops=1000     iops    x-iops-total 1000     iops --qd=32 --rw=randread"
	"iops=5000     iops    x-iops-total 5000     iops --qd=32 --rw=randread"
	"iops-wr=2000  iops-wr x-iops-write 2000     iops --qd=32 --rw=randwrite"
	"bps=1M(4K)    bps     x-bps-total  1048576  bps  --qd=32 --rw=randread"
	"bps=20M(64K)  bps     x-bps-total  20971520 bps  --qd=16 --bs=65536 --rw=randread"
	"bps-wr=8M(1M) bps-wr  x-bps-write  8388608  bps  --qd=4 --bs=1048576 --rw=randwrite"
)

# run SERVER KEY VALUE ARGS...: prints the achieved rate (IOPS or B/s)
measure() {
	local server=$1 key=$2 val=$3 unit=$4; shift 4
	local sock=$tmp/s.sock
	rm -f "$sock"
	if [[ $server == vblkd ]]; then
		"$vblkd" --socket-path="$sock" --null=1G --"$key"="$val" -q 2>>"$tmp/server.log" &
	else
		qemu-storage-daemon --object iothread,id=io0 \
			--object "throttle-group,id=tg,$key=$val" \
			--blockdev driver=null-co,node-name=n,size=1073741824,read-zeroes=on \
			--blockdev driver=throttle,node-name=t,throttle-group=tg,file=n \
			--export "type=vhost-user-blk,id=e,node-name=t,addr.type=unix,addr.path=$sock,writable=on,iothread=io0" \
			2>>"$tmp/server.log" &
	fi
	spid=$!
	wait_sock "$sock" || { echo "qos-accuracy.sh: $server did not start" >&2; cat "$tmp/server.log" >&2; exit 1; }
	"$perf" --path "$sock" --runtime "$runtime" --mode event --json "$tmp/r.json" "$@" >/dev/null
	stop
	python3 -c "import json; j=json.load(open('$tmp/r.json')); print(j['iops'] if '$unit'=='iops' else j['mbps']*1e6)"
}

printf "QoS accuracy: %s s per run, null device, vblkperf (event mode)\n" "$runtime"
printf "%-14s %10s | %12s %8s | %12s %8s | %s\n" limit target "vblkd" "err%" "QSD" "err%" "|err| vblkd/QSD"
for j in "${jobs[@]}"; do
	read -r name vkey qkey val unit args <<<"$j"
	# shellcheck disable=SC2086 # args are words
	v=$(measure vblkd "$vkey" "$val" "$unit" $args)
	ve=$(python3 -c "print('%+.2f' % (($v - $val) * 100 / $val))")
	if ((qsd)); then
		# shellcheck disable=SC2086
		q=$(measure qsd "$qkey" "$val" "$unit" $args)
		qe=$(python3 -c "print('%+.2f' % (($q - $val) * 100 / $val))")
		ratio=$(python3 -c "q=abs($qe); print('%.2f' % (abs($ve)/q) if q else '-')")
		q=$(printf "%.1f" "$q")
	else
		q=- qe=- ratio=-
	fi
	printf "%-14s %10s | %12.1f %8s | %12s %8s | %s\n" "$name" "$val" "$v" "$ve" "$q" "$qe" "$ratio"
done
