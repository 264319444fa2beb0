// A DMA address space devices translate through: guest RAM is mapped into it
// at IOVA == guest-physical address. Implementations: Iommufd (one IOAS) and
// LegacyContainer (VFIO type1v2). A DmaSpace is a MemoryListener, so adding
// it to GuestMemory maps all RAM and keeps it in step.
//
// The base owns what both backends share: the table of live mappings, the
// reserved-range checks, and unmapping on destruction. A backend only issues
// its ioctls (MapIoctl/UnmapIoctl/AllowedRanges), like rust-vmm's VfioOps.
//
// It also owns the space's readiness (issue 14): whether all guest RAM is
// mapped, i.e. whether a device translating through it may do DMA. Pinning
// RAM is most of a VM's set-up, so the VM may attach devices to a space
// first and map RAM on a background thread while the guest boots: the owner
// calls DeferMapping() before the first device attaches and FinishMapping()
// with the outcome; whatever lets a device DMA (its bus-master enable) or
// binds a PASID waits in AwaitMapped() until then.
#ifndef PASSAGE_IOMMU_DMA_SPACE_H_
#define PASSAGE_IOMMU_DMA_SPACE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "iommu/sys.h"
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
  // Backends must call UnmapAll() in their destructor, while their fd is open.
  ~DmaSpace() override = default;

  // A short name for messages ("iommufd0", "vfio container").
  virtual const std::string& name() const = 0;
  // The IOVA ranges devices can currently reach. They shrink as devices
  // attach: a device's reserved regions (the x86 MSI window) only show then.
  virtual absl::StatusOr<std::vector<IovaRange>> AllowedRanges() = 0;

  // Checks the range against AllowedRanges(), maps it and records it.
  absl::Status Map(const DmaMapping& mapping) ABSL_LOCKS_EXCLUDED(mu_);
  // Unmaps a recorded mapping; a range not (or no longer) mapped is a no-op.
  absl::Status Unmap(uint64_t iova, uint64_t size) ABSL_LOCKS_EXCLUDED(mu_);
  // Mappings currently live, iova -> size.
  std::map<uint64_t, uint64_t> mappings() const ABSL_LOCKS_EXCLUDED(mu_);

  // Called after a device attached: every live mapping (and, while the
  // mapping is deferred, every range it will map) must still lie in the
  // allowed ranges. The error names the reserved range and `device`.
  absl::Status CheckMappingsAfterAttach(const std::string& device);

  absl::Status OnRegionAdded(const MemoryRegion& region) override;
  void OnRegionRemoved(const MemoryRegion& region) override;

  // Readiness. A space is "mapped" unless DeferMapping() was called and
  // FinishMapping() not yet: spaces that map as they start listening to
  // guest memory are ready at once. `planned` (iova -> size) is what will
  // be mapped, checked against each device that attaches meanwhile.
  void DeferMapping(std::map<uint64_t, uint64_t> planned) ABSL_LOCKS_EXCLUDED(mu_);
  // The deferred mapping ended: OK (all RAM mapped) or why not. Wakes every
  // AwaitMapped().
  void FinishMapping(absl::Status outcome) ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until no mapping is pending and returns its outcome (OK: mapped;
  // at once when none was deferred). Ends early with kCancelled once
  // CancelWaits() was called. Holds no lock while it waits but mu_, which
  // FinishMapping and CancelWaits take only briefly. Any thread.
  absl::Status AwaitMapped() ABSL_LOCKS_EXCLUDED(mu_);
  // The VM is stopping: every AwaitMapped(), now and later, returns
  // kCancelled unless the space is mapped already. Any thread.
  void CancelWaits() ABSL_LOCKS_EXCLUDED(mu_);
  // Not blocking: the outcome so far (kUnavailable while pending).
  absl::Status MappedStatus() const ABSL_LOCKS_EXCLUDED(mu_);

 protected:
  // The backend's ioctls; the base holds no lock while calling them.
  virtual absl::Status MapIoctl(const DmaMapping& mapping) = 0;
  virtual absl::Status UnmapIoctl(uint64_t iova, uint64_t size) = 0;
  // Unmaps everything still mapped, newest (highest IOVA) first.
  void UnmapAll() ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets every mapping without an ioctl (the kernel dropped them).
  void ForgetAll() ABSL_LOCKS_EXCLUDED(mu_);
  // A map/unmap ioctl's result (0 or -1 with errno) as a Status; an error
  // reads "<space>: <what> 0x<iova>+0x<size>: <strerror>".
  absl::Status IoctlResult(int result, absl::string_view what, uint64_t iova,
                           uint64_t size) const;

 private:
  mutable absl::Mutex mu_;
  std::map<uint64_t, uint64_t> mappings_ ABSL_GUARDED_BY(mu_);
  bool pending_ ABSL_GUARDED_BY(mu_) = false;     // DeferMapping'd, not finished
  std::map<uint64_t, uint64_t> planned_ ABSL_GUARDED_BY(mu_);  // while pending_
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;   // CancelWaits()
  absl::Status outcome_ ABSL_GUARDED_BY(mu_);     // of the last FinishMapping
};

// When the kernel refuses a device or group whose reserved regions overlap
// live mappings, it does not say which: this reads the group's sysfs
// `reserved_regions` ("0x...fee00000 0x...feefffff msi" per line) and names
// the first region a mapping hits, e.g. "reserved IOVA range
// 0xfee00000-0xfeefffff (msi)". Without the file (fd-only use): a generic
// "reserved IOVA ranges" text.
std::string DescribeReservedOverlap(Sys* sys, const std::string& reserved_regions_path,
                                    const std::map<uint64_t, uint64_t>& mappings);

// Checks that [iova, iova+size) lies inside one of `allowed`; otherwise the
// error names the reserved range it hits, e.g. "... 0xfee00000-0xfeefffff".
absl::Status CheckIovaAllowed(const std::string& space, uint64_t iova, uint64_t size,
                              const std::vector<IovaRange>& allowed);

}  // namespace passage

#endif  // PASSAGE_IOMMU_DMA_SPACE_H_
