#include "devices/irq.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace passage {

void InterruptController::Fatal(const absl::Status& status) {
  std::function<void(const absl::Status&)> handler;
  {
    absl::MutexLock lock(&fatal_mu_);
    handler = fatal_;
  }
  if (handler) {
    handler(status);
    return;
  }
  std::fprintf(stderr, "passage: %s\n", std::string(status.message()).c_str());
  std::exit(1);
}

void InterruptController::SetFatalHandler(std::function<void(const absl::Status&)> handler) {
  absl::MutexLock lock(&fatal_mu_);
  fatal_ = std::move(handler);
}

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

absl::Status MsiVectorDelivery::Route(InterruptController& irq, const MsiMessage& message) {
  if (route_ != nullptr) return route_->Update(message);
  absl::StatusOr<std::unique_ptr<MsiIrqfd>> route = MsiIrqfd::Create(irq, message);
  if (!route.ok()) return route.status();
  route_ = std::move(*route);
  return absl::OkStatus();
}

absl::Status MsiVectorDelivery::Update(InterruptController& irq, MsiVectorSource* source,
                                       uint16_t vector, const MsiMessage& message,
                                       bool deliverable, bool& pending) {
  if (!deliverable) {
    if (!direct_) return absl::OkStatus();
    direct_ = false;
    return source != nullptr ? source->Indirect(vector) : absl::OkStatus();
  }
  if (absl::Status s = Route(irq, message); !s.ok()) return s;
  bool queued = false;
  if (source != nullptr && !direct_) {
    absl::StatusOr<bool> q = source->Direct(vector, route_->eventfd());
    if (!q.ok()) return q.status();
    direct_ = true;
    queued = *q;
  }
  // At most one interrupt for everything that happened while masked.
  if (pending || queued) {
    pending = false;
    route_->Trigger();
  }
  return absl::OkStatus();
}

absl::Status MsiVectorDelivery::Send(InterruptController& irq, const MsiMessage& message) {
  if (absl::Status s = Route(irq, message); !s.ok()) return s;
  route_->Trigger();
  return absl::OkStatus();
}

void MsiIrqfd::Trigger() {
  const uint64_t one = 1;
  // EAGAIN only when the counter is saturated: the interrupt is pending anyway.
  (void)!::write(eventfd_.get(), &one, sizeof(one));
}

}  // namespace passage
