#include "devices/pci/pasid_capability.h"

#include <linux/pci_regs.h>

#include <algorithm>

namespace passage {

uint32_t PasidCapability::size() const { return PCI_EXT_CAP_PASID_SIZEOF; }

uint16_t PasidCapability::CapabilityRegister() const {
  const uint16_t width = std::min<uint16_t>(width_(), 20);  // the field is 5 bits, PCIe allows 20
  return static_cast<uint16_t>((width << 8 & PCI_PASID_CAP_WIDTH) | (exec_ ? PCI_PASID_CAP_EXEC : 0) |
                               (priv_ ? PCI_PASID_CAP_PRIV : 0));
}

absl::StatusOr<uint32_t> PasidCapability::AddTo(PciConfigSpace& config) {
  absl::StatusOr<uint32_t> offset = config.AddExtendedCapability(PCI_EXT_CAP_ID_PASID, 1, size());
  if (!offset.ok()) return offset;
  offset_ = *offset;
  config.Set16(offset_ + PCI_PASID_CAP, CapabilityRegister());
  config.Set16(offset_ + PCI_PASID_CTRL, 0);
  config.SetWritable(offset_ + PCI_PASID_CTRL, 2,
                     PCI_PASID_CTRL_ENABLE | (exec_ ? PCI_PASID_CTRL_EXEC : 0) |
                         (priv_ ? PCI_PASID_CTRL_PRIV : 0));
  return offset_;
}

void PasidCapability::BeforeRead(PciConfigSpace& config) {
  config.Set16(offset_ + PCI_PASID_CAP, CapabilityRegister());
}

}  // namespace passage
