# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Guest test: discard and write zeroes. Fills 1 MiB slots with random data,
# discards / zeroes some of them and checks what reads back: zeroed slots are
# zero, untouched neighbours keep their data, discarded slots are zero when the
# backend says so (EXPECT_DISCARD_ZEROES=1). Then a fio randtrim job and a
# discard larger than discard_max_bytes (the block layer splits it).
. /e2e-common.sh

BLKDISCARD=/usr/sbin/blkdiscard
[ -x $BLKDISCARD ] || BLKDISCARD=blkdiscard
MB=1048576

check_queues
dmax=$(sysq discard_max_bytes)
wzmax=$(sysq write_zeroes_max_bytes)
log "discard_max_bytes=$dmax write_zeroes_max_bytes=$wzmax"
[ "${dmax:-0}" -gt 0 ] || fail "device offers no discard (discard_max_bytes=$dmax)"

dd if=/dev/urandom of=/tmp/pat bs=1M count=1 2>/dev/null
pat=$(md5sum </tmp/pat | cut -d' ' -f1)
zero1=$(zero_md5 1)

# Slots 0..7 (MiB): fill all.
i=0
while [ $i -lt 8 ]; do
	dd if=/tmp/pat of="$DEV" bs=1M seek=$i count=1 oflag=direct conv=fsync 2>/dev/null ||
		fail "write slot $i"
	i=$((i + 1))
done

# Discard slots 1-2, write-zeroes slots 5 and the 4 KiB range at the start of 7.
d0=$(discards_completed)
$BLKDISCARD -o $((1 * MB)) -l $((2 * MB)) "$DEV" || fail "blkdiscard 1-2 MiB"
d1=$(discards_completed)
if [ "$d1" -gt "$d0" ]; then ok "discard reached the device ($d0 -> $d1 discard requests)"
else fail "discard counter did not move ($d0 -> $d1)"; fi

if $BLKDISCARD -z -o $((5 * MB)) -l $MB "$DEV" && $BLKDISCARD -z -o $((7 * MB)) -l 4096 "$DEV"; then
	ok "write zeroes (blkdiscard -z)"
else
	fail "write zeroes (blkdiscard -z)"
fi

for s in 0 3 4 6; do
	check "slot $s untouched (md5)" "$(disk_md5 $s 1)" "$pat"
done
check "slot 5 zeroed (md5)" "$(disk_md5 5 1)" "$zero1"
z4k=$(dd if="$DEV" bs=4096 skip=$((7 * 256)) count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
check "slot 7 first 4 KiB zeroed" "$z4k" "$(dd if=/dev/zero bs=4096 count=1 2>/dev/null | md5sum | cut -d' ' -f1)"
rest=$(dd if="$DEV" bs=4096 skip=$((7 * 256 + 1)) count=255 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
check "slot 7 rest untouched" "$rest" "$(dd if=/tmp/pat bs=4096 skip=1 count=255 2>/dev/null | md5sum | cut -d' ' -f1)"
if [ "${EXPECT_DISCARD_ZEROES:-0}" = 1 ]; then
	check "slots 1-2 discarded read zero" "$(disk_md5 1 2)" "$(zero_md5 2)"
fi

# fio randtrim over a written area.
d0=$(discards_completed)
if fio --name=fill --filename="$DEV" --direct=1 --rw=write --bs=256k --offset=16M --size=8M \
	--ioengine=psync --output=/dev/null &&
	fio --name=trim --filename="$DEV" --direct=1 --rw=randtrim --bssplit=4k/40:64k/40:1m/20 \
		--offset=16M --size=8M --ioengine=psync --group_reporting --eta=never; then
	ok "fio randtrim ($(($(discards_completed) - d0)) discard requests)"
else
	fail "fio randtrim"
fi

# ceil(A / B)
ceil_div() { echo $((($1 + $2 - 1) / $2)); }
dev_bytes=$(($(cat "/sys/block/$NAME/size") * 512))

# One discard larger than discard_max_bytes: the block layer splits it.
if [ "${dmax:-0}" -gt 0 ]; then
	big=$((dmax * 2 + 3 * MB))
	[ $big -gt $((dev_bytes - 32 * MB)) ] && big=$((dev_bytes - 32 * MB))
	want=$(ceil_div $big "$dmax")
	d0=$(discards_completed)
	if $BLKDISCARD -o $((32 * MB)) -l $big "$DEV"; then
		n=$(($(discards_completed) - d0))
		if [ $n -ge "$want" ] && [ $n -le $((want + 1)) ]; then
			ok "discard of $big bytes at 32 MiB: $n requests (limit $dmax)"
		else
			fail "discard of $big bytes at 32 MiB: $n requests, want $want"
		fi
	else
		fail "discard of $big bytes"
	fi
fi

# Whole-device write zeroes. With WRITE_ZEROES it takes about
# size/write_zeroes_max_bytes requests; a device that fails the command makes
# the kernel fall back to writing zero pages (hundreds of writes) and drop the
# limit to 0, which this catches.
w0=$(awk '{ print $5 }' "/sys/block/$NAME/stat")
if $BLKDISCARD -z "$DEV"; then
	n=$(($(awk '{ print $5 }' "/sys/block/$NAME/stat") - w0))
	ok "write zeroes of the whole device ($n write requests)"
	if [ "${wzmax:-0}" -gt 0 ]; then
		want=$(ceil_div "$dev_bytes" "$wzmax")
		if [ $n -le $((want * 2)) ]; then ok "write zeroes went as WRITE_ZEROES ($n requests, want ~$want)"
		else fail "write zeroes took $n requests, want ~$want: device WRITE_ZEROES not used"; fi
		check "write_zeroes_max_bytes after use" "$(sysq write_zeroes_max_bytes)" "$wzmax"
	fi
	check "first 8 MiB zero after full write zeroes" "$(disk_md5 0 8)" "$(zero_md5 8)"
	check "last 8 MiB zero after full write zeroes" \
		"$(disk_md5 $((dev_bytes / MB - 8)) 8)" "$(zero_md5 8)"
else
	fail "write zeroes of the whole device"
fi
check "discard_max_bytes after use" "$(sysq discard_max_bytes)" "$dmax"
finish
