#include "devices/acpi/acpi_pci.h"

#include "devices/acpi/aml.h"

namespace passage::acpi {

absl::StatusOr<std::vector<uint8_t>> PciRootBridgeAml(const PciHostInfo& pci) {
  absl::StatusOr<aml::Bytes> hid_id = aml::EisaId("PNP0A08");
  absl::StatusOr<aml::Bytes> cid_id = aml::EisaId("PNP0A03");
  if (!hid_id.ok() || !cid_id.ok()) return absl::InternalError("AML: PCI root bridge IDs");
  std::vector<aml::Bytes> resources = {
      aml::WordBusNumber(pci.bus_start, pci.bus_end),
      aml::IoPort(pci.config_port, pci.config_port, 1, 8),
      aml::WordIo(pci.io_min, pci.io_max),
      aml::DWordMemory(false, pci.mmio32_min, pci.mmio32_max),
  };
  if (pci.mmio64_max > pci.mmio64_min) resources.push_back(aml::QWordMemory(true, pci.mmio64_min, pci.mmio64_max));
  std::vector<aml::Bytes> routes;
  for (const PciHostInfo::Route& r : pci.routes) {
    absl::StatusOr<aml::Bytes> entry =
        aml::Package({aml::Integer((uint64_t{r.slot} << 16) | 0xffff), aml::Integer(r.pin),
                      aml::Integer(0), aml::Integer(r.gsi)});
    if (!entry.ok()) return entry.status();
    routes.push_back(std::move(*entry));
  }
  absl::StatusOr<aml::Bytes> prt = aml::Package(routes);
  if (!prt.ok()) return prt.status();
  std::vector<aml::Bytes> terms;
  for (auto [name, value] : std::vector<std::pair<const char*, aml::Bytes>>{
           {"_HID", *hid_id},
           {"_CID", *cid_id},
           {"_SEG", aml::Integer(0)},
           {"_UID", aml::Integer(0)},
           {"_BBN", aml::Integer(pci.bus_start)},
           {"_CRS", aml::ResourceTemplate(resources)},
           {"_PRT", *prt}}) {
    absl::StatusOr<aml::Bytes> n = aml::Name(name, value);
    if (!n.ok()) return n.status();
    terms.push_back(std::move(*n));
  }
  return aml::Device("PCI0", terms);
}

std::vector<uint8_t> McfgBody(const PciHostInfo& pci) {
  std::vector<uint8_t> out(8, 0);  // reserved
  auto put = [&out](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put(pci.ecam_base, 8);
  put(0, 2);  // PCI segment group
  put(pci.bus_start, 1);
  put(pci.bus_end, 1);
  put(0, 4);
  return out;
}

}  // namespace passage::acpi
