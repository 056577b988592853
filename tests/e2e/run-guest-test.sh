#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Runs one end-to-end test: a sparse image, a vhost-user-blk backend serving
# it (qemu-storage-daemon as the reference peer, or vblkd), a Linux guest
# under QEMU running tests/e2e/guest/TEST.sh. Exit 0 pass, 1 fail, 77 skip
# (only when QEMU cannot run here).
set -euo pipefail

usage() {
	cat <<-EOF
	usage: $0 BACKEND TEST [options]
	  BACKEND  qsd | vblkd
	  TEST     fio-verify | trim | guest-view (tests/e2e/guest/TEST.sh), or a path to a script
	options:
	  --queues N        request queues (default 2)
	  --packed          ask for the packed ring (packed=on)
	  --read-only       export read-only
	  --size SIZE       image size for truncate (default 128M)
	  --vblkd PATH      vblkd binary (default \$VBLKD)
	  --backend-arg ARG one more backend argument (repeatable), e.g. --direct
	  --rbd             vblkd: serve an RBD image (the image's contents imported)
	                    on a single-node Ceph cluster (scripts/ceph-cluster.sh):
	                    the run's when \$VBLK_CEPH_CONF names its ceph.conf
	                    (scripts/test.sh), else one started for this test
	  --expect K=V      guest expectation EXPECT_K=V (V: value, any, nonzero)
	  --append ARGS     extra guest kernel command line
	  --viommu          a virtual Intel IOMMU (intel-iommu, device IOTLB) in the guest
	  --iommu-platform  the disk with iommu_platform=on (vblkd: served with --iommu)
	  --timeout SEC     QEMU time limit (default \$E2E_TIMEOUT or 600)
	  --keep            keep the temp dir (image, logs)
	  --reconnect       QEMU reconnects to the socket when the backend goes away
	  --chaos SIG       (implies --reconnect) once the guest prints the marker,
	                    kill the backend with SIG (KILL or TERM) at each time of
	                    --chaos-at and restart it on the same socket and image;
	                    after TERM the backend must exit 0
	  --chaos-at LIST   seconds after the marker, comma separated (default 3,7,12)
	  --chaos-jitter MS random extra delay per kill, 0..MS ms (default 1500)
	  --chaos-seed N    seed for the jitter (default \$E2E_CHAOS_SEED or random)
	  --chaos-marker S  console line that starts the schedule (default VBLK-E2E-IO-STARTED)
	  --migrate N       live-migrate the running guest N times between two QEMUs on
	                    this host, once the guest prints the marker (--chaos-marker):
	                    the backend serves the image on a second socket too, each
	                    destination QEMU connects to the socket its source does not
	                    use and waits with -incoming; source and destination swap
	  --migrate-gap SEC seconds before each migration (default 3)
	  --backend-env K=V environment for the backend (repeatable), e.g. the
	                    test-only VBLKD_TEST_SKIP_DATA_LOG=1
	  --control         vblkd: with a control socket; once the guest prints the
	                    marker, resize the export (--resize-to) with vblkctl, then
	                    add a second export at runtime, hot-plug it into QEMU
	                    (device_add over HMP), and once the guest is done with
	                    it unplug it and remove the export (guest/hotplug-resize.sh)
	  --resize-to SIZE  --control: the export's new size (default 256M)
	  --qos IOPS        vblkd: serve with --iops=IOPS and a control socket; once
	                    the guest measured its IOPS (guest/qos-resize.sh), lift
	                    the limit, grow the image with truncate (--resize-to) and
	                    run vblkctl resize without a size
	  --vblkctl PATH    vblkctl binary (default \$VBLKCTL)
	EOF
	exit 2
}

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

(($# >= 2)) || usage
backend=$1 test=$2
shift 2
queues=2 packed=0 ro=0 size=128M keep=0 append='' reconnect=0 rbd=0 ceph_dir='' rbd_image=''
viommu=0 iommu_platform=0

chaos_sig='' chaos_at=3,7,12 chaos_jitter=1500 chaos_seed=${E2E_CHAOS_SEED:-}
chaos_marker=VBLK-E2E-IO-STARTED
migrations=0 migrate_gap=3
control=0 resize_to=256M vblkctl_bin=${VBLKCTL:-} qos=0
backend_env=()
vblkd_bin=${VBLKD:-}
expects=()
backend_args=()
while (($#)); do
	case $1 in
	--queues) queues=$2; shift 2 ;;
	--packed) packed=1; shift ;;
	--read-only) ro=1; shift ;;
	--size) size=$2; shift 2 ;;
	--vblkd) vblkd_bin=$2; shift 2 ;;
	--backend-arg) backend_args+=("$2"); shift 2 ;;
	--rbd) rbd=1; shift ;;
	--expect) expects+=("$2"); shift 2 ;;
	--append) append=$2; shift 2 ;;
	--viommu) viommu=1; shift ;;
	--iommu-platform) iommu_platform=1; shift ;;
	--timeout) E2E_TIMEOUT=$2; shift 2 ;; # read by e2e_run_qemu
	--keep) keep=1; shift ;;
	--reconnect) reconnect=1; shift ;;
	--chaos) chaos_sig=${2#SIG}; reconnect=1; shift 2 ;;
	--chaos-at) chaos_at=$2; shift 2 ;;
	--chaos-jitter) chaos_jitter=$2; shift 2 ;;
	--chaos-seed) chaos_seed=$2; shift 2 ;;
	--chaos-marker) chaos_marker=$2; shift 2 ;;
	--migrate) migrations=$2; shift 2 ;;
	--migrate-gap) migrate_gap=$2; shift 2 ;;
	--backend-env) backend_env+=("$2"); shift 2 ;;
	--control) control=1; shift ;;
	--qos) qos=$2; control=1; shift 2 ;;
	--resize-to) resize_to=$2; shift 2 ;;
	--vblkctl) vblkctl_bin=$2; shift 2 ;;
	-h | --help) usage ;;
	*) echo "unknown option: $1" >&2; usage ;;
	esac
done

guest_script=$E2E_LIB_DIR/guest/$test.sh
# A path runs an ad-hoc guest script (debugging).
[[ $test == */* ]] && guest_script=$test
[[ -f $guest_script ]] || { echo "no such test: $test" >&2; usage; }
[[ $queues =~ ^[1-9][0-9]*$ ]] || e2e_die "--queues wants a positive number"
case $chaos_sig in
'' | KILL | TERM) ;;
*) e2e_die "--chaos wants KILL or TERM" ;;
esac
[[ $chaos_at =~ ^[0-9]+(\.[0-9]+)?(,[0-9]+(\.[0-9]+)?)*$ ]] || e2e_die "--chaos-at wants seconds, comma separated"
[[ $chaos_jitter =~ ^[0-9]+$ ]] || e2e_die "--chaos-jitter wants milliseconds"
[[ -z $chaos_seed || $chaos_seed =~ ^[0-9]+$ ]] || e2e_die "--chaos-seed wants a number"
[[ $migrations =~ ^[0-9]+$ ]] || e2e_die "--migrate wants a count"
[[ $migrate_gap =~ ^[0-9]+(\.[0-9]+)?$ ]] || e2e_die "--migrate-gap wants seconds"
((migrations == 0 || reconnect == 0)) || e2e_die "--migrate and --chaos/--reconnect do not mix"
[[ $qos =~ ^[0-9]+$ ]] || e2e_die "--qos wants a number of IOPS"
if ((control)); then
	[[ $backend == vblkd ]] || e2e_die "--control is for the vblkd backend"
	((migrations == 0 && reconnect == 0)) || e2e_die "--control does not mix with --migrate/--chaos"
	[[ -x $vblkctl_bin ]] || e2e_die "--control: give --vblkctl PATH (or set VBLKCTL)"
	vblkctl_bin=$(realpath "$vblkctl_bin")
fi

case $backend in
qsd) command -v qemu-storage-daemon >/dev/null || { e2e_log "SKIP: no qemu-storage-daemon"; exit 77; } ;;
vblkd)
	[[ -n $vblkd_bin ]] || e2e_die "vblkd backend: set VBLKD=/path/to/vblkd or pass --vblkd"
	[[ -x $vblkd_bin ]] || e2e_die "vblkd backend: $vblkd_bin is not an executable"
	vblkd_bin=$(realpath "$vblkd_bin")
	;;
*) usage ;;
esac
if ((rbd)); then
	[[ $backend == vblkd ]] || e2e_die "--rbd is for the vblkd backend"
	command -v ceph-osd >/dev/null || { e2e_log "SKIP: no ceph-osd (scripts/install-deps.sh)"; exit 77; }
fi
if ! e2e_have_qemu; then
	e2e_log "SKIP: QEMU cannot run here"
	exit 77
fi

label="$backend/$test q=$queues"
((packed)) && label+=" packed"
((ro)) && label+=" ro"
((rbd)) && label+=" rbd"
((reconnect)) && label+=" reconnect"
[[ -n $chaos_sig ]] && label+=" chaos=SIG$chaos_sig"
((control)) && label+=" control"
((qos)) && label+=" qos=$qos"
((migrations)) && label+=" migrate=$migrations"
((${#backend_env[@]})) && label+=" env=${backend_env[*]}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vblk-e2e.XXXXXX")
backend_pid=''
E2E_QEMU_PID=''

stop_pid() { # PID: SIGTERM, 10 s grace, then SIGKILL; returns its status
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		e2e_log "pid $pid ignored SIGTERM for 10 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	local st=0
	wait "$pid" 2>/dev/null || st=$?
	return "$st"
}

# shellcheck disable=SC2317 # invoked by trap
cleanup() {
	local st=$?
	trap - EXIT INT TERM
	[[ -n $E2E_QEMU_PID ]] && { stop_pid "$E2E_QEMU_PID" || true; }
	[[ -n $backend_pid ]] && { stop_pid "$backend_pid" || true; }
	[[ -n $ceph_dir ]] && { "$E2E_LIB_DIR/../../scripts/ceph-cluster.sh" stop "$ceph_dir" || true; }
	# The run's shared cluster stays up: remove our image from it.
	[[ -z $ceph_dir && -n $rbd_image ]] &&
		{ timeout 60 rbd -c "$VBLK_CEPH_CONF" rm --no-progress "$rbd_image" >/dev/null 2>&1 || true; }
	if ((keep)); then
		e2e_log "kept $tmp"
	else
		rm -rf "$tmp"
	fi
	exit "$st"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
e2e_prepare
prep=$((SECONDS - start))

img=$tmp/disk.img
sock=$tmp/vhost.sock
# --migrate: the destination's socket (same image, same backend).
sock2=$tmp/vhost2.sock
blog=$tmp/backend.log
truncate -s "$size" "$img"
img_bytes=$(stat -c %s "$img")
# Known data in the first MiB, so the guest can check what it reads.
head -c 1048576 /dev/urandom | dd of="$img" conv=notrunc status=none
head_md5=$(head -c 1048576 "$img" | md5sum | cut -d' ' -f1)

# Expectations for the guest, written as shell assignments into /test.env.
declare -A exp=(
	[QUEUES]=$queues
	[SECTORS]=$((img_bytes / 512))
	[LOGICAL_BLOCK_SIZE]=512
	[RO]=$ro
	[RING]=split
	[HEAD_MD5]=$head_md5
)
((packed)) && exp[RING]=packed
case $backend in
qsd)
	# QEMU 7.2's export (block/export/vhost-user-blk-server.c): seg_max 1022
	# (the guest caps it at its ring size less 2), 32768-sector discard and
	# write-zeroes limits, offered even when read-only (the device then
	# fails those requests).
	exp[MAX_SEGMENTS]=126
	exp[DISCARD_MAX_BYTES]=$((32768 * 512)) exp[WRITE_ZEROES_MAX_BYTES]=$((32768 * 512))
	# discard=unmap punches holes in the raw file: discarded blocks read zero
	# when the host file system can punch holes.
	truncate -s 64K "$tmp/probe"
	if fallocate -p -o 0 -l 4096 "$tmp/probe" 2>/dev/null; then
		exp[DISCARD_ZEROES]=1
	fi
	rm -f "$tmp/probe"
	;;
vblkd)
	if ((!ro)); then
		exp[DISCARD_MAX_BYTES]=nonzero exp[WRITE_ZEROES_MAX_BYTES]=nonzero
	fi
	# The rbd engine zeroes partial objects on discard (docs/operations.md).
	((rbd)) && exp[DISCARD_ZEROES]=1
	;;
esac
# --control: what the guest sees after the resize, and the hot-plugged disk.
if ((control)); then
	exp[NEW_SECTORS]=$(($(numfmt --from=iec "$resize_to") / 512))
	exp[HOT_SECTORS]=$((64 * 2048))
	((qos)) && exp[IOPS]=$qos
fi
for kv in "${expects[@]}"; do
	[[ $kv == *=* ]] || e2e_die "--expect wants KEY=VALUE, got '$kv'"
	exp[${kv%%=*}]=${kv#*=}
done

mkdir -p "$tmp/guest"
cp "$guest_script" "$tmp/guest/test.sh"
cp "$E2E_LIB_DIR/guest/common.sh" "$tmp/guest/e2e-common.sh"
for k in "${!exp[@]}"; do
	[[ $k =~ ^[A-Z0-9_]+$ && ${exp[$k]} =~ ^[A-Za-z0-9_.:-]*$ ]] ||
		e2e_die "bad expectation: $k=${exp[$k]}"
	printf "EXPECT_%s='%s'\n" "$k" "${exp[$k]}"
done | sort >"$tmp/guest/test.env"
e2e_make_initrd "$tmp/initrd.gz" "$tmp/guest"

case $backend in
qsd)
	writable=on
	((ro)) && writable=off
	bcmd=(qemu-storage-daemon
		--blockdev "driver=file,node-name=file0,filename=$img,cache.direct=on,discard=unmap"
		--blockdev "driver=raw,node-name=disk0,file=file0,discard=unmap"
		--export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$sock,writable=$writable,num-queues=$queues")
	((migrations)) && bcmd+=(--export "type=vhost-user-blk,id=exp1,node-name=disk0,addr.type=unix,addr.path=$sock2,writable=$writable,num-queues=$queues")
	;;
vblkd)
	bcmd=("$vblkd_bin" "--socket-path=$sock" "--num-queues=$queues")
	if ((rbd)); then
		if [[ -n ${VBLK_CEPH_CONF:-} ]]; then
			ceph_conf=$VBLK_CEPH_CONF
		else
			ceph_dir=$tmp/ceph
			ceph_conf=$("$E2E_LIB_DIR/../../scripts/ceph-cluster.sh" start "$ceph_dir") ||
				e2e_die "no Ceph cluster (logs in $ceph_dir/log)"
		fi
		# Named for this run: a shared cluster holds other tests' images.
		rbd_image=rbd/e2e-${tmp##*.}
		timeout 120 rbd -c "$ceph_conf" import --no-progress "$img" "$rbd_image" >/dev/null ||
			e2e_die "rbd import failed"
		bcmd+=("--rbd=$rbd_image" "--ceph-conf=$ceph_conf")
	else
		bcmd+=("--file=$img")
	fi
	((ro)) && bcmd+=(--read-only)
	((iommu_platform)) && bcmd+=(--iommu)
	((control)) && bcmd+=("--control=$tmp/ctl.sock")
	((qos)) && bcmd+=("--iops=$qos")
	# A second export of the same image: one process, one page cache.
	((migrations)) && bcmd+=("--export=socket-path=$sock2,file=$img,num-queues=$queues,read-only=$((ro ? 1 : 0))")
	;;
esac
bcmd+=("${backend_args[@]}")
((${#backend_env[@]})) && bcmd=(env "${backend_env[@]}" "${bcmd[@]}")
# sock_id: identity of the socket file (inode and ctime), empty when absent.
# A restarted backend replaces a stale socket file: the identity changes.
sock_id() {
	[[ -S $sock ]] || return 0
	stat -c '%i %.9Z' "$sock" 2>/dev/null || true
}

# start_backend: starts bcmd (output appended to $blog), sets backend_pid and
# waits up to 10 s for it to create a new socket file. 1 if it did not.
start_backend() {
	local old i
	old=$(sock_id)
	"${bcmd[@]}" </dev/null >>"$blog" 2>&1 &
	backend_pid=$!
	for ((i = 0; i < 100; i++)); do
		[[ -S $sock && $(sock_id) != "$old" ]] && return 0
		kill -0 "$backend_pid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

now_ms() {
	local t=${EPOCHREALTIME//[!0-9]/}
	echo $((10#$t / 1000))
}
fmt_ms() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# The chaos schedule: ms after the marker, each --chaos-at time plus a
# seeded random jitter (print the seed so a failure can be replayed).
chaos_ms=()
chaos_fails=()
chaos_kills=0
if [[ -n $chaos_sig ]]; then
	[[ -n $chaos_seed ]] || chaos_seed=$(($(now_ms) % 1000000))
	RANDOM=$chaos_seed
	IFS=, read -r -a ats <<<"$chaos_at"
	for at in "${ats[@]}"; do
		chaos_ms+=($(($(awk -v s="$at" 'BEGIN { printf "%d", s * 1000 }') + (RANDOM * 32768 + RANDOM) % (chaos_jitter + 1))))
	done
	sched=''
	for ms in "${chaos_ms[@]}"; do sched+=" +$(fmt_ms "$ms")s"; done
	e2e_log "chaos: SIG$chaos_sig at${sched} after '$chaos_marker' (seed $chaos_seed; replay with --chaos-seed $chaos_seed)"
fi

# chaos_hook (called by e2e_run_qemu while QEMU runs): waits for the marker on
# the guest console, then per the schedule kills the backend with SIGchaos_sig,
# checks how it exited and restarts it on the same socket and image.
# shellcheck disable=SC2317 # invoked through e2e_run_qemu --hook
# wait_marker: until the guest console shows $chaos_marker; 1 if QEMU exited.
wait_marker() {
	until grep -aq -- "$chaos_marker" "$tmp/console.log" 2>/dev/null; do
		kill -0 "$E2E_QEMU_PID" 2>/dev/null || return 1
		sleep 0.05
	done
}

chaos_hook() {
	local t0 ms i=0 n=${#chaos_ms[@]} st t_kill t_dead want
	if ! wait_marker; then
		chaos_fails+=("the guest never printed $chaos_marker (QEMU exited first: see the console tail)")
		return 0
	fi
	t0=$(now_ms)
	e2e_log "chaos: guest printed $chaos_marker"
	for ms in "${chaos_ms[@]}"; do
		i=$((i + 1))
		while (($(now_ms) < t0 + ms)) && kill -0 "$E2E_QEMU_PID" 2>/dev/null; do
			sleep 0.02
		done
		if ! kill -0 "$E2E_QEMU_PID" 2>/dev/null; then
			chaos_fails+=("the guest finished before kill $i of $n (lengthen its I/O phase)")
			return 0
		fi
		if ! kill -0 "$backend_pid" 2>/dev/null; then
			st=0
			wait "$backend_pid" 2>/dev/null || st=$? # no "Killed" job notice
			backend_pid=''
			chaos_fails+=("backend died on its own before kill $i (status $st)")
			return 0
		fi
		t_kill=$(now_ms)
		echo "==== e2e chaos: SIG$chaos_sig $i/$n at +$(fmt_ms $((t_kill - t0)))s ====" >>"$blog"
		kill "-$chaos_sig" "$backend_pid"
		while kill -0 "$backend_pid" 2>/dev/null && (($(now_ms) < t_kill + 15000)); do
			sleep 0.01
		done
		if kill -0 "$backend_pid" 2>/dev/null; then
			chaos_fails+=("backend still running 15 s after SIG$chaos_sig $i; killed it")
			kill -KILL "$backend_pid" 2>/dev/null || true
		fi
		st=0
		wait "$backend_pid" 2>/dev/null || st=$? # no "Killed" job notice
		backend_pid=''
		t_dead=$(now_ms)
		chaos_kills=$((chaos_kills + 1))
		want=137
		[[ $chaos_sig == TERM ]] && want=0
		((st == want)) || chaos_fails+=("after SIG$chaos_sig $i the backend exited with status $st, want $want")
		if ! start_backend; then
			chaos_fails+=("the backend did not come back after SIG$chaos_sig $i")
			return 0
		fi
		e2e_log "chaos: SIG$chaos_sig $i/$n at +$(fmt_ms $((t_kill - t0)))s: exited $st after $(fmt_ms $((t_dead - t_kill)))s, restarted (pid $backend_pid) in $(fmt_ms $(($(now_ms) - t_dead)))s"
	done
	return 0
}

# migrate_hook (called by e2e_run_qemu while QEMU runs): once the guest
# printed the marker, live-migrates it --migrate times. Each destination
# QEMU connects to the socket its source does not use, appends to the same
# console log and waits with -incoming; the source gets the HMP `migrate`,
# is polled until the migration completed, and quits. The destination
# becomes E2E_QEMU_PID, which e2e_run_qemu then waits for.
migrate_fails=()
migrations_done=0
# shellcheck disable=SC2317 # invoked through e2e_run_qemu --hook
migrate_hook() {
	migrate_all
	# Tell the guest (guest/migrate-verify.sh polls the disk's last 4 KiB).
	printf 'VBLK-E2E-MIGRATED' | dd of="$img" bs=4096 seek=$((img_bytes / 4096 - 1)) \
		conv=notrunc status=none
	return 0
}

migrate_all() {
	local i src_mon=$tmp/mon0.sock src_pid=$E2E_QEMU_PID dst_pid dst_sock dst_mon mig st t info
	if ! wait_marker; then
		migrate_fails+=("the guest never printed $chaos_marker")
		return 0
	fi
	for ((i = 1; i <= migrations; i++)); do
		sleep "$migrate_gap"
		dst_sock=$sock2
		((i % 2 == 0)) && dst_sock=$sock
		dst_mon=$tmp/mon$i.sock mig=$tmp/mig$i.sock
		e2e_qemu_cmd "${qargs[@]}" --socket "$dst_sock" --monitor "$dst_mon" \
			--incoming "unix:$mig" --log-append
		"${E2E_QEMU_CMD[@]}" </dev/null >"$tmp/console.log.qemu$i" 2>&1 &
		dst_pid=$!
		for ((t = 0; t < 300; t++)); do
			[[ -S $mig ]] && break
			kill -0 "$dst_pid" 2>/dev/null || break
			sleep 0.1
		done
		if [[ ! -S $mig ]]; then
			migrate_fails+=("destination QEMU $i never listened on $mig")
			sed 's/^/  qemu| /' "$tmp/console.log.qemu$i" >&2
			E2E_QEMU_PID=$src_pid
			kill "$dst_pid" 2>/dev/null || true
			return 0
		fi
		e2e_log "migrate $i/$migrations: destination listening"
		if ! kill -0 "$src_pid" 2>/dev/null; then
			migrate_fails+=("the guest finished before migration $i (lengthen its I/O phase)")
			kill "$dst_pid" 2>/dev/null || true
			return 0
		fi
		e2e_hmp "$src_mon" "migrate_set_parameter max-bandwidth 1G" >/dev/null
		e2e_hmp "$src_mon" "migrate_set_parameter downtime-limit 2000" >/dev/null
		e2e_log "migrate $i/$migrations: to $(basename "$dst_sock") (pid $dst_pid)"
		echo "==== e2e migrate $i/$migrations to $(basename "$dst_sock") ====" >>"$blog"
		e2e_hmp "$src_mon" "migrate -d unix:$mig"
		st='' t=$SECONDS
		while ((SECONDS - t < 120)); do
			info=$(e2e_hmp "$src_mon" "info migrate" 2>/dev/null || true)
			st=$(sed -n 's/^Migration status: //p' <<<"$info")
			[[ $st == completed || $st == failed || $st == cancelled ]] && break
			kill -0 "$src_pid" 2>/dev/null || break
			sleep 0.2
		done
		if [[ $st != completed ]]; then
			migrate_fails+=("migration $i: status '${st:-none}'")
			printf '%s\n' "$info" | sed 's/^/  migrate| /' >&2
			kill "$dst_pid" 2>/dev/null || true
			return 0
		fi
		e2e_log "migrate $i/$migrations: completed ($(grep -E '^(total time|downtime|transferred ram):' <<<"$info" | tr '\n' ' '))"
		e2e_hmp "$src_mon" quit >/dev/null 2>&1 || true
		wait "$src_pid" 2>/dev/null || true
		[[ -s $tmp/console.log.qemu$((i - 1)) ]] && sed 's/^/  qemu| /' "$tmp/console.log.qemu$((i - 1))" >&2
		src_pid=$dst_pid src_mon=$dst_mon
		E2E_QEMU_PID=$dst_pid
		migrations_done=$i
	done
	return 0
}

# control_hook (called by e2e_run_qemu while QEMU runs, --control): the
# guest (guest/hotplug-resize.sh) prints a marker at each step and waits
# for what the host does next: resize its disk; hot-plug a disk added at
# runtime; unplug it. Each vblkctl call is logged with its output.
control_fails=()
hot_sock=$tmp/hot.sock hot_img=$tmp/hot.img
ctl() {
	local out rc=0
	out=$("$vblkctl_bin" --control="$tmp/ctl.sock" "$@" 2>&1) || rc=$?
	e2e_log "vblkctl $*: $(tr '\n' ' ' <<<"$out")(exit $rc)"
	printf '%s' "$out"
	return "$rc"
}
# wait_console TEXT [SECONDS]: 1 if QEMU exited or time ran out first.
wait_console() {
	local end=$((SECONDS + ${2:-300}))
	until grep -aq -- "$1" "$tmp/console.log" 2>/dev/null; do
		kill -0 "$E2E_QEMU_PID" 2>/dev/null && ((SECONDS < end)) || return 1
		sleep 0.1
	done
}
# shellcheck disable=SC2317 # invoked through e2e_run_qemu --hook
control_hook() {
	local mon=$tmp/mon0.sock out i
	if ! wait_console VBLK-E2E-IO-STARTED; then
		control_fails+=("the guest never got ready")
		return 0
	fi
	out=$(ctl resize "$sock" "$resize_to") || control_fails+=("vblkctl resize failed")
	grep -q "the guest was told" <<<"$out" || control_fails+=("the guest was not told of the resize")
	if ! wait_console VBLK-E2E-RESIZED; then
		control_fails+=("the guest did not finish with the resized disk")
		return 0
	fi
	truncate -s 64M "$hot_img"
	ctl add "socket-path=$hot_sock,file=$hot_img,num-queues=2" >/dev/null ||
		control_fails+=("vblkctl add failed")
	e2e_hmp "$mon" "chardev-add socket,id=hot0,path=$hot_sock" >&2
	out=$(e2e_hmp "$mon" "device_add vhost-user-blk-pci,chardev=hot0,id=hotblk,bus=hotport,num-queues=2,queue-size=1024")
	[[ -z $out ]] || control_fails+=("device_add: $out")
	if ! wait_console VBLK-E2E-HOTPLUG-DONE; then
		control_fails+=("the guest did not finish with the hot-plugged disk")
		return 0
	fi
	ctl remove "$hot_sock" >/dev/null && control_fails+=("remove succeeded with the VM connected")
	e2e_hmp "$mon" "device_del hotblk" >&2
	# The chardev is free once the guest let the device go.
	for ((i = 0; i < 300; i++)); do
		out=$(e2e_hmp "$mon" "chardev-remove hot0")
		[[ -z $out ]] && break
		sleep 0.1
	done
	[[ -z $out ]] || control_fails+=("chardev-remove: $out")
	for ((i = 0; i < 100; i++)); do
		"$vblkctl_bin" --control="$tmp/ctl.sock" list "$hot_sock" | grep -q "^connected: *no" && break
		sleep 0.1
	done
	ctl remove "$hot_sock" >/dev/null || control_fails+=("remove failed after the unplug")
	[[ ! -e $hot_sock ]] || control_fails+=("the removed export's socket file remains")
	return 0
}

# qos_hook (--qos, guest/qos-resize.sh): once the guest measured its IOPS
# under the limit, lift it, grow the image behind vblkd's back and have
# vblkctl pick the size up (resize without a size).
# shellcheck disable=SC2317 # invoked through e2e_run_qemu --hook
qos_hook() {
	local out
	if ! wait_console VBLK-E2E-QOS-DONE 600; then
		control_fails+=("the guest never finished its QoS measurement")
		return 0
	fi
	ctl qos "$sock" >/dev/null
	ctl qos "$sock" iops=0 >/dev/null || control_fails+=("vblkctl qos iops=0 failed")
	truncate -s "$resize_to" "$img" || control_fails+=("truncate failed")
	out=$(ctl resize "$sock") || control_fails+=("vblkctl resize (no size) failed")
	grep -q "the guest was told" <<<"$out" || control_fails+=("the guest was not told of the resize")
	return 0
}

e2e_log "backend: ${bcmd[*]@Q}"
: >"$blog"
if ! start_backend; then
	e2e_log "FAIL [$label]: backend did not create $sock"
	sed 's/^/  backend| /' "$blog" >&2
	exit 1
fi

qargs=(--socket "$sock" --initrd "$tmp/initrd.gz" --log "$tmp/console.log" --queues "$queues")
((packed)) && qargs+=(--packed)
((viommu)) && qargs+=(--viommu)
((iommu_platform)) && qargs+=(--iommu-platform)
[[ -n $append ]] && qargs+=(--append "$append")
((reconnect)) && qargs+=(--reconnect)
boot=$SECONDS
grc=0
if ((migrations)); then
	e2e_run_qemu "${qargs[@]}" --monitor "$tmp/mon0.sock" --hook migrate_hook || grc=$?
else
	hook=()
	[[ -n $chaos_sig ]] && hook=(--hook chaos_hook)
	((control)) && hook=(--hook control_hook --monitor "$tmp/mon0.sock"
		--qemu-arg -device --qemu-arg pcie-root-port,id=hotport,chassis=1,slot=1)
	((qos)) && hook=(--hook qos_hook)
	e2e_run_qemu "${qargs[@]}" "${hook[@]}" || grc=$?
fi
boot=$((SECONDS - boot))

fails=()
((grc == 0)) || fails+=("guest test exited $grc")
if [[ -n $chaos_sig ]]; then
	fails+=("${chaos_fails[@]}")
	e2e_log "chaos: $chaos_kills of ${#chaos_ms[@]} SIG$chaos_sig kills done (seed $chaos_seed)"
fi
((control)) && fails+=("${control_fails[@]}")
if ((migrations)); then
	fails+=("${migrate_fails[@]}")
	((migrations_done == migrations)) || fails+=("$migrations_done of $migrations migrations done")
	e2e_log "migrate: $migrations_done of $migrations migrations done"
fi
if [[ -z $backend_pid ]]; then
	: # lost during the chaos; already reported
elif ! kill -0 "$backend_pid" 2>/dev/null; then
	brc=0
	wait "$backend_pid" || brc=$?
	fails+=("backend died during the test (status $brc)")
else
	brc=0
	stop_pid "$backend_pid" || brc=$?
	# 143: killed by the SIGTERM we sent (no handler) is a clean stop too.
	((brc == 0 || brc == 143)) || fails+=("backend stopped with status $brc (want 0, or death by our SIGTERM)")
fi
backend_pid=''
# How many requests each restart found in flight (vblkd logs the replay).
if ((chaos_kills)); then
	awk '/==== e2e chaos:/ { k++ }
		/resubmitting [0-9]+ requests/ {
			for (i = 1; i < NF; i++) if ($i == "resubmitting") n[k] += $(i + 1)
		}
		END { for (i = 1; i <= k; i++)
			printf "e2e: chaos: kill %d: %d requests in flight replayed after restart\n", i, n[i] }' \
		"$blog" >&2
fi
if [[ -s $blog ]]; then
	e2e_log "backend output:"
	sed 's/^/  backend| /' "$blog" >&2
fi

if ((${#fails[@]})); then
	e2e_log "FAIL [$label]: $(printf '%s; ' "${fails[@]}")(prepare ${prep}s, guest ${boot}s)"
	exit 1
fi
e2e_log "PASS [$label] (prepare ${prep}s, guest ${boot}s)"
exit 0
