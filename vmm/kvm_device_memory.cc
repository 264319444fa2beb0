#include "vmm/kvm_device_memory.h"

#include <linux/kvm.h>

#include "absl/strings/str_cat.h"
#include "vmm/kvm.h"

namespace passage {
namespace {

// RAM takes the lowest slots; leave it plenty of room.
constexpr uint32_t kReservedForRam = 32;

}  // namespace

KvmDeviceMemory::~KvmDeviceMemory() {
  absl::MutexLock lock(&mu_);
  for (const auto& [slot, gpa] : slots_) {
    kvm_userspace_memory_region r{};
    r.slot = slot;
    r.guest_phys_addr = gpa;
    (void)Ioctl(vm_fd_, KVM_SET_USER_MEMORY_REGION, &r);
  }
}

absl::StatusOr<uint32_t> KvmDeviceMemory::Map(uint64_t gpa, uint64_t size, void* host) {
  absl::MutexLock lock(&mu_);
  uint32_t slot = slot_count_;
  while (slot > kReservedForRam && slots_.count(slot - 1) > 0) --slot;
  if (slot <= kReservedForRam) return absl::ResourceExhaustedError("no free KVM memslot for device memory");
  --slot;
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = gpa;
  r.memory_size = size;
  r.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (Ioctl(vm_fd_, KVM_SET_USER_MEMORY_REGION, &r) != 0) {
    return ErrnoError(absl::StrCat("KVM_SET_USER_MEMORY_REGION for device memory at 0x", absl::Hex(gpa),
                                   "+0x", absl::Hex(size)));
  }
  slots_[slot] = gpa;
  return slot;
}

void KvmDeviceMemory::Unmap(uint32_t slot) {
  absl::MutexLock lock(&mu_);
  auto it = slots_.find(slot);
  if (it == slots_.end()) return;
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.guest_phys_addr = it->second;  // memory_size 0 deletes the slot
  (void)Ioctl(vm_fd_, KVM_SET_USER_MEMORY_REGION, &r);
  slots_.erase(it);
}

}  // namespace passage
