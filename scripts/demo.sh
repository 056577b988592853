#!/bin/bash
# SPDX-License-Identifier: MIT
# vblk's main job on a built-in default: install what is needed, build vblkd,
# serve a sparse 1 GiB image over vhost-user, and boot a Linux guest (QEMU,
# software emulation) whose own virtio-blk driver uses the disk: it shows
# what it sees, writes and verifies data with fio, and trims.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
if [ ! -f build/build.ninja ]; then
	meson setup build -Dbuildtype=release
fi
ninja -C build

echo
echo "vblkd is built: $(build/src/daemon/vblkd --version)"
echo "Starting: vblkd --socket-path=SOCK --file=disk.img (1 GiB sparse) --num-queues=2"
echo "and a Linux guest with -device vhost-user-blk-pci on that socket."
echo "(The first run downloads a Debian kernel package and builds an initramfs.)"
echo
exec tests/e2e/run-guest-test.sh vblkd "$PWD/scripts/demo-guest.sh" \
	--vblkd build/src/daemon/vblkd --queues 2 --size 1G "$@"
