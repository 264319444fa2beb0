#!/usr/bin/env python3
"""The L2 side of scenarios/hotplug.sh against QEMU as the VMM, in L0.

Boots the L2 image with scenarios/lib/hotplug-l2.sh as its scenario in
QEMU (-machine pc: ACPI PCI hotplug on bus 0, what passage offers too) and
drives QEMU with tests/qmp/qmp-client.py: edu added (L2 tests it), removed
(DEVICE_DELETED; L2 lists what is left), nvme added (L2's driver binds, data,
MSI-X), then system_powerdown (L2's acpid sees the power button, L2 powers
off, SHUTDOWN). So the watcher, the client and the kernel's acpiphp are known
good before passage's side is judged by the same steps. Exit 0 when every
step and every L2 result passed.

  selfcheck/hotplug-qemu.py [--kernel BZIMAGE] [-v]
Needs QEMU, the test kernel (with CONFIG_HOTPLUG_PCI_ACPI) and
PASSAGE_BUILD_DIR (edu-test). Run under the rig lock
(flock /tmp/passage-rig.lock ...): it is a QEMU.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RIG = os.path.dirname(HERE)
ROOT = os.path.normpath(os.path.join(RIG, "..", ".."))
CLIENT = os.path.join(ROOT, "tests", "qmp", "qmp-client.py")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", help="bzImage (default: guests/kernel/build.sh's, which must be cached)")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo L2's console")
    ap.add_argument("--power-only", action="store_true",
                    help="only the power button (for a kernel without ACPI PCI hotplug)")
    args = ap.parse_args()
    build = os.environ.get("PASSAGE_BUILD_DIR")
    if not build:
        print("hotplug-qemu: PASSAGE_BUILD_DIR is not set (edu-test)", file=sys.stderr)
        return 2
    kernel = args.kernel or subprocess.run([os.path.join(ROOT, "guests", "kernel", "build.sh")],
                                           stdout=subprocess.PIPE, text=True, check=True).stdout.split()[-1]
    l2 = subprocess.run([os.path.join(ROOT, "guests", "initramfs", "build.sh"), "l2"],
                        stdout=subprocess.PIPE, text=True, check=True).stdout.split()[-1]
    fails = []
    with tempfile.TemporaryDirectory(prefix="hotplug-qemu-") as tmp:
        payload = os.path.join(tmp, "p.cpio")
        subprocess.run([os.path.join(ROOT, "guests", "initramfs", "build.sh"), "payload", "--out", payload,
                        "--add", f"{os.path.join(RIG, 'scenarios', 'lib', 'hotplug-l2.sh')}:/rig/scenario.sh",
                        "--add-bin", f"{os.path.join(build, 'guests', 'l2tests', 'edu-test')}:/usr/bin/edu-test"],
                       stdout=subprocess.DEVNULL, check=True)
        initrd = os.path.join(tmp, "initrd")
        with open(initrd, "wb") as out:
            out.write(open(l2, "rb").read())
            out.write(b"\0" * (-out.tell() % 512))
            out.write(open(payload, "rb").read())
        nvme = os.path.join(tmp, "nvme.img")
        with open(nvme, "wb") as f:
            f.truncate(64 << 20)
        sock = os.path.join(tmp, "qmp.sock")
        cmd = ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-cpu", "max", "-m", "512M", "-smp", "1",
               "-nographic", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
               "-append", "console=ttyS0 panic=-1 quiet nokaslr rig.cpus=1 rig.mem=512M",
               "-drive", f"file={nvme},if=none,id=nv0,format=raw",
               "-qmp", f"unix:{sock},server=on,wait=off"]
        qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []

        def read():
            for raw in iter(qemu.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").replace("\r", "").rstrip("\n")
                lines.append(line)
                if args.verbose:
                    print(f"| {line}", flush=True)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def wait(pattern, secs):
            t0 = time.monotonic()
            while time.monotonic() - t0 < secs:
                for line in lines:
                    if re.search(pattern, line):
                        return line
                if qemu.poll() is not None:
                    break
                time.sleep(0.5)
            return None

        def step(name, ok, detail):
            print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
            if not ok:
                fails.append(name)
            return ok

        def client(*a):
            p = subprocess.run([sys.executable, CLIENT, sock, "--event-timeout", "120"] + list(a),
                               capture_output=True, text=True)
            return p.returncode == 0, (p.stdout.strip().splitlines() or [""])[-1] + p.stderr.strip()

        try:
            if step("watching", wait(r"^HOTPLUG-WATCHING", 300) is not None, "L2's watcher runs") and \
                    not args.power_only:
                step("edu.add", *client("device_add driver=edu id=edu0"))
                step("edu.l2", (l := wait(r"^HOTPLUG-ADDED 1 .* 1234:11e8", 180)) is not None, l)
                step("edu.del", *client("device_del id=edu0", "--wait-event", "DEVICE_DELETED:device=edu0"))
                step("edu.gone", (l := wait(r"^HOTPLUG-REMOVED 1 ", 180)) is not None and "1234:11e8" not in
                     l.split("lspci:")[-1], l)
                step("nvme.add", *client("device_add driver=nvme id=nvme0 drive=nv0 serial=hot0"))
                step("nvme.l2", (l := wait(r"^HOTPLUG-ADDED 2 .* 1b36:0010", 180)) is not None, l)
            step("powerdown", *client("system_powerdown", "--wait-event", "POWERDOWN", "--wait-event", "SHUTDOWN"))
            qemu.wait(timeout=120)
        except subprocess.TimeoutExpired:
            step("qemu.exit", False, "QEMU still running 120 s after the last step")
        finally:
            if qemu.poll() is None:
                qemu.kill()
                qemu.wait()
        reader.join(timeout=5)
    results = [json.loads(m.group(1)) for m in (re.search(r"RIG-RESULT (\{.*\})", l) for l in lines) if m]
    for r in results:
        if not r["ok"]:
            step(f"l2.{r['name']}", False, r["detail"])
    done = [l for l in lines if "RIG-DONE" in l]
    step("l2.done", bool(done) and '"rc":0' in done[-1], f"{len(results)} L2 results; {done[-1] if done else 'no RIG-DONE'}")
    names = {r["name"] for r in results}
    wants = ["add.1.edu.dma", "add.1.edu.msi", "del.1.gone", "add.2.nvme.data", "add.2.nvme.msix", "power_button"]
    for want in wants[-1:] if args.power_only else wants:
        step(f"l2.{want}", want in names, "present" if want in names else "never came")
    print(f"hotplug-qemu: {'PASS' if not fails else 'FAIL: ' + ', '.join(fails)}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
