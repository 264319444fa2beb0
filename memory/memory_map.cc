#include "memory/memory_map.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace passage {

absl::StatusOr<uint64_t> ParseMemorySize(absl::string_view text) {
  // As the user typed it, escaped: an error stays one line.
  const std::string shown = absl::CEscape(text);
  absl::string_view number = text;
  uint64_t unit = kMiB;  // QEMU: a bare number means MiB.
  if (!number.empty() && absl::ascii_isalpha(number.back())) {
    switch (absl::ascii_toupper(number.back())) {
      case 'K': unit = kKiB; break;
      case 'M': unit = kMiB; break;
      case 'G': unit = kGiB; break;
      case 'T': unit = 1024 * kGiB; break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("invalid size '", shown, "': unit must be K, M, G or T"));
    }
    number.remove_suffix(1);
  }
  double value = 0;
  if (number.empty() || !absl::SimpleAtod(number, &value) || !std::isfinite(value) ||
      value <= 0 || number.find_first_not_of("0123456789.") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid size '", shown, "': expected a positive number with optional K/M/G/T"));
  }
  const double bytes = value * static_cast<double>(unit);
  if (bytes > static_cast<double>(kMaxRamSize) * 1024) {
    return absl::InvalidArgumentError(absl::StrCat("invalid size '", shown, "': too large"));
  }
  const uint64_t result = static_cast<uint64_t>(bytes);
  if (static_cast<double>(result) != bytes || result % 4096 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid size '", shown, "': not a whole number of 4 KiB pages"));
  }
  return result;
}

absl::Status ValidateRamSize(uint64_t ram_size, absl::string_view flag) {
  if (ram_size < kMinRamSize || ram_size > kMaxRamSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": RAM size must be between ", kMinRamSize / kMiB, "M and ",
        kMaxRamSize / kGiB, "G"));
  }
  if (ram_size % 4096 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": RAM size must be page-aligned"));
  }
  return absl::OkStatus();
}

std::vector<GuestRange> RamLayout(uint64_t ram_size) {
  std::vector<GuestRange> ranges;
  const uint64_t low = ram_size < kLowRamEnd ? ram_size : kLowRamEnd;
  ranges.push_back({0, low});
  if (ram_size > low) ranges.push_back({kHighRamStart, ram_size - low});
  return ranges;
}

GuestRange PciMmio64Window(uint64_t ram_size) {
  uint64_t end = kHighRamStart;
  for (const GuestRange& r : RamLayout(ram_size)) end = std::max(end, r.end());
  const uint64_t start = (end + kPciMmio64Align - 1) / kPciMmio64Align * kPciMmio64Align;
  return {start, kPciMmio64Size};
}

}  // namespace passage
