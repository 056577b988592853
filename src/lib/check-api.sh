#!/bin/sh
# SPDX-License-Identifier: MIT
# check-api.sh SRCROOT - keep libvblk's header, symbol map, man pages and
# install list in step: every vblk_*/vblkq_* function declared in
# include/vblk/vblk.h is in src/lib/libvblk.map, has man/NAME.3 and is in
# src/lib/meson.build's libvblk_man; the map exports nothing else.
# TAP output.
root=${1:-.}
hdr=$root/include/vblk/vblk.h
map=$root/src/lib/libvblk.map
mb=$root/src/lib/meson.build
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# Function names: an identifier followed by '(' at the start of a
# declaration line (return type first).
grep -E '^[a-z].*\b(vblkq?_[a-z0-9_]+)\(' "$hdr" |
	sed -E 's/.*\b(vblkq?_[a-z0-9_]+)\(.*/\1/' | sort -u >"$tmp/hdr"
sed -n '/global:/,/local:/p' "$map" | grep -E '^\s*vblkq?_[a-z0-9_]+;' |
	sed -E 's/[[:space:];]//g' | sort -u >"$tmp/map"
n=0; fail=0
check() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }

[ -s "$tmp/hdr" ]; check $? "header declares functions ($(wc -l <"$tmp/hdr"))"
diff -u "$tmp/hdr" "$tmp/map" >"$tmp/d1"; r=$?
[ $r = 0 ] || sed 's/^/# /' "$tmp/d1"
check $r "header and libvblk.map list the same functions"
missing=""
for f in $(cat "$tmp/hdr"); do
	[ -f "$root/man/$f.3" ] || missing="$missing $f"
done
[ -z "$missing" ]; check $? "every function has man/NAME.3${missing:+ (missing:$missing)}"
notinst=""
for f in $(cat "$tmp/hdr"); do
	grep -q "man/$f.3'" "$mb" || notinst="$notinst $f"
done
[ -z "$notinst" ]; check $? "every man page is installed${notinst:+ (not:$notinst)}"
extra=""
for p in "$root"/man/vblk*.3; do
	b=$(basename "$p" .3)
	grep -qx "$b" "$tmp/hdr" || extra="$extra $b"
done
[ -z "$extra" ]; check $? "no man page for a function that does not exist${extra:+ ($extra)}"
# Every page names its function in NAME (or is a .so link to one that does).
bad=""
for f in $(cat "$tmp/hdr"); do
	p=$root/man/$f.3
	[ -f "$p" ] || continue
	grep -q "$f" "$p" || bad="$bad $f"
done
[ -z "$bad" ]; check $? "every man page mentions its function${bad:+ (not:$bad)}"
echo "1..$n"
exit $fail
