// Guest RAM: one memfd, mapped once, laid out by RamLayout(). Listeners (KVM
// memslots, DMA spaces) follow the regions as they appear and go.
#ifndef PASSAGE_MEMORY_GUEST_MEMORY_H_
#define PASSAGE_MEMORY_GUEST_MEMORY_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "memory/memory_map.h"
#include "memory/unique_fd.h"

namespace passage {

// One contiguous piece of guest RAM.
struct MemoryRegion {
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;  // userspace mapping
  int fd = -1;              // backing memfd (not owned here)
  uint64_t fd_offset = 0;   // offset of this region in `fd`
  uint64_t end() const { return gpa + size; }
};

// Told when a RAM region appears or goes. OnRegionAdded may fail; the caller
// then undoes what it did for the listener (see GuestMemory::AddListener).
class MemoryListener {
 public:
  virtual ~MemoryListener() = default;
  virtual absl::Status OnRegionAdded(const MemoryRegion& region) = 0;
  virtual void OnRegionRemoved(const MemoryRegion& region) = 0;
};

struct GuestMemoryOptions {
  uint64_t ram_size = 0;
  bool hugepages = false;  // MFD_HUGETLB (2 MiB pages; must be reserved)
};

class GuestMemory {
 public:
  static absl::StatusOr<std::unique_ptr<GuestMemory>> Create(const GuestMemoryOptions& options);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Registers `listener` and replays every existing region to it. If a replay
  // fails, the regions already added are removed again and the listener is
  // not registered.
  absl::Status AddListener(MemoryListener* listener) ABSL_LOCKS_EXCLUDED(mu_);
  // Unregisters `listener`, telling it every region went away (reverse order).
  void RemoveListener(MemoryListener* listener) ABSL_LOCKS_EXCLUDED(mu_);

  const std::vector<MemoryRegion>& regions() const { return regions_; }
  uint64_t ram_size() const { return ram_size_; }
  int fd() const { return memfd_.get(); }

  // Host pointer for [gpa, gpa+len) if it lies within one region, else null.
  uint8_t* HostAddress(uint64_t gpa, uint64_t len) const;
  absl::Status Write(uint64_t gpa, std::span<const uint8_t> data);
  absl::Status Read(uint64_t gpa, std::span<uint8_t> data) const;

 private:
  GuestMemory() = default;

  UniqueFd memfd_;
  uint8_t* base_ = nullptr;
  uint64_t ram_size_ = 0;
  std::vector<MemoryRegion> regions_;
  absl::Mutex mu_;
  std::vector<MemoryListener*> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage

#endif  // PASSAGE_MEMORY_GUEST_MEMORY_H_
