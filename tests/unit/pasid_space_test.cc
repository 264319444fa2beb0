// The VM-wide PASID space (iommu/pasid_space.h) driving real VfioDevices
// over the fake kernel: width negotiation, atomic bind with roll-back under
// a failure at each device, hotplug inheritance, removal, and the refusals.
#include "iommu/pasid_space.h"

#include <gtest/gtest.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "devices/vfio/vfio_device.h"
#include "tests/unit/fake_kernel.h"

namespace passage {
namespace {

using testing::FakeKernel;
using testing::FakeVfioPci;

class PasidSpaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; ++i) {
      devs_[i].regions[VFIO_PCI_CONFIG_REGION_INDEX] = {
          VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 256, {}, false};
      kernel_.AddVfioPciSysfs(absl::StrCat("0000:00:0", i + 3, ".0"), absl::StrCat("vfio", i),
                              absl::StrCat(i + 3), &devs_[i]);
      names_[i] = names[i];
    }
    for (const char* id : {"io0", "io1"}) {
      auto o = Iommufd::Create({id}, &kernel_);
      ASSERT_TRUE(o.ok()) << o.status();
      objects_.push_back(std::move(*o));
    }
  }
  void TearDown() override {
    open_.clear();
    EXPECT_TRUE(kernel_.hwpts.empty()) << "a HWPT is left";
    objects_.clear();
    EXPECT_EQ(kernel_.open_fds(), 0u);
  }
  // Device i (a..d) with `width` PASID bits, on object `object`.
  absl::StatusOr<VfioDevice*> Open(int i, uint8_t width, int object = 0, uint64_t caps = 0) {
    devs_[i].max_pasid_log2 = width;
    devs_[i].hw_caps = caps;
    VfioDevice::Options o;
    o.id = names_[i];
    o.sysfs_path = absl::StrCat("/sys/bus/pci/devices/0000:00:0", i + 3, ".0");
    o.pasid_space = &space_;
    auto d = VfioDevice::OpenWithIommufd(o, *objects_[object], &kernel_);
    if (!d.ok()) return d.status();
    open_[i] = std::move(*d);
    return open_[i].get();
  }
  void Close(int i) { open_.erase(i); }
  // PASID HWPTs (not the devices' whole-device ones).
  size_t PasidHwpts() const {
    size_t n = 0;
    for (const FakeVfioPci& d : devs_) n += d.pasids.size();
    return n;
  }
  std::vector<std::string> PasidEvents() const {
    std::vector<std::string> out;
    for (const std::string& e : kernel_.events) {
      if (e.find("pasid") != std::string::npos) out.push_back(e);
    }
    return out;
  }
  std::string Ev(const char* what, int dev, uint32_t pasid) {
    return absl::StrCat(what, " ", open_fd_[dev], " ", pasid);
  }
  void RememberFds() {
    for (auto& [i, d] : open_) open_fd_[i] = d->fd();
  }

  FakeKernel kernel_;
  FakeVfioPci devs_[4];
  std::string names_[4];
  std::vector<std::unique_ptr<Iommufd>> objects_;
  PasidSpace space_;
  std::map<int, std::unique_ptr<VfioDevice>> open_;
  std::map<int, int> open_fd_;
};

TEST_F(PasidSpaceTest, PasidDevicesAttachTheWholeDeviceToAPasidCompatibleHwpt) {
  ASSERT_TRUE(Open(0, 8).ok());
  ASSERT_TRUE(Open(1, 0).ok());
  const uint32_t ioas = objects_[0]->ioas_id();
  ASSERT_NE(devs_[0].attached_pt, ioas) << "a PASID device must not use the IOAS's auto domain";
  ASSERT_TRUE(kernel_.hwpts.count(devs_[0].attached_pt));
  EXPECT_EQ(kernel_.hwpts[devs_[0].attached_pt].ioas, ioas);
  EXPECT_EQ(kernel_.hwpts[devs_[0].attached_pt].flags, uint32_t{IOMMU_HWPT_ALLOC_PASID});
  EXPECT_EQ(devs_[0].attached_ioas, ioas);
  EXPECT_EQ(open_[0]->main_hwpt(), devs_[0].attached_pt);
  EXPECT_EQ(devs_[1].attached_pt, ioas) << "a device without PASID stays on the IOAS";
  EXPECT_EQ(open_[1]->main_hwpt(), 0u);
  Close(0);
  EXPECT_TRUE(kernel_.hwpts.empty()) << "the whole-device HWPT goes with the device";
}

TEST_F(PasidSpaceTest, AnIommuWithoutPasidDomainsLeavesTheDeviceWithoutPasid) {
  devs_[0].pasid_hwpt_supported = false;
  auto a = Open(0, 8);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(devs_[0].attached_pt, objects_[0]->ioas_id());
  EXPECT_EQ((*a)->pasid_info().max_pasid_log2, 0);
  EXPECT_EQ(space_.width(), 0);
  PasidSpace::Info info = space_.Describe();
  ASSERT_EQ(info.devices.size(), 1u);
  EXPECT_EQ(info.devices[0].info.max_pasid_log2, 0);
}

TEST_F(PasidSpaceTest, WidthIsTheSmallestOverPasidCapableDevices) {
  EXPECT_EQ(space_.width(), 0) << "no device";
  ASSERT_TRUE(Open(0, 8, 0, IOMMU_HW_CAP_PCI_PASID_EXEC | IOMMU_HW_CAP_PCI_PASID_PRIV).ok());
  EXPECT_EQ(space_.width(), 8);
  ASSERT_TRUE(Open(1, 5, 1).ok());
  EXPECT_EQ(space_.width(), 5);
  ASSERT_TRUE(Open(2, 0).ok());
  EXPECT_EQ(space_.width(), 5) << "a device without PASID does not count";
  PasidSpace::Info info = space_.Describe();
  EXPECT_EQ(info.width, 5);
  ASSERT_EQ(info.devices.size(), 3u);
  EXPECT_EQ(info.devices[0].id, "a");
  EXPECT_EQ(info.devices[0].object, "io0");
  EXPECT_TRUE(info.devices[0].info.pasid_exec);
  EXPECT_TRUE(info.devices[0].info.pasid_priv);
  EXPECT_EQ(info.devices[1].object, "io1");
  EXPECT_FALSE(info.devices[1].info.pasid_exec);
  EXPECT_EQ(info.devices[2].info.max_pasid_log2, 0);
  Close(1);
  EXPECT_EQ(space_.width(), 8) << "the space widens when the narrowest device goes";
  Close(0);
  EXPECT_EQ(space_.width(), 0);
}

TEST_F(PasidSpaceTest, BindAttachesOnEveryPasidDeviceOnEveryObjectAndUnbindUndoesIt) {
  ASSERT_TRUE(Open(0, 8, 0).ok());
  ASSERT_TRUE(Open(1, 8, 1).ok());
  ASSERT_TRUE(Open(2, 0, 0).ok());
  RememberFds();
  ASSERT_TRUE(space_.Bind(5, objects_[0].get()).ok());
  ASSERT_EQ(devs_[0].pasids.size(), 1u);
  ASSERT_EQ(devs_[1].pasids.size(), 1u);
  EXPECT_TRUE(devs_[2].pasids.empty()) << "the device without PASID is left alone";
  const uint32_t ha = devs_[0].pasids.at(5), hb = devs_[1].pasids.at(5);
  EXPECT_NE(ha, hb) << "one HWPT per device";
  EXPECT_EQ(kernel_.hwpts[ha].ioas, objects_[0]->ioas_id());
  EXPECT_EQ(kernel_.hwpts[hb].ioas, objects_[1]->ioas_id()) << "b's HWPT lives on b's own object";
  EXPECT_EQ(kernel_.hwpts[ha].flags, uint32_t{IOMMU_HWPT_ALLOC_PASID});
  PasidSpace::Info info = space_.Describe();
  ASSERT_EQ(info.bindings.size(), 1u);
  EXPECT_EQ(info.bindings[0].pasid, 5u);
  EXPECT_EQ(info.bindings[0].object, "io0");
  EXPECT_EQ(info.bindings[0].ioas_id, objects_[0]->ioas_id());
  ASSERT_EQ(info.bindings[0].attachments.size(), 2u);
  EXPECT_EQ(info.bindings[0].attachments[1].device, "b");
  EXPECT_EQ(info.bindings[0].attachments[1].object, "io1");
  EXPECT_EQ(info.bindings[0].attachments[1].hwpt_id, hb);
  EXPECT_EQ(info.devices[0].pasids, std::vector<uint32_t>{5});

  ASSERT_TRUE(space_.Unbind(5, "io0").ok());
  EXPECT_EQ(PasidHwpts(), 0u);
  EXPECT_EQ(kernel_.hwpts.count(ha) + kernel_.hwpts.count(hb), 0u) << "the PASID HWPTs are destroyed";
  EXPECT_EQ(kernel_.hwpts.size(), 2u) << "the two whole-device HWPTs stay";
  EXPECT_EQ(PasidEvents(), (std::vector<std::string>{Ev("attach-pasid", 0, 5), Ev("attach-pasid", 1, 5),
                                                     Ev("detach-pasid", 1, 5), Ev("detach-pasid", 0, 5)}))
      << "unbind is the reverse of bind";
  EXPECT_TRUE(space_.Describe().bindings.empty());
}

// A failure injected at each device in turn: nothing is left on any.
TEST_F(PasidSpaceTest, ABindFailingAtAnyDeviceRollsBackTheOnesBefore) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Open(i, 8, i % 2).ok());
  RememberFds();
  const size_t main_hwpts = kernel_.hwpts.size();
  for (int k = 0; k < 3; ++k) {
    for (bool at_alloc : {false, true}) {
      SCOPED_TRACE(absl::StrCat("failing device ", names_[k], at_alloc ? " at HWPT alloc" : " at attach"));
      kernel_.events.clear();
      (at_alloc ? devs_[k].fail_hwpt_alloc : devs_[k].fail_pasid_attach) = EIO;
      absl::Status s = space_.Bind(7, objects_[0].get());
      (at_alloc ? devs_[k].fail_hwpt_alloc : devs_[k].fail_pasid_attach) = 0;
      EXPECT_FALSE(s.ok());
      EXPECT_NE(s.message().find(names_[k] + ": "), absl::string_view::npos) << s;
      EXPECT_NE(s.message().find(at_alloc ? "IOMMU_HWPT_ALLOC" : "VFIO_DEVICE_ATTACH_IOMMUFD_PT"),
                absl::string_view::npos)
          << s;
      EXPECT_EQ(PasidHwpts(), 0u) << "a PASID left attached";
      EXPECT_EQ(kernel_.hwpts.size(), main_hwpts) << "a PASID HWPT left";
      std::vector<std::string> want;
      for (int j = 0; j < k; ++j) want.push_back(Ev("attach-pasid", j, 7));
      for (int j = k - 1; j >= 0; --j) want.push_back(Ev("detach-pasid", j, 7));
      EXPECT_EQ(PasidEvents(), want) << "devices before the failing one, undone newest first";
      if (k == 2) {
        EXPECT_NE(s.message().find("rolled back on b, a"), absl::string_view::npos) << s;
      }
      EXPECT_TRUE(space_.Describe().bindings.empty());
    }
  }
  // With the faults gone the same bind works on all three.
  ASSERT_TRUE(space_.Bind(7, objects_[0].get()).ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(devs_[i].pasids.count(7), 1u);
  ASSERT_TRUE(space_.Unbind(7, "io0").ok());
}

TEST_F(PasidSpaceTest, ADeviceAddedLaterInheritsEveryLiveBinding) {
  ASSERT_TRUE(Open(0, 8).ok());
  ASSERT_TRUE(space_.Bind(3, objects_[0].get()).ok());
  ASSERT_TRUE(space_.Bind(9, objects_[0].get()).ok());
  auto b = Open(1, 6, 1);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(devs_[1].pasids.size(), 2u);
  EXPECT_EQ(kernel_.hwpts[devs_[1].pasids.at(3)].ioas, objects_[1]->ioas_id());
  EXPECT_EQ(space_.Describe().devices[1].pasids, (std::vector<uint32_t>{3, 9}));
  EXPECT_EQ(space_.Describe().bindings[1].attachments.size(), 2u);
  // A device without PASID joins without attachments.
  ASSERT_TRUE(Open(2, 0).ok());
  EXPECT_TRUE(devs_[2].pasids.empty());
  ASSERT_TRUE(space_.Unbind(3, "io0").ok());
  ASSERT_TRUE(space_.Unbind(9, "io0").ok());
}

TEST_F(PasidSpaceTest, ADeviceThatCannotTakeEveryBindingIsRefusedWithNothingLeft) {
  ASSERT_TRUE(Open(0, 8).ok());
  ASSERT_TRUE(space_.Bind(3, objects_[0].get()).ok());
  ASSERT_TRUE(space_.Bind(9, objects_[0].get()).ok());
  const size_t hwpts = kernel_.hwpts.size();
  devs_[1].fail_pasid_attach = ENOSPC;
  devs_[1].pasid_attaches_before_failing = 1;  // takes 3, fails at 9
  auto b = Open(1, 8);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("b: cannot take live PASID 9 (1 other binding(s) rolled back)"),
            absl::string_view::npos)
      << b.status();
  EXPECT_TRUE(devs_[1].pasids.empty());
  EXPECT_EQ(devs_[1].bound_iommufd, -1) << "the refused device is closed";
  EXPECT_EQ(kernel_.hwpts.size(), hwpts) << "its HWPTs went with it";
  EXPECT_EQ(space_.Describe().devices.size(), 1u);
  ASSERT_TRUE(space_.Unbind(3, "io0").ok());
  ASSERT_TRUE(space_.Unbind(9, "io0").ok());
}

TEST_F(PasidSpaceTest, ARemovedDeviceDropsItsBindingsBeforeItsWholeDeviceDetach) {
  ASSERT_TRUE(Open(0, 8).ok());
  ASSERT_TRUE(Open(1, 8).ok());
  RememberFds();
  ASSERT_TRUE(space_.Bind(3, objects_[0].get()).ok());
  ASSERT_TRUE(space_.Bind(4, objects_[0].get()).ok());
  kernel_.events.clear();
  Close(0);
  const std::string fd = std::to_string(open_fd_[0]);
  std::vector<std::string> a_events;
  for (const std::string& e : kernel_.events) {
    if (e.find(" " + fd) != std::string::npos) a_events.push_back(e);
  }
  ASSERT_GE(a_events.size(), 3u);
  EXPECT_EQ(a_events[0], "detach-pasid " + fd + " 4") << "newest binding first";
  EXPECT_EQ(a_events[1], "detach-pasid " + fd + " 3");
  EXPECT_EQ(a_events[2], "detach " + fd) << "PASIDs go before the whole-device attachment";
  PasidSpace::Info info = space_.Describe();
  ASSERT_EQ(info.bindings.size(), 2u) << "the bindings stay for the other devices";
  EXPECT_EQ(info.bindings[0].attachments.size(), 1u);
  EXPECT_EQ(info.bindings[0].attachments[0].device, "b");
  ASSERT_TRUE(space_.Unbind(3, "io0").ok());
  ASSERT_TRUE(space_.Unbind(4, "io0").ok());
}

TEST_F(PasidSpaceTest, RefusalsNameTheArgument) {
  // No PASID-capable device at all.
  ASSERT_TRUE(Open(2, 0, 1).ok());
  absl::Status s = space_.Bind(1, objects_[1].get());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("no device in this VM supports PASID (c: width 0)"), absl::string_view::npos) << s;
  ASSERT_TRUE(Open(0, 5, 0).ok());
  // An object whose devices have no PASID (c on io1).
  s = space_.Bind(1, objects_[1].get());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("'object' iommufd 'io1' has no PASID-capable device (c: width 0)"),
            absl::string_view::npos)
      << s;
  // PASID 0, and beyond the width (5 bits: 0..31).
  s = space_.Bind(0, objects_[0].get());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'pasid' 0"), absl::string_view::npos) << s;
  s = space_.Bind(32, objects_[0].get());
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("'pasid' 32 is beyond the VM's PASID width of 5 bits (largest 31)"),
            absl::string_view::npos)
      << s;
  EXPECT_EQ(PasidHwpts(), 0u);
  ASSERT_TRUE(space_.Bind(31, objects_[0].get()).ok());
  // Twice.
  s = space_.Bind(31, objects_[0].get());
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(s.message().find("'pasid' 31 is already bound to iommufd 'io0'"), absl::string_view::npos) << s;
  // A device that would shrink the width below a live PASID (31 needs 5 bits).
  auto narrow = Open(1, 4);
  ASSERT_FALSE(narrow.ok());
  EXPECT_EQ(narrow.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(narrow.status().message().find("b: its PASID width of 4 bits would shrink the VM's PASID space "
                                           "below live PASID 31"),
            absl::string_view::npos)
      << narrow.status();
  EXPECT_EQ(devs_[1].pasid_attaches, 0) << "refused before any attach";
  EXPECT_EQ(space_.width(), 5);
  // The object with a live binding cannot go.
  s = space_.CheckObjectRemovable("io0");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("iommufd 'io0' has live PASID binding(s) (pasid 31)"), absl::string_view::npos)
      << s;
  EXPECT_TRUE(space_.CheckObjectRemovable("io1").ok());
  // Unbind: the wrong object, a PASID not bound.
  s = space_.Unbind(31, "io1");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("is bound to iommufd 'io0', not 'object' 'io1'"), absl::string_view::npos) << s;
  EXPECT_EQ(PasidHwpts(), 1u) << "a refused unbind detaches nothing";
  s = space_.Unbind(30, "io0");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(space_.Unbind(31, "io0").ok());
  EXPECT_TRUE(space_.CheckObjectRemovable("io0").ok());
}

}  // namespace
}  // namespace passage
