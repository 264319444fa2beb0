# iommu/ and devices/vfio/ against the real kernel in L1: edu through the
# iommufd cdev path (one and two iommufd objects, every file passed as an fd)
# and through the legacy container, DMA into "guest RAM" checked both ways,
# error paths, and no leaked fds or pinned pages. One result per gtest test;
# a skipped test fails here, because the rig has everything they need.
# rig: bind=1234:11e8,1b36:0010
# rig: bin=$PASSAGE_BUILD_DIR/tests/rig/passthrough/passage_rig_vfio_tests
# rig: timeout=600
# rig: expect=vfio.gtest_exit,vfio.VfioBackends.*

. /rig/lib.sh

rig_gtest vfio passage_rig_vfio_tests
