# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Guest test: what the guest driver sees — capacity, block sizes, segment,
# discard and write-zeroes limits, queue count, read-only — against the values
# the host expects (EXPECT_* in /test.env; "any" skips, "nonzero" means > 0).
. /e2e-common.sh

check_queues
check "capacity (512-byte sectors)" "$(cat "/sys/block/$NAME/size")" "${EXPECT_SECTORS:-any}"
check logical_block_size "$(sysq logical_block_size)" "${EXPECT_LOGICAL_BLOCK_SIZE:-any}"
check physical_block_size "$(sysq physical_block_size)" "${EXPECT_PHYSICAL_BLOCK_SIZE:-any}"
check max_segments "$(sysq max_segments)" "${EXPECT_MAX_SEGMENTS:-any}"
check max_hw_sectors_kb "$(sysq max_hw_sectors_kb)" "${EXPECT_MAX_HW_SECTORS_KB:-any}"
check discard_max_bytes "$(sysq discard_max_bytes)" "${EXPECT_DISCARD_MAX_BYTES:-any}"
check discard_granularity "$(sysq discard_granularity)" "${EXPECT_DISCARD_GRANULARITY:-any}"
check write_zeroes_max_bytes "$(sysq write_zeroes_max_bytes)" "${EXPECT_WRITE_ZEROES_MAX_BYTES:-any}"
check "write cache" "$(sysq write_cache)" "${EXPECT_WRITE_CACHE:-any}"
check ro "$(cat "/sys/block/$NAME/ro")" "${EXPECT_RO:-any}"

# Reads work in every mode.
if dd if="$DEV" of=/dev/null bs=1M count=4 iflag=direct 2>/dev/null; then ok "read 4 MiB"
else fail "read 4 MiB"; fi
last=$(($(cat "/sys/block/$NAME/size") - 8))
if dd if="$DEV" of=/dev/null bs=512 skip=$last count=8 iflag=direct 2>/dev/null; then ok "read last 4 KiB"
else fail "read last 4 KiB"; fi
# Past the end: the block layer must stop it (a short read of 0 bytes).
n=$(dd if="$DEV" bs=512 skip=$((last + 8)) count=1 iflag=direct 2>/dev/null | wc -c)
check "bytes read past the end" "$n" 0

check "first MiB as the host wrote it (md5)" "$(disk_md5 0 1)" "${EXPECT_HEAD_MD5:-any}"

if [ "${EXPECT_RO:-0}" = 1 ]; then
	if dd if=/dev/zero of="$DEV" bs=4096 count=1 oflag=direct 2>/dev/null; then
		fail "a write to the read-only disk succeeded"
	else
		ok "a write to the read-only disk fails"
	fi
	# The guest kernel lets discard / write zeroes through to a read-only
	# disk (it only warns); the device must refuse them.
	if [ -x /usr/sbin/blkdiscard ]; then
		if /usr/sbin/blkdiscard -o 0 -l 65536 "$DEV" 2>/dev/null; then
			fail "a discard on the read-only disk succeeded"
		else
			ok "a discard on the read-only disk fails"
		fi
		if /usr/sbin/blkdiscard -z -o 0 -l 65536 "$DEV" 2>/dev/null; then
			fail "write zeroes on the read-only disk succeeded"
		else
			ok "write zeroes on the read-only disk fails"
		fi
	fi
	echo 3 >/proc/sys/vm/drop_caches
	check "first MiB unchanged after refused writes (md5)" "$(disk_md5 0 1)" "${EXPECT_HEAD_MD5:-any}"
else
	dd if=/dev/urandom of=/tmp/blk bs=4096 count=1 2>/dev/null
	if dd if=/tmp/blk of="$DEV" bs=4096 seek=1 count=1 oflag=direct conv=fsync 2>/dev/null; then
		ok "write 4 KiB"
		check "4 KiB read back (md5)" \
			"$(dd if="$DEV" bs=4096 skip=1 count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)" \
			"$(md5sum </tmp/blk | cut -d' ' -f1)"
	else
		fail "write 4 KiB"
	fi
fi
finish
