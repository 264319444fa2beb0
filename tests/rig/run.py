#!/usr/bin/env python3
"""Run one rig scenario in the nested rig and report its results.

L0 is QEMU (TCG, q35, an emulated Intel IOMMU, QEMU's edu device and an NVMe
drive) booting L1: the project's test kernel with the L1 initramfs. L1 binds
the devices the scenario asks for to vfio-pci, runs the scenario script, prints
RIG-RESULT lines on the serial console and powers off. This script builds (or
reuses) the kernel and initramfs, appends the scenario (and any files it asks
for) to the initramfs as a second cpio archive, runs QEMU with a timeout,
records the serial log, and checks the results.

Exit status: 0 when L1 produced at least one result, every result passed, the
scenario exited 0, no result line was lost, and L1 powered off by itself;
1 otherwise; 2 on a usage or scenario-header error; 77 (ctest's SKIP) when
qemu-system-x86_64 is not installed.

Scenario header lines (anywhere in the file, any number, KEY=VALUE words):
  # rig: bind=1234:11e8,1b36:0010   vendor:device IDs L1 binds to vfio-pci
  # rig: timeout=300                seconds from QEMU start to power-off
  # rig: mem=2G smp=2               L0 QEMU -m / -smp (L1's memory and CPUs)
  # rig: add=SRC:DEST               put SRC (relative to the scenario's
                                    directory; $VARS expanded) at DEST in L1
  # rig: bin=PATH[:DEST]            an executable plus the libraries ldd names
  # rig: l2=yes                     put the L2 kernel and initramfs at
                                    /rig/l2/bzImage, /rig/l2/initramfs.cpio.gz
  # rig: qemu="-device e1000e"      extra L0 QEMU arguments
  # rig: append="foo=1"             extra L1 kernel command-line words
  # rig: stall=330                  a console silent this long means L1 froze
                                    (a known TCG problem): ended, retried
  # rig: python=SCRIPT              python3 in L1 (/usr/bin/python3, from
                                    $RIG_PYTHON, default /usr/bin/python3)
                                    with the stdlib modules SCRIPT imports
                                    (pyzip.py); put SCRIPT itself with add=
  # rig: expect=NAME[,NAME...]      results the run must produce: names or
                                    shell-style patterns (*, ?, [..]); each
                                    must match at least one result that
                                    arrived, or the run fails naming it
"""

import argparse
import bisect
import datetime
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
KERNEL_BUILD = os.path.join(ROOT, "guests", "kernel", "build.sh")
INITRAMFS_BUILD = os.path.join(ROOT, "guests", "initramfs", "build.sh")
SKIP = 77
DEFAULT_TIMEOUT = 300
# Two L1 vCPUs, multi-threaded TCG. With two vCPUs, QEMU's TCG (7.2 and
# 10.0 alike) sometimes lets one vCPU run the int3 of a live kernel patch after
# the other vCPU finished it: "Oops: int3" in __schedule when KVM creates or
# destroys a VM, in sched_clock_cpu at boot. Such runs are retried (FLAKE_RE);
# smp=1 avoids the race but must not host an L2 with more vCPUs than one (L1
# froze), and single-threaded TCG stalls nested guests. README, "Known limits".
DEFAULT_SMP = "2"
DEFAULT_ACCEL = "tcg"
# tsc=unstable: with a stable TSC, L1 flips the sched_clock_stable static key
# at late boot (one of the patches that raced when smp=2); this avoids it.
# no_timer_check: under load, TCG is too slow for the kernel's boot-time check
# that the timer ticks through the (interrupt-remapped) IO-APIC, and L1
# panicked "timer doesn't work through Interrupt-remapped IO-APIC" (1 of ~30
# boots with three rigs on two cores).
# nokaslr: a stalled L1's rip and stack are named from the kernel's System.map
# (probe_stall).
BASE_APPEND = "console=ttyS0 intel_iommu=on iommu=pt panic=-1 quiet tsc=unstable no_timer_check nokaslr"

# A kernel (L1's, or a nested guest's shown on L1's console) executing a stale
# int3 of a live patch: QEMU's multi-threaded TCG race (README, "Known
# limits"), not something a scenario or passage can cause. A failed run with
# this in its log is retried (--retries).
FLAKE_RE = re.compile(r"Oops: int3")
# L2's hrtimer_interrupt interrupted by its own local APIC timer while it holds
# the per-CPU hrtimer base lock with interrupts off, the nested handler then
# spinning on that lock for ever (the L2 stack the scenario's deadline dump
# names, README "Known limits"). An interrupt delivered with IF=0 is injected
# by L1's KVM through TCG's nested SVM; passage sets no vCPU register or event
# after boot. Seen three times with this very stack (2026-12-02 signals,
# 2026-12-03 stability loop, 2026-12-03 CI hotplug_fds), so it is retried too.
# The same with the periodic tick of early boot: hrtimer_run_queues holds
# that lock when the interrupt comes (2026-12-03, a cold run's rig.sandbox,
# L2 at a PCI config read). The function that took the lock must appear
# again under the interrupt frame: the lock is the one it holds.
L2_TIMER_DEADLOCK_RE = re.compile(
    r"L2 kernel: vCPU \d+ rip 0x[0-9a-f]+ = queued_spin_lock_slowpath\+0x[0-9a-f]+; "
    r"stack: _raw_spin_lock_irqsave\+0x[0-9a-f]+ (hrtimer_interrupt|hrtimer_run_queues)\+0x[0-9a-f]+ "
    r".*asm_sysvec_apic_timer_interrupt\+0x[0-9a-f]+ .*\1\+0x[0-9a-f]+")
# A third form (2026-12-03, the same cold run's rig.pci): the scheduler's
# hrtick, run by hrtimer_interrupt from the local APIC timer interrupt,
# spinning on its runqueue lock. The interrupted frame is past the six stack
# words passage's dump shows, but every rig L2 runs one vCPU (-smp 1): only
# the interrupted context can hold that lock, which is taken with interrupts
# off, so again an interrupt taken with IF=0.
L2_HRTICK_DEADLOCK_RE = re.compile(
    r"L2 kernel: vCPU 0 rip 0x[0-9a-f]+ = queued_spin_lock_slowpath\+0x[0-9a-f]+; "
    r"stack: hrtick\+0x[0-9a-f]+ .*__hrtimer_run_queues\+0x[0-9a-f]+ hrtimer_interrupt\+0x[0-9a-f]+ "
    r"__sysvec_apic_timer_interrupt\+0x[0-9a-f]+")
FLAKES = ((FLAKE_RE, lambda m: m.group(0)),
          (L2_TIMER_DEADLOCK_RE, lambda m: f"L2 timer interrupt taken with IF=0 (nested {m.group(1)} deadlock)"),
          (L2_HRTICK_DEADLOCK_RE, lambda m: "L2 timer interrupt taken with IF=0 (hrtick's runqueue lock, one vCPU)"))

# Seconds of console silence between key presses (--stall-nudge key).
NUDGE_S = 20
MARKER_RE = re.compile(r"(RIG-BOOT|RIG-RESULT|RIG-DONE) (\{.*\})\s*$")


def cache_dir():
    return os.environ.get("PASSAGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "passage")


class HeaderError(Exception):
    pass


class SetupError(Exception):
    pass


def parse_header(path):
    """Reads the '# rig:' lines of a scenario into a dict of options."""
    opts = {"stall": 0, "bind": [], "timeout": None, "mem": "2G", "smp": DEFAULT_SMP, "add": [], "bin": [],
            "l2": False, "qemu": [], "append": [], "expect": [], "python": []}
    base = os.path.dirname(os.path.abspath(path))

    def expand(value, where):
        v = os.path.expanduser(os.path.expandvars(value))
        m = re.search(r"\$\{?(\w+)", v)
        if m:
            raise HeaderError(f"{where}: environment variable {m.group(1)} is not set")
        return v

    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = re.match(r"\s*#\s*rig:(.*)$", line)
            if not m:
                continue
            where = f"{path}:{lineno}"
            try:
                words = shlex.split(m.group(1))
            except ValueError as e:
                raise HeaderError(f"{where}: {e}")
            for word in words:
                key, eq, value = word.partition("=")
                if not eq or not value:
                    raise HeaderError(f"{where}: '{word}' is not KEY=VALUE")
                if key == "bind":
                    for ident in value.split(","):
                        if not re.fullmatch(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{4}", ident):
                            raise HeaderError(f"{where}: bind: '{ident}' is not vvvv:dddd")
                        opts["bind"].append(ident.lower())
                elif key == "timeout":
                    if not re.fullmatch(r"[0-9]+", value) or int(value) <= 0:
                        raise HeaderError(f"{where}: timeout: '{value}' is not a positive number of seconds")
                    opts["timeout"] = int(value)
                elif key == "mem":
                    if not re.fullmatch(r"[0-9]+[MG]?", value):
                        raise HeaderError(f"{where}: mem: '{value}' (want e.g. 2G or 1536M)")
                    opts["mem"] = value
                elif key == "stall":
                    if not value.isdigit() or int(value) < 30:
                        raise HeaderError(f"{where}: stall= takes seconds (at least 30)")
                    opts["stall"] = int(value)
                elif key == "smp":
                    if not re.fullmatch(r"[1-9][0-9]*", value):
                        raise HeaderError(f"{where}: smp: '{value}' is not a CPU count")
                    opts["smp"] = value
                elif key == "add":
                    value = expand(value, where)
                    src, sep, dest = value.rpartition(":/")
                    if not sep or not src:
                        raise HeaderError(f"{where}: add: '{value}' is not SRC:/DEST")
                    src = os.path.join(base, src)
                    if not os.path.exists(src):
                        raise HeaderError(f"{where}: add: {src} does not exist")
                    opts["add"].append(f"{src}:/{dest}")
                elif key == "bin":
                    value = expand(value, where)
                    src, sep, dest = value.rpartition(":/")
                    if not sep:
                        src, dest = value, None
                    src = os.path.join(base, src)
                    if not (os.path.isfile(src) and os.access(src, os.X_OK)):
                        raise HeaderError(f"{where}: bin: {src} is not an executable file")
                    opts["bin"].append(src if dest is None else f"{src}:/{dest}")
                elif key == "python":
                    src = os.path.join(base, expand(value, where))
                    if not os.path.isfile(src):
                        raise HeaderError(f"{where}: python: {src} is not a file")
                    opts["python"].append(src)
                elif key == "l2":
                    if value not in ("yes", "no"):
                        raise HeaderError(f"{where}: l2: '{value}' (want yes or no)")
                    opts["l2"] = value == "yes"
                elif key == "qemu":
                    opts["qemu"] += shlex.split(value)
                elif key == "append":
                    opts["append"] += shlex.split(value)
                elif key == "expect":
                    for pattern in value.split(","):
                        if not re.fullmatch(r"[A-Za-z0-9_.:*?\[\]!/-]+", pattern):
                            raise HeaderError(f"{where}: expect: '{pattern}' is not a result name or pattern")
                        if pattern not in opts["expect"]:
                            opts["expect"].append(pattern)
                else:
                    raise HeaderError(f"{where}: unknown rig option '{key}'")
    return opts


def missing_expected(expect, results):
    """The expect= patterns that no arrived result's name matches."""
    names = [r["name"] for r in results]
    return [p for p in expect if not any(fnmatch.fnmatchcase(n, p) for n in names)]


def run_tool(argv, what):
    """Runs a build script; its progress goes to our stderr, its last stdout line is the result."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    except OSError as e:
        raise SetupError(f"{what}: {e}")
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        raise SetupError(f"{what} failed (exit {p.returncode}): {' '.join(argv)}")
    return lines[-1]


class Monitor:
    """QEMU's QMP socket: what L1's CPU is doing when its console goes silent."""

    def __init__(self, path):
        self.path, self.sock, self.buf = path, None, b""

    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.path)
        self.sock, self.buf = s, b""
        self._reply()  # greeting
        self.execute("qmp_capabilities")

    def _reply(self):
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise OSError("QMP socket closed")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, command, **arguments):
        if self.sock is None:
            self._connect()
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        msg = self._reply()
        if "error" in msg:
            raise OSError(f"QMP {command}: {msg['error'].get('desc')}")
        return msg.get("return")

    def hmp(self, command_line):
        return self.execute("human-monitor-command", **{"command-line": command_line})

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Serial:
    """Reads QEMU's stdout (the serial console) into a log file and parses the markers."""

    def __init__(self, stream, log, verbose, start):
        self.stream, self.log, self.verbose, self.start = stream, log, verbose, start
        self.results, self.boot, self.done, self.bad_lines = [], None, None, []
        self.boot_at = self.done_at = None
        self.flake = None
        self.lock = threading.Lock()  # the log is shared with probe_stall
        self.last_at = time.monotonic()  # when the console last said anything
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for raw in iter(self.stream.readline, b""):
            self.last_at = time.monotonic()
            line = raw.decode("utf-8", "replace").replace("\r", "").rstrip("\n")
            with self.lock:
                self.log.write(line + "\n")
                self.log.flush()
            if self.verbose:
                print(f"| {line}", flush=True)
            self._parse(line)

    def _parse(self, line):
        if self.flake is None:
            for regex, name in FLAKES:
                m = regex.search(line)
                if m:
                    self.flake = name(m)
                    break
        m = MARKER_RE.search(line)
        if not m:
            if "RIG-RESULT" in line or "RIG-DONE" in line:
                self.bad_lines.append(line)
            return
        kind, payload = m.groups()
        try:
            obj = json.loads(payload)
        except ValueError:
            self.bad_lines.append(line)
            return
        now = round(time.monotonic() - self.start, 2)
        if kind == "RIG-BOOT":
            self.boot, self.boot_at = obj, now
            if not self.verbose:
                print(f"rig: {str(obj.get('image', '?')).upper()} up after {now:.1f} s (kernel {obj.get('kernel', '?')})",
                      flush=True)
        elif kind == "RIG-DONE":
            self.done, self.done_at = obj, now
        else:
            if not (isinstance(obj.get("name"), str) and isinstance(obj.get("ok"), bool)):
                self.bad_lines.append(line)
                return
            obj.setdefault("detail", "")
            obj["t"] = now
            self.results.append(obj)
            if not self.verbose:
                detail = obj["detail"] if not obj["ok"] else obj["detail"].split("\n")[0][:100]
                print(f"  {'ok  ' if obj['ok'] else 'FAIL'} {obj['name']}: {detail}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Scenario header options: see the top of this file, or tests/rig/README.md.")
    ap.add_argument("scenario", nargs="?", help="scenario script, or the name of one in tests/rig/scenarios/")
    ap.add_argument("--timeout", type=int, help=f"seconds (default: the scenario's, else {DEFAULT_TIMEOUT})")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (initrd, nvme image)")
    ap.add_argument("--log-dir", help="where serial logs go (default: $PASSAGE_CACHE/rig/logs)")
    ap.add_argument("--kernel", help="bzImage to boot (default: guests/kernel/build.sh's)")
    ap.add_argument("--image", choices=("l1", "l2"), default="l1",
                    help="l2: boot the L2 image directly in L0 (checks the L2 image itself)")
    ap.add_argument("--add", action="append", default=[], metavar="SRC:DEST", help="extra file for the guest")
    ap.add_argument("--add-bin", action="append", default=[], metavar="BIN[:DEST]",
                    help="extra executable plus its libraries")
    ap.add_argument("--accel", default=os.environ.get("RIG_ACCEL", DEFAULT_ACCEL),
                    help=f"L0 QEMU -accel (default: $RIG_ACCEL, else {DEFAULT_ACCEL}; see README)")
    ap.add_argument("--retries", type=int, default=2,
                    help="re-run a failed run whose log shows a known emulator flake (FLAKES); default 2")
    ap.add_argument("--stall-nudge", choices=("key", "none"), default=os.environ.get("RIG_STALL_NUDGE", "key"),
                    help=f"with stall=, press a key on L1's PS/2 keyboard every {NUDGE_S} s of console silence "
                         "(L1 under TCG can sit on a pending timer interrupt until some interrupt arrives), or "
                         "not (none); default $RIG_STALL_NUDGE, else key")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo the serial console")
    args = ap.parse_args()

    if args.scenario is None and args.image == "l1":
        ap.error("a scenario is required (e.g. tests/rig/scenarios/baseline.sh)")
    scenario = None
    if args.scenario:
        scenario = args.scenario
        if not os.path.exists(scenario) and os.path.exists(os.path.join(HERE, "scenarios", scenario + ".sh")):
            scenario = os.path.join(HERE, "scenarios", scenario + ".sh")
        if not os.path.isfile(scenario):
            print(f"rig: error: scenario {args.scenario} not found", file=sys.stderr)
            return 2
        scenario = os.path.abspath(scenario)
    name = os.path.splitext(os.path.basename(scenario))[0] if scenario else "l2-direct"

    qemu = shutil.which(os.environ.get("PASSAGE_QEMU", "qemu-system-x86_64"))
    if not qemu:
        print("rig: SKIP: qemu-system-x86_64 not found (install Debian's qemu-system-x86: tests/install-deps.sh)")
        return SKIP

    try:
        opts = parse_header(scenario) if scenario else parse_header(os.devnull)
    except (HeaderError, OSError) as e:
        print(f"rig: error: {e}", file=sys.stderr)
        return 2
    if args.image == "l2" and opts["bind"]:
        print("rig: error: bind= needs the L1 image (the L2 image binds nothing)", file=sys.stderr)
        return 2
    timeout = args.timeout or opts["timeout"] or DEFAULT_TIMEOUT

    t0 = time.monotonic()
    log_dir = args.log_dir or os.path.join(cache_dir(), "rig", "logs")
    os.makedirs(log_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = os.path.abspath(os.path.join(log_dir, f"{name}-{stamp}-{os.getpid()}.log"))
    tmp = tempfile.mkdtemp(prefix=f"rig-{name}-")
    report = {"scenario": name, "scenario_path": scenario, "image": args.image, "ok": False, "reason": "",
              "stall": opts.get("stall", 0),
              "results": [], "expected": opts["expect"], "missing": [], "done": None, "powered_off": False,
              "timed_out": False, "qemu_exit": None,
              "times": {}, "kernel": None, "log": log_path, "qemu_cmd": None, "attempts": [], "stalls": [],
              "nudges": []}
    try:
        return run(args, opts, scenario, name, qemu, timeout, tmp, log_path, report, t0)
    except SetupError as e:
        report["reason"] = str(e)
        print(f"rig: error: {e}", file=sys.stderr)
        return 1
    finally:
        report["times"]["total_s"] = round(time.monotonic() - t0, 2)
        if args.json:
            with open(args.json + ".tmp", "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2)
                f.write("\n")
            os.replace(args.json + ".tmp", args.json)
        if args.keep:
            print(f"rig: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def python_files(scripts, tmp):
    """--add/--add-bin arguments for python3 in L1: the interpreter (its
    libraries with it), a python3X.zip holding only the stdlib modules the
    scripts import (pyzip.py: a trace of `SCRIPT --help`, so imports at the
    top of the script), and an empty lib-dynload directory (without it the
    interpreter complains on stderr that it cannot find its platform
    libraries). The interpreter must have _socket, select and fcntl built in
    (Debian's does); extension modules are not copied."""
    python = os.environ.get("RIG_PYTHON", "/usr/bin/python3")
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise SetupError(f"python= needs an interpreter for L1: {python} ($RIG_PYTHON)")
    zips = os.path.join(tmp, "pyzip")
    os.makedirs(zips, exist_ok=True)
    stdlib = run_tool([python, os.path.join(HERE, "pyzip.py"), zips] + scripts, "pyzip.py")
    files = ["--add-bin", f"{python}:/usr/bin/python3", "--add", f"{stdlib}:/usr/lib/{os.path.basename(stdlib)}"]
    version = run_tool([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], "python version")
    dynload = os.path.join(zips, "lib-dynload")
    os.makedirs(dynload, exist_ok=True)
    files += ["--add", f"{dynload}:/usr/lib/python{version}/lib-dynload"]
    return files


def make_rom(path):
    """Writes an 8 KiB PCI expansion ROM image for edu (romfile=): a valid
    header and PCI data structure (so the host kernel's ROM checks accept it),
    code type EFI (so L1's SeaBIOS does not run it), and bytes that differ
    everywhere, so a guest that reads it back can be checked byte for byte."""
    size = 8192
    body = bytearray()
    block = b"passage expansion rom"
    while len(body) < size:
        block = hashlib.sha256(block).digest()
        body += block
    rom = bytearray(body[:size])
    rom[0:3] = bytes([0x55, 0xAA, size // 512])
    rom[3] = 0xCB  # retf, should anything call the entry point
    rom[0x18:0x1A] = (0x1C).to_bytes(2, "little")
    pcir = b"PCIR" + (0x1234).to_bytes(2, "little") + (0x11E8).to_bytes(2, "little") + bytes(2) + \
        (0x18).to_bytes(2, "little") + bytes([3, 0x00, 0xFF, 0x00]) + (size // 512).to_bytes(2, "little") + \
        bytes(2) + bytes([0x03, 0x80]) + bytes(2)
    rom[0x1C:0x1C + len(pcir)] = pcir
    rom[-1] = (-sum(rom[:-1])) & 0xFF  # bytes sum to zero, as option ROMs do
    with open(path, "wb") as f:
        f.write(rom)


class KernelSymbols:
    """Names addresses in the kernel's text from its System.map (L1 boots
    nokaslr, BASE_APPEND, so the map applies to L1 as it is)."""

    def __init__(self, path):
        self.addrs, self.names = [], []
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[1] in "tTwW":
                        self.addrs.append(int(parts[0], 16))
                        self.names.append(parts[2])
        except OSError:
            pass

    def name(self, addr):
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0 or self.names[i] in ("_etext", "__entry_text_end"):
            return f"0x{addr:x}"
        return f"{self.names[i]}+0x{addr - self.addrs[i]:x}"


def stack_text_words(dump):
    """The words of an HMP `x/NNgx` dump that lie in the kernel's text
    mapping (0xffffffff80000000 up to the modules at 0xffffffffc0000000), in
    order: the return addresses of a scan-style backtrace."""
    words = [int(w, 16) for line in dump.splitlines() for w in re.findall(r"0x([0-9a-f]{16})", line.split(":", 1)[-1])]
    return [w for w in words if 0xffffffff80000000 <= w < 0xffffffffc0000000]


def press_key(monitor):
    """A shift press and release on L1's PS/2 keyboard (QMP send-key): IRQ 1
    through L1's IOAPIC to its local APIC. L1 ignores the key itself."""
    return monitor.execute("send-key", keys=[{"type": "qcode", "data": "shift"}])


def probe_stall(monitor, log, silent_s, symbols=None):
    """Logs what L1's CPU is doing (QMP), then sends it an NMI. Returns a
    summary. With `symbols` (L1's System.map) the rip of three samples 0.5 s
    apart and the kernel-text words on the stack are named: where L1 spins,
    and how it got there."""
    try:
        regs = monitor.hmp("info registers") or ""
        lapic = monitor.hmp("info lapic") or ""
        rips, stack = [], ""
        fields = dict(re.findall(r"\b(RIP|RSP)=([0-9a-f]+)", regs))
        if symbols is not None and symbols.addrs and "RIP" in fields:
            rips.append(int(fields["RIP"], 16))
            stack = monitor.hmp(f"x/64gx 0x{fields.get('RSP', '0')}") or ""
            for _ in range(2):
                time.sleep(0.5)
                more = re.search(r"\bRIP=([0-9a-f]+)", monitor.hmp("info registers") or "")
                if more:
                    rips.append(int(more.group(1), 16))
        monitor.execute("inject-nmi")
    except (OSError, ValueError) as e:
        return f"QMP failed: {e}"
    named = []
    if rips:
        named.append("L1 rip (3 samples, 0.5 s apart): " + ", ".join(symbols.name(r) for r in rips))
        words = stack_text_words(stack)
        named.append("L1 stack (kernel-text words at rsp): " +
                     (" ".join(symbols.name(w) for w in words[:24]) or "none"))
    for line in [f"console silent for {silent_s:.0f} s; L1's CPU state, then an NMI:"] + \
            regs.splitlines() + lapic.splitlines() + named:
        log.write(f"rig-monitor| {line.rstrip()}\n")
    log.flush()
    fields = dict(re.findall(r"\b(RIP|EIP|HLT|CPL|RFL|EFL)=(\S+)", regs))
    summary = " ".join(f"{k}={v}" for k, v in fields.items()) or "no registers"
    if rips:
        summary += f" at {symbols.name(rips[0])}"
    return summary


def boot(cmd, log_path, timeout, args, report, tmp, symbols=None):
    """Runs QEMU once; returns (proc, serial, run_s, qemu stderr)."""
    stderr_path = os.path.join(tmp, "qemu.stderr")
    qmp_path = os.path.join(tmp, "qmp.sock")
    if os.path.exists(qmp_path):
        os.unlink(qmp_path)
    cmd = cmd + ["-qmp", f"unix:{qmp_path},server=on,wait=off"]
    monitor = Monitor(qmp_path)
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        serial = Serial(proc.stdout, log, args.verbose, start)
        try:
            # L1 under TCG can halt with its timer interrupt pending in the
            # local APIC's IRR and never take it (README "Known limits"); a
            # new external interrupt makes it. So while the console is silent
            # run.py presses a key on L1's PS/2 keyboard every NUDGE_S s
            # (IRQ 1 through the IOAPIC; L1 ignores the key) unless
            # --stall-nudge none. A stall (no console output for `stall` s
            # while QEMU lives) is L1 frozen all the same: run.py logs L1's
            # CPU state and sends it an NMI; if the console stays silent 20 s
            # more (or L1 stalls a third time), the run is ended and, like the
            # int3 flake, retried.
            stall = report.get("stall") or 0
            poked_at, pokes, nudged_at = None, 0, start
            while proc.poll() is None:
                now = time.monotonic()
                if now - start > timeout:
                    report["timed_out"] = True
                    break
                silent = now - serial.last_at
                if stall and args.stall_nudge == "key" and silent > NUDGE_S and now - nudged_at > NUDGE_S:
                    try:
                        press_key(monitor)
                        nudged_at = now
                        report["nudges"].append({"at_s": round(now - start, 1), "silent_s": round(silent)})
                        with serial.lock:
                            log.write(f"rig-monitor| console silent for {silent:.0f} s: a key press (send-key)\n")
                    except (OSError, ValueError) as e:
                        print(f"rig: send-key failed: {e}", flush=True)
                if stall and poked_at is not None and serial.last_at < poked_at:
                    if now - poked_at > 20:
                        serial.flake = f"L1 stalled: no console output for {stall} s, nor after an NMI"
                        break
                elif stall and silent > stall:
                    if pokes >= 2:
                        serial.flake = f"L1 stalled a third time (no console output for {stall} s)"
                        break
                    with serial.lock:
                        summary = probe_stall(monitor, log, silent, symbols)
                    poked_at, pokes = time.monotonic(), pokes + 1
                    report["stalls"].append({"at_s": round(now - start, 1), "cpu": summary})
                    print(f"rig: L1 console silent for {silent:.0f} s ({summary}); sent an NMI", flush=True)
                time.sleep(1)
        except KeyboardInterrupt:
            report["reason"] = "interrupted"
        finally:
            monitor.close()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        serial.thread.join(timeout=5)
    with open(stderr_path, "rb") as f:
        qemu_err = f.read().decode("utf-8", "replace").strip()
    return proc, serial, round(time.monotonic() - start, 2), qemu_err


def run(args, opts, scenario, name, qemu, timeout, tmp, log_path, report, t0):
    kernel = args.kernel or os.environ.get("PASSAGE_KERNEL")
    if not kernel:
        # guests/kernel/build.sh starts a cold build by wiping its work tree:
        # keep two rig runs from building at once.
        os.makedirs(cache_dir(), exist_ok=True)
        with open(os.path.join(cache_dir(), ".rig-kernel.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            kernel = run_tool([KERNEL_BUILD], "kernel build")
    if not os.path.isfile(kernel):
        raise SetupError(f"kernel {kernel} does not exist")
    version_file = os.path.join(os.path.dirname(kernel), "version")
    report["kernel"] = {"path": kernel, "version": open(version_file).read().strip()
                        if os.path.exists(version_file) else None}
    image = run_tool([INITRAMFS_BUILD, args.image], f"{args.image} initramfs build")

    # The scenario and the files it needs travel in a second cpio archive.
    env_path = os.path.join(tmp, "env")
    with open(env_path, "w") as f:
        mem = opts["mem"]
        mem_mb = int(mem[:-1]) * 1024 if mem.endswith("G") else int(mem.rstrip("M"))
        f.write(f"RIG_SCENARIO={shlex.quote(name)}\nRIG_BIND={shlex.quote(' '.join(opts['bind']))}\n"
                f"RIG_SMP={opts['smp']}\nRIG_MEM_MB={mem_mb}\n")
    files = ["--add", f"{env_path}:/rig/env"]
    if scenario:
        files += ["--add", f"{scenario}:/rig/scenario.sh"]
    if opts["l2"]:
        l2 = run_tool([INITRAMFS_BUILD, "l2"], "l2 initramfs build")
        files += ["--add", f"{kernel}:/rig/l2/bzImage", "--add", f"{l2}:/rig/l2/initramfs.cpio.gz"]
        # The kernel's symbols (guests/kernel/build.sh keeps them beside the
        # bzImage): a stuck L2's rip gets a name (lib/passthrough.sh l2_diag).
        system_map = os.path.join(os.path.dirname(kernel), "System.map")
        if os.path.isfile(system_map):
            files += ["--add", f"{system_map}:/rig/l2/System.map"]
        else:
            print(f"rig: no {system_map}: a stuck L2's rip stays unnamed", flush=True)
    if opts["python"]:
        files += python_files(opts["python"], tmp)
    for a in opts["add"] + args.add:
        files += ["--add", a]
    for b in opts["bin"] + args.add_bin:
        files += ["--add-bin", b]
    payload = run_tool([INITRAMFS_BUILD, "payload", "--out", os.path.join(tmp, "payload.cpio")] + files,
                       "payload build")
    initrd = os.path.join(tmp, "initrd")
    with open(initrd, "wb") as out:
        with open(image, "rb") as f:
            shutil.copyfileobj(f, out)
        # An uncompressed archive must start 4-byte aligned; zeros between archives are skipped.
        out.write(b"\0" * (-out.tell() % 512))
        with open(payload, "rb") as f:
            shutil.copyfileobj(f, out)
    nvme = os.path.join(tmp, "nvme.img")
    rom = os.path.join(tmp, "edu.rom")
    make_rom(rom)

    # The L2 image checks itself against what it is told (l2/init): L0's
    # -smp and -m. (L0's PCI functions are checked by the scenario.)
    expectations = [f"rig.cpus={opts['smp']}", f"rig.mem={opts['mem']}"] if args.image == "l2" else []
    cmd = [qemu, "-machine", "q35,kernel-irqchip=split", "-accel", args.accel, "-cpu", "max",
           "-smp", opts["smp"], "-m", opts["mem"], "-nographic", "-no-reboot",
           "-device", "intel-iommu,intremap=on,caching-mode=on",
           "-device", f"edu,romfile={rom}",
           "-drive", f"file={nvme},if=none,id=nv0,format=raw", "-device", "nvme,serial=rig0,drive=nv0",
           "-kernel", kernel, "-initrd", initrd,
           "-append", " ".join([BASE_APPEND] + expectations + opts["append"])] + opts["qemu"]
    report["qemu_cmd"] = cmd
    l1_symbols = KernelSymbols(os.path.join(os.path.dirname(kernel), "System.map"))
    report["times"]["prepare_s"] = round(time.monotonic() - t0, 2)
    print(f"rig: {name}: booting {args.image.upper()} (timeout {timeout} s); log {log_path}", flush=True)

    attempt = 0
    while True:
        attempt += 1
        with open(nvme, "wb") as f:
            f.truncate(64 << 20)
        proc, serial, run_s, qemu_err = boot(cmd, log_path, timeout, args, report, tmp, l1_symbols)
        failed_run = (report["timed_out"] or proc.returncode != 0 or serial.done is None
                      or any(not r["ok"] for r in serial.results)
                      or missing_expected(opts["expect"], serial.results))
        if not (failed_run and serial.flake and attempt <= args.retries and not report["reason"]):
            break
        report["attempts"].append({"log": log_path, "flake": serial.flake, "run_s": run_s})
        print(f"rig: {name}: known emulator flake ({serial.flake}); see README. Retrying "
              f"({attempt}/{args.retries}).", flush=True)
        report["timed_out"] = False
        log_path = re.sub(r"(\.retry\d+)?\.log$", f".retry{attempt}.log", log_path)
        report["log"] = log_path
    results = serial.results
    failed = [r for r in results if not r["ok"]]
    done = serial.done
    report.update(results=results, done=done, qemu_exit=proc.returncode, qemu_stderr=qemu_err or None,
                  garbled_lines=serial.bad_lines)
    report["times"].update(run_s=run_s, boot_s=serial.boot_at, done_s=serial.done_at)
    report["powered_off"] = (not report["timed_out"] and proc.returncode == 0 and done is not None)

    reasons = []
    if report["reason"]:
        reasons.append(report["reason"])
    if report["timed_out"]:
        reasons.append(f"timed out after {timeout} s")
    elif proc.returncode != 0:
        reasons.append(f"qemu exited {proc.returncode}")
    if serial.boot is None:
        reasons.append("L1 never started /init (no RIG-BOOT line)" if args.image == "l1" else "no RIG-BOOT line")
    if done is None:
        reasons.append("no RIG-DONE line (init did not finish; panic or hang?)")
    else:
        if done.get("rc") != 0:
            reasons.append(f"scenario exited {done.get('rc')}")
        if done.get("results") != len(results):
            reasons.append(f"guest emitted {done.get('results')} results, {len(results)} arrived intact")
    if not results:
        reasons.append("no results")
    if failed:
        reasons.append(f"{len(failed)} failed: {', '.join(r['name'] for r in failed[:8])}")
    missing = missing_expected(opts["expect"], results)
    report.update(expected=opts["expect"], missing=missing)
    if missing:
        reasons.append(f"{len(missing)} expected result(s) never arrived: {', '.join(missing)}")
        if not args.verbose:
            for p in missing:
                print(f"  MISS {p}: declared by expect=, no result matched", flush=True)
    if reasons and serial.flake:
        reasons.append(f"the log shows '{serial.flake}', a known emulator flake (tests/rig/README.md)")
    report["flake"] = serial.flake
    report["ok"] = not reasons
    report["reason"] = "; ".join(reasons)

    if qemu_err and (reasons or args.verbose):
        print("rig: qemu stderr:\n" + "\n".join("  " + l for l in qemu_err.splitlines()[:20]))
    retried = f" after {len(report['attempts'])} flake retr{'y' if len(report['attempts']) == 1 else 'ies'}" \
        if report["attempts"] else ""
    summary = (f"rig: {name}: {'PASS' if report['ok'] else 'FAIL'}{retried}: "
               f"{len(results) - len(failed)}/{len(results)} ok, "
               f"{args.image.upper()} {'powered off' if report['powered_off'] else 'did not power off'}, "
               f"qemu {run_s:.1f} s (total {time.monotonic() - t0:.1f} s), "
               f"{len(report['nudges'])} key press(es) in console silences, {len(report['stalls'])} stall(s)")
    if reasons:
        summary += f" -- {report['reason']}"
    print(summary)
    print(f"rig: log: {log_path}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
