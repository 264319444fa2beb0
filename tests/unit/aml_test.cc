// AML encodings, checked against the ACPI specification's rules and the
// bytes iasl emits for the same ASL.
#include "devices/acpi/aml.h"

#include <gtest/gtest.h>

namespace passage::aml {
namespace {

TEST(Aml, PkgLengthEncodings) {
  EXPECT_EQ(PkgLength(0), Bytes({0x01}));
  EXPECT_EQ(PkgLength(62), Bytes({0x3f}));        // 63 = the largest one-byte length
  EXPECT_EQ(PkgLength(63), Bytes({0x41, 0x04}));  // 65 = 0x41 in two bytes
  EXPECT_EQ(PkgLength(4093), Bytes({0x4f, 0xff}));  // 4095: the largest two-byte length
  EXPECT_EQ(PkgLength(4094), Bytes({0x81, 0x00, 0x01}));  // 4097 = 0x1001 in three bytes
  EXPECT_EQ(PkgLength(0xffffc), Bytes({0x8f, 0xff, 0xff}));  // 0xfffff: the largest in three
  EXPECT_EQ(PkgLength(0xffffd), Bytes({0xc1, 0x00, 0x00, 0x01}));  // 0x100001 in four
}

TEST(Aml, NameStrings) {
  EXPECT_EQ(*NameString("_HID"), Bytes({'_', 'H', 'I', 'D'}));
  EXPECT_EQ(*NameString("\\_SB"), Bytes({'\\', '_', 'S', 'B', '_'}));
  EXPECT_EQ(*NameString("\\_SB.COM1"),
            Bytes({'\\', 0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1'}));
  EXPECT_EQ(*NameString("A.B.C"),
            Bytes({0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_'}));
  EXPECT_EQ(*NameString("^^FOO"), Bytes({'^', '^', 'F', 'O', 'O', '_'}));
  EXPECT_EQ(*NameString("\\"), Bytes({'\\', 0x00}));
  for (const char* bad : {"", "TOOLONG", "1ABC", "a", "A..B", "A.", "AB-C"}) {
    EXPECT_FALSE(NameString(bad).ok()) << bad;
  }
}

TEST(Aml, Integers) {
  EXPECT_EQ(Integer(0), Bytes({0x00}));
  EXPECT_EQ(Integer(1), Bytes({0x01}));
  EXPECT_EQ(Integer(5), Bytes({0x0a, 0x05}));
  EXPECT_EQ(Integer(0x3f8), Bytes({0x0b, 0xf8, 0x03}));
  EXPECT_EQ(Integer(0xfec00000), Bytes({0x0c, 0x00, 0x00, 0xc0, 0xfe}));
  EXPECT_EQ(Integer(0x100000000), Bytes({0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
  EXPECT_EQ(Integer(~0ull), Bytes({0xff}));
}

TEST(Aml, EisaId) {
  // EISAID("PNP0501") == 0x0105D041, as iasl encodes it.
  EXPECT_EQ(*EisaId("PNP0501"), Bytes({0x0c, 0x41, 0xd0, 0x05, 0x01}));
  EXPECT_EQ(*EisaId("PNP0B00"), Bytes({0x0c, 0x41, 0xd0, 0x0b, 0x00}));
  EXPECT_FALSE(EisaId("pnp0501").ok());
  EXPECT_FALSE(EisaId("PNP05G1").ok());
  EXPECT_FALSE(EisaId("PNP050").ok());
}

TEST(Aml, NamePackageScopeDevice) {
  // Name (\_S5, Package () {5, 5, 0, 0}) as iasl compiles it.
  auto s5 = Name("\\_S5", *Package({Integer(5), Integer(5), Integer(0), Integer(0)}));
  ASSERT_TRUE(s5.ok());
  EXPECT_EQ(*s5, Bytes({0x08, '\\', '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05,
                        0x00, 0x00}));
  // Device (COM1) { Name (_UID, One) }
  auto dev = Device("COM1", {*Name("_UID", Integer(1))});
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ(*dev, Bytes({0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x01}));
  // Scope (\_SB) { }
  EXPECT_EQ(*Scope("\\_SB", {}), Bytes({0x10, 0x06, '\\', '_', 'S', 'B', '_'}));
  EXPECT_FALSE(Device("bad name", {}).ok());
}

TEST(Aml, StringsAndResourceTemplates) {
  EXPECT_EQ(String("ACPI0007"),
            Bytes({0x0d, 'A', 'C', 'P', 'I', '0', '0', '0', '7', 0x00}));
  // ResourceTemplate () { IO (Decode16, 0x3F8, 0x3F8, 0x01, 0x08) IRQNoFlags () {4} }
  EXPECT_EQ(ResourceTemplate({IoPort(0x3f8, 0x3f8, 1, 8), IrqNoFlags(4)}),
            Bytes({0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22,
                   0x10, 0x00, 0x79, 0x00}));
  EXPECT_EQ(Memory32Fixed(true, 0xfec00000, 0x1000),
            Bytes({0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xc0, 0xfe, 0x00, 0x10, 0x00, 0x00}));
}

}  // namespace
}  // namespace passage::aml
