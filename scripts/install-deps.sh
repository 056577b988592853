#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Installs everything vblk needs to build and test on Debian 12 (bookworm):
# toolchain, libraries, and the end-to-end test tools (QEMU with
# qemu-storage-daemon, fio, busybox, cpio). Idempotent: when every package is
# already installed it does nothing, without touching apt. Run as root, or as a
# user with sudo.
set -euo pipefail

packages=(
	# build
	build-essential meson ninja-build pkg-config python3
	liburing-dev libjson-c-dev libseccomp-dev
	# the rbd engine (librbd; no pkg-config file)
	librbd-dev librados-dev
	# clang: fuzzers (-fsanitize=fuzzer) and sanitizer builds. clang only
	# recommends its runtimes (libFuzzer, ASan, UBSan): name them.
	clang lld libclang-rt-dev
	# end-to-end tests (tests/e2e): guest, peer backend, initramfs
	qemu-system-x86 qemu-utils fio busybox-static cpio
	gzip xz-utils zstd util-linux coreutils
	# storage fault tests (tests/func/test_daemon_faults.c): device-mapper
	dmsetup
	# the rbd engine's tests and bench: a single-node Ceph cluster on
	# loopback (scripts/ceph-cluster.sh); qemu-storage-daemon's rbd driver
	ceph-mon ceph-osd ceph-common qemu-block-extra
	# benchmark chart (bench/run.sh)
	python3-matplotlib
	# script hygiene; the man page check (src/daemon/check-man.sh)
	shellcheck groff-base
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[[ $status == ii* ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "install-deps: all ${#packages[@]} packages already installed"
	exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
	as_root=()
elif command -v sudo >/dev/null; then
	as_root=(sudo)
else
	echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}"
