# Checks the L2 edu test program itself (guests/l2tests/edu_test.c) against
# QEMU's edu device, booting the L2 image directly in L0 with the IOMMU off
# (run.py --image l2), so that the program is known good before it judges
# passage's passthrough. L0 RAM stays below 256 MiB: edu's DMA is 28-bit.
# rig: append="intel_iommu=off"
# rig: mem=240M
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test
# rig: timeout=180
# rig: expect=l2.cpus,l2.memtotal,l2.edu.id,l2.edu.msi,l2.edu.dma,edu.exit

. /rig/lib.sh
edu-test
result edu.exit $? "edu-test exited with the number of failed checks"
