// What ACPI tells the guest about PCI: the MCFG table (where ECAM is) and
// the DSDT's root bridge \_SB.PCI0 (PNP0A08, compatible PNP0A03) with its
// _CRS (bus range, the config ports, the I/O, 32-bit and 64-bit memory
// windows), _PRT (each slot's INTA-INTD to an IOAPIC GSI; the static-GSI
// form, so the GSIs are level-triggered, active-low) and _OSC (the OS gets
// every PCIe feature but native hotplug).
#ifndef PASSAGE_DEVICES_ACPI_ACPI_PCI_H_
#define PASSAGE_DEVICES_ACPI_ACPI_PCI_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace passage::acpi {

struct PciHostInfo {
  uint64_t ecam_base = 0;
  uint8_t bus_start = 0;
  uint8_t bus_end = 0;
  uint16_t config_port = 0xcf8;  // 8 ports
  uint16_t io_min = 0, io_max = 0;   // inclusive
  uint32_t mmio32_min = 0, mmio32_max = 0;
  uint64_t mmio64_min = 0, mmio64_max = 0;  // max < min: no 64-bit window
  struct Route {
    uint8_t slot = 0;
    uint8_t pin = 0;  // 0..3 = INTA..INTD
    uint32_t gsi = 0;
  };
  std::vector<Route> routes;
};

// Device(PCI0){...}, to go into \_SB; `extra` terms (the hotplug slots,
// acpi_hotplug.h) go inside it after its own.
absl::StatusOr<std::vector<uint8_t>> PciRootBridgeAml(
    const PciHostInfo& pci, const std::vector<std::vector<uint8_t>>& extra = {});
// The MCFG table's contents after its 36-byte header: 8 reserved bytes and
// one allocation for segment 0.
std::vector<uint8_t> McfgBody(const PciHostInfo& pci);

}  // namespace passage::acpi

#endif  // PASSAGE_DEVICES_ACPI_ACPI_PCI_H_
