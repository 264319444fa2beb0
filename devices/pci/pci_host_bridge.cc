#include "devices/pci/pci_host_bridge.h"

#include <cstring>

namespace passage {
namespace {

constexpr uint32_t kEnable = 1u << 31;

uint32_t Load32(std::span<const uint8_t> data) { return static_cast<uint32_t>(LoadAccess(data)); }

}  // namespace

PciHostBridge::PciHostBridge()
    : PciDevice("host-bridge", {.vendor = kVendor, .device = kDevice, .class_code = 0x060000}) {}

void PciConfigPorts::Read(uint64_t offset, std::span<uint8_t> data) {
  if (offset < 4) {
    // Only a dword access at 0xCF8 is the address register; other sizes
    // there belong to other (absent) hardware.
    absl::MutexLock lock(&mu_);
    if (offset == 0 && data.size() == 4) {
      StoreAccess(address_, data);
    } else {
      std::memset(data.data(), 0xff, data.size());
    }
    return;
  }
  const uint32_t byte = static_cast<uint32_t>(offset - 4);
  uint32_t address;
  {
    absl::MutexLock lock(&mu_);
    address = address_;
  }
  if (!(address & kEnable) || data.size() > 4) {
    std::memset(data.data(), 0xff, data.size());
    return;
  }
  StoreAccess(bus_.ConfigRead(static_cast<uint8_t>(address >> 16), static_cast<uint8_t>(address >> 8),
                        (address & 0xfc) + byte, static_cast<uint32_t>(data.size())),
        data);
}

void PciConfigPorts::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset < 4) {
    if (offset == 0 && data.size() == 4) {
      absl::MutexLock lock(&mu_);
      // Reserved bits 30:24 and the type bits 1:0 read as zero.
      address_ = Load32(data) & 0x80fffffcu;
    }
    return;
  }
  const uint32_t byte = static_cast<uint32_t>(offset - 4);
  uint32_t address;
  {
    absl::MutexLock lock(&mu_);
    address = address_;
  }
  if (!(address & kEnable) || data.size() > 4) return;
  bus_.ConfigWrite(static_cast<uint8_t>(address >> 16), static_cast<uint8_t>(address >> 8),
                   (address & 0xfc) + byte, static_cast<uint32_t>(data.size()), Load32(data));
}

void PciEcam::Read(uint64_t offset, std::span<uint8_t> data) {
  const uint32_t reg = static_cast<uint32_t>(offset & 0xfff);
  const uint8_t devfn = static_cast<uint8_t>(offset >> 12);
  const uint8_t bus = static_cast<uint8_t>(offset >> 20);
  if (data.size() == 8 && reg % 8 == 0) {
    // A qword read as two dwords, as a host bridge would split it.
    const uint32_t lo = bus_.ConfigRead(bus, devfn, reg, 4);
    const uint32_t hi = bus_.ConfigRead(bus, devfn, reg + 4, 4);
    StoreAccess(lo, data.first(4));
    StoreAccess(hi, data.subspan(4));
    return;
  }
  if (!PciConfigSpace::ValidAccess(reg, static_cast<uint32_t>(data.size()))) {
    std::memset(data.data(), 0xff, data.size());
    return;
  }
  StoreAccess(bus_.ConfigRead(bus, devfn, reg, static_cast<uint32_t>(data.size())), data);
}

void PciEcam::Write(uint64_t offset, std::span<const uint8_t> data) {
  const uint32_t reg = static_cast<uint32_t>(offset & 0xfff);
  const uint8_t devfn = static_cast<uint8_t>(offset >> 12);
  const uint8_t bus = static_cast<uint8_t>(offset >> 20);
  if (data.size() == 8 && reg % 8 == 0) {
    bus_.ConfigWrite(bus, devfn, reg, 4, Load32(data.first(4)));
    bus_.ConfigWrite(bus, devfn, reg + 4, 4, Load32(data.subspan(4)));
    return;
  }
  if (!PciConfigSpace::ValidAccess(reg, static_cast<uint32_t>(data.size()))) return;
  bus_.ConfigWrite(bus, devfn, reg, static_cast<uint32_t>(data.size()), Load32(data));
}

}  // namespace passage
