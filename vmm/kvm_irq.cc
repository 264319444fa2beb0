#include "vmm/kvm_irq.h"

#include "absl/strings/str_cat.h"
#include "vmm/kvm.h"

namespace passage {

std::vector<kvm_irq_routing_entry> DefaultIrqRoutes() {
  std::vector<kvm_irq_routing_entry> routes;
  for (uint32_t gsi = 0; gsi < kIoapicPins; ++gsi) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_IRQCHIP;
    e.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
    e.u.irqchip.pin = gsi;
    routes.push_back(e);
    if (gsi < 16) {
      e.u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
      e.u.irqchip.pin = gsi % 8;
      routes.push_back(e);
    }
  }
  return routes;
}

absl::Status KvmIrqRouting::Commit() {
  std::vector<kvm_irq_routing_entry> routes = DefaultIrqRoutes();
  for (const auto& [gsi, m] : msi_) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_MSI;
    e.u.msi.address_lo = static_cast<uint32_t>(m.address);
    e.u.msi.address_hi = static_cast<uint32_t>(m.address >> 32);
    e.u.msi.data = m.data;
    routes.push_back(e);
  }
  std::vector<uint8_t> buf(sizeof(kvm_irq_routing) + routes.size() * sizeof(kvm_irq_routing_entry));
  auto* table = reinterpret_cast<kvm_irq_routing*>(buf.data());
  table->nr = static_cast<uint32_t>(routes.size());
  std::copy(routes.begin(), routes.end(), table->entries);
  if (Ioctl(vm_fd_, KVM_SET_GSI_ROUTING, table) != 0) {
    return ErrnoError(absl::StrCat("KVM_SET_GSI_ROUTING (", routes.size(), " routes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> KvmIrqRouting::AllocateGsi() {
  absl::MutexLock lock(&mu_);
  for (uint32_t gsi = kIoapicPins; gsi < max_routes_; ++gsi) {
    if (allocated_.count(gsi) == 0) {
      allocated_[gsi] = false;
      return gsi;
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat("all ", max_routes_, " KVM GSIs are in use"));
}

void KvmIrqRouting::ReleaseGsi(uint32_t gsi) {
  absl::MutexLock lock(&mu_);
  if (allocated_.erase(gsi) == 0) return;
  if (msi_.erase(gsi) > 0) (void)Commit();
}

absl::Status KvmIrqRouting::SetMsiRoute(uint32_t gsi, const MsiMessage& message) {
  absl::MutexLock lock(&mu_);
  if (allocated_.count(gsi) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("GSI ", gsi, " was not allocated"));
  }
  auto old = msi_.find(gsi);
  std::optional<MsiMessage> previous;
  if (old != msi_.end()) previous = old->second;
  msi_[gsi] = message;
  absl::Status s = Commit();
  if (!s.ok()) {
    if (previous) msi_[gsi] = *previous; else msi_.erase(gsi);
  }
  return s;
}

absl::Status KvmIrqRouting::AttachIrqfd(uint32_t gsi, int eventfd, int resample_fd) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  if (resample_fd >= 0) {
    irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
    irqfd.resamplefd = static_cast<uint32_t>(resample_fd);
  }
  if (Ioctl(vm_fd_, KVM_IRQFD, &irqfd) != 0) {
    return ErrnoError(absl::StrCat("KVM_IRQFD for GSI ", gsi, resample_fd >= 0 ? " (resample)" : ""));
  }
  return absl::OkStatus();
}

absl::Status KvmIrqRouting::DetachIrqfd(uint32_t gsi, int eventfd) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
  if (Ioctl(vm_fd_, KVM_IRQFD, &irqfd) != 0) return ErrnoError(absl::StrCat("KVM_IRQFD deassign for GSI ", gsi));
  return absl::OkStatus();
}

absl::Status KvmIrqRouting::SetLevel(uint32_t gsi, bool asserted) {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = asserted ? 1 : 0;
  if (Ioctl(vm_fd_, KVM_IRQ_LINE, &irq) != 0) return ErrnoError(absl::StrCat("KVM_IRQ_LINE ", gsi));
  return absl::OkStatus();
}

}  // namespace passage
