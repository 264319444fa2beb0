// A function's configuration space (4 KiB, PCIe-sized) with per-byte masks
// saying which bits the guest may write and which clear when written with 1.
// The one mechanism every PCI device uses for guest config writes.
#ifndef PASSAGE_DEVICES_PCI_PCI_CONFIG_SPACE_H_
#define PASSAGE_DEVICES_PCI_PCI_CONFIG_SPACE_H_

#include <array>
#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"

namespace passage {

class PciConfigSpace {
 public:
  static constexpr uint32_t kSize = 4096;        // with PCIe extended space
  static constexpr uint32_t kLegacySize = 256;   // the part CF8/CFC reaches
  static constexpr uint32_t kFirstCapability = 0x40;
  // At most (4096 - 256) / 4 extended capabilities fit: bounds a looped chain.
  static constexpr uint32_t kMaxExtHops = (kSize - kLegacySize) / 4;

  // True when a guest access of `size` bytes at `offset` is well formed:
  // size 1, 2 or 4, naturally aligned, inside the 4 KiB space.
  static bool ValidAccess(uint32_t offset, uint32_t size);

  // Guest side. Malformed accesses read all-ones and write nothing.
  uint32_t Read(uint32_t offset, uint32_t size) const;
  // Per bit: writable bits take the new value, write-1-to-clear bits clear
  // where `value` has a 1, everything else stays.
  void Write(uint32_t offset, uint32_t size, uint32_t value);

  // Device side: ignore the masks. Offsets must be in range (checked).
  uint8_t Get8(uint32_t offset) const;
  uint16_t Get16(uint32_t offset) const;
  uint32_t Get32(uint32_t offset) const;
  void Set8(uint32_t offset, uint8_t value);
  void Set16(uint32_t offset, uint16_t value);
  void Set32(uint32_t offset, uint32_t value);
  // Masks for `size` bytes (1, 2 or 4) at `offset`, little-endian like the data.
  void SetWritable(uint32_t offset, uint32_t size, uint32_t mask);
  void SetWriteOneToClear(uint32_t offset, uint32_t size, uint32_t mask);

  // Appends a capability of `size` bytes (header included) to the list at
  // 0x34, sets the status register's capability bit, and returns its offset.
  // The body is zero and read-only until the caller sets values and masks.
  absl::StatusOr<uint32_t> AddCapability(uint8_t id, uint32_t size);
  // Appends a PCIe extended capability (from 0x100).
  absl::StatusOr<uint32_t> AddExtendedCapability(uint16_t id, uint8_t version, uint32_t size);
  // True when every byte of [offset, offset+size) lies outside the standard
  // header and outside every capability laid out so far: space the guest was
  // shown nothing in (a hidden capability of a passed-through function, or
  // plain unimplemented space).
  bool OutsideCapabilities(uint32_t offset, uint32_t size) const;
  // Offset of the first capability with `id`, walking the list as a guest would.
  std::optional<uint32_t> FindCapability(uint8_t id) const;
  // The same for the extended list at 0x100 (a header of 0 ends it).
  std::optional<uint32_t> FindExtendedCapability(uint16_t id) const;

 private:
  std::array<uint8_t, kSize> data_{};
  std::array<uint8_t, kSize> writable_{};
  std::array<uint8_t, kSize> w1c_{};
  uint32_t next_cap_ = kFirstCapability;    // first free byte for a capability
  uint32_t last_cap_ = 0;                   // offset of the last capability
  uint32_t next_ext_cap_ = kLegacySize;
  uint32_t last_ext_cap_ = 0;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_PCI_CONFIG_SPACE_H_
