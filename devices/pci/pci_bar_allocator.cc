#include "devices/pci/pci_bar_allocator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace passage {
namespace {

bool Inside(const GuestRange& window, uint64_t address, uint64_t size) {
  return size != 0 && address >= window.gpa && address - window.gpa <= window.size &&
         size <= window.size - (address - window.gpa);
}

}  // namespace

bool PciWindows::Contains(PciBarKind kind, uint64_t address, uint64_t size) const {
  if (kind == PciBarKind::kIo) return Inside(io, address, size);
  return Inside(mmio32, address, size) || Inside(mmio64, address, size);
}

PciWindows DefaultPciWindows(uint64_t ram_size) {
  return {{kPciIoStart, kPciIoSize}, {kPciMmio32Start, kPciMmio32Size}, PciMmio64Window(ram_size)};
}

std::optional<uint64_t> PciBarAllocator::FirstFit(const std::map<uint64_t, uint64_t>& used,
                                                   const GuestRange& window, uint64_t size) {
  if (size == 0 || size > window.size) return std::nullopt;
  auto align = [size](uint64_t a) { return (a + size - 1) & ~(size - 1); };
  uint64_t candidate = align(window.gpa);
  // `used` is sorted by start (ranges may overlap): walk them in order.
  for (auto it = used.begin(); it != used.end(); ++it) {
    if (!Inside(window, candidate, size)) return std::nullopt;
    if (it->first + it->second <= candidate) continue;  // entirely below
    if (it->first >= candidate + size) break;           // the gap before it fits
    candidate = align(it->first + it->second);
  }
  if (!Inside(window, candidate, size)) return std::nullopt;
  return candidate;
}

absl::StatusOr<uint64_t> PciBarAllocator::Allocate(PciBarKind kind, uint64_t size,
                                                   const std::vector<GuestRange>& avoid) {
  if (size == 0 || (size & (size - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("BAR size 0x", absl::Hex(size), " is not a power of two"));
  }
  std::map<uint64_t, uint64_t> occupied = used_;
  for (const GuestRange& r : avoid) {
    if (r.size == 0) continue;
    uint64_t& s = occupied[r.gpa];
    s = std::max(s, r.size);
  }
  std::optional<uint64_t> address;
  const char* where = "";
  switch (kind) {
    case PciBarKind::kIo:
      address = FirstFit(occupied, windows_.io, size);
      where = "the I/O window";
      break;
    case PciBarKind::kMem32:
      address = FirstFit(occupied, windows_.mmio32, size);
      where = "the 32-bit MMIO window";
      break;
    case PciBarKind::kMem64:
      address = FirstFit(occupied, windows_.mmio64, size);
      if (!address) address = FirstFit(occupied, windows_.mmio32, size);
      where = "the 64-bit or 32-bit MMIO windows";
      break;
  }
  if (!address) {
    return absl::ResourceExhaustedError(absl::StrCat(
        PciBarKindName(kind), " BAR of 0x", absl::Hex(size), " bytes does not fit in ", where));
  }
  used_.emplace(*address, size);
  return *address;
}

void PciBarAllocator::Free(uint64_t address) { used_.erase(address); }

}  // namespace passage
