#!/bin/bash
# SPDX-License-Identifier: MIT
#
# What vblkd's per-queue statistics cost: null-engine 4k randread at QD32
# (one queue) against two release builds of vblkd side by side in one run,
# one with statistics (the default) and one built with -Dstats=false, in
# interleaved rounds (A B, then B A, ...: the machine's drift hits both).
# Clients: vblkperf (libvblk) and fio's vblk engine. Prints one table of
# medians and the with/without ratio (issue 11 asks for >= 0.97), and the
# server's CPU time per request (its threads' utime + stime over the run /
# requests; less sensitive to a busy machine than IOPS, and with
# --poll-mode=event it is the work a request costs, not polling).
#
#   bench/stats-overhead.sh                    6 rounds of 5 s per build and tool
#   bench/stats-overhead.sh --rounds 10 --runtime 10
#   bench/stats-overhead.sh --quick            2 rounds of 2 s (smoke)
#   bench/stats-overhead.sh --tool vblkperf    one client only (vblkperf|fio)
#   bench/stats-overhead.sh --no-build         use the two builds as they are
#   bench/stats-overhead.sh --poll-mode event  vblkd's --poll-mode (default: its default)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
with=$root/build-bench-stats
without=$root/build-bench-nostats
rounds=6 runtime=5 do_build=1 tools=(vblkperf fio) pmode=""

usage() { sed -n '3,21s/^# \{0,1\}//p' "$0"; }
while (($#)); do
	case $1 in
	--rounds) rounds=${2:?}; shift ;;
	--runtime) runtime=${2:?}; shift ;;
	--quick) rounds=2 runtime=2 ;;
	--tool) tools=("${2:?}"); shift ;;
	--no-build) do_build=0 ;;
	--poll-mode) pmode=${2:?}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "stats-overhead.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- build
if ((do_build)); then
	"$root/scripts/fio-headers.sh" >/dev/null
	[[ -d $with ]] || meson setup "$with" -Dbuildtype=release -Drbd=disabled -Dstats=true >&2
	[[ -d $without ]] || meson setup "$without" -Dbuildtype=release -Drbd=disabled -Dstats=false >&2
	ninja -C "$with" src/daemon/vblkd tools/vblkperf fio/libfio-vblk.so bench/stats-cost >&2
	ninja -C "$without" src/daemon/vblkd >&2
fi
[[ $(meson introspect --buildoptions "$with" | "${PY:-/usr/bin/python3}" -c \
	'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "stats"][0])') == True ]] ||
	die "$with is not built with -Dstats=true"
[[ $(meson introspect --buildoptions "$without" | "${PY:-/usr/bin/python3}" -c \
	'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "stats"][0])') == False ]] ||
	die "$without is not built with -Dstats=false"
vblkperf=$with/tools/vblkperf
engine=$with/fio/libfio-vblk.so
for f in "$with/src/daemon/vblkd" "$without/src/daemon/vblkd" "$vblkperf"; do
	[[ -x $f ]] || die "$f is missing (run without --no-build)"
done
(($(nproc) >= 2)) || die "needs at least 2 CPUs (server on CPU 0, client on CPU 1)"

work=$(mktemp -d /tmp/vblk-stats-bench.XXXXXX)
server_pid=""
stop_server() {
	if [[ -n $server_pid ]]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=""
	fi
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_one BUILD(with|without) TOOL ROUND: appends "build tool round iops cpu-ns/io"
run_one() {
	local build=$1 tool=$2 round=$3 dir sock out iops ios t0 t1 mode=()
	[[ $build == with ]] && dir=$with || dir=$without
	sock=$work/$build.sock
	out=$work/$build-$tool-$round
	rm -f "$sock"
	[[ -n $pmode ]] && mode=(--poll-mode="$pmode")
	taskset -c 0 "$dir/src/daemon/vblkd" --socket-path="$sock" --null=1G -q "${mode[@]}" \
		>"$out.server.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
	[[ -S $sock ]] || die "vblkd ($build) did not start: $(cat "$out.server.log")"
	t0=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
	if [[ $tool == vblkperf ]]; then
		taskset -c 1 timeout $((runtime + 30)) "$vblkperf" --path "$sock" --rw randread \
			--bs 4k --qd 32 --runtime "$runtime" --json "$out.json" >"$out.log" 2>&1 ||
			die "vblkperf failed: $(tail -3 "$out.log")"
		read -r iops ios < <("${PY:-/usr/bin/python3}" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["iops"], j["ios"])' "$out.json")
	else
		taskset -c 1 timeout $((runtime + 30)) fio --ioengine="external:$engine" \
			--filename="$sock" --name=qd32 --rw=randread --bs=4k --iodepth=32 \
			--runtime="$runtime" --time_based --norandommap --randrepeat=0 \
			--output-format=json --output="$out.json" >"$out.log" 2>&1 ||
			die "fio failed: $(tail -3 "$out.log")"
		read -r iops ios < <("${PY:-/usr/bin/python3}" -c 'import json,sys; r=json.load(open(sys.argv[1]))["jobs"][0]["read"]; print(r["iops"], r["total_ios"])' "$out.json")
	fi
	t1=$(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")
	stop_server
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v n="$ios" \
		'BEGIN { printf "%.1f", n ? (b - a) / hz * 1e9 / n : 0 }')
	echo "$build $tool $round $iops $cpu" >>"$work/results"
	log "round $round $tool $build: $iops IOPS, server $cpu ns CPU per request"
}

: >"$work/results"
for ((r = 1; r <= rounds; r++)); do
	for tool in "${tools[@]}"; do
		# A B in odd rounds, B A in even ones.
		if ((r % 2)); then order=(with without); else order=(without with); fi
		for b in "${order[@]}"; do run_one "$b" "$tool" "$r"; done
	done
done

"${PY:-/usr/bin/python3}" - "$work/results" "$rounds" "$runtime" "${pmode:-default}" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"null engine, 4k randread, QD32, 1 queue, vblkd --poll-mode {sys.argv[4]}; "
      f"{sys.argv[2]} interleaved rounds of {sys.argv[3]} s; medians")
print(f"{'client':<9} {'build':<14} {'IOPS':>9} {'min':>9} {'max':>9} {'ratio':>6} "
      f"{'paired':>6}  {'srv ns/IO':>9} {'ratio':>6}")
for tool in dict.fromkeys(r[1] for r in rows):
    iops = {b: {int(r[2]): float(r[3]) for r in rows if r[1] == tool and r[0] == b}
            for b in ("with", "without")}
    cpu = {b: {int(r[2]): float(r[4]) for r in rows if r[1] == tool and r[0] == b}
           for b in ("with", "without")}
    med = {b: statistics.median(iops[b].values()) for b in iops}
    cmed = {b: statistics.median(cpu[b].values()) for b in cpu}
    pairs = [iops["with"][k] / iops["without"][k] for k in sorted(iops["with"])
             if k in iops["without"]]
    for b, name in (("without", "-Dstats=false"), ("with", "statistics")):
        xs = iops[b].values()
        on = b == "with"
        ratio = f"{med['with'] / med['without']:6.3f}" if on else "     -"
        paired = f"{statistics.median(pairs):6.3f}" if on else "     -"
        cratio = f"{cmed['with'] / cmed['without']:6.3f}" if on else "     -"
        print(f"{tool:<9} {name:<14} {med[b]:9.0f} {min(xs):9.0f} {max(xs):9.0f} {ratio} "
              f"{paired}  {cmed[b]:9.0f} {cratio}")
print("ratio: median with / median without; paired: median of the per-round ratios;")
print("srv ns/IO: vblkd's CPU time per request (ratio > 1: statistics cost more CPU).")
EOF
echo
# The accounting alone, in a loop, for scale against srv ns/IO above.
[[ -x $with/bench/stats-cost ]] && taskset -c 0 "$with/bench/stats-cost" 5 10000000
