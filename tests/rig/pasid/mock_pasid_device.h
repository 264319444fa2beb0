// A PasidDevice over an IOMMUFD_TEST mock device (CONFIG_IOMMUFD_TEST, the
// rig kernel has it): the one device on these machines whose PASID attach
// runs through the kernel's real iommufd code (no emulated PCI device has a
// PASID capability; tests/rig/README.md). Test-only: it lives with the rig
// test that drives PasidSpace with it, not in iommu/.
//
// What the kernel does for a mock (drivers/iommu/iommufd/selftest.c):
// IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS on an IOAS creates a mock device, binds it
// to the iommufd context (the device id GET_HW_INFO and HWPT_ALLOC take) and
// attaches its whole device (RID) to an auto domain of that IOAS, which is
// not PASID-compatible. MOCK_FLAGS_DEVICE_PASID gives it 20 PASID bits;
// without it, GET_HW_INFO reports width 0. IOMMU_TEST_OP_PASID_ATTACH /
// _REPLACE / _DETACH are iommufd_device_attach/replace/detach with a PASID
// (what VFIO_DEVICE_ATTACH_IOMMUFD_PT with VFIO_DEVICE_ATTACH_PASID does for
// a VFIO cdev), and IOMMU_TEST_OP_PASID_CHECK_HWPT asks the IOMMU core which
// domain a PASID of the device is attached to.
#ifndef PASSAGE_TESTS_RIG_PASID_MOCK_PASID_DEVICE_H_
#define PASSAGE_TESTS_RIG_PASID_MOCK_PASID_DEVICE_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "iommu/iommufd.h"
#include "iommu/pasid_space.h"

struct iommu_test_cmd;  // iommufd_test.h, included by the .cc only

namespace passage {

class MockPasidDevice : public PasidDevice {
 public:
  // Where the whole device is attached after Create.
  enum class WholeDevice {
    // A HWPT over the object's IOAS allocated with IOMMU_HWPT_ALLOC_PASID,
    // as VfioDevice does for a PASID-capable device: PASIDs can attach.
    kPasidHwpt,
    // The IOAS's auto domain, as the mock is created: the kernel refuses
    // every PASID attach (EINVAL) until AttachWholeDeviceToPasidHwpt.
    kAutoDomain,
  };
  struct Options {
    std::string id;                 // for messages and the space's table
    bool pasid = true;              // MOCK_FLAGS_DEVICE_PASID
    WholeDevice whole = WholeDevice::kPasidHwpt;
  };

  // A mock device on `object`'s IOAS. `object` outlives it.
  static absl::StatusOr<std::unique_ptr<MockPasidDevice>> Create(Iommufd* object,
                                                                 const Options& options);
  // Destroy(), errors ignored (a test that cares calls Destroy itself).
  ~MockPasidDevice() override;
  MockPasidDevice(const MockPasidDevice&) = delete;
  MockPasidDevice& operator=(const MockPasidDevice&) = delete;

  // PasidDevice.
  const std::string& id() const override { return id_; }
  Iommufd* iommufd() const override { return object_; }
  uint32_t iommufd_devid() const override { return idev_id_; }
  Iommufd::HwInfo pasid_info() const override { return info_; }
  // PASID_ATTACH, or PASID_REPLACE for a PASID attached here before (the
  // interface's "a second attach replaces", as VFIO's attach does).
  absl::Status AttachPasid(uint32_t pasid, uint32_t hwpt_id) override;
  absl::Status DetachPasid(uint32_t pasid) override;

  // The kernel's view (IOMMU_TEST_OP_PASID_CHECK_HWPT): OK when `pasid` is
  // attached to HWPT `hwpt_id` of this device's object, or, for hwpt_id 0,
  // attached to nothing. A mismatch is the kernel's EINVAL.
  absl::Status CheckPasid(uint32_t pasid, uint32_t hwpt_id) const;

  // Allocates a PASID-compatible HWPT over the IOAS and moves the whole
  // device onto it (IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE); the auto domain
  // goes with its last user.
  absl::Status AttachWholeDeviceToPasidHwpt();
  // The whole device's HWPT (the auto domain's or the PASID-compatible one).
  uint32_t whole_device_hwpt() const { return whole_hwpt_; }

  // IOMMU_DESTROY of the mock (the kernel detaches its whole device and
  // unbinds it), then of its PASID-compatible HWPT. Its PASIDs must be
  // detached first: leave the PasidSpace before. Idempotent.
  absl::Status Destroy();

 private:
  MockPasidDevice(Iommufd* object, std::string id) : object_(object), id_(std::move(id)) {}
  // One IOMMU_TEST_CMD; `cmd` is filled in by the kernel on success.
  absl::Status TestCmd(::iommu_test_cmd& cmd, const std::string& what) const;

  Iommufd* const object_;
  const std::string id_;
  uint32_t stdev_id_ = 0;  // the selftest object; destroying it destroys the mock
  uint32_t idev_id_ = 0;   // the iommufd device
  uint32_t whole_hwpt_ = 0;
  bool own_whole_hwpt_ = false;  // allocated here (the auto domain is the kernel's)
  Iommufd::HwInfo info_;
  std::set<uint32_t> attached_;
};

}  // namespace passage

#endif  // PASSAGE_TESTS_RIG_PASID_MOCK_PASID_DEVICE_H_
