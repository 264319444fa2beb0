#include "devices/pci/pci_device.h"

#include <gtest/gtest.h>
#include <linux/pci_regs.h>

#include <vector>

#include "devices/pci/pci_bar_allocator.h"
#include "devices/pci/pci_bar_mapper.h"
#include "tests/unit/fake_interrupt_controller.h"

namespace passage {
namespace {

class TestDevice : public PciDevice {
 public:
  TestDevice() : PciDevice("test", {.vendor = 0x1234, .device = 0x5678, .class_code = 0xff0000, .interrupt_pin = 1}) {}
};

class Recorder : public IoHandler {
 public:
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    reads.push_back(offset);
    for (auto& b : data) b = 0x5a;
  }
  void Write(uint64_t offset, std::span<const uint8_t>) override { writes.push_back(offset); }
  std::vector<uint64_t> reads, writes;
};

PciBarSpec Bar(PciBarKind kind, uint64_t size, bool prefetchable = false,
               std::shared_ptr<IoHandler> handler = nullptr) {
  PciBarSpec s;
  s.kind = kind;
  s.size = size;
  s.prefetchable = prefetchable;
  s.handler = std::move(handler);
  return s;
}

constexpr PciWindows kWindows{{0xc000, 0x4000}, {0xc0000000, 0x20000000}, {0x100000000, 0x10000000}};

class PciDeviceTest : public ::testing::Test {
 protected:
  PciDeviceTest() : mapper_(kWindows, pio_, mmio_, nullptr) {}
  uint32_t Read32(uint32_t offset) { return dev_.ConfigRead(offset, 4); }
  void Write32(uint32_t offset, uint32_t v) { dev_.ConfigWrite(offset, 4, v); }
  bool MmioHits(uint64_t addr) {
    uint8_t b[4];
    return mmio_.Read(addr, b);
  }

  IoBus pio_{"pio"};
  IoBus mmio_{"mmio"};
  PciBarMapper mapper_;
  TestDevice dev_;
  testing::FakeInterruptController irq_;
};

TEST_F(PciDeviceTest, HeaderIdsAreReadOnly) {
  Write32(PCI_VENDOR_ID, 0xffffffff);
  Write32(PCI_CLASS_REVISION, 0xffffffff);
  EXPECT_EQ(Read32(PCI_VENDOR_ID), 0x56781234u);
  EXPECT_EQ(Read32(PCI_CLASS_REVISION), 0xff000000u);
  EXPECT_EQ(dev_.ConfigRead(PCI_INTERRUPT_PIN, 1), 1u);
  dev_.ConfigWrite(PCI_INTERRUPT_PIN, 1, 3);
  EXPECT_EQ(dev_.ConfigRead(PCI_INTERRUPT_PIN, 1), 1u);
  dev_.ConfigWrite(PCI_INTERRUPT_LINE, 1, 0x0b);
  EXPECT_EQ(dev_.ConfigRead(PCI_INTERRUPT_LINE, 1), 0x0bu);
}

TEST_F(PciDeviceTest, BarSizingProtocol32And64BitAndIo) {
  ASSERT_TRUE(dev_.DeclareBar(0, Bar(PciBarKind::kMem32, 0x1000)).ok());
  ASSERT_TRUE(dev_.DeclareBar(2, Bar(PciBarKind::kMem64, 0x400000000ull, true)).ok());  // 16 GiB
  ASSERT_TRUE(dev_.DeclareBar(4, Bar(PciBarKind::kIo, 0x20)).ok());
  // Write all-ones, read back the size mask with the type bits.
  for (uint32_t bar = 0; bar < 6; ++bar) Write32(PCI_BASE_ADDRESS_0 + 4 * bar, 0xffffffff);
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_0), 0xfffff000u);
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_1), 0u);  // unused
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_2), 0x0000000cu);  // 64-bit, prefetchable; low bits all size
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_3), 0xfffffffcu);  // 16 GiB: bits 33 and up
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_4), 0xffffffe1u);
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_5), 0u);
  // Restoring an address keeps it, aligned to the size.
  Write32(PCI_BASE_ADDRESS_0, 0xc0001234);
  EXPECT_EQ(Read32(PCI_BASE_ADDRESS_0), 0xc0001000u);
  EXPECT_EQ(dev_.BarAddress(0), 0xc0001000u);
  Write32(PCI_BASE_ADDRESS_2, 0);
  Write32(PCI_BASE_ADDRESS_3, 0x4);
  EXPECT_EQ(dev_.BarAddress(2), 0x400000000ull);
  EXPECT_EQ(dev_.bar_spec(3), nullptr);  // the upper half is not a BAR of its own
  // The expansion ROM is absent: reads zero even after sizing.
  Write32(PCI_ROM_ADDRESS, 0xffffffff);
  EXPECT_EQ(Read32(PCI_ROM_ADDRESS), 0u);
}

TEST_F(PciDeviceTest, DeclareBarRejectsBadLayouts) {
  EXPECT_FALSE(dev_.DeclareBar(0, Bar(PciBarKind::kMem32, 0x1800)).ok());   // not a power of two
  EXPECT_FALSE(dev_.DeclareBar(0, Bar(PciBarKind::kMem32, 0x800)).ok());    // below a page
  EXPECT_FALSE(dev_.DeclareBar(0, Bar(PciBarKind::kIo, 0x200)).ok());       // I/O BARs are at most 256
  EXPECT_FALSE(dev_.DeclareBar(5, Bar(PciBarKind::kMem64, 0x1000)).ok());   // needs two slots
  EXPECT_FALSE(dev_.DeclareBar(7, Bar(PciBarKind::kMem32, 0x1000)).ok());
  // The ROM (index 6) is a plain 32-bit memory BAR.
  EXPECT_FALSE(dev_.DeclareBar(PciDevice::kRomBar, Bar(PciBarKind::kMem64, 0x1000)).ok());
  EXPECT_FALSE(dev_.DeclareBar(PciDevice::kRomBar, Bar(PciBarKind::kIo, 0x10)).ok());
  EXPECT_FALSE(dev_.DeclareBar(PciDevice::kRomBar, Bar(PciBarKind::kMem32, 0x1000, true)).ok());
  ASSERT_TRUE(dev_.DeclareBar(0, Bar(PciBarKind::kMem64, 0x1000)).ok());
  EXPECT_EQ(dev_.DeclareBar(1, Bar(PciBarKind::kMem32, 0x1000)).code(), absl::StatusCode::kAlreadyExists);
  PciBarSpec with_mmap = Bar(PciBarKind::kMem32, 0x2000);
  static uint8_t page[0x1000];
  with_mmap.mmaps.push_back({0x1800, 0x1000, page});  // not page-aligned
  EXPECT_FALSE(dev_.DeclareBar(2, with_mmap).ok());
}

TEST_F(PciDeviceTest, CommandRegisterGatesDecoding) {
  auto h = std::make_shared<Recorder>();
  auto io = std::make_shared<Recorder>();
  ASSERT_TRUE(dev_.DeclareBar(0, Bar(PciBarKind::kMem32, 0x1000, false, h)).ok());
  ASSERT_TRUE(dev_.DeclareBar(1, Bar(PciBarKind::kIo, 0x10, false, io)).ok());
  dev_.SetBarAddress(0, 0xc0000000);
  dev_.SetBarAddress(1, 0xc000);
  ASSERT_TRUE(dev_.Attach(&mapper_, {&irq_, 16}).ok());
  EXPECT_FALSE(dev_.BarMapped(0));  // command register starts at zero
  EXPECT_FALSE(MmioHits(0xc0000000));
  dev_.ConfigWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  EXPECT_TRUE(dev_.BarMapped(0));
  EXPECT_FALSE(dev_.BarMapped(1));
  EXPECT_TRUE(MmioHits(0xc0000ffc));
  EXPECT_EQ(h->reads.back(), 0xffcu);
  uint8_t b[1];
  EXPECT_FALSE(pio_.Read(0xc000, b));
  dev_.ConfigWrite(PCI_COMMAND, 2, PCI_COMMAND_IO);
  EXPECT_FALSE(MmioHits(0xc0000000));
  EXPECT_TRUE(pio_.Read(0xc00f, b));
  EXPECT_EQ(io->reads.back(), 0xfu);
  dev_.Detach();
  EXPECT_FALSE(pio_.Read(0xc00f, b));
}

TEST_F(PciDeviceTest, ExpansionRomSizesAndDecodesOnlyWhenEnabled) {
  auto rom = std::make_shared<Recorder>();
  ASSERT_TRUE(dev_.DeclareBar(PciDevice::kRomBar, Bar(PciBarKind::kMem32, 0x8000, false, rom)).ok());
  // Sizing: the address bits above the size and the enable bit are writable.
  Write32(PCI_ROM_ADDRESS, 0xffffffff);
  EXPECT_EQ(Read32(PCI_ROM_ADDRESS), 0xffff8001u);
  Write32(PCI_ROM_ADDRESS, 0);
  dev_.SetBarAddress(PciDevice::kRomBar, 0xc0010000);
  EXPECT_EQ(Read32(PCI_ROM_ADDRESS), 0xc0010000u) << "firmware leaves it disabled";
  EXPECT_EQ(dev_.BarAddress(PciDevice::kRomBar), 0xc0010000u);
  dev_.EnableDecoding(false, true);
  ASSERT_TRUE(dev_.Attach(&mapper_, {}).ok());
  EXPECT_FALSE(dev_.BarMapped(PciDevice::kRomBar));
  EXPECT_FALSE(MmioHits(0xc0010000));
  // Enable bit on: decodes, at the address in the register.
  Write32(PCI_ROM_ADDRESS, 0xc0010000 | PCI_ROM_ADDRESS_ENABLE);
  EXPECT_TRUE(dev_.BarMapped(PciDevice::kRomBar));
  EXPECT_TRUE(MmioHits(0xc0017ffc));
  EXPECT_EQ(rom->reads.back(), 0x7ffcu);
  EXPECT_EQ(dev_.BarAddress(PciDevice::kRomBar), 0xc0010000u) << "no enable bit in the address";
  // Memory decoding off hides it too; back on, it returns.
  dev_.ConfigWrite(PCI_COMMAND, 2, 0);
  EXPECT_FALSE(MmioHits(0xc0010000));
  dev_.ConfigWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  EXPECT_TRUE(MmioHits(0xc0010000));
  // Moving it keeps the enable bit; disabling unmaps.
  dev_.SetBarAddress(PciDevice::kRomBar, 0xc0020000);
  EXPECT_FALSE(MmioHits(0xc0010000));
  EXPECT_TRUE(MmioHits(0xc0020000));
  Write32(PCI_ROM_ADDRESS, 0xc0020000);
  EXPECT_FALSE(MmioHits(0xc0020000));
  EXPECT_FALSE(dev_.BarMapped(PciDevice::kRomBar));
}

TEST_F(PciDeviceTest, GuestReprogrammingMovesTheBar) {
  auto h = std::make_shared<Recorder>();
  ASSERT_TRUE(dev_.DeclareBar(0, Bar(PciBarKind::kMem64, 0x4000, false, h)).ok());
  dev_.SetBarAddress(0, 0xc0000000);
  dev_.EnableDecoding(false, true);
  ASSERT_TRUE(dev_.Attach(&mapper_, {}).ok());
  ASSERT_TRUE(MmioHits(0xc0000000));
  // Moves within the 32-bit window...
  Write32(PCI_BASE_ADDRESS_0, 0xc0100000);
  EXPECT_FALSE(MmioHits(0xc0000000));
  EXPECT_TRUE(MmioHits(0xc0100000));
  // ...and above 4 GiB, one half at a time.
  Write32(PCI_BASE_ADDRESS_1, 0x1);
  EXPECT_FALSE(dev_.BarMapped(0));  // 0x1_c0100000 is outside both windows
  Write32(PCI_BASE_ADDRESS_0, 0x0);
  EXPECT_TRUE(dev_.BarMapped(0));
  EXPECT_TRUE(MmioHits(0x100000000));
  EXPECT_FALSE(MmioHits(0xc0100000));
}

TEST_F(PciDeviceTest, UntrustedPlacementsLeaveTheBarUndecoded) {
  auto other = std::make_shared<Recorder>();
  ASSERT_TRUE(mmio_.Register(0xc0200000, 0x1000, other, "other device").ok());
  ASSERT_TRUE(dev_.DeclareBar(0, Bar(PciBarKind::kMem32, 0x2000)).ok());
  dev_.SetBarAddress(0, 0xc0000000);
  dev_.EnableDecoding(false, true);
  ASSERT_TRUE(dev_.Attach(&mapper_, {}).ok());
  ASSERT_TRUE(dev_.BarMapped(0));
  for (uint32_t bad : {0xc0200000u, 0x00000000u, 0x7fffe000u, 0xdfffe000u + 0x2000u, 0xfee00000u}) {
    Write32(PCI_BASE_ADDRESS_0, bad);
    EXPECT_FALSE(dev_.BarMapped(0)) << std::hex << bad;
  }
  // The other device's range is untouched; a good address decodes again.
  uint8_t b[4];
  EXPECT_TRUE(mmio_.Read(0xc0200000, b));
  EXPECT_EQ(other->reads.size(), 1u);
  Write32(PCI_BASE_ADDRESS_0, 0xdfffe000);  // the last 8 KiB of the window
  EXPECT_TRUE(dev_.BarMapped(0));
}

TEST_F(PciDeviceTest, IntxFollowsLevelAndDisableBit) {
  ASSERT_TRUE(dev_.Attach(&mapper_, {&irq_, 17}).ok());
  dev_.SetIntx(true);
  EXPECT_TRUE(irq_.levels[17]);
  EXPECT_TRUE(dev_.ConfigRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
  dev_.ConfigWrite(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
  EXPECT_FALSE(irq_.levels[17]);
  // Status still shows the device's own interrupt state.
  EXPECT_TRUE(dev_.ConfigRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
  dev_.ConfigWrite(PCI_COMMAND, 2, 0);
  EXPECT_TRUE(irq_.levels[17]);
  dev_.SetIntx(false);
  EXPECT_FALSE(irq_.levels[17]);
  EXPECT_FALSE(dev_.ConfigRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
}

TEST_F(PciDeviceTest, CommandAndStatusMasks) {
  dev_.ConfigWrite(PCI_COMMAND, 2, 0xffff);
  EXPECT_EQ(dev_.ConfigRead(PCI_COMMAND, 2),
            static_cast<uint32_t>(PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                  PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE));
  dev_.ConfigWrite(PCI_STATUS, 2, 0xffff);  // nothing set, nothing to clear, nothing writable
  EXPECT_EQ(dev_.ConfigRead(PCI_STATUS, 2), 0u);
}

}  // namespace
}  // namespace passage
