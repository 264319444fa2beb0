#include "iommu/dma_space.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace passage {

absl::Status DmaSpace::OnRegionAdded(const MemoryRegion& region) {
  return Map({region.gpa, region.size, region.host, region.fd, region.fd_offset});
}

void DmaSpace::OnRegionRemoved(const MemoryRegion& region) {
  if (absl::Status s = Unmap(region.gpa, region.size); !s.ok()) {
    std::fprintf(stderr, "passage: %s\n", std::string(s.message()).c_str());
  }
}

absl::Status CheckIovaAllowed(const std::string& space, uint64_t iova, uint64_t size,
                              const std::vector<IovaRange>& allowed) {
  if (size == 0 || iova + size < iova) {
    return absl::InvalidArgumentError(absl::StrCat(space, ": bad IOVA range 0x", absl::Hex(iova),
                                                   "+0x", absl::Hex(size)));
  }
  const uint64_t last = iova + size - 1;
  for (const IovaRange& r : allowed) {
    if (iova >= r.start && last <= r.last) return absl::OkStatus();
  }
  // Name the first reserved gap the request touches.
  std::vector<IovaRange> sorted = allowed;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.start < b.start; });
  uint64_t gap_start = 0;
  for (size_t i = 0; i <= sorted.size(); ++i) {
    const bool end = i == sorted.size();
    if (!end && sorted[i].start == 0) {
      gap_start = sorted[i].last + 1;
      continue;
    }
    const uint64_t gap_last = end ? ~0ull : sorted[i].start - 1;
    if (gap_start <= gap_last && iova <= gap_last && last >= gap_start) {
      return absl::FailedPreconditionError(absl::StrCat(
          space, ": guest RAM at IOVA 0x", absl::Hex(iova), "-0x", absl::Hex(last),
          " falls in reserved IOVA range 0x", absl::Hex(gap_start), "-0x", absl::Hex(gap_last)));
    }
    if (end) break;
    if (sorted[i].last == ~0ull) break;
    gap_start = sorted[i].last + 1;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      space, ": IOVA 0x", absl::Hex(iova), "-0x", absl::Hex(last), " is not mappable"));
}

}  // namespace passage
