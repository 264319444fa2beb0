// VfioPciDevice over the fake kernel: config-space virtualization, BARs from
// VFIO regions with the MSI-X table trapped, and interrupt wiring.
#include "devices/vfio/vfio_pci.h"

#include <gtest/gtest.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "devices/guest_error.h"
#include "tests/unit/fake_interrupt_controller.h"
#include "tests/unit/fake_kernel.h"

namespace passage {
namespace {

using testing::FakeInterruptController;
using testing::FakeKernel;
using testing::FakeVfioPci;

constexpr char kSysfs[] = "/sys/bus/pci/devices/0000:00:05.0";
constexpr uint32_t kMsixTableOffset = 0x2000;
constexpr uint32_t kPbaOffset = 0x3000;
constexpr uint16_t kVectors = 4;

void Put16(std::vector<uint8_t>& c, uint32_t off, uint16_t v) {
  c[off] = static_cast<uint8_t>(v);
  c[off + 1] = static_cast<uint8_t>(v >> 8);
}
void Put32(std::vector<uint8_t>& c, uint32_t off, uint32_t v) {
  Put16(c, off, static_cast<uint16_t>(v));
  Put16(c, off + 2, static_cast<uint16_t>(v >> 16));
}

class VfioPciTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Describe();
    Open();
  }
  // The device as VFIO shows it: NVMe-like, MSI-X with kVectors vectors,
  // MSI with 4, INTx.
  void Describe() {
    auto& c = dev_.config;
    Put16(c, PCI_VENDOR_ID, 0x1b36);
    Put16(c, PCI_DEVICE_ID, 0x0010);
    c[PCI_REVISION_ID] = 2;
    Put32(c, PCI_CLASS_REVISION, 0x01080202);  // NVMe class, revision 2
    Put16(c, PCI_SUBSYSTEM_VENDOR_ID, 0x1af4);
    Put16(c, PCI_SUBSYSTEM_ID, 0x1100);
    Put16(c, PCI_STATUS, PCI_STATUS_CAP_LIST);
    Put32(c, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_TYPE_64);  // BAR0: 64-bit, 16 KiB
    Put32(c, PCI_BASE_ADDRESS_0 + 8, PCI_BASE_ADDRESS_SPACE_IO);  // BAR2: I/O, 8 bytes
    c[PCI_INTERRUPT_PIN] = 1;
    c[PCI_CAPABILITY_LIST] = 0x40;
    // 0x40 MSI-X: 4 vectors, table and PBA in BAR0.
    c[0x40] = PCI_CAP_ID_MSIX;
    c[0x41] = 0x50;
    Put16(c, 0x42, kVectors - 1);
    Put32(c, 0x44, kMsixTableOffset | 0);
    Put32(c, 0x48, kPbaOffset | 0);
    // 0x50 vendor-specific: must be hidden.
    c[0x50] = PCI_CAP_ID_VNDR;
    c[0x51] = 0x60;
    // 0x60 PCI Express: copied read-only.
    c[0x60] = PCI_CAP_ID_EXP;
    c[0x61] = 0xa0;
    Put16(c, 0x62, 0x0002);
    Put32(c, 0x64, 0x12345678);  // device capabilities
    // 0xa0 MSI: 4 vectors, 64-bit, per-vector masking.
    c[0xa0] = PCI_CAP_ID_MSI;
    c[0xa1] = 0;
    Put16(c, 0xa2, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (2 << 1));
    dev_.regions[VFIO_PCI_CONFIG_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 4096, {}, false};
    dev_.regions[VFIO_PCI_BAR0_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
        0x4000, {}, false};
    dev_.regions[VFIO_PCI_BAR2_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 8, {}, false};
    dev_.irq_counts[VFIO_PCI_INTX_IRQ_INDEX] = 1;
    dev_.irq_counts[VFIO_PCI_MSIX_IRQ_INDEX] = kVectors;
    dev_.irq_counts[VFIO_PCI_MSI_IRQ_INDEX] = 4;
  }
  void Open() {
    kernel_.paths.insert(kSysfs);
    kernel_.links[std::string(kSysfs) + "/driver"] = "../../../bus/pci/drivers/vfio-pci";
    kernel_.dirs[std::string(kSysfs) + "/vfio-dev"] = {"vfio3"};
    kernel_.cdevs["/dev/vfio/devices/vfio3"] = &dev_;
    auto iommufd = Iommufd::Create({"iommufd0"}, &kernel_);
    ASSERT_TRUE(iommufd.ok());
    iommufd_ = std::move(*iommufd);
    auto vfio = VfioDevice::OpenWithIommufd({"nvme0", kSysfs, -1}, *iommufd_, &kernel_);
    ASSERT_TRUE(vfio.ok()) << vfio.status();
    auto pci = VfioPciDevice::Create(std::move(*vfio), irq_, loop_, "vfio-pci id=nvme0");
    ASSERT_TRUE(pci.ok()) << pci.status();
    pci_ = std::move(*pci);
  }

  void TearDown() override {
    pci_.reset();
    EXPECT_TRUE(dev_.irq_eventfds.empty()) << "interrupts left wired";
    EXPECT_TRUE(irq_.irqfds.empty()) << "irqfds left attached";
  }

  uint32_t Cfg(uint32_t off, uint32_t size = 4) { return pci_->ConfigRead(off, size); }
  void SetCfg(uint32_t off, uint32_t size, uint32_t v) { pci_->ConfigWrite(off, size, v); }

  void BarWrite32(int bar, uint64_t off, uint32_t v) {
    pci_->bar_spec(bar)->handler->Write(off, {reinterpret_cast<uint8_t*>(&v), 4});
  }
  uint32_t BarRead32(int bar, uint64_t off) {
    uint32_t v = 0;
    pci_->bar_spec(bar)->handler->Read(off, {reinterpret_cast<uint8_t*>(&v), 4});
    return v;
  }
  void EnableMsix() {
    const uint32_t cap = *FindCap(PCI_CAP_ID_MSIX);
    SetCfg(cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  }
  void ProgramMsix(uint16_t v, const MsiMessage& m) {
    BarWrite32(0, kMsixTableOffset + 16u * v + 0, static_cast<uint32_t>(m.address));
    BarWrite32(0, kMsixTableOffset + 16u * v + 4, static_cast<uint32_t>(m.address >> 32));
    BarWrite32(0, kMsixTableOffset + 16u * v + 8, m.data);
  }
  void UnmaskMsix(uint16_t v, bool unmask) {
    BarWrite32(0, kMsixTableOffset + 16u * v + 12, unmask ? 0 : PCI_MSIX_ENTRY_CTRL_MASKBIT);
  }
  // The device raises vector `v`: VFIO signals whatever eventfd it holds for it.
  bool Fire(uint32_t index, uint32_t v) {
    auto it = dev_.irq_eventfds.find({index, v});
    if (it == dev_.irq_eventfds.end()) return false;
    const uint64_t one = 1;
    return write(it->second, &one, sizeof(one)) == sizeof(one);
  }
  std::optional<uint32_t> FindCap(uint8_t id) {
    uint32_t pos = Cfg(PCI_CAPABILITY_LIST, 1);
    for (int i = 0; i < 48 && pos != 0; ++i) {
      if (Cfg(pos, 1) == id) return pos;
      pos = Cfg(pos + 1, 1);
    }
    return std::nullopt;
  }
  // Waits for the event loop to hand a VFIO-signalled vector on.
  template <typename F>
  bool Eventually(F f) {
    for (int i = 0; i < 200; ++i) {
      if (f()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  FakeKernel kernel_;
  FakeVfioPci dev_;
  FakeInterruptController irq_;
  EventLoop loop_;
  std::unique_ptr<Iommufd> iommufd_;
  std::shared_ptr<VfioPciDevice> pci_;
};

TEST_F(VfioPciTest, IdentityComesFromTheDeviceAndIsReadOnly) {
  EXPECT_EQ(Cfg(PCI_VENDOR_ID), 0x00101b36u);
  EXPECT_EQ(Cfg(PCI_CLASS_REVISION) >> 8, 0x010802u);
  EXPECT_EQ(Cfg(PCI_SUBSYSTEM_VENDOR_ID), 0x11001af4u);
  EXPECT_EQ(Cfg(PCI_INTERRUPT_PIN, 1), 1u);
  SetCfg(PCI_VENDOR_ID, 4, 0xdeadbeef);
  EXPECT_EQ(Cfg(PCI_VENDOR_ID), 0x00101b36u);
  EXPECT_TRUE(dev_.writes.empty()) << "an ID write reached the device";
  EXPECT_EQ(dev_.resets, 1) << "reset once when passage takes the device";
}

TEST_F(VfioPciTest, BarsAreSizedFromRegionsAndVirtual) {
  ASSERT_NE(pci_->bar_spec(0), nullptr);
  EXPECT_EQ(pci_->bar_spec(0)->kind, PciBarKind::kMem64);
  EXPECT_EQ(pci_->bar_spec(0)->size, 0x4000u);
  EXPECT_EQ(pci_->bar_spec(1), nullptr) << "upper half of the 64-bit BAR";
  ASSERT_NE(pci_->bar_spec(2), nullptr);
  EXPECT_EQ(pci_->bar_spec(2)->kind, PciBarKind::kIo);
  EXPECT_EQ(pci_->bar_spec(2)->size, 8u);
  // Sizing protocol.
  SetCfg(PCI_BASE_ADDRESS_0, 4, 0xffffffff);
  EXPECT_EQ(Cfg(PCI_BASE_ADDRESS_0), 0xffffc000u | PCI_BASE_ADDRESS_MEM_TYPE_64);
  SetCfg(PCI_BASE_ADDRESS_0, 4, 0xc0004000);
  EXPECT_EQ(pci_->BarAddress(0), 0xc0004000u);
  EXPECT_TRUE(dev_.writes.empty()) << "BAR writes are virtual";
}

TEST_F(VfioPciTest, CommandDecodeAndBusMasterReachTheDevice) {
  SetCfg(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_SERR);
  EXPECT_EQ(dev_.config[PCI_COMMAND] & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER),
            PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  EXPECT_EQ(dev_.config[PCI_COMMAND + 1] & (PCI_COMMAND_SERR >> 8), 0)
      << "only decode and bus master go to the device";
  SetCfg(PCI_COMMAND, 2, 0);
  EXPECT_EQ(dev_.config[PCI_COMMAND] & PCI_COMMAND_MASTER, 0);
}

TEST_F(VfioPciTest, CapabilitiesAreFilteredAndPcieIsReadOnly) {
  ASSERT_TRUE(FindCap(PCI_CAP_ID_MSIX).has_value());
  EXPECT_FALSE(FindCap(PCI_CAP_ID_VNDR).has_value()) << "vendor capability must be hidden";
  const std::optional<uint32_t> exp = FindCap(PCI_CAP_ID_EXP);
  ASSERT_TRUE(exp.has_value());
  EXPECT_EQ(Cfg(*exp + 4), 0x12345678u);
  SetCfg(*exp + 4, 4, 0);
  EXPECT_EQ(Cfg(*exp + 4), 0x12345678u);
  const uint32_t msix = *FindCap(PCI_CAP_ID_MSIX);
  EXPECT_EQ(Cfg(msix + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, kVectors - 1u);
  EXPECT_EQ(Cfg(msix + PCI_MSIX_TABLE), kMsixTableOffset);
  // No extended capabilities are shown.
  EXPECT_EQ(Cfg(0x100), 0u);
}

TEST_F(VfioPciTest, MsixTableAndPbaAreTrappedTheRestIsMapped) {
  const PciBarSpec* bar0 = pci_->bar_spec(0);
  ASSERT_FALSE(bar0->mmaps.empty());
  uint64_t mapped = 0;
  for (const PciBarMmap& m : bar0->mmaps) {
    EXPECT_FALSE(m.offset < kMsixTableOffset + 0x1000 && kMsixTableOffset < m.offset + m.size)
        << "table page mapped at 0x" << std::hex << m.offset;
    EXPECT_FALSE(m.offset < kPbaOffset + 0x1000 && kPbaOffset < m.offset + m.size);
    mapped += m.size;
  }
  EXPECT_EQ(mapped, 0x2000u) << "pages 0 and 1 stay mapped";
  // Table writes land in the emulated table, not in the device.
  BarWrite32(0, kMsixTableOffset + 16 + 8, 0x4321);  // vector 1 data
  EXPECT_EQ(BarRead32(0, kMsixTableOffset + 16 + 8), 0x4321u);
  EXPECT_EQ(BarRead32(0, kMsixTableOffset + 12), PCI_MSIX_ENTRY_CTRL_MASKBIT)
      << "vectors start masked";
  EXPECT_TRUE(dev_.writes.empty());
  // Elsewhere in a trapped page, accesses go to the region.
  BarWrite32(0, kMsixTableOffset + 0x800, 7);
  ASSERT_EQ(dev_.writes.size(), 1u);
  EXPECT_EQ(dev_.writes[0].first,
            (uint64_t{VFIO_PCI_BAR0_REGION_INDEX} << FakeVfioPci::kRegionShift) +
                kMsixTableOffset + 0x800);
  // Beyond the region (the BAR is larger than a small region): dropped.
  BarWrite32(2, 6, 1);
  EXPECT_EQ(dev_.writes.size(), 1u);
}

TEST_F(VfioPciTest, IntxIsWiredWithResampleAndReplacedByMsix) {
  ASSERT_TRUE(pci_->ConnectIntx(17).ok());
  EXPECT_EQ(pci_->irq_mode(), VfioPciDevice::IrqMode::kIntx);
  ASSERT_EQ(irq_.irqfds.size(), 1u);
  const auto& [efd, irqfd] = *irq_.irqfds.begin();
  EXPECT_EQ(irqfd.gsi, 17u);
  EXPECT_GE(irqfd.resample_fd, 0) << "INTx is level-triggered: needs a resample fd";
  EXPECT_EQ((dev_.irq_eventfds[{VFIO_PCI_INTX_IRQ_INDEX, 0}]), efd);
  EXPECT_EQ(dev_.unmask_eventfds[VFIO_PCI_INTX_IRQ_INDEX], irqfd.resample_fd);

  EnableMsix();
  EXPECT_EQ(pci_->irq_mode(), VfioPciDevice::IrqMode::kMsix);
  EXPECT_FALSE(dev_.irq_eventfds.count({VFIO_PCI_INTX_IRQ_INDEX, 0})) << "INTx still wired";
  for (uint32_t v = 0; v < kVectors; ++v) {
    EXPECT_TRUE(dev_.irq_eventfds.count({VFIO_PCI_MSIX_IRQ_INDEX, v})) << "vector " << v;
  }
  const uint32_t msix = *FindCap(PCI_CAP_ID_MSIX);
  SetCfg(msix + PCI_MSIX_FLAGS, 2, 0);  // back to INTx
  EXPECT_EQ(pci_->irq_mode(), VfioPciDevice::IrqMode::kIntx);
  EXPECT_FALSE(dev_.irq_eventfds.count({VFIO_PCI_MSIX_IRQ_INDEX, 0}));
}

TEST_F(VfioPciTest, MsixVectorDeliveryHonoursMaskAndPending) {
  EnableMsix();
  // Program vector 2 and leave it masked.
  BarWrite32(0, kMsixTableOffset + 2 * 16 + 0, 0xfee00000);
  BarWrite32(0, kMsixTableOffset + 2 * 16 + 8, 0x41);
  const int32_t vfio_fd = dev_.irq_eventfds[{VFIO_PCI_MSIX_IRQ_INDEX, 2}];
  ASSERT_TRUE(Fire(VFIO_PCI_MSIX_IRQ_INDEX, 2));
  ASSERT_TRUE(Eventually([&] { return (BarRead32(0, kPbaOffset) & 4) != 0; }))
      << "masked vector must become pending";
  EXPECT_EQ(irq_.GsiFor({0xfee00000, 0x41}), 0u) << "nothing delivered while masked";
  // Unmasking delivers the pending interrupt through an irqfd route.
  BarWrite32(0, kMsixTableOffset + 2 * 16 + 12, 0);
  const uint32_t gsi = irq_.GsiFor({0xfee00000, 0x41});
  ASSERT_NE(gsi, 0u);
  EXPECT_EQ(irq_.TakeDeliveries(gsi), 1u);
  EXPECT_EQ(BarRead32(0, kPbaOffset) & 4, 0u);
  EXPECT_NE(dev_.irq_eventfds.at({VFIO_PCI_MSIX_IRQ_INDEX, 2}), vfio_fd) << "still on the loop eventfd";
  // Unmasked now: the next event goes straight through.
  ASSERT_TRUE(Fire(VFIO_PCI_MSIX_IRQ_INDEX, 2));
  EXPECT_EQ(irq_.TakeDeliveries(gsi), 1u);
  EXPECT_TRUE(irq_.fatal().empty());
}

// The direct path: VFIO signals the vector's KVM irqfd itself while the
// vector is unmasked; only a masked vector's events pass through passage.
TEST_F(VfioPciTest, UnmaskedMsixVectorGoesStraightFromVfioToTheIrqfd) {
  const MsiMessage msg{0xfee00000, 0x42};
  EnableMsix();
  ProgramMsix(1, msg);
  // Masked: VFIO signals a loop eventfd, not an irqfd.
  const int32_t masked_fd = dev_.irq_eventfds.at({VFIO_PCI_MSIX_IRQ_INDEX, 1});
  EXPECT_EQ(irq_.GsiOfIrqfd(masked_fd), 0u);
  EXPECT_FALSE(pci_->msix()->direct(1));

  UnmaskMsix(1, true);
  const uint32_t gsi = irq_.GsiFor(msg);
  ASSERT_NE(gsi, 0u) << "unmasking routes the vector";
  const int32_t direct_fd = dev_.irq_eventfds.at({VFIO_PCI_MSIX_IRQ_INDEX, 1});
  EXPECT_EQ(direct_fd, pci_->msix()->irqfd(1));
  EXPECT_EQ(irq_.GsiOfIrqfd(direct_fd), gsi)
      << "VFIO's eventfd for the vector must be the irqfd attached to its GSI";
  EXPECT_TRUE(pci_->msix()->direct(1));
  // The other vectors are still masked: still on loop eventfds.
  for (uint32_t v : {0u, 2u, 3u}) {
    EXPECT_EQ(irq_.GsiOfIrqfd(dev_.irq_eventfds.at({VFIO_PCI_MSIX_IRQ_INDEX, v})), 0u) << v;
  }
  ASSERT_TRUE(Fire(VFIO_PCI_MSIX_IRQ_INDEX, 1));
  EXPECT_EQ(irq_.TakeDeliveries(gsi), 1u);

  // Mask: swapped back to a loop eventfd; events there only set pending.
  UnmaskMsix(1, false);
  const int32_t loop_fd = dev_.irq_eventfds.at({VFIO_PCI_MSIX_IRQ_INDEX, 1});
  EXPECT_NE(loop_fd, direct_fd);
  EXPECT_EQ(irq_.GsiOfIrqfd(loop_fd), 0u);
  EXPECT_FALSE(pci_->msix()->direct(1));
  ASSERT_TRUE(Fire(VFIO_PCI_MSIX_IRQ_INDEX, 1));
  ASSERT_TRUE(Fire(VFIO_PCI_MSIX_IRQ_INDEX, 1));
  ASSERT_TRUE(Eventually([&] { return (BarRead32(0, kPbaOffset) & 2) != 0; }))
      << "an event on a masked vector sets its pending bit";
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(irq_.TakeDeliveries(gsi), 0u) << "nothing delivered while masked";

  // Unmask: exactly one delivery for both events, pending clear, direct again.
  UnmaskMsix(1, true);
  EXPECT_EQ(irq_.TakeDeliveries(gsi), 1u);
  EXPECT_EQ(BarRead32(0, kPbaOffset) & 2, 0u);
  EXPECT_EQ(dev_.irq_eventfds.at({VFIO_PCI_MSIX_IRQ_INDEX, 1}), direct_fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(irq_.TakeDeliveries(gsi), 0u) << "delivered twice";
  EXPECT_TRUE(irq_.fatal().empty());
}

TEST_F(VfioPciTest, FunctionMaskSwapsEveryVectorToTheLoop) {
  const MsiMessage msg{0xfee00000, 0x43};
  EnableMsix();
  ProgramMsix(3, msg);
  UnmaskMsix(3, true);
  const uint32_t gsi = irq_.GsiFor(msg);
  ASSERT_NE(gsi, 0u);
  const uint32_t cap = *FindCap(PCI_CAP_ID_MSIX);
  SetCfg(cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  EXPECT_EQ(irq_.GsiOfIrqfd(dev_.irq_eventfds.at({VFIO_PCI_MSIX_IRQ_INDEX, 3})), 0u);
  ASSERT_TRUE(Fire(VFIO_PCI_MSIX_IRQ_INDEX, 3));
  ASSERT_TRUE(Eventually([&] { return (BarRead32(0, kPbaOffset) & 8) != 0; }));
  EXPECT_EQ(irq_.TakeDeliveries(gsi), 0u);
  SetCfg(cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(irq_.TakeDeliveries(gsi), 1u);
  EXPECT_EQ(irq_.GsiOfIrqfd(dev_.irq_eventfds.at({VFIO_PCI_MSIX_IRQ_INDEX, 3})), gsi);
}

// An event VFIO queued on the loop eventfd just before unmask is delivered
// once, whether the loop thread or the unmask takes it.
TEST_F(VfioPciTest, EventQueuedAtUnmaskIsDeliveredOnce) {
  const MsiMessage msg{0xfee00000, 0x44};
  EnableMsix();
  ProgramMsix(0, msg);
  for (int round = 0; round < 50; ++round) {
    ASSERT_TRUE(Fire(VFIO_PCI_MSIX_IRQ_INDEX, 0));  // masked: to the loop
    UnmaskMsix(0, true);
    ASSERT_TRUE(Eventually([&] { return irq_.GsiFor(msg) != 0; }));
    const uint32_t gsi = irq_.GsiFor(msg);
    uint64_t delivered = 0;
    Eventually([&] { return (delivered += irq_.TakeDeliveries(gsi)) >= 1; });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    delivered += irq_.TakeDeliveries(gsi);
    ASSERT_EQ(delivered, 1u) << "round " << round;
    EXPECT_EQ(BarRead32(0, kPbaOffset) & 1, 0u);
    UnmaskMsix(0, false);
  }
}

TEST_F(VfioPciTest, UnmaskedMsiVectorGoesStraightFromVfioToTheIrqfd) {
  const uint32_t cap = *FindCap(PCI_CAP_ID_MSI);
  SetCfg(cap + PCI_MSI_ADDRESS_LO, 4, 0xfee00000);
  SetCfg(cap + PCI_MSI_DATA_64, 2, 0x50);
  SetCfg(cap + PCI_MSI_MASK_64, 4, 0x2);                               // vector 1 masked
  SetCfg(cap + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | (1 << 4));  // 2 vectors
  EXPECT_EQ(pci_->irq_mode(), VfioPciDevice::IrqMode::kMsi);
  const uint32_t gsi0 = irq_.GsiFor({0xfee00000, 0x50});
  ASSERT_NE(gsi0, 0u);
  EXPECT_EQ(irq_.GsiOfIrqfd(dev_.irq_eventfds.at({VFIO_PCI_MSI_IRQ_INDEX, 0})), gsi0);
  EXPECT_EQ(irq_.GsiOfIrqfd(dev_.irq_eventfds.at({VFIO_PCI_MSI_IRQ_INDEX, 1})), 0u);
  EXPECT_FALSE(dev_.irq_eventfds.count({VFIO_PCI_MSI_IRQ_INDEX, 2})) << "only 2 enabled";
  ASSERT_TRUE(Fire(VFIO_PCI_MSI_IRQ_INDEX, 1));
  ASSERT_TRUE(Eventually([&] { return (Cfg(cap + PCI_MSI_PENDING_64) & 2) != 0; }));
  SetCfg(cap + PCI_MSI_MASK_64, 4, 0);
  const uint32_t gsi1 = irq_.GsiFor({0xfee00000, 0x51});
  ASSERT_NE(gsi1, 0u);
  EXPECT_EQ(irq_.TakeDeliveries(gsi1), 1u);
  EXPECT_EQ(Cfg(cap + PCI_MSI_PENDING_64), 0u);
  EXPECT_EQ(irq_.GsiOfIrqfd(dev_.irq_eventfds.at({VFIO_PCI_MSI_IRQ_INDEX, 1})), gsi1);
}

TEST_F(VfioPciTest, GuestCannotReachOutsideTheTable) {
  EnableMsix();
  // Misaligned or out-of-range table accesses change nothing.
  BarWrite32(0, kMsixTableOffset + kVectors * 16, 0x1234);  // just past the table
  uint64_t v = 0;
  pci_->bar_spec(0)->handler->Read(kMsixTableOffset + 2,
                                   {reinterpret_cast<uint8_t*>(&v), 4});  // misaligned
  EXPECT_EQ(v & 0xffffffff, 0xffffffffu);
  EXPECT_EQ(BarRead32(0, kMsixTableOffset + 12), PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

// What a hostile guest does to the trapped MSI-X page (issue 15): each
// malformed access is a guest error, none reaches the device, and the table
// still works afterwards.
TEST_F(VfioPciTest, HostileMsixAccessesAreLoggedAndChangeNothing) {
  GuestErrorLog::Global().Reset();
  std::vector<std::string> lines;
  GuestErrorLog::Sink old =
      GuestErrorLog::Global().SetSink([&lines](const std::string& l) { lines.push_back(l); });
  EnableMsix();
  uint64_t ones = ~0ull;
  auto* bar = pci_->bar_spec(0)->handler.get();
  bar->Write(kMsixTableOffset - 4, {reinterpret_cast<uint8_t*>(&ones), 8});  // straddles the start
  bar->Write(kMsixTableOffset + 12, {reinterpret_cast<uint8_t*>(&ones), 1});  // a byte
  bar->Write(kMsixTableOffset + kVectors * 16 - 4, {reinterpret_cast<uint8_t*>(&ones), 8});  // the end
  for (int i = 0; i < 1000; ++i) bar->Write(kPbaOffset, {reinterpret_cast<uint8_t*>(&ones), 8});
  GuestErrorLog::Global().SetSink(std::move(old));
  EXPECT_EQ(GuestErrorLog::Global().count("vfio-pci id=nvme0", "msix-table"), 3u);
  EXPECT_EQ(GuestErrorLog::Global().count("vfio-pci id=nvme0", "msix-pba"), 1000u);
  EXPECT_LE(lines.size(), 2u * (GuestErrorLog::kBurst + 1));
  GuestErrorLog::Global().Reset();
  EXPECT_TRUE(dev_.writes.empty()) << "a hostile access reached the device";
  EXPECT_EQ(BarRead32(0, kMsixTableOffset + 12), PCI_MSIX_ENTRY_CTRL_MASKBIT);
  EXPECT_EQ(BarRead32(0, kPbaOffset), 0u);
  ProgramMsix(1, {0xfee00000, 0x45});
  EXPECT_EQ(BarRead32(0, kMsixTableOffset + 16 + 8), 0x45u);
}

TEST_F(VfioPciTest, AttachFailsWhenIntxCannotBeWired) {
  dev_.failing_irq_indexes.insert(VFIO_PCI_INTX_IRQ_INDEX);
  const absl::Status s = pci_->ConnectIntx(17);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("VFIO_DEVICE_SET_IRQS"), std::string::npos) << s;
  EXPECT_EQ(pci_->irq_mode(), VfioPciDevice::IrqMode::kNone);
  EXPECT_TRUE(irq_.irqfds.empty()) << "the irqfd of a failed INTx stays attached";
}

TEST_F(VfioPciTest, MsixThatVfioRefusesReadsDisabledAndIntxStays) {
  ASSERT_TRUE(pci_->ConnectIntx(17).ok());
  dev_.failing_irq_indexes.insert(VFIO_PCI_MSIX_IRQ_INDEX);
  const uint32_t cap = *FindCap(PCI_CAP_ID_MSIX);
  SetCfg(cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(Cfg(cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE, 0u)
      << "the guest must see MSI-X disabled";
  EXPECT_FALSE(pci_->msix()->enabled());
  EXPECT_EQ(pci_->irq_mode(), VfioPciDevice::IrqMode::kIntx);
  EXPECT_TRUE(dev_.irq_eventfds.count({VFIO_PCI_INTX_IRQ_INDEX, 0}));
  // Once VFIO accepts it, enabling works.
  dev_.failing_irq_indexes.clear();
  SetCfg(cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(pci_->irq_mode(), VfioPciDevice::IrqMode::kMsix);
}

TEST_F(VfioPciTest, MsiThatVfioRefusesReadsDisabled) {
  dev_.failing_irq_indexes.insert(VFIO_PCI_MSI_IRQ_INDEX);
  const uint32_t cap = *FindCap(PCI_CAP_ID_MSI);
  SetCfg(cap + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
  EXPECT_EQ(Cfg(cap + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_ENABLE, 0u);
  EXPECT_EQ(pci_->irq_mode(), VfioPciDevice::IrqMode::kNone);
}

// Two vCPUs flipping MSI-X and MSI on and off at once: afterwards VFIO's mode
// is the one the capabilities (what the guest reads) say.
TEST_F(VfioPciTest, ConcurrentConfigWritesLeaveVfioInTheModeTheGuestSees) {
  ASSERT_TRUE(pci_->ConnectIntx(17).ok());
  const uint32_t msix = *FindCap(PCI_CAP_ID_MSIX);
  const uint32_t msi = *FindCap(PCI_CAP_ID_MSI);
  auto flip = [&](uint32_t reg, uint16_t bit, unsigned seed) {
    for (int i = 0; i < 200; ++i) {
      SetCfg(reg, 2, (seed >> (i % 16)) & 1 ? bit : 0);
      seed = seed * 1103515245 + 12345;
    }
  };
  std::thread a(flip, msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 1u);
  std::thread b(flip, msi + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE, 7u);
  a.join();
  b.join();
  const bool msix_on = Cfg(msix + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE;
  const bool msi_on = Cfg(msi + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_ENABLE;
  const VfioPciDevice::IrqMode want = msix_on  ? VfioPciDevice::IrqMode::kMsix
                                      : msi_on ? VfioPciDevice::IrqMode::kMsi
                                               : VfioPciDevice::IrqMode::kIntx;
  EXPECT_EQ(pci_->irq_mode(), want);
  const uint32_t live = want == VfioPciDevice::IrqMode::kMsix ? VFIO_PCI_MSIX_IRQ_INDEX
                        : want == VfioPciDevice::IrqMode::kMsi ? VFIO_PCI_MSI_IRQ_INDEX
                                                               : VFIO_PCI_INTX_IRQ_INDEX;
  for (const auto& [key, fd] : dev_.irq_eventfds) EXPECT_EQ(key.first, live) << "index " << key.first;
}

// VFIO offers fewer vectors than the capability claims: the guest sees VFIO's count.
class VfioPciVectorCountTest : public VfioPciTest {
 protected:
  void SetUp() override {
    Describe();
    dev_.irq_counts[VFIO_PCI_MSIX_IRQ_INDEX] = 2;
    dev_.irq_counts[VFIO_PCI_MSI_IRQ_INDEX] = 2;
    Open();
  }
};

TEST_F(VfioPciVectorCountTest, VectorCountsAreVfiosWhenSmaller) {
  EXPECT_EQ(pci_->msix_vectors(), 2u);
  EXPECT_EQ(Cfg(*FindCap(PCI_CAP_ID_MSIX) + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, 1u);
  EXPECT_EQ(pci_->msi_vectors(), 2u);
  EXPECT_EQ((Cfg(*FindCap(PCI_CAP_ID_MSI) + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_QMASK) >> 1, 1u);
  EnableMsix();
  EXPECT_EQ(pci_->irq_mode(), VfioPciDevice::IrqMode::kMsix) << "VFIO accepted the count";
  EXPECT_TRUE(dev_.irq_eventfds.count({VFIO_PCI_MSIX_IRQ_INDEX, 1}));
  EXPECT_FALSE(dev_.irq_eventfds.count({VFIO_PCI_MSIX_IRQ_INDEX, 2}));
}

TEST_F(VfioPciTest, NoRomRegionMeansNoRomBar) {
  EXPECT_EQ(pci_->bar_spec(PciDevice::kRomBar), nullptr);
  SetCfg(PCI_ROM_ADDRESS, 4, 0xffffffff);
  EXPECT_EQ(Cfg(PCI_ROM_ADDRESS), 0u);
}

// A device with an expansion ROM: read once at start, served from the copy.
class VfioPciRomTest : public VfioPciTest {
 protected:
  void SetUp() override {}  // each test sets the ROM up, then calls Start()
  void Start() { VfioPciTest::SetUp(); }
  void SetRom(std::vector<uint8_t> rom, uint64_t region_size) {
    dev_.rom = std::move(rom);
    dev_.regions[VFIO_PCI_ROM_REGION_INDEX] = {VFIO_REGION_INFO_FLAG_READ, region_size, {}, false};
  }
};

TEST_F(VfioPciRomTest, RomIsReadOnceAndServedFromTheCopy) {
  std::vector<uint8_t> rom(0x1800);
  for (size_t i = 0; i < rom.size(); ++i) rom[i] = static_cast<uint8_t>(i * 7 + 1);
  rom[0] = 0x55;
  rom[1] = 0xaa;
  SetRom(rom, rom.size());
  Start();
  const PciBarSpec* spec = pci_->bar_spec(PciDevice::kRomBar);
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(spec->kind, PciBarKind::kMem32);
  EXPECT_EQ(spec->size, 0x2000u) << "0x1800 rounded up to a power of two";
  SetCfg(PCI_ROM_ADDRESS, 4, 0xffffffff);
  EXPECT_EQ(Cfg(PCI_ROM_ADDRESS), 0xffffe001u);
  const int reads = dev_.rom_reads;
  EXPECT_EQ(BarRead32(PciDevice::kRomBar, 0) & 0xffff, 0xaa55u);
  EXPECT_EQ(BarRead32(PciDevice::kRomBar, 0x100), static_cast<uint32_t>(rom[0x100] | rom[0x101] << 8 |
                                                                        rom[0x102] << 16 | rom[0x103] << 24));
  // Past the image, inside the BAR: all-ones; straddling the end: the tail.
  EXPECT_EQ(BarRead32(PciDevice::kRomBar, 0x1800), 0xffffffffu);
  EXPECT_EQ(BarRead32(PciDevice::kRomBar, 0x17fe), 0xffff0000u | rom[0x17fe] | rom[0x17ff] << 8);
  EXPECT_EQ(BarRead32(PciDevice::kRomBar, ~0ull - 1), 0xffffffffu) << "no wrap-around";
  // Writes go nowhere: neither the copy nor the device.
  const size_t writes = dev_.writes.size();
  BarWrite32(PciDevice::kRomBar, 0, 0);
  EXPECT_EQ(BarRead32(PciDevice::kRomBar, 0) & 0xffff, 0xaa55u);
  EXPECT_EQ(dev_.writes.size(), writes);
  EXPECT_EQ(dev_.rom_reads, reads) << "guest reads never reach the device";
}

TEST_F(VfioPciRomTest, UnreadableOrHugeRomIsHidden) {
  SetRom(std::vector<uint8_t>(0x1000, 0), 0x1000);
  dev_.rom_readable = false;
  Start();
  EXPECT_EQ(pci_->bar_spec(PciDevice::kRomBar), nullptr);
  EXPECT_EQ(dev_.rom_reads, 1);
  SetCfg(PCI_ROM_ADDRESS, 4, 0xffffffff);
  EXPECT_EQ(Cfg(PCI_ROM_ADDRESS), 0u);
}

TEST_F(VfioPciRomTest, RomLargerThanTheLimitIsHiddenUnread) {
  SetRom({}, 64ull << 20);
  Start();
  EXPECT_EQ(pci_->bar_spec(PciDevice::kRomBar), nullptr);
  EXPECT_EQ(dev_.rom_reads, 0);
}

}  // namespace
}  // namespace passage
