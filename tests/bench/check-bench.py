#!/usr/bin/env python3
"""Checks a passage-bench JSON report against its schema and sanity rules.

Prints one line per check, "NAME 0|1 DETAIL" (0 passed), for the rig's
`result`; exits 1 when any check failed. Used by rig.bench_smoke in L1.
"""
import json
import math
import sys

MAP_METHODS = ("iommufd_map", "iommufd_map_file", "type1", "populate")
PAGES = ("4k", "thp", "hugetlb")
MAP_FIELDS = ("map_s", "map_ioctl_s", "unmap_s", "pinned_after_map", "pinned_after_unmap", "huge_kb_after_map")


def usage():
    print("usage: check-bench REPORT.json [--require-device] [--sizes N]")


def stats_errors(where, s, reps, times):
    """The samples/median/min/max object: every sample there, numbers sane."""
    errs = []
    for key in ("samples", "median", "min", "max"):
        if key not in s:
            return ["%s: no %s" % (where, key)]
    samples = s["samples"]
    if len(samples) != reps:
        errs.append("%s: %d samples, repetitions %d" % (where, len(samples), reps))
    nums = samples + [s["median"], s["min"], s["max"]]
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in nums):
        return errs + ["%s: a sample is not a finite number" % where]
    if samples and not (min(samples) == s["min"] <= s["median"] <= s["max"] == max(samples)):
        errs.append("%s: min/median/max disagree with the samples" % where)
    if times and not all(0 <= x < 600 for x in samples):
        errs.append("%s: a time outside [0, 600) s: %s" % (where, samples))
    return errs


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        usage()
        return 0
    require_device = "--require-device" in argv
    sizes_wanted = int(argv[argv.index("--sizes") + 1]) if "--sizes" in argv else None
    checks = []

    def check(name, errs, detail_ok):
        checks.append((name, not errs, "; ".join(errs[:4]) if errs else detail_ok))

    try:
        with open(argv[0]) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        print("bench.json 1 %s" % e)
        return 1

    errs = []
    for key, kind in (("tool", str), ("format", int), ("machine", dict), ("kernel", dict),
                      ("repetitions", int), ("sizes", list), ("records", list),
                      ("skipped", list), ("ratios", list), ("targets", list), ("failures", int)):
        if not isinstance(rep.get(key), kind):
            errs.append("%s missing or not %s" % (key, kind.__name__))
    if not errs:
        for key in ("arch", "cpu", "cpus", "mem_total_kb"):
            if key not in rep["machine"]:
                errs.append("machine.%s missing" % key)
        for key in ("release", "version"):
            if not rep["kernel"].get(key):
                errs.append("kernel.%s missing" % key)
        if rep["tool"] != "passage-bench" or rep["format"] != 1 or rep["repetitions"] < 1:
            errs.append("tool/format/repetitions: %s %s %s" %
                        (rep["tool"], rep["format"], rep["repetitions"]))
        if rep["failures"] != 0:
            errs.append("%d measurement(s) failed: %s" % (rep["failures"], [
                s for s in rep["skipped"] if s.get("reason", "").startswith("failed")]))
    check("bench.json", errs, "%d records, %d skipped, kernel %s" % (
        len(rep.get("records", [])), len(rep.get("skipped", [])),
        rep.get("kernel", {}).get("release")))
    if errs:
        for name, ok, detail in checks:
            print(name, 0 if ok else 1, detail)
        return 1
    reps = rep["repetitions"]

    errs = []
    seen = set()
    for i, r in enumerate(rep["records"]):
        where = "records[%d]" % i
        for key in ("machine", "kernel", "repetitions", "kind", "method"):
            if key not in r:
                errs.append("%s: no %s" % (where, key))
        if r.get("kind") == "map":
            if r.get("method") not in MAP_METHODS or r.get("page") not in PAGES:
                errs.append("%s: method/page %s/%s" % (where, r.get("method"), r.get("page")))
            size = r.get("size")
            if not isinstance(size, int) or size <= 0 or size % 4096:
                errs.append("%s: size %s" % (where, size))
                continue
            for field in MAP_FIELDS:
                if field not in r:
                    errs.append("%s: no %s" % (where, field))
                else:
                    errs += stats_errors("%s.%s" % (where, field), r[field], reps, field.endswith("_s"))
            seen.add((r.get("method"), r.get("page"), size))
        elif r.get("kind") == "setup":
            for field in ("setup_s", "teardown_s"):
                if field not in r:
                    errs.append("%s: no %s" % (where, field))
                else:
                    errs += stats_errors("%s.%s" % (where, field), r[field], reps, True)
            # Where the set-up went (TimedSys): the device's own open or
            # group fd among the steps, and passage's time between calls.
            for field, want in (("setup_steps", {"cdev": "VFIO_DEVICE_BIND_IOMMUFD",
                                                 "legacy": "VFIO_GROUP_GET_DEVICE_FD"}),
                                ("teardown_steps", {"cdev": "close", "legacy": "close"})):
                steps = r.get(field)
                if not isinstance(steps, dict) or "passage" not in steps or \
                        want.get(r.get("method")) not in steps:
                    errs.append("%s: %s lacks %s or passage" % (where, field, want.get(r.get("method"))))
                    continue
                for name, st in steps.items():
                    if not isinstance(st.get("median_s"), (int, float)) or not isinstance(st.get("calls"), int):
                        errs.append("%s: %s[%s] %s" % (where, field, name, st))
            if r.get("method") not in ("cdev", "legacy") or not r.get("device"):
                errs.append("%s: setup method/device %s/%s" % (where, r.get("method"), r.get("device")))
            seen.add((r.get("method"), "setup", 0))
        else:
            errs.append("%s: kind %s" % (where, r.get("kind")))
    check("bench.schema", errs, "every record has its fields; %d samples each" % reps)

    # What must be there: every method at 4 KiB at every size (with a device),
    # and set-up by both paths.
    sizes = rep["sizes"]
    errs = []
    if sizes_wanted is not None and len(sizes) != sizes_wanted:
        errs.append("sizes %s, wanted %d of them" % (sizes, sizes_wanted))
    methods = MAP_METHODS if require_device else ("populate",)
    for m in methods:
        for s in sizes:
            if (m, "4k", s) not in seen:
                errs.append("no %s 4k %d MiB" % (m, s >> 20))
    if require_device:
        for m in ("cdev", "legacy"):
            if (m, "setup", 0) not in seen:
                errs.append("no %s setup" % m)
    check("bench.complete", errs, "%s at 4k for %s MiB" % (
        ", ".join(methods), [s >> 20 for s in sizes]))

    # Pinned pages: a 4 KiB mapping pins size/4096 pages, populate none, and
    # every unmap gives them all back.
    errs = []
    n = 0
    for r in rep["records"]:
        if r["kind"] != "map":
            continue
        want = 0 if r["method"] == "populate" else r["size"] // 4096
        if r["page"] == "4k":
            n += 1
            if any(x != want for x in r["pinned_after_map"]["samples"]):
                errs.append("%s 4k %d MiB: pinned after map %s, want %d" % (
                    r["method"], r["size"] >> 20, r["pinned_after_map"]["samples"], want))
        if any(x != 0 for x in r["pinned_after_unmap"]["samples"]):
            errs.append("%s %s %d MiB: pinned after unmap %s, want 0" % (
                r["method"], r["page"], r["size"] >> 20, r["pinned_after_unmap"]["samples"]))
    check("bench.pins", errs, "%d 4k records pin size/4096 pages; every unmap back to baseline" % n)

    errs = []
    names = {(x.get("name"), x.get("size"), x.get("page")) for x in rep["ratios"]}
    for x in rep["ratios"]:
        if x.get("value") is not None and not (isinstance(x["value"], (int, float)) and x["value"] > 0):
            errs.append("ratio %s is %s" % (x.get("name"), x.get("value")))
    if require_device:
        for s in sizes:
            for name in ("iommufd_map/type1", "iommufd_map_file/iommufd_map", "iommufd_map_file/populate"):
                if (name, s, "4k") not in names:
                    errs.append("no ratio %s at 4k %d MiB" % (name, s >> 20))
        if not any(x.get("name") == "cdev/legacy" for x in rep["ratios"]):
            errs.append("no ratio cdev/legacy")
    targets = rep["targets"]
    if len(targets) != 3 or any(set(("name", "met", "detail")) - set(t) for t in targets):
        errs.append("targets: %s" % targets)
    elif require_device and any(t["met"] is None for t in targets if "huge" not in t["name"]):
        errs.append("a target was not measured: %s" % targets)
    check("bench.ratios", errs, "; ".join("%s: %s" % (
        t.get("name"), {True: "met", False: "missed", None: "not measured"}[t.get("met")])
        for t in targets))

    for name, ok, detail in checks:
        print(name, 0 if ok else 1, detail)
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
