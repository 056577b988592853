# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Guest test for a backend restart while the guest is idle (run-guest-test.sh
# --chaos ... --chaos-at 2): fio writes and verifies a region (so the rings
# have moved on from index 0), prints VBLK-E2E-IO-STARTED and stays idle for
# IDLE_S seconds while the host kills and restarts the backend, then writes and
# verifies another region and reads the first one back. Nothing is in flight
# during the restart, so this passes without inflight tracking as long as the
# backend restarts the rings where QEMU says they are.
. /e2e-common.sh

IDLE_S=${EXPECT_IDLE_S:-8}
DEADLINE=${EXPECT_FIO_DEADLINE:-30}
check_queues

# fio_rw LABEL OFFSET_MB ARGS...: 2 jobs x 8 MiB write+verify from OFFSET_MB,
# with a deadline (a request lost by the device leaves fio waiting forever).
fio_rw() {
	label=$1 off=$2
	shift 2
	fio --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=16 \
		--rw=randwrite --bssplit=4k/60:16k/30:64k/10 --size=8M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=0 \
		--group_reporting --eta=never "$@" \
		--name=job0 --offset="${off}M" --cpus_allowed=0 \
		--name=job1 --offset="$((off + 8))M" --cpus_allowed=1 >/tmp/fio.log 2>&1 &
	pid=$!
	t=0
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$t" -ge "$DEADLINE" ]; then
			cat /tmp/fio.log
			fail "$label: fio still running after ${DEADLINE}s"
			log "in flight (read write): $(cat "/sys/block/$NAME/inflight")"
			dmesg | tail -n 30
			echo "guest: $FAILS check(s) failed"
			echo "VBLK-E2E-RESULT=1"
			poweroff -f
		fi
		sleep 1
		t=$((t + 1))
	done
	rc=0
	wait "$pid" || rc=$?
	grep -E 'err=|WRITE:|READ:|verify' /tmp/fio.log
	if [ "$rc" -eq 0 ]; then ok "$label (${t}s)"; else cat /tmp/fio.log; fail "$label: fio exited $rc"; fi
}

fio_rw "write+verify before the restart" 0
echo "VBLK-E2E-IO-STARTED"
sleep "$IDLE_S"
fio_rw "write+verify after the restart" 16
fio_rw "the data written before the restart reads back" 0 --verify_only

bad=$(dmesg | grep -E 'I/O error|blk_update_request|blocked for more than|hung_task|is not a head|out of range|virtio.*(error|fail|broken)|vda.*(error|fail)' || true)
if [ -n "$bad" ]; then
	echo "$bad"
	fail "the guest kernel logged I/O errors, hung tasks or virtio complaints"
else
	ok "no I/O error, hung task or virtio complaint in dmesg"
fi
finish
