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

# blk_state: what the block layer holds for the disk (blk-mq debugfs).
blk_state() {
	log "in flight (read write): $(cat "/sys/block/$NAME/inflight")"
	for d in "/sys/kernel/debug/block/$NAME"/hctx*; do
		[ -d "$d" ] || continue
		for f in state busy dispatch tags; do
			[ -r "$d/$f" ] && log "$(basename "$d")/$f: $(tr '\n' ' ' <"$d/$f")"
		done
	done
}

# run_fio LABEL LIMIT CMD...: CMD in the background, at most LIMIT seconds;
# output to the console. 0 pass, 1 fio failed, 2 stuck (the caller gives up).
run_fio() {
	label=$1 limit=$2
	shift 2
	"$@" >/tmp/fio.log 2>&1 &
	pid=$!
	t=0
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$t" -ge "$limit" ]; then
			cat /tmp/fio.log
			fail "$label: fio still running after ${limit}s (requests lost by the device?)"
			blk_state
			dmesg | tail -n 30
			return 2
		fi
		sleep 1
		t=$((t + 1))
		# Progress, to see when I/O stalled: writes/reads completed, in flight.
		[ $((t % 2)) -eq 0 ] && log "t=${t}s stat: $(awk '{ print "reads", $1, "writes", $5, "in flight", $9 }' "/sys/block/$NAME/stat")"
	done
	rc=0
	wait "$pid" || rc=$?
	cat /tmp/fio.log
	if [ "$rc" -eq 0 ]; then
		ok "$label (${t}s)"
		return 0
	fi
	fail "$label: fio exited $rc"
	return 1
}

dmesg_check() {
	bad=$(dmesg | grep -E 'I/O error|blk_update_request|blocked for more than|hung_task|is not a head|out of range|virtio.*(error|fail|broken)|vda.*(error|fail)' || true)
	if [ -n "$bad" ]; then
		echo "$bad"
		fail "the guest kernel logged I/O errors, hung tasks or virtio complaints"
	else
		ok "no I/O error, hung task or virtio complaint in dmesg"
	fi
}

# Stuck: report now and power off (a final sync could wait forever).
give_up() {
	dmesg_check
	echo "guest: $FAILS check(s) failed"
	echo "VBLK-E2E-RESULT=1"
	poweroff -f
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
