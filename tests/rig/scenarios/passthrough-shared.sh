# Issue 11, "one shared IOAS, proven": edu and nvme on the SAME -object
# iommufd in one VM, both working in L2 at once (edu's DMA and MSI, nvme's
# data and MSI-X). L1 checks from outside passage that there is one IOAS with
# one set of RAM mappings: while L2 runs, the pinned pages grew by guest RAM
# once (shared.ioas.pins; passthrough-two.sh's two objects pin it twice,
# two.ioas.pins) and passage holds exactly one /dev/iommu fd (shared.ioas.fds).
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
# rig: expect=shared.l2.pci.0000:00:04.0,shared.l2.pci.0000:00:05.0,shared.l2.pci,shared.l2.cpus,shared.l2.memtotal
# rig: expect=shared.l2.edu.msi,shared.l2.edu.dma,shared.edu.rom,shared.nvme.data,shared.nvme.msix,shared.done
# rig: expect=shared.exit,shared.ioas.pins,shared.ioas.fds,shared.ioas.map_file,shared.teardown.pins
# rig: expect=shared.teardown.holders,shared.reuse.edu.cdev.dma,shared.reuse.nvme.cdev.attach_ioas

# rig: expect=shared.bars.1234:11e8,shared.bars.1b36:0010
. /rig/lib.sh
. /rig/passthrough.sh

# 200 MiB: edu's DMA is 28-bit.
boot shared 200M -object iommufd,id=io0 \
  -device vfio-pci,host=$EDU,iommufd=io0,id=edu0,addr=04.0 -device vfio-pci,host=$NVME,iommufd=io0,id=nvme0,addr=05.0
exit 0
