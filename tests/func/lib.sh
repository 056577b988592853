# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034,SC2154 # n, failed: read by the tests; tmp, VBLKCTL: set by them
# lib.sh - what the shell func tests share; sourced, not run.
#   check DESCRIPTION CONDITION...  one TAP line: ok if CONDITION succeeds
#   run ARGS...                     $VBLKCTL ARGS: stdout in $out, stderr in
#                                   $err (also as a TAP comment), status in $rc
#   json PYTHON-EXPR                true if EXPR holds for j = $out parsed
#   wait_socket PATH [SECONDS]      true once PATH is a socket (default 10 s at most)
# The test sets VBLKCTL (for run) and tmp (a scratch directory) first, and
# ends with: echo "1..$n"; exit $((failed > 0)).
n=0 failed=0
check() {
	local desc=$1; shift
	n=$((n + 1))
	if "$@"; then echo "ok $n - $desc"; else echo "not ok $n - $desc"; failed=$((failed + 1)); fi
}
run() {
	out=$(timeout 30 "$VBLKCTL" "$@" 2>"$tmp/err"); rc=$?
	err=$(cat "$tmp/err")
	[ -n "$err" ] && echo "# vblkctl $*: $err"
	return 0
}
json() {
	python3 -c "import json,sys; j=json.loads(sys.stdin.read()); sys.exit(0 if ($1) else 1)" <<<"$out"
}
wait_socket() {
	for _ in $(seq $((${2:-10} * 20))); do [ -S "$1" ] && return 0; sleep 0.05; done
	return 1
}
