#!/bin/bash
# SPDX-License-Identifier: MIT
# vblkd(8) must document every option `vblkd --help` lists, and must
# format without warnings. Usage: check-man.sh VBLKD MANPAGE
set -uo pipefail
vblkd=$1 page=$2 fail=0
echo "1..2"
missing=()
while read -r opt; do
	# in roff source every dash is written \-
	grep -qF -- "${opt//-/\\-}" "$page" || missing+=("$opt")
done < <("$vblkd" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u)
if ((${#missing[@]})); then
	echo "not ok 1 - vblkd(8) lacks: ${missing[*]}"
	fail=1
else
	echo "ok 1 - vblkd(8) documents every option of vblkd --help"
fi
if out=$(LC_ALL=C.UTF-8 groff -man -ww -z "$page" 2>&1) && [[ -z $out ]]; then
	echo "ok 2 - vblkd(8) formats without warnings"
else
	echo "not ok 2 - groff warns:"
	while IFS= read -r l; do echo "# $l"; done <<<"$out"
	fail=1
fi
exit $fail
