#include "devices/pci/pci_bus.h"

#include <gtest/gtest.h>
#include <linux/pci_regs.h>

#include <cstring>

#include "devices/pci/pci_bar_mapper.h"
#include "devices/pci/pci_host_bridge.h"
#include "tests/unit/fake_interrupt_controller.h"

namespace passage {
namespace {

class TestDevice : public PciDevice {
 public:
  TestDevice(std::string name, uint16_t device, uint8_t pin = 0)
      : PciDevice(std::move(name), {.vendor = 0x1234, .device = device, .class_code = 0xff0000, .interrupt_pin = pin}) {}
};

PciBarSpec Bar(PciBarKind kind, uint64_t size) {
  PciBarSpec s;
  s.kind = kind;
  s.size = size;
  return s;
}

class PciBusTest : public ::testing::Test {
 protected:
  static constexpr PciWindows kWindows{{0xc000, 0x100}, {0xc0000000, 0x100000}, {0x100000000, 0x100000}};
  PciBusTest() : allocator_(kWindows), mapper_(kWindows, pio_, mmio_, nullptr), bus_(allocator_, mapper_, &irq_) {
    EXPECT_TRUE(bus_.Add({0, 0, 0}, std::make_shared<PciHostBridge>()).ok());
    EXPECT_TRUE(pio_.Register(PciConfigPorts::kBase, PciConfigPorts::kSize, std::make_shared<PciConfigPorts>(bus_), "cf8").ok());
    EXPECT_TRUE(mmio_.Register(0xe0000000, 0x10000000, std::make_shared<PciEcam>(bus_), "ecam").ok());
  }
  void OutL(uint16_t port, uint32_t v) {
    uint8_t b[4];
    std::memcpy(b, &v, 4);
    pio_.Write(port, b);
  }
  uint32_t In(uint16_t port, size_t size) {
    uint8_t b[4] = {};
    pio_.Read(port, std::span<uint8_t>(b, size));
    uint32_t v = 0;
    std::memcpy(&v, b, size);
    return v;
  }
  void Out(uint16_t port, size_t size, uint32_t v) {
    uint8_t b[4];
    std::memcpy(b, &v, 4);
    pio_.Write(port, std::span<const uint8_t>(b, size));
  }
  uint64_t Ecam(uint8_t bus, uint8_t slot, uint8_t fn, uint32_t reg) {
    return 0xe0000000 + (uint64_t{bus} << 20) + (uint64_t{slot} << 15) + (uint64_t{fn} << 12) + reg;
  }
  uint64_t EcamRead(uint64_t addr, size_t size) {
    uint8_t b[8] = {};
    mmio_.Read(addr, std::span<uint8_t>(b, size));
    uint64_t v = 0;
    std::memcpy(&v, b, size);
    return v;
  }
  void EcamWrite(uint64_t addr, size_t size, uint64_t v) {
    uint8_t b[8];
    std::memcpy(b, &v, 8);
    mmio_.Write(addr, std::span<const uint8_t>(b, size));
  }
  uint32_t Cf8(uint8_t slot, uint8_t fn, uint8_t reg, uint8_t bus = 0) {
    return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | reg;
  }

  IoBus pio_{"pio"};
  IoBus mmio_{"mmio"};
  testing::FakeInterruptController irq_;
  PciBarAllocator allocator_;
  PciBarMapper mapper_;
  PciBus bus_;
};

TEST_F(PciBusTest, ConfigPortsDecodeAddressAndData) {
  OutL(0xcf8, Cf8(0, 0, 0));
  EXPECT_EQ(In(0xcf8, 4), 0x80000000u);
  EXPECT_EQ(In(0xcfc, 4), 0x29c08086u);  // host bridge
  EXPECT_EQ(In(0xcfe, 2), 0x29c0u);      // word at byte 2 of the dword
  EXPECT_EQ(In(0xcff, 1), 0x29u);
  OutL(0xcf8, Cf8(0, 0, PCI_CLASS_REVISION));
  EXPECT_EQ(In(0xcfc, 4) >> 8, 0x060000u);
  // The low two bits and reserved bits 30:24 are not part of the address.
  OutL(0xcf8, Cf8(0, 0, 0) | 0x7f000003);
  EXPECT_EQ(In(0xcf8, 4), 0x80000000u);
  EXPECT_EQ(In(0xcfc, 2), 0x8086u);
  // Enable bit clear: no configuration cycle.
  OutL(0xcf8, 0x00000000);
  EXPECT_EQ(In(0xcfc, 4), 0xffffffffu);
  // Absent function, absent bus.
  OutL(0xcf8, Cf8(5, 0, 0));
  EXPECT_EQ(In(0xcfc, 4), 0xffffffffu);
  OutL(0xcf8, Cf8(0, 0, 0, 1));
  EXPECT_EQ(In(0xcfc, 2), 0xffffu);
}

TEST_F(PciBusTest, ConfigPortsIgnoreNonDwordAddressAccesses) {
  OutL(0xcf8, Cf8(0, 0, 0));
  Out(0xcfb, 1, 0x01);  // Linux's type-1 probe writes a byte at 0xCFB
  Out(0xcf8, 2, 0x1234);
  EXPECT_EQ(In(0xcf8, 4), 0x80000000u);
  EXPECT_EQ(In(0xcf8, 2), 0xffffu);
}

TEST_F(PciBusTest, ConfigPortWritesReachTheFunction) {
  auto d = std::make_shared<TestDevice>("t", 0x0001, 1);
  ASSERT_TRUE(bus_.Add({0, 3, 0}, d).ok());
  OutL(0xcf8, Cf8(3, 0, PCI_INTERRUPT_LINE));
  Out(0xcfc, 1, 0x0a);
  EXPECT_EQ(In(0xcfc, 1), 0x0au);
  // A misaligned data access (dword at 0xCFD) does nothing.
  Out(0xcfd, 2, 0xffff);  // word at byte 1 of PCI_INTERRUPT_LINE's dword: misaligned
  EXPECT_EQ(In(0xcfc, 4) & 0xff, 0x0au);
}

TEST_F(PciBusTest, EcamDecodesBusSlotFunctionRegister) {
  auto d = std::make_shared<TestDevice>("t", 0xabcd);
  ASSERT_TRUE(bus_.Add({0, 0x1f, 7}, d).ok());
  EXPECT_EQ(EcamRead(Ecam(0, 0, 0, 0), 4), 0x29c08086u);
  EXPECT_EQ(EcamRead(Ecam(0, 0x1f, 7, 0), 4), 0xabcd1234u);
  EXPECT_EQ(EcamRead(Ecam(0, 0x1f, 7, 2), 2), 0xabcdu);
  EXPECT_EQ(EcamRead(Ecam(0, 0x1f, 6, 0), 4), 0xffffffffu);
  EXPECT_EQ(EcamRead(Ecam(1, 0x1f, 7, 0), 4), 0xffffffffu);  // only bus 0 exists
  EXPECT_EQ(EcamRead(Ecam(255, 31, 7, 0xffc), 4), 0xffffffffu);
  // Extended config space (beyond 256 bytes) is reachable only here.
  EXPECT_EQ(EcamRead(Ecam(0, 0x1f, 7, 0x100), 4), 0u);
  // Misaligned accesses read all-ones.
  EXPECT_EQ(EcamRead(Ecam(0, 0, 0, 1), 2), 0xffffu);
  // A qword is two dwords.
  EXPECT_EQ(EcamRead(Ecam(0, 0x1f, 7, 0), 8), 0xabcd1234u);  // command/status are zero
  EcamWrite(Ecam(0, 0x1f, 7, PCI_INTERRUPT_LINE), 1, 0x44);
  EXPECT_EQ(EcamRead(Ecam(0, 0x1f, 7, PCI_INTERRUPT_LINE), 1), 0x44u);
}

TEST_F(PciBusTest, AddPlacesBarsAndEnablesDecoding) {
  auto d = std::make_shared<TestDevice>("t", 1);
  ASSERT_TRUE(d->DeclareBar(0, Bar(PciBarKind::kMem32, 0x1000)).ok());
  ASSERT_TRUE(d->DeclareBar(1, Bar(PciBarKind::kMem64, 0x4000)).ok());
  ASSERT_TRUE(d->DeclareBar(3, Bar(PciBarKind::kIo, 0x20)).ok());
  ASSERT_TRUE(bus_.Add({0, 1, 0}, d).ok());
  EXPECT_EQ(d->BarAddress(0), 0xc0000000u);
  EXPECT_EQ(d->BarAddress(1), 0x100000000u);
  EXPECT_EQ(d->BarAddress(3), 0xc000u);
  EXPECT_EQ(d->ConfigRead(PCI_COMMAND, 2), static_cast<uint32_t>(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
  for (int i : {0, 1, 3}) EXPECT_TRUE(d->BarMapped(i)) << i;
  // Natural alignment: a 64 KiB BAR after the 4 KiB one skips to 64 KiB.
  auto e = std::make_shared<TestDevice>("u", 2);
  ASSERT_TRUE(e->DeclareBar(0, Bar(PciBarKind::kMem32, 0x10000)).ok());
  ASSERT_TRUE(bus_.Add({0, 2, 0}, e).ok());
  EXPECT_EQ(e->BarAddress(0), 0xc0010000u);
}

TEST_F(PciBusTest, ExpansionRomGetsAnAddressButStaysDisabled) {
  auto d = std::make_shared<TestDevice>("t", 1);
  ASSERT_TRUE(d->DeclareBar(0, Bar(PciBarKind::kMem32, 0x1000)).ok());
  ASSERT_TRUE(d->DeclareBar(PciDevice::kRomBar, Bar(PciBarKind::kMem32, 0x8000)).ok());
  ASSERT_TRUE(bus_.Add({0, 1, 0}, d).ok());
  EXPECT_EQ(d->BarAddress(PciDevice::kRomBar), 0xc0008000u) << "naturally aligned after BAR 0";
  EXPECT_FALSE(d->BarMapped(PciDevice::kRomBar));
  EXPECT_TRUE(d->BarMapped(0));
  // The guest turns it on through config space.
  OutL(0xcf8, Cf8(1, 0, PCI_ROM_ADDRESS));
  OutL(0xcfc, 0xc0008000u | PCI_ROM_ADDRESS_ENABLE);
  EXPECT_TRUE(d->BarMapped(PciDevice::kRomBar));
  // A ROM that does not fit fails the add like any BAR, naming it.
  auto big = std::make_shared<TestDevice>("big", 2);
  ASSERT_TRUE(big->DeclareBar(PciDevice::kRomBar, Bar(PciBarKind::kMem32, 0x200000)).ok());
  absl::Status s = bus_.Add({0, 2, 0}, big);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("big at 00:02.0: expansion ROM"), absl::string_view::npos) << s;
}

TEST_F(PciBusTest, BarsThatDoNotFitFailTheAddAndReleaseTheirSpace) {
  auto big = std::make_shared<TestDevice>("big", 1);
  ASSERT_TRUE(big->DeclareBar(0, Bar(PciBarKind::kMem32, 0x80000)).ok());
  ASSERT_TRUE(big->DeclareBar(1, Bar(PciBarKind::kMem32, 0x200000)).ok());  // > the 1 MiB window
  absl::Status s = bus_.Add({0, 4, 0}, big);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("big at 00:04.0: BAR 1"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("32-bit MMIO window"), absl::string_view::npos) << s;
  // BAR 0's space was given back, and the slot stays free.
  auto next = std::make_shared<TestDevice>("next", 2);
  ASSERT_TRUE(next->DeclareBar(0, Bar(PciBarKind::kMem32, 0x100000)).ok());
  ASSERT_TRUE(bus_.Add({0, 4, 0}, next).ok());
  EXPECT_EQ(next->BarAddress(0), 0xc0000000u);
  // A 64-bit BAR falls back to the 32-bit window only when it must; both full now.
  auto wide = std::make_shared<TestDevice>("wide", 3);
  ASSERT_TRUE(wide->DeclareBar(0, Bar(PciBarKind::kMem64, 0x200000)).ok());
  EXPECT_EQ(bus_.Add({0, 5, 0}, wide).code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(PciBusTest, IoWindowExhaustion) {
  auto a = std::make_shared<TestDevice>("a", 1);
  ASSERT_TRUE(a->DeclareBar(0, Bar(PciBarKind::kIo, 0x100)).ok());
  ASSERT_TRUE(bus_.Add({0, 1, 0}, a).ok());
  auto b = std::make_shared<TestDevice>("b", 2);
  ASSERT_TRUE(b->DeclareBar(0, Bar(PciBarKind::kIo, 4)).ok());
  absl::Status s = bus_.Add({0, 2, 0}, b);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("I/O window"), absl::string_view::npos) << s;
}

TEST_F(PciBusTest, SlotsFunctionsAndMultifunction) {
  EXPECT_EQ(bus_.Add({0, 0, 0}, std::make_shared<TestDevice>("dup", 1)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(bus_.Add({0, 32, 0}, std::make_shared<TestDevice>("bad", 1)).ok());
  EXPECT_FALSE(bus_.Add({1, 1, 0}, std::make_shared<TestDevice>("bad", 1)).ok());
  EXPECT_EQ(bus_.FreeSlot()->slot, 1);
  auto f0 = std::make_shared<TestDevice>("f0", 1);
  auto f2 = std::make_shared<TestDevice>("f2", 2);
  ASSERT_TRUE(bus_.Add({0, 1, 0}, f0).ok());
  EXPECT_EQ(f0->ConfigRead(PCI_HEADER_TYPE, 1), 0u);
  ASSERT_TRUE(bus_.Add({0, 1, 2}, f2).ok());
  EXPECT_EQ(f0->ConfigRead(PCI_HEADER_TYPE, 1), 0x80u);  // function 0 announces the others
  EXPECT_EQ(bus_.FreeSlot()->slot, 2);
  EXPECT_EQ(bus_.Devices().size(), 3u);
}

TEST_F(PciBusTest, IntxPinsSwizzleOntoIoapicPins16To23) {
  EXPECT_EQ(PciBus::IntxGsi(0, 1), 16u);
  EXPECT_EQ(PciBus::IntxGsi(1, 1), 17u);
  EXPECT_EQ(PciBus::IntxGsi(1, 4), 20u);
  EXPECT_EQ(PciBus::IntxGsi(7, 2), 16u);
  EXPECT_EQ(PciBus::IntxGsi(31, 4), 18u);
  EXPECT_EQ(PciBus::IntxGsi(3, 0), 0u);
  EXPECT_EQ(PciBus::IntxGsi(3, 5), 0u);
  auto d = std::make_shared<TestDevice>("t", 1, 2);  // INTB
  ASSERT_TRUE(bus_.Add({0, 6, 0}, d).ok());
  EXPECT_EQ(d->ConfigRead(PCI_INTERRUPT_LINE, 1), 23u);  // left by "firmware"
  d->SetIntx(true);
  EXPECT_TRUE(irq_.levels[23]);
}

}  // namespace
}  // namespace passage
