# Issue 8: edu, then nvme, passed through to L2 by the legacy VFIO
# group/container path (type1v2): no iommufd= on the device; nvme by sysfsdev=.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: mem=2G
# L1 gets one vCPU: QEMU's multi-threaded TCG kills a two-vCPU L1 now and
# then ("Oops: int3") while KVM creates and destroys VMs; L2 then gets one
# vCPU too (never more than L1 has).
# rig: smp=1
# L1 sometimes freezes under TCG (halted, interrupts enabled, the local APIC
# timer pending in IRR but never taken; README "Known limits"). So each
# passthrough scenario is short (ctest retries it up to six times) and ends
# with its nvme run (the first freezes seen were in the run after one). A bounded passage run prints a line every 60 s, so 90 s of
# silence means L1 froze: run.py dumps L1's CPU state, sends an NMI, ends the
# run and retries it.
# rig: stall=90
# rig: timeout=900
# The results each run must produce (run.py fails naming any that never come):
# rig: expect=legacy.edu.l2.pci.0000:00:04.0,legacy.edu.done,legacy.edu.exit,legacy.edu.ioas.pins,legacy.edu.ioas.fds,legacy.edu.teardown.pins,legacy.edu.teardown.holders,legacy.edu.ioas.map_va,legacy.edu.l2.edu.msi,legacy.edu.l2.edu.dma,legacy.edu.edu.rom,legacy.edu.reuse.edu.group.dma
# rig: expect=legacy.nvme.l2.pci.0000:00:05.0,legacy.nvme.done,legacy.nvme.exit,legacy.nvme.ioas.pins,legacy.nvme.ioas.fds,legacy.nvme.teardown.pins,legacy.nvme.teardown.holders,legacy.nvme.ioas.map_va,legacy.nvme.nvme.data,legacy.nvme.nvme.msix,legacy.nvme.reuse.nvme.group.get_device_fd

# rig: expect=legacy.edu.bars.1234:11e8,legacy.nvme.bars.1b36:0010
. /rig/lib.sh
. /rig/passthrough.sh

boot legacy.edu 200M -device vfio-pci,host=$EDU,id=edu0,addr=04.0
boot legacy.nvme 512M -device vfio-pci,sysfsdev=/sys/bus/pci/devices/$NVME,id=nvme0,addr=05.0
exit 0
