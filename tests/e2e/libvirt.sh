#!/bin/bash
# SPDX-License-Identifier: MIT
#
# libvirt end to end (meson test vblkd-libvirt, suite e2e; skipped without
# root or libvirt): vblkd
# serves an image, libvirtd (started here by hand, without systemd) defines
# and starts a TCG guest through virsh with the domain XML of
# docs/operations.md (<disk type='vhostuser'> with reconnect, memfd shared
# memory), and the shared e2e kernel/initramfs runs a guest script that
# checks the disk and writes + verifies it with fio.
#
#   tests/e2e/libvirt.sh VBLKD        (as root; needs libvirt-daemon-system,
#                                      libvirt-clients, QEMU, and the e2e tools)
#
# libvirt passes no num-queues unless <driver queues='N'/> says so, and
# QEMU then asks for one queue per vCPU: vblkd refuses more queues than
# its --num-queues (seen here first: "The maximum number of queues
# supported by the backend is 1"), so the XML names them.
#
# It starts its own libvirtd only if none runs (and stops it at the end);
# it leaves /etc/libvirt alone: QEMU runs as libvirt's default user, so the
# socket, image, kernel and initramfs are made readable by it here.
set -euo pipefail
VBLKD=$(realpath "${1:?usage: libvirt.sh PATH-TO-VBLKD}")
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
skip() { e2e_log "SKIP: $*"; exit 77; }
[[ $(id -u) == 0 ]] || skip "not root (libvirtd's system instance)"
if ! command -v virsh >/dev/null || ! command -v libvirtd >/dev/null; then
	skip "no libvirt (libvirt-daemon-system, libvirt-clients: scripts/install-deps.sh)"
fi
e2e_have_qemu || skip "QEMU cannot run here"

dom=vblk-e2e-$$
tmp=$(mktemp -d /var/tmp/vblk-libvirt.XXXXXX)
chmod 0755 "$tmp"
vpid='' lpid='' vlpid=''
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
	virsh -q destroy "$dom" >/dev/null 2>&1 || true
	virsh -q undefine "$dom" >/dev/null 2>&1 || true
	[[ -n $vpid ]] && kill "$vpid" 2>/dev/null && wait "$vpid" 2>/dev/null
	[[ -n $lpid ]] && kill "$lpid" 2>/dev/null
	[[ -n $vlpid ]] && kill "$vlpid" 2>/dev/null
	[[ ${KEEP:-0} == 1 ]] || rm -rf "$tmp"
}
trap cleanup EXIT

e2e_prepare
mkdir -p "$tmp/guest"
cat >"$tmp/guest/test.sh" <<'GUEST'
. /e2e-common.sh
wait_for_disk
check "capacity (sectors)" "$(cat /sys/block/vda/size)" 262144
if fio --name=lv --filename=/dev/vda --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randwrite --bs=4k --size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--eta=never >/tmp/fio.log 2>&1; then ok "fio write+verify through libvirt's QEMU"
else fail "fio"; tail -n 20 /tmp/fio.log; fi
finish
GUEST
cp "$E2E_LIB_DIR/guest/common.sh" "$tmp/guest/e2e-common.sh"
: >"$tmp/guest/test.env"
e2e_make_initrd "$tmp/initrd.gz" "$tmp/guest"
cp "$E2E_KDIR/vmlinuz" "$tmp/vmlinuz"
chmod 0644 "$tmp/initrd.gz" "$tmp/vmlinuz"
truncate -s 128M "$tmp/disk.img"

"$VBLKD" --socket-path="$tmp/vblk.sock" --file="$tmp/disk.img" --num-queues=2 --sandbox=on \
	2>"$tmp/vblkd.log" &
vpid=$!
for _ in $(seq 200); do [[ -S $tmp/vblk.sock ]] && break; sleep 0.05; done
[[ -S $tmp/vblk.sock ]] || e2e_die "vblkd did not start: $(cat "$tmp/vblkd.log")"
chmod 0666 "$tmp/vblk.sock"   # QEMU runs as libvirt's user

if ! virsh -q version >/dev/null 2>&1; then
	# libvirtd hands QEMU's stdio to virtlogd: start it too.
	if [[ ! -S /run/libvirt/virtlogd-sock ]]; then
		virtlogd >"$tmp/virtlogd.log" 2>&1 &
		vlpid=$!
	fi
	e2e_log "starting libvirtd"
	libvirtd >"$tmp/libvirtd.log" 2>&1 &
	lpid=$!
	for _ in $(seq 300); do virsh -q version >/dev/null 2>&1 && break; sleep 0.1; done
	virsh -q version >/dev/null 2>&1 || e2e_die "libvirtd did not answer: $(tail -5 "$tmp/libvirtd.log")"
fi

cat >"$tmp/dom.xml" <<XML
<domain type='qemu'>
  <name>$dom</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>2</vcpu>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$tmp/vmlinuz</kernel>
    <initrd>$tmp/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 no_timer_check</cmdline>
  </os>
  <cpu mode='custom' match='exact'><model>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v "$E2E_QEMU")</emulator>
    <disk type='vhostuser' device='disk'>
      <driver name='qemu' type='raw' queues='2'/>
      <source type='unix' path='$tmp/vblk.sock'>
        <reconnect enabled='yes' timeout='10'/>
      </source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='$tmp/console.log'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
XML
virsh -q define "$tmp/dom.xml" >/dev/null
virsh -q start "$dom"
e2e_log "domain $dom started through libvirt; waiting for the guest"
end=$((SECONDS + E2E_TIMEOUT))
while ((SECONDS < end)) && ! grep -aq "^$E2E_MARKER=" "$tmp/console.log" 2>/dev/null; do
	virsh -q domstate "$dom" 2>/dev/null | grep -q running || break
	sleep 1
done
sleep 1
tr -d '\r' <"$tmp/console.log" | grep -aE '^(ok|FAIL|guest):' | sed 's/^/  guest| /' >&2 || true
rc=0
e2e_guest_result "$tmp/console.log" || rc=$?
if ((rc == 0)); then e2e_log "PASS: libvirt started the guest on vblkd's socket; it used the disk"
else e2e_log "FAIL (guest result $rc)"; fi
exit "$rc"
