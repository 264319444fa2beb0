// The ACPI tables: structure and checksums checked here, and each table
// disassembled with iasl (acpica-tools), which must report no errors; the
// data tables must also compile back from iasl's output to the same bytes.
#include "devices/acpi/acpi_tables.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "devices/acpi/acpi_pm_device.h"
#include "tests/unit/iasl.h"

namespace passage::acpi {
namespace {

AcpiConfig Config(int cpus) {
  AcpiConfig c;
  c.cpus = cpus;
  c.lapic_addr = 0xfee00000;
  c.ioapic_addr = 0xfec00000;
  c.ioapic_id = 0;
  c.ioapic_gsi_base = 0;
  c.pm_port = AcpiPmDevice::kPort;
  c.serial_ports = {{0x3f8, 4}};
  c.rtc = RtcInfo{0x70, 8};
  return c;
}

template <typename T>
T Get(std::span<const uint8_t> table, size_t offset) {
  T v;
  std::memcpy(&v, table.data() + offset, sizeof(T));
  return v;
}

uint8_t Sum(std::span<const uint8_t> bytes) {
  uint8_t s = 0;
  for (uint8_t b : bytes) s = static_cast<uint8_t>(s + b);
  return s;
}

TEST(AcpiTables, RsdpPointsToXsdtWithValidChecksums) {
  auto t = BuildAcpiTables(Config(2), 0xe0000, 0x10000);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->rsdp_addr, 0xe0000u);
  std::span<const uint8_t> rsdp = t->Table("RSD PTR ");
  ASSERT_EQ(rsdp.size(), 36u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(rsdp.data()), 8), "RSD PTR ");
  EXPECT_EQ(rsdp[15], 2);                        // revision: ACPI 2.0+
  EXPECT_EQ(Sum(rsdp.first(20)), 0);             // ACPI 1.0 checksum
  EXPECT_EQ(Sum(rsdp), 0);                       // extended checksum
  EXPECT_EQ(Get<uint32_t>(rsdp, 20), 36u);       // length
  const uint64_t xsdt = Get<uint64_t>(rsdp, 24);
  std::span<const uint8_t> x = t->Table("XSDT");
  ASSERT_FALSE(x.empty());
  EXPECT_EQ(xsdt, t->base + (x.data() - t->bytes.data()));
  // The XSDT lists the FADT and the MADT by address.
  ASSERT_EQ(Get<uint32_t>(x, 4), 36u + 16);
  auto addr_of = [&](const char* sig) { return t->base + (t->Table(sig).data() - t->bytes.data()); };
  EXPECT_EQ(Get<uint64_t>(x, 36), addr_of("FACP"));
  EXPECT_EQ(Get<uint64_t>(x, 44), addr_of("APIC"));
  for (const auto& e : t->entries) {
    if (e.signature == "RSD PTR ") continue;
    std::span<const uint8_t> table = t->Table(e.signature);
    EXPECT_EQ(Get<uint32_t>(table, 4), table.size()) << e.signature;
    EXPECT_EQ(Sum(table), 0) << e.signature << " checksum";
    EXPECT_EQ(t->base % 16, 0u);
    EXPECT_EQ(e.offset % 8, 0u) << e.signature;
  }
}

TEST(AcpiTables, FadtIsHardwareReducedWithSleepAndResetRegisters) {
  auto t = BuildAcpiTables(Config(1), 0xe0000, 0x10000);
  ASSERT_TRUE(t.ok());
  std::span<const uint8_t> fadt = t->Table("FACP");
  ASSERT_EQ(fadt.size(), 276u);
  EXPECT_EQ(fadt[8], 6);                                   // revision
  const uint32_t flags = Get<uint32_t>(fadt, 112);
  EXPECT_TRUE(flags & (1u << 20)) << "HW_REDUCED_ACPI";
  EXPECT_TRUE(flags & (1u << 10)) << "RESET_REG_SUP";
  // RESET_REG: SystemIO, 8 bits, at pm_port + 2, value kResetValue.
  EXPECT_EQ(fadt[116], 1);
  EXPECT_EQ(fadt[117], 8);
  EXPECT_EQ(Get<uint64_t>(fadt, 120), AcpiPmDevice::kPort + AcpiPmDevice::kReset);
  EXPECT_EQ(fadt[128], AcpiPmDevice::kResetValue);
  // SLEEP_CONTROL_REG and SLEEP_STATUS_REG.
  EXPECT_EQ(fadt[244], 1);
  EXPECT_EQ(Get<uint64_t>(fadt, 248), AcpiPmDevice::kPort + AcpiPmDevice::kSleepControl);
  EXPECT_EQ(fadt[256], 1);
  EXPECT_EQ(Get<uint64_t>(fadt, 260), AcpiPmDevice::kPort + AcpiPmDevice::kSleepStatus);
  // X_DSDT (and DSDT) point at the DSDT; the CMOS century register is named.
  const uint64_t dsdt = t->base + (t->Table("DSDT").data() - t->bytes.data());
  EXPECT_EQ(Get<uint64_t>(fadt, 140), dsdt);
  EXPECT_EQ(Get<uint32_t>(fadt, 40), dsdt);
  EXPECT_EQ(fadt[108], 0x32);
}

TEST(AcpiTables, MadtHasOneLapicPerCpuTheIoapicAndOverrides) {
  for (int cpus : {1, 2, 7, 255}) {
    auto t = BuildAcpiTables(Config(cpus), 0xe0000, 0x10000);
    ASSERT_TRUE(t.ok()) << cpus;
    std::span<const uint8_t> madt = t->Table("APIC");
    EXPECT_EQ(Get<uint32_t>(madt, 36), 0xfee00000u);
    int lapics = 0, ioapics = 0, overrides = 0, nmis = 0;
    for (size_t off = 44; off < madt.size();) {
      const uint8_t type = madt[off], len = madt[off + 1];
      ASSERT_GE(len, 2);
      ASSERT_LE(off + len, madt.size());
      if (type == 0) {
        EXPECT_EQ(madt[off + 2], lapics);  // processor UID
        EXPECT_EQ(madt[off + 3], lapics);  // APIC ID
        EXPECT_EQ(Get<uint32_t>(madt, off + 4), 1u);
        ++lapics;
      } else if (type == 1) {
        EXPECT_EQ(Get<uint32_t>(madt, off + 4), 0xfec00000u);
        EXPECT_EQ(Get<uint32_t>(madt, off + 8), 0u);
        ++ioapics;
      } else if (type == 2) {
        EXPECT_EQ(madt[off + 3], 0);                   // ISA IRQ 0
        EXPECT_EQ(Get<uint32_t>(madt, off + 4), 2u);   // -> GSI 2
        ++overrides;
      } else if (type == 4) {
        EXPECT_EQ(madt[off + 5], 1);                   // LINT1
        ++nmis;
      }
      off += len;
    }
    EXPECT_EQ(lapics, cpus);
    EXPECT_EQ(ioapics, 1);
    EXPECT_EQ(overrides, 1);
    EXPECT_EQ(nmis, 1);
  }
}

TEST(AcpiTables, RejectsBadConfigs) {
  EXPECT_FALSE(BuildAcpiTables(Config(0), 0xe0000, 0x10000).ok());
  EXPECT_FALSE(BuildAcpiTables(Config(256), 0xe0000, 0x10000).ok());
  EXPECT_FALSE(BuildAcpiTables(Config(1), 0xe0008, 0x10000).ok());  // misaligned
  EXPECT_FALSE(BuildAcpiTables(Config(255), 0xe0000, 0x800).ok());  // does not fit
  AcpiConfig c = Config(1);
  c.serial_ports = {{0x3f8, 16}};
  EXPECT_FALSE(BuildAcpiTables(c, 0xe0000, 0x10000).ok());
}

// --- iasl -------------------------------------------------------------------

using passage::testing::HaveIasl;
using passage::testing::kNoIasl;
using passage::testing::Shell;
using passage::testing::ShellResult;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class AcpiIasl : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveIasl()) {
      GTEST_SKIP() << kNoIasl;
    }
    char dir[] = "/tmp/passage-acpi-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr) << "mkdtemp(/tmp/passage-acpi-XXXXXX): " << std::strerror(errno);
    dir_ = dir;
  }
  void TearDown() override {
    if (dir_.empty()) return;
    const ShellResult r = Shell("rm -rf '" + dir_ + "'");
    EXPECT_EQ(r.status, 0) << r.output;
  }
  std::string dir_;
};

TEST_F(AcpiIasl, EveryTableDisassemblesWithoutErrors) {
  for (int cpus : {1, 4}) {
    auto t = BuildAcpiTables(Config(cpus), 0xe0000, 0x10000);
    ASSERT_TRUE(t.ok());
    int checked = 0;
    for (const auto& e : t->entries) {
      // iasl 20200925 cannot disassemble a standalone RSDP (it has no table
      // header); the RSDP is checked field by field above.
      if (e.signature == "RSD PTR ") continue;
      const std::string base = dir_ + "/" + e.signature + std::to_string(cpus);
      std::span<const uint8_t> table = t->Table(e.signature);
      std::ofstream(base + ".dat", std::ios::binary)
          .write(reinterpret_cast<const char*>(table.data()), static_cast<std::streamsize>(table.size()));
      ShellResult r = Shell("cd '" + dir_ + "' && iasl -d '" + base + ".dat'");
      ASSERT_EQ(r.status, 0) << e.signature << ":\n" << r.output;
      const std::string dsl = ReadAll(base + ".dsl");
      ASSERT_FALSE(dsl.empty()) << e.signature << ": no .dsl\n" << r.output;
      for (const char* bad : {"Error", "error", "Warning", "**** Unknown", "Invalid"}) {
        EXPECT_EQ(r.output.find(bad), std::string::npos) << e.signature << ":\n" << r.output;
        EXPECT_EQ(dsl.find(bad), std::string::npos) << e.signature << ": '" << bad << "' in\n"
                                                    << dsl;
      }
      if (e.signature == "DSDT") {
        // iasl -d tolerates a wrong PkgLength by re-nesting what follows, so
        // the nesting is checked through the indentation of its output.
        for (const char* want : {"\n    Scope (\\_SB)", "\n        Device (C000)", "\"ACPI0007\"",
                                 "\n        Device (COM1)", "EisaId (\"PNP0501\")",
                                 "IO (Decode16,\n                    0x03F8,",
                                 "IRQNoFlags ()\n                    {4}",
                                 "\n        Device (RTC)", "EisaId (\"PNP0B00\")",
                                 "IRQNoFlags ()\n                    {8}",
                                 "\n    Name (\\_S5, Package (0x04)"}) {
          EXPECT_NE(dsl.find(want), std::string::npos) << "DSDT lacks " << want << ":\n" << dsl;
        }
        if (cpus == 4) {
          EXPECT_NE(dsl.find("Device (C003)"), std::string::npos) << dsl;
        }
      } else {
        // Data tables: iasl compiles its own disassembly back to our bytes,
        // except the header's compiler ID/revision (iasl puts its own there)
        // and the checksum that covers them.
        ShellResult c = Shell("cd '" + dir_ + "' && iasl -p '" + base + "-rt' '" + base + ".dsl'");
        ASSERT_EQ(c.status, 0) << e.signature << ":\n" << c.output;
        std::string back = ReadAll(base + "-rt.aml");  // iasl replaces the prefix's extension
        ASSERT_EQ(back.size(), table.size()) << e.signature;
        for (size_t i = 0; i < table.size(); ++i) {
          if (i == 9 || (i >= 28 && i < 36)) continue;
          EXPECT_EQ(static_cast<uint8_t>(back[i]), table[i]) << e.signature << " byte " << i;
        }
      }
      ++checked;
    }
    EXPECT_EQ(checked, 4);
  }
}

}  // namespace
}  // namespace passage::acpi
