#include "devices/pci/pci_config_space.h"

#include <linux/pci_regs.h>

#include <cassert>

#include "absl/strings/str_cat.h"

namespace passage {

bool PciConfigSpace::ValidAccess(uint32_t offset, uint32_t size) {
  return (size == 1 || size == 2 || size == 4) && offset % size == 0 && offset < kSize &&
         size <= kSize - offset;
}

uint32_t PciConfigSpace::Read(uint32_t offset, uint32_t size) const {
  if (!ValidAccess(offset, size)) return 0xffffffffu;
  uint32_t v = 0;
  for (uint32_t i = 0; i < size; ++i) v |= static_cast<uint32_t>(data_[offset + i]) << (8 * i);
  return v;
}

void PciConfigSpace::Write(uint32_t offset, uint32_t size, uint32_t value) {
  if (!ValidAccess(offset, size)) return;
  for (uint32_t i = 0; i < size; ++i) {
    const uint8_t in = static_cast<uint8_t>(value >> (8 * i));
    const uint32_t o = offset + i;
    uint8_t b = static_cast<uint8_t>((data_[o] & ~writable_[o]) | (in & writable_[o]));
    b = static_cast<uint8_t>(b & ~(in & w1c_[o]));
    data_[o] = b;
  }
}

uint8_t PciConfigSpace::Get8(uint32_t offset) const {
  assert(offset < kSize);
  return offset < kSize ? data_[offset] : 0xff;
}
uint16_t PciConfigSpace::Get16(uint32_t offset) const {
  return static_cast<uint16_t>(Get8(offset) | (Get8(offset + 1) << 8));
}
uint32_t PciConfigSpace::Get32(uint32_t offset) const {
  return Get16(offset) | (static_cast<uint32_t>(Get16(offset + 2)) << 16);
}
void PciConfigSpace::Set8(uint32_t offset, uint8_t value) {
  assert(offset < kSize);
  if (offset < kSize) data_[offset] = value;
}
void PciConfigSpace::Set16(uint32_t offset, uint16_t value) {
  Set8(offset, static_cast<uint8_t>(value));
  Set8(offset + 1, static_cast<uint8_t>(value >> 8));
}
void PciConfigSpace::Set32(uint32_t offset, uint32_t value) {
  Set16(offset, static_cast<uint16_t>(value));
  Set16(offset + 2, static_cast<uint16_t>(value >> 16));
}

void PciConfigSpace::SetWritable(uint32_t offset, uint32_t size, uint32_t mask) {
  assert(size <= 4 && offset + size <= kSize);
  for (uint32_t i = 0; i < size && offset + i < kSize; ++i) {
    writable_[offset + i] = static_cast<uint8_t>(mask >> (8 * i));
  }
}

void PciConfigSpace::SetWriteOneToClear(uint32_t offset, uint32_t size, uint32_t mask) {
  assert(size <= 4 && offset + size <= kSize);
  for (uint32_t i = 0; i < size && offset + i < kSize; ++i) {
    w1c_[offset + i] = static_cast<uint8_t>(mask >> (8 * i));
  }
}

absl::StatusOr<uint32_t> PciConfigSpace::AddCapability(uint8_t id, uint32_t size) {
  if (size < 2 || size > kLegacySize - next_cap_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "capability 0x", absl::Hex(id), " (", size, " bytes) does not fit in config space"));
  }
  const uint32_t offset = next_cap_;
  Set8(offset + PCI_CAP_LIST_ID, id);
  Set8(offset + PCI_CAP_LIST_NEXT, 0);
  if (last_cap_ == 0) {
    Set8(PCI_CAPABILITY_LIST, static_cast<uint8_t>(offset));
  } else {
    Set8(last_cap_ + PCI_CAP_LIST_NEXT, static_cast<uint8_t>(offset));
  }
  Set16(PCI_STATUS, Get16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
  last_cap_ = offset;
  next_cap_ = (offset + size + 3) & ~3u;
  return offset;
}

absl::StatusOr<uint32_t> PciConfigSpace::AddExtendedCapability(uint16_t id, uint8_t version,
                                                               uint32_t size) {
  if (size < 4 || size > kSize - next_ext_cap_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "extended capability 0x", absl::Hex(id), " (", size, " bytes) does not fit"));
  }
  const uint32_t offset = next_ext_cap_;
  Set32(offset, id | (static_cast<uint32_t>(version & 0xf) << 16));
  if (last_ext_cap_ != 0) {
    Set32(last_ext_cap_, (Get32(last_ext_cap_) & 0x000fffffu) | (offset << 20));
  }
  last_ext_cap_ = offset;
  next_ext_cap_ = (offset + size + 3) & ~3u;
  return offset;
}

bool PciConfigSpace::OutsideCapabilities(uint32_t offset, uint32_t size) const {
  // Capabilities are laid out back to back from kFirstCapability and from
  // kLegacySize: what was shown ends at next_cap_ and next_ext_cap_.
  auto overlaps = [offset, size](uint32_t start, uint32_t end) {
    return offset < end && start < offset + size;
  };
  return !overlaps(0, next_cap_) && !overlaps(kLegacySize, next_ext_cap_);
}

std::optional<uint32_t> PciConfigSpace::FindExtendedCapability(uint16_t id) const {
  for (uint32_t offset = kLegacySize, hops = 0; offset >= kLegacySize && hops < kMaxExtHops; ++hops) {
    const uint32_t header = Get32(offset);
    if (header == 0) break;
    if ((header & 0xffff) == id) return offset;
    offset = header >> 20 & ~3u;
  }
  return std::nullopt;
}

std::optional<uint32_t> PciConfigSpace::FindCapability(uint8_t id) const {
  if (!(Get16(PCI_STATUS) & PCI_STATUS_CAP_LIST)) return std::nullopt;
  uint32_t offset = Get8(PCI_CAPABILITY_LIST) & ~3u;
  // At most 48 capabilities fit in 192 bytes: bounds a malformed loop.
  for (int i = 0; i < 48 && offset >= kFirstCapability; ++i) {
    if (Get8(offset + PCI_CAP_LIST_ID) == id) return offset;
    offset = Get8(offset + PCI_CAP_LIST_NEXT) & ~3u;
  }
  return std::nullopt;
}

}  // namespace passage
