// The VM's PCI side, assembled: bus 0 with the host bridge at 00:00.0,
// configuration access through ports 0xCF8-0xCFF and ECAM, the BAR windows,
// and the -device devices (explicit addr= first, then the others in the
// lowest free slots, in command-line order). At run time whole slots come
// and go (HotAdd, Remove: device_add, and the guest's eject after
// device_del), through the same device registry.
//
// Threads: Create and the set-up calls on the VM's thread; HotAdd, Remove
// and the queries on one thread at a time (the event loop's) once the VM
// runs. vCPUs reach the devices only through the bus and the I/O buses.
#ifndef PASSAGE_VMM_PCI_PLATFORM_H_
#define PASSAGE_VMM_PCI_PLATFORM_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/acpi/acpi_pci.h"
#include "devices/io_bus.h"
#include "devices/irq.h"
#include "devices/pci/pci_bar_allocator.h"
#include "devices/pci/pci_bar_mapper.h"
#include "devices/pci/pci_bus.h"
#include "memory/guest_memory.h"
#include "vmm/config.h"
#include "vmm/device_config.h"

namespace passage {

// What the guest-visible descriptions (ACPI, -dump-dtb) need of a function.
struct PciFunctionInfo {
  PciAddress address;
  std::string name;   // "host-bridge", "virtio-rng-pci,id=rng0"
  PciIds ids;
  uint32_t intx_gsi = 0;  // 0: no INTx pin
  std::string id;        // the device's id= ("" when none, and the host bridge)
  std::string qom_path;  // QEMU's: "/machine/peripheral/ID", "/machine/peripheral-anon/device[N]"
  bool hotplugged = false;
  struct Bar {
    int index = 0;
    PciBarKind kind = PciBarKind::kMem32;
    bool prefetchable = false;
    uint64_t address = 0;  // in the BAR register now (the guest may move it)
    uint64_t size = 0;
    bool decoding = false;  // mapped: memory/I/O decoding on (ROM: enabled)
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

  // device_add: builds `config` through the device registry (a fd= it
  // names is taken from `fds`), puts it at addr= (function 0 of a free slot
  // 1-31) or in the lowest free slot, places its BARs avoiding what the
  // guest decodes now, and wires its interrupts. Returns the slot. On an
  // error nothing stays: no bus entry, BAR range, memslot, route or open fd.
  absl::StatusOr<uint8_t> HotAdd(const DeviceConfig& config, PassedFds& fds)
      ABSL_LOCKS_EXCLUDED(records_mu_);
  // The guest ejected `slot`: its functions leave the bus, their BAR ranges
  // return to the windows (memslots go), and each is destroyed (VFIO:
  // interrupts off, reset, detached from its DMA space, closed; a legacy
  // container with no device left closes). Returns what was there. Slot 0
  // and an empty slot are errors.
  absl::StatusOr<std::vector<PciFunctionInfo>> Remove(uint8_t slot) ABSL_LOCKS_EXCLUDED(records_mu_);
  // The function whose id= or QOM path is `name`.
  std::optional<PciFunctionInfo> Find(const std::string& name) const ABSL_LOCKS_EXCLUDED(records_mu_);
  // A VM started without a passthrough side gets one at its first
  // object-add or vfio-pci device_add.
  void set_passthrough(Passthrough* passthrough) { deps_.passthrough = passthrough; }

  PciBus& bus() { return *bus_; }
  const PciWindows& windows() const { return windows_; }
  InterruptController& irq() { return *deps_.irq; }
  std::vector<PciFunctionInfo> Describe() const ABSL_LOCKS_EXCLUDED(records_mu_);
  // For the ACPI tables: ECAM (bus 0 only), windows, INTx routing of every slot.
  acpi::PciHostInfo AcpiInfo() const;
  // The ECAM part the MCFG covers (and e820 must reserve): bus 0's 1 MiB.
  static constexpr uint64_t kEcamBusSize = 1ull << 20;

 private:
  PciPlatform(const PciWindows& windows, const Deps& deps) : windows_(windows), deps_(deps) {}
  absl::Status AddDevice(const DeviceConfig& config, const PciAddress& address)
      ABSL_LOCKS_EXCLUDED(records_mu_);
  // How queries and DEVICE_DELETED name a function.
  struct Record {
    std::string id;
    std::string qom_path;
    bool hotplugged = false;
  };
  Record MakeRecord(const DeviceConfig& config, bool hotplugged) ABSL_EXCLUSIVE_LOCKS_REQUIRED(records_mu_);

  const PciWindows windows_;
  Deps deps_;
  std::unique_ptr<PciBarAllocator> allocator_;
  std::unique_ptr<PciBarMapper> mapper_;
  std::unique_ptr<PciBus> bus_;
  bool ports_registered_ = false;
  bool ecam_registered_ = false;
  mutable absl::Mutex records_mu_;
  std::map<uint8_t, Record> records_ ABSL_GUARDED_BY(records_mu_);  // by devfn
  int anon_devices_ ABSL_GUARDED_BY(records_mu_) = 0;
};

}  // namespace passage

#endif  // PASSAGE_VMM_PCI_PLATFORM_H_
