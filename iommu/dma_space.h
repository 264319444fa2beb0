// A DMA address space devices translate through: guest RAM is mapped into it
// at IOVA == guest-physical address. Implementations: Iommufd (one IOAS) and
// LegacyContainer (VFIO type1v2). A DmaSpace is a MemoryListener, so adding
// it to GuestMemory maps all RAM and keeps it in step.
#ifndef PASSAGE_IOMMU_DMA_SPACE_H_
#define PASSAGE_IOMMU_DMA_SPACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "memory/guest_memory.h"

namespace passage {

struct IovaRange {
  uint64_t start = 0;
  uint64_t last = 0;  // inclusive, as the kernel reports it
  bool operator==(const IovaRange&) const = default;
};

// One mapping request: [iova, iova+size) -> host memory, which is also
// reachable as (fd, fd_offset) for backends that can map a file directly.
struct DmaMapping {
  uint64_t iova = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;
  int fd = -1;
  uint64_t fd_offset = 0;
};

class DmaSpace : public MemoryListener {
 public:
  // A short name for messages ("iommufd0", "vfio container").
  virtual const std::string& name() const = 0;
  virtual absl::Status Map(const DmaMapping& mapping) = 0;
  virtual absl::Status Unmap(uint64_t iova, uint64_t size) = 0;
  // The IOVA ranges devices can currently reach.
  virtual absl::StatusOr<std::vector<IovaRange>> AllowedRanges() = 0;

  absl::Status OnRegionAdded(const MemoryRegion& region) override;
  void OnRegionRemoved(const MemoryRegion& region) override;
};

// Checks that [iova, iova+size) lies inside one of `allowed`; otherwise the
// error names the reserved range it hits, e.g. "... 0xfee00000-0xfeefffff".
absl::Status CheckIovaAllowed(const std::string& space, uint64_t iova, uint64_t size,
                              const std::vector<IovaRange>& allowed);

}  // namespace passage

#endif  // PASSAGE_IOMMU_DMA_SPACE_H_
