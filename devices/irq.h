// Interrupt delivery, one mechanism for every device: GSIs with MSI routes
// fed by irqfds (MSI, MSI-X, later VFIO), and legacy level-triggered lines
// (PCI INTx on IOAPIC pins). Implemented over KVM in vmm/kvm_irq.h and by a
// fake in the unit tests.
#ifndef PASSAGE_DEVICES_IRQ_H_
#define PASSAGE_DEVICES_IRQ_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
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

  // A device could not wire an interrupt at run time (a GSI, route or irqfd
  // failed), so the guest would lose interrupts without knowing: the VM
  // must stop with `status`. Any thread. The VM installs the handler (its
  // stop request) before it runs; without one the failure is printed and
  // the process exits with status 1.
  virtual void Fatal(const absl::Status& status) ABSL_LOCKS_EXCLUDED(fatal_mu_);
  void SetFatalHandler(std::function<void(const absl::Status&)> handler)
      ABSL_LOCKS_EXCLUDED(fatal_mu_);

 private:
  absl::Mutex fatal_mu_;
  std::function<void(const absl::Status&)> fatal_ ABSL_GUARDED_BY(fatal_mu_);
};

// A vector's interrupt source when it can signal an irqfd by itself (a VFIO
// device: VFIO_DEVICE_SET_IRQS per vector). The capability points it at the
// vector's irqfd while the vector can be delivered (enabled, unmasked): KVM
// then injects without passage. Otherwise it points at passage, which hands
// each event to the capability's Notify (setting the pending bit).
class MsiVectorSource {
 public:
  virtual ~MsiVectorSource() = default;
  // From now on `vector` signals `irqfd`. True when an event had reached
  // passage's path and was not handed to Notify yet: the caller delivers it
  // once (it is consumed).
  virtual absl::StatusOr<bool> Direct(uint16_t vector, int irqfd) = 0;
  // From now on `vector` signals passage (Notify).
  virtual absl::Status Indirect(uint16_t vector) = 0;
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

// One MSI or MSI-X vector's delivery, the mechanism both capabilities share:
// the irqfd route (created on first use, re-routed when the message changes)
// and, with a source that can signal the irqfd itself, which path events
// take. Not thread-safe: the owning capability holds its lock.
class MsiVectorDelivery {
 public:
  // Makes the vector's delivery match its state. `deliverable` (enabled and
  // unmasked): the route carries `message`, the source signals the irqfd
  // directly, and a pending event (`pending`, or one the source had queued
  // for passage) is sent once and `pending` cleared. Otherwise the source
  // signals passage. Errors: the route could not be made or the source not
  // redirected.
  absl::Status Update(InterruptController& irq, MsiVectorSource* source, uint16_t vector,
                      const MsiMessage& message, bool deliverable, bool& pending);
  // Sends one interrupt with `message` now (an event that came through
  // passage while the vector is deliverable).
  absl::Status Send(InterruptController& irq, const MsiMessage& message);
  // Whether events currently go from the source straight into the irqfd.
  bool direct() const { return direct_; }
  // The irqfd's eventfd, or -1 before the first route.
  int irqfd() const { return route_ ? route_->eventfd() : -1; }

 private:
  // Creates the route on first use, otherwise re-routes it to `message`.
  absl::Status Route(InterruptController& irq, const MsiMessage& message);

  std::unique_ptr<MsiIrqfd> route_;
  bool direct_ = false;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_IRQ_H_
