# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Guest test for live migration (run-guest-test.sh --migrate): the host
# migrates this guest between two QEMUs while it does I/O, starting at
# VBLK-E2E-IO-STARTED.
# - Readers: two 64 MiB regions are written once with crc32c verify headers,
#   then fio re-reads and verifies them (--verify_only, iodepth 32, random
#   16 KiB blocks) pass after pass for RUN_S seconds. The device writes read
#   data into guest memory; a page it did not mark dirty reaches the
#   destination stale, and a read that completes across the switch-over is
#   then checked against the previous contents of its buffer: verify fails.
# - Writers: two fio jobs write at random with mixed block sizes (crc32c,
#   --verify_backlog) in the rest of the disk, 10 s rounds, each verifying
#   every block it wrote.
# Both go on until the host writes VBLK-E2E-MIGRATED into the disk's last
# 4 KiB (after its last migration), or RUN_S seconds at most.
# Then the host-written first MiB must be unchanged and dmesg clean.
. /e2e-common.sh

RUN_S=${EXPECT_RUN_S:-150}
ROUND_S=10
DEADLINE=${EXPECT_FIO_DEADLINE:-30}
READ_MB=64
# Writer regions: what is left after the first MiB and the readers, halved.
WRITE_MB=$((($(cat "/sys/block/$NAME/size") / 2048 - 1 - 2 * READ_MB) / 2 - 1))
W0=$((1 + 2 * READ_MB))
[ -w /proc/sys/kernel/hung_task_timeout_secs ] && echo 10 >/proc/sys/kernel/hung_task_timeout_secs

# The reader regions' job: the fill writes it, --verify_only re-reads it.
read_jobs() {
	fio --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=32 \
		--rw=randwrite --bs=16k --size="${READ_MB}M" \
		--verify=crc32c --verify_fatal=1 --verify_dump=0 --group_reporting --eta=never "$@" \
		--name=r0 --offset=1M --cpus_allowed=0 \
		--name=r1 --offset="$((1 + READ_MB))M" --cpus_allowed=1
}

write_jobs() {
	fio --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=16 \
		--rw=randwrite --bssplit=4k/60:16k/30:64k/10 --size="${WRITE_MB}M" \
		--time_based --runtime="$ROUND_S" \
		--verify=crc32c --do_verify=1 --verify_backlog=64 --verify_fatal=1 --verify_dump=0 \
		--group_reporting --eta=never \
		--name=w0 --offset="${W0}M" --cpus_allowed=0 \
		--name=w1 --offset="$((W0 + WRITE_MB))M" --cpus_allowed=1
}

T0=$(date +%s)
# More I/O wanted: the host has not written its flag, and RUN_S not over.
go_on() {
	[ $(($(date +%s) - T0)) -lt "$RUN_S" ] || return 1
	! dd if="$DEV" bs=4096 skip=$(($(cat "/sys/block/$NAME/size") / 8 - 1)) count=1 \
		iflag=direct 2>/dev/null | grep -q VBLK-E2E-MIGRATED
}

# Verify passes over the reader regions until the host is done.
read_loop() {
	n=0
	while go_on; do
		if ! read_jobs --verify_only=1 >/tmp/pass.log 2>&1; then
			cat /tmp/pass.log
			echo "verify pass $((n + 1)) failed"
			return 1
		fi
		n=$((n + 1))
	done
	echo "$n verify passes"
}

check_queues
[ "$WRITE_MB" -ge 64 ] || { fail "disk too small ($WRITE_MB MiB per writer; use --size 512M)"; finish; }
rc=0
run_fio "fill the reader regions (2 x ${READ_MB} MiB)" "$DEADLINE" read_jobs --do_verify=0 || rc=$?
[ "$rc" -eq 2 ] && give_up
echo "VBLK-E2E-IO-STARTED"
T0=$(date +%s)
read_loop >/tmp/readers.log 2>&1 &
rpid=$!
round=0
while go_on; do
	round=$((round + 1))
	rc=0
	run_fio "writers, round $round: fio randwrite ${ROUND_S}s + verify (2 jobs, ${WRITE_MB} MiB regions)" \
		$((ROUND_S + DEADLINE)) write_jobs || rc=$?
	[ "$rc" -eq 2 ] && give_up
	[ "$rc" -eq 0 ] || break
done
go_on && fail "writers stopped before the host was done"
rc=0
wait "$rpid" || rc=$?
cat /tmp/readers.log
if [ "$rc" -eq 0 ]; then
	ok "readers: $(tail -n 1 /tmp/readers.log) while migrating"
else
	fail "readers: a re-read returned other data than was written"
fi
echo "VBLK-E2E-IO-DONE"
check "first MiB as the host wrote it (md5)" "$(disk_md5 0 1)" "${EXPECT_HEAD_MD5:-any}"
dmesg_check
finish
