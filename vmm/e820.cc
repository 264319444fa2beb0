#include "vmm/e820.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace passage {

std::string E820TypeName(E820Type type) {
  switch (type) {
    case E820Type::kRam: return "RAM";
    case E820Type::kReserved: return "reserved";
    case E820Type::kAcpi: return "ACPI";
    case E820Type::kNvs: return "ACPI NVS";
    case E820Type::kUnusable: return "unusable";
  }
  return absl::StrCat("type ", static_cast<uint32_t>(type));
}

absl::StatusOr<std::vector<E820Entry>> BuildE820(std::span<const GuestRange> ram,
                                                 std::span<const E820Entry> special) {
  auto bad_range = [](uint64_t addr, uint64_t size) {
    return size == 0 || addr + size < addr;
  };
  for (const GuestRange& r : ram) {
    if (bad_range(r.gpa, r.size)) {
      return absl::InvalidArgumentError(absl::StrCat("e820: bad RAM range 0x", absl::Hex(r.gpa),
                                                     "+0x", absl::Hex(r.size)));
    }
  }
  std::vector<E820Entry> sorted(special.begin(), special.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const E820Entry& a, const E820Entry& b) { return a.addr < b.addr; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (bad_range(sorted[i].addr, sorted[i].size)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "e820: bad ", E820TypeName(sorted[i].type), " range 0x", absl::Hex(sorted[i].addr),
          "+0x", absl::Hex(sorted[i].size)));
    }
    if (i > 0 && sorted[i].addr < sorted[i - 1].end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "e820: ", E820TypeName(sorted[i].type), " range at 0x", absl::Hex(sorted[i].addr),
          " overlaps ", E820TypeName(sorted[i - 1].type), " range at 0x",
          absl::Hex(sorted[i - 1].addr)));
    }
  }
  std::vector<E820Entry> out;
  auto emit = [&out](uint64_t addr, uint64_t end, E820Type type) {
    if (end <= addr) return;
    if (!out.empty() && out.back().type == type && out.back().end() == addr) {
      out.back().size += end - addr;
    } else {
      out.push_back({addr, end - addr, type});
    }
  };
  // RAM pieces not covered by any special range.
  std::vector<E820Entry> pieces;
  for (const GuestRange& r : ram) {
    uint64_t cursor = r.gpa;
    for (const E820Entry& s : sorted) {
      if (s.end() <= cursor || s.addr >= r.end()) continue;
      if (s.addr > cursor) pieces.push_back({cursor, s.addr - cursor, E820Type::kRam});
      cursor = std::max(cursor, s.end());
    }
    if (cursor < r.end()) pieces.push_back({cursor, r.end() - cursor, E820Type::kRam});
  }
  pieces.insert(pieces.end(), sorted.begin(), sorted.end());
  std::sort(pieces.begin(), pieces.end(),
            [](const E820Entry& a, const E820Entry& b) { return a.addr < b.addr; });
  for (size_t i = 1; i < pieces.size(); ++i) {
    if (pieces[i].addr < pieces[i - 1].end()) {
      return absl::InvalidArgumentError(absl::StrCat("e820: RAM ranges overlap at 0x",
                                                     absl::Hex(pieces[i].addr)));
    }
  }
  for (const E820Entry& p : pieces) emit(p.addr, p.end(), p.type);
  if (out.size() > kMaxE820Entries) {
    return absl::InvalidArgumentError(absl::StrCat("e820: ", out.size(), " entries, at most ",
                                                   kMaxE820Entries, " fit in boot_params"));
  }
  return out;
}

}  // namespace passage
