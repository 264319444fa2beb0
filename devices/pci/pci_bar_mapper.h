// The PciBarDecoder of a VM: decoded BARs go on the port or MMIO bus, their
// mmap'd pieces into the guest physical address space through a
// DeviceMemoryMapper (KVM memslots; a fake in tests). Only addresses inside
// the PCI windows are accepted; the buses reject overlaps.
#ifndef PASSAGE_DEVICES_PCI_PCI_BAR_MAPPER_H_
#define PASSAGE_DEVICES_PCI_PCI_BAR_MAPPER_H_

#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/io_bus.h"
#include "devices/pci/pci_bar.h"
#include "devices/pci/pci_bar_allocator.h"

namespace passage {

// Puts host memory at a guest-physical address (a KVM memslot).
class DeviceMemoryMapper {
 public:
  virtual ~DeviceMemoryMapper() = default;
  // Returns a handle for Unmap.
  virtual absl::StatusOr<uint32_t> Map(uint64_t gpa, uint64_t size, void* host) = 0;
  virtual void Unmap(uint32_t handle) = 0;
};

class PciBarMapper : public PciBarDecoder {
 public:
  // `memory` may be null when no device has mmap'd BAR pieces.
  PciBarMapper(const PciWindows& windows, IoBus& pio, IoBus& mmio, DeviceMemoryMapper* memory)
      : windows_(windows), pio_(pio), mmio_(mmio), memory_(memory) {}

  absl::Status Map(const PciBarSpec& bar, uint64_t address, const std::string& owner) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void Unmap(const PciBarSpec& bar, uint64_t address) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const PciWindows windows_;
  IoBus& pio_;
  IoBus& mmio_;
  DeviceMemoryMapper* const memory_;
  absl::Mutex mu_;
  // Memory handles of the mmap'd pieces of each mapped BAR, by BAR address.
  std::map<uint64_t, std::vector<uint32_t>> mmap_handles_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_PCI_BAR_MAPPER_H_
