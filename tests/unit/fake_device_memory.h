// A DeviceMemoryMapper that records the memslots BAR mmaps would become
// (KVM_SET_USER_MEMORY_REGION in vmm/kvm_memslots.cc), for tests without KVM.
#ifndef PASSAGE_TESTS_UNIT_FAKE_DEVICE_MEMORY_H_
#define PASSAGE_TESTS_UNIT_FAKE_DEVICE_MEMORY_H_

#include <cstdint>
#include <map>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/pci/pci_bar_mapper.h"
#include "tests/unit/fault_plan.h"

namespace passage::testing {

class FakeMapper : public DeviceMemoryMapper {
 public:
  absl::StatusOr<uint32_t> Map(uint64_t gpa, uint64_t size, void*) override {
    if (faults != nullptr) {
      if (int err = faults->Check("memslot")) return absl::ErrnoToStatus(err, "KVM_SET_USER_MEMORY_REGION");
    }
    absl::MutexLock lock(&mu);
    if (fail) return absl::ResourceExhaustedError("no memslot left");
    maps[next] = {gpa, size};
    return next++;
  }
  void Unmap(uint32_t handle) override {
    absl::MutexLock lock(&mu);
    maps.erase(handle);
  }
  size_t size() {
    absl::MutexLock lock(&mu);
    return maps.size();
  }
  absl::Mutex mu;
  bool fail = false;
  FaultPlan* faults = nullptr;  // when set, fails the Nth "memslot"
  std::map<uint32_t, std::pair<uint64_t, uint64_t>> maps;
  uint32_t next = 0;
};

}  // namespace passage::testing

#endif  // PASSAGE_TESTS_UNIT_FAKE_DEVICE_MEMORY_H_
