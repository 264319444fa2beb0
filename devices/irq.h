// Interrupt delivery, one mechanism for every device: GSIs with MSI routes
// fed by irqfds (MSI, MSI-X, later VFIO), and legacy level-triggered lines
// (PCI INTx on IOAPIC pins). Implemented over KVM in vmm/kvm_irq.h and by a
// fake in the unit tests.
#ifndef PASSAGE_DEVICES_IRQ_H_
#define PASSAGE_DEVICES_IRQ_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "memory/unique_fd.h"

namespace passage {

// An MSI write: the address/data pair a device would put on the bus.
struct MsiMessage {
  uint64_t address = 0;
  uint32_t data = 0;
  bool operator==(const MsiMessage&) const = default;
};

class InterruptController {
 public:
  virtual ~InterruptController() = default;

  // A GSI above the legacy IOAPIC pins, not yet routed anywhere.
  virtual absl::StatusOr<uint32_t> AllocateGsi() = 0;
  // Drops the GSI's route; its irqfds must already be detached.
  virtual void ReleaseGsi(uint32_t gsi) = 0;
  // Routes an allocated GSI to an MSI (replacing its previous route).
  virtual absl::Status SetMsiRoute(uint32_t gsi, const MsiMessage& message) = 0;
  // A write to `eventfd` triggers `gsi`. With `resample_fd` >= 0 the GSI is
  // level-triggered: the line stays asserted until the guest EOIs, and then
  // `resample_fd` is signalled (VFIO INTx).
  virtual absl::Status AttachIrqfd(uint32_t gsi, int eventfd, int resample_fd = -1) = 0;
  virtual absl::Status DetachIrqfd(uint32_t gsi, int eventfd) = 0;
  // Drives a legacy interrupt line (an IOAPIC pin) high or low.
  virtual absl::Status SetLevel(uint32_t gsi, bool asserted) = 0;
};

// One MSI vector delivered through an irqfd: a GSI routed to `message` and an
// eventfd attached to it. Undone (irqfd detached, GSI released) on
// destruction. Trigger() is safe from any thread.
class MsiIrqfd {
 public:
  static absl::StatusOr<std::unique_ptr<MsiIrqfd>> Create(InterruptController& irq,
                                                           const MsiMessage& message);
  ~MsiIrqfd();
  MsiIrqfd(const MsiIrqfd&) = delete;
  MsiIrqfd& operator=(const MsiIrqfd&) = delete;

  // Re-routes the GSI when the message changed.
  absl::Status Update(const MsiMessage& message);
  void Trigger();
  uint32_t gsi() const { return gsi_; }
  int eventfd() const { return eventfd_.get(); }
  const MsiMessage& message() const { return message_; }

 private:
  MsiIrqfd(InterruptController& irq, uint32_t gsi, UniqueFd eventfd)
      : irq_(irq), gsi_(gsi), eventfd_(std::move(eventfd)) {}

  InterruptController& irq_;
  const uint32_t gsi_;
  UniqueFd eventfd_;
  MsiMessage message_;
  bool attached_ = false;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_IRQ_H_
