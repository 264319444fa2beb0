// DeviceMemoryMapper over KVM memslots: mmap'd BAR pieces (VFIO regions)
// become guest-physical memory. Slots are taken from the top of KVM's slot
// range down, so they never meet the RAM slots KvmMemslots numbers from 0.
#ifndef PASSAGE_VMM_KVM_DEVICE_MEMORY_H_
#define PASSAGE_VMM_KVM_DEVICE_MEMORY_H_

#include <cstdint>
#include <map>

#include "absl/synchronization/mutex.h"
#include "devices/pci/pci_bar_mapper.h"

namespace passage {

class KvmDeviceMemory : public DeviceMemoryMapper {
 public:
  // `slot_count`: KVM_CAP_NR_MEMSLOTS.
  KvmDeviceMemory(int vm_fd, uint32_t slot_count) : vm_fd_(vm_fd), slot_count_(slot_count) {}
  ~KvmDeviceMemory() override;

  absl::StatusOr<uint32_t> Map(uint64_t gpa, uint64_t size, void* host) override ABSL_LOCKS_EXCLUDED(mu_);
  void Unmap(uint32_t slot) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const int vm_fd_;
  const uint32_t slot_count_;
  absl::Mutex mu_;
  std::map<uint32_t, uint64_t> slots_ ABSL_GUARDED_BY(mu_);  // slot -> gpa
};

}  // namespace passage

#endif  // PASSAGE_VMM_KVM_DEVICE_MEMORY_H_
