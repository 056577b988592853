#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""vblkd under systemd's protocols, without systemd as PID 1: the test makes
the listening socket and the NOTIFY_SOCKET datagram socket itself and starts
vblkd the way systemd does (fd 3, LISTEN_FDS, LISTEN_PID set to the child's
own pid by exec'ing through sh). Checks READY=1 / STATUS / STOPPING=1 in
order, that a frontend (vblkperf, libvblk) is served on the inherited socket
(not a new one on the same path), that a socket without a path goes to an
export given none, and that bad variables are refused. Prints TAP.

usage: test_systemd.py VBLKD VBLKPERF
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

VBLKD, VBLKPERF = sys.argv[1], sys.argv[2]
n = 0
failed = 0


def check(cond, desc):
    global n, failed
    n += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (n, desc), flush=True)
    if not cond:
        failed += 1


def start(tmp, args, env_extra, listen):
    """vblkd with @listen (a socket) as fd 3, LISTEN_PID = its own pid."""
    env = dict(os.environ)
    env.update(env_extra)
    if listen is not None and listen.fileno() != 3:
        os.dup2(listen.fileno(), 3)
    log = open(os.path.join(tmp, "vblkd.log"), "ab")
    return subprocess.Popen(
        ["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", VBLKD] + args,
        env=env, pass_fds=(3,) if listen is not None else (), stdout=log, stderr=log)


def recv_all(ns, until, timeout):
    """Datagrams until one contains @until (or the timeout)."""
    msgs = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ns.settimeout(max(0.05, end - time.monotonic()))
        try:
            m = ns.recv(4096).decode()
        except socket.timeout:
            break
        msgs.append(m)
        if until in m:
            break
    return msgs


def perf(path, tmp):
    out = os.path.join(tmp, "perf.json")
    r = subprocess.run([VBLKPERF, "--path", path, "--runtime", "1", "--mode", "event",
                        "--qd", "4", "--rw", "randrw", "--json", out],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    if r.returncode:
        return 0
    j = json.load(open(out))
    return j["iops"] if j["errors"] == 0 else 0


def activated(tmp, path_arg, bind_path, label):
    """One socket-activated run; returns nothing, reports checks."""
    sock_path = os.path.join(tmp, "a.sock")
    notify = os.path.join(tmp, "notify-%s" % label)
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if bind_path:
        ls.bind(sock_path)
    else:
        ls.bind("\0vblk-test-%d-%s" % (os.getpid(), label))   # abstract: no path
    ls.listen(16)
    ino = os.stat(sock_path).st_ino if bind_path else None
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify)
    args = (["--socket-path=" + sock_path] if path_arg else []) + ["--null=64M"]
    p = start(tmp, args, {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "vblk",
                          "NOTIFY_SOCKET": notify}, ls)
    msgs = recv_all(ns, "READY=1", 120)
    check(any("READY=1" in m for m in msgs), "%s: READY=1 arrives (%r)" % (label, msgs))
    check(any("STATUS=serving 1 export" in m for m in msgs), "%s: with a STATUS line" % label)
    if bind_path:
        iops = perf(sock_path, tmp)
        check(iops > 0, "%s: a frontend does I/O on the inherited socket (%.0f IOPS)" %
              (label, iops))
        check(os.stat(sock_path).st_ino == ino,
              "%s: the socket file is systemd's, not re-made by vblkd" % label)
    else:
        # Connect by the abstract name the test bound.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            c.connect("\0vblk-test-%d-%s" % (os.getpid(), label))
            c.sendall(b"\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00")  # GET_FEATURES
            c.settimeout(60)
            hdr = c.recv(12)
            got = len(hdr) == 12 and hdr[0] == 1
        except OSError:
            got = False
        c.close()
        check(got, "%s: the export with no socket-path answers on the passed socket" % label)
    p.send_signal(signal.SIGTERM)
    msgs2 = recv_all(ns, "STOPPING=1", 120)
    rc = p.wait(timeout=120)
    check(any("STOPPING=1" in m for m in msgs2), "%s: STOPPING=1 after SIGTERM, after READY (%r)" %
          (label, msgs2))
    check(rc == 0, "%s: vblkd exits 0 (%d)" % (label, rc))
    if bind_path:
        check(os.path.exists(sock_path), "%s: the socket file is left to systemd" % label)
        os.unlink(sock_path)
    ns.close()
    ls.close()
    os.close(3) if ls.fileno() != 3 and os.path.exists("/proc/self/fd/3") else None


def refused(tmp, env_extra, desc):
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(os.path.join(tmp, "r.sock"))
    ls.listen(1)
    p = start(tmp, ["--null=64M"], env_extra, ls)
    rc = p.wait(timeout=120)
    check(rc == 2, "%s: vblkd refuses to start (exit %d)" % (desc, rc))
    ls.close()
    os.unlink(os.path.join(tmp, "r.sock"))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        activated(tmp, True, True, "socket-path matches")
        activated(tmp, False, False, "no socket-path")
        # LISTEN_PID of another process: not ours, so no socket at all.
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(os.path.join(tmp, "o.sock"))
        ls.listen(1)
        if ls.fileno() != 3:
            os.dup2(ls.fileno(), 3)
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID="1")
        r = subprocess.run([VBLKD, "--null=64M"], env=env, pass_fds=(3,),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        check(r.returncode == 2 and b"socket-path" in r.stderr,
              "LISTEN_PID of another process is ignored (exit %d)" % r.returncode)
        ls.close()
        refused(tmp, {"LISTEN_FDS": "abc"}, "LISTEN_FDS=abc")
        refused(tmp, {"LISTEN_FDS": "1000"}, "LISTEN_FDS=1000")
        # fd 3 not a socket.
        with open(os.path.join(tmp, "plain"), "w") as f:
            if f.fileno() != 3:
                os.dup2(f.fileno(), 3)
            p = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", VBLKD,
                                  "--null=64M"], env=dict(os.environ, LISTEN_FDS="1"),
                                 pass_fds=(3,), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            check(p.wait(timeout=120) == 2, "fd 3 a plain file: refused")
    if failed:
        try:
            sys.stdout.write("".join("# " + l for l in open(os.path.join(tmp, "vblkd.log"))))
        except OSError:
            pass
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
