# Issue 14, passage-bench's whole-VM comparison: passage and QEMU boot the
# same L2 kernel and initramfs in L1 (under L1's KVM) with edu and nvme
# passed through, each measured from outside by bench-vmrun (start to L2's
# init line, start to exit, memory besides guest RAM) while L2 runs dd on
# nvme. What each figure is: lib/bench-vm.sh. The runs come from
# /rig/bench-plan when run.py added one (`--add PLAN:/rig/bench-plan`,
# tests/bench/run.sh writes them), else the quick plan below; one line per
# run: VMM CONFIG MEM SMP REP. QEMU runs last: a VM started in L1 right after
# QEMU ran there froze L1 often (tests/rig/README "Known limits"), so
# run.sh gives each QEMU run an L1 boot of its own. Results per run:
# TAG.exit, TAG.meter, TAG.l2.* (L2's own checks, bench.dd and edu-test's
# among them), TAG.done; the numbers are `bench-json|` lines, judged by nothing here
# (TCG: see README "passage-bench"), turned into tables and plots by
# tests/bench/report.py.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage bin=$PASSAGE_BUILD_DIR/tests/bench/bench-vmrun
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: bin=/usr/bin/qemu-system-x86_64:/usr/bin/qemu-system-x86_64
# rig: add=/usr/share/qemu:/usr/share/qemu add=/usr/share/seabios:/usr/share/seabios
# QEMU 10.0, unpacked by tests/bench/qemu10.sh (tests/build.sh exports it to ctest).
# rig: bin=$PASSAGE_QEMU10/usr/bin/qemu-system-x86_64:/opt/qemu-10.0/bin/qemu-system-x86_64
# rig: add=$PASSAGE_QEMU10/usr/share/qemu:/opt/qemu-10.0/share/qemu
# rig: add=lib/bench-vm.sh:/rig/bench-vm.sh
# Two L1 vCPUs, so that an L2 with -smp 2 never has more vCPUs than L1
# (README "Known limits"); the same L1 for every VMM, so ratios compare alike.
# 6 GiB: room for the -m sweep's 4 GiB L2 with all of it pinned
# (tests/bench/run.sh).
# rig: mem=6G smp=2
# rig: stall=90
# rig: timeout=2400
# rig: expect=vm.*.exit,vm.*.meter,vm.*.bench.dd,vm.*.l2.edu.irq_rtt,vm.*.done

. /rig/lib.sh
. /rig/bench-vm.sh

bench_machine
if [ -f /rig/bench-plan ]; then
  grep -v '^#' /rig/bench-plan > /tmp/bench-plan
else
  # Both -dma-map settings, so one run shows what background mapping saves.
  printf '%s\n' "passage iommufd 512M 1 1" "passage iommufd-bg 512M 1 1" "passage legacy 512M 1 1" \
    "passage legacy-bg 512M 1 1" "qemu10 q35 512M 1 1" > /tmp/bench-plan
fi
# The plan on fd 9: nothing in a run reads it by accident.
while read -r vmm config mem smp rep <&9; do
  [ -n "$vmm" ] && vm_run "$vmm" "$config" "$mem" "$smp" "$rep"
done 9< /tmp/bench-plan
exit 0
