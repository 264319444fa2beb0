# Issue 8: edu, then nvme, passed through to L2 as VFIO cdevs in one
# iommufd IOAS (-object iommufd + -device vfio-pci,host=...,iommufd=).
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
# rig: expect=iommufd.edu.l2.pci.0000:00:04.0,iommufd.edu.done,iommufd.edu.exit,iommufd.edu.ioas.pins,iommufd.edu.ioas.fds,iommufd.edu.teardown.pins,iommufd.edu.teardown.holders,iommufd.edu.ioas.map_file,iommufd.edu.l2.edu.msi,iommufd.edu.l2.edu.dma,iommufd.edu.edu.rom,iommufd.edu.reuse.edu.cdev.dma
# rig: expect=iommufd.nvme.l2.pci.0000:00:05.0,iommufd.nvme.done,iommufd.nvme.exit,iommufd.nvme.ioas.pins,iommufd.nvme.ioas.fds,iommufd.nvme.teardown.pins,iommufd.nvme.teardown.holders,iommufd.nvme.ioas.map_file,iommufd.nvme.nvme.data,iommufd.nvme.nvme.msix,iommufd.nvme.reuse.nvme.cdev.attach_ioas

# rig: expect=iommufd.edu.bars.1234:11e8,iommufd.nvme.bars.1b36:0010
. /rig/lib.sh
. /rig/passthrough.sh

boot iommufd.edu 200M -object iommufd,id=iommufd0 -device vfio-pci,host=$EDU,iommufd=iommufd0,id=edu0,addr=04.0
boot iommufd.nvme 512M -object iommufd,id=iommufd0 -device vfio-pci,host=$NVME,iommufd=iommufd0,id=nvme0,addr=05.0
exit 0
