// The guest's view of PASID (devices/pci/pasid_capability.h) on a
// passed-through function over the fake kernel: the synthesized PCIe PASID
// extended capability, its place in the chain, its read-only and writable
// bits, and the VM's negotiated width in it.
#include "devices/pci/pasid_capability.h"

#include <gtest/gtest.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "devices/vfio/vfio_pci.h"
#include "tests/unit/fake_interrupt_controller.h"
#include "tests/unit/fake_kernel.h"

namespace passage {
namespace {

using testing::FakeInterruptController;
using testing::FakeKernel;
using testing::FakeVfioPci;

class PasidCapabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto o = Iommufd::Create({"io0"}, &kernel_);
    ASSERT_TRUE(o.ok()) << o.status();
    iommufd_ = std::move(*o);
  }
  // A PCIe function (PCI Express capability at 0x40, `pcie`) with `width`
  // PASID bits; its own config space also has a physical PASID capability
  // and another extended one, which the guest must not see.
  std::shared_ptr<VfioPciDevice> Make(int n, uint8_t width, uint64_t caps, bool pcie = true) {
    FakeVfioPci& d = devs_[n];
    d.config[PCI_VENDOR_ID] = 0x86;
    d.config[PCI_VENDOR_ID + 1] = 0x80;
    d.config[PCI_STATUS] = PCI_STATUS_CAP_LIST;
    d.config[PCI_CAPABILITY_LIST] = 0x40;
    d.config[0x40] = pcie ? PCI_CAP_ID_EXP : PCI_CAP_ID_VNDR;
    d.config[0x42] = 0x02;
    // Physical: 0x100 AER (id 1) -> 0x140 PASID with 20 bits.
    d.config[0x100] = 0x01;
    d.config[0x101] = 0x00;
    d.config[0x102] = 0x01;
    d.config[0x103] = 0x14;
    d.config[0x140] = PCI_EXT_CAP_ID_PASID;
    d.config[0x142] = 0x01;
    d.config[0x145] = 20;
    d.regions[VFIO_PCI_CONFIG_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 4096, {}, false};
    d.max_pasid_log2 = width;
    d.hw_caps = caps;
    const std::string sysfs = absl::StrCat("/sys/bus/pci/devices/0000:00:0", n + 3, ".0");
    kernel_.AddVfioPciSysfs(absl::StrCat("0000:00:0", n + 3, ".0"), absl::StrCat("vfio", n),
                            absl::StrCat(n + 3), &d);
    VfioDevice::Options o;
    o.id = absl::StrCat("dev", n);
    o.sysfs_path = sysfs;
    o.pasid_space = &space_;
    auto vfio = VfioDevice::OpenWithIommufd(o, *iommufd_, &kernel_);
    EXPECT_TRUE(vfio.ok()) << vfio.status();
    if (!vfio.ok()) return nullptr;
    auto pci = VfioPciDevice::Create(std::move(*vfio), irq_, loop_, o.id);
    EXPECT_TRUE(pci.ok()) << pci.status();
    return pci.ok() ? *pci : nullptr;
  }
  // The extended capabilities a guest finds, walking from 0x100: offset -> id.
  static std::map<uint32_t, uint16_t> Chain(PciDevice& d) {
    std::map<uint32_t, uint16_t> out;
    uint32_t off = 0x100;
    for (int i = 0; i < 960 && off >= 0x100; ++i) {
      const uint32_t h = d.ConfigRead(off, 4);
      if (h == 0) break;
      out[off] = static_cast<uint16_t>(h & 0xffff);
      off = h >> 20 & ~3u;
    }
    return out;
  }

  FakeKernel kernel_;
  FakeVfioPci devs_[3];
  FakeInterruptController irq_;
  EventLoop loop_;
  PasidSpace space_;
  std::unique_ptr<Iommufd> iommufd_;
};

TEST_F(PasidCapabilityTest, APasidFunctionShowsOnePasidCapabilityWithTheNegotiatedWidth) {
  auto a = Make(0, 8, IOMMU_HW_CAP_PCI_PASID_EXEC);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(a->pasid(), nullptr);
  // The chain: only the synthesized capability (the physical AER and PASID hidden).
  EXPECT_EQ(Chain(*a), (std::map<uint32_t, uint16_t>{{0x100, PCI_EXT_CAP_ID_PASID}}));
  EXPECT_EQ(a->ConfigRead(0x100, 4), 0x0001001bu) << "ID 0x1B, version 1, last in the chain";
  // Capability register: width 8 (bits 12:8), Execute supported, not Privileged.
  EXPECT_EQ(a->ConfigRead(0x104, 2), (8u << 8) | PCI_PASID_CAP_EXEC);
  EXPECT_EQ(a->ConfigRead(0x106, 2), 0u) << "control starts disabled";
  EXPECT_EQ(a->ConfigRead(0x108, 4), 0u) << "nothing after it";

  // A narrower device joins: every function shows the VM's width from then on.
  auto b = Make(1, 5, IOMMU_HW_CAP_PCI_PASID_PRIV);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->ConfigRead(0x104, 2), (5u << 8) | PCI_PASID_CAP_EXEC);
  EXPECT_EQ(b->ConfigRead(0x104, 2), (5u << 8) | PCI_PASID_CAP_PRIV) << "its own EXEC/PRIV bits";
  b.reset();
  EXPECT_EQ(a->ConfigRead(0x104, 2), (8u << 8) | PCI_PASID_CAP_EXEC) << "and the width grows back";
}

TEST_F(PasidCapabilityTest, ReadOnlyBitsStayAndOnlySupportedEnablesAreWritable) {
  auto a = Make(0, 8, IOMMU_HW_CAP_PCI_PASID_EXEC);
  ASSERT_NE(a, nullptr);
  // The header and the capability register are read-only.
  a->ConfigWrite(0x100, 4, 0xffffffffu);
  EXPECT_EQ(a->ConfigRead(0x100, 4), 0x0001001bu);
  a->ConfigWrite(0x104, 2, 0xffff);
  EXPECT_EQ(a->ConfigRead(0x104, 2), (8u << 8) | PCI_PASID_CAP_EXEC);
  // Control: PASID Enable and (supported) Execute Enable take; Privileged
  // Mode Enable (not supported) and the reserved bits stay zero.
  a->ConfigWrite(0x106, 2, 0xffff);
  EXPECT_EQ(a->ConfigRead(0x106, 2), uint32_t{PCI_PASID_CTRL_ENABLE | PCI_PASID_CTRL_EXEC});
  a->ConfigWrite(0x104, 4, 0);  // a dword write over both registers
  EXPECT_EQ(a->ConfigRead(0x104, 4), (8u << 8) | PCI_PASID_CAP_EXEC);
  // The device's own config space is not touched by the guest's PASID writes.
  for (const auto& [offset, data] : devs_[0].writes) {
    const uint64_t off = offset & ((1ull << FakeVfioPci::kRegionShift) - 1);
    EXPECT_LT(off, 0x100u) << "a PASID write went to the device";
  }
}

TEST_F(PasidCapabilityTest, FunctionsWithoutPasidOrPcieGetNone) {
  auto none = Make(0, 0, 0);
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(none->pasid(), nullptr);
  EXPECT_EQ(none->ConfigRead(0x100, 4), 0u) << "no extended capability at all";
  auto conventional = Make(1, 8, 0, /*pcie=*/false);
  ASSERT_NE(conventional, nullptr);
  EXPECT_EQ(conventional->pasid(), nullptr) << "extended config space needs a PCIe function";
  EXPECT_EQ(conventional->ConfigRead(0x100, 4), 0u);
}

TEST(PciConfigSpaceExtended, ThePasidCapabilityGoesAfterWhatIsThereAndCollidesWithNothing) {
  PciConfigSpace config;
  ASSERT_TRUE(config.AddExtendedCapability(0x0001, 1, 0x48).ok());  // AER-sized
  PasidCapability cap([] { return uint8_t{20}; }, true, true);
  absl::StatusOr<uint32_t> at = cap.AddTo(config);
  ASSERT_TRUE(at.ok()) << at.status();
  EXPECT_EQ(*at, 0x148u) << "right after the 0x48 bytes at 0x100";
  EXPECT_EQ(config.Get32(0x100) >> 20, 0x148u) << "linked from the one before";
  EXPECT_EQ(config.FindExtendedCapability(PCI_EXT_CAP_ID_PASID), std::optional<uint32_t>(0x148));
  EXPECT_EQ(config.FindExtendedCapability(0x0001), std::optional<uint32_t>(0x100));
  EXPECT_EQ(config.FindExtendedCapability(0x0010), std::nullopt);
  EXPECT_EQ(config.Get16(0x14c), (20u << 8) | PCI_PASID_CAP_EXEC | PCI_PASID_CAP_PRIV);
  // A looped chain ends the walk.
  config.Set32(0x148, PCI_EXT_CAP_ID_PASID | 1u << 16 | 0x100u << 20);
  EXPECT_EQ(config.FindExtendedCapability(0x0010), std::nullopt);
}

}  // namespace
}  // namespace passage
