// The BIOS-style e820 memory map handed to Linux in boot_params: which
// guest-physical ranges are RAM, reserved, or hold ACPI tables.
#ifndef PASSAGE_VMM_E820_H_
#define PASSAGE_VMM_E820_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "memory/memory_map.h"

namespace passage {

enum class E820Type : uint32_t { kRam = 1, kReserved = 2, kAcpi = 3, kNvs = 4, kUnusable = 5 };

struct E820Entry {
  uint64_t addr = 0;
  uint64_t size = 0;
  E820Type type = E820Type::kRam;
  uint64_t end() const { return addr + size; }
  bool operator==(const E820Entry&) const = default;
};

// boot_params holds at most this many entries (E820_MAX_ENTRIES_ZEROPAGE).
inline constexpr size_t kMaxE820Entries = 128;

// The map: the `ram` ranges, except where a `special` range (reserved, ACPI,
// ...) covers them; special ranges outside RAM are listed too. The result is
// sorted, non-overlapping, with adjacent entries of one type merged. Fails if
// special ranges overlap each other, a range is empty or wraps, or the map
// needs more than kMaxE820Entries entries.
absl::StatusOr<std::vector<E820Entry>> BuildE820(std::span<const GuestRange> ram,
                                                 std::span<const E820Entry> special);

std::string E820TypeName(E820Type type);

}  // namespace passage

#endif  // PASSAGE_VMM_E820_H_
