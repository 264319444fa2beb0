# Issue 8: bad input (exit 1, one line on stderr, no fd or pinned page left
# at exit per --report-resources), edu still usable afterwards, then two
# iommufd objects with one device each (edu and nvme in one guest).
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
# The results the run must produce (run.py fails naming any that never come):
# rig: expect=bad.*.exit,bad.*.teardown.pins,bad.*.teardown.holders
# rig: expect=after.edu.l2.pci.0000:00:04.0,after.edu.l2.edu.dma,after.edu.done,after.edu.teardown.pins
# rig: expect=after.edu.reuse.edu.cdev.dma,after.edu.ioas.pins,after.edu.ioas.map_file
# rig: expect=two.l2.pci.0000:00:04.0,two.l2.pci.0000:00:05.0,two.l2.edu.msi,two.l2.edu.dma,two.nvme.data
# rig: expect=two.nvme.msix,two.done,two.ioas.pins,two.ioas.fds,two.ioas.map_file,two.teardown.pins
# rig: expect=two.teardown.holders,two.reuse.edu.cdev.dma,two.reuse.nvme.cdev.attach_ioas

# rig: expect=two.bars.1234:11e8,two.bars.1b36:0010
. /rig/lib.sh
. /rig/passthrough.sh

bad bad.nonexistent -object iommufd,id=i0 -device vfio-pci,host=00:1d.7,iommufd=i0
bad bad.unbound -object iommufd,id=i0 -device vfio-pci,host=$OTHER,iommufd=i0
bad bad.unbound_legacy -device vfio-pci,host=$OTHER
bad bad.wrong_fd -object iommufd,id=i0 -device vfio-pci,fd=4,iommufd=i0 4</dev/null
bad bad.wrong_iommufd_fd -object iommufd,id=i0,fd=3 -device vfio-pci,host=$EDU,iommufd=i0 3</dev/null
bad bad.unknown_iommufd -object iommufd,id=i0 -device vfio-pci,host=$EDU,iommufd=nope
bad bad.in_use -object iommufd,id=i0 -device vfio-pci,host=$EDU,iommufd=i0,id=a \
  -device vfio-pci,host=$EDU,iommufd=i0,id=b
# After all that, the device still works.
boot after.edu 200M -object iommufd,id=iommufd0 -device vfio-pci,host=$EDU,iommufd=iommufd0,addr=04.0
# Two objects: guest RAM is pinned twice (two IOAS), against once in
# passthrough-shared.sh.
boot two 200M -object iommufd,id=a -object iommufd,id=b \
  -device vfio-pci,host=$EDU,iommufd=a,id=edu0,addr=04.0 -device vfio-pci,host=$NVME,iommufd=b,id=nvme0,addr=05.0
exit 0
