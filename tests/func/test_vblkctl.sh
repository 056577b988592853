#!/bin/bash
# shellcheck disable=SC2317 # the helpers run through check, run and trap
# SPDX-License-Identifier: MIT
# vblkctl against a real vblkd (default sandbox): every command, its table
# and --json output (parsed with python3's json), the control path from
# --control and from VBLKCTL_CONTROL, and the exit status of refusals,
# usage errors and an absent daemon. Prints TAP.
set -u
VBLKD=${1:?usage: test_vblkctl.sh PATH-TO-VBLKD PATH-TO-VBLKCTL}
VBLKCTL=${2:?usage: test_vblkctl.sh PATH-TO-VBLKD PATH-TO-VBLKCTL}
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # check, run, json, wait_socket

C=$tmp/ctl.sock
truncate -s 64M "$tmp/a.img"
truncate -s 32M "$tmp/b.img"
"$VBLKD" --control="$C" --socket-path="$tmp/a.sock" --file="$tmp/a.img" 2>"$tmp/vblkd.log" &
pid=$!
check "vblkd listens on its control socket" wait_socket "$C"

run --control="$C" version
check "version" test $rc -eq 0 -a -n "$(grep -E "^vblkd [0-9.]+ \(pid $pid\)$" <<<"$out")"
run --control="$C" methods
check "methods lists the export methods" grep -q "^export-resize " <<<"$out"
export VBLKCTL_CONTROL=$C
run list
check "list (control path from VBLKCTL_CONTROL): a table" \
	grep -qE "^$tmp/a.sock +file +64M +1x1024 +- +no +$tmp/a.img$" <<<"$out"
run add "socket-path=$tmp/b.sock,file=$tmp/b.img" num-queues=2 serial=disk-b
check "add: exit 0" test $rc -eq 0
check "add: says so" grep -q "^added $tmp/b.sock$" <<<"$out"
check "add: the socket exists" test -S "$tmp/b.sock"
run --json list
check "list --json: two exports with sizes" json \
	"len(j) == 2 and sorted(e['size'] for e in j) == [32 << 20, 64 << 20]"
run list "$tmp/b.sock"
check "list EXPORT: the details" grep -q "^queues: *2 (up to 1024 entries each)$" <<<"$out"
run resize "$tmp/b.sock" 48M
check "resize to 48M" grep -q "32M -> 48M" <<<"$out"
check "resize without a frontend warns that the guest was not told" grep -q "^warning:" <<<"$out"
check "the image is 48M" test "$(stat -c %s "$tmp/b.img")" -eq $((48 << 20))
truncate -s 56M "$tmp/b.img"
run --json resize "$tmp/b.sock"
check "resize without a size picks up the image's 56M" json "j['new-size'] == 56 << 20"
run resize "$tmp/b.sock" 1000
check "resize to 1000 bytes: usage refused by the daemon (exit 1)" test $rc -eq 1
check "  with its message" grep -q "multiple of 512" <<<"$err"
run resize /no/such.sock 1G
check "resize of an unknown export: exit 1, 'no export'" \
	test $rc -eq 1 -a -n "$(grep "no export" <<<"$err")"
run add "socket-path=$tmp/b.sock,null=1G"
check "add on a used socket: exit 1" test $rc -eq 1
run add "socket-path=$tmp/c.sock,colour=blue,null=1G"
check "add with an unknown key: exit 1, the key named" \
	test $rc -eq 1 -a -n "$(grep "colour" <<<"$err")"
run call export-list '{"export":"'"$tmp/a.sock"'"}'
check "call: any method with JSON params" json "len(j) == 1 and j[0]['engine'] == 'file'"
run call export-list '[1]'
check "call with params not an object: usage error (exit 2)" test $rc -eq 2
run remove "$tmp/b.sock"
check "remove: exit 0" test $rc -eq 0
check "remove: the socket file is gone" test ! -e "$tmp/b.sock"
run remove "$tmp/b.sock"
check "remove again: exit 1" test $rc -eq 1
run --force-all list
check "unknown option: exit 2" test $rc -eq 2
run frobnicate
check "unknown command: exit 2" test $rc -eq 2
run resize
check "resize without an export: exit 2" test $rc -eq 2
run --control="$tmp/none.sock" list
check "no daemon: exit 3" test $rc -eq 3
check "vblkd still runs" kill -0 "$pid"
kill "$pid"; wait "$pid"; rc=$?; pid=
check "vblkd exits 0" test $rc -eq 0
check "the control socket file is removed" test ! -e "$C"
echo "1..$n"
exit $((failed > 0))
