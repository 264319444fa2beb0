#include "devices/irq.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace passage {

absl::StatusOr<std::unique_ptr<MsiIrqfd>> MsiIrqfd::Create(InterruptController& irq,
                                                           const MsiMessage& message) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return ErrnoError("eventfd for an MSI vector");
  absl::StatusOr<uint32_t> gsi = irq.AllocateGsi();
  if (!gsi.ok()) return gsi.status();
  std::unique_ptr<MsiIrqfd> v(new MsiIrqfd(irq, *gsi, std::move(fd)));
  // From here the destructor releases the GSI on every failure path.
  if (absl::Status s = irq.SetMsiRoute(v->gsi_, message); !s.ok()) return s;
  v->message_ = message;
  if (absl::Status s = irq.AttachIrqfd(v->gsi_, v->eventfd_.get()); !s.ok()) return s;
  v->attached_ = true;
  return v;
}

MsiIrqfd::~MsiIrqfd() {
  if (attached_) (void)irq_.DetachIrqfd(gsi_, eventfd_.get());
  irq_.ReleaseGsi(gsi_);
}

absl::Status MsiIrqfd::Update(const MsiMessage& message) {
  if (message == message_) return absl::OkStatus();
  if (absl::Status s = irq_.SetMsiRoute(gsi_, message); !s.ok()) return s;
  message_ = message;
  return absl::OkStatus();
}

void MsiIrqfd::Trigger() {
  const uint64_t one = 1;
  // EAGAIN only when the counter is saturated: the interrupt is pending anyway.
  (void)!::write(eventfd_.get(), &one, sizeof(one));
}

}  // namespace passage
