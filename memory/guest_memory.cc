#include "memory/guest_memory.h"

#include <linux/memfd.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace passage {

absl::StatusOr<std::unique_ptr<GuestMemory>> GuestMemory::Create(
    const GuestMemoryOptions& options) {
  if (absl::Status s = ValidateRamSize(options.ram_size, "-m"); !s.ok()) return s;
  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  unsigned flags = MFD_CLOEXEC;
  if (options.hugepages) flags |= MFD_HUGETLB | MFD_HUGE_2MB;
  mem->memfd_.reset(memfd_create("passage-ram", flags));
  if (!mem->memfd_.valid()) return ErrnoError("memfd_create for guest RAM");
  if (ftruncate(mem->memfd_.get(), static_cast<off_t>(options.ram_size)) != 0) {
    return ErrnoError(absl::StrCat("sizing guest RAM memfd to ", options.ram_size, " bytes"));
  }
  void* p = mmap(nullptr, options.ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                 mem->memfd_.get(), 0);
  if (p == MAP_FAILED) return ErrnoError("mmap of guest RAM");
  mem->base_ = static_cast<uint8_t*>(p);
  mem->ram_size_ = options.ram_size;
  // Guest RAM in core dumps is noise and can be large.
  madvise(p, options.ram_size, MADV_DONTDUMP);
  uint64_t offset = 0;
  for (const GuestRange& r : RamLayout(options.ram_size)) {
    mem->regions_.push_back({r.gpa, r.size, mem->base_ + offset, mem->memfd_.get(), offset});
    offset += r.size;
  }
  return mem;
}

GuestMemory::~GuestMemory() {
  {
    absl::MutexLock lock(&mu_);
    // Listeners must have been removed by their owners; tell any stragglers.
    for (auto it = listeners_.rbegin(); it != listeners_.rend(); ++it) {
      for (auto r = regions_.rbegin(); r != regions_.rend(); ++r) (*it)->OnRegionRemoved(*r);
    }
    listeners_.clear();
  }
  if (base_ != nullptr) munmap(base_, ram_size_);
}

absl::Status GuestMemory::AddListener(MemoryListener* listener) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < regions_.size(); ++i) {
    if (absl::Status s = listener->OnRegionAdded(regions_[i]); !s.ok()) {
      while (i-- > 0) listener->OnRegionRemoved(regions_[i]);
      return s;
    }
  }
  listeners_.push_back(listener);
  return absl::OkStatus();
}

void GuestMemory::RemoveListener(MemoryListener* listener) {
  absl::MutexLock lock(&mu_);
  auto it = std::find(listeners_.begin(), listeners_.end(), listener);
  if (it == listeners_.end()) return;
  listeners_.erase(it);
  for (auto r = regions_.rbegin(); r != regions_.rend(); ++r) listener->OnRegionRemoved(*r);
}

uint8_t* GuestMemory::HostAddress(uint64_t gpa, uint64_t len) const {
  for (const MemoryRegion& r : regions_) {
    if (gpa >= r.gpa && gpa < r.end() && len <= r.end() - gpa) return r.host + (gpa - r.gpa);
  }
  return nullptr;
}

absl::Status GuestMemory::Write(uint64_t gpa, std::span<const uint8_t> data) {
  uint8_t* p = HostAddress(gpa, data.size());
  if (p == nullptr) {
    return absl::OutOfRangeError(absl::StrCat("guest range 0x", absl::Hex(gpa), "+0x",
                                              absl::Hex(data.size()), " is not RAM"));
  }
  std::memcpy(p, data.data(), data.size());
  return absl::OkStatus();
}

absl::Status GuestMemory::Read(uint64_t gpa, std::span<uint8_t> data) const {
  const uint8_t* p = HostAddress(gpa, data.size());
  if (p == nullptr) {
    return absl::OutOfRangeError(absl::StrCat("guest range 0x", absl::Hex(gpa), "+0x",
                                              absl::Hex(data.size()), " is not RAM"));
  }
  std::memcpy(data.data(), p, data.size());
  return absl::OkStatus();
}

}  // namespace passage
