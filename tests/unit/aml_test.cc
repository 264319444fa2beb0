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

TEST(Aml, MethodsFieldsAndInterrupts) {
  // Each expected sequence is what iasl 20200925 compiles the ASL in the
  // comment to.
  // Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, ) {9}
  EXPECT_EQ(ExtendedInterrupt(false, false, false, 9),
            Bytes({0x89, 0x06, 0x00, 0x01, 0x01, 0x09, 0x00, 0x00, 0x00}));
  // Interrupt (ResourceConsumer, Edge, ActiveLow, Shared, ,, ) {0x123}
  EXPECT_EQ(ExtendedInterrupt(true, true, true, 0x123),
            Bytes({0x89, 0x06, 0x00, 0x0f, 0x01, 0x23, 0x01, 0x00, 0x00}));
  // OperationRegion (GREG, SystemIO, 0x0610, 0x10)
  EXPECT_EQ(*OperationRegion("GREG", RegionSpace::kSystemIo, 0x610, 0x10),
            Bytes({0x5b, 0x80, 'G', 'R', 'E', 'G', 0x01, 0x0b, 0x10, 0x06, 0x0a, 0x10}));
  // Field (GREG, DWordAcc, NoLock, WriteAsZeros) { GSTA, 32, PCIU, 32 }
  EXPECT_EQ(*Field("GREG", FieldAccess::kDWord, FieldUpdate::kWriteAsZeros, {{"GSTA", 32}, {"PCIU", 32}}),
            Bytes({0x5b, 0x81, 0x10, 'G', 'R', 'E', 'G', 0x43, 'G', 'S', 'T', 'A', 0x20, 'P', 'C', 'I',
                   'U', 0x20}));
  // A reserved gap of 64 bits (", 64") needs a two-byte width.
  EXPECT_EQ(*Field("R", FieldAccess::kByte, FieldUpdate::kPreserve, {{"", 64}, {"A", 8}}),
            Bytes({0x5b, 0x81, 0x0e, 'R', '_', '_', '_', 0x01, 0x00, 0x40, 0x04, 'A', '_', '_', '_', 0x08}));
  EXPECT_FALSE(Field("R", FieldAccess::kByte, FieldUpdate::kPreserve, {{"A.B", 8}}).ok());
  EXPECT_FALSE(Field("R", FieldAccess::kByte, FieldUpdate::kPreserve, {{"A", 0}}).ok());
  // Method (_EVT, 1, Serialized) {
  //   Local0 = GSTA
  //   If ((Local0 & 0x02)) { GSTA = 0x02  Notify (PWRB, 0x80) }
  // }
  auto evt = Method("_EVT", 1, true,
                    {Store(*Ref("GSTA"), Local(0)),
                     If(And(Local(0), Integer(2)),
                        {Store(Integer(2), *Ref("GSTA")), Notify(*Ref("PWRB"), Integer(0x80))})});
  ASSERT_TRUE(evt.ok()) << evt.status();
  EXPECT_EQ(*evt, Bytes({0x14, 0x21, '_', 'E', 'V', 'T', 0x09, 0x70, 'G', 'S', 'T', 'A', 0x60, 0xa0,
                         0x14, 0x7b, 0x60, 0x0a, 0x02, 0x00, 0x70, 0x0a, 0x02, 'G', 'S', 'T', 'A',
                         0x86, 'P', 'W', 'R', 'B', 0x0a, 0x80}));
  // If (Arg0 == 0x05) {}; Method (X, 0, NotSerialized) {}
  EXPECT_EQ(If(LEqual(Arg(0), Integer(5)), {}), Bytes({0xa0, 0x05, 0x93, 0x68, 0x0a, 0x05}));
  EXPECT_EQ(*Method("X", 0, false, {}), Bytes({0x14, 0x06, 'X', '_', '_', '_', 0x00}));
  EXPECT_FALSE(Method("X", 8, false, {}).ok());
  EXPECT_EQ(Local(7), Bytes({0x67}));
  EXPECT_TRUE(Local(8).empty());
  EXPECT_EQ(Arg(6), Bytes({0x6e}));
  EXPECT_TRUE(Arg(7).empty());
}

TEST(Aml, Uuids) {
  // ToUUID ("33db4d5b-1ff7-401c-9657-7441c03dd766")
  EXPECT_EQ(*Uuid("33DB4D5B-1FF7-401C-9657-7441C03DD766"),
            Bytes({0x11, 0x13, 0x0a, 0x10, 0x5b, 0x4d, 0xdb, 0x33, 0xf7, 0x1f, 0x1c, 0x40, 0x96, 0x57,
                   0x74, 0x41, 0xc0, 0x3d, 0xd7, 0x66}));
  EXPECT_EQ(*Uuid("33db4d5b-1ff7-401c-9657-7441c03dd766"), *Uuid("33DB4D5B-1FF7-401C-9657-7441C03DD766"));
  for (const char* bad : {"", "33DB4D5B1FF7401C96577441C03DD766", "33DB4D5B-1FF7-401C-9657-7441C03DD76",
                          "33DB4D5B-1FF7-401C-9657-7441C03DD76G", "33DB4D5B-1FF7-401C-9657-7441C03-D766"}) {
    EXPECT_FALSE(Uuid(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace passage::aml
