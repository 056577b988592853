#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Installs everything vblk needs to build and test on Debian 12 (bookworm):
# toolchain, libraries, and the end-to-end test tools (QEMU with
# qemu-storage-daemon, fio, busybox, cpio). Idempotent: when every package is
# already installed it does nothing, without touching apt (one dpkg-query
# call: well under a second). Run as root, or as a user with sudo.
#
#   scripts/install-deps.sh          the native build and every test
#   scripts/install-deps.sh --arm64  the arm64 cross build and qemu-user
#                                    (scripts/test-arm64.sh; adds the arm64
#                                    dpkg architecture)
set -euo pipefail

packages=(
	# build
	build-essential meson ninja-build pkg-config python3
	liburing-dev libjson-c-dev libseccomp-dev
	# vblkd --metrics (Prometheus endpoint) and the parser its test checks with
	libmicrohttpd-dev python3-prometheus-client
	# the rbd engine (librbd; no pkg-config file)
	librbd-dev librados-dev
	# clang: fuzzers (-fsanitize=fuzzer) and sanitizer builds. clang only
	# recommends its runtimes (libFuzzer, ASan, UBSan): name them.
	clang lld libclang-rt-dev
	# end-to-end tests (tests/e2e): guest, peer backend, initramfs
	qemu-system-x86 qemu-utils fio busybox-static cpio
	gzip xz-utils zstd util-linux coreutils
	# libvirt's e2e test (tests/e2e/libvirt.sh: libvirtd + virsh), and
	# systemd-analyze for the unit files' check (it comes with them)
	libvirt-daemon-system libvirt-clients
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

foreign_arch=
if [[ ${1:-} == --arm64 ]]; then
	# Cross compiler, the arm64 builds of the libraries vblk links (Debian
	# multiarch), and qemu-user to run the arm64 test programs here.
	packages=(
		gcc-aarch64-linux-gnu libc6-dev-arm64-cross
		liburing-dev:arm64 libseccomp-dev:arm64 libjson-c-dev:arm64
		qemu-user-static
	)
	foreign_arch=arm64
elif (($#)); then
	echo "usage: $0 [--arm64]" >&2
	exit 2
fi

# One dpkg-query for the lot; a package it does not know is missing.
native=$(dpkg --print-architecture)
declare -A installed=()
while read -r name arch status; do
	[[ $status == ii* ]] || continue
	installed[$name:$arch]=1
	[[ $arch == "$native" || $arch == all ]] && installed[$name]=1
done < <(dpkg-query -W -f='${Package} ${Architecture} ${db:Status-Abbrev}\n' \
	"${packages[@]}" 2>/dev/null || true)
missing=()
for p in "${packages[@]}"; do
	[[ -n ${installed[$p]:-} ]] || missing+=("$p")
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

if [[ -n $foreign_arch ]] && ! dpkg --print-foreign-architectures | grep -qx "$foreign_arch"; then
	echo "install-deps: adding the $foreign_arch dpkg architecture"
	"${as_root[@]}" dpkg --add-architecture "$foreign_arch"
fi
echo "install-deps: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}"
