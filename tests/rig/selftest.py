#!/usr/bin/env python3
"""Host-side checks of the rig: run.py's header and console parsing, the guest
shell helpers (guests/initramfs/rootfs/rig/lib.sh under busybox sh), and the
initramfs builder's payload and image contents, the edu ROM image, and the
QMP probe used on a stalled L1 (against a paused QEMU with no guest, when
qemu-system-x86_64 is installed). A few seconds."""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import run  # noqa: E402

LIB = os.path.join(ROOT, "guests", "initramfs", "rootfs", "rig", "lib.sh")
BUILD = os.path.join(ROOT, "guests", "initramfs", "build.sh")
BUSYBOX = os.environ.get("BUSYBOX", "/bin/busybox")


class Rom(unittest.TestCase):
    def test_rom_image_passes_the_kernels_checks(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "rom")
            run.make_rom(path)
            rom = open(path, "rb").read()
        # What Linux's pci_get_rom_size walks: 0xAA55, the PCIR pointer at
        # 0x18, the image length (512-byte units) and the last-image bit.
        self.assertEqual(len(rom), 8192)
        self.assertEqual(rom[0:2], b"\x55\xaa")
        pcir = int.from_bytes(rom[0x18:0x1A], "little")
        self.assertEqual(rom[pcir:pcir + 4], b"PCIR")
        self.assertEqual(int.from_bytes(rom[pcir + 4:pcir + 8], "little"), 0x11E81234)
        self.assertEqual(int.from_bytes(rom[pcir + 16:pcir + 18], "little") * 512, len(rom))
        self.assertEqual(rom[pcir + 20], 0x03, "EFI code type: SeaBIOS must not run it")
        self.assertTrue(rom[pcir + 21] & 0x80)
        self.assertEqual(sum(rom) % 256, 0)
        self.assertGreater(len(set(rom[0x100:0x200])), 100, "content should vary")


QEMU = shutil.which("qemu-system-x86_64")


@unittest.skipUnless(QEMU, "qemu-system-x86_64 missing")
class Qmp(unittest.TestCase):
    def monitor(self):
        """A stopped q35 QEMU (TCG) with a QMP socket; its run.Monitor."""
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        sock = os.path.join(d, "qmp.sock")
        p = subprocess.Popen([QEMU, "-machine", "q35", "-accel", "tcg", "-S", "-display", "none",
                              "-nodefaults", "-qmp", f"unix:{sock},server=on,wait=off"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        monitor = run.Monitor(sock)
        self.addCleanup(monitor.close)
        return monitor

    def test_probe_stall_reads_registers_and_sends_an_nmi(self):
        log = io.StringIO()
        summary = run.probe_stall(self.monitor(), log, 42)
        # A reset CPU sits at the reset vector, F000:FFF0.
        self.assertIn("EIP=0000fff0", summary)  # real mode: EIP
        self.assertIn("HLT=0", summary)
        self.assertIn("console silent for 42 s", log.getvalue())
        self.assertIn("rig-monitor| EAX=", log.getvalue())
        self.assertIn("LVTT", log.getvalue(), "the local APIC timer state")

    def test_memory_dump_format_is_what_stack_text_words_reads(self):
        # probe_stall reads L1's stack with HMP x/64gx; the words come as
        # "ADDR: 0x%016x 0x%016x" lines.
        dump = self.monitor().hmp("x/4gx 0xf0000")  # real mode at reset: the BIOS area
        lines = dump.strip().splitlines()
        self.assertEqual(len(lines), 2, dump)
        for line in lines:
            self.assertRegex(line, r"^[0-9a-f]+: 0x[0-9a-f]{16} 0x[0-9a-f]{16}$")
        self.assertEqual(run.stack_text_words(dump), [], "BIOS bytes are not kernel text")

    def test_send_key_is_accepted(self):
        # run.py's nudge in a console silence (--stall-nudge key).
        self.assertEqual(run.press_key(self.monitor()), {})


class Symbols(unittest.TestCase):
    def test_kernel_symbols_and_stack_words(self):
        with tempfile.NamedTemporaryFile("w", suffix=".map", delete=False) as f:
            f.write("0000000000000000 A fixed_percpu_data\nffffffff81000000 T _text\n"
                    "ffffffff81000100 t default_idle\nffffffff81000180 D not_text\n"
                    "ffffffff81000200 T do_idle\nffffffff81000300 T _etext\n")
        self.addCleanup(os.unlink, f.name)
        k = run.KernelSymbols(f.name)
        self.assertEqual(k.name(0xffffffff81000123), "default_idle+0x23")
        self.assertEqual(k.name(0xffffffff81000200), "do_idle+0x0")
        self.assertEqual(k.name(0xffffffff81000350), "0xffffffff81000350", "past _etext")
        self.assertEqual(k.name(0x1000), "0x1000")
        self.assertEqual(run.KernelSymbols("/nonexistent").addrs, [])
        dump = ("ffffc90000013e00: 0xffffffff81000123 0x0000000000000001\n"
                "ffffc90000013e10: 0xffffffffc0001000 0xffffffff81000210\n")
        self.assertEqual(run.stack_text_words(dump), [0xffffffff81000123, 0xffffffff81000210],
                         "text words in order; the address column and module addresses are not")


class Header(unittest.TestCase):
    def write(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_all_keys(self):
        os.environ["RIG_SELFTEST_DIR"] = os.path.dirname(BUILD)
        p = self.write("# rig: bind=1234:11E8,1b36:0010 timeout=120\n"
                       "#rig: mem=1536M smp=4 l2=yes\n"
                       "# rig: add=$RIG_SELFTEST_DIR/build.sh:/opt/b.sh bin=/bin/sh\n"
                       "# rig: qemu=\"-device e1000e\" append=\"loglevel=7 foo\"\n"
                       "echo '# not: a header'\n")
        o = run.parse_header(p)
        self.assertEqual(o["bind"], ["1234:11e8", "1b36:0010"])
        self.assertEqual((o["timeout"], o["mem"], o["smp"], o["l2"]), (120, "1536M", "4", True))
        self.assertEqual(o["add"], [BUILD + ":/opt/b.sh"])
        self.assertEqual(o["bin"], ["/bin/sh"])
        self.assertEqual(o["qemu"], ["-device", "e1000e"])
        self.assertEqual(o["append"], ["loglevel=7", "foo"])

    def test_expect(self):
        p = self.write("# rig: expect=a.b,x.*.dma\n# rig: expect=a.b expect=c?\n")
        o = run.parse_header(p)
        self.assertEqual(o["expect"], ["a.b", "x.*.dma", "c?"])
        results = [{"name": n, "ok": True} for n in ["a.b", "x.edu.l2.edu.dma", "cd"]]
        self.assertEqual(run.missing_expected(o["expect"], results), [])
        self.assertEqual(run.missing_expected(o["expect"], results[:1]), ["x.*.dma", "c?"])
        # A result that arrived and failed is not missing (it fails the run by itself).
        self.assertEqual(run.missing_expected(["a.b"], [{"name": "a.b", "ok": False}]), [])
        self.assertEqual(run.missing_expected(["a.b"], [{"name": "a.bc", "ok": True}]), ["a.b"])

    def test_errors(self):
        for bad in ["# rig: expect=a;b\n", "# rig: expect=a,,b\n", "# rig: bind=1234\n", "# rig: timeout=0\n", "# rig: nosuch=1\n", "# rig: smp\n",
                    "# rig: add=/nonexistent/x:/y\n", "# rig: add=$RIG_SELFTEST_UNSET/x:/y\n",
                    "# rig: add=foo\n", "# rig: l2=maybe\n", f"# rig: bin={LIB}\n"]:
            with self.subTest(bad=bad), self.assertRaises(run.HeaderError) as cm:
                run.parse_header(self.write(bad))
            self.assertIn(":1:", str(cm.exception))


class Scenarios(unittest.TestCase):
    def test_every_scenario_declares_its_results(self):
        """A scenario states what it must produce (expect=), so a check that never ran fails the run."""
        d = os.path.join(HERE, "scenarios")
        for name in sorted(os.listdir(d)):
            if not name.endswith(".sh"):
                continue
            with self.subTest(scenario=name), open(os.path.join(d, name)) as f:
                self.assertRegex(f.read(), r"(?m)^\s*#\s*rig:.*\bexpect=", f"{name} declares no expect=")


class Console(unittest.TestCase):
    def parse(self, text):
        log = io.StringIO()
        s = run.Serial(io.BytesIO(text.encode()), log, verbose=True, start=time.monotonic())
        s.thread.join()
        return s, log.getvalue()

    def test_markers(self):
        import contextlib
        with contextlib.redirect_stdout(io.StringIO()):
            s, log = self.parse(
                "[    1.0] booting\r\n"
                'RIG-BOOT {"image":"l1","kernel":"7.3"}\r\n'
                'RIG-RESULT {"name":"a","ok":true,"detail":"x \\"q\\""}\r\n'
                '[    2.0] vfio-pci 0000:00:03.0: warn RIG-RESULT {"name":"b","ok":false,"detail":""}\n'
                'RIG-RESULT {"name":"c","ok":tr[    2.1] garbled\n'
                'RIG-RESULT {"name":"d","detail":"no ok"}\n'
                '[    4.8] Oops: int3: 0000 [#1] SMP NOPTI\n'
                'RIG-DONE {"rc":0,"results":4,"failed":1}\n')
        self.assertEqual(s.boot["kernel"], "7.3")
        self.assertEqual([(r["name"], r["ok"]) for r in s.results], [("a", True), ("b", False)])
        self.assertEqual(s.results[0]["detail"], 'x "q"')
        self.assertEqual(len(s.bad_lines), 2)
        self.assertEqual(s.done["results"], 4)
        self.assertNotIn("\r", log)
        self.assertEqual(s.flake, "Oops: int3")

    # The L2 deadlock line as CI's rig.hotplug_fds printed it (2026-12-03).
    L2_DEADLOCK = ("L2 kernel: vCPU 0 rip 0xffffffff81ea2445 = queued_spin_lock_slowpath+0x85; stack: "
                   "_raw_spin_lock_irqsave+0x2d hrtimer_interrupt+0x5c update_cfs_rq_load_avg+0x29 "
                   "__sysvec_apic_timer_interrupt+0x50 sysvec_apic_timer_interrupt+0x39 "
                   "asm_sysvec_apic_timer_interrupt+0x1a ktime_get_update_offsets_now+0x2c hrtimer_interrupt+0x10c;\n")

    # The early-boot variant (periodic tick), as a cold run's rig.sandbox
    # printed it (2026-12-03).
    L2_DEADLOCK_TICK = ("L2 kernel: vCPU 0 rip 0xffffffff81ea2445 = queued_spin_lock_slowpath+0x85; stack: "
                        "_raw_spin_lock_irqsave+0x2d hrtimer_run_queues+0x48 update_process_times+0x2f "
                        "update_wall_time+0x2d tick_periodic+0x24 tick_handle_periodic+0x26 "
                        "__sysvec_apic_timer_interrupt+0x50 sysvec_apic_timer_interrupt+0x39 "
                        "asm_sysvec_apic_timer_interrupt+0x1a ktime_get_update_offsets_now+0x2c "
                        "__timekeeping_advance.constprop.0+0x3a9 hrtimer_run_queues+0x69 update_process_times+0x2f "
                        "update_wall_time+0x2d;\n")

    # hrtick's runqueue lock, as the same cold run's rig.pci printed it.
    L2_DEADLOCK_HRTICK = ("L2 kernel: vCPU 0 rip 0xffffffff81ea2445 = queued_spin_lock_slowpath+0x85; stack: "
                          "hrtick+0x38 hrtick+0x0 __hrtimer_run_queues+0xe4 hrtimer_interrupt+0xf6 "
                          "__sysvec_apic_timer_interrupt+0x50 sysvec_apic_timer_interrupt+0x6e;\n")

    def test_l2_timer_deadlock_is_a_known_flake(self):
        import contextlib
        for line, fn in ((self.L2_DEADLOCK, "hrtimer_interrupt"), (self.L2_DEADLOCK_TICK, "hrtimer_run_queues"),
                         (self.L2_DEADLOCK_HRTICK, "hrtick")):
            with self.subTest(fn=fn), contextlib.redirect_stdout(io.StringIO()):
                s, _ = self.parse("  FAIL hotfds.watching: after 180 s:\n" + line)
                self.assertIsNotNone(s.flake)
                self.assertIn("IF=0", s.flake)
                self.assertIn(fn, s.flake)

    def test_other_l2_spinlock_hangs_are_not(self):
        # A spinlock hang without the nested timer interrupt is not the known
        # flake (it could be passage's), and neither is the stack one frame short.
        import contextlib
        for line in ("L2 kernel: vCPU 0 rip 0xffffffff81ea2445 = queued_spin_lock_slowpath+0x85; stack: "
                     "_raw_spin_lock_irqsave+0x2d uart_write+0x40 n_tty_write+0x100;\n",
                     self.L2_DEADLOCK.replace(" ktime_get_update_offsets_now+0x2c hrtimer_interrupt+0x10c", ""),
                     # the lock taken by one function, the other under the frame
                     self.L2_DEADLOCK_TICK.replace("hrtimer_run_queues+0x69", "hrtimer_interrupt+0x69"),
                     # hrtick on another vCPU than 0, or not under the timer interrupt
                     self.L2_DEADLOCK_HRTICK.replace("vCPU 0", "vCPU 1"),
                     self.L2_DEADLOCK_HRTICK.replace("hrtimer_interrupt+0xf6 ", "tick_nohz_handler+0xf6 "),
                     self.L2_DEADLOCK.replace("queued_spin_lock_slowpath", "default_idle")):
            with self.subTest(line=line[:90]), contextlib.redirect_stdout(io.StringIO()):
                s, _ = self.parse(line)
                self.assertIsNone(s.flake)


def sh(script, env=None):
    p = subprocess.run([BUSYBOX, "sh", "-c", f". {LIB}\n{script}"], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout, p.stderr


@unittest.skipUnless(os.access(BUSYBOX, os.X_OK), f"{BUSYBOX} missing")
class ShellHelpers(unittest.TestCase):
    def setUp(self):
        fd, self.results = tempfile.mkstemp()
        os.close(fd)
        self.addCleanup(os.unlink, self.results)
        self.env = {"RIG_RESULTS": self.results}

    def lines(self, out):
        return [json.loads(l.split(" ", 1)[1]) for l in out.splitlines() if l.startswith("RIG-RESULT ")]

    def test_result_escaping(self):
        tricky = 'quote " back \\ tab \t ctrl \x01 end\nsecond line'
        rc, out, err = sh('result "n\\"ame" true "$T"', dict(self.env, T=tricky))
        self.assertEqual(rc, 0, err)
        (r,) = self.lines(out)
        self.assertEqual(r, {"name": 'n"ame', "ok": True, "detail": tricky.replace("\x01", "")})
        with open(self.results) as f:
            self.assertEqual(f.read(), out)

    def test_ok_values(self):
        cases = {"true": True, "ok": True, "pass": True, "0": True, "false": False, "fail": False,
                 "1": False, "17": False, "maybe": False, "": False}
        for arg, want in cases.items():
            with self.subTest(arg=arg):
                rc, out, _ = sh(f'result x "{arg}" detail', self.env)
                self.assertEqual(self.lines(out)[0]["ok"], want)
                self.assertEqual(rc, 0 if want else 1)

    def test_check_and_done(self):
        rc, out, err = sh("check yes true; check no sh -c 'echo boom; exit 3'; rig_done 5", self.env)
        yes, no = self.lines(out)
        self.assertTrue(yes["ok"])
        self.assertFalse(no["ok"])
        self.assertIn("exited 3", no["detail"])
        self.assertIn("boom", no["detail"])
        self.assertIn('RIG-DONE {"rc":5,"results":2,"failed":1}', out)

    def test_run_scenario(self):
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
            f.write("result inner true \"helpers work in $(pwd)\"\nno_such_command_xyz\necho out\nexit 3\n")
        self.addCleanup(os.unlink, f.name)
        rc, out, err = sh(f"rig_run_scenario {f.name} l1; echo rc=$?", self.env)
        got = {r["name"]: r for r in self.lines(out)}
        self.assertTrue(got["inner"]["ok"])
        self.assertIn("in /tmp", got["inner"]["detail"])
        self.assertFalse(got["l1.scenario.stderr"]["ok"])
        self.assertIn("no_such_command_xyz", got["l1.scenario.stderr"]["detail"])
        self.assertFalse(got["l1.scenario.exit"]["ok"])
        self.assertIn("l1-stderr: ", out)
        self.assertIn("\nout\n", out)
        self.assertIn("rc=3", out)
        with open(f.name, "w") as g:
            g.write("result fine true ok\n")
        rc, out, err = sh(f"rig_run_scenario {f.name} l1; echo rc=$?", self.env)
        self.assertEqual([r["name"] for r in self.lines(out)], ["fine"])
        self.assertIn("rc=0", out)

    def test_bounded(self):
        fd, console = tempfile.mkstemp()
        os.close(fd)
        self.addCleanup(os.unlink, console)
        env = dict(self.env, RIG_CONSOLE=console)
        # Within the deadline: the command's status; redirections reach it.
        rc, out, err = sh("bounded 20 sh -c 'echo to-out; exit 7' > /dev/null; echo rc=$?", env)
        self.assertEqual(out.strip(), "rc=7", err)
        # Standard input reaches the command (a pipe, not /dev/null).
        rc, out, err = sh("echo piped | bounded 20 cat", env)
        self.assertEqual(out.strip(), "piped", err)
        # At the deadline: a dump of the command's threads, SIGTERM, 124.
        t0 = time.monotonic()
        rc, out, err = sh("bounded 1 sleep 30; echo rc=$?", env)
        self.assertEqual(out.strip(), "rc=124", err)
        with open(console) as f:
            self.assertLess(time.monotonic() - t0, 10, f.read())
        with open(console) as f:
            dump = f.read()
        self.assertIn("sleep (pid ", dump)
        self.assertIn("still running after 1 s; SIGTERM", dump)
        self.assertRegex(dump, r"rig:   thread \d+ \(sleep\) [RSD]")
        # RIG_BOUNDED_HOOK runs at the deadline with the pid, while the command still runs.
        rc, out, err = sh("hook() { echo \"hook $1 $(cat /proc/$2/comm)\" > $RIG_CONSOLE.hook; }\n"
                          "RIG_BOUNDED_HOOK='hook x' bounded 1 sleep 30; echo rc=$?", env)
        self.addCleanup(os.unlink, console + ".hook")
        self.assertEqual(out.strip(), "rc=124", err)
        with open(console + ".hook") as f:
            self.assertEqual(f.read(), "hook x sleep\n")

    def test_gtest(self):
        fake = ("printf '%s\\n' '[ RUN      ] A.b' '[       OK ] A.b (0 ms)' '[ RUN      ] A.c' 'boom at x.cc:3' "
                "'[  FAILED  ] A.c (1 ms)' '[ RUN      ] A.d' '[  SKIPPED ] A.d (0 ms)' '[  FAILED  ] 1 test'; exit 1")
        rc, out, err = sh(f"rig_gtest p sh -c \"{fake}\"", self.env)
        got = {r["name"]: r for r in self.lines(out)}
        self.assertEqual(sorted(got), ["p.A.b", "p.A.c", "p.A.d", "p.gtest_exit"], err)
        self.assertTrue(got["p.A.b"]["ok"])
        self.assertFalse(got["p.A.c"]["ok"])
        self.assertIn("boom at x.cc:3", got["p.A.c"]["detail"])
        self.assertFalse(got["p.A.d"]["ok"], "a skipped test fails in the rig")
        self.assertFalse(got["p.gtest_exit"]["ok"])

    def test_import(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write('junk\r\n[ 1.0] RIG-RESULT {"name":"cpus","ok":true,"detail":"2"}\r\n'
                    'RIG-RESULT {"name":"pci","ok":false,"detail":"x"}\n'
                    'RIG-DONE {"rc":0,"results":2,"failed":1}\n')
        self.addCleanup(os.unlink, f.name)
        rc, out, err = sh(f"rig_import l2 {f.name}", self.env)
        got = [(r["name"], r["ok"]) for r in self.lines(out)]
        self.assertEqual(got, [("l2.cpus", True), ("l2.pci", False), ("l2.done", True)])
        with open(f.name, "w") as g:
            g.write('RIG-RESULT {"name":"cpus","ok":true,"detail":"2"}\n')
        rc, out, err = sh(f"rig_import l2 {f.name}", self.env)
        self.assertEqual(self.lines(out)[-1]["ok"], False)
        self.assertIn("no RIG-DONE", self.lines(out)[-1]["detail"])


@unittest.skipUnless(os.access(BUSYBOX, os.X_OK), f"{BUSYBOX} missing")
class GuestChecks(unittest.TestCase):
    """lib.sh's checks of a guest against rig.cpus=, rig.mem=, rig.pci= (the L2 /init's)."""

    def setUp(self):
        fd, self.results = tempfile.mkstemp()
        os.close(fd)
        self.addCleanup(os.unlink, self.results)
        self.sys = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.sys)

    def device(self, bdf, vendor, device):
        d = os.path.join(self.sys, "bus", "pci", "devices", bdf)
        os.makedirs(d)
        for name, value in [("vendor", vendor), ("device", device), ("class", "0x00ff00"), ("irq", "11"),
                            ("resource", "0x00000000fe000000 0x00000000fe0fffff 0x0000000000040200\n")]:
            with open(os.path.join(d, name), "w") as f:
                f.write(value + "\n")

    def check(self, cmdline, cpus=1, kb=170000):
        rc, out, err = sh(f'rig_check_guest "$C" {cpus} {kb} {self.sys}',
                          {"RIG_RESULTS": self.results, "C": cmdline})
        self.assertEqual(err, "")
        return {json.loads(l.split(" ", 1)[1])["name"]: json.loads(l.split(" ", 1)[1])
                for l in out.splitlines() if l.startswith("RIG-RESULT ")}

    def test_as_asked(self):
        self.device("0000:00:00.0", "0x8086", "0x29c0")
        self.device("0000:00:04.0", "0x1234", "0x11e8")
        got = self.check("quiet rig.cpus=1 rig.mem=200M rig.pci=00:00.0=8086:29c0,00:04.0=1234:11e8")
        self.assertEqual({n: r["ok"] for n, r in got.items()},
                         {"l2.cpus": True, "l2.memtotal": True, "l2.pci.0000:00:00.0": True,
                          "l2.pci.0000:00:04.0": True, "l2.pci": True}, got)
        self.assertIn("bar0=mem 0xfe000000+0x100000", got["l2.pci.0000:00:04.0"]["detail"])

    def test_each_check_can_fail(self):
        self.device("0000:00:00.0", "0x8086", "0x29c0")
        self.device("0000:00:05.0", "0x1234", "0x11e8")
        # edu expected at 00:04.0 but sits at 00:05.0; nvme never came; 2 CPUs for -smp 1; 100 MB for 200M.
        got = self.check("rig.cpus=1 rig.mem=200M rig.pci=00:00.0=8086:29c0,00:04.0=1234:11e8,00:06.0=1b36:0010",
                         cpus=2, kb=100000)
        self.assertFalse(got["l2.cpus"]["ok"])
        self.assertFalse(got["l2.memtotal"]["ok"])
        self.assertTrue(got["l2.pci.0000:00:00.0"]["ok"])
        self.assertFalse(got["l2.pci.0000:00:05.0"]["ok"])
        self.assertIn("not expected", got["l2.pci.0000:00:05.0"]["detail"])
        self.assertFalse(got["l2.pci"]["ok"])
        self.assertIn("missing: 00:04.0=1234:11e8 00:06.0=1b36:0010", got["l2.pci"]["detail"])
        # Right place, wrong IDs.
        got = self.check("rig.cpus=1 rig.mem=200M rig.pci=00:00.0=8086:29c0,00:05.0=1b36:0010")
        self.assertFalse(got["l2.pci.0000:00:05.0"]["ok"])
        self.assertTrue(got["l2.pci"]["ok"])
        # MemTotal above the RAM given.
        self.assertFalse(self.check("rig.cpus=1 rig.mem=200M", kb=204801)["l2.memtotal"]["ok"])

    def test_nothing_asked_fails(self):
        got = self.check("console=ttyS0 quiet")
        self.assertFalse(got["l2.cpus"]["ok"])
        self.assertFalse(got["l2.memtotal"]["ok"])
        self.assertFalse(got["l2.pci"]["ok"], "no PCI function at all")
        self.assertFalse(self.check("rig.cpus=1 rig.mem=2X")["l2.memtotal"]["ok"])

    def test_mem_sizes(self):
        for size, kb in [("200M", 204800), ("1G", 1048576), ("512", 524288)]:
            rc, out, _ = sh(f"rig_mem_kb {size}")
            self.assertEqual(out.strip(), str(kb), size)
        for bad in ["", "M", "1GM", "1.5G", "1K"]:
            rc, out, _ = sh(f"rig_mem_kb '{bad}'; echo rc=$?")
            self.assertIn("rc=1", out, bad)

    def test_interrupts(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("           CPU0       CPU1\n  4:        120          0   IO-APIC   4-edge      ttyS0\n"
                    "LOC:       5000       4000   Local timer interrupts\n")
        self.addCleanup(os.unlink, f.name)
        rc, out, _ = sh(f"rig_check_interrupts {f.name}", {"RIG_RESULTS": self.results})
        self.assertEqual(rc, 0, out)
        with open(f.name, "w") as g:
            g.write("           CPU0       CPU1\n  4:        120          0   IO-APIC   4-edge      ttyS0\n"
                    "LOC:       5000          0   Local timer interrupts\n")
        rc, out, _ = sh(f"rig_check_interrupts {f.name}", {"RIG_RESULTS": self.results})
        self.assertEqual(rc, 1, "CPU1 took no timer interrupt")
        with open(f.name, "w") as g:
            g.write("           CPU0\n  4:          0   IO-APIC   4-edge      ttyS0\nLOC:       5000   Local\n")
        rc, out, _ = sh(f"rig_check_interrupts {f.name}", {"RIG_RESULTS": self.results})
        self.assertEqual(rc, 1, "the serial line never fired")


@unittest.skipUnless(os.access(BUSYBOX, os.X_OK), f"{BUSYBOX} missing")
class PassthroughExpect(unittest.TestCase):
    """scenarios/lib/passthrough.sh: what L2 is told from passage's arguments."""

    def test_rig_pci_from_device_args(self):
        lib = os.path.join(HERE, "scenarios", "lib", "passthrough.sh")
        with open(lib) as f:
            text = f.read()
        funcs = "".join(text[text.index(f"\n{name}() {{") + 1:].split("\n}\n", 1)[0] + "\n}\n"
                        for name in ("devices_of", "l2_expect"))
        with tempfile.TemporaryDirectory() as d:
            for bdf, v, dev in [("0000:00:03.0", "0x1234", "0x11e8"), ("0000:00:04.0", "0x1b36", "0x0010")]:
                os.makedirs(os.path.join(d, "bus/pci/devices", bdf))
                for n, val in [("vendor", v), ("device", dev)]:
                    with open(os.path.join(d, "bus/pci/devices", bdf, n), "w") as f:
                        f.write(val + "\n")
            script = funcs + (
                'cd /tmp; HOST_BRIDGE=00:00.0=8086:29c0 PT_SYSFS=$D\n'
                'l2_expect 200M -object iommufd,id=a -device vfio-pci,host=0000:00:03.0,iommufd=a,addr=1 '
                '-device vfio-pci,host=00:04.0,id=n; echo "$L2_EXPECT|$(echo "$L2_DEVICES" | tr "\\n" ";")"\n'
                'l2_expect 200M -device vfio-pci,sysfsdev=/sys/bus/pci/devices/0000:00:04.0,addr=1f.0 '
                '-device vfio-pci,host=0000:00:03.0,iommufd=b; echo "$L2_EXPECT"\n'
                'L2_PCI=x l2_expect 200M; echo "$L2_EXPECT"\n')
            p = subprocess.run([BUSYBOX, "sh", "-c", script], capture_output=True, text=True,
                               env=dict(os.environ, D=d))
        self.assertEqual(p.stderr, "")
        first, second, third = p.stdout.splitlines()
        # addr=1 takes slot 1, so the device without addr= takes slot 2.
        self.assertEqual(first.split("|")[0], "00:00.0=8086:29c0,00:01.0=1234:11e8,00:02.0=1b36:0010")
        self.assertEqual(first.split("|")[1], "0000:00:03.0 iommufd:a;0000:00:04.0 legacy;")
        self.assertEqual(second, "00:00.0=8086:29c0,00:1f.0=1b36:0010,00:01.0=1234:11e8")
        self.assertEqual(third, "x")


@unittest.skipUnless(os.access(BUSYBOX, os.X_OK), f"{BUSYBOX} missing")
class StuckL2(unittest.TestCase):
    """lib.sh's l2_symbol, l2_diag and wait_l2 (what a failed wait for an L2
    marker shows), against a fake passage."""
    # A passage stand-in: on SIGUSR1 it writes a state dump like passage's.
    FAKE = ("trap 'printf \"passage: state dump (SIGUSR1)\\npassage: vCPU 0: rip=0xffffffff81000123 rsp=0x1 "
            "lapic: tpr=0x0 isr=[] irr=[236] last_exit=HLT stack=[0xffffffff81000210 0x1 0xffffffff81000105]\\n"
            "passage: uart COM1: ier=0x0\\n"
            "passage: ioapic pin 4: vector=0x24\\n\" >&2' USR1; while :; do sleep 0.1; done")

    def setUp(self):
        self.d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.d)
        self.map = os.path.join(self.d, "System.map")
        with open(self.map, "w") as f:
            f.write("0000000000000000 A fixed_percpu_data\nffffffff81000000 T _text\nffffffff81000100 t "
                    "default_idle\nffffffff81000100 D not_text\nffffffff81000200 T do_idle\n"
                    "ffffffff81000300 T _etext\n")
        with open(os.path.join(self.d, "fake.sh"), "w") as f:
            f.write(self.FAKE)

    def run_sh(self, script):
        env = dict(os.environ, L2_SYSTEM_MAP=self.map, RIG_CONSOLE=os.path.join(self.d, "console"), D=self.d)
        p = subprocess.run([BUSYBOX, "sh", "-c", f". {LIB}\ncd $D\n{script}"],
                           capture_output=True, text=True, env=env, timeout=60)
        return p.stdout, p.stderr

    def test_symbol(self):
        out, err = self.run_sh("for r in 0xffffffff81000123 FFFFFFFF81000200 0xffffffff81000350 0x401000 zz; do\n"
                               "  l2_symbol $r; done; L2_SYSTEM_MAP=/nonexistent l2_symbol 0x1\n"
                               "echo --; l2_symbol 0xffffffff81000201 zz 0xffffffff810000ff")
        self.assertEqual(err, "")
        self.assertEqual(out.splitlines(), [
            "default_idle+0x23", "do_idle+0x0", "not in the kernel's text (user space or outside the map)",
            "not in the kernel's text (user space or outside the map)", "unnamed (not a hex address)",
            "unnamed (no /nonexistent: kernel built without it)",
            # several at once (one pass over the map), in the order given
            "--", "do_idle+0x1", "unnamed (not a hex address)", "_text+0xff"])

    def test_passage_of(self):
        # passage itself; passage as a wrapper's child (found by parent pid:
        # the rig kernel has no /proc/PID/task/TID/children); no passage.
        with open(os.path.join(self.d, "passage"), "w") as f:
            f.write("#!/bin/sh\nsleep 5\n")
        os.chmod(os.path.join(self.d, "passage"), 0o755)
        out, err = self.run_sh("./passage & p=$!; sh -c './passage & wait' & w=$!; sleep 0.5\n"
                               "c=$(passage_of $w); echo \"$(passage_of $p) $p\"\n"
                               "echo \"$c $w $(cat /proc/$c/comm) $(cut -d' ' -f4 /proc/$c/stat)\"\n"
                               "sleep 9 & s=$!; echo \"$(passage_of $s) $s\"; kill $p $w $s")
        self.assertEqual(err, "")
        direct, child, none = out.splitlines()
        a, b = direct.split()
        self.assertEqual(a, b, "passage itself")
        c, w, comm, ppid = child.split()
        self.assertNotEqual(c, w, "the wrapper's child, not the wrapper")
        self.assertEqual((comm, ppid), ("passage", w))
        a, b = none.split()
        self.assertEqual(a, b, "no passage child: the pid itself")

    def test_wait_and_diag(self):
        # The marker comes: 0, nothing to say.
        out, err = self.run_sh("printf 'boot\\r\\nREADY\\r\\n' > s; sh fake.sh 2> e & p=$!\n"
                               "wait_l2 t $p s e '^READY' 5; echo \"rc=$? waited=$WAITED diag=[$L2_DIAG]\"; kill $p")
        self.assertEqual((out, err), ("rc=0 waited=0 diag=[]\n", ""))
        # It never comes: the serial's tail, passage's dump, the rip named; passage runs on.
        out, err = self.run_sh("seq 1 9 | sed 's/^/line /; s/$/\\r/' > s\n"
                               "sh fake.sh -append 'quiet nokaslr' 2> e & p=$!\n"
                               "sleep 0.3; wait_l2 t $p s e '^READY' 2; rc=$?\n"
                               "echo \"rc=$rc waited=$WAITED alive=$(kill -0 $p && echo yes)\"; echo \"$L2_DIAG\"; kill $p")
        self.assertEqual(err, "")
        lines = out.splitlines()
        self.assertEqual(lines[0], "rc=1 waited=2 alive=yes")
        diag = "\n".join(lines[1:])
        self.assertIn("L2 serial, last 5 lines (each cut at 300 characters):\n  line 5\n  line 6\n  line 7\n  line 8\n  line 9\n", diag)
        self.assertIn("  passage: vCPU 0: rip=0xffffffff81000123 rsp=0x1 lapic: tpr=0x0 isr=[] irr=[236]", diag)
        self.assertIn("  passage: ioapic pin 4: vector=0x24", diag)
        self.assertIn("L2 kernel: vCPU 0 rip 0xffffffff81000123 = default_idle+0x23; stack: do_idle+0x10 "
                      "not in the kernel's text (user space or outside the map) default_idle+0x5;", diag)
        # A second dump 3 s later, named the same way.
        self.assertIn("\n3 s later:\n  passage: vCPU 0: rip=0xffffffff81000123", diag)
        self.assertEqual(diag.count("L2 kernel: vCPU 0 rip 0xffffffff81000123 = default_idle+0x23;"), 2, diag)
        with open(os.path.join(self.d, "console")) as f:
            console = f.read()
        self.assertIn("rig: t stuck| L2 kernel: vCPU 0 rip 0xffffffff81000123 = default_idle+0x23;", console)
        # A kernel booted without nokaslr: the map does not apply, the rip stays unnamed.
        out, err = self.run_sh("echo x > s; sh fake.sh 2> e & p=$!; sleep 0.3\n"
                               "wait_l2 t $p s e READY 1; echo \"$L2_DIAG\"; kill $p")
        self.assertIn("L2 kernel: vCPU 0 rip 0xffffffff81000123 = unnamed (L2 booted without nokaslr);", out)
        # passage gone first: its stderr and the serial's tail.
        out, err = self.run_sh("echo 'passage: -kernel: bad' > e; echo last > s; sh -c 'exit 1' & p=$!; sleep 0.2\n"
                               "wait_l2 t $p s e READY 5; echo \"rc=$? $L2_DIAG\"")
        self.assertEqual(err, "")
        self.assertIn("rc=1 passage exited before L2 printed /READY/; stderr: passage: -kernel: bad", out)
        self.assertIn("last 5 lines: last", out)

    # A passage stand-in stuck in L2's timer deadlock: rip and stack words
    # that the map below names as run.py's L2_TIMER_DEADLOCK_RE wants.
    DEADLOCK_MAP = ("ffffffff81000000 T _text\nffffffff81000400 T queued_spin_lock_slowpath\n"
                    "ffffffff81000500 T _raw_spin_lock_irqsave\nffffffff81000600 T hrtimer_interrupt\n"
                    "ffffffff81000700 T asm_sysvec_apic_timer_interrupt\nffffffff81000800 T _etext\n")
    STUCK = ("trap 'printf \"passage: state dump (SIGUSR1)\\npassage: vCPU 0: rip=0xffffffff81000485 rsp=0x1 "
             "rflags=0x2(IF=0) lapic: tpr=0x0 stack=[0xffffffff8100052d 0xffffffff8100065c 0xffffffff8100071a "
             "0xffffffff8100060c]\\npassage: uart COM1: ier=0x0\\npassage: ioapic pin 4: vector=0x24\\n\" >&2' USR1; "
             "while :; do sleep 0.1; done")

    def stuck_setup(self):
        with open(self.map, "w") as f:
            f.write(self.DEADLOCK_MAP)
        with open(os.path.join(self.d, "stuck.sh"), "w") as f:
            f.write(self.STUCK)

    def test_timer_deadlock_names(self):
        # The line CI printed (Console.L2_DEADLOCK) matches; a spinlock hang
        # elsewhere, or the stack one frame short, does not.
        good = Console.L2_DEADLOCK.replace("L2 kernel:", "")
        tick = Console.L2_DEADLOCK_TICK.replace("L2 kernel:", "")
        short = good.replace(" ktime_get_update_offsets_now+0x2c hrtimer_interrupt+0x10c", "")
        other = good.replace("hrtimer_interrupt+0x5c", "uart_write+0x40")
        mixed = tick.replace("hrtimer_run_queues+0x69", "hrtimer_interrupt+0x69")
        hrtick = Console.L2_DEADLOCK_HRTICK.replace("L2 kernel:", "")
        hrtick1 = hrtick.replace("vCPU 0", "vCPU 1")
        out, err = self.run_sh(f"for n in '{good}' '{tick}' '{short}' '{other}' '{mixed}' '{hrtick}' '{hrtick1}'; do\n"
                               "  l2_timer_deadlock \"$n\"; echo $?; done")
        self.assertEqual((out.split(), err), (["0", "0", "1", "1", "1", "0", "1"], ""))

    def test_deadlocked_wants_silence_and_the_stack_twice(self):
        self.stuck_setup()
        # First look notes the serial's size; the second, with nothing new
        # on it, takes two dumps 3 s apart, both in the deadlock: 0. New
        # serial output: 1 (and no dump taken).
        out, err = self.run_sh("echo boot > s; sh stuck.sh -append nokaslr 2> e & p=$!; sleep 0.3\n"
                               "l2_deadlocked t $p s e; echo a=$?; l2_deadlocked t $p s e; echo b=$?\n"
                               "echo more >> s; l2_deadlocked t $p s e; echo c=$?; grep -c 'state dump' e; kill $p")
        self.assertEqual((out.split(), err), (["a=1", "b=0", "c=1", "2"], ""))
        # The same silence with passage idling elsewhere (fake.sh: default_idle): 1.
        out, err = self.run_sh("echo boot > s; sh fake.sh -append nokaslr 2> e & p=$!; sleep 0.3\n"
                               "l2_deadlocked u $p s e; l2_deadlocked u $p s e; echo d=$?; kill $p")
        self.assertEqual((out.split(), err), (["d=1"], ""))
        # A kernel moved by KASLR: the map names nothing, so nothing is called stuck.
        out, err = self.run_sh("echo boot > s; sh stuck.sh 2> e & p=$!; sleep 0.3\n"
                               "l2_deadlocked v $p s e; l2_deadlocked v $p s e; echo e=$?; kill $p")
        self.assertEqual((out.split(), err), (["e=1"], ""))

    def test_bounded_ends_at_the_probe(self):
        self.stuck_setup()
        # l2_probe's files are /tmp/TAG.*: a tag of this test's own.
        tag = "selftest%d" % os.getpid()
        for ext in (".serial", ".err", ".diag"):
            self.addCleanup(lambda p="/tmp/" + tag + ext: os.path.exists(p) and os.unlink(p))
        self.addCleanup(lambda p="/tmp/.l2probe." + tag: os.path.exists(p) and os.unlink(p))
        t0 = time.monotonic()
        out, err = self.run_sh(f"echo boot > /tmp/{tag}.serial; rm -f /tmp/.l2probe.{tag}\n"
                               f"RIG_BOUNDED_TICK=1 RIG_BOUNDED_PROBE='l2_probe {tag}' "
                               f"RIG_BOUNDED_HOOK='l2_diag_quiet {tag}' bounded 120 sh stuck.sh nokaslr 2> /tmp/{tag}.err\n"
                               "echo rc=$?")
        took = time.monotonic() - t0
        self.assertEqual((out.strip(), err), ("rc=124", ""))
        self.assertLess(took, 60, "ended by the probe, not at the 120-s deadline")
        # The deadline's account (l2_diag, /tmp/TAG.diag) has the line run.py
        # retries on, and passage was asked for 4 dumps: 2 by the probe, 2 by it.
        with open(f"/tmp/{tag}.diag") as f:
            diag = f.read()
        self.assertRegex(diag, r"L2 kernel: vCPU 0 rip 0xffffffff81000485 = queued_spin_lock_slowpath\+0x85; "
                               r"stack: _raw_spin_lock_irqsave\+0x2d hrtimer_interrupt\+0x5c "
                               r"asm_sysvec_apic_timer_interrupt\+0x1a hrtimer_interrupt\+0xc;")
        with open(f"/tmp/{tag}.err") as f:
            self.assertEqual(f.read().count("state dump (SIGUSR1)"), 4)


class QmpClient(unittest.TestCase):
    """tests/qmp/qmp-client.py against a fake QMP server (a thread here): the
    negotiation, fds over SCM_RIGHTS with getfd, replies and events as JSON
    lines, expected refusals, event waits and the exit statuses."""

    CLIENT = os.path.join(ROOT, "tests", "qmp", "qmp-client.py")

    def setUp(self):
        import socket
        import threading
        self.d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.d)
        self.path = os.path.join(self.d, "qmp.sock")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(4)
        self.addCleanup(self.srv.close)
        self.got = []  # (command, [fstat of each fd that came with it])
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        import socket
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\n')
                buf = b""
                while True:
                    data, fds, _, _ = socket.recv_fds(conn, 4096, 4)
                    if not data:
                        break
                    stats = [os.fstat(fd) for fd in fds]
                    for fd in fds:
                        os.close(fd)
                    buf += data
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        cmd = json.loads(line)
                        self.got.append((cmd, stats))
                        stats = []
                        name, i = cmd["execute"], cmd.get("id")
                        if name == "hang-up":
                            conn.close()
                            break
                        if name == "object-del":
                            reply = {"error": {"class": "GenericError", "desc": "object 'io0' is in use"}}
                        elif name == "nosuch":
                            reply = {"error": {"class": "CommandNotFound", "desc": "no nosuch"}}
                        else:
                            reply = {"return": {}}
                        if name == "device_del":
                            conn.sendall(b'{"event": "DEVICE_DELETED", "data": {"device": "other"}}\n')
                        conn.sendall(json.dumps(dict(reply, id=i)).encode() + b"\n")
                        if name == "device_del":
                            conn.sendall(json.dumps({"event": "DEVICE_DELETED", "data": {
                                "device": cmd["arguments"]["id"], "path": "/machine/peripheral/x"}}).encode() + b"\n")
                    else:
                        continue
                    break

    def client(self, *args):
        p = subprocess.run([sys.executable, self.CLIENT, self.path] + list(args), capture_output=True, text=True,
                           timeout=60)
        return p.returncode, [json.loads(l) for l in p.stdout.splitlines()], p.stderr

    def test_commands_fds_events(self):
        f = os.path.join(self.d, "file")
        open(f, "w").close()
        rc, out, err = self.client("--fd", f"edu={f}", "device_add driver=vfio-pci id=edu0 fd=edu addr:=4",
                                   '{"execute": "device_del", "arguments": {"id": "edu0"}}',
                                   "--wait-event", "DEVICE_DELETED:device=edu0", "--event-timeout", "5")
        self.assertEqual((rc, err), (0, ""))
        names = [c["execute"] for c, _ in self.got]
        self.assertEqual(names, ["qmp_capabilities", "getfd", "device_add", "device_del"])
        getfd, stats = self.got[1]
        self.assertEqual(getfd["arguments"], {"fdname": "edu"})
        self.assertEqual([(s.st_dev, s.st_ino) for s in stats], [(os.stat(f).st_dev, os.stat(f).st_ino)])
        self.assertEqual(self.got[2][0]["arguments"], {"driver": "vfio-pci", "id": "edu0", "fd": "edu", "addr": 4})
        self.assertEqual(self.got[2][1], [], "no fd with a command that has none")
        self.assertIn("QMP", out[0])
        self.assertEqual(out[-1]["data"]["device"], "edu0")
        self.assertEqual(sum(1 for m in out if m.get("event") == "DEVICE_DELETED"), 2)

    def test_failures(self):
        rc, out, err = self.client("object-del id=io0")
        self.assertEqual(rc, 1)
        self.assertEqual(err, "qmp-client: object-del: GenericError: object 'io0' is in use\n")
        self.assertEqual(out[-1]["error"]["class"], "GenericError")
        rc, _, err = self.client("--expect-error", "--error-class", "GenericError", "object-del id=io0")
        self.assertEqual((rc, err), (0, ""))
        rc, _, err = self.client("--expect-error", "--error-class", "GenericError", "nosuch")
        self.assertEqual(rc, 1, "the wrong error class")
        rc, _, err = self.client("--expect-error", "query-status")
        self.assertEqual((rc, err), (1, "qmp-client: query-status: succeeded, but an error was expected\n"))
        rc, _, err = self.client("device_del id=a", "--wait-event", "DEVICE_DELETED:device=b", "--event-timeout", "1")
        self.assertEqual((rc, err), (1, "qmp-client: event DEVICE_DELETED device=b: not within 1 s\n"))
        rc, _, err = self.client("hang-up")
        self.assertEqual((rc, err), (3, "qmp-client: the server closed the connection\n"))
        rc, _, err = self.client("--fd", "x=/nonexistent/file", "query-status")
        self.assertEqual((rc, err), (1, "qmp-client: --fd x=/nonexistent/file: No such file or directory\n"))
        for bad in (["device_add novalue"], ["{not json"], ["--fd", "noequals", "x"], ["--wait-event", ":a=b"]):
            rc, _, err = self.client(*bad)
            self.assertEqual(rc, 2, bad)
            self.assertTrue(err.startswith("qmp-client: "), err)
        p = subprocess.run([sys.executable, self.CLIENT, os.path.join(self.d, "none.sock"), "query-status"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 3)
        self.assertIn("No such file or directory", p.stderr)


@unittest.skipUnless(os.access("/usr/bin/python3", os.X_OK), "no /usr/bin/python3")
class PythonInL1(unittest.TestCase):
    """run.py python=: the interpreter and pyzip.py's stdlib zip are enough to
    run the QMP client in a tree that has nothing else (a chroot, as root)."""

    def test_client_runs_on_the_zip_alone(self):
        with tempfile.TemporaryDirectory() as d:
            files = run.python_files([QmpClient.CLIENT], d)
            names = {os.path.basename(a.split(":/")[-1]) for a in files}
            self.assertIn("python3", names)
            zips = [a.split(":/")[0] for a in files if a.endswith(".zip")]
            self.assertEqual(len(zips), 1, files)
            import zipfile
            members = zipfile.ZipFile(zips[0]).namelist()
            for m in ("encodings/__init__.pyc", "encodings/utf_8.pyc", "json/decoder.pyc", "argparse.pyc",
                      "socket.pyc", "shlex.pyc"):
                self.assertIn(m, members)
            self.assertNotIn("bz2.pyc", members)
            self.assertLess(os.path.getsize(zips[0]), 600 << 10)
            if os.geteuid() != 0:
                self.skipTest("the chroot check needs root")
            root = os.path.join(d, "root")
            p = subprocess.run([BUILD, "payload", "--out", os.path.join(d, "p.cpio")] + files +
                               ["--add", f"{QmpClient.CLIENT}:/qmp-client"], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            os.makedirs(root)
            subprocess.run(["cpio", "-id", "--quiet"], cwd=root, stdin=open(os.path.join(d, "p.cpio"), "rb"),
                           check=True)
            os.makedirs(os.path.join(root, "tmp"))
            p = subprocess.run(["chroot", root, "/usr/bin/python3", "/qmp-client", "/tmp/none.sock", "query-status"],
                               capture_output=True, text=True)
            self.assertEqual((p.returncode, p.stdout, p.stderr),
                             (3, "", "qmp-client: connect /tmp/none.sock: No such file or directory\n"))


class Builder(unittest.TestCase):
    def listing(self, path, gz):
        data = open(path, "rb").read()
        if gz:
            import gzip
            data = gzip.decompress(data)
        p = subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode().split()

    def test_payload(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "p.cpio")
            p = subprocess.run([BUILD, "payload", "--out", out, "--add", f"{LIB}:/x/y/lib.sh",
                                "--add-bin", "/bin/true:/opt/true"], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            names = self.listing(out, gz=False)
            self.assertIn("x/y/lib.sh", names)
            self.assertIn("opt/true", names)
            self.assertTrue(any(n.endswith("/libc.so.6") for n in names), names)
            p = subprocess.run([BUILD, "payload", "--out", out, "--add", "/nonexistent:/x"],
                               capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("does not exist", p.stderr)

    @unittest.skipUnless(os.access(BUSYBOX, os.X_OK), f"{BUSYBOX} missing")
    def test_images(self):
        for kind, must in [("l1", ["init", "rig/lib.sh", "usr/bin/rig-probe", "bin/sh", "sbin/poweroff"]),
                           ("l2", ["init", "rig/lib.sh", "bin/sh", "usr/bin/awk"])]:
            p = subprocess.run([BUILD, kind], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            names = self.listing(p.stdout.strip(), gz=True)
            for m in must:
                self.assertIn(m, names, kind)
            # Same inputs, same cached image.
            again = subprocess.run([BUILD, kind], capture_output=True, text=True)
            self.assertEqual(again.stdout, p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
