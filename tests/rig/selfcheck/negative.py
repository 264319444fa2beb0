#!/usr/bin/env python3
"""Checks that run.py reports failures: boots the rig on scenarios that fail on
purpose and asserts that run.py exits 1 and names each failure in its JSON:
  failing.sh             each way a scenario can fail
  hang.sh                killed at the timeout
  missing.sh             all results pass, but a declared one (expect=) never comes
  passthrough-nodevice.sh  passthrough-iommufd's edu run without its
                         -device vfio-pci: L2 and L1 must both notice
Exit 77 (skip) without QEMU. The last needs PASSAGE_BUILD_DIR (ctest sets it)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "..", "run.py")


def run(scenario, *extra):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        p = subprocess.run([sys.executable, RUN, os.path.join(HERE, scenario), "--json", out, *extra])
        with open(out) as f:
            return p.returncode, json.load(f)


def main():
    if not shutil.which(os.environ.get("PASSAGE_QEMU", "qemu-system-x86_64")):
        print("SKIP: qemu-system-x86_64 not found")
        return 77
    errors = []

    def expect(cond, what):
        print(f"negative: {'ok  ' if cond else 'FAIL'} {what}")
        if not cond:
            errors.append(what)

    rc, r = run("failing.sh")
    failed = {x["name"] for x in r["results"] if not x["ok"]}
    passed = {x["name"] for x in r["results"] if x["ok"]}
    expect(rc == 1, f"failing.sh: run.py exits 1 (got {rc})")
    expect(not r["ok"], "failing.sh: JSON ok is false")
    expect(r["powered_off"], "failing.sh: L1 still powers off")
    expect("negative.pass" in passed, "failing.sh: the passing result is reported as passing")
    for name in ["bind.dead:beef", "negative.fail", "l1.scenario.stderr", "l1.scenario.exit",
                 "missing.cdev.resolve"]:
        expect(name in failed, f"failing.sh: {name} reported as failed")
    expect(r["done"] and r["done"]["rc"] == 7, "failing.sh: RIG-DONE carries the scenario's exit status 7")

    rc, r = run("hang.sh", "--timeout", "30")
    expect(rc == 1, f"hang.sh: run.py exits 1 (got {rc})")
    expect(r["timed_out"] and not r["powered_off"], "hang.sh: timed out, did not power off")
    expect([x["name"] for x in r["results"]] == ["negative.before_hang"], "hang.sh: the result before the hang arrived")
    expect(r["times"]["run_s"] < 45, f"hang.sh: QEMU killed at the timeout ({r['times']['run_s']} s)")

    rc, r = run("missing.sh")
    expect(rc == 1, f"missing.sh: run.py exits 1 (got {rc})")
    expect(r["missing"] == ["negative.never.*"], f"missing.sh: the missing result is named ({r['missing']})")
    expect(all(x["ok"] for x in r["results"]) and r["powered_off"],
           "missing.sh: nothing else failed (every result passed, L1 powered off)")
    expect("never arrived: negative.never.*" in r["reason"], f"missing.sh: the reason says so ({r['reason']})")

    if not os.environ.get("PASSAGE_BUILD_DIR"):
        expect(False, "PASSAGE_BUILD_DIR is set (passthrough-nodevice.sh needs passage; ctest sets it)")
    else:
        rc, r = run("passthrough-nodevice.sh", "--retries", "4")
        failed = {x["name"] for x in r["results"] if not x["ok"]}
        expect(rc == 1, f"passthrough-nodevice.sh: run.py exits 1 (got {rc})")
        expect("iommufd.edu.l2.edu.dma" in r["missing"] and "iommufd.edu.reuse.edu.cdev.dma" in r["missing"],
               f"passthrough-nodevice.sh: edu's expected results are named missing ({r['missing']})")
        expect({"iommufd.edu.l2.pci", "iommufd.edu.l2.edu.found"} <= failed,
               f"passthrough-nodevice.sh: L2 fails its own checks for the absent edu ({sorted(failed)})")
        expect(not any(n.startswith("l1.") for n in failed) and r["powered_off"],
               "passthrough-nodevice.sh: and for nothing else (no scenario error, L1 powered off)")

    print(f"negative: {'PASS' if not errors else 'FAIL: ' + '; '.join(errors)}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
