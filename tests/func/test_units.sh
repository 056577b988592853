#!/bin/bash
# SPDX-License-Identifier: MIT
# systemd-analyze verify on the installed units (contrib/systemd), with
# ExecStart pointing at the vblkd under test; any message fails. A broken
# copy must draw a message, or the check proves nothing. Skips (77) where
# systemd-analyze is not installed. Prints TAP.
set -u
VBLKD=${1:?usage: test_units.sh VBLKD SERVICE SOCKET}
SERVICE=${2:?} SOCKET=${3:?}
if ! command -v systemd-analyze >/dev/null; then
	echo "1..0 # SKIP systemd-analyze is not installed (it comes with systemd)"
	exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 failed=0
check() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
VBLKD=$(realpath "$VBLKD")
exe=$(grep -o '^ExecStart=[^ ]*' "$SERVICE" | cut -d= -f2)
sed "s|^ExecStart=$exe|ExecStart=$VBLKD|" "$SERVICE" >"$tmp/vblkd@.service"
cp "$SOCKET" "$tmp/vblkd@.socket"
out=$(cd "$tmp" && systemd-analyze verify --man=no "$tmp/vblkd@disk0.service" "$tmp/vblkd@disk0.socket" 2>&1)
rc=$?
[ -n "$out" ] && sed 's/^/# /' <<<"$out"
[ -n "$out" ] && (cd "$tmp" && systemd-analyze verify --man=no "$tmp/vblkd@disk0.service" 2>&1 |
	sed "s/^/# the service alone: /")
check $((rc != 0 || ${#out} != 0)) "systemd-analyze verify: vblkd@.service and vblkd@.socket are clean"
grep -q '^Type=notify$' "$SERVICE"
check $? "the service is Type=notify"
grep -q '^ListenStream=/run/vblk/%i.sock$' "$SOCKET" && grep -q -- "--socket-path=/run/vblk/%i.sock" "$SERVICE"
check $? "the service's --socket-path is the socket unit's ListenStream (vblkd matches them)"
sed 's/^Type=notify/Type=notfy/' "$tmp/vblkd@.service" >"$tmp/broken@.service"
out=$(cd "$tmp" && systemd-analyze verify --man=no "$tmp/broken@x.service" 2>&1)
check $((${#out} == 0)) "a broken copy draws a message (the check can fail)"
echo "1..$n"
exit $failed
