#!/bin/bash
# SPDX-License-Identifier: MIT
#
# vblkd vs qemu-storage-daemon, side by side, in one run: the same jobs, the
# same storage, the same clients (vblkperf and fio's vblk engine), one server
# at a time. Prints one table of medians and vblkd/QSD ratios, and writes the
# raw results (JSON) and a chart (PNG) to bench/results/. See bench/README.md.
#
#   bench/run.sh                      3 repeats of 5 s per run (defaults)
#   bench/run.sh --repeat 5 --runtime 10
#   bench/run.sh --quick              smoke: 1 repeat of 1 s
#   bench/run.sh --no-build           use build-bench as it is
#   bench/run.sh --only null|tmpfs    one storage setup only
#   bench/run.sh --only rbd           a Ceph RBD image on a single-node cluster
#                                     (scripts/ceph-cluster.sh): vblkd's rbd
#                                     engine vs QSD's rbd driver (not in the
#                                     default run)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=$root/build-bench
repeat=3 runtime=5 do_build=1 only=""
# The python with matplotlib (apt's), not whatever python3 is first in PATH.
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3)

usage() { sed -n '3,14s/^# \{0,1\}//p' "$0"; }
while (($#)); do
	case $1 in
	--repeat) repeat=${2:?}; shift ;;
	--runtime) runtime=${2:?}; shift ;;
	--quick) repeat=1 runtime=1 ;;
	--no-build) do_build=0 ;;
	--only) only=${2:?}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- build
if ((do_build)); then
	"$root/scripts/install-deps.sh" >&2
	"$root/scripts/fio-headers.sh" >/dev/null
	if ! "$py" -c 'import matplotlib' 2>/dev/null; then
		log "installing python3-matplotlib for the chart"
		if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-matplotlib >&2
	fi
	[[ -d $build ]] || meson setup "$build" -Dbuildtype=release -Drbd=auto >&2
	ninja -C "$build" src/daemon/vblkd tools/vblkperf fio/libfio-vblk.so >&2
fi
vblkd=$build/src/daemon/vblkd
vblkperf=$build/tools/vblkperf
engine=$build/fio/libfio-vblk.so
for f in "$vblkd" "$vblkperf" "$engine"; do
	[[ -x $f || -f $f ]] || die "$f is missing (run without --no-build)"
done
command -v qemu-storage-daemon >/dev/null || die "qemu-storage-daemon not installed (scripts/install-deps.sh)"
command -v fio >/dev/null || die "fio not installed (scripts/install-deps.sh)"
ncpu=$(nproc)
((ncpu >= 2)) || die "needs at least 2 CPUs (server on CPU 0, client on CPU 1)"

# vblkd server-side modes, if this vblkd has them (--poll-mode=event|poll|...).
vblkd_modes=(default)
if modes=$("$vblkd" --help 2>&1 | grep -o -- '--poll-mode=[a-z|]*'); then
	IFS='|' read -r -a more <<<"${modes#--poll-mode=}"
	vblkd_modes+=("${more[@]}")
fi

# ---------------------------------------------------------------- state
ts=$(date -u +%Y%m%dT%H%M%SZ)
outdir=$root/bench/results
mkdir -p "$outdir"
work=$(mktemp -d /tmp/vblk-bench.XXXXXX)
img=/dev/shm/vblk-bench-$$.img
runs=$work/runs.jsonl
: >"$runs"
server_pid="" server_log="" sock=""
ceph_dir="" ceph_conf=""

stop_server() {
	if [[ -n $server_pid ]]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=""
	fi
}
cleanup() {
	stop_server
	if [[ -n $ceph_dir ]]; then "$root/scripts/ceph-cluster.sh" stop "$ceph_dir" || true; fi
	rm -f "$img"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server SERVER(vblkd|qsd) MODE SETUP(null|tmpfs) QUEUES CPUS
start_server() {
	local server=$1 mode=$2 setup=$3 queues=$4 cpus=$5 cmd
	sock=$work/$server-$mode-$setup-$queues.sock
	server_log=$work/$server-$mode-$setup-$queues.log
	rm -f "$sock"
	if [[ $server == vblkd ]]; then
		cmd=("$vblkd" --socket-path="$sock" --num-queues="$queues" -q)
		case $setup in
		null) cmd+=(--null=1G) ;;
		rbd) cmd+=(--rbd=rbd/bench --ceph-conf="$ceph_conf") ;;
		*) cmd+=(--file="$img") ;;
		esac
		[[ $mode == default ]] || cmd+=(--poll-mode="$mode")
	else
		local bd
		if [[ $setup == null ]]; then
			bd=driver=null-co,node-name=n,size=1073741824,read-zeroes=on
		elif [[ $setup == rbd ]]; then
			# cache.direct=on: no librbd cache, as vblkd runs it
			bd=driver=rbd,node-name=n,pool=rbd,image=bench,conf=$ceph_conf,cache.direct=on
		else
			bd=driver=file,node-name=n,filename=$img,aio=io_uring,cache.direct=off
		fi
		# shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
		cmd=(qemu-storage-daemon --object iothread,id=io0 --blockdev "$bd"
			--export "type=vhost-user-blk,id=e,node-name=n,addr.type=unix,addr.path=$sock,writable=on,num-queues=$queues,iothread=io0")
	fi
	taskset -c "$cpus" "${cmd[@]}" >"$server_log" 2>&1 &
	server_pid=$!
	for _ in $(seq 100); do
		[[ -S $sock ]] && return 0
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "bench: error: $server ($mode, $setup, $queues queues) did not start: ${cmd[*]}" >&2
	sed 's/^/  | /' "$server_log" >&2
	exit 1
}

# CPU ticks (utime + stime, all threads) of the running server.
server_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }

# Jobs: name rw bs qd queues client-mode server-modes(all|default)
jobs=(
	"4k-randread-qd1 randread 4k 1 1 poll all"
	"4k-randread-qd32 randread 4k 32 1 poll all"
	"4k-randread-qd32-evc randread 4k 32 1 event all"
	"4k-randwrite-qd32 randwrite 4k 32 1 poll default"
	"128k-read-qd8 read 128k 8 1 poll default"
	"4k-randread-2qx16 randread 4k 16 2 poll default"
)

# run_one SETUP SERVER MODE TOOL JOB REP
run_one() {
	local setup=$1 server=$2 mode=$3 tool=$4 job=$5 rep=$6
	local name rw bs qd queues cmode _ out t0 t1 rc=0 ccpus=1
	read -r name rw bs qd queues cmode _ <<<"$job"
	((queues > 1)) && ccpus=0-$((ncpu - 1))
	out=$work/$setup-$server-$mode-$tool-$name-$rep.json
	t0=$(server_ticks)
	if [[ $tool == vblkperf ]]; then
		taskset -c "$ccpus" timeout $((runtime + 30)) "$vblkperf" --path "$sock" --rw "$rw" \
			--bs "$bs" --qd "$qd" --queues "$queues" --runtime "$runtime" --mode "$cmode" \
			--json "$out" >"$out.log" 2>&1 || rc=$?
	else
		taskset -c "$ccpus" timeout $((runtime + 30)) fio --ioengine="external:$engine" \
			--filename="$sock" --vblk_queues="$queues" --vblk_mode="$cmode" --name="$name" \
			--rw="$rw" --bs="$bs" --iodepth=$((qd * queues)) --runtime="$runtime" --time_based \
			--norandommap --randrepeat=0 --lat_percentiles=1 \
			--output-format=json --output="$out" >"$out.log" 2>&1 || rc=$?
	fi
	if ! kill -0 "$server_pid" 2>/dev/null; then
		local src=0
		wait "$server_pid" || src=$?
		log "SERVER DIED: $server ($mode) on $setup during $tool $name (rep $rep), exit status $src"
		sed 's/^/  | /' "$server_log" | tail -20 >&2
		server_pid=""
		t1=$t0
	else
		t1=$(server_ticks)
	fi
	((rc == 0)) || { log "$tool $name on $server ($mode, $setup) failed (rc $rc):"; tail -5 "$out.log" | sed 's/^/  | /' >&2; }
	"$py" "$here/report.py" record "$runs" "$out" setup="$setup" server="$server" \
		mode="$mode" tool="$tool" job="$name" rep="$rep" rc="$rc" \
		cpu_s="$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN { print (b - a) / hz }')"
}

setups=(null tmpfs)
[[ -n $only ]] && setups=("$only")
n_runs=0
for setup in "${setups[@]}"; do
	for j in "${jobs[@]}"; do
		read -r -a f <<<"$j"
		[[ ${f[6]} == all ]] && n_runs=$((n_runs + 2 * (${#vblkd_modes[@]} + 1))) || n_runs=$((n_runs + 4))
	done
done
log "vblkd modes: ${vblkd_modes[*]}; $((n_runs * repeat)) runs of ${runtime}s (~$((n_runs * repeat * (runtime + 1) / 60 + 1)) min)"

if [[ " ${setups[*]} " == *" rbd "* ]]; then
	if "$vblkd" --socket-path="$work/probe.sock" --rbd=p/i 2>&1 | grep -q 'built without'; then
		die "this vblkd has no rbd engine (librbd-dev, librados-dev)"
	fi
	ceph_dir=$work/ceph
	ceph_conf=$("$root/scripts/ceph-cluster.sh" start "$ceph_dir") || die "no Ceph cluster"
	rbd -c "$ceph_conf" create --size 1G rbd/bench
	# Written in full, so reads go to real objects.
	rbd -c "$ceph_conf" bench --io-type write --io-size 4M --io-total 1G --io-pattern seq \
		rbd/bench >/dev/null
fi

configs=("qsd default")
for m in "${vblkd_modes[@]}"; do configs+=("vblkd $m"); done
for rep in $(seq "$repeat"); do
	for setup in "${setups[@]}"; do
		if [[ $setup == tmpfs ]]; then
			rm -f "$img"
			# Written in full: every server reads real pages. (An fallocated
			# tmpfs page that was never written reads as zeroes without a
			# copy, and the randwrite jobs would turn those into real pages
			# mid-run: whoever ran first would read the cheap ones.)
			dd if=/dev/zero of="$img" bs=1M count=1024 status=none
		fi
		# Each server configuration in turn; the one-queue ones pinned to CPU 0.
		for cfg in "${configs[@]}"; do
			read -r server mode <<<"$cfg"
			for queues in 1 2; do
				cpus=0
				((queues > 1)) && cpus=0-$((ncpu - 1))
				started=0
				for j in "${jobs[@]}"; do
					read -r -a f <<<"$j"
					[[ ${f[4]} == "$queues" ]] || continue
					[[ $mode == default || ${f[6]} == all ]] || continue
					if ((!started)) || [[ -z $server_pid ]]; then
						stop_server
						start_server "$server" "$mode" "$setup" "$queues" "$cpus"
						started=1
					fi
					for tool in vblkperf fio; do
						log "rep $rep/$repeat $setup $server${mode/#default/} ${f[0]} $tool"
						run_one "$setup" "$server" "$mode" "$tool" "$j" "$rep"
					done
				done
				stop_server
			done
		done
	done
done

json=$outdir/$ts.json png=$outdir/$ts.png
"$py" "$here/report.py" report "$runs" "$json" "$png" \
	repeat="$repeat" runtime="$runtime" vblkd_modes="${vblkd_modes[*]}" ncpu="$ncpu" \
	vblkd_version="$("$vblkd" --version 2>&1 | head -1)" \
	qsd_version="$(qemu-storage-daemon --version | head -1)" \
	git="$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
echo
echo "raw results: $json"
[[ -f $png ]] && echo "chart:       $png"
