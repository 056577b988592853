#!/bin/bash
# shellcheck disable=SC2317 # the helpers run through check, run and trap
# SPDX-License-Identifier: MIT
# vblkctl stats against a real vblkd (default sandbox) under load from
# vblkperf (libvblk): the table and --json agree with each other, --queues,
# --watch with a bounded --count shows non-zero rates while I/O runs and
# exactly N reports, --json --watch gives one JSON object per report, and
# bad options and exports are refused with the right exit status. Prints TAP.
set -u
VBLKD=${1:?usage: test_vblkctl_stats.sh VBLKD VBLKCTL VBLKPERF}
VBLKCTL=${2:?usage: test_vblkctl_stats.sh VBLKD VBLKCTL VBLKPERF}
VBLKPERF=${3:?usage: test_vblkctl_stats.sh VBLKD VBLKCTL VBLKPERF}
tmp=$(mktemp -d)
pid='' perf=''
cleanup() {
	[ -n "$perf" ] && kill "$perf" 2>/dev/null && wait "$perf" 2>/dev/null
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # check, run, json, wait_socket
jsonl() { # jsonl PYTHON-EXPRESSION-ON-lines: each line of $out parsed, in a list
	python3 -c "import json,sys; lines=[json.loads(l) for l in sys.stdin.read().splitlines()]; sys.exit(0 if ($1) else 1)" <<<"$out"
}

C=$tmp/ctl.sock S=$tmp/a.sock
export VBLKCTL_CONTROL=$C
"$VBLKD" --control="$C" --socket-path="$S" --null=1G --num-queues=2 2>"$tmp/vblkd.log" &
pid=$!
check "vblkd listens" wait_socket "$C"
wait_socket "$S"

run stats
check "stats before I/O: a table with zero reads" \
	grep -qE "^  read +0 +0 +0 +- " <<<"$out"
check "stats: iothread CPU time" grep -qE "^iothread CPU time: 0: [0-9.]+s" <<<"$out"

# Load on both queues, for longer than the --watch below takes.
"$VBLKPERF" --path "$S" --rw randrw --qd 16 --queues 2 --runtime 8 --json "$tmp/perf.json" \
	>"$tmp/perf.txt" 2>&1 &
perf=$!
sleep 0.5
run stats --watch --interval 0.5 --count 3
check "--watch --count 3: exit 0" test $rc -eq 0
check "--watch --count 3: three reports" test "$(grep -c '^EXPORT ' <<<"$out")" -eq 3
# shellcheck disable=SC2016 # awk's own $1, not the shell's
check "--watch: the export's line has non-zero read and write rates" \
	awk -v s="$S" '$1 == s && $2 > 0 && $3 > 0 { found = 1 } END { exit !found }' <<<"$out"
run --json stats "$S" --watch --interval 0.2 --count 2
check "--json --watch: two JSON lines with rates and p99" jsonl \
	"len(lines) == 2 and all(l['exports'][0]['reads-per-s'] > 0 and l['exports'][0]['read-p99-ns'] > 0 for l in lines)"
[ "$(grep -c . <<<"$out")" -eq 2 ] || echo "# got: $out"
wait "$perf"; check "vblkperf ran without errors" grep -q "errors 0" "$tmp/perf.txt"
perf=

run stats "$S" --json
ios=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['ios'])" "$tmp/perf.json")
check "stats --json: reads + writes are exactly the $ios requests vblkperf (libvblk) completed" \
	json "j['exports'][0]['ops']['read']['requests'] + j['exports'][0]['ops']['write']['requests'] == $ios"
check "stats --json: reads counted, percentiles in order" json \
	"(lambda e: e['ops']['read']['requests'] > 0 and e['ops']['read']['bytes'] == 4096 * e['ops']['read']['requests'] and e['latency']['read']['count'] == e['ops']['read']['requests'] and e['latency']['read']['p50-ns'] <= e['latency']['read']['p99-ns'] <= e['latency']['read']['max-ns'] and e['in-flight'] == 0)(j['exports'][0])"
reads=$(python3 -c "import json,sys; print(json.load(sys.stdin)['exports'][0]['ops']['read']['requests'])" <<<"$out")
run stats "$S"
check "the table shows the same read count as --json" \
	grep -qE "^  read +$reads " <<<"$out"
run stats "$S" --queues --json
check "--queues: two queues adding up to the export" json \
	"len(j['exports'][0]['queues']) == 2 and sum(q['ops']['read']['requests'] for q in j['exports'][0]['queues']) == j['exports'][0]['ops']['read']['requests']"
run stats "$S" --queues
check "--queues table: a section per queue" test "$(grep -c '^ queue ' <<<"$out")" -eq 2

run stats /no/such.sock
check "an unknown export: exit 1, 'no export'" test $rc -eq 1 -a -n "$(grep "no export" <<<"$err")"
run stats --count 2
check "--count without --watch: exit 2" test $rc -eq 2
run stats --watch --interval 0
check "--interval 0: exit 2" test $rc -eq 2
run stats --watch --count x
check "--count x: exit 2" test $rc -eq 2
run stats a b
check "two exports: exit 2" test $rc -eq 2
run stats --frobnicate
check "unknown stats option: exit 2" test $rc -eq 2
check "vblkd still runs" kill -0 "$pid"
kill "$pid"; wait "$pid"; rc=$?; pid=
check "vblkd exits 0" test $rc -eq 0
echo "1..$n"
exit $((failed > 0))
