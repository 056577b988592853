# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Guest test for the control socket (run-guest-test.sh --control): the host
# resizes this disk while the guest runs, then hot-plugs a second disk it
# added to vblkd at runtime, and unplugs it once the guest is done with it.
# The guest sees the new capacity without a reboot and writes + verifies
# the grown area with fio; it uses the hot-plugged disk with 128 requests
# in flight, then sees it go. Each step ends with a console marker the
# host waits for.
. /e2e-common.sh

have_vdb() { [ -b /dev/vdb ]; }
no_vdb() { [ ! -e /sys/block/vdb ]; }

old=$(cat /sys/block/"$NAME"/size)
check "capacity before the resize" "$old" "${EXPECT_SECTORS:-any}"
echo "VBLK-E2E-IO-STARTED"
check_grown "$old" 120
echo "VBLK-E2E-RESIZED"

if wait_until 120 have_vdb; then ok "the hot-plugged disk appeared as /dev/vdb"
else fail "no /dev/vdb 120 s after the hot-plug"; fi
if [ -b /dev/vdb ]; then
	check "hot-plugged disk capacity" "$(cat /sys/block/vdb/size)" "${EXPECT_HOT_SECTORS:-any}"
	n=$(find /sys/block/vdb/mq -mindepth 1 -maxdepth 1 -type d | wc -l)
	check "hot-plugged disk queues" "$n" 2
	if fio --name=hot --filename=/dev/vdb --direct=1 --ioengine=libaio --iodepth=128 \
		--rw=randwrite --bs=4k --size=32M --verify=crc32c --do_verify=1 \
		--verify_fatal=1 --verify_dump=0 --eta=never >/tmp/fio.log 2>&1; then
		ok "fio write+verify on the hot-plugged disk (iodepth 128)"
	else
		fail "fio on the hot-plugged disk"
		tail -n 20 /tmp/fio.log
	fi
fi
echo "VBLK-E2E-HOTPLUG-DONE"
if wait_until 120 no_vdb; then ok "the unplugged disk went away"
else fail "/dev/vdb still there 120 s after the unplug"; fi
finish
