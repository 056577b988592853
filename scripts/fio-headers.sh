#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Prepares the source tree of the exact fio version installed, so the vblk
# fio engine (fio/) builds against the headers and configuration of the fio
# that will load it. Source packages are enabled only inside a private apt
# state: the deb-src entries are derived from this machine's own apt sources,
# and nothing under /etc/apt is changed. Prints the source directory.
#
#   scripts/fio-headers.sh            fetch if needed, print the directory
#   scripts/fio-headers.sh --dir      print the directory without fetching
set -euo pipefail

cache=${VBLK_FIO_CACHE:-${XDG_CACHE_HOME:-/var/tmp}/vblk-fio}
version=$(dpkg-query -W -f='${Version}' fio 2>/dev/null) || {
	echo "fio-headers: fio is not installed (scripts/install-deps.sh installs it)" >&2
	exit 1
}
upstream=${version%%-*}
upstream=${upstream#*:}
dir=$cache/fio-$version

if [[ ${1:-} == --dir ]]; then
	echo "$dir"
	exit 0
fi
if [[ -f $dir/config-host.h && -f $dir/.vblk-ready ]]; then
	echo "$dir"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/parts" "$work/lists/partial" "$work/cache/archives/partial"

# deb-src twins of every enabled deb entry (deb822 .sources and one-line .list).
python3 - "$work/parts" <<'PY'
import glob, re, sys
out_dir = sys.argv[1]
stanzas, lines = [], []
for f in glob.glob('/etc/apt/sources.list.d/*.sources'):
    for st in open(f).read().split('\n\n'):
        st = st.strip()
        if re.search(r'^Enabled:\s*no', st, re.M | re.I):
            continue
        if re.search(r'^Types:.*\bdeb\b', st, re.M):
            stanzas.append(re.sub(r'^Types:.*$', 'Types: deb-src', st, flags=re.M))
for f in ['/etc/apt/sources.list'] + glob.glob('/etc/apt/sources.list.d/*.list'):
    try:
        for l in open(f):
            if re.match(r'\s*deb\s', l):
                lines.append(re.sub(r'^\s*deb\s', 'deb-src ', l, count=1))
    except OSError:
        pass
if stanzas:
    open(out_dir + '/vblk-src.sources', 'w').write('\n\n'.join(stanzas) + '\n')
if lines:
    open(out_dir + '/vblk-src.list', 'w').write(''.join(lines))
if not stanzas and not lines:
    sys.exit('fio-headers: no apt "deb" sources found to derive deb-src entries from')
PY

apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/parts"
	-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
	-o APT::Sandbox::User=root -q)
echo "fio-headers: fetching the source of fio $version" >&2
apt-get "${apt_opts[@]}" update >&2
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only "fio=$version" >&2)
dpkg-source --no-check -x "$work"/fio_*.dsc "$work/src" >&2

# The configuration Debian's package was built with (debian/rules) decides
# which optional fields exist in fio's structs; configure the same way.
(cd "$work/src" && ./configure --disable-native --prefix=/usr >"$work/configure.log" 2>&1) || {
	cat "$work/configure.log" >&2
	exit 1
}
grep -q "^#define FIO_IOOPS_VERSION" "$work/src/ioengines.h"
rm -rf "$dir"
mv "$work/src" "$dir"
touch "$dir/.vblk-ready"
echo "fio-headers: fio $upstream sources ready in $dir" >&2
echo "$dir"
