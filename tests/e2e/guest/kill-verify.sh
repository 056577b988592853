# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Guest test for backend death and restart (run-guest-test.sh --chaos): two
# fio jobs (two CPUs, so two queues, disjoint regions) write at random with
# mixed block sizes and crc32c verify headers, iodepth 128 (so a kill finds
# 100+ requests in flight per queue, rings of 256), for WRITE_S seconds
# (time based, so the writes span the host's kill schedule; the regions are
# large enough that no block is written twice), reading back behind the writes
# (--verify_backlog); then fio verifies every block written. Then a sequential
# write+verify after the chaos, and the host-written first MiB (no job writes
# there) must be unchanged. The host's schedule starts at VBLK-E2E-IO-STARTED.
# Passes when fio passes and the kernel logged no I/O error, hung task
# (reported after 10 s) or virtio complaint. A stuck fio (requests the backend
# lost) fails after WRITE_S + DEADLINE s with the block layer's state.
. /e2e-common.sh

WRITE_S=${EXPECT_WRITE_S:-16}
DEADLINE=${EXPECT_FIO_DEADLINE:-30}
# Per-job region: the disk less the first MiB, halved, whole MiB.
SIZE_MB=$(($(cat "/sys/block/$NAME/size") / 2048 / 2 - 1))
# Report hung tasks quickly (the default is 120 s).
[ -w /proc/sys/kernel/hung_task_timeout_secs ] && echo 10 >/proc/sys/kernel/hung_task_timeout_secs

# Options before the first --name are global.
fio_job() {
	fio --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=128 \
		--rw=randwrite --bssplit=4k/60:16k/30:64k/10 --size="${SIZE_MB}M" \
		--time_based --runtime="$WRITE_S" \
		--verify=crc32c --do_verify=1 --verify_backlog=64 --verify_fatal=1 --verify_dump=0 \
		--group_reporting --eta=never \
		--name=job0 --offset=1M --cpus_allowed=0 \
		--name=job1 --offset="$((SIZE_MB + 1))M" --cpus_allowed=1
}

check_queues
[ "$SIZE_MB" -ge 64 ] || { fail "disk too small ($SIZE_MB MiB per job; use --size 512M)"; finish; }
echo "VBLK-E2E-IO-STARTED"
rc=0
run_fio "fio randwrite ${WRITE_S}s + verify across backend restarts (2 jobs, ${SIZE_MB} MiB regions)" \
	$((WRITE_S + DEADLINE)) fio_job || rc=$?
[ "$rc" -eq 2 ] && give_up
echo "VBLK-E2E-IO-DONE"
rc=0
run_fio "fio sequential 1 MiB write+verify after the restarts" "$DEADLINE" \
	fio --name=seq --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=8 \
	--rw=write --bs=1m --size=8M --offset=1M --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --eta=never || rc=$?
[ "$rc" -eq 2 ] && give_up
check "first MiB as the host wrote it (md5)" "$(disk_md5 0 1)" "${EXPECT_HEAD_MD5:-any}"
dmesg_check
finish
