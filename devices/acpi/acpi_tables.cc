#include "devices/acpi/acpi_tables.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "devices/acpi/acpi_pm_device.h"
#include "devices/acpi/aml.h"

namespace passage::acpi {
namespace {

constexpr char kOemId[] = "PASSGE";        // 6 characters
constexpr char kOemTableId[] = "PASSAGE ";  // 8 characters
constexpr char kCreatorId[] = "PSGE";       // 4 characters
constexpr uint32_t kOemRevision = 1;
constexpr uint32_t kCreatorRevision = 1;
constexpr size_t kHeaderSize = 36;

// FADT (ACPI 6.0, 5.2.9): revision 6, 276 bytes.
constexpr uint8_t kFadtRevision = 6;
constexpr uint8_t kFadtMinorRevision = 0;
constexpr size_t kFadtSize = 276;
constexpr uint16_t kBootArchVgaNotPresent = 1 << 2;
constexpr uint32_t kFadtWbinvd = 1 << 0;
constexpr uint32_t kFadtPowerButton = 1 << 4;  // no fixed-feature power button
constexpr uint32_t kFadtSleepButton = 1 << 5;  // no fixed-feature sleep button
constexpr uint32_t kFadtResetRegSupported = 1 << 10;
constexpr uint32_t kFadtHwReducedAcpi = 1 << 20;

// MADT (5.2.12): revision 4 (ACPI 6.0).
constexpr uint8_t kMadtRevision = 4;
constexpr uint32_t kMadtPcatCompat = 1;  // KVM emulates the dual 8259s
constexpr uint8_t kMadtLocalApic = 0, kMadtIoApic = 1, kMadtIntSourceOverride = 2,
                  kMadtLocalApicNmi = 4;

// MPS INTI flags (5.2.12.5): polarity bits 1:0, trigger mode bits 3:2.
constexpr uint16_t kMpsActiveHigh = 0x1, kMpsLevel = 0xc;

constexpr uint8_t kCmosCentury = 0x32;
constexpr uint8_t kGasSystemIo = 1;
constexpr uint8_t kGasAccessByte = 1;

// A table under construction: little-endian appends, header patched at the end.
class Table {
 public:
  Table(absl::string_view signature, uint8_t revision) {
    bytes_.resize(kHeaderSize, 0);
    std::memcpy(&bytes_[0], signature.data(), 4);
    bytes_[8] = revision;
    std::memcpy(&bytes_[10], kOemId, 6);
    std::memcpy(&bytes_[16], kOemTableId, 8);
    Patch(24, kOemRevision, 4);
    std::memcpy(&bytes_[28], kCreatorId, 4);
    Patch(32, kCreatorRevision, 4);
  }
  // `n` little-endian bytes of `v`; bytes past the eighth are zero.
  void Put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(i < 8 ? static_cast<uint8_t>(v >> (8 * i)) : 0);
  }
  void PutBytes(std::span<const uint8_t> b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }
  void Patch(size_t offset, uint64_t v, int n) {
    for (int i = 0; i < n && i < 8; ++i) bytes_[offset + i] = static_cast<uint8_t>(v >> (8 * i));
  }
  // Generic Address Structure (5.2.3.2) for a byte-wide port.
  void PutIoGas(uint16_t port) {
    Put(kGasSystemIo, 1);
    Put(8, 1);  // bit width
    Put(0, 1);  // bit offset
    Put(kGasAccessByte, 1);
    Put(port, 8);
  }
  size_t size() const { return bytes_.size(); }
  std::vector<uint8_t> Finish() {
    Patch(4, bytes_.size(), 4);
    bytes_[9] = 0;
    bytes_[9] = AcpiChecksum(bytes_);
    return std::move(bytes_);
  }

 private:
  std::vector<uint8_t> bytes_;
};

absl::StatusOr<std::vector<uint8_t>> BuildDsdt(const AcpiConfig& config) {
  std::vector<aml::Bytes> sb;
  for (int i = 0; i < config.cpus; ++i) {
    absl::StatusOr<aml::Bytes> hid = aml::Name("_HID", aml::String("ACPI0007"));
    absl::StatusOr<aml::Bytes> uid = aml::Name("_UID", aml::Integer(i));
    if (!hid.ok() || !uid.ok()) return absl::InternalError("AML: processor device");
    absl::StatusOr<aml::Bytes> cpu = aml::Device(absl::StrFormat("C%03X", i), {*hid, *uid});
    if (!cpu.ok()) return cpu.status();
    sb.push_back(std::move(*cpu));
  }
  for (size_t i = 0; i < config.serial_ports.size(); ++i) {
    const SerialPortInfo& com = config.serial_ports[i];
    absl::StatusOr<aml::Bytes> eisa = aml::EisaId("PNP0501");
    if (!eisa.ok()) return eisa.status();
    absl::StatusOr<aml::Bytes> hid = aml::Name("_HID", *eisa);
    absl::StatusOr<aml::Bytes> uid = aml::Name("_UID", aml::Integer(i + 1));
    absl::StatusOr<aml::Bytes> crs = aml::Name(
        "_CRS", aml::ResourceTemplate({aml::IoPort(com.port, com.port, 1, 8),
                                       aml::IrqNoFlags(com.irq)}));
    if (!hid.ok() || !uid.ok() || !crs.ok()) return absl::InternalError("AML: serial device");
    absl::StatusOr<aml::Bytes> dev = aml::Device(absl::StrCat("COM", i + 1), {*hid, *uid, *crs});
    if (!dev.ok()) return dev.status();
    sb.push_back(std::move(*dev));
  }
  if (config.rtc) {
    absl::StatusOr<aml::Bytes> eisa = aml::EisaId("PNP0B00");
    if (!eisa.ok()) return eisa.status();
    absl::StatusOr<aml::Bytes> hid = aml::Name("_HID", *eisa);
    absl::StatusOr<aml::Bytes> crs = aml::Name(
        "_CRS", aml::ResourceTemplate({aml::IoPort(config.rtc->port, config.rtc->port, 1, 2),
                                       aml::IrqNoFlags(config.rtc->irq)}));
    if (!hid.ok() || !crs.ok()) return absl::InternalError("AML: RTC device");
    absl::StatusOr<aml::Bytes> dev = aml::Device("RTC", {*hid, *crs});
    if (!dev.ok()) return dev.status();
    sb.push_back(std::move(*dev));
  }
  std::optional<HotplugAml> hotplug;
  if (config.hotplug) {
    absl::StatusOr<HotplugAml> h = BuildHotplugAml(*config.hotplug, config.pci.has_value());
    if (!h.ok()) return h.status();
    hotplug = std::move(*h);
  }
  if (config.pci) {
    absl::StatusOr<std::vector<uint8_t>> pci0 =
        PciRootBridgeAml(*config.pci, hotplug ? hotplug->pci0_terms : std::vector<aml::Bytes>{});
    if (!pci0.ok()) return pci0.status();
    sb.push_back(std::move(*pci0));
  }
  if (hotplug) sb.insert(sb.end(), hotplug->sb_terms.begin(), hotplug->sb_terms.end());
  absl::StatusOr<aml::Bytes> scope = aml::Scope("\\_SB", sb);
  if (!scope.ok()) return scope.status();
  // \_S5: SLP_TYPa, SLP_TYPb (the sleep control register uses the first).
  const uint8_t s5 = AcpiPmDevice::kS5SleepType;
  absl::StatusOr<aml::Bytes> pkg =
      aml::Package({aml::Integer(s5), aml::Integer(s5), aml::Integer(0), aml::Integer(0)});
  if (!pkg.ok()) return pkg.status();
  absl::StatusOr<aml::Bytes> s5_name = aml::Name("\\_S5", *pkg);
  if (!s5_name.ok()) return s5_name.status();

  Table dsdt("DSDT", 2);  // revision 2: 64-bit integers
  dsdt.PutBytes(*scope);
  dsdt.PutBytes(*s5_name);
  return dsdt.Finish();
}

std::vector<uint8_t> BuildFadt(const AcpiConfig& config, uint64_t dsdt_addr) {
  Table fadt("FACP", kFadtRevision);
  fadt.Put(0, 4);                                     // 36 FIRMWARE_CTRL: no FACS
  fadt.Put(dsdt_addr <= 0xffffffff ? dsdt_addr : 0, 4);  // 40 DSDT
  fadt.Put(0, 1);                                     // 44 reserved
  fadt.Put(0, 1);                                     // 45 preferred PM profile: unspecified
  fadt.Put(0, 2);                                     // 46 SCI_INT: none (hardware-reduced)
  fadt.Put(0, 4);                                     // 48 SMI_CMD: none
  fadt.Put(0, 4);                                     // 52 ACPI_ENABLE..PSTATE_CNT
  for (int i = 0; i < 8; ++i) fadt.Put(0, 4);         // 56..84 PM1a..GPE1 blocks
  fadt.Put(0, 8);                                     // 88..95 block lengths, GPE1_BASE, CST_CNT
  fadt.Put(0, 8);                                     // 96..103 latencies, flush size/stride
  fadt.Put(0, 4);                                     // 104..107 duty, alarms
  fadt.Put(config.rtc ? kCmosCentury : 0, 1);         // 108 CENTURY
  fadt.Put(kBootArchVgaNotPresent, 2);                // 109 IAPC_BOOT_ARCH
  fadt.Put(0, 1);                                     // 111 reserved
  fadt.Put(kFadtWbinvd | kFadtPowerButton | kFadtSleepButton | kFadtResetRegSupported |
               kFadtHwReducedAcpi,
           4);                                        // 112 flags
  fadt.PutIoGas(config.pm_port + AcpiPmDevice::kReset);  // 116 RESET_REG
  fadt.Put(AcpiPmDevice::kResetValue, 1);             // 128 RESET_VALUE
  fadt.Put(0, 2);                                     // 129 ARM_BOOT_ARCH
  fadt.Put(kFadtMinorRevision, 1);                    // 131 minor version
  fadt.Put(0, 8);                                     // 132 X_FIRMWARE_CTRL
  fadt.Put(dsdt_addr, 8);                             // 140 X_DSDT
  for (int i = 0; i < 8; ++i) fadt.Put(0, 12);        // 148..243 X_PM1a..X_GPE1 blocks
  fadt.PutIoGas(config.pm_port + AcpiPmDevice::kSleepControl);  // 244 SLEEP_CONTROL_REG
  fadt.PutIoGas(config.pm_port + AcpiPmDevice::kSleepStatus);   // 256 SLEEP_STATUS_REG
  fadt.Put(0, 8);                                     // 268 hypervisor vendor identity
  return fadt.Finish();
}

std::vector<uint8_t> BuildMadt(const AcpiConfig& config) {
  Table madt("APIC", kMadtRevision);
  madt.Put(config.lapic_addr, 4);
  madt.Put(kMadtPcatCompat, 4);
  for (int i = 0; i < config.cpus; ++i) {
    madt.Put(kMadtLocalApic, 1);
    madt.Put(8, 1);
    madt.Put(i, 1);  // ACPI processor UID (matches the DSDT's _UID)
    madt.Put(i, 1);  // APIC ID (vCPU index; CPUID reports the same)
    madt.Put(1, 4);  // enabled
  }
  madt.Put(kMadtIoApic, 1);
  madt.Put(12, 1);
  madt.Put(config.ioapic_id, 1);
  madt.Put(0, 1);
  madt.Put(config.ioapic_addr, 4);
  madt.Put(config.ioapic_gsi_base, 4);
  // ISA IRQ0 (the PIT) is wired to IOAPIC pin 2, as on PCs and in KVM.
  madt.Put(kMadtIntSourceOverride, 1);
  madt.Put(10, 1);
  madt.Put(0, 1);  // bus: ISA
  madt.Put(0, 1);  // source IRQ
  madt.Put(config.ioapic_gsi_base + 2, 4);
  madt.Put(0, 2);  // flags: conforms to the bus
  // The GED's line, if an ISA one, is level-triggered and active high (as
  // its _CRS says), not the ISA default of edge.
  if (config.hotplug && config.hotplug->gsi < 16) {
    madt.Put(kMadtIntSourceOverride, 1);
    madt.Put(10, 1);
    madt.Put(0, 1);  // bus: ISA
    madt.Put(config.hotplug->gsi, 1);
    madt.Put(config.ioapic_gsi_base + config.hotplug->gsi, 4);
    madt.Put(kMpsActiveHigh | kMpsLevel, 2);
  }
  // LINT1 of every processor is the NMI input.
  madt.Put(kMadtLocalApicNmi, 1);
  madt.Put(6, 1);
  madt.Put(0xff, 1);  // all processors
  madt.Put(0, 2);
  madt.Put(1, 1);     // LINT1
  return madt.Finish();
}

}  // namespace

uint8_t AcpiChecksum(std::span<const uint8_t> data) {
  uint8_t sum = 0;
  for (uint8_t b : data) sum = static_cast<uint8_t>(sum + b);
  return static_cast<uint8_t>(-sum);
}

std::span<const uint8_t> AcpiTables::Table(absl::string_view signature) const {
  for (const Entry& e : entries) {
    if (e.signature == signature) return std::span<const uint8_t>(bytes).subspan(e.offset, e.size);
  }
  return {};
}

absl::StatusOr<AcpiTables> BuildAcpiTables(const AcpiConfig& config, uint64_t base,
                                           uint64_t max_size) {
  if (config.cpus < 1 || config.cpus > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("ACPI: ", config.cpus, " CPUs; the MADT describes 1 to 255"));
  }
  if (base % 16 != 0) {
    return absl::InvalidArgumentError("ACPI: the tables' base must be 16-byte aligned");
  }
  for (const SerialPortInfo& com : config.serial_ports) {
    if (com.irq >= 16) return absl::InvalidArgumentError("ACPI: serial IRQ must be an ISA IRQ");
  }
  if (config.rtc && config.rtc->irq >= 16) {
    return absl::InvalidArgumentError("ACPI: RTC IRQ must be an ISA IRQ");
  }
  AcpiTables out;
  out.base = base;
  auto place = [&out](absl::string_view sig, std::vector<uint8_t> bytes) {
    out.bytes.resize((out.bytes.size() + 15) / 16 * 16, 0);
    out.entries.push_back({std::string(sig), out.bytes.size(), bytes.size()});
    out.bytes.insert(out.bytes.end(), bytes.begin(), bytes.end());
    return out.entries.back().offset;
  };
  // Sizes are known up front, so addresses can be computed in one pass:
  // RSDP (36), XSDT (36 + 8 per table), FADT, MADT, DSDT.
  absl::StatusOr<std::vector<uint8_t>> dsdt = BuildDsdt(config);
  if (!dsdt.ok()) return dsdt.status();
  std::vector<uint8_t> madt = BuildMadt(config);
  auto align = [](uint64_t v) { return (v + 15) / 16 * 16; };
  const uint64_t xsdt_off = align(36);
  const uint64_t xsdt_size = kHeaderSize + (config.pci ? 3 : 2) * 8;
  const uint64_t fadt_off = align(xsdt_off + xsdt_size);
  const uint64_t madt_off = align(fadt_off + kFadtSize);
  const uint64_t dsdt_off = align(madt_off + madt.size());
  const uint64_t mcfg_off = align(dsdt_off + dsdt->size());
  std::vector<uint8_t> fadt = BuildFadt(config, base + dsdt_off);
  if (fadt.size() != kFadtSize) return absl::InternalError("ACPI: FADT size mismatch");

  Table xsdt("XSDT", 1);
  xsdt.Put(base + fadt_off, 8);
  xsdt.Put(base + madt_off, 8);
  if (config.pci) xsdt.Put(base + mcfg_off, 8);

  // RSDP (5.2.5.3), revision 2.
  std::vector<uint8_t> rsdp(36, 0);
  std::memcpy(&rsdp[0], "RSD PTR ", 8);
  std::memcpy(&rsdp[9], kOemId, 6);
  rsdp[15] = 2;
  const uint32_t length = 36;
  std::memcpy(&rsdp[20], &length, 4);
  const uint64_t xsdt_addr = base + xsdt_off;
  std::memcpy(&rsdp[24], &xsdt_addr, 8);
  rsdp[8] = AcpiChecksum(std::span<const uint8_t>(rsdp).first(20));
  rsdp[32] = AcpiChecksum(rsdp);

  place("RSD PTR ", std::move(rsdp));
  if (place("XSDT", xsdt.Finish()) != xsdt_off || place("FACP", std::move(fadt)) != fadt_off ||
      place("APIC", std::move(madt)) != madt_off || place("DSDT", std::move(*dsdt)) != dsdt_off) {
    return absl::InternalError("ACPI: table layout mismatch");
  }
  if (config.pci) {
    Table mcfg("MCFG", 1);  // PCI Firmware Specification 3.0, 4.1.2
    mcfg.PutBytes(McfgBody(*config.pci));
    if (place("MCFG", mcfg.Finish()) != mcfg_off) return absl::InternalError("ACPI: table layout mismatch");
  }
  if (out.bytes.size() > max_size) {
    return absl::InvalidArgumentError(absl::StrCat("ACPI: the tables need ", out.bytes.size(),
                                                   " bytes, only ", max_size, " are reserved"));
  }
  out.rsdp_addr = base;
  return out;
}

}  // namespace passage::acpi
