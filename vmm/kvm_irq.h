// InterruptController over KVM's in-kernel irqchip: the GSI routing table
// (KVM_SET_GSI_ROUTING), irqfds (KVM_IRQFD, with KVM_IRQFD_FLAG_RESAMPLE for
// level-triggered INTx) and KVM_IRQ_LINE.
//
// KVM_SET_GSI_ROUTING replaces the whole table, so this class keeps all of
// it: the routes KVM installs with KVM_CREATE_IRQCHIP (GSI 0-15 to the PICs
// and the IOAPIC, 16-23 to the IOAPIC; DefaultIrqRoutes) plus one MSI route
// per allocated GSI (24 and up).
#ifndef PASSAGE_VMM_KVM_IRQ_H_
#define PASSAGE_VMM_KVM_IRQ_H_

#include <linux/kvm.h>

#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/irq.h"

namespace passage {

inline constexpr uint32_t kIoapicPins = 24;

// The routing entries KVM_CREATE_IRQCHIP installs on x86.
std::vector<kvm_irq_routing_entry> DefaultIrqRoutes();

class KvmIrqRouting : public InterruptController {
 public:
  // `max_routes`: KVM_CAP_IRQ_ROUTING (the GSI count KVM accepts).
  KvmIrqRouting(int vm_fd, uint32_t max_routes) : vm_fd_(vm_fd), max_routes_(max_routes) {}

  absl::StatusOr<uint32_t> AllocateGsi() override ABSL_LOCKS_EXCLUDED(mu_);
  void ReleaseGsi(uint32_t gsi) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SetMsiRoute(uint32_t gsi, const MsiMessage& message) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status AttachIrqfd(uint32_t gsi, int eventfd, int resample_fd) override;
  absl::Status DetachIrqfd(uint32_t gsi, int eventfd) override;
  absl::Status SetLevel(uint32_t gsi, bool asserted) override;

 private:
  absl::Status Commit() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int vm_fd_;
  const uint32_t max_routes_;
  absl::Mutex mu_;
  std::map<uint32_t, bool> allocated_ ABSL_GUARDED_BY(mu_);  // GSIs handed out
  std::map<uint32_t, MsiMessage> msi_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage

#endif  // PASSAGE_VMM_KVM_IRQ_H_
