# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Runs inside the demo guest (busybox sh): shows the disk vblkd serves as the
# guest's own virtio-blk driver sees it, then writes and verifies data on it.
. /e2e-common.sh

echo
echo "=== the guest sees /dev/$NAME ==="
echo "size:            $(($(cat /sys/block/$NAME/size) / 2048)) MiB"
echo "block size:      $(sysq logical_block_size) bytes"
echo "queues:          $(find /sys/block/$NAME/mq -mindepth 1 -maxdepth 1 -type d | wc -l)"
echo "ring features:   $(feature_names)"
echo "write cache:     $(sysq write_cache)"
echo "discard max:     $(sysq discard_max_bytes) bytes"
echo
echo "=== fio: 4k-64k random writes from 2 CPUs, then read back and verify (crc32c) ==="
fio --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=8 \
	--rw=randwrite --bssplit=4k/50:16k/30:64k/20 --size=16M \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --fsync=16 \
	--group_reporting --eta=never --minimal --terse-version=3 \
	--name=w0 --offset=0 --cpus_allowed=0 \
	--name=w1 --offset=16M --cpus_allowed=1 >/tmp/fio.out 2>&1
rc=$?
if [ $rc -eq 0 ]; then
	ok "fio wrote 32 MiB through vblkd and read every block back intact"
else
	cat /tmp/fio.out
	fail "fio write+verify"
fi
echo
echo "=== discard: the guest trims 8 MiB and reads zeroes back ==="
dd if=/dev/urandom of=$DEV bs=1M count=8 seek=40 oflag=direct 2>/dev/null
if blkdiscard -o $((40 << 20)) -l $((8 << 20)) $DEV 2>/dev/null ||
	fio --name=trim --filename=$DEV --rw=trim --bs=1M --offset=40M --size=8M \
		--direct=1 --eta=never >/dev/null 2>&1; then
	nz=$(dd if=$DEV bs=1M count=8 skip=40 iflag=direct 2>/dev/null | tr -d '\000' | wc -c)
	check "non-zero bytes left after discard" "$nz" 0
else
	fail "discard"
fi
per_queue=$(queue_irqs)
[ -n "$per_queue" ] && echo "interrupts per queue: $per_queue"
finish
