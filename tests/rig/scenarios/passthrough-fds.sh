# Issue 8: every file handed in as an fd (/dev/kvm, /dev/iommu, the cdev),
# passage run under passage-noopen (any lookup of a path under /dev or /sys
# is refused and fails the run): edu, then nvme.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: bin=$PASSAGE_BUILD_DIR/tests/rig/noopen/passage-noopen
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
# The results each run must produce (the device, given without addr=, takes
# slot 1):
# rig: expect=fds.edu.l2.pci.0000:00:01.0,fds.edu.done,fds.edu.exit,fds.edu.ioas.pins,fds.edu.ioas.fds,fds.edu.teardown.pins,fds.edu.teardown.holders,fds.edu.ioas.map_file,fds.edu.l2.edu.msi,fds.edu.l2.edu.dma,fds.edu.edu.rom,fds.edu.reuse.edu.cdev.dma
# rig: expect=fds.nvme.l2.pci.0000:00:01.0,fds.nvme.done,fds.nvme.exit,fds.nvme.ioas.pins,fds.nvme.ioas.fds,fds.nvme.teardown.pins,fds.nvme.teardown.holders,fds.nvme.ioas.map_file,fds.nvme.nvme.data,fds.nvme.nvme.msix,fds.nvme.reuse.nvme.cdev.attach_ioas

# rig: expect=fds.edu.bars.1234:11e8,fds.nvme.bars.1b36:0010
. /rig/lib.sh
. /rig/passthrough.sh

fds_boot fds.edu 200M "$EDU_CDEV"
fds_boot fds.nvme 512M "$NVME_CDEV"
exit 0
