#include "devices/pci/msi.h"

#include <linux/pci_regs.h>

#include "absl/strings/str_cat.h"
#include "devices/guest_error.h"

namespace passage {

MsiCapability::MsiCapability(InterruptController& irq, std::string owner, uint8_t log2_vectors)
    : irq_(irq), owner_(std::move(owner)), log2_vectors_(log2_vectors) {
  absl::MutexLock lock(&mu_);
  vectors_.resize(1u << std::min<uint8_t>(log2_vectors, 5));
}

absl::StatusOr<uint32_t> MsiCapability::AddTo(PciConfigSpace& config) {
  if (log2_vectors_ > 5) return absl::InvalidArgumentError(absl::StrCat(owner_, ": more than 32 MSI vectors"));
  absl::StatusOr<uint32_t> offset = config.AddCapability(PCI_CAP_ID_MSI, kCapabilitySize);
  if (!offset.ok()) return offset.status();
  const uint32_t o = cap_offset_ = *offset;
  config.Set16(o + PCI_MSI_FLAGS, static_cast<uint16_t>(PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT |
                                                        (log2_vectors_ << 1)));
  config.SetWritable(o + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
  config.SetWritable(o + PCI_MSI_ADDRESS_LO, 4, 0xfffffffc);
  config.SetWritable(o + PCI_MSI_ADDRESS_HI, 4, 0xffffffff);
  config.SetWritable(o + PCI_MSI_DATA_64, 2, 0xffff);
  const uint32_t vectors = 1u << log2_vectors_;
  config.SetWritable(o + PCI_MSI_MASK_64, 4, vectors == 32 ? 0xffffffffu : (1u << vectors) - 1);
  return o;
}

void MsiCapability::BeforeRead(PciConfigSpace& config) {
  absl::MutexLock lock(&mu_);
  config.Set32(cap_offset_ + PCI_MSI_PENDING_64, pending_);
}

void MsiCapability::AfterWrite(PciConfigSpace& config, uint32_t offset, uint32_t size) {
  const uint32_t o = cap_offset_;
  const uint16_t control = config.Get16(o + PCI_MSI_FLAGS);
  absl::MutexLock lock(&mu_);
  enabled_ = control & PCI_MSI_FLAGS_ENABLE;
  // Software may not enable more than the device asked for; clamp if it does.
  const uint8_t asked = static_cast<uint8_t>((control & PCI_MSI_FLAGS_QSIZE) >> 4);
  const uint8_t log2 = std::min<uint8_t>(asked, log2_vectors_);
  if (asked > log2_vectors_ && offset < o + PCI_MSI_FLAGS + 2 && o + PCI_MSI_FLAGS < offset + size) {
    ReportGuestError(owner_, "msi",
                     absl::StrCat("MSI multiple message enable asks for ", 1u << asked,
                                  " vectors, the function has ", 1u << log2_vectors_, "; clamped"));
  }
  count_ = static_cast<uint16_t>(1u << log2);
  message_.address = config.Get32(o + PCI_MSI_ADDRESS_LO) |
                     (uint64_t{config.Get32(o + PCI_MSI_ADDRESS_HI)} << 32);
  message_.data = config.Get16(o + PCI_MSI_DATA_64);
  mask_ = config.Get32(o + PCI_MSI_MASK_64);
  for (uint16_t v = 0; v < vectors_.size(); ++v) {
    const bool deliverable = enabled_ && v < count_ && !(mask_ >> v & 1);
    bool pending = pending_ >> v & 1;
    absl::Status s = vectors_[v].Update(irq_, source_, v, Message(v), deliverable, pending);
    if (!pending) pending_ &= ~(1u << v);
    if (!s.ok()) Fail(v, s);
  }
}

void MsiCapability::SetSource(MsiVectorSource* source) {
  absl::MutexLock lock(&mu_);
  source_ = source;
}

MsiMessage MsiCapability::Message(uint16_t vector) const {
  MsiMessage m = message_;
  m.data = (m.data & ~(count_ - 1u)) | vector;
  return m;
}

void MsiCapability::Fail(uint16_t vector, const absl::Status& s) {
  irq_.Fatal(absl::Status(s.code(), absl::StrCat(owner_, ": MSI vector ", vector, ": ", s.message())));
}

bool MsiCapability::Notify(uint16_t vector) {
  absl::MutexLock lock(&mu_);
  if (!enabled_ || vector >= count_) return false;
  if (mask_ >> vector & 1) {
    pending_ |= 1u << vector;
  } else if (absl::Status s = vectors_[vector].Send(irq_, Message(vector)); !s.ok()) {
    Fail(vector, s);
  }
  return true;
}

bool MsiCapability::direct(uint16_t vector) const {
  absl::MutexLock lock(&mu_);
  return vector < vectors_.size() && vectors_[vector].direct();
}

bool MsiCapability::enabled() const {
  absl::MutexLock lock(&mu_);
  return enabled_;
}

uint16_t MsiCapability::enabled_vectors() const {
  absl::MutexLock lock(&mu_);
  return count_;
}

}  // namespace passage
