#!/bin/bash
# SPDX-License-Identifier: MIT
# The fio ioengine, as users run it: fio --ioengine=external:libfio-vblk.so
# --filename=SOCKET, against vblkd and against qemu-storage-daemon (same jobs).
# Prints TAP.
set -u
VBLKD=${1:?usage: test_fio_engine.sh VBLKD ENGINE}
ENGINE=${2:?usage: test_fio_engine.sh VBLKD ENGINE}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; failed=$((failed + 1)); }
wait_socket() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }

# A sanitized engine (and libvblk) loaded into an unsanitized fio needs the
# sanitizer runtimes loaded first.
if [ -n "${VBLK_SANITIZE_PRELOAD:-}" ]; then
	export LD_PRELOAD=$VBLK_SANITIZE_PRELOAD
	export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0:verify_asan_link_order=0
fi

# run_fio DESCRIPTION EXPECT(0|fail) fio-args...
run_fio() {
	local desc=$1 expect=$2; shift 2
	local out rc
	out=$(timeout 120 fio --ioengine="external:$ENGINE" --output-format=normal "$@" 2>&1); rc=$?
	if { [ "$expect" = 0 ] && [ $rc -eq 0 ] && grep -q "err= 0" <<<"$out"; } ||
		{ [ "$expect" = fail ] && [ $rc -ne 0 ]; }; then
		ok "$desc"
	else
		notok "$desc"
		sed 's/^/#   /' <<<"$out" | tail -15
	fi
	LAST_OUT=$out
}

verify_jobs() { # SOCKET LABEL
	local s=$1 l=$2
	for mode in poll event; do
		run_fio "$l: 2 queues $mode: mixed-size random write + crc32c verify" 0 \
			--name=v --filename="$s" --vblk_queues=2 --vblk_mode=$mode \
			--rw=randwrite --bssplit=4k/50:16k/30:64k/20 --size=32M --iodepth=16 \
			--verify=crc32c --do_verify=1 --verify_fatal=1 --fsync=32
	done
	run_fio "$l: vblk_path given, filename unused" 0 \
		--name=p --vblk_path="$s" --rw=read --bs=64k --size=8M --iodepth=4
	run_fio "$l: trim then read" 0 \
		--name=t --filename="$s" --rw=trim --bs=1M --size=8M --iodepth=4
	run_fio "$l: 4k randread QD32 for 1 s" 0 \
		--name=r --filename="$s" --rw=randread --bs=4k --iodepth=32 --runtime=1 --time_based
}

truncate -s 128M "$tmp/disk.img"
"$VBLKD" --socket-path="$tmp/v.sock" --file="$tmp/disk.img" --num-queues=2 -q & pids+=($!)
if wait_socket "$tmp/v.sock"; then ok "vblkd listens"; else notok "vblkd listens"; fi
verify_jobs "$tmp/v.sock" vblkd

# The size fio sees is the device's capacity, not a file's.
run_fio "vblkd: the job covers the whole 128 MiB device" 0 \
	--name=s --filename="$tmp/v.sock" --rw=read --bs=1M --iodepth=8
if grep -q "io=128MiB" <<<"$LAST_OUT"; then ok "fio sized the job from the capacity"
else notok "fio sized the job from the capacity"; fi

run_fio "no server: fio fails" fail --name=x --filename="$tmp/absent.sock" --rw=read --bs=4k --size=1M
if grep -qi "absent.sock" <<<"$LAST_OUT"; then ok "the error names the socket"
else notok "the error names the socket"; fi
run_fio "bad vblk_mode is refused" fail --name=x --filename="$tmp/v.sock" --vblk_mode=sometimes \
	--rw=read --bs=4k --size=1M

"$VBLKD" --socket-path="$tmp/ro.sock" --file="$tmp/disk.img" --read-only -q & pids+=($!)
wait_socket "$tmp/ro.sock"
run_fio "read-only export: writes fail" fail --name=w --filename="$tmp/ro.sock" --rw=write --bs=4k --size=1M

# The same jobs against qemu-storage-daemon show the engine is not tied to vblkd.
if command -v qemu-storage-daemon >/dev/null; then
	truncate -s 128M "$tmp/q.img"
	qemu-storage-daemon --blockdev driver=file,node-name=f,filename="$tmp/q.img" \
		--export type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path="$tmp/q.sock",writable=on,num-queues=2 \
		>"$tmp/qsd.log" 2>&1 & pids+=($!)
	if wait_socket "$tmp/q.sock"; then
		verify_jobs "$tmp/q.sock" qsd
	else
		notok "qemu-storage-daemon did not start"; sed 's/^/#   /' "$tmp/qsd.log"
	fi
else
	echo "# qemu-storage-daemon not installed: the peer half is not run"
fi
echo "1..$n"
[ $failed -eq 0 ]
