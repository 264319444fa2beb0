#include "vmm/kvm_memslots.h"

#include "absl/strings/str_cat.h"
#include "vmm/kvm.h"

namespace passage {

KvmMemslots::KvmMemslots(int vm_fd, uint32_t slot_count)
    : slot_count_(slot_count), set_region_([vm_fd](const kvm_userspace_memory_region& r) {
        return Ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
      }) {}

KvmMemslots::~KvmMemslots() {
  absl::MutexLock lock(&mu_);
  while (!slots_.empty()) Delete(slots_.begin()->first);
}

absl::StatusOr<uint32_t> KvmMemslots::Add(uint64_t gpa, uint64_t size, void* host, const char* what) {
  uint32_t slot = 0;
  while (slot < slot_count_ && slots_.count(slot) > 0) ++slot;
  if (slot >= slot_count_) {
    return absl::ResourceExhaustedError(absl::StrCat("no free KVM memslot for ", what, " at 0x", absl::Hex(gpa),
                                                     " (all ", slot_count_, " in use)"));
  }
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = gpa;
  r.memory_size = size;
  r.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (set_region_(r) != 0) {
    return ErrnoError(absl::StrCat("KVM_SET_USER_MEMORY_REGION for ", what, " at 0x", absl::Hex(gpa), "+0x",
                                   absl::Hex(size)));
  }
  slots_[slot] = gpa;
  return slot;
}

void KvmMemslots::Delete(uint32_t slot) {
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = it->second;  // memory_size 0 deletes the slot
  (void)set_region_(r);
  slots_.erase(it);
}

absl::Status KvmMemslots::OnRegionAdded(const MemoryRegion& region) {
  absl::MutexLock lock(&mu_);
  return Add(region.gpa, region.size, region.host, "RAM").status();
}

void KvmMemslots::OnRegionRemoved(const MemoryRegion& region) {
  absl::MutexLock lock(&mu_);
  for (const auto& [slot, gpa] : slots_) {
    if (gpa == region.gpa) return Delete(slot);
  }
}

absl::StatusOr<uint32_t> KvmMemslots::Map(uint64_t gpa, uint64_t size, void* host) {
  absl::MutexLock lock(&mu_);
  return Add(gpa, size, host, "device memory");
}

void KvmMemslots::Unmap(uint32_t slot) {
  absl::MutexLock lock(&mu_);
  Delete(slot);
}

}  // namespace passage
