// The guest is untrusted: a seeded storm of random configuration-space,
// BAR and virtqueue contents against a platform with two virtio-rng-pci
// functions, through the same entry points a vCPU uses (ports 0xCF8/0xCFC,
// ECAM, the MMIO and port buses). Nothing may crash or trip ASan/UBSan, and
// afterwards the host bridge and the buses still answer. Not a fuzzer (GCC
// has no libFuzzer); a reproducible stand-in run by every unit-test build.
#include <gtest/gtest.h>
#include <linux/pci_regs.h>

#include <cstring>
#include <random>

#include "tests/unit/fake_interrupt_controller.h"
#include "vmm/pci_platform.h"

namespace passage {
namespace {

class RandomAccess : public ::testing::Test {
 protected:
  RandomAccess() : memory_(*GuestMemory::Create({16 * kMiB, false})) {}

  std::unique_ptr<GuestMemory> memory_;
  IoBus pio_{"pio"};
  IoBus mmio_{"mmio"};
  testing::FakeInterruptController irq_;
};

TEST_F(RandomAccess, ConfigBarsAndRingsSurviveGarbage) {
  auto cl = ParseCommandLine({"-kernel", "k", "-m", "16M", "-device", "virtio-rng-pci,addr=3",
                              "-device", "virtio-rng-pci,addr=3.1,filename=/dev/zero"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  auto platform = PciPlatform::Create(cl->config, {memory_.get(), &pio_, &mmio_, &irq_, nullptr, {}});
  ASSERT_TRUE(platform.ok()) << platform.status();
  const PciWindows w = (*platform)->windows();

  std::mt19937_64 rng(20261130);
  auto pick = [&rng](uint64_t n) { return rng() % n; };
  const size_t sizes[] = {1, 2, 4, 8};
  uint8_t buf[8];
  for (int i = 0; i < 200000; ++i) {
    const size_t size = sizes[pick(4)];
    for (auto& b : buf) b = static_cast<uint8_t>(rng());
    // Bias towards the interesting values: all-ones, zero, small numbers.
    if (pick(4) == 0) std::memset(buf, pick(2) ? 0xff : 0, sizeof(buf));
    if (pick(8) == 0) buf[0] = static_cast<uint8_t>(pick(4));
    std::span<uint8_t> data(buf, size);
    const bool write = pick(2) == 0;
    uint64_t addr = 0;
    IoBus* bus = &mmio_;
    switch (pick(6)) {
      case 0:  // config ports, mostly slot 3 functions 0/1
        bus = &pio_;
        if (pick(2)) {
          const uint32_t a = 0x80000000u | (pick(4) == 0 ? static_cast<uint32_t>(rng()) : (3u << 11 | pick(2) << 8 | pick(64) << 2));
          std::memcpy(buf, &a, 4);
          data = std::span<uint8_t>(buf, 4);
          addr = 0xcf8;
        } else {
          addr = 0xcfc + pick(4);
        }
        break;
      case 1:  // ECAM: slot 3, any register, sometimes anywhere
        addr = kEcamStart + (pick(4) == 0 ? pick(kEcamSize) : (3u << 15 | pick(2) << 12 | pick(4096)));
        break;
      case 2:  // the 32-bit window (MSI-X tables)
        addr = w.mmio32.gpa + pick(0x3000);
        break;
      case 3:  // the 64-bit window (virtio common config, notify, ISR)
        addr = w.mmio64.gpa + pick(0x9000);
        break;
      case 4: {  // ring memory and buffers the queues may point at
        const uint64_t at = pick(0x40000);
        (void)memory_->Write(at, data);
        continue;
      }
      default:  // sensible virtio bring-up steps, to get queues live
        addr = w.mmio64.gpa + 0x4000 * pick(2) + (pick(2) ? 0x14 : 0x1c);
        buf[0] = static_cast<uint8_t>(pick(2) ? 0x0f : 1);
        buf[1] = 0;
        data = std::span<uint8_t>(buf, pick(2) ? 1 : 2);
        break;
    }
    if (write) {
      bus->Write(addr, data);
    } else {
      bus->Read(addr, data);
    }
  }
  // Still alive and still answering.
  uint32_t a = 0x80000000u;
  std::memcpy(buf, &a, 4);
  pio_.Write(0xcf8, std::span<const uint8_t>(buf, 4));
  pio_.Read(0xcfc, std::span<uint8_t>(buf, 4));
  uint32_t id;
  std::memcpy(&id, buf, 4);
  EXPECT_EQ(id, 0x29c08086u);
  platform->reset();  // stops the rng workers cleanly
}

}  // namespace
}  // namespace passage
