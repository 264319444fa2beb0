// Guest address windows for BARs and the allocator that places BARs in them
// (passage plays the firmware's part: every BAR has an address at boot).
//   I/O BARs           -> the I/O window (ports 0xC000-0xFFFF)
//   32-bit memory BARs -> the 32-bit window below 4 GiB
//   64-bit memory BARs -> the 64-bit window above RAM; the 32-bit window
//                         when the 64-bit one is full
// Each BAR is naturally aligned (to its size); first fit, lowest address.
#ifndef PASSAGE_DEVICES_PCI_PCI_BAR_ALLOCATOR_H_
#define PASSAGE_DEVICES_PCI_PCI_BAR_ALLOCATOR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "devices/pci/pci_bar.h"
#include "memory/memory_map.h"

namespace passage {

struct PciWindows {
  GuestRange io;
  GuestRange mmio32;
  GuestRange mmio64;
  // Whether [address, address+size) lies inside the window(s) for `kind`
  // (memory BARs of either width may sit in either memory window).
  bool Contains(PciBarKind kind, uint64_t address, uint64_t size) const;
};

// The windows of a VM with `ram_size` bytes of RAM (memory/memory_map.h).
PciWindows DefaultPciWindows(uint64_t ram_size);

class PciBarAllocator {
 public:
  explicit PciBarAllocator(const PciWindows& windows) : windows_(windows) {}

  // A naturally aligned, free address for a BAR of `size` bytes, outside
  // `avoid` too (ranges in use that the allocator did not hand out: BARs the
  // guest moved).
  absl::StatusOr<uint64_t> Allocate(PciBarKind kind, uint64_t size,
                                    const std::vector<GuestRange>& avoid = {});
  // Returns a range to the pool (hot-unplug). An address not allocated is a
  // no-op.
  void Free(uint64_t address);
  const PciWindows& windows() const { return windows_; }

 private:
  static std::optional<uint64_t> FirstFit(const std::map<uint64_t, uint64_t>& used,
                                          const GuestRange& window, uint64_t size);

  const PciWindows windows_;
  std::map<uint64_t, uint64_t> used_;  // address -> size (I/O and memory never overlap)
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_PCI_BAR_ALLOCATOR_H_
