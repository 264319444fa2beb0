// The host bridge at 00:00.0 and the two ways into configuration space:
//   - ports 0xCF8 (address, dword accesses only) / 0xCFC-0xCFF (data),
//     PCI configuration mechanism #1: first 256 bytes of each function;
//   - ECAM (PCIe MMCONFIG) at memory/memory_map.h kEcamStart: bus 0 decoded,
//     offset = bus << 20 | slot << 15 | function << 12 | register, 4 KiB each.
// The bridge reports 8086:29c0, the ID QEMU's q35 uses for its host bridge
// (Intel 82G33 DRAM controller), class 06:00:00: guests know it needs no
// driver, and Linux's type-1 probe accepts a host-bridge class at 00:00.0.
#ifndef PASSAGE_DEVICES_PCI_PCI_HOST_BRIDGE_H_
#define PASSAGE_DEVICES_PCI_PCI_HOST_BRIDGE_H_

#include <cstdint>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "devices/io_bus.h"
#include "devices/pci/pci_bus.h"
#include "devices/pci/pci_device.h"

namespace passage {

class PciHostBridge : public PciDevice {
 public:
  static constexpr uint16_t kVendor = 0x8086;
  static constexpr uint16_t kDevice = 0x29c0;
  PciHostBridge();
};

// Ports 0xCF8-0xCFF.
class PciConfigPorts : public IoHandler {
 public:
  static constexpr uint64_t kBase = 0xcf8;
  static constexpr uint64_t kSize = 8;

  explicit PciConfigPorts(PciBus& bus) : bus_(bus) {}
  void Read(uint64_t offset, std::span<uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);
  void Write(uint64_t offset, std::span<const uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  PciBus& bus_;
  absl::Mutex mu_;
  uint32_t address_ ABSL_GUARDED_BY(mu_) = 0;
};

// The ECAM window (all 256 buses' worth; buses other than 0 are empty).
class PciEcam : public IoHandler {
 public:
  explicit PciEcam(PciBus& bus) : bus_(bus) {}
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  PciBus& bus_;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_PCI_HOST_BRIDGE_H_
