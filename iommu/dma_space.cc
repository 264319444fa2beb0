#include "iommu/dma_space.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "memory/unique_fd.h"

namespace passage {

absl::Status DmaSpace::OnRegionAdded(const MemoryRegion& region) {
  return Map({region.gpa, region.size, region.host, region.fd, region.fd_offset});
}

void DmaSpace::OnRegionRemoved(const MemoryRegion& region) {
  if (absl::Status s = Unmap(region.gpa, region.size); !s.ok()) {
    std::fprintf(stderr, "passage: %s\n", std::string(s.message()).c_str());
  }
}

absl::Status DmaSpace::Map(const DmaMapping& m) {
  absl::StatusOr<std::vector<IovaRange>> allowed = AllowedRanges();
  if (!allowed.ok()) return allowed.status();
  if (absl::Status s = CheckIovaAllowed(name(), m.iova, m.size, *allowed); !s.ok()) return s;
  if (absl::Status s = MapIoctl(m); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  mappings_[m.iova] = m.size;
  return absl::OkStatus();
}

absl::Status DmaSpace::Unmap(uint64_t iova, uint64_t size) {
  {
    absl::MutexLock lock(&mu_);
    if (!mappings_.count(iova)) return absl::OkStatus();
  }
  if (absl::Status s = UnmapIoctl(iova, size); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  mappings_.erase(iova);
  return absl::OkStatus();
}

std::map<uint64_t, uint64_t> DmaSpace::mappings() const {
  absl::MutexLock lock(&mu_);
  return mappings_;
}

absl::Status DmaSpace::CheckMappingsAfterAttach(const std::string& device) {
  std::map<uint64_t, uint64_t> live;
  {
    absl::MutexLock lock(&mu_);
    live = mappings_;
    if (pending_) live.insert(planned_.begin(), planned_.end());
  }
  if (live.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<IovaRange>> allowed = AllowedRanges();
  if (!allowed.ok()) return allowed.status();
  for (const auto& [iova, size] : live) {
    if (absl::Status s = CheckIovaAllowed(name(), iova, size, *allowed); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(device, ": ", s.message(),
                                                 ", which this device reserves"));
    }
  }
  return absl::OkStatus();
}

void DmaSpace::DeferMapping(std::map<uint64_t, uint64_t> planned) {
  absl::MutexLock lock(&mu_);
  pending_ = true;
  planned_ = std::move(planned);
  outcome_ = absl::OkStatus();
}

void DmaSpace::FinishMapping(absl::Status outcome) {
  absl::MutexLock lock(&mu_);
  pending_ = false;
  planned_.clear();
  outcome_ = std::move(outcome);
}

absl::Status DmaSpace::AwaitMapped() {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !pending_ || cancelled_; };
  mu_.Await(absl::Condition(&done));
  if (pending_) {
    return absl::CancelledError(
        absl::StrCat(name(), ": guest RAM is not mapped yet and the VM is stopping"));
  }
  return outcome_;
}

void DmaSpace::CancelWaits() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

absl::Status DmaSpace::MappedStatus() const {
  absl::MutexLock lock(&mu_);
  if (pending_) {
    return absl::UnavailableError(absl::StrCat(name(), ": guest RAM is still being mapped"));
  }
  return outcome_;
}

void DmaSpace::UnmapAll() {
  const std::map<uint64_t, uint64_t> left = mappings();
  for (auto it = left.rbegin(); it != left.rend(); ++it) {
    if (absl::Status s = Unmap(it->first, it->second); !s.ok()) {
      std::fprintf(stderr, "passage: %s\n", std::string(s.message()).c_str());
    }
  }
}

absl::Status DmaSpace::IoctlResult(int result, absl::string_view what, uint64_t iova,
                                   uint64_t size) const {
  if (result == 0) return absl::OkStatus();
  return ErrnoError(
      absl::StrCat(name(), ": ", what, " 0x", absl::Hex(iova), "+0x", absl::Hex(size)));
}

void DmaSpace::ForgetAll() {
  absl::MutexLock lock(&mu_);
  mappings_.clear();
}

std::string DescribeReservedOverlap(Sys* sys, const std::string& reserved_regions_path,
                                    const std::map<uint64_t, uint64_t>& mappings) {
  const std::string fallback = "reserved IOVA ranges";
  if (reserved_regions_path.empty()) return fallback;
  absl::StatusOr<std::string> text = sys->ReadFile(reserved_regions_path);
  if (!text.ok()) return fallback;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t start = 0, last = 0;
    if (f.size() < 2 || !absl::SimpleHexAtoi(f[0], &start) || !absl::SimpleHexAtoi(f[1], &last)) {
      continue;
    }
    for (const auto& [iova, size] : mappings) {
      if (iova <= last && start <= iova + size - 1) {
        return absl::StrCat("reserved IOVA range 0x", absl::Hex(start), "-0x", absl::Hex(last),
                            f.size() > 2 ? absl::StrCat(" (", f[2], ")") : "");
      }
    }
  }
  return fallback;
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
