// The ACPI tables passage gives a guest (ACPI 6.0): RSDP -> XSDT -> FADT
// (hardware-reduced: no PM1 blocks, no SCI; power-off through the sleep
// control register, reboot through the reset register, both on the
// AcpiPmDevice ports) and MADT (one local APIC per vCPU, the in-kernel
// IOAPIC, IRQ0 -> GSI2, LINT1 = NMI); FADT -> DSDT (processor devices, the
// serial ports, the RTC, \_S5). Hardware-reduced ACPI has no legacy PIC or
// ISA IRQ numbering for Linux: ISA devices get their interrupts only from
// the DSDT (_CRS), so every ISA device that uses one must be listed there.
//
// With a PCI host, the DSDT also has \_SB.PCI0 and an MCFG table follows the
// DSDT (acpi_pci.h). Tables are built into one blob for a given
// guest-physical base. With `hotplug`, the DSDT has the Generic Event Device
// and the PCI hotplug slots (acpi_hotplug.h).
#ifndef PASSAGE_DEVICES_ACPI_ACPI_TABLES_H_
#define PASSAGE_DEVICES_ACPI_ACPI_TABLES_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "devices/acpi/acpi_hotplug.h"
#include "devices/acpi/acpi_pci.h"

namespace passage::acpi {

struct SerialPortInfo {
  uint16_t port = 0;
  uint8_t irq = 0;
};

struct RtcInfo {
  uint16_t port = 0;
  uint8_t irq = 0;
};

struct AcpiConfig {
  int cpus = 1;                 // APIC IDs and ACPI processor UIDs 0..cpus-1
  uint64_t lapic_addr = 0;
  uint64_t ioapic_addr = 0;
  uint8_t ioapic_id = 0;
  uint32_t ioapic_gsi_base = 0;
  uint16_t pm_port = 0;         // AcpiPmDevice block (see acpi_pm_device.h)
  std::vector<SerialPortInfo> serial_ports;
  std::optional<RtcInfo> rtc;   // MC146818 CMOS RTC (PNP0B00), with a century register at 0x32
  std::optional<PciHostInfo> pci;  // \_SB.PCI0 in the DSDT and an MCFG table (acpi_pci.h)
  // The GED (PCI hotplug slots under \_SB.PCI0 when `pci` is set) and the
  // power button (acpi_hotplug.h); an ISA-range GSI also gets a MADT
  // interrupt source override that makes it level-triggered, active high.
  std::optional<HotplugInfo> hotplug;
};

struct AcpiTables {
  struct Entry {
    std::string signature;  // "RSD PTR " for the RSDP, else the 4-character signature
    uint64_t offset = 0;    // into `bytes`
    uint64_t size = 0;
  };
  uint64_t base = 0;        // guest-physical address of bytes[0]
  uint64_t rsdp_addr = 0;
  std::vector<uint8_t> bytes;
  std::vector<Entry> entries;

  // The table with `signature`, or an empty span.
  std::span<const uint8_t> Table(absl::string_view signature) const;
};

// Lays the tables out from `base` (16-byte aligned) within `max_size` bytes.
// Fails on an invalid config (no CPUs, more than 255, ...) or if they do not fit.
absl::StatusOr<AcpiTables> BuildAcpiTables(const AcpiConfig& config, uint64_t base,
                                           uint64_t max_size);

// The 8-bit checksum ACPI uses: the byte that makes the sum of `data` zero
// when added. A table whose checksum field is right sums to zero.
uint8_t AcpiChecksum(std::span<const uint8_t> data);

}  // namespace passage::acpi

#endif  // PASSAGE_DEVICES_ACPI_ACPI_TABLES_H_
