// The x86 guest-physical memory map: where RAM goes, where the holes are.
#ifndef PASSAGE_MEMORY_MEMORY_MAP_H_
#define PASSAGE_MEMORY_MEMORY_MAP_H_

#include <cstdint>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace passage {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

// Guest-physical layout (see README "Memory map").
inline constexpr uint64_t kLowRamEnd = 3 * kGiB;         // RAM below: [0, 3G)
inline constexpr uint64_t kPciHoleStart = kLowRamEnd;     // [3G, 4G): MMIO
inline constexpr uint64_t kPciMmio32Start = 0xC000'0000;  // 32-bit BAR window
inline constexpr uint64_t kPciMmio32Size = 0x2000'0000;   // 512 MiB
inline constexpr uint64_t kEcamStart = 0xE000'0000;       // PCIe MMCONFIG
inline constexpr uint64_t kEcamSize = 0x1000'0000;        // 256 buses
inline constexpr uint64_t kIoapicStart = 0xFEC0'0000;
inline constexpr uint64_t kLapicStart = 0xFEE0'0000;
inline constexpr uint64_t kDebugMmioStart = 0xFEF0'0000;  // passage debug device
inline constexpr uint64_t kHighRamStart = 4 * kGiB;
// Legacy hole below 1 MiB that e820 reports as reserved (VGA, option ROMs,
// BIOS). The memory behind it stays RAM in the memslot, as on real boards.
inline constexpr uint64_t kLegacyHoleStart = 0xA0000;
inline constexpr uint64_t kLegacyHoleEnd = 1 * kMiB;

// PCI BAR windows (see devices/pci/pci_bar_allocator.h). The 64-bit window
// starts at the first 1 GiB boundary at or above the end of RAM (and 4 GiB).
inline constexpr uint64_t kPciIoStart = 0xC000;  // I/O ports for BARs
inline constexpr uint64_t kPciIoSize = 0x4000;
inline constexpr uint64_t kPciMmio64Size = 32 * kGiB;
inline constexpr uint64_t kPciMmio64Align = 1 * kGiB;

inline constexpr uint64_t kMinRamSize = 16 * kMiB;
inline constexpr uint64_t kMaxRamSize = 1024 * kGiB;

struct GuestRange {
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint64_t end() const { return gpa + size; }
  bool operator==(const GuestRange&) const = default;
};

// Parses a QEMU-style size: "512M", "2G", "1.5G", "64K", "1T"; a bare number
// is MiB, as QEMU's -m takes it. The result must be a whole number of pages.
absl::StatusOr<uint64_t> ParseMemorySize(absl::string_view text);

// Where `ram_size` bytes of RAM go: up to kLowRamEnd below the PCI hole, the
// rest from kHighRamStart. Sizes are page-aligned; ram_size must be valid.
std::vector<GuestRange> RamLayout(uint64_t ram_size);

// The 64-bit PCI MMIO window for a VM with `ram_size` bytes of RAM.
GuestRange PciMmio64Window(uint64_t ram_size);

// Checks a RAM size against the limits above; the message names `flag`.
absl::Status ValidateRamSize(uint64_t ram_size, absl::string_view flag);

}  // namespace passage

#endif  // PASSAGE_MEMORY_MEMORY_MAP_H_
