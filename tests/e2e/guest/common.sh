# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Helpers for guest test scripts (busybox sh inside the e2e guest). The host
# side puts expected values in /test.env (EXPECT_*); a script sources this
# file, runs its checks and exits 0 (pass) or 1 (fail).

DEV=/dev/vda
NAME=vda
FAILS=0

[ -f /test.env ] && . /test.env

log() { echo "guest: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
finish() {
	if [ "$FAILS" -ne 0 ]; then
		echo "guest: $FAILS check(s) failed"
		exit 1
	fi
	exit 0
}

# wait_for_disk: the driver probes asynchronously after insmod.
wait_for_disk() {
	i=0
	while [ ! -b "$DEV" ]; do
		i=$((i + 1))
		if [ "$i" -gt 200 ]; then
			echo "FAIL: $DEV did not appear"
			dmesg | tail -n 30
			exit 1
		fi
		sleep 0.1
	done
}

# check NAME GOT WANT: WANT is a number/string, "any", or "nonzero".
check() {
	case $3 in
	any | '') ok "$1 = $2 (not checked)" ;;
	nonzero)
		if [ -n "$2" ] && [ "$2" != 0 ]; then ok "$1 = $2 (nonzero)"; else fail "$1 = '$2', want nonzero"; fi ;;
	*)
		if [ "$2" = "$3" ]; then ok "$1 = $2"; else fail "$1 = '$2', want '$3'"; fi ;;
	esac
}

sysq() { cat "/sys/block/$NAME/queue/$1" 2>/dev/null; }

# check_queues: the number of blk-mq hardware queues the guest created.
check_queues() {
	n=$(find /sys/block/$NAME/mq -mindepth 1 -maxdepth 1 -type d | wc -l)
	check "hardware queues (/sys/block/$NAME/mq)" "$n" "${EXPECT_QUEUES:-any}"
}

# queue_irqs: "req.0=N req.1=M ..." interrupts per request virtqueue
# (MSI-X vector names from /proc/interrupts, summed over CPUs).
queue_irqs() {
	awk '$NF ~ /-req\.[0-9]+$/ {
		n = 0
		for (i = 2; i <= NF; i++) { if ($i !~ /^[0-9]+$/) break; n += $i }
		name = $NF; sub(/.*-/, "", name); printf "%s=%d ", name, n
	}' /proc/interrupts
}

# check_all_queues_used: every request queue completed requests.
check_all_queues_used() {
	q=$(queue_irqs)
	if [ -z "$q" ]; then
		log "no per-queue interrupt vectors; cannot count requests per queue"
		return
	fi
	n=0
	for kv in $q; do
		n=$((n + 1))
		if [ "${kv#*=}" -eq 0 ]; then fail "queue ${kv%%=*} raised no interrupt ($q)"; return; fi
	done
	check "queues with interrupt vectors" "$n" "${EXPECT_QUEUES:-any}"
	ok "every queue completed requests (interrupts: $q)"
}

# negotiated features, as the virtio bus shows them (bit N = char N+1).
feature() { cut -c"$(($1 + 1))" "/sys/block/$NAME/device/features"; }
feature_names() {
	out=''
	for fb in 1:SIZE_MAX 2:SEG_MAX 5:RO 6:BLK_SIZE 9:FLUSH 10:TOPOLOGY 11:CONFIG_WCE 12:MQ \
		13:DISCARD 14:WRITE_ZEROES 28:INDIRECT_DESC 29:EVENT_IDX 32:VERSION_1 33:ACCESS_PLATFORM \
		34:RING_PACKED 37:ORDER_PLATFORM; do
		[ "$(feature "${fb%%:*}")" = 1 ] && out="$out ${fb#*:}"
	done
	echo "${out# }"
}

# check_ring: the ring format the driver negotiated (EXPECT_RING split|packed).
check_ring() {
	ring='split'
	[ "$(feature 34)" = 1 ] && ring=packed
	check "ring format" "$ring" "${EXPECT_RING:-any}"
}

# flushes_completed: field 16 of /sys/block/vda/stat.
flushes_completed() { awk '{ print $16 }' "/sys/block/$NAME/stat"; }

# discards_completed: field 12 of /sys/block/vda/stat.
discards_completed() { awk '{ print $12 }' "/sys/block/$NAME/stat"; }

# md5 of LEN MiB of the disk at OFF MiB, read with O_DIRECT.
disk_md5() { dd if="$DEV" bs=1M skip="$1" count="$2" iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1; }
zero_md5() { dd if=/dev/zero bs=1M count="$1" 2>/dev/null | md5sum | cut -d' ' -f1; }

# ---- long fio runs (kill-verify, migrate-verify) ----

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

wait_for_disk
log "disk $DEV: $(cat "/sys/block/$NAME/size") sectors, $(find "/sys/block/$NAME/mq" -mindepth 1 -maxdepth 1 | wc -l) queue(s)"
log "features: $(feature_names)"
check_ring

# wait_until SECONDS COMMAND...: 0 once COMMAND succeeds, 1 on timeout.
wait_until() {
	n=$(($1 * 10))
	shift
	while ! "$@"; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}

# check_grown OLD_SECTORS TIMEOUT: wait for the disk's capacity to change
# from OLD_SECTORS (a resize while the guest runs), check it against
# EXPECT_NEW_SECTORS, and write + verify the grown area with fio.
check_grown() {
	old=$1
	if wait_until "$2" grown_size_changed; then ok "the capacity changed without a reboot"
	else fail "the capacity did not change in $2 s"; fi
	new=$(cat /sys/block/"$NAME"/size)
	check "capacity after the resize (/sys/block/$NAME/size)" "$new" "${EXPECT_NEW_SECTORS:-any}"
	dmesg | grep -i "capacity change" | tail -n 1 | sed 's/^/guest: dmesg: /'
	[ "$new" -gt "$old" ] || return 0
	if fio --name=grown --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=32 \
		--rw=randwrite --bs=4k --offset=$((old * 512)) --size=$(((new - old) * 512)) \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=0 --eta=never \
		>/tmp/fio.log 2>&1; then
		ok "fio write+verify of the grown area ($(((new - old) / 2048)) MiB past the old end)"
	else
		fail "fio on the grown area"
		tail -n 20 /tmp/fio.log
	fi
}
grown_size_changed() { [ "$(cat /sys/block/"$NAME"/size)" != "$old" ]; }
