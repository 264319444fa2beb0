// The VM's PCI side, assembled: bus 0 with the host bridge at 00:00.0,
// configuration access through ports 0xCF8-0xCFF and ECAM, the BAR windows,
// and the -device devices (explicit addr= first, then the others in the
// lowest free slots, in command-line order).
#ifndef PASSAGE_VMM_PCI_PLATFORM_H_
#define PASSAGE_VMM_PCI_PLATFORM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "devices/acpi/acpi_pci.h"
#include "devices/io_bus.h"
#include "devices/irq.h"
#include "devices/pci/pci_bar_allocator.h"
#include "devices/pci/pci_bar_mapper.h"
#include "devices/pci/pci_bus.h"
#include "memory/guest_memory.h"
#include "vmm/config.h"

namespace passage {

// What the guest-visible descriptions (ACPI, -dump-dtb) need of a function.
struct PciFunctionInfo {
  PciAddress address;
  std::string name;   // "host-bridge", "virtio-rng-pci,id=rng0"
  PciIds ids;
  uint32_t intx_gsi = 0;  // 0: no INTx pin
  struct Bar {
    int index = 0;
    PciBarKind kind = PciBarKind::kMem32;
    bool prefetchable = false;
    uint64_t address = 0;
    uint64_t size = 0;
  };
  std::vector<Bar> bars;
};

class Passthrough;
class PassedFds;

class PciPlatform {
 public:
  struct Deps {
    GuestMemory* memory = nullptr;
    IoBus* pio = nullptr;
    IoBus* mmio = nullptr;
    InterruptController* irq = nullptr;
    DeviceMemoryMapper* device_memory = nullptr;  // may be null
    Passthrough* passthrough = nullptr;  // may be null: no vfio-pci then
    PassedFds* fds = nullptr;  // the command line's fds; may be null: no fd= then
  };

  // Builds the platform on `deps` (which must outlive it); every -device
  // through the device registry (vmm/device_registry.h).
  static absl::StatusOr<std::unique_ptr<PciPlatform>> Create(const VmConfig& config, const Deps& deps);
  ~PciPlatform();

  PciBus& bus() { return *bus_; }
  const PciWindows& windows() const { return windows_; }
  InterruptController& irq() { return *deps_.irq; }
  std::vector<PciFunctionInfo> Describe() const;
  // For the ACPI tables: ECAM (bus 0 only), windows, INTx routing of every slot.
  acpi::PciHostInfo AcpiInfo() const;
  // The ECAM part the MCFG covers (and e820 must reserve): bus 0's 1 MiB.
  static constexpr uint64_t kEcamBusSize = 1ull << 20;

 private:
  PciPlatform(const PciWindows& windows, const Deps& deps) : windows_(windows), deps_(deps) {}
  absl::Status AddDevice(const DeviceConfig& config, const PciAddress& address);

  const PciWindows windows_;
  Deps deps_;
  std::unique_ptr<PciBarAllocator> allocator_;
  std::unique_ptr<PciBarMapper> mapper_;
  std::unique_ptr<PciBus> bus_;
  bool ports_registered_ = false;
  bool ecam_registered_ = false;
};

}  // namespace passage

#endif  // PASSAGE_VMM_PCI_PLATFORM_H_
