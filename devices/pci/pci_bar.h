// What a device asks for in a BAR, and the interface through which a
// decoded BAR becomes visible to the guest.
#ifndef PASSAGE_DEVICES_PCI_PCI_BAR_H_
#define PASSAGE_DEVICES_PCI_PCI_BAR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "devices/io_bus.h"

namespace passage {

enum class PciBarKind : uint8_t { kIo, kMem32, kMem64 };

const char* PciBarKindName(PciBarKind kind);

// A piece of a BAR backed by host memory the guest may access directly (a
// KVM memslot; VFIO's mmap'able regions). Offsets and sizes are page-aligned;
// the memory stays valid while the device exists.
struct PciBarMmap {
  uint64_t offset = 0;
  uint64_t size = 0;
  void* host = nullptr;
};

struct PciBarSpec {
  PciBarKind kind = PciBarKind::kMem32;
  uint64_t size = 0;  // power of two: >= 4 KiB for memory, >= 4 for I/O
  bool prefetchable = false;
  // Traps guest accesses outside the mmap'd pieces (offsets relative to the
  // BAR). Null: such accesses read all-ones and writes are dropped.
  std::shared_ptr<IoHandler> handler;
  std::vector<PciBarMmap> mmaps;
};

// Makes BARs appear at guest addresses: I/O BARs on the port bus, memory
// BARs on the MMIO bus (their mmaps as KVM memslots). Map() refuses ranges
// outside the PCI windows (OutOfRange) and ranges that overlap anything
// already there (AlreadyExists): the errors a guest's BAR placement causes.
class PciBarDecoder {
 public:
  virtual ~PciBarDecoder() = default;
  virtual absl::Status Map(const PciBarSpec& bar, uint64_t address, const std::string& owner) = 0;
  virtual void Unmap(const PciBarSpec& bar, uint64_t address) = 0;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_PCI_BAR_H_
