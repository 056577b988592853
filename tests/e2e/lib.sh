# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# End-to-end test library: fetches a Debian cloud kernel, builds a cached
# busybox + fio initramfs, appends a per-test script and boots it under QEMU
# (TCG) against a vhost-user-blk socket. Knows nothing about which backend
# serves the socket. Source it from bash; functions are prefixed e2e_.
# See GUEST-VM.md (shared recipe) and tests/e2e/README.md.

# shellcheck disable=SC2034 # used by the scripts that source this file
E2E_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_CACHE=${E2E_CACHE:-${XDG_CACHE_HOME:-/var/tmp}/vblk-e2e}
E2E_QEMU=${E2E_QEMU:-qemu-system-x86_64}
E2E_TIMEOUT=${E2E_TIMEOUT:-600}
E2E_MEM=${E2E_MEM:-1G}
E2E_SMP=${E2E_SMP:-2}
# The system's python3 starts in 0.1 s; wrappers (pyenv) can take 2 s a call.
E2E_PYTHON=${E2E_PYTHON:-$(command -v /usr/bin/python3 || command -v python3 || echo python3)}
E2E_MARKER=VBLK-E2E-RESULT
E2E_BEGIN=VBLK-E2E-BEGIN

# Load order matters: the cloud kernel builds these as modules and the
# initramfs carries no modules.dep.
E2E_MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk)

e2e_log() { printf "e2e: %s %s\n" "$(date +%T)" "$*" >&2; }
e2e_die() { printf 'e2e: FATAL: %s\n' "$*" >&2; exit 1; }

# e2e_sudo CMD...: run as root (directly, or through sudo when available).
e2e_sudo() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		return 1
	fi
}

# e2e_have_qemu: 0 when QEMU, the storage daemon's peer and the initramfs
# tools are usable; prints what is missing otherwise.
e2e_have_qemu() {
	local t missing=()
	for t in "$E2E_QEMU" fio busybox cpio gzip timeout; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	if ((${#missing[@]})); then
		e2e_log "missing tools: ${missing[*]} (run scripts/install-deps.sh)"
		return 1
	fi
	"$E2E_QEMU" -version >/dev/null 2>&1 || { e2e_log "$E2E_QEMU does not run"; return 1; }
}

# e2e_kernel_pkg: the real package behind linux-image-cloud-amd64.
e2e_kernel_pkg() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# e2e_fetch_kernel: sets E2E_KVER, E2E_KDIR (cache dir holding vmlinuz and
# modules/*.ko). Downloads and unpacks once; no package is installed.
e2e_fetch_kernel() {
	local pkg kdir tmp deb m ko root
	mkdir -p "$E2E_CACHE"
	pkg=$(e2e_kernel_pkg || true)
	if [[ -z $pkg ]] && ! compgen -G "$E2E_CACHE/kernel-*/.complete" >/dev/null; then
		e2e_log "no apt metadata for linux-image-cloud-amd64; running apt-get update"
		e2e_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
		pkg=$(e2e_kernel_pkg || true)
	fi
	if [[ -z $pkg ]]; then
		# No apt metadata (or no apt): use the newest kernel already cached.
		kdir=$(find "$E2E_CACHE" -maxdepth 2 -path '*/kernel-*/.complete' -printf '%h\n' | sort -V | tail -n 1)
		[[ -n $kdir && -f $kdir/vmlinuz ]] ||
			e2e_die "cannot resolve linux-image-cloud-amd64 (apt-get update?) and no cached kernel"
	else
		kdir=$E2E_CACHE/kernel-${pkg#linux-image-}
	fi
	if [[ ! -f $kdir/.complete ]]; then
		e2e_log "fetching guest kernel $pkg"
		tmp=$(mktemp -d "$E2E_CACHE/.kernel.XXXXXX")
		# apt drops privileges to _apt for downloads; let it write here.
		chmod 0777 "$tmp"
		if ! (cd "$tmp" && apt-get download "$pkg" >"$tmp/apt.log" 2>&1); then
			e2e_log "apt-get download failed, refreshing package lists"
			e2e_sudo apt-get update -qq >/dev/null 2>&1 || true
			(cd "$tmp" && apt-get download "$pkg" >"$tmp/apt.log" 2>&1) || {
				cat "$tmp/apt.log" >&2
				rm -rf "$tmp"
				e2e_die "apt-get download $pkg failed"
			}
		fi
		deb=$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n 1)
		root=$tmp/root
		dpkg-deb -x "$deb" "$root"
		mkdir -p "$tmp/out/modules"
		cp "$root"/boot/vmlinuz-* "$tmp/out/vmlinuz"
		cp "$root"/boot/config-* "$tmp/out/config"
		for m in "${E2E_MODULES[@]}"; do
			ko=$(find "$root/lib/modules" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \
				-o -name "$m.ko.gz" | head -n 1)
			if [[ -z $ko ]]; then
				grep -q "/$m.ko\$" "$root"/lib/modules/*/modules.builtin ||
					e2e_die "module $m neither built in nor found in $pkg"
				continue # built in: nothing to load
			fi
			# busybox insmod may not read compressed modules.
			case $ko in
			*.xz) xz -dc "$ko" >"$tmp/out/modules/$m.ko" ;;
			*.zst) zstd -qdc "$ko" >"$tmp/out/modules/$m.ko" ;;
			*.gz) gzip -dc "$ko" >"$tmp/out/modules/$m.ko" ;;
			*) cp "$ko" "$tmp/out/modules/$m.ko" ;;
			esac
		done
		basename "$(dirname "$(find "$root/lib/modules" -maxdepth 2 -name modules.builtin | head -n 1)")" \
			>"$tmp/out/kver"
		touch "$tmp/out/.complete"
		rm -rf "$kdir"
		mv "$tmp/out" "$kdir"
		rm -rf "$tmp"
	fi
	E2E_KDIR=$kdir
	E2E_KVER=$(cat "$kdir/kver")
}

# e2e_copy_with_libs ROOT BIN DEST: copy BIN to ROOT/DEST plus every
# library ldd lists, each at the path ldd prints.
e2e_copy_with_libs() {
	local root=$1 bin=$2 dest=$3 lib
	mkdir -p "$root/$(dirname "$dest")"
	cp -L "$bin" "$root/$dest"
	while read -r lib; do
		[[ -e $root$lib ]] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# The /init of the base initramfs (busybox sh).
e2e_write_init() {
	cat >"$1" <<-'EOF'
	#!/bin/sh
	export PATH=/bin:/sbin:/usr/bin:/usr/sbin
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	mount -t tmpfs tmpfs /tmp
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	for m in $(cat /etc/e2e-modules); do
		[ -d /sys/module/$m ] && continue
		[ -f /lib/modules/e2e/$m.ko ] || continue
		insmod /lib/modules/e2e/$m.ko || echo "e2e-init: insmod $m failed"
	done
	echo "VBLK-E2E-BEGIN"
	if [ -f /test.sh ]; then
		sh /test.sh
		rc=$?
	else
		echo "e2e-init: no /test.sh"
		rc=2
	fi
	sync
	echo "VBLK-E2E-RESULT=$rc"
	poweroff -f
	EOF
	chmod 0755 "$1"
}

# e2e_builder_hash: changes whenever the base image would.
e2e_builder_hash() {
	{
		declare -f e2e_copy_with_libs e2e_write_init e2e_build_base_initrd
		printf '%s\n' "${E2E_MODULES[@]}"
		sha256sum "$(command -v fio)" "$(command -v busybox)" "$(e2e_blkdiscard)"
	} | sha256sum | cut -c1-12
}

# util-linux blkdiscard (for -z, write zeroes); busybox's lacks it.
e2e_blkdiscard() {
	local p
	for p in /usr/sbin/blkdiscard /sbin/blkdiscard; do
		[[ -x $p ]] && { echo "$p"; return; }
	done
	echo /dev/null
}

# e2e_build_base_initrd: sets E2E_BASE_INITRD (cached gzip'd cpio).
e2e_build_base_initrd() {
	local out root a bb bd tmp
	out=$E2E_CACHE/initrd-$E2E_KVER-$(e2e_builder_hash).cpio.gz
	if [[ ! -f $out ]]; then
		e2e_log "building base initramfs $out"
		tmp=$(mktemp -d "$E2E_CACHE/.initrd.XXXXXX")
		root=$tmp/root
		mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,lib/modules/e2e}
		bb=$(command -v busybox)
		cp -L "$bb" "$root/bin/busybox"
		while read -r a; do
			# A symlink named busybox would replace the binary by a loop.
			[[ -z $a || $a == busybox || -e $root/bin/$a ]] && continue
			ln -s busybox "$root/bin/$a"
		done < <("$bb" --list)
		e2e_copy_with_libs "$root" "$(command -v fio)" /usr/bin/fio
		bd=$(e2e_blkdiscard)
		[[ $bd != /dev/null ]] && e2e_copy_with_libs "$root" "$bd" /usr/sbin/blkdiscard
		cp "$E2E_KDIR"/modules/*.ko "$root/lib/modules/e2e/" 2>/dev/null || true
		printf '%s\n' "${E2E_MODULES[@]}" >"$root/etc/e2e-modules"
		e2e_write_init "$root/init"
		(cd "$root" && find . -print0 | LC_ALL=C sort -z |
			cpio --null -o -H newc --quiet | gzip -6) >"$tmp/initrd.cpio.gz"
		mv "$tmp/initrd.cpio.gz" "$out"
		rm -rf "$tmp"
		# Older builds (other kernels or builders) are dead weight.
		find "$E2E_CACHE" -maxdepth 1 -name 'initrd-*.cpio.gz' ! -path "$out" -delete
	fi
	E2E_BASE_INITRD=$out
}

# e2e_prepare: kernel + base initramfs, both cached.
e2e_prepare() {
	mkdir -p "$E2E_CACHE"
	exec {E2E_LOCK_FD}>"$E2E_CACHE/.lock"
	flock "$E2E_LOCK_FD"
	e2e_fetch_kernel
	e2e_build_base_initrd
	flock -u "$E2E_LOCK_FD"
}

# e2e_make_initrd OUT DIR: OUT = base initramfs + a gzip'd cpio of DIR
# (which holds /test.sh and anything it needs). The kernel unpacks both.
e2e_make_initrd() {
	local out=$1 dir=$2
	cp "$E2E_BASE_INITRD" "$out"
	(cd "$dir" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --quiet | gzip -6) >>"$out"
}

# e2e_qemu_cmd --socket PATH --initrd FILE --log FILE [--queues N] [--packed]
#              [--append ARGS] [--device-opts OPTS] [--reconnect]
#              [--monitor PATH] [--incoming URI] [--log-append] [--qemu-arg ARG]
#              [--viommu] [--iommu-platform]
# Sets E2E_QEMU_CMD, the guest's QEMU command line (under `timeout`).
# --viommu: a virtual Intel IOMMU (q35 with a split irqchip, interrupt
# remapping, device IOTLB), created before the disk it translates for;
# --iommu-platform: the disk with iommu_platform=on (and ats=on with
# --viommu): the device then sees I/O virtual addresses.
# --qemu-arg: one more QEMU argument (repeatable), e.g. a PCIe root port
# for a disk hot-plugged later.
# --monitor: an HMP monitor on a unix socket (e2e_hmp talks to it);
# --incoming: wait for a migration stream (-incoming URI); --log-append:
# the console continues the log (a migrated guest's second half).
e2e_qemu_cmd() {
	local sock='' initrd='' log='' queues=1 dev_extra='' append='' chr_extra='' mon=none
	local con_extra='' extra=() machine=q35 viommu=() iommu_platform=0
	while (($#)); do
		case $1 in
		--socket) sock=$2; shift 2 ;;
		--initrd) initrd=$2; shift 2 ;;
		--log) log=$2; shift 2 ;;
		--queues) queues=$2; shift 2 ;;
		--packed) dev_extra+=",packed=on"; shift ;;
		--device-opts) dev_extra+=",$2"; shift 2 ;;
		--append) append=" $2"; shift 2 ;;
		# Backend restarts: rings of 256 (QEMU's default is 128), so a kill
		# can find more requests in flight.
		--reconnect) chr_extra+=",reconnect=1"; dev_extra+=",queue-size=256"; shift ;;
		--monitor) mon="unix:$2,server=on,wait=off"; shift 2 ;;
		--incoming) extra+=(-incoming "$2"); shift 2 ;;
		--log-append) con_extra=",append=on"; shift ;;
		--qemu-arg) extra+=("$2"); shift 2 ;;
		--viommu)
			machine=q35,kernel-irqchip=split
			viommu=(-device intel-iommu,intremap=on,device-iotlb=on)
			shift ;;
		--iommu-platform) iommu_platform=1; shift ;;
		*) e2e_die "e2e_qemu_cmd: unknown option $1" ;;
		esac
	done
	[[ -n $sock && -n $initrd && -n $log ]] || e2e_die "e2e_qemu_cmd: --socket, --initrd, --log required"
	if ((iommu_platform)); then
		# A legacy (transitional) virtio device cannot have it.
		dev_extra+=",iommu_platform=on,disable-legacy=on"
		((${#viommu[@]})) && dev_extra+=",ats=on"
	fi
	# no_timer_check: under TCG on a loaded host the guest's early timer
	# interrupt can come too late for Linux's IO-APIC check, which then
	# panics ("IO-APIC + timer doesn't work!") before init runs: the
	# guest test never starts (seen twice as vblkd-sigterm failures,
	# "never printed VBLK-E2E-IO-STARTED"). The check is for broken
	# hardware timers; QEMU's are fine, and virt guests routinely skip it.
	# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
	E2E_QEMU_CMD=(
		timeout --kill-after=10 "$E2E_TIMEOUT"
		"$E2E_QEMU" -nodefaults -no-user-config
		-accel tcg,thread=multi -cpu max -machine "$machine" -m "$E2E_MEM" -smp "$E2E_SMP"
		-display none -no-reboot -monitor "$mon"
		-chardev "file,id=con0,path=$log$con_extra" -serial chardev:con0
		-object "memory-backend-memfd,id=mem,size=$E2E_MEM,share=on" -numa node,memdev=mem
		-kernel "$E2E_KDIR/vmlinuz" -initrd "$initrd"
		-append "console=ttyS0 quiet panic=-1 no_timer_check$append"
		"${viommu[@]}"
		-chardev "socket,id=c0,path=$sock$chr_extra"
		-device "vhost-user-blk-pci,chardev=c0,num-queues=$queues$dev_extra"
		"${extra[@]}"
	)
}

# e2e_hmp SOCKET COMMAND: one human monitor command; prints its output.
e2e_hmp() {
	"$E2E_PYTHON" - "$1" "$2" <<-'PY'
	import socket, sys
	s = socket.socket(socket.AF_UNIX)
	s.settimeout(30)
	s.connect(sys.argv[1])
	def until_prompt():
	    buf = b""
	    while not buf.endswith(b"(qemu) "):
	        d = s.recv(4096)
	        if not d:
	            break
	        buf += d
	    return buf.decode(errors="replace")
	until_prompt()
	s.sendall(sys.argv[2].encode() + b"\n")
	out = until_prompt()
	# Drop the echoed command line and the prompt; strip terminal escapes.
	import re
	out = re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\r", "", out)
	lines = out.split("\n")[1:]
	print("\n".join(l for l in lines if l != "(qemu) ").strip())
	PY
}

# e2e_guest_result LOG: the guest script's exit code from the marker line in
# console LOG; prints the console tail and returns 1 without a marker.
e2e_guest_result() {
	local log=$1 line
	line=$(tr -d '\r' <"$log" | grep -a "^$E2E_MARKER=" | tail -n 1 || true)
	if [[ -z $line ]]; then
		e2e_log "no $E2E_MARKER marker; console tail:"
		tr -d '\r' <"$log" | tail -n 40 | sed 's/^/  console| /' >&2
		return 1
	fi
	return "${line#"$E2E_MARKER="}"
}

# e2e_run_qemu --socket PATH --initrd FILE --log FILE [--queues N] [--packed]
#              [--append ARGS] [--device-opts OPTS] [--reconnect] [--hook FUNC]
# Boots the guest, returns the guest script's exit code from the marker
# line; without a marker prints the console tail and returns 1.
# --reconnect: QEMU reconnects to the socket (1 s retry) when the backend goes
# away. --hook FUNC: called in this shell once QEMU runs (E2E_QEMU_PID set),
# before waiting for it; it must return when QEMU exits (e.g. the host-side
# chaos of run-guest-test.sh --chaos).
e2e_run_qemu() {
	local hook='' log='' rc args=()
	while (($#)); do
		case $1 in
		--hook) hook=$2; shift 2 ;;
		--log) log=$2; args+=("$1" "$2"); shift 2 ;;
		*) args+=("$1"); shift ;;
		esac
	done
	e2e_qemu_cmd "${args[@]}"
	e2e_log "boot: ${E2E_QEMU_CMD[*]@Q}"
	rc=0
	# In the background so a caller's signal trap can stop it (E2E_QEMU_PID).
	"${E2E_QEMU_CMD[@]}" </dev/null >"$log.qemu" 2>&1 &
	E2E_QEMU_PID=$!
	if [[ -n $hook ]]; then "$hook" || true; fi
	wait "$E2E_QEMU_PID" || rc=$?
	E2E_QEMU_PID=''
	if [[ -s $log.qemu ]]; then
		e2e_log "qemu output:"
		sed 's/^/  qemu| /' "$log.qemu" >&2
	fi
	# The guest script's part of the console, for the test log.
	sed -n "/^$E2E_BEGIN/,\$p" "$log" | tr -d '\r' | sed 's/^/  guest| /'
	if ! tr -d '\r' <"$log" | grep -aq "^$E2E_MARKER="; then
		if ((rc == 124 || rc == 137)); then
			e2e_log "guest timed out after ${E2E_TIMEOUT}s"
		else
			e2e_log "qemu exited with $rc"
		fi
	fi
	e2e_guest_result "$log"
}
