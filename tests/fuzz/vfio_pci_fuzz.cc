// A guest against a passed-through PCI function: a vfio-pci device built
// through the PCI platform and the passthrough side (-object iommufd,
// -device vfio-pci) over the unit tests' fake kernel, then any sequence of
// guest accesses: configuration space through ports 0xCF8/0xCFC and ECAM
// (the virtualized header, BAR sizing and moves, the capability list, MSI
// and MSI-X control), the BARs wherever the guest put them (the trapped
// MSI-X table and PBA, trapped I/O, the expansion ROM), and the windows.
// The device's own config space is first bent by the input too (a broken
// capability chain, odd vector counts, a table outside its BAR): a device
// or its firmware is not trusted either.
//
// Checked: nothing crashes; the guest cannot change the IDs it sees; the
// capability list it walks ends, with only MSI, MSI-X and PCI Express on
// it; and after teardown the fake kernel holds no fd, no mapping, no
// binding, no interrupt, and no memslot or irqfd is left.
//
// Input: 4 header bytes: flags (bit 0 BAR0 mmap-able, bit 1 MSI-X table
// mmap-able, bit 2 a ROM, bit 3 function reset), MSI-X vectors VFIO offers
// (% 16), MSI vectors VFIO offers (% 8), pokes (% 16); then 3 bytes per
// poke (config offset u16 % 4096, value); then steps of 14 bytes: kind,
// size (1 << n), address (4 bytes), value (8 bytes).
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <map>

#include "memory/memory_map.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/unit/fake_interrupt_controller.h"
#include "tests/unit/fake_kernel.h"
#include "vmm/passthrough.h"
#include "vmm/pci_platform.h"

namespace {

using passage::testing::FakeKernel;
using passage::testing::FakeVfioPci;

constexpr uint8_t kSlot = 5;
constexpr uint32_t kMsixTable = 0x2000, kPba = 0x3000;

// BAR pieces the guest maps as memslots; counted, never touched.
class CountingMapper : public passage::DeviceMemoryMapper {
 public:
  absl::StatusOr<uint32_t> Map(uint64_t, uint64_t, void*) override {
    ++live;
    return next++;
  }
  void Unmap(uint32_t) override { --live; }
  int live = 0;
  uint32_t next = 0;
};

void Put16(std::vector<uint8_t>& c, uint32_t off, uint16_t v) {
  c[off] = static_cast<uint8_t>(v);
  c[off + 1] = static_cast<uint8_t>(v >> 8);
}
void Put32(std::vector<uint8_t>& c, uint32_t off, uint32_t v) {
  Put16(c, off, static_cast<uint16_t>(v));
  Put16(c, off + 2, static_cast<uint16_t>(v >> 16));
}

// An NVMe-like function: BAR0 64-bit 16 KiB with the MSI-X table and PBA,
// BAR2 8 I/O ports, BAR4 64-bit prefetchable 1 MiB; capabilities MSI-X,
// vendor-specific (hidden), PCI Express, MSI; an AER extended capability
// (hidden); INTx.
void Describe(FakeVfioPci& d, const uint8_t* header) {
  auto& c = d.config;
  Put16(c, PCI_VENDOR_ID, 0x1b36);
  Put16(c, PCI_DEVICE_ID, 0x0010);
  Put32(c, PCI_CLASS_REVISION, 0x01080202);
  Put16(c, PCI_STATUS, PCI_STATUS_CAP_LIST);
  Put32(c, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_TYPE_64);
  Put32(c, PCI_BASE_ADDRESS_2, PCI_BASE_ADDRESS_SPACE_IO);
  Put32(c, PCI_BASE_ADDRESS_4, PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
  c[PCI_INTERRUPT_PIN] = 1;
  c[PCI_CAPABILITY_LIST] = 0x40;
  c[0x40] = PCI_CAP_ID_MSIX;
  c[0x41] = 0x50;
  Put16(c, 0x42, 7);  // 8 vectors
  Put32(c, 0x44, kMsixTable);
  Put32(c, 0x48, kPba);
  c[0x50] = PCI_CAP_ID_VNDR;
  c[0x51] = 0x60;
  c[0x60] = PCI_CAP_ID_EXP;
  c[0x61] = 0xa0;
  Put16(c, 0x62, 0x0002);
  c[0xa0] = PCI_CAP_ID_MSI;
  Put16(c, 0xa2, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (3 << 1));
  Put32(c, 0x100, PCI_EXT_CAP_ID_ERR | (1 << 16));  // AER, version 1, last
  const uint8_t flags = header[0];
  const uint32_t rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  d.regions[VFIO_PCI_CONFIG_REGION_INDEX] = {rw, 4096, {}, false};
  d.regions[VFIO_PCI_BAR0_REGION_INDEX] = {
      rw | ((flags & 1) ? VFIO_REGION_INFO_FLAG_MMAP : 0), 0x4000, {}, (flags & 2) != 0};
  d.regions[VFIO_PCI_BAR2_REGION_INDEX] = {rw, 8, {}, false};
  d.regions[VFIO_PCI_BAR4_REGION_INDEX] = {rw | VFIO_REGION_INFO_FLAG_MMAP, 0x100000, {}, false};
  if (flags & 4) {
    d.rom.assign(0x1000, 0);
    d.rom[0] = 0x55;
    d.rom[1] = 0xaa;
    d.regions[VFIO_PCI_ROM_REGION_INDEX] = {VFIO_REGION_INFO_FLAG_READ, 0x1000, {}, false};
  }
  d.resettable = (flags & 8) != 0;
  d.irq_counts[VFIO_PCI_INTX_IRQ_INDEX] = 1;
  d.irq_counts[VFIO_PCI_MSIX_IRQ_INDEX] = header[1] % 16;
  d.irq_counts[VFIO_PCI_MSI_IRQ_INDEX] = header[2] % 8;
}

uint32_t ConfigRead(passage::IoBus& mmio, uint32_t reg, size_t len = 4) {
  uint8_t b[4] = {0, 0, 0, 0};
  mmio.Read(passage::kEcamStart + (uint64_t{kSlot} << 15) + reg, std::span<uint8_t>(b, len));
  uint32_t v;
  std::memcpy(&v, b, 4);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace passage;
  if (size < 4) return 0;
  static EventLoop* loop = new EventLoop();
  static GuestMemory* memory = GuestMemory::Create({64 * kMiB, false})->release();
  static const CommandLine* cl = new CommandLine(
      *ParseCommandLine({"-kernel", "k", "-m", "64M", "-object", "iommufd,id=iommufd0", "-device",
                         "vfio-pci,host=0000:00:05.0,iommufd=iommufd0,id=nvme0,addr=5"}));

  FakeKernel kernel;
  FakeVfioPci dev;
  Describe(dev, data);
  size_t at = 4;
  for (int i = 0; i < data[3] % 16 && at + 3 <= size; ++i, at += 3) {
    uint16_t off;
    std::memcpy(&off, data + at, 2);
    dev.config[off % 4096] = data[at + 2];
  }
  const uint32_t ids = static_cast<uint32_t>(dev.config[0] | dev.config[1] << 8 |
                                             dev.config[2] << 16 | dev.config[3] << 24);
  kernel.AddVfioPciSysfs("0000:00:05.0", "vfio0", "5", &dev);
  const int vm_fd = kernel.AddFd(FakeKernel::Kind::kKvmVm);
  testing::FakeInterruptController irq;
  CountingMapper mapper;
  IoBus pio("pio"), mmio("mmio");
  {
    absl::StatusOr<std::unique_ptr<Passthrough>> passthrough =
        Passthrough::Create(cl->config.object_configs, *memory, *loop, vm_fd, &kernel);
    FUZZ_FAIL_IF(!passthrough.ok());
    absl::StatusOr<std::unique_ptr<PciPlatform>> platform = PciPlatform::Create(
        cl->config, {memory, &pio, &mmio, &irq, &mapper, passthrough->get(), nullptr});
    if (platform.ok()) {
      const PciWindows w = (*platform)->windows();
      constexpr size_t kStep = 14;
      for (; at + kStep <= size; at += kStep) {
        const uint8_t kind = data[at];
        const size_t len = size_t{1} << (data[at + 1] % 4);
        uint32_t a;
        std::memcpy(&a, data + at + 2, 4);
        uint8_t value[8];
        std::memcpy(value, data + at + 6, 8);
        std::span<uint8_t> v(value, len);
        IoBus* bus = &mmio;
        uint64_t addr = 0;
        switch (kind % 6) {
          case 0:  // the config ports
            bus = &pio;
            addr = 0xcf8 + a % 8;
            break;
          case 1:  // ECAM: the device's function 0, sometimes anywhere
            addr = kEcamStart +
                   ((a & 0x80000000u) ? a % kEcamSize : (uint64_t{kSlot} << 15) + a % 4096);
            break;
          case 2: {  // a BAR (6, 7: the ROM) where the guest put it
            const uint32_t bar = std::min(a & 7, 6u);
            const uint32_t reg = bar == 6 ? PCI_ROM_ADDRESS : PCI_BASE_ADDRESS_0 + 4 * bar;
            const uint32_t lo = ConfigRead(mmio, reg);
            uint64_t base = lo;
            if (bar < 6 && (lo & PCI_BASE_ADDRESS_SPACE_IO)) {
              bus = &pio;
              base &= PCI_BASE_ADDRESS_IO_MASK;
            } else {
              base &= bar == 6 ? PCI_ROM_ADDRESS_MASK : PCI_BASE_ADDRESS_MEM_MASK;
              if (bar < 5 &&
                  (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64) {
                base |= uint64_t{ConfigRead(mmio, reg + 4)} << 32;
              }
            }
            addr = base + (a >> 3) % 0x4000;
            break;
          }
          case 3:  // the memory windows
            addr =
                (a & 1) ? w.mmio64.gpa + (a >> 1) % 0x200000 : w.mmio32.gpa + (a >> 1) % 0x200000;
            break;
          case 4:  // the I/O window
            bus = &pio;
            addr = w.io.gpa + a % w.io.size;
            break;
          default: {  // decode on or off, bus master: the steps before BARs and MSI-X work
            uint8_t cmd[2] = {static_cast<uint8_t>(value[0] & 7), 0};
            mmio.Write(kEcamStart + (uint64_t{kSlot} << 15) + PCI_COMMAND, cmd);
            continue;
          }
        }
        if (kind & 0x80) {
          bus->Write(addr, v);
        } else {
          bus->Read(addr, v);
        }
      }
      // The IDs are the device's, whatever the guest wrote.
      FUZZ_FAIL_IF(ConfigRead(mmio, PCI_VENDOR_ID) != ids);
      // The capability list ends, with only what passage shows on it.
      uint32_t pos = ConfigRead(mmio, PCI_CAPABILITY_LIST, 1);
      int caps = 0;
      for (; pos != 0; pos = ConfigRead(mmio, pos + 1, 1)) {
        FUZZ_FAIL_IF(++caps > 48 || pos < 0x40 || pos > 0xfc);
        const uint32_t id = ConfigRead(mmio, pos, 1);
        FUZZ_FAIL_IF(id != PCI_CAP_ID_MSI && id != PCI_CAP_ID_MSIX && id != PCI_CAP_ID_EXP);
      }
    }
  }  // teardown: the platform (its devices) first, then the passthrough side
  kernel.Close(vm_fd);
  FUZZ_FAIL_IF(kernel.open_fds() != 0 || !kernel.mapped.empty() || dev.bound_iommufd != -1);
  FUZZ_FAIL_IF(!dev.irq_eventfds.empty() || !irq.irqfds.empty() || !irq.allocated.empty());
  FUZZ_FAIL_IF(mapper.live != 0 || !kernel.kvm_vfio_files.empty());
  return 0;
}
