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
    c[0x61] = 0;
    Put16(c, 0x62, 0x0002);
    Put32(c, 0x64, 0x12345678);  // device capabilities
    dev_.regions[VFIO_PCI_CONFIG_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 4096, {}, false};
    dev_.regions[VFIO_PCI_BAR0_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
        0x4000, {}, false};
    dev_.regions[VFIO_PCI_BAR2_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 8, {}, false};
    dev_.irq_counts[VFIO_PCI_INTX_IRQ_INDEX] = 1;
    dev_.irq_counts[VFIO_PCI_MSIX_IRQ_INDEX] = kVectors;
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
  const uint64_t one = 1;
  ASSERT_EQ(write(vfio_fd, &one, sizeof(one)), 8);  // the device fires vector 2
  ASSERT_TRUE(Eventually([&] { return (BarRead32(0, kPbaOffset) & 4) != 0; }))
      << "masked vector must become pending";
  EXPECT_EQ(irq_.GsiFor({0xfee00000, 0x41}), 0u) << "nothing delivered while masked";
  // Unmasking delivers the pending interrupt through an irqfd route.
  BarWrite32(0, kMsixTableOffset + 2 * 16 + 12, 0);
  const uint32_t gsi = irq_.GsiFor({0xfee00000, 0x41});
  ASSERT_NE(gsi, 0u);
  EXPECT_EQ(irq_.TakeDeliveries(gsi), 1u);
  EXPECT_EQ(BarRead32(0, kPbaOffset) & 4, 0u);
  // Unmasked now: the next event goes straight through.
  ASSERT_EQ(write(vfio_fd, &one, sizeof(one)), 8);
  ASSERT_TRUE(Eventually([&] { return irq_.TakeDeliveries(gsi) == 1; }));
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

TEST_F(VfioPciTest, NoRomRegionMeansNoRomBar) {
  EXPECT_EQ(pci_->bar_spec(PciDevice::kRomBar), nullptr);
  SetCfg(PCI_ROM_ADDRESS, 4, 0xffffffff);
  EXPECT_EQ(Cfg(PCI_ROM_ADDRESS), 0u);
}

// A device with an expansion ROM: read once at start, served from the copy.
class VfioPciRomTest : public VfioPciTest {
 protected:
  void SetUp() override {}  // each test sets the ROM up, then calls Start()
  void Start() {
    VfioPciTest::SetUp();
  }
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
