# For negative.py: passthrough-iommufd.sh's edu run with the
# `-device vfio-pci,...` left out, declaring the same results and telling L2
# to expect edu at 00:04.0 as that run does. It must fail: L2's PCI check and
# edu test fail, and L1's expected edu results never come. Not a scenario to
# run by hand.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=../scenarios/lib/passthrough.sh:/rig/passthrough.sh
# rig: mem=2G smp=1 stall=90 timeout=600
# rig: expect=iommufd.edu.l2.pci.0000:00:04.0,iommufd.edu.done,iommufd.edu.exit,iommufd.edu.ioas.pins,iommufd.edu.ioas.fds,iommufd.edu.teardown.pins,iommufd.edu.teardown.holders,iommufd.edu.ioas.map_file,iommufd.edu.l2.edu.msi,iommufd.edu.l2.edu.dma,iommufd.edu.edu.rom,iommufd.edu.reuse.edu.cdev.dma

. /rig/lib.sh
. /rig/passthrough.sh

L2_PCI=$HOST_BRIDGE,00:04.0=1234:11e8
boot iommufd.edu 200M -object iommufd,id=iommufd0
exit 0
