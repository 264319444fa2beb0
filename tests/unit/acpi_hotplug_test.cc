// The Generic Event Device for PCI hotplug and the power button: its
// registers as the guest's AML uses them (status, write-1-to-clear bitmaps,
// the eject register, the interrupt line's edges, bad accesses), and its AML
// in the DSDT through iasl's disassembly.
#include "devices/acpi/acpi_hotplug.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "devices/acpi/acpi_tables.h"
#include "tests/unit/iasl.h"

namespace passage {
namespace {

// The device with its interrupt line and eject callback recorded.
class Ged : public ::testing::Test {
 protected:
  Ged()
      : hp_([this](bool level) { levels_.push_back(level); },
            [this](uint8_t slot) { ejected_.push_back(slot); }) {}

  uint32_t Read32(uint64_t offset) {
    uint8_t b[4];
    std::memset(b, 0xaa, sizeof(b));
    hp_.Read(offset, b);
    uint32_t v;
    std::memcpy(&v, b, 4);
    return v;
  }
  void Write32(uint64_t offset, uint32_t v) {
    uint8_t b[4];
    std::memcpy(b, &v, 4);
    hp_.Write(offset, b);
  }

  AcpiHotplug hp_;
  std::vector<bool> levels_;
  std::vector<uint8_t> ejected_;
};

TEST_F(Ged, StartsIdleWithTheLineLow) {
  EXPECT_EQ(Read32(AcpiHotplug::kStatus), 0u);
  EXPECT_EQ(Read32(AcpiHotplug::kDeviceCheck), 0u);
  EXPECT_EQ(Read32(AcpiHotplug::kEjectRequest), 0u);
  EXPECT_EQ(Read32(AcpiHotplug::kEject), 0u);
  EXPECT_TRUE(levels_.empty());
  EXPECT_FALSE(hp_.pending().irq_level);
}

TEST_F(Ged, DeviceCheckRaisesTheLineUntilTheGuestClearsIt) {
  hp_.DeviceAdded(3);
  EXPECT_EQ(levels_, std::vector<bool>({true}));
  EXPECT_EQ(Read32(AcpiHotplug::kStatus), AcpiHotplug::kStatusPci);
  EXPECT_EQ(Read32(AcpiHotplug::kDeviceCheck), 1u << 3);
  EXPECT_EQ(Read32(AcpiHotplug::kEjectRequest), 0u);
  // Reading does not clear; writing a bit that is not pending changes nothing.
  Write32(AcpiHotplug::kDeviceCheck, 1u << 4);
  EXPECT_EQ(Read32(AcpiHotplug::kDeviceCheck), 1u << 3);
  // Writing 1 to the PCI status bit does not clear the slots behind it.
  Write32(AcpiHotplug::kStatus, AcpiHotplug::kStatusPci);
  EXPECT_EQ(Read32(AcpiHotplug::kStatus), AcpiHotplug::kStatusPci);
  EXPECT_EQ(levels_, std::vector<bool>({true}));
  Write32(AcpiHotplug::kDeviceCheck, 1u << 3);
  EXPECT_EQ(levels_, std::vector<bool>({true, false}));
  EXPECT_EQ(Read32(AcpiHotplug::kStatus), 0u);
  EXPECT_EQ(Read32(AcpiHotplug::kDeviceCheck), 0u);
}

TEST_F(Ged, AnEventDuringTheGuestsHandlingKeepsTheLineUp) {
  // The guest read {3}; slot 5 arrives before it clears what it read.
  hp_.DeviceAdded(3);
  const uint32_t seen = Read32(AcpiHotplug::kDeviceCheck);
  hp_.DeviceAdded(5);
  hp_.EjectRequest(7);
  Write32(AcpiHotplug::kDeviceCheck, seen);
  EXPECT_EQ(Read32(AcpiHotplug::kDeviceCheck), 1u << 5);
  EXPECT_EQ(Read32(AcpiHotplug::kEjectRequest), 1u << 7);
  EXPECT_EQ(levels_, std::vector<bool>({true}));  // never dropped: no event lost
  Write32(AcpiHotplug::kDeviceCheck, 1u << 5);
  EXPECT_EQ(levels_, std::vector<bool>({true}));  // the eject request is still pending
  Write32(AcpiHotplug::kEjectRequest, ~0u);
  EXPECT_EQ(levels_, std::vector<bool>({true, false}));
  // A second round makes a second rising edge.
  hp_.EjectRequest(31);
  EXPECT_EQ(levels_, std::vector<bool>({true, false, true}));
  EXPECT_EQ(Read32(AcpiHotplug::kEjectRequest), 1u << 31);
}

TEST_F(Ged, PowerButtonIsLatchedUntilWrittenOne) {
  hp_.PowerButton();
  EXPECT_EQ(Read32(AcpiHotplug::kStatus), AcpiHotplug::kStatusPowerButton);
  EXPECT_EQ(levels_, std::vector<bool>({true}));
  hp_.PowerButton();  // pressed again before the guest looked: still one event, no new edge
  EXPECT_EQ(levels_, std::vector<bool>({true}));
  Write32(AcpiHotplug::kStatus, AcpiHotplug::kStatusPci);  // the other bit: no effect
  EXPECT_TRUE(hp_.pending().power_button);
  Write32(AcpiHotplug::kStatus, AcpiHotplug::kStatusPowerButton);
  EXPECT_FALSE(hp_.pending().power_button);
  EXPECT_EQ(Read32(AcpiHotplug::kStatus), 0u);
  EXPECT_EQ(levels_, std::vector<bool>({true, false}));
}

TEST_F(Ged, BothSourcesShowInTheStatus) {
  hp_.PowerButton();
  hp_.DeviceAdded(1);
  EXPECT_EQ(Read32(AcpiHotplug::kStatus), AcpiHotplug::kStatusPci | AcpiHotplug::kStatusPowerButton);
  Write32(AcpiHotplug::kStatus, AcpiHotplug::kStatusPowerButton);
  EXPECT_EQ(Read32(AcpiHotplug::kStatus), AcpiHotplug::kStatusPci);
  EXPECT_EQ(levels_, std::vector<bool>({true}));
}

TEST_F(Ged, SlotsWithoutAnSxxAreIgnored) {
  for (int slot : {0, 32, 33, 255}) {
    hp_.DeviceAdded(static_cast<uint8_t>(slot));
    hp_.EjectRequest(static_cast<uint8_t>(slot));
  }
  EXPECT_TRUE(levels_.empty());
  EXPECT_EQ(Read32(AcpiHotplug::kStatus), 0u);
  EXPECT_EQ(Read32(AcpiHotplug::kDeviceCheck), 0u);
  EXPECT_EQ(Read32(AcpiHotplug::kEjectRequest), 0u);
}

TEST_F(Ged, EjectRegisterCallsBackWithTheSlot) {
  hp_.EjectRequest(7);
  Write32(AcpiHotplug::kEjectRequest, 1u << 7);  // PCNT clears, then the guest's _EJ0 runs
  Write32(AcpiHotplug::kEject, 7);
  EXPECT_EQ(ejected_, std::vector<uint8_t>({7}));
  // A guest may eject a slot on its own (sysfs power off): passage is told too.
  Write32(AcpiHotplug::kEject, 31);
  EXPECT_EQ(ejected_, std::vector<uint8_t>({7, 31}));
  EXPECT_EQ(Read32(AcpiHotplug::kEject), 0u);
}

TEST_F(Ged, EjectAnswersAPendingRequest) {
  hp_.EjectRequest(4);
  hp_.EjectRequest(6);
  Write32(AcpiHotplug::kEject, 4);  // _EJ0 before PCNT cleared the bit
  EXPECT_EQ(Read32(AcpiHotplug::kEjectRequest), 1u << 6);
  Write32(AcpiHotplug::kEject, 6);
  EXPECT_EQ(Read32(AcpiHotplug::kEjectRequest), 0u);
  EXPECT_EQ(levels_, std::vector<bool>({true, false}));
  EXPECT_EQ(ejected_, std::vector<uint8_t>({4, 6}));
}

TEST_F(Ged, BadEjectValuesAreIgnored) {
  for (uint32_t v : {0u, 32u, 0x100u | 5u, 0x80000001u, ~0u}) Write32(AcpiHotplug::kEject, v);
  EXPECT_TRUE(ejected_.empty());
}

TEST_F(Ged, OnlyWholeAlignedRegistersAreAccessed) {
  hp_.DeviceAdded(9);
  hp_.PowerButton();
  // Narrow, wide and unaligned reads see 0, not a part of a register.
  for (size_t size : {1u, 2u, 8u}) {
    std::vector<uint8_t> b(size, 0xaa);
    hp_.Read(AcpiHotplug::kDeviceCheck, b);
    EXPECT_EQ(b, std::vector<uint8_t>(size, 0)) << size;
  }
  for (uint64_t off : {1u, 2u, 3u, 5u, 0xdu, 0x10u, 0x1000u}) EXPECT_EQ(Read32(off), 0u) << off;
  // Narrow, wide and unaligned writes change nothing.
  const uint8_t ones[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  for (size_t size : {1u, 2u, 8u}) {
    hp_.Write(AcpiHotplug::kDeviceCheck, std::span<const uint8_t>(ones, size));
    hp_.Write(AcpiHotplug::kStatus, std::span<const uint8_t>(ones, size));
  }
  const uint8_t slot9[2] = {9, 0};
  hp_.Write(AcpiHotplug::kEject, slot9);  // a 2-byte eject
  for (uint64_t off : {1u, 6u, 0xdu, 0x10u}) Write32(off, ~0u);
  EXPECT_EQ(Read32(AcpiHotplug::kDeviceCheck), 1u << 9);
  EXPECT_TRUE(hp_.pending().power_button);
  EXPECT_TRUE(ejected_.empty());
  EXPECT_EQ(levels_, std::vector<bool>({true}));
  // Bit 0 (slot 0) cannot be set, so writing it is harmless.
  Write32(AcpiHotplug::kDeviceCheck, 1u);
  EXPECT_EQ(Read32(AcpiHotplug::kDeviceCheck), 1u << 9);
}

TEST(GedCallbacks, OnEjectMayCallBackIntoTheDevice) {
  // The VMM's eject handler may query or signal the device again; the
  // device's lock is not held while it runs.
  AcpiHotplug* self = nullptr;
  std::vector<uint32_t> seen;
  AcpiHotplug hp([](bool) {}, [&](uint8_t slot) {
    seen.push_back(self->pending().eject_request);
    self->DeviceAdded(slot);
  });
  self = &hp;
  hp.EjectRequest(2);
  const uint32_t two = 2;
  uint8_t b[4];
  std::memcpy(b, &two, 4);
  hp.Write(AcpiHotplug::kEject, b);
  EXPECT_EQ(seen, std::vector<uint32_t>({0}));
  EXPECT_EQ(hp.pending().device_check, 1u << 2);
}

// --- The AML ----------------------------------------------------------------

using passage::testing::HaveIasl;
using passage::testing::kNoIasl;
using passage::testing::Shell;
using passage::testing::ShellResult;

acpi::AcpiConfig Config(bool pci) {
  acpi::AcpiConfig c;
  c.cpus = 2;
  c.lapic_addr = 0xfee00000;
  c.ioapic_addr = 0xfec00000;
  c.pm_port = 0x600;
  c.serial_ports = {{0x3f8, 4}};
  c.rtc = acpi::RtcInfo{0x70, 8};
  c.hotplug = acpi::HotplugInfo{};
  if (pci) {
    acpi::PciHostInfo p;
    p.ecam_base = 0xe0000000;
    p.io_min = 0xc000;
    p.io_max = 0xffff;
    p.mmio32_min = 0xc0000000;
    p.mmio32_max = 0xdfffffff;
    for (uint8_t slot = 0; slot < 32; ++slot) {
      for (uint8_t pin = 0; pin < 4; ++pin) p.routes.push_back({slot, pin, 16u + (slot + pin) % 8u});
    }
    c.pci = p;
  }
  return c;
}

std::string ReadAll(const std::string& path) {
  std::stringstream out;
  out << std::ifstream(path, std::ios::binary).rdbuf();
  return out.str();
}

// iasl's disassembly of `table` into *dsl; fails the test (with the cause)
// when iasl fails, reports an error or a warning, or writes nothing. Then
// iasl compiles that disassembly back (named references as written), which
// must give our bytes: every AML encoding is one iasl would emit.
void Disassemble(std::span<const uint8_t> table, std::string* dsl) {
  char dir[] = "/tmp/passage-acpi-hotplug-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr) << "mkdtemp: " << std::strerror(errno);
  const std::string base = std::string(dir) + "/DSDT";
  std::ofstream(base + ".dat", std::ios::binary)
      .write(reinterpret_cast<const char*>(table.data()), static_cast<std::streamsize>(table.size()));
  const ShellResult iasl = Shell("cd '" + std::string(dir) + "' && iasl -d '" + base + ".dat'");
  *dsl = ReadAll(base + ".dsl");
  const ShellResult back = Shell("cd '" + std::string(dir) + "' && iasl -on -p '" + base + "-rt' '" + base + ".dsl'");
  const std::string aml = ReadAll(base + "-rt.aml");
  const ShellResult rm = Shell("rm -rf '" + std::string(dir) + "'");
  EXPECT_EQ(rm.status, 0) << rm.output;
  ASSERT_EQ(iasl.status, 0) << "iasl -d DSDT:\n" << iasl.output;
  for (const char* bad : {"rror", "arning", "**** Unknown", "Invalid"}) {
    EXPECT_EQ(iasl.output.find(bad), std::string::npos) << iasl.output;
    EXPECT_EQ(dsl->find(bad), std::string::npos) << bad << " in\n" << *dsl;
  }
  ASSERT_FALSE(dsl->empty()) << "iasl -d wrote no DSDT.dsl:\n" << iasl.output;
  ASSERT_EQ(back.status, 0) << "iasl -p DSDT.dsl:\n" << back.output;
  ASSERT_EQ(aml.size(), table.size());
  // The header's compiler ID and revision are iasl's own, and the checksum covers them.
  for (size_t i = 0; i < table.size(); ++i) {
    if (i == 9 || (i >= 28 && i < 36)) continue;
    ASSERT_EQ(static_cast<uint8_t>(aml[i]), table[i]) << "DSDT byte " << i << " differs after iasl's round trip";
  }
}

void ExpectHas(const std::string& dsl, const std::vector<std::string>& wants) {
  for (const std::string& want : wants) {
    EXPECT_NE(dsl.find(want), std::string::npos) << "DSDT lacks " << want << ":\n" << dsl;
  }
}

TEST(GedAml, DsdtHasTheGedTheSlotsAndThePowerButton) {
  auto t = acpi::BuildAcpiTables(Config(true), 0xe0000, 0x10000);
  ASSERT_TRUE(t.ok()) << t.status();
  if (!HaveIasl()) GTEST_SKIP() << kNoIasl;
  std::string dsl;
  ASSERT_NO_FATAL_FAILURE(Disassemble(t->Table("DSDT"), &dsl));
  ExpectHas(dsl, {
      // The GED: its interrupt (GSI 9, level, active high), registers, _EVT.
      "Device (GED)", "Name (_HID, \"ACPI0013\"",
      "Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )",
      "0x00000009,",
      "OperationRegion (GREG, SystemIO, 0x0610, 0x10)",
      "Field (GREG, DWordAcc, NoLock, WriteAsZeros)",
      "GSTA,   32", "PCIU,   32", "PCID,   32", "PCEJ,   32",
      "Method (_EVT, 1, Serialized)",
      "Local0 = \\_SB.GED.GSTA",
      "If ((Local0 & 0x02))", "\\_SB.GED.GSTA = 0x02", "Notify (\\_SB.PWRB, 0x80)",
      "If ((Local0 & One))", "\\_SB.PCI0.PCNT ()",
      // The power button.
      "Device (PWRB)", "Name (_HID, EisaId (\"PNP0C0C\")",
      // PCNT: take both bitmaps, clear what was taken, notify each slot.
      "Method (PCNT, 0, Serialized)",
      "Local0 = \\_SB.GED.PCIU", "Local1 = \\_SB.GED.PCID",
      "\\_SB.GED.PCIU = Local0", "\\_SB.GED.PCID = Local1",
      "If ((Local0 & 0x02))\n                {\n                    Notify (S01, One)",
      "If ((Local1 & 0x02))\n                {\n                    Notify (S01, 0x03)",
      "If ((Local0 & 0x80000000))\n                {\n                    Notify (S1F, One)",
      "If ((Local1 & 0x80000000))\n                {\n                    Notify (S1F, 0x03)",
      // Slots 1 and 31 (_ADR: slot << 16, all functions).
      "Device (S01)", "Name (_ADR, 0x00010000)", "Name (_SUN, One)",
      "Device (S1F)", "Name (_ADR, 0x001F0000)", "Name (_SUN, 0x1F)",
      "Method (_EJ0, 1, NotSerialized)", "\\_SB.GED.PCEJ = One", "\\_SB.GED.PCEJ = 0x1F",
      // Everything that was there before: CPUs, COM1, RTC, PCI0 and its _PRT, \_S5.
      "Device (C000)", "Device (C001)", "Device (COM1)", "Device (RTC)",
      "Device (PCI0)", "Name (_PRT, Package (0x80)", "Name (\\_S5, Package (0x04)",
  });
  // No slot 0 (the host bridge) and no slot 32.
  EXPECT_EQ(dsl.find("Device (S00)"), std::string::npos);
  EXPECT_EQ(dsl.find("Device (S20)"), std::string::npos);
  // The slots are PCI0's children (acpiphp looks for them under the bridge).
  const size_t pci0 = dsl.find("Device (PCI0)"), s01 = dsl.find("Device (S01)"),
               ged = dsl.find("Device (GED)");
  EXPECT_LT(pci0, s01);
  EXPECT_LT(s01, ged);
  int slots = 0;
  for (size_t at = dsl.find("Method (_EJ0"); at != std::string::npos; at = dsl.find("Method (_EJ0", at + 1)) {
    ++slots;
  }
  EXPECT_EQ(slots, 31);
}

TEST(GedAml, WithoutPciThereIsOnlyTheGedAndThePowerButton) {
  auto t = acpi::BuildAcpiTables(Config(false), 0xe0000, 0x10000);
  ASSERT_TRUE(t.ok()) << t.status();
  if (!HaveIasl()) GTEST_SKIP() << kNoIasl;
  std::string dsl;
  ASSERT_NO_FATAL_FAILURE(Disassemble(t->Table("DSDT"), &dsl));
  ExpectHas(dsl, {"Device (GED)", "Method (_EVT, 1, Serialized)", "Notify (\\_SB.PWRB, 0x80)",
                  "Device (PWRB)", "Device (COM1)"});
  for (const char* absent : {"PCNT", "Device (S01)", "Device (PCI0)"}) {
    EXPECT_EQ(dsl.find(absent), std::string::npos) << absent << ":\n" << dsl;
  }
}

TEST(GedAml, TheLargestConfigStillFitsTheVmsAcpiArea) {
  acpi::AcpiConfig c = Config(true);
  c.cpus = 255;
  auto t = acpi::BuildAcpiTables(c, 0xe0000, 0x10000);  // vm.cc reserves 64 KiB at 0xe0000
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_LT(t->bytes.size(), 0x10000u);
}

TEST(GedAml, NoHotplugMeansNoGed) {
  acpi::AcpiConfig c = Config(true);
  c.hotplug.reset();
  auto t = acpi::BuildAcpiTables(c, 0xe0000, 0x10000);
  ASSERT_TRUE(t.ok()) << t.status();
  std::span<const uint8_t> dsdt = t->Table("DSDT");
  const std::string bytes(dsdt.begin(), dsdt.end());
  EXPECT_EQ(bytes.find("ACPI0013"), std::string::npos);
  EXPECT_EQ(bytes.find("PCNT"), std::string::npos);
}

// The MADT makes the GED's ISA-range line level-triggered and active high
// (flags 0xd), as its _CRS says; the FADT says the power button is a
// control-method device (no fixed-feature button).
TEST(GedAml, MadtOverrideAndFadtPowerButtonFlag) {
  for (bool hotplug : {false, true}) {
    acpi::AcpiConfig c = Config(true);
    if (!hotplug) c.hotplug.reset();
    auto t = acpi::BuildAcpiTables(c, 0xe0000, 0x10000);
    ASSERT_TRUE(t.ok()) << t.status();
    std::span<const uint8_t> madt = t->Table("APIC");
    int isa9 = 0;
    for (size_t off = 44; off + 2 <= madt.size();) {
      const uint8_t type = madt[off], len = madt[off + 1];
      ASSERT_GE(len, 2);
      ASSERT_LE(off + len, madt.size());
      if (type == 2 && madt[off + 3] == AcpiHotplug::kGsi) {
        uint32_t gsi;
        std::memcpy(&gsi, &madt[off + 4], 4);
        EXPECT_EQ(gsi, AcpiHotplug::kGsi);
        EXPECT_EQ(madt[off + 8] | madt[off + 9] << 8, 0xd);
        ++isa9;
      }
      off += len;
    }
    EXPECT_EQ(isa9, hotplug ? 1 : 0);
    std::span<const uint8_t> fadt = t->Table("FACP");
    uint32_t flags;
    std::memcpy(&flags, &fadt[112], 4);
    EXPECT_TRUE(flags & (1u << 4)) << "PWR_BUTTON: the power button is a control-method device";
  }
}

}  // namespace
}  // namespace passage
