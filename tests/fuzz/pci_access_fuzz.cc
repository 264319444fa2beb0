// A guest's view of the PCI platform: the input is a sequence of accesses
// (config ports, ECAM, the MMIO and I/O windows, guest RAM that rings live
// in) against a host bridge and two virtio-rng-pci functions.
#include <cstdint>
#include <cstring>

#include "devices/irq.h"
#include "tests/fuzz/fuzz_check.h"
#include "vmm/pci_platform.h"

namespace {

// Routes and irqfds accepted, nothing delivered.
class NullIrq : public passage::InterruptController {
 public:
  absl::StatusOr<uint32_t> AllocateGsi() override { return next_++; }
  void ReleaseGsi(uint32_t) override {}
  absl::Status SetMsiRoute(uint32_t, const passage::MsiMessage&) override {
    return absl::OkStatus();
  }
  absl::Status AttachIrqfd(uint32_t, int, int) override { return absl::OkStatus(); }
  absl::Status DetachIrqfd(uint32_t, int) override { return absl::OkStatus(); }
  absl::Status SetLevel(uint32_t, bool) override { return absl::OkStatus(); }

 private:
  uint32_t next_ = 24;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace passage;
  static GuestMemory* memory = GuestMemory::Create({16 * kMiB, false})->release();
  static const CommandLine* cl = new CommandLine(
      *ParseCommandLine({"-kernel", "k", "-m", "16M", "-device", "virtio-rng-pci,addr=3", "-device",
                         "virtio-rng-pci,addr=3.1,filename=/dev/zero"}));
  IoBus pio("pio"), mmio("mmio");
  NullIrq irq;
  auto platform = PciPlatform::Create(cl->config, {memory, &pio, &mmio, &irq, nullptr, {}});
  FUZZ_FAIL_IF(!platform.ok());
  const PciWindows w = (*platform)->windows();
  // Each access: kind, size, address (4 bytes), value (8 bytes).
  const size_t kStep = 14;
  for (size_t at = 0; at + kStep <= size; at += kStep) {
    const uint8_t kind = data[at];
    const size_t len = size_t{1} << (data[at + 1] % 4);
    uint32_t a;
    std::memcpy(&a, data + at + 2, 4);
    uint8_t value[8];
    std::memcpy(value, data + at + 6, 8);
    std::span<uint8_t> v(value, len);
    const bool write = kind & 0x80;
    IoBus* bus = &mmio;
    uint64_t addr = 0;
    switch (kind % 6) {
      case 0:
        bus = &pio;
        addr = 0xcf8 + a % 8;
        break;
      case 1:
        addr = kEcamStart + a % kEcamSize;
        break;
      case 2:
        addr = w.mmio32.gpa + a % 0x4000;
        break;
      case 3:
        addr = w.mmio64.gpa + a % 0x10000;
        break;
      case 4:
        bus = &pio;
        addr = w.io.gpa + a % w.io.size;
        break;
      default:
        (void)memory->Write(0x10000 + a % 0x30000, v);
        continue;
    }
    if (write) {
      bus->Write(addr, v);
    } else {
      bus->Read(addr, v);
    }
  }
  return 0;
}
