// The PCIe PASID extended capability (PCIe 6.0 7.8.8, ID 0x1B) as passage
// synthesizes it for a passed-through function whose host function has
// PASID: vfio-pci hides the physical one, and what the guest may use is the
// VM's negotiated width (iommu/pasid_space.h), not the function's own.
//
// Capability register (read-only): Max PASID Width, read from `source` at
// each guest read (the VM's width shrinks or grows as PASID-capable devices
// come and go); Execute/Privileged Mode Supported from the host function.
// Control register: PASID Enable is writable; Execute and Privileged Mode
// Enable are writable only where supported (else read-only zero); the rest
// is reserved, zero. The enable bits are the guest's view only: the host's
// IOMMU driver enabled PASID on the physical function when it probed it,
// and which PASIDs reach memory is the PASID space's table.
#ifndef PASSAGE_DEVICES_PCI_PASID_CAPABILITY_H_
#define PASSAGE_DEVICES_PCI_PASID_CAPABILITY_H_

#include <cstdint>
#include <functional>

#include "devices/pci/pci_device.h"

namespace passage {

class PasidCapability : public PciCapabilityHandler {
 public:
  // The negotiated width in bits (1..20; 0 would read as no PASID).
  using WidthSource = std::function<uint8_t()>;
  PasidCapability(WidthSource width, bool exec, bool priv)
      : width_(std::move(width)), exec_(exec), priv_(priv) {}

  // Appended to the extended list (after whatever the device has there).
  absl::StatusOr<uint32_t> AddTo(PciConfigSpace& config) override;
  uint32_t size() const override;
  void BeforeRead(PciConfigSpace& config) override;
  void AfterWrite(PciConfigSpace&, uint32_t, uint32_t) override {}

  uint32_t offset() const { return offset_; }

 private:
  uint16_t CapabilityRegister() const;

  const WidthSource width_;
  const bool exec_, priv_;
  uint32_t offset_ = 0;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_PASID_CAPABILITY_H_
