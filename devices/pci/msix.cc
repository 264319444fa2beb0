#include "devices/pci/msix.h"

#include <linux/pci_regs.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "devices/guest_error.h"

namespace passage {
namespace {

bool AlignedDwordOrQword(uint64_t offset, size_t size) {
  return (size == 4 || size == 8) && offset % size == 0;
}

// Why an access of `size` bytes at `offset` into a structure of `limit`
// bytes is refused, or empty when it is well formed. An offset past the
// start (a wrapped subtraction: the access began before the structure)
// is shown signed.
std::string BadAccess(uint64_t offset, size_t size, uint64_t limit) {
  if (offset >= limit || size > limit - offset) {
    const int64_t signed_offset = static_cast<int64_t>(offset);
    return absl::StrCat(size, "-byte access at ", signed_offset < 0 ? "-0x" : "0x",
                        absl::Hex(signed_offset < 0 ? -static_cast<uint64_t>(signed_offset) : offset),
                        " is outside its 0x", absl::Hex(limit), " bytes");
  }
  if (!AlignedDwordOrQword(offset, size)) {
    return absl::StrCat(size, "-byte access at 0x", absl::Hex(offset),
                        " is not an aligned dword or qword");
  }
  return "";
}

}  // namespace

MsixCapability::MsixCapability(InterruptController& irq, std::string owner, const Layout& layout)
    : irq_(irq), owner_(std::move(owner)), layout_(layout) {
  absl::MutexLock lock(&mu_);
  vectors_.resize(layout.vectors);
}

absl::StatusOr<uint32_t> MsixCapability::AddTo(PciConfigSpace& config) {
  if (layout_.vectors == 0 || layout_.vectors > kMaxVectors || layout_.table_bar > 5 ||
      layout_.pba_bar > 5 || layout_.table_offset % 8 || layout_.pba_offset % 8) {
    return absl::InvalidArgumentError(absl::StrCat(owner_, ": bad MSI-X layout"));
  }
  absl::StatusOr<uint32_t> offset = config.AddCapability(PCI_CAP_ID_MSIX, kCapabilitySize);
  if (!offset.ok()) return offset.status();
  cap_offset_ = *offset;
  config.Set16(*offset + PCI_MSIX_FLAGS, static_cast<uint16_t>(layout_.vectors - 1));
  config.SetWritable(*offset + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  config.Set32(*offset + PCI_MSIX_TABLE, layout_.table_offset | layout_.table_bar);
  config.Set32(*offset + PCI_MSIX_PBA, layout_.pba_offset | layout_.pba_bar);
  return *offset;
}

void MsixCapability::AfterWrite(PciConfigSpace& config, uint32_t, uint32_t) {
  const uint16_t control = config.Get16(cap_offset_ + PCI_MSIX_FLAGS);
  absl::MutexLock lock(&mu_);
  enabled_ = control & PCI_MSIX_FLAGS_ENABLE;
  function_masked_ = control & PCI_MSIX_FLAGS_MASKALL;
  UpdateAll();
}

void MsixCapability::SetSource(MsiVectorSource* source) {
  absl::MutexLock lock(&mu_);
  source_ = source;
}

bool MsixCapability::Masked(const Vector& v) const { return v.masked || function_masked_; }

void MsixCapability::Update(uint16_t index) {
  Vector& v = vectors_[index];
  const bool deliverable = enabled_ && !Masked(v);
  if (absl::Status s = v.delivery.Update(irq_, source_, index, v.message, deliverable, v.pending);
      !s.ok()) {
    irq_.Fatal(absl::Status(s.code(), absl::StrCat(owner_, ": MSI-X vector ", index, ": ",
                                                   s.message())));
  }
}

void MsixCapability::UpdateAll() {
  for (size_t i = 0; i < vectors_.size(); ++i) Update(static_cast<uint16_t>(i));
}

bool MsixCapability::Notify(uint16_t vector) {
  absl::MutexLock lock(&mu_);
  if (!enabled_ || vector >= vectors_.size()) return false;
  Vector& v = vectors_[vector];
  if (Masked(v)) {
    v.pending = true;
  } else if (absl::Status s = v.delivery.Send(irq_, v.message); !s.ok()) {
    irq_.Fatal(absl::Status(s.code(), absl::StrCat(owner_, ": MSI-X vector ", vector, ": ",
                                                   s.message())));
  }
  return true;
}

uint32_t MsixCapability::TableDword(uint32_t index) const {
  const Vector& v = vectors_[index / 4];
  switch (index % 4) {
    case 0: return static_cast<uint32_t>(v.message.address);
    case 1: return static_cast<uint32_t>(v.message.address >> 32);
    case 2: return v.message.data;
    default: return v.masked ? PCI_MSIX_ENTRY_CTRL_MASKBIT : 0;
  }
}

void MsixCapability::WriteTableDword(uint32_t index, uint32_t value) {
  Vector& v = vectors_[index / 4];
  switch (index % 4) {
    case 0:
      v.message.address = (v.message.address & ~0xffffffffull) | value;
      break;
    case 1:
      v.message.address = (v.message.address & 0xffffffffull) | (uint64_t{value} << 32);
      break;
    case 2:
      v.message.data = value;
      break;
    default:
      v.masked = value & PCI_MSIX_ENTRY_CTRL_MASKBIT;  // other control bits are reserved
      break;
  }
  // Routes the vector now, not on the interrupt path; a deliverable vector
  // whose message changed is re-routed at once (its events bypass passage).
  Update(static_cast<uint16_t>(index / 4));
}

void MsixCapability::TableRead(uint64_t offset, std::span<uint8_t> data) {
  if (std::string bad = BadAccess(offset, data.size(), table_size()); !bad.empty()) {
    ReportGuestError(owner_, "msix-table", absl::StrCat("MSI-X table read: ", bad, "; reads ones"));
    std::memset(data.data(), 0xff, data.size());
    return;
  }
  absl::MutexLock lock(&mu_);
  const uint32_t index = static_cast<uint32_t>(offset / 4);
  uint64_t v = TableDword(index);
  if (data.size() == 8) v |= uint64_t{TableDword(index + 1)} << 32;
  StoreAccess(v, data);
}

void MsixCapability::TableWrite(uint64_t offset, std::span<const uint8_t> data) {
  if (std::string bad = BadAccess(offset, data.size(), table_size()); !bad.empty()) {
    ReportGuestError(owner_, "msix-table", absl::StrCat("MSI-X table write: ", bad, "; ignored"));
    return;
  }
  absl::MutexLock lock(&mu_);
  const uint32_t index = static_cast<uint32_t>(offset / 4);
  const uint64_t v = LoadAccess(data);
  WriteTableDword(index, static_cast<uint32_t>(v));
  if (data.size() == 8) WriteTableDword(index + 1, static_cast<uint32_t>(v >> 32));
}

void MsixCapability::PbaRead(uint64_t offset, std::span<uint8_t> data) {
  if (std::string bad = BadAccess(offset, data.size(), pba_size()); !bad.empty()) {
    ReportGuestError(owner_, "msix-pba", absl::StrCat("MSI-X PBA read: ", bad, "; reads ones"));
    std::memset(data.data(), 0xff, data.size());
    return;
  }
  absl::MutexLock lock(&mu_);
  uint64_t bits = 0;
  for (size_t i = 0; i < data.size() * 8; ++i) {
    const uint64_t vector = offset * 8 + i;
    if (vector < vectors_.size() && vectors_[vector].pending) bits |= 1ull << i;
  }
  StoreAccess(bits, data);
}

void MsixCapability::PbaWrite(uint64_t offset, std::span<const uint8_t> data) {
  ReportGuestError(owner_, "msix-pba",
                   absl::StrCat("MSI-X PBA write of ", data.size(), " bytes at 0x", absl::Hex(offset),
                                ": the PBA is read-only; ignored"));
}

bool MsixCapability::enabled() const {
  absl::MutexLock lock(&mu_);
  return enabled_;
}

bool MsixCapability::pending(uint16_t vector) const {
  absl::MutexLock lock(&mu_);
  return vector < vectors_.size() && vectors_[vector].pending;
}

bool MsixCapability::direct(uint16_t vector) const {
  absl::MutexLock lock(&mu_);
  return vector < vectors_.size() && vectors_[vector].delivery.direct();
}

int MsixCapability::irqfd(uint16_t vector) const {
  absl::MutexLock lock(&mu_);
  return vector < vectors_.size() ? vectors_[vector].delivery.irqfd() : -1;
}

void MsixBarHandler::Read(uint64_t offset, std::span<uint8_t> data) {
  const auto& l = msix_->layout();
  if (offset >= l.table_offset && offset - l.table_offset < msix_->table_size()) {
    msix_->TableRead(offset - l.table_offset, data);
  } else if (offset >= l.pba_offset && offset - l.pba_offset < msix_->pba_size()) {
    msix_->PbaRead(offset - l.pba_offset, data);
  } else {
    std::memset(data.data(), 0, data.size());
  }
}

void MsixBarHandler::Write(uint64_t offset, std::span<const uint8_t> data) {
  const auto& l = msix_->layout();
  // Writes to the gaps are dropped.
  if (offset >= l.table_offset && offset - l.table_offset < msix_->table_size()) {
    msix_->TableWrite(offset - l.table_offset, data);
  } else if (offset >= l.pba_offset && offset - l.pba_offset < msix_->pba_size()) {
    msix_->PbaWrite(offset - l.pba_offset, data);
  }
}

}  // namespace passage
