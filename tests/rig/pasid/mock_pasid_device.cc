#include "tests/rig/pasid/mock_pasid_device.h"

#include <linux/iommufd.h>
#include <sys/ioctl.h>

#include <cerrno>

// Not exported uAPI: the build takes it from the kernel source the rig runs
// (guests/kernel/test-headers.sh, PASSAGE_KERNEL_TEST_HEADERS).
#include "iommufd_test.h"

#include "absl/strings/str_cat.h"
#include "memory/unique_fd.h"

namespace passage {

absl::Status MockPasidDevice::TestCmd(iommu_test_cmd& cmd, const std::string& what) const {
  cmd.size = sizeof(cmd);
  if (ioctl(object_->fd(), IOMMU_TEST_CMD, &cmd) != 0) {
    return ErrnoError(absl::StrCat(id_, ": IOMMU_TEST_CMD ", what, " on ", object_->name()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MockPasidDevice>> MockPasidDevice::Create(Iommufd* object,
                                                                         const Options& options) {
  std::unique_ptr<MockPasidDevice> dev(new MockPasidDevice(object, options.id));
  iommu_test_cmd cmd{};
  cmd.op = IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS;
  cmd.id = object->ioas_id();
  cmd.mock_domain_flags.dev_flags = options.pasid ? MOCK_FLAGS_DEVICE_PASID : 0;
  if (absl::Status s = dev->TestCmd(cmd, "MOCK_DOMAIN_FLAGS"); !s.ok()) return s;
  dev->stdev_id_ = cmd.mock_domain_flags.out_stdev_id;
  dev->idev_id_ = cmd.mock_domain_flags.out_idev_id;
  dev->whole_hwpt_ = cmd.mock_domain_flags.out_hwpt_id;
  // The width, from the kernel (the same call VfioDevice makes).
  absl::StatusOr<Iommufd::HwInfo> info = object->GetHwInfo(dev->idev_id_, dev->id_);
  if (!info.ok()) return info.status();
  dev->info_ = *info;
  if (options.whole == WholeDevice::kPasidHwpt) {
    if (absl::Status s = dev->AttachWholeDeviceToPasidHwpt(); !s.ok()) return s;
  }
  return dev;
}

MockPasidDevice::~MockPasidDevice() { (void)Destroy(); }

absl::Status MockPasidDevice::AttachWholeDeviceToPasidHwpt() {
  absl::StatusOr<uint32_t> hwpt = object_->AllocHwpt(idev_id_, IOMMU_HWPT_ALLOC_PASID, id_);
  if (!hwpt.ok()) return hwpt.status();
  iommu_test_cmd cmd{};
  cmd.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE;
  cmd.id = stdev_id_;
  cmd.mock_domain_replace.pt_id = *hwpt;
  if (absl::Status s = TestCmd(cmd, absl::StrCat("MOCK_DOMAIN_REPLACE to HWPT ", *hwpt)); !s.ok()) {
    (void)object_->DestroyObject(*hwpt);
    return s;
  }
  const uint32_t old = whole_hwpt_;
  const bool owned = own_whole_hwpt_;
  whole_hwpt_ = *hwpt;
  own_whole_hwpt_ = true;
  if (owned) return object_->DestroyObject(old);
  return absl::OkStatus();
}

absl::Status MockPasidDevice::AttachPasid(uint32_t pasid, uint32_t hwpt_id) {
  const bool replace = attached_.contains(pasid);
  iommu_test_cmd cmd{};
  cmd.op = replace ? IOMMU_TEST_OP_PASID_REPLACE : IOMMU_TEST_OP_PASID_ATTACH;
  cmd.id = stdev_id_;
  cmd.pasid_attach.pasid = pasid;
  cmd.pasid_attach.pt_id = hwpt_id;
  if (absl::Status s = TestCmd(cmd, absl::StrCat(replace ? "PASID_REPLACE" : "PASID_ATTACH", " of pasid ",
                                                 pasid, " to HWPT ", hwpt_id));
      !s.ok()) {
    return s;
  }
  attached_.insert(pasid);
  return absl::OkStatus();
}

absl::Status MockPasidDevice::DetachPasid(uint32_t pasid) {
  iommu_test_cmd cmd{};
  cmd.op = IOMMU_TEST_OP_PASID_DETACH;
  cmd.id = stdev_id_;
  cmd.pasid_detach.pasid = pasid;
  if (absl::Status s = TestCmd(cmd, absl::StrCat("PASID_DETACH of pasid ", pasid)); !s.ok()) return s;
  attached_.erase(pasid);
  return absl::OkStatus();
}

absl::Status MockPasidDevice::CheckPasid(uint32_t pasid, uint32_t hwpt_id) const {
  iommu_test_cmd cmd{};
  cmd.op = IOMMU_TEST_OP_PASID_CHECK_HWPT;
  cmd.id = stdev_id_;
  cmd.pasid_check.pasid = pasid;
  cmd.pasid_check.hwpt_id = hwpt_id;
  return TestCmd(cmd, hwpt_id == 0 ? absl::StrCat("PASID_CHECK_HWPT: pasid ", pasid, " attached to nothing")
                                   : absl::StrCat("PASID_CHECK_HWPT: pasid ", pasid, " on HWPT ", hwpt_id));
}

absl::Status MockPasidDevice::Destroy() {
  if (stdev_id_ != 0) {
    if (absl::Status s = object_->DestroyObject(stdev_id_); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(id_, ": destroying the mock device: ", s.message()));
    }
    stdev_id_ = 0;
  }
  if (own_whole_hwpt_) {
    if (absl::Status s = object_->DestroyObject(whole_hwpt_); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(id_, ": destroying its whole-device HWPT: ", s.message()));
    }
    own_whole_hwpt_ = false;
  }
  return absl::OkStatus();
}

}  // namespace passage
