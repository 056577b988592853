# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Guest test for QoS and a resize picked up from the image (run-guest-test.sh
# --qos IOPS): vblkd serves this disk with --iops=IOPS; fio in the guest
# measures the IOPS it gets (randread, iodepth 32, 10 s after a 2 s ramp)
# and it must be within 10% of the limit. Then the host lifts the limit,
# grows the image file with truncate and runs `vblkctl resize` without a
# size: the guest sees the new capacity without a reboot and writes +
# verifies the grown area with fio. One boot for both (TCG is slow).
. /e2e-common.sh

old=$(cat /sys/block/"$NAME"/size)
check "capacity before the resize" "$old" "${EXPECT_SECTORS:-any}"

# Terse output, field 8: read IOPS over the run (the ramp excluded).
if out=$(fio --name=qos --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=32 \
	--rw=randread --bs=4k --size=64M --time_based --ramp_time=2 --runtime=10 \
	--output-format=terse --eta=never 2>&1); then
	iops=$(echo "$out" | tail -n 1 | cut -d';' -f8)
	want=${EXPECT_IOPS:-0}
	log "fio: $iops read IOPS with vblkd --iops=$want"
	if [ -n "$iops" ] && [ "$want" -gt 0 ] && [ $((iops * 100)) -ge $((want * 90)) ] &&
		[ $((iops * 100)) -le $((want * 110)) ]; then
		ok "IOPS measured in the guest: $iops, within 10% of the limit $want"
	else
		fail "IOPS measured in the guest: '$iops', want $want +-10%"
	fi
else
	fail "fio under the IOPS limit"
	echo "$out" | tail -n 20
fi
echo "VBLK-E2E-QOS-DONE"

# For the record: what this guest does without a limit (a TCG guest on a
# busy host may not reach a high limit at all, which is why the limit is low).
free=$(fio --name=free --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=32 \
	--rw=randread --bs=4k --size=64M --time_based --runtime=3 --output-format=terse \
	--eta=never 2>/dev/null | tail -n 1 | cut -d';' -f8)
log "fio: $free read IOPS without a limit"
check_grown "$old" 180
finish
