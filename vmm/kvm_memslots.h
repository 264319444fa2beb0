// Every KVM memslot of a VM, numbered by one allocator: guest RAM regions
// (as a MemoryListener of GuestMemory) and mmap'd device memory such as VFIO
// BAR pieces (as the PCI side's DeviceMemoryMapper). A slot number is the
// lowest free one, whoever asks; a deleted slot is free again.
#ifndef PASSAGE_VMM_KVM_MEMSLOTS_H_
#define PASSAGE_VMM_KVM_MEMSLOTS_H_

#include <linux/kvm.h>

#include <cstdint>
#include <functional>
#include <map>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/pci/pci_bar_mapper.h"
#include "memory/guest_memory.h"

namespace passage {

class KvmMemslots : public MemoryListener, public DeviceMemoryMapper {
 public:
  // KVM_SET_USER_MEMORY_REGION; returns 0 or -1 with errno. Tests replace it.
  using SetRegion = std::function<int(const kvm_userspace_memory_region&)>;

  // `slot_count`: KVM_CAP_NR_MEMSLOTS.
  KvmMemslots(int vm_fd, uint32_t slot_count);
  KvmMemslots(uint32_t slot_count, SetRegion set_region)
      : slot_count_(slot_count), set_region_(std::move(set_region)) {}
  ~KvmMemslots() override;  // deletes every slot still set

  // Guest RAM.
  absl::Status OnRegionAdded(const MemoryRegion& region) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnRegionRemoved(const MemoryRegion& region) override ABSL_LOCKS_EXCLUDED(mu_);
  // Device memory; the handle is the slot.
  absl::StatusOr<uint32_t> Map(uint64_t gpa, uint64_t size, void* host) override ABSL_LOCKS_EXCLUDED(mu_);
  void Unmap(uint32_t slot) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::StatusOr<uint32_t> Add(uint64_t gpa, uint64_t size, void* host, const char* what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Delete(uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint32_t slot_count_;
  const SetRegion set_region_;
  absl::Mutex mu_;
  std::map<uint32_t, uint64_t> slots_ ABSL_GUARDED_BY(mu_);  // slot -> gpa
};

}  // namespace passage

#endif  // PASSAGE_VMM_KVM_MEMSLOTS_H_
