// The VM's PCI side, assembled: bus 0 with the host bridge at 00:00.0,
// configuration access through ports 0xCF8-0xCFF and ECAM, the BAR windows,
// and the -device devices (explicit addr= first, then the others in the
// lowest free slots, in command-line order).
#ifndef PASSAGE_VMM_PCI_PLATFORM_H_
#define PASSAGE_VMM_PCI_PLATFORM_H_

#include <cstdint>
#include <functional>
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

// Builds a device for a -device the platform does not know itself.
using PciDeviceFactory =
    std::function<absl::StatusOr<std::shared_ptr<PciDevice>>(const DeviceConfig&, InterruptController&)>;

class PciPlatform {
 public:
  struct Deps {
    GuestMemory* memory = nullptr;
    IoBus* pio = nullptr;
    IoBus* mmio = nullptr;
    InterruptController* irq = nullptr;
    DeviceMemoryMapper* device_memory = nullptr;  // may be null
    // Builds the drivers this file does not know (vfio-pci, from the
    // passthrough side); may be empty.
    PciDeviceFactory create_device;
  };

  // Builds the platform on `deps` (which must outlive it).
  static absl::StatusOr<std::unique_ptr<PciPlatform>> Create(const VmConfig& config, const Deps& deps);
  // The same over KVM: GSI routing and irqfds, device memslots.
  static absl::StatusOr<std::unique_ptr<PciPlatform>> CreateForKvm(
      const VmConfig& config, int vm_fd, GuestMemory& memory, IoBus& pio, IoBus& mmio,
      PciDeviceFactory create_device = {});
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
  static absl::StatusOr<std::unique_ptr<PciPlatform>> Build(
      const VmConfig& config, const Deps& deps, std::unique_ptr<InterruptController> owned_irq,
      std::unique_ptr<DeviceMemoryMapper> owned_device_memory);
  absl::Status AddDevice(const DeviceConfig& config, const PciAddress& address);

  const PciWindows windows_;
  Deps deps_;
  std::unique_ptr<InterruptController> owned_irq_;
  std::unique_ptr<DeviceMemoryMapper> owned_device_memory_;
  std::unique_ptr<PciBarAllocator> allocator_;
  std::unique_ptr<PciBarMapper> mapper_;
  std::unique_ptr<PciBus> bus_;
  bool ports_registered_ = false;
  bool ecam_registered_ = false;
};

// Opens what a -device needs and builds it (the device registry's runtime
// half; vmm/device_config.cc is the parsing half).
absl::StatusOr<std::shared_ptr<PciDevice>> CreatePciDevice(const DeviceConfig& config,
                                                           const PciPlatform::Deps& deps);

}  // namespace passage

#endif  // PASSAGE_VMM_PCI_PLATFORM_H_
