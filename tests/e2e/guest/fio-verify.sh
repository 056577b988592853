# SPDX-License-Identifier: MIT
# shellcheck shell=sh
#
# Guest test: fio random writes with mixed block sizes from two jobs pinned to
# two CPUs (disjoint regions), fsync every 16 writes, then read back and verify
# crc32c; then large sequential writes (requests split at max_segments). The
# write cache is switched to write back where the device allows it, so fsync
# reaches the device as FLUSH. Checks every queue completed requests.
. /e2e-common.sh

SIZE_MB=${FIO_SIZE_MB:-32}
check_queues

# CONFIG_WCE devices start write-through; write back makes fsync send FLUSH.
if [ -w "/sys/block/$NAME/cache_type" ]; then
	echo "write back" >"/sys/block/$NAME/cache_type" || fail "set cache_type write back"
fi
wc=$(sysq write_cache)
log "write cache: $wc"
f0=$(flushes_completed)

# Options before the first --name are global; each job has its own region
# and its own CPU, hence its own blk-mq queue.
if fio --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=8 \
	--rw=randwrite --bssplit=4k/50:16k/30:64k/20 --size="${SIZE_MB}M" \
	--fsync=16 --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--verify_dump=0 --group_reporting --eta=never \
	--name=job0 --offset=0 --cpus_allowed=0 \
	--name=job1 --offset="${SIZE_MB}M" --cpus_allowed=1; then
	ok "fio write+verify (2 jobs x ${SIZE_MB} MiB, bssplit 4k/16k/64k, crc32c)"
else
	fail "fio write+verify"
fi

if fio --name=seq --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=4 \
	--rw=write --bs=1m --size="${SIZE_MB}M" --offset="$((SIZE_MB * 2))M" \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --fsync=4 --eta=never; then
	ok "fio sequential 1 MiB write+verify"
else
	fail "fio sequential write+verify"
fi

f1=$(flushes_completed)
if [ "$wc" = "write back" ]; then
	if [ "$f1" -gt "$f0" ]; then ok "fsync reached the device ($((f1 - f0)) flushes)"
	else fail "no flush reached the device in write-back mode"; fi
else
	log "write-through device: fsync sends no FLUSH"
fi
[ "${EXPECT_QUEUES:-1}" -gt 1 ] && check_all_queues_used
finish
