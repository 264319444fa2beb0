// The VM's platform, described as data (PlatformDescription) and written as
// a flattened device tree for -dump-dtb. The tree is for people and tools
// inspecting a VM (the x86 guest itself learns the platform from ACPI and
// boot_params). Layout:
//   /                        compatible "passage,x86-64-vm", #address/size-cells 2
//   /chosen                  bootargs, linux,initrd-start/-end, stdout-path,
//                            passage,kernel, passage,boot-protocol, passage,entry
//   /cpus/cpu@N              reg = APIC ID
//   /memory@ADDR             one per RAM region
//   /reserved-memory/NAME@ADDR  e820 ranges that are not RAM (no-map,
//                            passage,e820-type)
//   /acpi                    passage,rsdp and reg = the tables' region
//   /interrupt-controller@fec00000, /local-apic@fee00000
//   /isa/NAME@iPORT          port-I/O devices (ISA binding: reg = <1 port size>)
//   /NAME@ADDR               MMIO devices
//   /pci@ECAM                PCI bus 0 (pci-host-ecam-generic binding: reg =
//                            ECAM, ranges = the I/O, 32-bit and 64-bit BAR
//                            windows); one child per function, NAME@SLOT[,FN],
//                            with reg/assigned-addresses per the PCI binding,
//                            vendor-id, device-id, class-code, interrupts (INTx
//                            GSI), passage,bdf and passage,bars (readable BARs)
// Later issues add passthrough details to the /pci children (host device,
// iommufd object) and /passage (VMM objects such as iommufd instances).
#ifndef PASSAGE_VMM_PLATFORM_FDT_H_
#define PASSAGE_VMM_PLATFORM_FDT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "memory/memory_map.h"
#include "vmm/e820.h"

namespace passage {

struct PlatformDevice {
  enum class Bus { kPort, kMmio };
  std::string name;        // node name without the unit address, e.g. "serial"
  std::string compatible;  // e.g. "ns16550a"
  Bus bus = Bus::kPort;
  uint64_t base = 0;
  uint64_t size = 0;
  int irq = -1;            // IOAPIC input (GSI), -1 for none
  bool irq_level_high = false;  // level-triggered, active high; else edge, rising
};

// A PCI function on bus 0, for /pci@ECAM (see below).
struct PlatformPciFunction {
  std::string name;    // node name, e.g. "virtio-rng-pci", "host-bridge"
  std::string label;   // how messages name it: "virtio-rng-pci,id=rng0"
  uint8_t slot = 0;
  uint8_t function = 0;
  uint16_t vendor = 0;
  uint16_t device = 0;
  uint32_t class_code = 0;
  int irq = -1;        // INTx GSI, -1 for none
  struct Bar {
    static constexpr int kRomIndex = 6;  // the expansion ROM (PciDevice::kRomBar)
    int index = 0;
    enum class Kind { kIo, kMem32, kMem64 } kind = Kind::kMem32;
    bool prefetchable = false;
    uint64_t address = 0;
    uint64_t size = 0;
  };
  std::vector<Bar> bars;
};

struct PlatformDescription {
  int cpus = 1;
  std::vector<GuestRange> ram;
  std::vector<E820Entry> reserved;  // e820 entries other than RAM
  uint64_t ioapic_addr = 0;
  uint32_t ioapic_gsi_base = 0;
  uint64_t lapic_addr = 0;
  std::vector<PlatformDevice> devices;
  struct Pci {
    uint64_t ecam_base = 0;         // 0: no PCI
    uint64_t ecam_size = 0;         // bus 0 only
    uint16_t config_port = 0;       // 0xCF8, 8 ports
    GuestRange io, mmio32, mmio64;  // BAR windows
    std::vector<PlatformPciFunction> functions;
  } pci;
  std::string stdout_device;        // name of the console device ("serial"), if any
  struct Acpi {
    uint64_t rsdp = 0;              // 0: no ACPI
    uint64_t base = 0;
    uint64_t size = 0;
  } acpi;
  struct Boot {
    std::string kernel;             // -kernel path
    std::string protocol;           // "linux-64bit", "flat-real" or "flat-long"
    uint64_t entry = 0;             // first instruction
    std::string cmdline;
    std::string initrd;             // -initrd path
    uint64_t initrd_addr = 0;
    uint64_t initrd_size = 0;
  } boot;
};

// The flattened device tree blob. Fails only if libfdt does.
absl::StatusOr<std::vector<uint8_t>> BuildPlatformFdt(const PlatformDescription& platform);

// Builds the blob and writes it to `path`; errors name -dump-dtb.
absl::Status WritePlatformFdt(const PlatformDescription& platform, const std::string& path);

}  // namespace passage

#endif  // PASSAGE_VMM_PLATFORM_FDT_H_
