#include "devices/pci/msix.h"

#include <gtest/gtest.h>
#include <linux/pci_regs.h>

#include <cstring>

#include "devices/pci/msi.h"
#include "tests/unit/fake_interrupt_controller.h"

namespace passage {
namespace {

// A function with MSI-X (4 vectors, table at BAR 2 + 0x100, PBA at + 0x800)
// and MSI (4 vectors), driven the way a guest driver does.
class MsiDevice : public PciDevice {
 public:
  explicit MsiDevice(InterruptController& irq)
      : PciDevice("msi-test", {.vendor = 0x1234, .device = 1}),
        msix(std::make_shared<MsixCapability>(irq, "msi-test",
                                              MsixCapability::Layout{4, 2, 0x100, 2, 0x800})),
        msi(irq, "msi-test", 2) {
    absl::StatusOr<uint32_t> a = AddCapability(msix.get());
    absl::StatusOr<uint32_t> b = AddCapability(&msi);
    EXPECT_TRUE(a.ok() && b.ok());
    msix_cap = *a;
    msi_cap = *b;
  }
  std::shared_ptr<MsixCapability> msix;
  MsiCapability msi;
  uint32_t msix_cap = 0;
  uint32_t msi_cap = 0;
};

// The fake, with route programming that can be made to fail.
class FlakyInterruptController : public testing::FakeInterruptController {
 public:
  absl::Status SetMsiRoute(uint32_t gsi, const MsiMessage& message) override {
    if (fail_set_route) return absl::UnavailableError("injected");
    return FakeInterruptController::SetMsiRoute(gsi, message);
  }
  bool fail_set_route = false;
};

class MsixTest : public ::testing::Test {
 protected:
  MsixTest() : dev_(irq_), bar_(dev_.msix) {}
  void TableWrite32(uint16_t vector, uint32_t field, uint32_t v) {
    uint8_t b[4];
    std::memcpy(b, &v, 4);
    bar_.Write(0x100 + 16u * vector + field, b);
  }
  uint64_t BarRead(uint64_t offset, size_t size) {
    uint8_t b[8] = {};
    bar_.Read(offset, std::span<uint8_t>(b, size));
    uint64_t v = 0;
    std::memcpy(&v, b, size);
    return v;
  }
  void Program(uint16_t vector, MsiMessage m) {
    TableWrite32(vector, PCI_MSIX_ENTRY_LOWER_ADDR, static_cast<uint32_t>(m.address));
    TableWrite32(vector, PCI_MSIX_ENTRY_UPPER_ADDR, static_cast<uint32_t>(m.address >> 32));
    TableWrite32(vector, PCI_MSIX_ENTRY_DATA, m.data);
  }
  void Control(uint16_t flags) { dev_.ConfigWrite(dev_.msix_cap + PCI_MSIX_FLAGS, 2, flags); }
  uint64_t Delivered(const MsiMessage& m) {
    const uint32_t gsi = irq_.GsiFor(m);
    return gsi == 0 ? 0 : irq_.TakeDeliveries(gsi);
  }

  FlakyInterruptController irq_;
  MsiDevice dev_;
  MsixBarHandler bar_;
};

constexpr MsiMessage kMsg0{0xfee00000, 0x41};
constexpr MsiMessage kMsg1{0xfee01000, 0x42};

TEST_F(MsixTest, CapabilityLayoutAndMasks) {
  const uint32_t c = dev_.msix_cap;
  EXPECT_EQ(dev_.ConfigRead(c, 1), static_cast<uint32_t>(PCI_CAP_ID_MSIX));
  EXPECT_EQ(dev_.ConfigRead(c + PCI_MSIX_FLAGS, 2), 3u);  // table size - 1
  EXPECT_EQ(dev_.ConfigRead(c + PCI_MSIX_TABLE, 4), 0x102u);
  EXPECT_EQ(dev_.ConfigRead(c + PCI_MSIX_PBA, 4), 0x802u);
  dev_.ConfigWrite(c + PCI_MSIX_FLAGS, 2, 0xffff);
  EXPECT_EQ(dev_.ConfigRead(c + PCI_MSIX_FLAGS, 2), 0xc003u);  // only enable and mask-all are writable
  dev_.ConfigWrite(c + PCI_MSIX_TABLE, 4, 0);
  EXPECT_EQ(dev_.ConfigRead(c + PCI_MSIX_TABLE, 4), 0x102u);
}

TEST_F(MsixTest, VectorsStartMaskedAndDisabledMeansIntx) {
  for (uint16_t v = 0; v < 4; ++v) EXPECT_EQ(BarRead(0x100 + 16u * v + 12, 4), 1u);
  EXPECT_FALSE(dev_.msix->Notify(0));  // MSI-X off: the device should use INTx
  Control(PCI_MSIX_FLAGS_ENABLE);
  EXPECT_TRUE(dev_.msix->Notify(0));
  EXPECT_TRUE(dev_.msix->pending(0));  // masked: pending, not sent
  EXPECT_FALSE(dev_.msix->Notify(4));  // no such vector
}

TEST_F(MsixTest, UnmaskedVectorIsSentThroughItsRoute) {
  Control(PCI_MSIX_FLAGS_ENABLE);
  Program(1, kMsg1);
  TableWrite32(1, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
  ASSERT_NE(irq_.GsiFor(kMsg1), 0u);  // routed at unmask, before any interrupt
  EXPECT_TRUE(dev_.msix->Notify(1));
  EXPECT_TRUE(dev_.msix->Notify(1));
  EXPECT_EQ(Delivered(kMsg1), 2u);
  EXPECT_FALSE(dev_.msix->pending(1));
  EXPECT_EQ(BarRead(0x100 + 16, 8), 0xfee01000u);
  EXPECT_EQ(BarRead(0x100 + 24, 8), 0x42u);  // data, control (unmasked)
}

TEST_F(MsixTest, PendingBitSetWhileMaskedThenSentOnUnmask) {
  Control(PCI_MSIX_FLAGS_ENABLE);
  Program(0, kMsg0);
  EXPECT_TRUE(dev_.msix->Notify(0));
  EXPECT_EQ(BarRead(0x800, 8), 1u);  // PBA bit 0
  EXPECT_EQ(Delivered(kMsg0), 0u);
  TableWrite32(0, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
  EXPECT_EQ(Delivered(kMsg0), 1u);
  EXPECT_EQ(BarRead(0x800, 8), 0u);
}

TEST_F(MsixTest, FunctionMaskHoldsEveryVector) {
  Control(PCI_MSIX_FLAGS_ENABLE);
  Program(0, kMsg0);
  Program(1, kMsg1);
  TableWrite32(0, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
  TableWrite32(1, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
  Control(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  EXPECT_TRUE(dev_.msix->Notify(0));
  EXPECT_TRUE(dev_.msix->Notify(1));
  EXPECT_EQ(BarRead(0x800, 4), 3u);
  // The per-vector mask bits read as the guest left them.
  EXPECT_EQ(BarRead(0x100 + 12, 4), 0u);
  EXPECT_EQ(Delivered(kMsg0) + Delivered(kMsg1), 0u);
  // Masking vector 1 itself before lifting the function mask keeps it pending.
  TableWrite32(1, PCI_MSIX_ENTRY_VECTOR_CTRL, 1);
  Control(PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(Delivered(kMsg0), 1u);
  EXPECT_EQ(Delivered(kMsg1), 0u);
  EXPECT_EQ(BarRead(0x800, 4), 2u);
}

TEST_F(MsixTest, ReprogrammedMessageIsUsedOnNextDelivery) {
  Control(PCI_MSIX_FLAGS_ENABLE);
  Program(0, kMsg0);
  TableWrite32(0, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
  TableWrite32(0, PCI_MSIX_ENTRY_VECTOR_CTRL, 1);
  Program(0, kMsg1);
  TableWrite32(0, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);
  dev_.msix->Notify(0);
  EXPECT_EQ(Delivered(kMsg1), 1u);
  EXPECT_EQ(irq_.GsiFor(kMsg0), 0u);  // the route moved, no stale one left
}

TEST_F(MsixTest, OutOfRangeAndOddAccessesAreHarmless) {
  Control(PCI_MSIX_FLAGS_ENABLE);
  // Past the table, in the gap, inside the PBA, beyond the PBA.
  for (uint64_t off : {0x140ull, 0x400ull, 0x800ull, 0x808ull, 0xff8ull}) {
    uint8_t b[4] = {0, 0, 0, 0};
    bar_.Write(off, b);
  }
  EXPECT_EQ(BarRead(0x800, 8), 0u);  // writes cannot set pending bits
  for (uint16_t v = 0; v < 4; ++v) EXPECT_EQ(BarRead(0x100 + 16u * v + 12, 4), 1u);  // still masked
  // Byte, word and misaligned accesses to the table do nothing.
  uint8_t one[1] = {0};
  bar_.Write(0x100 + 12, one);
  uint8_t two[2] = {0, 0};
  bar_.Write(0x100 + 12, two);
  uint8_t four[4] = {0, 0, 0, 0};
  bar_.Write(0x100 + 10, four);
  EXPECT_EQ(BarRead(0x100 + 12, 4), 1u);
  EXPECT_EQ(BarRead(0x100 + 13, 1), 0xffu);
  // Direct table/PBA accesses past their ends.
  dev_.msix->TableWrite(64, four);
  uint8_t out[8];
  dev_.msix->TableRead(60, std::span<uint8_t>(out, 8));
  EXPECT_EQ(out[0], 0xff);
  dev_.msix->PbaRead(8, std::span<uint8_t>(out, 4));
  EXPECT_EQ(out[0], 0xff);
}

TEST_F(MsixTest, RouteFailureStopsTheVm) {
  Control(PCI_MSIX_FLAGS_ENABLE);
  Program(0, kMsg0);
  irq_.fail_set_route = true;
  TableWrite32(0, PCI_MSIX_ENTRY_VECTOR_CTRL, 0);  // unmask: the route is made now
  ASSERT_EQ(irq_.fatal().size(), 1u) << "a vector that cannot be routed must stop the VM";
  EXPECT_NE(irq_.fatal()[0].find("msi-test: MSI-X vector 0"), std::string::npos) << irq_.fatal()[0];
  EXPECT_TRUE(dev_.msix->Notify(0));
  EXPECT_EQ(irq_.fatal().size(), 2u) << "an event that cannot be delivered is reported too";
  irq_.fail_set_route = false;
  EXPECT_TRUE(dev_.msix->Notify(0));
  EXPECT_EQ(Delivered(kMsg0), 1u);
}

class MsiTest : public MsixTest {
 protected:
  void Write(uint32_t field, uint32_t size, uint32_t v) { dev_.ConfigWrite(dev_.msi_cap + field, size, v); }
  uint32_t Read(uint32_t field, uint32_t size) { return dev_.ConfigRead(dev_.msi_cap + field, size); }
};

TEST_F(MsiTest, CapabilityAdvertisesAndClampsVectors) {
  EXPECT_EQ(Read(PCI_MSI_FLAGS, 2), static_cast<uint32_t>(PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (2 << 1)));
  Write(PCI_MSI_FLAGS, 2, 0xffff);
  // Enable + QSIZE writable; capability bits fixed.
  EXPECT_EQ(Read(PCI_MSI_FLAGS, 2), static_cast<uint32_t>(PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (2 << 1) |
                                                          PCI_MSI_FLAGS_QSIZE | PCI_MSI_FLAGS_ENABLE));
  EXPECT_EQ(dev_.msi.enabled_vectors(), 4u);  // asked for 128, capable of 4
  Write(PCI_MSI_ADDRESS_LO, 4, 0xffffffff);
  EXPECT_EQ(Read(PCI_MSI_ADDRESS_LO, 4), 0xfffffffcu);
  Write(PCI_MSI_MASK_64, 4, 0xffffffff);
  EXPECT_EQ(Read(PCI_MSI_MASK_64, 4), 0xfu);
  Write(PCI_MSI_PENDING_64, 4, 0xffffffff);
  EXPECT_EQ(Read(PCI_MSI_PENDING_64, 4), 0u);
}

TEST_F(MsiTest, MultipleMessagesMaskingAndPending) {
  EXPECT_FALSE(dev_.msi.Notify(0));
  Write(PCI_MSI_ADDRESS_LO, 4, 0xfee00000);
  Write(PCI_MSI_DATA_64, 2, 0x60);
  Write(PCI_MSI_MASK_64, 4, 0x2);  // vector 1 masked
  Write(PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | (1 << 4));  // 2 vectors
  EXPECT_TRUE(dev_.msi.Notify(0));
  EXPECT_TRUE(dev_.msi.Notify(1));
  EXPECT_FALSE(dev_.msi.Notify(2));  // only 2 enabled
  EXPECT_EQ(Delivered({0xfee00000, 0x60}), 1u);
  EXPECT_EQ(Delivered({0xfee00000, 0x61}), 0u);
  EXPECT_EQ(Read(PCI_MSI_PENDING_64, 4), 2u);
  Write(PCI_MSI_MASK_64, 4, 0);
  EXPECT_EQ(Delivered({0xfee00000, 0x61}), 1u);
  EXPECT_EQ(Read(PCI_MSI_PENDING_64, 4), 0u);
}

TEST_F(MsiTest, RouteFailureStopsTheVm) {
  Write(PCI_MSI_ADDRESS_LO, 4, 0xfee00000);
  irq_.fail_set_route = true;
  Write(PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
  ASSERT_FALSE(irq_.fatal().empty());
  EXPECT_NE(irq_.fatal()[0].find("msi-test: MSI vector 0"), std::string::npos) << irq_.fatal()[0];
}

}  // namespace
}  // namespace passage
