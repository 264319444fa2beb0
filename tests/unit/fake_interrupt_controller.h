// An InterruptController that records what devices ask of KVM: GSIs, MSI
// routes, irqfds (with their resample fds) and line levels. Tests read an
// irqfd's counter to see whether an interrupt was delivered.
#ifndef PASSAGE_TESTS_UNIT_FAKE_INTERRUPT_CONTROLLER_H_
#define PASSAGE_TESTS_UNIT_FAKE_INTERRUPT_CONTROLLER_H_

#include <unistd.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "devices/irq.h"
#include "tests/unit/fault_plan.h"

namespace passage::testing {

class FakeInterruptController : public InterruptController {
 public:
  // When set, fails the Nth "gsi_alloc", "msi_route" or "irqfd".
  FaultPlan* faults = nullptr;

  absl::StatusOr<uint32_t> AllocateGsi() override {
    if (int err = Injected("gsi_alloc")) return absl::ErrnoToStatus(err, "KVM_SET_GSI_ROUTING");
    const uint32_t gsi = next_gsi_++;
    allocated.insert(gsi);
    return gsi;
  }
  void ReleaseGsi(uint32_t gsi) override {
    allocated.erase(gsi);
    routes.erase(gsi);
  }
  absl::Status SetMsiRoute(uint32_t gsi, const MsiMessage& message) override {
    if (!allocated.count(gsi)) return absl::NotFoundError(absl::StrCat("gsi ", gsi));
    if (int err = Injected("msi_route")) return absl::ErrnoToStatus(err, "KVM_SET_GSI_ROUTING");
    routes[gsi] = message;
    return absl::OkStatus();
  }
  absl::Status AttachIrqfd(uint32_t gsi, int eventfd, int resample_fd) override {
    if (irqfds.count(eventfd)) return absl::AlreadyExistsError("irqfd attached twice");
    if (int err = Injected("irqfd")) return absl::ErrnoToStatus(err, "KVM_IRQFD");
    irqfds[eventfd] = {gsi, resample_fd};
    return absl::OkStatus();
  }
  absl::Status DetachIrqfd(uint32_t, int eventfd) override {
    if (irqfds.erase(eventfd) == 0) return absl::NotFoundError("irqfd not attached");
    return absl::OkStatus();
  }
  absl::Status SetLevel(uint32_t gsi, bool asserted) override {
    levels[gsi] = asserted;
    return absl::OkStatus();
  }
  // Recorded instead of stopping a VM.
  void Fatal(const absl::Status& status) override {
    absl::MutexLock lock(&fatal_mu_);
    fatal_.push_back(std::string(status.message()));
  }
  std::vector<std::string> fatal() {
    absl::MutexLock lock(&fatal_mu_);
    return fatal_;
  }
  // The GSI an irqfd eventfd is attached to, or 0.
  uint32_t GsiOfIrqfd(int eventfd) const {
    auto it = irqfds.find(eventfd);
    return it == irqfds.end() ? 0 : it->second.gsi;
  }

  // Interrupts delivered through the irqfd of `gsi` since the last call.
  uint64_t TakeDeliveries(uint32_t gsi) {
    uint64_t total = 0;
    for (auto& [fd, irqfd] : irqfds) {
      if (irqfd.gsi != gsi) continue;
      uint64_t count = 0;
      if (read(fd, &count, sizeof(count)) == sizeof(count)) total += count;
    }
    return total;
  }
  // The GSI whose route carries `message`, or 0.
  uint32_t GsiFor(const MsiMessage& message) const {
    for (auto& [gsi, m] : routes) {
      if (m == message) return gsi;
    }
    return 0;
  }

  struct Irqfd {
    uint32_t gsi;
    int resample_fd;
  };
  std::set<uint32_t> allocated;
  std::map<uint32_t, MsiMessage> routes;
  std::map<int, Irqfd> irqfds;  // by eventfd
  std::map<uint32_t, bool> levels;

 private:
  int Injected(const char* call) { return faults == nullptr ? 0 : faults->Check(call); }
  uint32_t next_gsi_ = 24;
  absl::Mutex fatal_mu_;
  std::vector<std::string> fatal_ ABSL_GUARDED_BY(fatal_mu_);
};

}  // namespace passage::testing

#endif  // PASSAGE_TESTS_UNIT_FAKE_INTERRUPT_CONTROLLER_H_
