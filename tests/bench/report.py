#!/usr/bin/python3
"""passage-bench's results directory: JSON records, plots and a summary.

Reads the serial logs run.py kept (tests/rig/run.py --log-dir) for the
`bench-json| ` lines the bench scenarios print (bench-smoke.sh and
bench-full.sh: passage-bench's JSON report; bench-vm.sh: one line per
whole-VM run and one about L1), and run.py's own JSON (--rig-json) for how
the rig fared (nudges, stalls, retries). Writes into --out:

  records.jsonl   one JSON record per measurement: passage-bench's map and
                  setup records as it wrote them, and one "vm" record per
                  VMM/configuration/-m/-smp (samples, median, min, max of
                  each figure; machine, kernel, QEMU version, repetitions)
  runs.jsonl      every whole-VM run as L1 printed it
  summary.json    ratios and targets (each met, missed or not measured)
  summary.txt     the tables, also printed on stdout
  map-time.png    map time against size, one panel per page kind, one line
                  per method
  boot-time.png   start to L2 init and to exit, every sample, per VMM and
                  configuration (box and strip)
  scaling.png     start to init and memory besides guest RAM against -m
                  (and -smp), per VMM and configuration

Run it with Debian's /usr/bin/python3 (its python3-matplotlib draws the
plots). Exit status: 0 when there was something to report, 1 when no log
held a bench-json line or matplotlib is missing, 2 on a usage error.
"""

import argparse
import glob
import json
import os
import platform
import statistics
import subprocess
import sys

PREFIX = "bench-json| "
# The whole-VM targets (issue 14); passage-bench's own three come from its
# report. Each: passage's configuration, the reference, the figure, the limit.
VM_TARGETS = [
    ("boot to init <= 0.5x QEMU q35", ("passage", "iommufd"), ("qemu10", "q35"), "init_s", 0.5),
    ("boot to init <= 1.0x QEMU microvm", ("passage", "iommufd"), ("qemu10", "microvm"), "init_s", 1.0),
]
RSS_LIMIT_KIB = 5 * 1024
BASE = ("512M", 1)  # the configuration every VMM runs most often


def bench_docs(path):
    """The JSON documents in a log's bench-json lines, in order, and the
    number of stretches that did not parse."""
    text = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.startswith(PREFIX):
                text.append(line[len(PREFIX):])
    blob = "\n".join(text)
    dec = json.JSONDecoder()
    docs, bad, i = [], 0, 0
    while i < len(blob):
        while i < len(blob) and blob[i].isspace():
            i += 1
        if i >= len(blob):
            break
        try:
            doc, i = dec.raw_decode(blob, i)
            docs.append(doc)
        except ValueError:
            bad += 1
            nl = blob.find("\n", i)  # skip to the next line and try again
            i = len(blob) if nl < 0 else nl + 1
    return docs, bad


def stats(samples):
    s = [x for x in samples if x is not None]
    if not s:
        return None
    return {"samples": s, "median": statistics.median(s), "min": min(s), "max": max(s)}


def mem_mib(text):
    return int(text[:-1]) * 1024 if text.endswith("G") else int(text.rstrip("M"))


def vm_figures(run):
    """The numbers of one whole-VM run (None where missing)."""
    m = run.get("meter") or {}
    end = m.get("at_end") or {}
    dd = run.get("dd") or {}

    def rate(b, s):
        b, s = dd.get(b), dd.get(s)
        return round(b / s / 1e6, 2) if b and s else None

    irq = run.get("irq") or {}
    t = run.get("passage_timing") or {}
    phases = t.get("phases") or {}
    up = run.get("l2_uptime_at_init")
    up = float(up) if isinstance(up, (int, float, str)) and str(up).replace(".", "", 1).isdigit() else None
    return {
        "init_s": m.get("init_s"),
        "exit_s": m.get("exit_s"),
        "own_rss_kib": end.get("own_rss_kib"),
        "vm_rss_kib": end.get("vm_rss_kib"),
        "guest_ram_rss_kib": end.get("guest_ram_rss_kib"),
        "maxrss_kib": m.get("maxrss_kib"),
        "dd_write_mbs": rate("write_bytes", "write_s"),
        "dd_read_mbs": rate("read_bytes", "read_s"),
        # edu's interrupt round trip in L2: the median of the run's N.
        "irq_rtt_us": irq.get("median_us"),
        # passage's own account (--report-timing), a cross-check of the meter.
        "passage_marker_s": t["marker_ms"] / 1000 if t.get("marker_ms") is not None else None,
        "passage_own_rss_kib": t.get("own_rss_kib"),
        # Where start -> init goes: L2's clock at init is the kernel's own
        # boot; the rest came before that clock started (the VMM's set-up,
        # firmware, the decompressor). passage says when its set-up ended
        # (--report-timing phases: "run" is the vCPUs' start).
        "l2_kernel_s": up,
        "before_kernel_s": round(m["init_s"] - up, 3) if m.get("init_s") is not None and up is not None else None,
        "vmm_setup_s": phases["run"] / 1000 if phases.get("run") is not None else None,
        # When guest RAM was all mapped into the DMA spaces: during set-up
        # (-dma-map sync) or on its own thread while L2 boots (background).
        "dma_mapped_s": phases["dma_mapped"] / 1000 if phases.get("dma_mapped") is not None else None,
    }


def host_info():
    info = {"machine": platform.machine(), "kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return info


def qemu_version(cmd):
    try:
        out = subprocess.run([cmd, "--version"], capture_output=True, text=True, timeout=20).stdout
        return out.splitlines()[0] if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def collect(logs, rig_jsons):
    rig = []
    for p in rig_jsons:
        with open(p) as f:
            r = json.load(f)
        rig.append({"scenario": r.get("scenario"), "ok": r.get("ok"), "reason": r.get("reason"),
                    "log": r.get("log"), "nudges": len(r.get("nudges", [])), "stalls": len(r.get("stalls", [])),
                    "retries": len(r.get("attempts", [])), "total_s": r.get("times", {}).get("total_s"),
                    "l0_qemu": qemu_version(r["qemu_cmd"][0]) if r.get("qemu_cmd") else None,
                    "kernel": (r.get("kernel") or {}).get("version"), "json": p})
    benches, runs, machines, unparsed = [], [], {}, 0
    for log in logs:
        docs, bad = bench_docs(log)
        unparsed += bad
        machine = None
        for d in docs:
            if d.get("tool") == "passage-bench":
                d["log"] = log
                benches.append(d)
            elif d.get("kind") == "machine":
                machine = d
                machines[log] = d
            elif d.get("kind") == "vm":
                d["log"] = log
                d["l1"] = machine
                runs.append(d)
    return rig, benches, runs, machines, unparsed


def vm_records(runs):
    groups = {}
    for r in runs:
        key = (r["vmm"], r["config"], r["mem"], r["smp"])
        groups.setdefault(key, []).append(r)
    records = []
    for (vmm, config, mem, smp), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], mem_mib(kv[0][2]), kv[0][3])):
        figs = [vm_figures(r) for r in rs]
        ok = [f for f, r in zip(figs, rs) if r.get("exit") == 0]
        l1 = next((r["l1"] for r in rs if r.get("l1")), {}) or {}
        rec = {"kind": "vm", "vmm": vmm, "config": config, "mem": mem, "mem_mib": mem_mib(mem), "smp": smp,
               "runs": len(rs), "repetitions": len(ok), "failed_runs": len(rs) - len(ok),
               "machine": {"where": "L1 (nested: L0 QEMU TCG)", "cpus": l1.get("cpus"),
                           "mem_total_kb": l1.get("mem_total_kb"), "cpu": l1.get("cpu")},
               "kernel": l1.get("kernel"),
               "vmm_version": {"qemu10": l1.get("qemu10"), "qemu72": l1.get("qemu72")}.get(vmm, "passage (this tree)"),
               "dd_mib": l1.get("dd_mib")}
        for k in ok[0].keys() if ok else []:
            rec[k] = stats([f[k] for f in ok])
        records.append(rec)
    return records


def median_of(rec, key):
    return (rec.get(key) or {}).get("median") if rec else None


def vm_ratios(records):
    by = {(r["vmm"], r["config"], r["mem"], r["smp"]): r for r in records}
    pairs = [(("passage", "iommufd"), ("qemu10", "q35")), (("passage", "iommufd"), ("qemu10", "microvm")),
             (("passage", "legacy"), ("qemu72", "legacy")), (("passage", "legacy"), ("qemu10", "q35")),
             (("passage", "iommufd"), ("passage", "legacy")), (("qemu10", "q35"), ("qemu72", "legacy")),
             (("passage", "iommufd-huge"), ("qemu10", "q35")), (("passage", "iommufd-huge"), ("passage", "iommufd")),
             (("passage", "iommufd-bg"), ("passage", "iommufd")), (("passage", "legacy-bg"), ("passage", "legacy")),
             (("passage", "iommufd-bg"), ("qemu10", "q35")), (("passage", "legacy-bg"), ("qemu10", "q35"))]
    out = []
    for (mem, smp) in sorted({(k[2], k[3]) for k in by}, key=lambda x: (mem_mib(x[0]), x[1])):
        for num, den in pairs:
            a, b = by.get(num + (mem, smp)), by.get(den + (mem, smp))
            if not (a and b):
                continue
            for key in ("init_s", "exit_s", "own_rss_kib", "maxrss_kib", "dd_read_mbs", "dd_write_mbs", "irq_rtt_us"):
                x, y = median_of(a, key), median_of(b, key)
                out.append({"name": "%s %s / %s %s" % (num + den), "figure": key, "mem": mem, "smp": smp,
                            "value": round(x / y, 3) if x and y else None})
    return out, by


def vm_targets(by):
    targets = []
    for name, num, den, key, limit in VM_TARGETS:
        a, b = by.get(num + BASE), by.get(den + BASE)
        x, y = median_of(a, key), median_of(b, key)
        if x and y:
            v = x / y
            targets.append({"name": name, "met": v <= limit, "detail": "%.2fx (%s %s %.2f s / %s %s %.2f s, median, -m %s -smp %d)" % (
                v, num[0], num[1], x, den[0], den[1], y, BASE[0], BASE[1])})
        else:
            missing = [" ".join(c) for c, r in ((num, a), (den, b)) if not (r and median_of(r, key))]
            targets.append({"name": name, "met": None, "detail": "no %s at -m %s -smp %d" % (
                " and ".join(missing), BASE[0], BASE[1])})
    own = [(r["config"], r["mem"], r["smp"], median_of(r, "own_rss_kib")) for k, r in by.items()
           if k[0] == "passage" and median_of(r, "own_rss_kib") is not None]
    if own:
        worst = max(own, key=lambda o: o[3])
        within = sum(1 for o in own if o[3] <= RSS_LIMIT_KIB)
        targets.append({"name": "passage RSS beyond guest RAM <= 5 MiB", "met": within == len(own),
                        "detail": "%d of %d configurations within; worst %.1f MiB (%s -m %s -smp %d)" % (
                            within, len(own), worst[3] / 1024, worst[0], worst[1], worst[2])})
    else:
        targets.append({"name": "passage RSS beyond guest RAM <= 5 MiB", "met": None, "detail": "not measured"})
    return targets


def verdict(t):
    return {True: "met", False: "missed", None: "not measured"}[t.get("met")]


def fmt(rec, key, scale=1.0, digits=1):
    s = rec.get(key) if rec else None
    if not s:
        return "-"
    return "%.*f (%.*f-%.*f)" % (digits, s["median"] / scale, digits, s["min"] / scale, digits, s["max"] / scale)


def summary_text(rig, benches, vm_recs, ratios, targets, host, unparsed, runs=()):
    out = []
    out.append("passage-bench results (host %s, %s, %d CPUs; kernel %s)" % (
        host.get("cpu", "?"), host["machine"], host["cpus"] or 0, host["kernel"]))
    out.append("Every figure below was measured inside L1, a nested guest under TCG: absolute")
    out.append("times are not hardware times; read the ratios (README.md \"passage-bench\").")
    if rig:
        out.append("")
        out.append("Rig runs (run.py): scenario, verdict, key presses in console silences, stalls, retries, seconds")
        for r in rig:
            out.append("  %-12s %-4s nudges=%-3d stalls=%-2d retries=%-2d %6.0f s  %s" % (
                r["scenario"], "PASS" if r["ok"] else "FAIL", r["nudges"], r["stalls"], r["retries"],
                r["total_s"] or 0, "" if r["ok"] else (r["reason"] or "")[:100]))
        l0 = sorted({r["l0_qemu"] for r in rig if r.get("l0_qemu")})
        out.append("  L0: %s; rig kernel %s" % (", ".join(l0) or "?", ", ".join(sorted({r["kernel"] or "?" for r in rig}))))
    if unparsed:
        out.append("  %d bench-json stretch(es) did not parse (garbled console?) and were skipped" % unparsed)
    for b in benches:
        out.append("")
        out.append("Mapping and set-up (passage-bench, %d repetitions, L1 kernel %s; %s)" % (
            b.get("repetitions", 0), b.get("kernel", {}).get("release"), os.path.basename(b["log"])))
        out.append("  %-7s %-17s %-8s %-9s %12s %12s %s" % ("kind", "method", "page", "size", "median s", "unmap s",
                                                            "in the map ioctl"))
        for r in b.get("records", []):
            if r["kind"] == "map":
                share = ""
                if "map_ioctl_s" in r and r["map_s"]["median"] > 0:
                    share = "%5.1f%%" % (100 * r["map_ioctl_s"]["median"] / r["map_s"]["median"])
                out.append("  %-7s %-17s %-8s %5d MiB %12.4f %12.4f %s" % (
                    "map", r["method"], r["page"], r["size"] >> 20, r["map_s"]["median"], r["unmap_s"]["median"],
                    share))
            else:
                out.append("  %-7s %-17s %-8s %-9s %12.4f %12.4f" % (
                    "setup", r["method"], "-", r["device"][-7:], r["setup_s"]["median"], r["teardown_s"]["median"]))
                steps = sorted(r.get("setup_steps", {}).items(), key=lambda kv: -kv[1]["median_s"])
                for name, st in steps:
                    out.append("  %-7s %-17s %-30s %10.4f s x%d" % ("  step", r["method"], name, st["median_s"], st["calls"]))
        for t in b.get("targets", []):
            out.append("  target: %s: %s (%s)" % (t["name"], verdict(t), t.get("detail", "")))
    if vm_recs:
        out.append("")
        out.append("Whole VM (bench-vm: edu + nvme passed through; median (min-max) over the runs)")
        out.append("  %-8s %-8s %-5s %-3s %-4s %-20s %-20s %-17s %-17s %-15s %-15s %s" % (
            "vmm", "config", "-m", "smp", "n", "start->init s", "start->exit s", "own RSS MiB", "peak RSS MiB",
            "dd write MB/s", "dd read MB/s", "irq round trip us"))
        for r in vm_recs:
            out.append("  %-8s %-8s %-5s %-3d %-4s %-20s %-20s %-17s %-17s %-15s %-15s %s" % (
                r["vmm"], r["config"], r["mem"], r["smp"],
                "%d%s" % (r["repetitions"], "!" if r["failed_runs"] else ""),
                fmt(r, "init_s"), fmt(r, "exit_s"), fmt(r, "own_rss_kib", 1024), fmt(r, "maxrss_kib", 1024, 0),
                fmt(r, "dd_write_mbs"), fmt(r, "dd_read_mbs"), fmt(r, "irq_rtt_us", 1, 0)))
        if any(r["failed_runs"] for r in vm_recs):
            out.append("  (n!: some runs failed and are left out; runs.jsonl has them)")
        split = [r for r in vm_recs if r.get("l2_kernel_s")]
        if split:
            out.append("")
            out.append("Where start->init goes (medians): before L2's clock started (VMM set-up, firmware,")
            out.append("decompression), L2's kernel to init (its own clock), passage's set-up to vCPU start,")
            out.append("and when passage had guest RAM mapped for DMA (-dma-map: sync in set-up, background (-bg) while L2 boots)")
            out.append("  %-8s %-12s %-5s %-3s %-20s %-20s %-20s %-17s %s" % (
                "vmm", "config", "-m", "smp", "start->init s", "before kernel s", "L2 kernel s", "VMM set-up s",
                "RAM mapped s"))
            for r in split:
                out.append("  %-8s %-12s %-5s %-3d %-20s %-20s %-20s %-17s %s" % (
                    r["vmm"], r["config"], r["mem"], r["smp"], fmt(r, "init_s"), fmt(r, "before_kernel_s"),
                    fmt(r, "l2_kernel_s"), fmt(r, "vmm_setup_s", 1, 2), fmt(r, "dma_mapped_s", 1, 2)))
        gaps = {}
        for run in runs:
            if (run["mem"], run["smp"]) == BASE and (run.get("l2_boot") or {}).get("gaps"):
                gaps.setdefault((run["vmm"], run["config"]), run["l2_boot"]["gaps"])
        if gaps:
            out.append("")
            out.append("L2's widest dmesg gaps (first run of each at -m %s -smp %d): seconds, at, the line before" % BASE)
            for (vmm, config), gs in sorted(gaps.items()):
                for g in gs[:3]:
                    out.append("  %-8s %-8s %6.3f s at %8.3f  after \"%s\"" % (vmm, config, g["s"], g["at"], g["after"][:60]))
        vs = sorted({r["vmm_version"] for r in vm_recs if r["vmm"] != "passage" and r["vmm_version"]})
        out.append("  QEMU in L1: " + ("; ".join(vs) or "none"))
        shown = [x for x in ratios if x["figure"] in ("init_s", "exit_s", "own_rss_kib", "irq_rtt_us") and x["value"] is not None]
        if shown:
            out.append("")
            out.append("Ratios (medians divided)")
            for x in shown:
                out.append("  ratio %-38s %-11s -m %-5s -smp %d  %.2f" % (x["name"], x["figure"], x["mem"], x["smp"], x["value"]))
    if targets:
        out.append("")
        for t in targets:
            out.append("target: %s: %s (%s)" % (t["name"], verdict(t), t["detail"]))
    return "\n".join(out) + "\n"


def plots(out_dir, benches, vm_recs):
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("report: no matplotlib for %s: plots need Debian's python3-matplotlib "
                         "(tests/install-deps.sh) and /usr/bin/python3" % sys.executable)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    made = []
    maps = [r for b in benches for r in b.get("records", []) if r["kind"] == "map"]
    if maps:
        pages = [p for p in ("4k", "thp", "hugetlb") if any(r["page"] == p for r in maps)]
        fig, axes = plt.subplots(1, len(pages), figsize=(5 * len(pages), 4), squeeze=False)
        for ax, page in zip(axes[0], pages):
            for method in ("populate", "iommufd_map", "iommufd_map_file", "type1"):
                rs = sorted((r for r in maps if r["page"] == page and r["method"] == method), key=lambda r: r["size"])
                if not rs:
                    continue
                x = [r["size"] >> 20 for r in rs]
                y = [r["map_s"]["median"] for r in rs]
                err = [[m - r["map_s"]["min"] for m, r in zip(y, rs)], [r["map_s"]["max"] - m for m, r in zip(y, rs)]]
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=method)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title("map, %s pages" % page)
            ax.set_xlabel("size (MiB)")
            ax.set_ylabel("seconds (median, min-max)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle("passage-bench: time to map guest-RAM-sized memory (in L1, nested TCG)")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "map-time.png"), dpi=80)
        plt.close(fig)
        made.append("map-time.png")
    base = [r for r in vm_recs if (r["mem"], r["smp"]) == BASE and r.get("init_s")]
    if base:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        labels = ["%s\n%s" % (r["vmm"], r["config"]) for r in base]
        for ax, key, title in ((axes[0], "init_s", "start -> L2 init"), (axes[1], "exit_s", "start -> exit")):
            data = [r[key]["samples"] if r.get(key) else [] for r in base]
            ax.boxplot(data, labels=labels, showfliers=False)
            for i, d in enumerate(data, 1):
                ax.scatter([i] * len(d), d, s=14, alpha=0.7, zorder=3)
            ax.set_title("%s (-m %s -smp %d)" % (title, BASE[0], BASE[1]))
            ax.set_ylabel("seconds")
            ax.set_ylim(bottom=0)
            ax.grid(True, axis="y", alpha=0.3)
        fig.suptitle("Whole-VM boot, every run (in L1, nested TCG)")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "boot-time.png"), dpi=80)
        plt.close(fig)
        made.append("boot-time.png")
    scal = [r for r in vm_recs if r.get("init_s")]
    if len({r["mem"] for r in scal}) > 1 or len({r["smp"] for r in scal}) > 1:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for vc in sorted({(r["vmm"], r["config"], r["smp"]) for r in scal}):
            rs = sorted((r for r in scal if (r["vmm"], r["config"], r["smp"]) == vc), key=lambda r: r["mem_mib"])
            label = "%s %s smp%d" % vc
            axes[0].plot([r["mem_mib"] for r in rs], [r["init_s"]["median"] for r in rs], marker="o", label=label)
            own = [(r["mem_mib"], r["own_rss_kib"]["median"] / 1024) for r in rs if r.get("own_rss_kib")]
            if own:
                axes[1].plot([o[0] for o in own], [o[1] for o in own], marker="o", label=label)
        for ax, yl, t in ((axes[0], "seconds (median)", "start -> L2 init"),
                          (axes[1], "MiB (median)", "VMM memory besides guest RAM")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("-m (MiB)")
            ax.set_ylabel(yl)
            ax.set_title(t)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        axes[1].set_yscale("log")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "scaling.png"), dpi=80)
        plt.close(fig)
        made.append("scaling.png")
    return made


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the results directory (created)")
    ap.add_argument("--rig-json", action="append", default=[], help="run.py --json output (any number)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("logs", nargs="*", help="run.py serial logs (default: OUT/logs/*.log)")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    logs = args.logs or sorted(glob.glob(os.path.join(args.out, "logs", "*.log")))
    rig_jsons = args.rig_json or sorted(glob.glob(os.path.join(args.out, "rig", "*.json")))
    rig, benches, runs, machines, unparsed = collect(logs, rig_jsons)
    if not benches and not runs:
        print("report: no bench-json lines in %d log(s)" % len(logs), file=sys.stderr)
        return 1
    host = host_info()
    vm_recs = vm_records(runs)
    ratios, by = vm_ratios(vm_recs)
    targets = [dict(t, source="passage-bench") for b in benches[-1:] for t in b.get("targets", [])]
    targets += [dict(t, source="bench-vm") for t in (vm_targets(by) if vm_recs else [])]
    with open(os.path.join(args.out, "records.jsonl"), "w") as f:
        for b in benches:
            for r in b.get("records", []):
                f.write(json.dumps(dict(r, source=os.path.basename(b["log"]))) + "\n")
        for r in vm_recs:
            f.write(json.dumps(dict(r, host=host)) + "\n")
    with open(os.path.join(args.out, "runs.jsonl"), "w") as f:
        for r in runs:
            f.write(json.dumps(r) + "\n")
    made = [] if args.no_plots else plots(args.out, benches, vm_recs)
    summary = {"host": host, "rig": rig, "map_ratios": [x for b in benches for x in b.get("ratios", [])],
               "vm_ratios": ratios, "targets": targets, "plots": made, "logs": logs}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    text = summary_text(rig, benches, vm_recs, ratios, targets, host, unparsed, runs)
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    print("report: %s (%s)" % (args.out, ", ".join(["records.jsonl", "runs.jsonl", "summary.txt"] + made)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
