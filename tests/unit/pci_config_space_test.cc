#include "devices/pci/pci_config_space.h"

#include <gtest/gtest.h>
#include <linux/pci_regs.h>

namespace passage {
namespace {

TEST(PciConfigSpace, ReadOnlyBitsStayWritableBitsChange) {
  PciConfigSpace c;
  c.Set32(0x40, 0x12345678);
  c.SetWritable(0x40, 4, 0x0000ff0f);  // byte 1 and the low nibble of byte 0
  c.Write(0x40, 4, 0xffffffff);
  EXPECT_EQ(c.Read(0x40, 4), 0x1234ff7fu);
  c.Write(0x40, 4, 0);
  EXPECT_EQ(c.Read(0x40, 4), 0x12340070u);
  // A byte write touches only its byte.
  c.Write(0x41, 1, 0xab);
  EXPECT_EQ(c.Read(0x40, 4), 0x1234ab70u);
  // Device-side setters ignore the masks.
  c.Set16(0x42, 0xbeef);
  EXPECT_EQ(c.Read(0x42, 2), 0xbeefu);
}

TEST(PciConfigSpace, WriteOneToClear) {
  PciConfigSpace c;
  c.Set16(PCI_STATUS, 0xf810);
  c.SetWriteOneToClear(PCI_STATUS, 2, 0xf800);
  c.Write(PCI_STATUS, 2, 0x0000);  // zeros change nothing
  EXPECT_EQ(c.Read(PCI_STATUS, 2), 0xf810u);
  c.Write(PCI_STATUS, 2, 0x2000 | 0x0010);  // clears bit 13; bit 4 is read-only
  EXPECT_EQ(c.Read(PCI_STATUS, 2), 0xd810u);
  c.Write(PCI_STATUS, 2, 0xffff);
  EXPECT_EQ(c.Read(PCI_STATUS, 2), 0x0010u);
}

TEST(PciConfigSpace, MalformedAccessesReadOnesAndWriteNothing) {
  PciConfigSpace c;
  c.SetWritable(0x40, 4, 0xffffffff);
  EXPECT_EQ(c.Read(0x41, 2), 0xffffffffu);   // misaligned
  EXPECT_EQ(c.Read(0x40, 3), 0xffffffffu);   // odd size
  EXPECT_EQ(c.Read(0x1000, 1), 0xffffffffu); // past the end
  EXPECT_EQ(c.Read(0xffc, 4), 0u);           // last dword is fine
  c.Write(0x42, 4, 0xffffffff);
  c.Write(0x40, 8, 0xffffffff);
  EXPECT_EQ(c.Read(0x40, 4), 0u);
  EXPECT_FALSE(PciConfigSpace::ValidAccess(0xffe, 4));
  EXPECT_FALSE(PciConfigSpace::ValidAccess(~0u - 1, 2));
  EXPECT_TRUE(PciConfigSpace::ValidAccess(0xfff, 1));
}

TEST(PciConfigSpace, CapabilityListIsLinkedInOrder) {
  PciConfigSpace c;
  EXPECT_FALSE(c.FindCapability(PCI_CAP_ID_MSIX).has_value());
  auto a = c.AddCapability(PCI_CAP_ID_VNDR, 16);
  auto b = c.AddCapability(PCI_CAP_ID_MSIX, 12);
  auto d = c.AddCapability(PCI_CAP_ID_MSI, 0x18);
  ASSERT_TRUE(a.ok() && b.ok() && d.ok());
  EXPECT_EQ(*a, 0x40u);
  EXPECT_EQ(*b, 0x50u);
  EXPECT_EQ(*d, 0x5cu);
  EXPECT_TRUE(c.Read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
  EXPECT_EQ(c.Read(PCI_CAPABILITY_LIST, 1), 0x40u);
  EXPECT_EQ(c.Read(0x41, 1), 0x50u);
  EXPECT_EQ(c.Read(0x51, 1), 0x5cu);
  EXPECT_EQ(c.Read(0x5d, 1), 0u);
  EXPECT_EQ(c.FindCapability(PCI_CAP_ID_MSIX), 0x50u);
  EXPECT_EQ(c.FindCapability(PCI_CAP_ID_MSI), 0x5cu);
  // The list pointers are read-only to the guest.
  c.Write(PCI_CAPABILITY_LIST, 1, 0x80);
  c.Write(0x40, 2, 0xffff);
  EXPECT_EQ(c.Read(PCI_CAPABILITY_LIST, 1), 0x40u);
  EXPECT_EQ(c.Read(0x40, 2), 0x5009u);
}

TEST(PciConfigSpace, CapabilitiesThatDoNotFitAreRefused) {
  PciConfigSpace c;
  EXPECT_TRUE(c.AddCapability(PCI_CAP_ID_VNDR, 0xb0).ok());  // 0x40..0xf0
  EXPECT_EQ(c.AddCapability(PCI_CAP_ID_VNDR, 0x20).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(c.AddCapability(PCI_CAP_ID_VNDR, 0x10).ok());  // exactly fills to 0x100
  EXPECT_FALSE(c.AddCapability(PCI_CAP_ID_VNDR, 4).ok());
}

TEST(PciConfigSpace, ExtendedCapabilitiesChainFrom0x100) {
  PciConfigSpace c;
  auto a = c.AddExtendedCapability(0x000b, 1, 8);
  auto b = c.AddExtendedCapability(0x001b, 2, 8);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, 0x100u);
  EXPECT_EQ(*b, 0x108u);
  EXPECT_EQ(c.Read(0x100, 4), 0x000b | (1u << 16) | (0x108u << 20));
  EXPECT_EQ(c.Read(0x108, 4), 0x001b | (2u << 16));
}

}  // namespace
}  // namespace passage
