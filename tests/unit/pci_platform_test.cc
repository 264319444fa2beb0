#include "vmm/pci_platform.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/pci_regs.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "tests/unit/pci_ports.h"
#include "tests/unit/fake_interrupt_controller.h"
#include "vmm/device_registry.h"
#include "vmm/passed_fds.h"

namespace passage {
namespace {

class PciPlatformTest : public ::testing::Test {
 protected:
  PciPlatformTest() : memory_(*GuestMemory::Create({64 * kMiB, false})) {}
  absl::StatusOr<std::unique_ptr<PciPlatform>> Build(std::vector<absl::string_view> args) {
    args.insert(args.begin(), {"-kernel", "k", "-m", "64M"});
    absl::StatusOr<CommandLine> cl = ParseCommandLine(args);
    if (!cl.ok()) return cl.status();
    // As main does: the command line's fds are passage's from here.
    absl::StatusOr<PassedFds> fds = PassedFds::Adopt(PassedFdUses(cl->config));
    if (!fds.ok()) return fds.status();
    fds_ = std::move(*fds);
    return PciPlatform::Create(cl->config, {memory_.get(), &pio_, &mmio_, &irq_, nullptr, nullptr, &fds_});
  }
  uint32_t ConfigRead(uint8_t slot, uint8_t reg) { return PortConfigRead(pio_, slot, reg); }
  uint32_t EcamRead(uint8_t slot, uint16_t reg) {
    uint8_t b[4];
    mmio_.Read(kEcamStart + (uint64_t{slot} << 15) + reg, b);
    uint32_t v;
    std::memcpy(&v, b, 4);
    return v;
  }

  std::unique_ptr<GuestMemory> memory_;
  IoBus pio_{"pio"};
  IoBus mmio_{"mmio"};
  testing::FakeInterruptController irq_;
  PassedFds fds_;
};

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST_F(PciPlatformTest, HostBridgeAloneWithoutDevices) {
  auto p = Build({});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(ConfigRead(0, PCI_VENDOR_ID), 0x29c08086u);
  EXPECT_EQ(EcamRead(0, PCI_VENDOR_ID), 0x29c08086u);
  EXPECT_EQ(ConfigRead(1, PCI_VENDOR_ID), 0xffffffffu);
  ASSERT_EQ((*p)->Describe().size(), 1u);
  EXPECT_EQ((*p)->windows().mmio64.gpa, 4 * kGiB);
  // Tearing the platform down frees the config ports and ECAM.
  p->reset();
  uint8_t b[4];
  EXPECT_FALSE(pio_.Read(0xcfc, b));
  EXPECT_FALSE(mmio_.Read(kEcamStart, b));
}

TEST_F(PciPlatformTest, DevicesGetSlotsAndBarsInOrder) {
  auto p = Build({"-device", "virtio-rng-pci,id=auto", "-device", "virtio-rng-pci,id=fixed,addr=3"});
  ASSERT_TRUE(p.ok()) << p.status();
  // Explicit addresses are placed first, so "fixed" has the first BARs.
  EXPECT_EQ(ConfigRead(3, PCI_VENDOR_ID), 0x10441af4u);
  EXPECT_EQ(ConfigRead(1, PCI_VENDOR_ID), 0x10441af4u);
  EXPECT_EQ(ConfigRead(3, PCI_BASE_ADDRESS_1), 0xc0000000u);
  EXPECT_EQ(ConfigRead(3, PCI_BASE_ADDRESS_4), 0x00000004u);  // 64-bit at 4 GiB: low dword
  EXPECT_EQ(ConfigRead(3, PCI_BASE_ADDRESS_5), 0x1u);
  EXPECT_EQ(ConfigRead(1, PCI_BASE_ADDRESS_1), 0xc0001000u);
  EXPECT_EQ(ConfigRead(1, PCI_BASE_ADDRESS_4), 0x00004004u);
  EXPECT_EQ(ConfigRead(3, PCI_COMMAND) & 0xffff, static_cast<uint32_t>(PCI_COMMAND_MEMORY));
  EXPECT_EQ(ConfigRead(3, PCI_INTERRUPT_LINE) & 0xffff, 0x100u | 19u);  // INTA of slot 3 -> GSI 19
  auto info = (*p)->Describe();
  ASSERT_EQ(info.size(), 3u);
  EXPECT_EQ(info[1].address.ToString(), "00:01.0");
  EXPECT_EQ(info[1].name, "virtio-rng-pci,id=auto");
  EXPECT_EQ(info[2].address.ToString(), "00:03.0");
  EXPECT_EQ(info[2].intx_gsi, 19u);
  ASSERT_EQ(info[2].bars.size(), 2u);
  EXPECT_EQ(info[2].bars[1].index, 4);
  EXPECT_EQ(info[2].bars[1].address, 4 * kGiB);
  EXPECT_EQ(info[2].bars[1].size, 0x4000u);
  // The BARs decode on the MMIO bus: the common config's num_queues.
  uint8_t b[2];
  ASSERT_TRUE(mmio_.Read(4 * kGiB + 0x12, b));
  EXPECT_EQ(b[0], 1);
}

TEST_F(PciPlatformTest, RuntimeErrorsNameTheDevice) {
  auto missing = Build({"-device", "virtio-rng-pci,id=r,filename=/nonexistent/rng"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("-device virtio-rng-pci,id=r: filename=/nonexistent/rng"),
            absl::string_view::npos) << missing.status();
  const int closed = ::open("/dev/null", O_RDONLY);
  ::close(closed);
  auto bad_fd = Build({"-device", absl::StrCat("virtio-rng-pci,fd=", closed).c_str()});
  ASSERT_FALSE(bad_fd.ok());
  EXPECT_NE(bad_fd.status().message().find(absl::StrCat("-device virtio-rng-pci: fd=", closed, " is not an open")),
            absl::string_view::npos) << bad_fd.status();
}

// passage owns a passed fd: the device reads it and closes it when it goes.
TEST_F(PciPlatformTest, PassedFdIsTheDevicesAndClosedWithIt) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const std::string arg = absl::StrCat("virtio-rng-pci,fd=", fds[0]);
  auto p = Build({"-device", arg});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(fds_.Held().empty());
  EXPECT_TRUE(IsOpen(fds[0]));
  p->reset();
  EXPECT_FALSE(IsOpen(fds[0]));
  close(fds[1]);
}

// Several fds at once, and a device in the middle fails: the one a device
// already took, the one the failing device was given and the ones no
// consumer reached are all closed.
TEST_F(PciPlatformTest, EveryPassedFdIsClosedWhenTheBuildFails) {
  int rng_a[2], rng_c[2];
  ASSERT_EQ(pipe(rng_a), 0);
  ASSERT_EQ(pipe(rng_c), 0);
  const int vfio_b = eventfd(0, EFD_CLOEXEC);
  const int iommu_d = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(vfio_b, 0);
  ASSERT_GE(iommu_d, 0);
  const std::string a = absl::StrCat("virtio-rng-pci,id=a,addr=3,fd=", rng_a[0]);
  const std::string b = absl::StrCat("vfio-pci,id=b,iommufd=i0,fd=", vfio_b);
  const std::string c = absl::StrCat("virtio-rng-pci,id=c,fd=", rng_c[0]);
  const std::string d = absl::StrCat("iommufd,id=i0,fd=", iommu_d);
  // No passthrough side here, so vfio-pci fails (after "a", before "c").
  auto p = Build({"-object", d, "-device", a, "-device", b, "-device", c});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("-device vfio-pci,id=b"), absl::string_view::npos) << p.status();
  EXPECT_FALSE(IsOpen(rng_a[0])) << "taken by a, closed with it";
  std::vector<int> untaken = {vfio_b, rng_c[0], iommu_d};  // b failed before taking its fd
  std::sort(untaken.begin(), untaken.end());
  EXPECT_EQ(fds_.Held(), untaken);
  fds_ = PassedFds();  // what main's RunVm does when Vm::Create fails
  for (int fd : {rng_a[0], vfio_b, rng_c[0], iommu_d}) EXPECT_FALSE(IsOpen(fd)) << fd;
  for (int fd : {rng_a[1], rng_c[1]}) EXPECT_TRUE(IsOpen(fd)) << "not passed: " << fd;
  close(rng_a[1]);
  close(rng_c[1]);
}

TEST_F(PciPlatformTest, NoFreeSlotIsAnError) {
  std::vector<std::string> specs(32, "virtio-rng-pci");
  std::vector<absl::string_view> args;
  for (const auto& s : specs) args.insert(args.end(), {"-device", s});
  auto p = Build(args);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("no free PCI slot"), absl::string_view::npos) << p.status();
}

// Every -device kind is built through the one registry.
TEST_F(PciPlatformTest, DevicesComeFromTheRegistry) {
  for (const char* name : {"vfio-pci", "virtio-rng-pci"}) {
    const DeviceKind* kind = FindDeviceKind(name);
    ASSERT_NE(kind, nullptr) << name;
    EXPECT_NE(kind->create, nullptr);
    EXPECT_NE(kind->check, nullptr);
    EXPECT_FALSE(kind->keys.empty());
  }
  EXPECT_EQ(FindDeviceKind("e1000"), nullptr);
  DeviceConfig other;
  other.driver = "vfio-pci";
  other.id = "x";
  other.props["host"] = "00:04.0";
  auto none = CreateDevice(other, {memory_.get(), &irq_, nullptr, nullptr});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("-device vfio-pci,id=x: this VM has no passthrough side"),
            absl::string_view::npos) << none.status();
  other.driver = "e1000";
  EXPECT_FALSE(CreateDevice(other, {memory_.get(), &irq_, nullptr, nullptr}).ok());
}

}  // namespace
}  // namespace passage
