#include "devices/acpi/acpi_pci.h"

#include "devices/acpi/aml.h"

namespace passage::acpi {
namespace {

// _OSC (PCI Firmware Specification 3.x, 4.5): the OS may control every
// feature it asks for except native hotplug (PCIe, SHPC), since slots are
// hotplugged through ACPI (acpi_hotplug.h). Linux runs it on a PNP0A08
// bridge and logs "_OSC: platform retains control" when there is none.
//   CreateDWordField(Arg3, 0, CDW1)
//   If (Arg0 == ToUUID(PCI host bridge)) {
//     CreateDWordField(Arg3, 8, CDW3)
//     Local0 = CDW3 & ~kNativeHotplug
//     If (Local0 != CDW3) { CDW1 |= kCapabilitiesMasked }
//     CDW3 = Local0
//     If (Arg1 != 1) { CDW1 |= kUnknownRevision }
//   } Else { CDW1 |= kUnrecognizedUuid }
//   Return (Arg3)
absl::StatusOr<aml::Bytes> OscMethod() {
  constexpr uint32_t kNativeHotplug = 0x3;  // bit 0 PCIe native hotplug, bit 1 SHPC
  constexpr uint32_t kUnrecognizedUuid = 0x4, kUnknownRevision = 0x8, kCapabilitiesMasked = 0x10;
  absl::StatusOr<aml::Bytes> uuid = aml::Uuid("33DB4D5B-1FF7-401C-9657-7441C03DD766");
  absl::StatusOr<aml::Bytes> cdw1_field = aml::CreateDWordField(aml::Arg(3), 0, "CDW1");
  absl::StatusOr<aml::Bytes> cdw3_field = aml::CreateDWordField(aml::Arg(3), 8, "CDW3");
  absl::StatusOr<aml::Bytes> cdw1 = aml::Ref("CDW1");
  absl::StatusOr<aml::Bytes> cdw3 = aml::Ref("CDW3");
  if (!uuid.ok() || !cdw1_field.ok() || !cdw3_field.ok() || !cdw1.ok() || !cdw3.ok()) {
    return absl::InternalError("AML: _OSC");
  }
  const aml::Bytes set_masked = aml::Or(*cdw1, aml::Integer(kCapabilitiesMasked), *cdw1);
  return aml::Method(
      "_OSC", 4, /*serialized=*/false,
      {*cdw1_field,
       aml::If(aml::LEqual(aml::Arg(0), *uuid),
               {*cdw3_field,
                aml::And(*cdw3, aml::Integer(~kNativeHotplug), aml::Local(0)),
                aml::If(aml::LNot(aml::LEqual(aml::Local(0), *cdw3)), {set_masked}),
                aml::Store(aml::Local(0), *cdw3),
                aml::If(aml::LNot(aml::LEqual(aml::Arg(1), aml::Integer(1))),
                        {aml::Or(*cdw1, aml::Integer(kUnknownRevision), *cdw1)})}),
       aml::Else({aml::Or(*cdw1, aml::Integer(kUnrecognizedUuid), *cdw1)}),
       aml::Return(aml::Arg(3))});
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> PciRootBridgeAml(const PciHostInfo& pci,
                                                      const std::vector<std::vector<uint8_t>>& extra) {
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
  absl::StatusOr<aml::Bytes> osc = OscMethod();
  if (!osc.ok()) return osc.status();
  terms.push_back(std::move(*osc));
  terms.insert(terms.end(), extra.begin(), extra.end());
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
