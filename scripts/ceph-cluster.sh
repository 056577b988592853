#!/bin/bash
# SPDX-License-Identifier: MIT
#
# A throwaway single-node Ceph cluster on loopback for the rbd engine's tests
# and benchmark: one monitor, one memstore OSD, no manager, no authentication,
# no systemd, nothing in /etc/ceph. Everything (config, data, logs, pid files)
# lives in DIR.
#
#   ceph-cluster.sh start DIR    set up and start; prints the ceph.conf path
#                                (pool "rbd" exists and is initialised)
#   ceph-cluster.sh stop DIR     stop every daemon by its pid file
#   ceph-cluster.sh status DIR   exit 0 if the cluster answers
#   ceph-cluster.sh osd-stop DIR [SIGNAL]  stop the OSD (default TERM; STOP
#                                freezes it, CONT thaws it)
#   ceph-cluster.sh osd-start DIR          start the OSD again, wait until up
#
# The monitor port is picked at random in 30000-59999 (CEPH_PORT overrides) and
# the OSD binds in the 20 ports above it. The memstore OSD keeps its objects in
# memory and saves them only when it stops cleanly (SIGTERM): a SIGKILLed OSD
# comes back empty.
set -euo pipefail

die() { echo "ceph-cluster: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: $0 start|stop|status|osd-stop|osd-start DIR"
cmd=$1
dir=$(realpath -m "$2")
conf=$dir/ceph.conf
# Every ceph/rbd command: bounded, so a dead cluster fails instead of hanging.
ceph_cmd() { timeout 60 ceph -c "$conf" --connect-timeout 20 "$@"; }

port_free() {
	local hex
	hex=$(printf ':%04X ' "$1")
	! grep -q "$hex" /proc/net/tcp 2>/dev/null
}

pid_of() { [[ -s $dir/run/$1.pid ]] && cat "$dir/run/$1.pid"; }

alive() {
	local pid
	pid=$(pid_of "$1") || return 1
	kill -0 "$pid" 2>/dev/null
}

stop_daemon() {
	local name=$1 sig=${2:-TERM} pid
	pid=$(pid_of "$name") || return 0
	kill -"$sig" "$pid" 2>/dev/null || return 0
	[[ $sig == TERM || $sig == KILL ]] || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$dir/run/$name.pid"; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$dir/run/$name.pid"
}

wait_osd_up() {
	for _ in $(seq 120); do
		if ceph_cmd osd dump 2>/dev/null | grep -q '^osd.0 up'; then
			return 0
		fi
		sleep 0.5
	done
	die "osd.0 did not come up (logs in $dir/log)"
}

start_osd() {
	ceph-osd -c "$conf" -i 0 2>>"$dir/log/osd.0.stderr" || die "ceph-osd did not start (see $dir/log/osd.0.log)"
	wait_osd_up
}

start() {
	local port fsid uuid
	[[ -e $conf ]] && die "$dir already holds a cluster (stop it and remove $dir)"
	mkdir -p "$dir"/{run,log,mon,osd}
	port=${CEPH_PORT:-}
	for _ in $(seq 50); do
		[[ -n $port ]] && break
		port=$((30000 + RANDOM % 30000))
		port_free "$port" || port=
	done
	[[ -n $port ]] || die "no free port"
	fsid=$(cat /proc/sys/kernel/random/uuid)
	cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
ms bind port min = $((port + 1))
ms bind port max = $((port + 20))
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
keyring = $dir/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
paxos propose interval = 0.1
mon data = $dir/mon/\$name
osd data = $dir/osd/\$name
osd objectstore = memstore
# memstore saves its objects only in a full shutdown: SIGTERM must do one
osd fast shutdown = false
memstore device bytes = 2147483648
osd op num shards = 1
osd op num threads per shard = 2
# a test cluster on a shared 2-CPU machine: no scrubs, small caches
osd scrub during recovery = false
osd max scrubs = 0
osd memory target = 536870912
mon osd full ratio = 0.97
EOF
	: >"$dir/keyring"
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$dir/monmap" >/dev/null
	ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" ||
		die "ceph-mon --mkfs failed (see $dir/log/mon.a.log)"
	ceph-mon -c "$conf" -i a || die "ceph-mon did not start (see $dir/log/mon.a.log)"
	uuid=$(cat /proc/sys/kernel/random/uuid)
	ceph_cmd osd new "$uuid" 0 >/dev/null || die "ceph osd new failed: monitor not answering"
	mkdir -p "$dir/osd/osd.0"
	ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" >/dev/null 2>&1 ||
		die "ceph-osd --mkfs failed (see $dir/log/osd.0.log)"
	start_osd
	ceph_cmd osd pool create rbd 8 >/dev/null 2>&1 || die "cannot create pool rbd"
	timeout 60 rbd -c "$conf" pool init rbd || die "rbd pool init failed"
	echo "$conf"
}

stop() {
	[[ -d $dir/run ]] || return 0
	stop_daemon osd.0
	stop_daemon mon.a
}

case $cmd in
start) start ;;
stop) stop ;;
status) alive mon.a && alive osd.0 && ceph_cmd -s >/dev/null ;;
osd-stop) stop_daemon osd.0 "${3:-TERM}" ;;
osd-start) alive osd.0 && die "osd.0 is running"; start_osd ;;
*) die "unknown command $cmd" ;;
esac
