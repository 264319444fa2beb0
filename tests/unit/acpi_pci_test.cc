// The PCI parts of the ACPI tables: \_SB.PCI0 in the DSDT and MCFG, checked
// through iasl's disassembly (acpica-tools) and field by field.
#include "devices/acpi/acpi_pci.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "devices/acpi/acpi_tables.h"
#include "devices/acpi/aml.h"
#include "tests/unit/iasl.h"

namespace passage::acpi {
namespace {

PciHostInfo Host() {
  PciHostInfo p;
  p.ecam_base = 0xe0000000;
  p.io_min = 0xc000;
  p.io_max = 0xffff;
  p.mmio32_min = 0xc0000000;
  p.mmio32_max = 0xdfffffff;
  p.mmio64_min = 0x100000000;
  p.mmio64_max = 0x8ffffffff;
  for (uint8_t slot = 0; slot < 32; ++slot) {
    for (uint8_t pin = 0; pin < 4; ++pin) p.routes.push_back({slot, pin, 16u + (slot + pin) % 8u});
  }
  return p;
}

AcpiConfig Config() {
  AcpiConfig c;
  c.cpus = 1;
  c.lapic_addr = 0xfee00000;
  c.ioapic_addr = 0xfec00000;
  c.pm_port = 0x600;
  c.pci = Host();
  return c;
}

using passage::testing::HaveIasl;
using passage::testing::kNoIasl;
using passage::testing::Shell;
using passage::testing::ShellResult;

// iasl's disassembly of `table` into *dsl. Anything that stops it (no
// temporary directory, iasl failing or writing nothing) fails the test, with
// the cause; callers skip beforehand when iasl is not installed.
void Disassemble(std::span<const uint8_t> table, const std::string& name, std::string* dsl) {
  char dir[] = "/tmp/passage-acpi-pci-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr) << "mkdtemp(/tmp/passage-acpi-pci-XXXXXX): " << std::strerror(errno);
  const std::string base = std::string(dir) + "/" + name;
  std::ofstream(base + ".dat", std::ios::binary)
      .write(reinterpret_cast<const char*>(table.data()), static_cast<std::streamsize>(table.size()));
  const ShellResult iasl = Shell("cd '" + std::string(dir) + "' && iasl -d '" + base + ".dat'");
  std::stringstream out;
  out << std::ifstream(base + ".dsl").rdbuf();
  *dsl = out.str();
  const ShellResult rm = Shell("rm -rf '" + std::string(dir) + "'");
  EXPECT_EQ(rm.status, 0) << rm.output;
  ASSERT_EQ(iasl.status, 0) << "iasl -d " << name << ":\n" << iasl.output;
  EXPECT_EQ(iasl.output.find("rror"), std::string::npos) << iasl.output;
  ASSERT_FALSE(dsl->empty()) << "iasl -d wrote no " << name << ".dsl:\n" << iasl.output;
}

TEST(AcpiPci, AddressSpaceDescriptorsEncodeAsTheSpecSays) {
  const aml::Bytes q = aml::QWordMemory(true, 0x100000000, 0x1ffffffff);
  ASSERT_EQ(q.size(), 46u);
  EXPECT_EQ(q[0], 0x8a);
  EXPECT_EQ(q[1] | q[2] << 8, 43);
  EXPECT_EQ(q[3], 0);     // memory
  EXPECT_EQ(q[4], 0x0c);  // producer, MinFixed, MaxFixed
  EXPECT_EQ(q[5], 0x03);  // cacheable, read/write
  uint64_t len;
  std::memcpy(&len, &q[38], 8);
  EXPECT_EQ(len, 0x100000000u);
  const aml::Bytes w = aml::WordBusNumber(0, 0);
  ASSERT_EQ(w.size(), 16u);
  EXPECT_EQ(w[3], 2);
  EXPECT_EQ(w[14] | w[15] << 8, 1);  // one bus
}

TEST(AcpiPci, McfgPointsAtEcamForBusZero) {
  auto t = BuildAcpiTables(Config(), 0xe0000, 0x10000);
  ASSERT_TRUE(t.ok()) << t.status();
  std::span<const uint8_t> mcfg = t->Table("MCFG");
  ASSERT_EQ(mcfg.size(), 36u + 8 + 16);
  uint64_t base;
  std::memcpy(&base, &mcfg[44], 8);
  EXPECT_EQ(base, 0xe0000000u);
  EXPECT_EQ(mcfg[54], 0);  // start bus
  EXPECT_EQ(mcfg[55], 0);  // end bus
  uint8_t sum = 0;
  for (uint8_t b : mcfg) sum = static_cast<uint8_t>(sum + b);
  EXPECT_EQ(sum, 0);
  // The XSDT lists it.
  std::span<const uint8_t> xsdt = t->Table("XSDT");
  ASSERT_EQ(xsdt.size(), 36u + 3 * 8);
  uint64_t third;
  std::memcpy(&third, &xsdt[36 + 16], 8);
  EXPECT_EQ(third, 0xe0000 + t->entries.back().offset);
  EXPECT_EQ(t->entries.back().signature, "MCFG");
  if (!HaveIasl()) GTEST_SKIP() << kNoIasl;
  std::string dsl;
  ASSERT_NO_FATAL_FAILURE(Disassemble(mcfg, "MCFG", &dsl));
  EXPECT_NE(dsl.find("Base Address : 00000000E0000000"), std::string::npos) << dsl;
}

TEST(AcpiPci, NoPciMeansNoMcfgAndNoPci0) {
  AcpiConfig c = Config();
  c.pci.reset();
  auto t = BuildAcpiTables(c, 0xe0000, 0x10000);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->Table("MCFG").empty());
  EXPECT_EQ(t->Table("XSDT").size(), 36u + 2 * 8);
}

TEST(AcpiPci, DsdtDescribesTheRootBridge) {
  auto t = BuildAcpiTables(Config(), 0xe0000, 0x10000);
  ASSERT_TRUE(t.ok()) << t.status();
  if (!HaveIasl()) GTEST_SKIP() << kNoIasl;
  std::string dsl;
  ASSERT_NO_FATAL_FAILURE(Disassemble(t->Table("DSDT"), "DSDT", &dsl));
  for (const char* want : {
           "\n        Device (PCI0)", "Name (_HID, EisaId (\"PNP0A08\")", "Name (_CID, EisaId (\"PNP0A03\")",
           "Name (_SEG, Zero)", "Name (_BBN, Zero)",
           "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,",
           "0x0CF8,             // Range Minimum",
           "WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,",
           "0xC000,             // Range Minimum", "0xFFFF,             // Range Maximum",
           "DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,",
           "0xC0000000,         // Range Minimum", "0xDFFFFFFF,         // Range Maximum",
           "QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,",
           "0x0000000100000000, // Range Minimum", "0x00000008FFFFFFFF, // Range Maximum",
           "Name (_PRT, Package (0x80)", "Method (_OSC, 4, NotSerialized)",
           // Slot 3, INTB -> GSI 20.
           "0x0003FFFF, \n                    One, \n                    Zero, \n                    0x14",
       }) {
    EXPECT_NE(dsl.find(want), std::string::npos) << "DSDT lacks " << want << ":\n" << dsl;
  }
}

TEST(AcpiPci, OscGrantsAllButNativeHotplug) {
  // What iasl 20200925 compiles this ASL to:
  // Method (_OSC, 4, NotSerialized) {
  //   CreateDWordField (Arg3, Zero, CDW1)
  //   If ((Arg0 == ToUUID ("33db4d5b-1ff7-401c-9657-7441c03dd766"))) {
  //     CreateDWordField (Arg3, 0x08, CDW3)
  //     Local0 = (CDW3 & 0xFFFFFFFC)
  //     If ((Local0 != CDW3)) { CDW1 |= 0x10 }
  //     CDW3 = Local0
  //     If ((Arg1 != One)) { CDW1 |= 0x08 }
  //   } Else { CDW1 |= 0x04 }
  //   Return (Arg3)
  // }
  const aml::Bytes want = {
      0x14, 0x44, 0x07, 0x5f, 0x4f, 0x53, 0x43, 0x04, 0x8a, 0x6b, 0x00, 0x43, 0x44, 0x57, 0x31, 0xa0,
      0x46, 0x05, 0x93, 0x68, 0x11, 0x13, 0x0a, 0x10, 0x5b, 0x4d, 0xdb, 0x33, 0xf7, 0x1f, 0x1c, 0x40,
      0x96, 0x57, 0x74, 0x41, 0xc0, 0x3d, 0xd7, 0x66, 0x8a, 0x6b, 0x0a, 0x08, 0x43, 0x44, 0x57, 0x33,
      0x7b, 0x43, 0x44, 0x57, 0x33, 0x0c, 0xfc, 0xff, 0xff, 0xff, 0x60, 0xa0, 0x13, 0x92, 0x93, 0x60,
      0x43, 0x44, 0x57, 0x33, 0x7d, 0x43, 0x44, 0x57, 0x31, 0x0a, 0x10, 0x43, 0x44, 0x57, 0x31, 0x70,
      0x60, 0x43, 0x44, 0x57, 0x33, 0xa0, 0x10, 0x92, 0x93, 0x69, 0x01, 0x7d, 0x43, 0x44, 0x57, 0x31,
      0x0a, 0x08, 0x43, 0x44, 0x57, 0x31, 0xa1, 0x0c, 0x7d, 0x43, 0x44, 0x57, 0x31, 0x0a, 0x04, 0x43,
      0x44, 0x57, 0x31, 0xa4, 0x6b};
  absl::StatusOr<std::vector<uint8_t>> pci0 = PciRootBridgeAml(Host());
  ASSERT_TRUE(pci0.ok()) << pci0.status();
  EXPECT_NE(std::search(pci0->begin(), pci0->end(), want.begin(), want.end()), pci0->end());
}

}  // namespace
}  // namespace passage::acpi
