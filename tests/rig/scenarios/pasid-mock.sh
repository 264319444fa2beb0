# Issue 13 on the real kernel: passage's PasidSpace (iommu/pasid_space.h)
# drives IOMMUFD_TEST mock devices (tests/rig/pasid/mock_pasid_device.h:
# MOCK_DOMAIN_FLAGS with MOCK_FLAGS_DEVICE_PASID, IOMMU_TEST_OP_PASID_*) on
# two iommufd objects, and the kernel's IOMMU_TEST_OP_PASID_CHECK_HWPT
# judges every step: bind on every device, a failure the kernel forces on
# the second device (its whole device on a domain without
# IOMMU_HWPT_ALLOC_PASID) rolls back the first, a device added later
# inherits the bindings, a device without PASID is refused, unbind leaves
# nothing and every object destroyable. One result per gtest test; a
# skipped test fails here (the rig kernel has CONFIG_IOMMUFD_TEST). The
# binary needs PASSAGE_KERNEL_TEST_HEADERS (tests/build.sh): without it the
# bin= line below fails the run.
# rig: bin=$PASSAGE_BUILD_DIR/tests/rig/pasid/passage_rig_pasid_tests
# rig: timeout=300
# rig: expect=pasid.gtest_exit
# rig: expect=pasid.PasidMockTest.BindAttachesOnEveryDeviceOfBothObjects
# rig: expect=pasid.PasidMockTest.FailureOnTheSecondDeviceRollsBackTheFirst
# rig: expect=pasid.PasidMockTest.ADeviceAddedLaterInheritsEveryBinding
# rig: expect=pasid.PasidMockTest.ANonPasidDeviceIsRefused
# rig: expect=pasid.PasidMockTest.UnbindLeavesNothing

. /rig/lib.sh

rig_gtest pasid passage_rig_pasid_tests
