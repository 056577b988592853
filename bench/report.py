#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Helpers of bench/run.sh.

  report.py record RUNS.jsonl CLIENT_OUTPUT key=value...
      parse one vblkperf or fio JSON output, append one run to RUNS.jsonl
  report.py report RUNS.jsonl OUT.json OUT.png key=value...
      medians over repeats, the vblkd/QSD table on stdout, OUT.json, OUT.png
"""
import json
import statistics
import sys

JOB_LABELS = {
    "4k-randread-qd1": "4k randread QD1",
    "4k-randread-qd32": "4k randread QD32",
    "4k-randread-qd32-evc": "4k randread QD32 ev-client",
    "4k-randwrite-qd32": "4k randwrite QD32",
    "128k-read-qd8": "128k seq read QD8",
    "4k-randread-2qx16": "4k randread 2q x QD16",
}
METRICS = ("iops", "lat_mean_us", "lat_p50_us", "lat_p99_us", "cpu_us_per_io")


def kv(args):
    return dict(a.split("=", 1) for a in args)


def parse_vblkperf(path):
    d = json.load(open(path))
    lat = d["lat_ns"]
    return {"ios": d["ios"], "errors": d["errors"], "iops": d["iops"],
            "lat_mean_us": lat["mean"] / 1e3, "lat_p50_us": lat["p50"] / 1e3,
            "lat_p99_us": lat["p99"] / 1e3}


def parse_fio(path):
    text = open(path).read()
    d = json.loads(text[text.index("{"):])  # skip any line an engine printed first
    job = d["jobs"][0]
    if job.get("error"):
        raise ValueError("fio job error %d" % job["error"])
    ios = iops = 0.0
    lat_sum = 0.0
    pct = {}
    for side in ("read", "write"):
        s = job[side]
        if not s["total_ios"]:
            continue
        ios += s["total_ios"]
        iops += s["iops"]
        lat_sum += s["lat_ns"]["mean"] * s["total_ios"]
        pct = s["lat_ns"].get("percentile") or s["clat_ns"].get("percentile", {})
    return {"ios": ios, "errors": job.get("total_err", 0), "iops": iops,
            "lat_mean_us": lat_sum / ios / 1e3 if ios else 0.0,
            "lat_p50_us": pct.get("50.000000", 0) / 1e3,
            "lat_p99_us": pct.get("99.000000", 0) / 1e3}


def record(runs, out, args):
    r = kv(args)
    r["rep"] = int(r["rep"])
    r["rc"] = int(r["rc"])
    r["server_cpu_s"] = float(r.pop("cpu_s"))
    try:
        m = (parse_vblkperf if r["tool"] == "vblkperf" else parse_fio)(out)
        r.update(m)
        r["cpu_us_per_io"] = r["server_cpu_s"] * 1e6 / m["ios"] if m["ios"] else None
        r["ok"] = r["rc"] == 0 and m["ios"] > 0
    except (OSError, ValueError, KeyError) as e:
        r["ok"] = False
        r["error"] = str(e)
    with open(runs, "a") as f:
        f.write(json.dumps(r) + "\n")


def fmt(v, unit=""):
    if v is None:
        return "-"
    if unit == "k":
        return "%.1fk" % (v / 1e3) if v < 1e6 else "%.2fM" % (v / 1e6)
    return "%.1f" % v if v < 100 else "%.0f" % v


def ratio(a, b):
    return a / b if a is not None and b else None


def fr(r):
    return "-" if r is None else "%.2fx" % r


def report(runs, out_json, out_png, args):
    meta = kv(args)
    raw = [json.loads(line) for line in open(runs) if line.strip()]
    groups = {}
    for r in raw:
        groups.setdefault((r["setup"], r["job"], r["tool"], r["server"], r["mode"]), []).append(r)
    med = {}
    for k, rs in groups.items():
        ok = [r for r in rs if r.get("ok")]
        m = {"runs": len(rs), "ok": len(ok)}
        for x in METRICS:
            vals = [r[x] for r in ok if r.get(x) is not None]
            m[x] = statistics.median(vals) if vals else None
        med[k] = m

    setups = [s for s in ("null", "tmpfs", "rbd") if any(k[0] == s for k in med)]
    modes = meta.get("vblkd_modes", "default").split()
    rows = []
    for s in setups:
        for job in JOB_LABELS:
            for tool in ("vblkperf", "fio"):
                q = med.get((s, job, tool, "qsd", "default"))
                for mode in modes:
                    v = med.get((s, job, tool, "vblkd", mode))
                    if v is None and (q is None or mode != "default"):
                        continue  # this job did not run in this vblkd mode
                    rows.append((s, job, tool, mode, v or {}, q or {}))

    hdr = ("setup", "job", "tool", "vblkd", "IOPS vblkd", "QSD", "ratio",
           "mean us vblkd", "QSD", "ratio", "p50 us v/Q", "p99 us v/Q",
           "srv CPU us/IO v", "QSD", "ratio", "fail")
    table = []
    for s, job, tool, mode, v, q in rows:
        fails = (v.get("runs", 0) - v.get("ok", 0)) + (q.get("runs", 0) - q.get("ok", 0))
        table.append((s, JOB_LABELS[job], tool, mode,
                      fmt(v.get("iops"), "k"), fmt(q.get("iops"), "k"),
                      fr(ratio(v.get("iops"), q.get("iops"))),
                      fmt(v.get("lat_mean_us")), fmt(q.get("lat_mean_us")),
                      fr(ratio(v.get("lat_mean_us"), q.get("lat_mean_us"))),
                      "%s/%s" % (fmt(v.get("lat_p50_us")), fmt(q.get("lat_p50_us"))),
                      "%s/%s" % (fmt(v.get("lat_p99_us")), fmt(q.get("lat_p99_us"))),
                      fmt(v.get("cpu_us_per_io")), fmt(q.get("cpu_us_per_io")),
                      fr(ratio(v.get("cpu_us_per_io"), q.get("cpu_us_per_io"))),
                      str(fails) if fails else ""))
    widths = [max(len(str(r[i])) for r in [hdr] + table) for i in range(len(hdr))]
    left = 4  # setup, job, tool, mode: left-aligned; numbers right-aligned

    def line(r):
        return "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    print("vblkd vs qemu-storage-daemon: medians of %s run(s) of %s s; ratio = vblkd / QSD "
          "(IOPS: higher is better; latency, CPU: lower is better)" %
          (meta.get("repeat"), meta.get("runtime")))
    print(line(hdr))
    print(line(tuple("-" * w for w in widths)))
    prev = None
    for r in table:
        if prev is not None and r[0] != prev:
            print()
        prev = r[0]
        print(line(r))

    # The targets of the performance issue, from the vblkperf rows.
    def get(s, job, server, mode, x, tool="vblkperf"):
        return med.get((s, job, tool, server, mode), {}).get(x)

    print("\nTargets (vblkperf rows; vblkd mode 'default' unless named):")
    checks = []
    for mode in modes:
        if mode in ("default", "poll", "adaptive"):
            r = ratio(get("null", "4k-randread-qd1", "vblkd", mode, "lat_mean_us"),
                      get("null", "4k-randread-qd1", "qsd", "default", "lat_mean_us"))
            checks.append(("QD1 mean latency, null, vblkd %s / QSD" % mode, r, "<=",
                           0.5 if mode == "adaptive" else 0.35))
    for s, tgt in (("null", 1.8), ("tmpfs", 1.5)):
        for mode in modes:
            if mode in ("default", "poll"):
                r = ratio(get(s, "4k-randread-qd32", "vblkd", mode, "iops"),
                          get(s, "4k-randread-qd32", "qsd", "default", "iops"))
                checks.append(("QD32 IOPS, %s, vblkd %s / QSD" % (s, mode), r, ">=", tgt))
    # The issue does not say which client: both are shown.
    for s in setups:
        for job, client in (("4k-randread-qd32", "polling"), ("4k-randread-qd32-evc", "event")):
            for mode in modes:
                if mode in ("default", "event", "adaptive"):
                    r = ratio(get(s, job, "vblkd", mode, "cpu_us_per_io"),
                              get(s, job, "qsd", "default", "cpu_us_per_io"))
                    checks.append(("server CPU/IO, %s, QD32 %s client, vblkd %s / QSD"
                                   % (s, client, mode), r, "<=", 0.5))
    for s in setups:
        for server in ("vblkd", "qsd"):
            r = ratio(get(s, "4k-randread-2qx16", server, "default", "iops"),
                      get(s, "4k-randread-qd32", server, "default", "iops"))
            checks.append(("2 queues x QD16 / 1 queue QD32 IOPS, %s, %s" % (s, server),
                           r, ">=", 1.6))
    targets = []
    for name, r, op, tgt in checks:
        met = None if r is None else (r <= tgt if op == "<=" else r >= tgt)
        targets.append({"check": name, "value": r, "target": "%s %.2f" % (op, tgt), "met": met})
        print("  %-66s %7s  (target %s %.2f)  %s" % (
            name, "n/a" if r is None else "%.3fx" % r, op, tgt,
            {None: "n/a", True: "met", False: "MISSED"}[met]))

    with open(out_json, "w") as f:
        json.dump({"meta": meta, "targets": targets,
                   "medians": [dict(zip(("setup", "job", "tool", "server", "mode"), k), **m)
                               for k, m in sorted(med.items())],
                   "runs": raw}, f, indent=1)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no matplotlib: no chart)", file=sys.stderr)
        return
    labels = ["%s %s\n%s%s" % (s, JOB_LABELS[j], t, "" if m == "default" else " vblkd-" + m)
              for s, j, t, m, _, _ in rows]
    fig, axes = plt.subplots(3, 1, figsize=(max(10, 0.75 * len(rows)), 13), sharex=True)
    xs = range(len(rows))
    w = 0.4
    for ax, (x, title) in zip(axes, (("iops", "IOPS (higher is better)"),
                                     ("lat_mean_us", "mean latency, us (lower is better)"),
                                     ("cpu_us_per_io", "server CPU us per I/O (lower is better)"))):
        ax.bar([i - w / 2 for i in xs], [r[4].get(x) or 0 for r in rows], w, label="vblkd")
        ax.bar([i + w / 2 for i in xs], [r[5].get(x) or 0 for r in rows], w, label="qemu-storage-daemon")
        ax.set_title(title)
        ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    axes[-1].set_xticks(list(xs))
    axes[-1].set_xticklabels(labels, rotation=75, ha="right", fontsize=7)
    fig.suptitle("vblkd vs qemu-storage-daemon (%s x %s s, medians; %s CPUs, shared machine)" %
                 (meta.get("repeat"), meta.get("runtime"), meta.get("ncpu")))
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        sys.exit(__doc__)
