#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Scrape vblkd's Prometheus endpoint and parse it with a real parser.

Usage: check_metrics.py URL EXPORT
       check_metrics.py --hostile URL

With --hostile, abuse the endpoint first (more idle connections than its
limit, binary garbage, a 100 KiB header, a 64 KiB URL, a request cut off
half-way, a POST), close all of that, and then expect a normal scrape to
parse within a few seconds; prints "ok".

Parses the page with python3-prometheus-client's text parser (exit 77 when
that is not installed), checks every sample with an export label names
EXPORT and that each histogram's cumulative buckets never fall and end at
its count, then prints the samples as one JSON object for test_stats.c:
{"name{label=value,...}": value} with the labels sorted and the export
label left out, plus "check_buckets_monotonic": 1 or 0.
"""
import json
import socket
import sys
import time
import urllib.parse
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("python3-prometheus-client is not installed", file=sys.stderr)
    sys.exit(77)


def hostile(url):
    u = urllib.parse.urlsplit(url)
    addr = (u.hostname, u.port)
    socks = []
    for _ in range(24):  # the limit is 16: some are refused or closed
        try:
            socks.append(socket.create_connection(addr, timeout=2))
        except OSError:
            pass
    payloads = [
        b"\x00\xff" * 512,
        b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (100 << 10) + b"\r\n\r\n",
        b"GET /" + b"m" * (64 << 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Half: ",
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /metrics HTTP/9.9\r\n\r\n",
    ]
    for s, p in zip(socks, payloads):
        try:
            s.sendall(p)
        except OSError:
            pass
    for s in socks:
        s.close()
    deadline = time.time() + 15
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                families = list(text_string_to_metric_families(r.read().decode("utf-8")))
            if families:
                print("ok")
                return
        except OSError as e:
            if time.time() > deadline:
                sys.exit(f"no scrape after the abuse: {e}")
            time.sleep(0.2)


def main():
    if sys.argv[1] == "--hostile":
        hostile(sys.argv[2])
        return
    url, export = sys.argv[1], sys.argv[2]
    with urllib.request.urlopen(url, timeout=10) as r:
        if r.status != 200:
            sys.exit(f"HTTP {r.status}")
        ctype = r.headers.get("Content-Type", "")
        text = r.read().decode("utf-8")
    if not ctype.startswith("text/plain"):
        sys.exit(f"unexpected Content-Type {ctype}")
    out = {}
    monotonic = 1
    for fam in text_string_to_metric_families(text):
        series = {}
        for s in fam.samples:
            labels = dict(s.labels)
            if "export" in labels and labels.pop("export") != export:
                sys.exit(f"sample of another export: {s}")
            key = s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
            out[key] = s.value
            if fam.type == "histogram" and s.name.endswith("_bucket"):
                le = labels.pop("le")
                ident = tuple(sorted(labels.items()))
                series.setdefault(ident, []).append((float(le), s.value))
            if fam.type == "histogram" and s.name.endswith("_count"):
                series.setdefault(("count",) + tuple(sorted(labels.items())), s.value)
        for ident, buckets in series.items():
            if ident and ident[0] == "count":
                continue
            buckets.sort()
            values = [v for _, v in buckets]
            if values != sorted(values) or buckets[-1][0] != float("inf"):
                monotonic = 0
            if series.get(("count",) + ident) != values[-1]:
                monotonic = 0
    out["check_buckets_monotonic"] = monotonic
    print(json.dumps(out))


main()
