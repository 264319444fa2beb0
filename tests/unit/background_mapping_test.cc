// -dma-map background (issue 14) over the fake kernel: iommufd devices are
// bound in set-up and attached by the mapping thread after it mapped guest
// RAM into their IOAS (the legacy container's groups join in set-up and the
// thread maps after), and a device's bus-master enable waits (in the
// writing vCPU's thread) until its space is mapped and attached; a stop
// releases the wait, a failed mapping or attach stops the VM with one line
// and leaves nothing mapped. -dma-map sync keeps today's order: RAM mapped
// during set-up, devices attached there, nothing waits.
#include <gtest/gtest.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tests/unit/fake_interrupt_controller.h"
#include "tests/unit/fake_kernel.h"
#include "vmm/boot_report.h"
#include "vmm/passthrough.h"

namespace passage {
namespace {

using testing::FakeInterruptController;
using testing::FakeKernel;
using testing::FakeVfioPci;

// Long enough that a write the gate failed to hold would have reached the
// fake device by then; the tests never wait this long for success.
constexpr absl::Duration kWouldHaveForwarded = absl::Milliseconds(200);

DeviceConfig Vfio(std::map<std::string, std::string, std::less<>> props) {
  DeviceConfig d;
  d.driver = "vfio-pci";
  d.id = "edu0";
  d.props = std::move(props);
  return d;
}

// After teardown: no mapping and no fd left in the fake kernel.
void ExpectNothingLeft(const FakeKernel& kernel) {
  EXPECT_TRUE(kernel.mapped.empty()) << kernel.Describe();
  EXPECT_EQ(kernel.open_fds(), 0u) << kernel.Describe();
}

class BackgroundMappingTest : public ::testing::Test {
 protected:
  // A Passthrough over the fake kernel with one -object iommufd,id=i0.
  absl::StatusOr<std::unique_ptr<Passthrough>> CreateWithI0(DmaMapMode mode) {
    return Passthrough::Create({*ParseObjectConfig("iommufd,id=i0")}, *memory_, loop_, -1, &kernel_, mode);
  }
  // edu (00:03.0) as vfio-pci id=edu0 on i0.
  absl::StatusOr<std::shared_ptr<PciDevice>> EduOnI0(Passthrough& p) {
    return p.CreateVfioPci(Vfio({{"host", "00:03.0"}, {"iommufd", "i0"}}), irq_);
  }

  void SetUp() override {
    edu_.regions[VFIO_PCI_CONFIG_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 256, {}, false};
    edu_.regions[VFIO_PCI_BAR0_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
        0x100000, {}, false};
    edu_.config[0] = 0x34;
    edu_.config[1] = 0x12;
    kernel_.AddVfioPciSysfs("0000:00:03.0", "vfio0", "3", &edu_);
    auto mem = GuestMemory::Create({64 * kMiB, false});
    ASSERT_TRUE(mem.ok());
    memory_ = std::move(*mem);
  }
  void TearDown() override {
    // Whatever a test left running must not outlive the fake.
    if (!release_.HasBeenNotified()) release_.Notify();
    if (vcpu_.joinable()) vcpu_.join();
  }

  // Holds the first call named `ioctl` (on the mapping thread) until
  // release_ is notified (at most 10 s); reached_ says it got there.
  void HoldIoctl(const std::string& ioctl) {
    kernel_.before_ioctl = [this, ioctl](const std::string& name) {
      if (name != ioctl || held_.exchange(true)) return;
      reached_.Notify();
      // Bounded: a test that fails early must still get to its teardown
      // (~Passthrough joins the mapping thread before TearDown runs).
      release_.WaitForNotificationWithTimeout(absl::Seconds(10));
    };
  }
  // The guest (on a "vCPU" thread) sets memory decoding and bus mastering.
  void EnableBusMaster(PciDevice& device) {
    vcpu_ = std::thread([this, &device] {
      device.ConfigWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
      vcpu_done_ = true;
    });
  }
  uint16_t RealCommand() const {
    return static_cast<uint16_t>(edu_.config[PCI_COMMAND] | edu_.config[PCI_COMMAND + 1] << 8);
  }
  size_t Position(const std::string& call) {
    const auto trace = kernel_.faults.trace();
    auto it = std::find_if(trace.begin(), trace.end(), [&](auto& c) { return c.first == call; });
    return it == trace.end() ? trace.size() : static_cast<size_t>(it - trace.begin());
  }

  FakeKernel kernel_;
  FakeVfioPci edu_;
  FakeInterruptController irq_;
  std::unique_ptr<GuestMemory> memory_;
  EventLoop loop_;
  std::atomic<bool> held_{false};
  absl::Notification reached_, release_;
  std::thread vcpu_;
  std::atomic<bool> vcpu_done_{false};
};

TEST_F(BackgroundMappingTest, BindInSetUpThenMapThenAttachOnTheThreadAndBusMasterWaits) {
  auto p = CreateWithI0(DmaMapMode::kBackground);
  ASSERT_TRUE(p.ok()) << p.status();
  auto dev = EduOnI0(**p);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(kernel_.map_file_calls + kernel_.map_calls, 0) << "set-up maps nothing";
  EXPECT_GE(edu_.bound_iommufd, 0) << "bound in set-up";
  EXPECT_EQ(edu_.attached_pt, 0u) << "attached by the mapping thread, not in set-up";
  EXPECT_EQ(Position("VFIO_DEVICE_ATTACH_IOMMUFD_PT"), kernel_.faults.trace().size());

  HoldIoctl("IOMMU_IOAS_MAP_FILE");
  int failures = 0;
  (*p)->StartMapping([&failures](const absl::Status&) { ++failures; });
  reached_.WaitForNotification();
  EnableBusMaster(**dev);
  absl::SleepFor(kWouldHaveForwarded);
  EXPECT_FALSE(vcpu_done_) << "the vCPU went on while guest RAM was being mapped";
  EXPECT_EQ(RealCommand() & PCI_COMMAND_MASTER, 0) << "bus mastering reached the device before RAM";
  EXPECT_NE((*dev)->ConfigRead(PCI_COMMAND, 2) & PCI_COMMAND_MASTER, 0u)
      << "the guest's own view has it at once";

  release_.Notify();
  vcpu_.join();
  EXPECT_NE(RealCommand() & PCI_COMMAND_MASTER, 0) << "forwarded once mapped and attached";
  EXPECT_NE(RealCommand() & PCI_COMMAND_MEMORY, 0);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(kernel_.mapped.size(), 1u) << "all of guest RAM mapped";
  EXPECT_NE(edu_.attached_pt, 0u);
  EXPECT_LT(Position("VFIO_DEVICE_BIND_IOMMUFD"), Position("IOMMU_IOAS_MAP_FILE"));
  EXPECT_LT(Position("IOMMU_IOAS_MAP_FILE"), Position("VFIO_DEVICE_ATTACH_IOMMUFD_PT"))
      << "RAM goes in first; the attach then fills the domain from the IOAS";
  bool marked = false;
  for (const auto& [name, ns] : BootPhases()) marked |= name == "dma_mapped";
  EXPECT_TRUE(marked) << "--report-timing's phase";
  dev->reset();
  p->reset();
  ExpectNothingLeft(kernel_);
}

TEST_F(BackgroundMappingTest, BusMasterWaitsForTheAttachAfterTheMap) {
  auto p = CreateWithI0(DmaMapMode::kBackground);
  ASSERT_TRUE(p.ok()) << p.status();
  auto dev = EduOnI0(**p);
  ASSERT_TRUE(dev.ok()) << dev.status();
  HoldIoctl("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
  (*p)->StartMapping([](const absl::Status&) {});
  ASSERT_TRUE(reached_.WaitForNotificationWithTimeout(absl::Seconds(10)))
      << "the mapping thread attached nothing";
  EXPECT_EQ(kernel_.mapped.size(), 1u) << "RAM is in the IOAS before the attach";
  EnableBusMaster(**dev);
  absl::SleepFor(kWouldHaveForwarded);
  EXPECT_FALSE(vcpu_done_) << "the vCPU went on before the device was attached";
  EXPECT_EQ(RealCommand() & PCI_COMMAND_MASTER, 0) << "bus mastering before the attach";
  release_.Notify();
  vcpu_.join();
  EXPECT_NE(edu_.attached_pt, 0u);
  EXPECT_NE(RealCommand() & PCI_COMMAND_MASTER, 0) << "forwarded once attached";
}

TEST_F(BackgroundMappingTest, AFailedAttachOnTheThreadStopsTheVmWithOneLineAndLeavesNothing) {
  FakeVfioPci nvme = edu_;
  kernel_.AddVfioPciSysfs("0000:00:04.0", "vfio1", "4", &nvme);
  auto p = CreateWithI0(DmaMapMode::kBackground);
  ASSERT_TRUE(p.ok()) << p.status();
  auto edu = EduOnI0(**p);
  ASSERT_TRUE(edu.ok()) << edu.status();
  DeviceConfig second = Vfio({{"host", "00:04.0"}, {"iommufd", "i0"}});
  second.id = "nvme0";
  auto dev = (*p)->CreateVfioPci(second, irq_);
  ASSERT_TRUE(dev.ok()) << dev.status();
  // The first attach (edu's, after the map) is refused as the kernel
  // refuses a pin over RLIMIT_MEMLOCK when it fills the domain.
  kernel_.faults.FailNth("VFIO_DEVICE_ATTACH_IOMMUFD_PT", 0, ENOMEM);
  absl::Mutex mu;
  std::vector<std::string> stops;
  absl::Notification failed;
  (*p)->StartMapping([&](const absl::Status& s) {
    {
      absl::MutexLock lock(&mu);
      stops.emplace_back(s.message());
    }
    failed.Notify();
  });
  ASSERT_TRUE(failed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  (*p)->StopMapping();  // the thread has ended: every report is in
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(stops.size(), 1u);
    const std::string& line = stops[0];
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_NE(line.find("id=edu0"), std::string::npos) << line;
    EXPECT_NE(line.find("VFIO_DEVICE_ATTACH_IOMMUFD_PT"), std::string::npos) << line;
    EXPECT_NE(line.find(std::strerror(ENOMEM)), std::string::npos) << line;
  }
  EXPECT_TRUE(kernel_.faults.fired());
  EXPECT_EQ(edu_.attached_pt, 0u);
  EXPECT_EQ(nvme.attached_pt, 0u) << "the devices after the failed one are not attached";
  // The guest's bus-master enable is refused, not held.
  (*dev)->ConfigWrite(PCI_COMMAND, 2, PCI_COMMAND_MASTER);
  EXPECT_EQ(nvme.config[PCI_COMMAND] & PCI_COMMAND_MASTER, 0);
  absl::Status add = (*p)->AddObject(*ParseObjectConfig("iommufd,id=i2"), -1);
  EXPECT_FALSE(add.ok());

  edu->reset();
  dev->reset();
  p->reset();  // the VM's teardown after the stop
  ExpectNothingLeft(kernel_);
  EXPECT_EQ(edu_.bound_iommufd, -1) << "unbound (closed)";
}

TEST_F(BackgroundMappingTest, AStopReleasesAVcpuWaitingForTheMapping) {
  auto p = CreateWithI0(DmaMapMode::kBackground);
  ASSERT_TRUE(p.ok()) << p.status();
  auto dev = EduOnI0(**p);
  ASSERT_TRUE(dev.ok()) << dev.status();
  HoldIoctl("IOMMU_IOAS_MAP_FILE");
  (*p)->StartMapping([](const absl::Status&) {});
  reached_.WaitForNotification();
  EnableBusMaster(**dev);
  absl::SleepFor(kWouldHaveForwarded);
  ASSERT_FALSE(vcpu_done_);

  (*p)->CancelMapping();  // what Vm::Run does once the VM stops
  vcpu_.join();           // hangs here if the stop did not reach the wait
  EXPECT_EQ(RealCommand() & PCI_COMMAND_MASTER, 0) << "never mapped: no bus mastering";
  EXPECT_NE(RealCommand() & PCI_COMMAND_MEMORY, 0) << "the rest of the write goes through";

  release_.Notify();  // the map in flight completes; teardown undoes it
  dev->reset();
  p->reset();
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_EQ(kernel_.open_fds(), 0u) << kernel_.Describe();
}

TEST_F(BackgroundMappingTest, AFailedMappingStopsTheVmWithOneLineAndLeavesNothingMapped) {
  auto p = Passthrough::Create(
      {*ParseObjectConfig("iommufd,id=i0"), *ParseObjectConfig("iommufd,id=i1")}, *memory_, loop_,
      -1, &kernel_, DmaMapMode::kBackground);
  ASSERT_TRUE(p.ok()) << p.status();
  auto dev = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}, {"iommufd", "i1"}}), irq_);
  ASSERT_TRUE(dev.ok()) << dev.status();
  // i0 maps; i1's map is refused as the kernel refuses a pin over RLIMIT_MEMLOCK.
  kernel_.faults.FailNth("IOMMU_IOAS_MAP_FILE", 1, ENOMEM);
  absl::Mutex mu;
  std::vector<std::string> stops;  // what the VM was told
  absl::Notification failed;
  (*p)->StartMapping([&](const absl::Status& s) {
    {
      absl::MutexLock lock(&mu);
      stops.emplace_back(s.message());
    }
    failed.Notify();
  });
  ASSERT_TRUE(failed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(stops.size(), 1u);
    const std::string& line = stops[0];
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_NE(line.find("-object iommufd,id=i1"), std::string::npos) << line;
    EXPECT_NE(line.find("IOMMU_IOAS_MAP_FILE"), std::string::npos) << line;
    EXPECT_NE(line.find(std::strerror(ENOMEM)), std::string::npos) << line;
  }
  // The guest's bus-master enable is refused, not held.
  EnableBusMaster(**dev);
  vcpu_.join();
  EXPECT_EQ(RealCommand() & PCI_COMMAND_MASTER, 0);
  // Run-time changes are refused once the mapping failed.
  absl::Status add = (*p)->AddObject(*ParseObjectConfig("iommufd,id=i2"), -1);
  EXPECT_FALSE(add.ok());
  EXPECT_NE(std::string(add.message()).find("object-add"), std::string::npos) << add;

  dev->reset();
  p->reset();  // the VM's teardown after the stop
  ExpectNothingLeft(kernel_);
}

TEST_F(BackgroundMappingTest, TheLegacyContainerMapsAfterSetIommuInTheBackground) {
  auto p = Passthrough::Create({}, *memory_, loop_, -1, &kernel_, DmaMapMode::kBackground);
  ASSERT_TRUE(p.ok()) << p.status();
  auto dev = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}}), irq_);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_TRUE(kernel_.iommu_set);
  EXPECT_EQ(kernel_.map_calls, 0) << "set-up maps nothing";
  HoldIoctl("VFIO_IOMMU_MAP_DMA");
  (*p)->StartMapping([](const absl::Status&) {});
  reached_.WaitForNotification();
  EnableBusMaster(**dev);
  absl::SleepFor(kWouldHaveForwarded);
  EXPECT_FALSE(vcpu_done_);
  EXPECT_EQ(RealCommand() & PCI_COMMAND_MASTER, 0);
  release_.Notify();
  vcpu_.join();
  EXPECT_NE(RealCommand() & PCI_COMMAND_MASTER, 0);
  EXPECT_EQ(kernel_.mapped.size(), 1u);
  dev->reset();
  p->reset();
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_EQ(kernel_.open_fds(), 0u) << kernel_.Describe();
}

TEST_F(BackgroundMappingTest, TwoLegacyGroupsShareTheContainersOneDeferredMapping) {
  FakeVfioPci nvme = edu_;
  kernel_.AddVfioPciSysfs("0000:00:04.0", "vfio1", "4", &nvme);
  auto p = Passthrough::Create({}, *memory_, loop_, -1, &kernel_, DmaMapMode::kBackground);
  ASSERT_TRUE(p.ok()) << p.status();
  auto edu = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}}), irq_);
  ASSERT_TRUE(edu.ok()) << edu.status();
  DeviceConfig second = Vfio({{"host", "00:04.0"}});
  second.id = "nvme0";
  auto dev = (*p)->CreateVfioPci(second, irq_);
  ASSERT_TRUE(dev.ok()) << dev.status();
  std::vector<std::string> stops;
  (*p)->StartMapping([&](const absl::Status& s) { stops.emplace_back(s.message()); });
  // The second device's bus-master enable returns once the one mapping ended.
  (*dev)->ConfigWrite(PCI_COMMAND, 2, PCI_COMMAND_MASTER);
  (*p)->StopMapping();  // the thread has ended: a failure was reported by now
  EXPECT_TRUE(stops.empty()) << stops[0];
  EXPECT_EQ(kernel_.map_calls, 1) << "RAM goes into the container once";
  EXPECT_EQ(kernel_.mapped.size(), 1u);
  EXPECT_NE(nvme.config[PCI_COMMAND] & PCI_COMMAND_MASTER, 0);
}

TEST_F(BackgroundMappingTest, SyncModeMapsDuringSetUpAndNothingWaits) {
  auto p = CreateWithI0(DmaMapMode::kSync);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(kernel_.map_file_calls, 1) << "the object maps RAM as it is made";
  auto dev = EduOnI0(**p);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_LT(Position("IOMMU_IOAS_MAP_FILE"), Position("VFIO_DEVICE_ATTACH_IOMMUFD_PT"))
      << "sync: map first, the attach pins";
  int failures = 0;
  (*p)->StartMapping([&failures](const absl::Status&) { ++failures; });
  // No mapping thread: a map call now would run on this thread and hit this.
  kernel_.before_ioctl = [](const std::string& name) {
    EXPECT_NE(name, "IOMMU_IOAS_MAP_FILE") << "nothing is left to map after set-up";
  };
  (*dev)->ConfigWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  EXPECT_NE(RealCommand() & PCI_COMMAND_MASTER, 0);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(kernel_.map_file_calls, 1);
}

TEST_F(BackgroundMappingTest, ADeviceReservingRamIsRefusedAtItsAttachOnTheThread) {
  // The x86 MSI window moved into RAM (64 MiB of it at 0): as the kernel
  // shows a device's reserved regions once it is attached. Both guards:
  // the kernel's refusal at attach, and passage's own check after it.
  for (bool kernel_checks : {true, false}) {
    SCOPED_TRACE(kernel_checks ? "the kernel refuses the attach" : "passage's check after it");
    FakeKernel kernel;
    FakeVfioPci edu = edu_;
    edu.reserved = {{0x1000000, 0x10fffff}};
    kernel.AddVfioPciSysfs("0000:00:03.0", "vfio0", "3", &edu);
    kernel.files["/sys/bus/pci/devices/0000:00:03.0/iommu_group/reserved_regions"] =
        "0x0000000001000000 0x00000000010fffff msi\n";
    kernel.attach_checks_reserved = kernel_checks;
    auto p = Passthrough::Create({*ParseObjectConfig("iommufd,id=i0")}, *memory_, loop_, -1,
                                 &kernel, DmaMapMode::kBackground);
    ASSERT_TRUE(p.ok()) << p.status();
    auto dev = EduOnI0(**p);
    ASSERT_TRUE(dev.ok()) << dev.status() << ": bound only, nothing to check yet";
    std::vector<std::string> stops;
    absl::Notification failed;
    (*p)->StartMapping([&](const absl::Status& s) {
      stops.emplace_back(s.message());
      failed.Notify();
    });
    ASSERT_TRUE(failed.WaitForNotificationWithTimeout(absl::Seconds(10)));
    (*p)->StopMapping();  // the thread ended: read `stops` here
    ASSERT_EQ(stops.size(), 1u);
    EXPECT_NE(stops[0].find("edu0"), std::string::npos) << stops[0];
    EXPECT_NE(stops[0].find("0x1000000-0x10fffff"), std::string::npos) << stops[0];
    dev->reset();
    p->reset();
    EXPECT_EQ(edu.attached_pt, 0u) << "left detached";
    ExpectNothingLeft(kernel);
  }
}

TEST_F(BackgroundMappingTest, SyncModeAttachesInSetUpAfterTheMap) {
  auto p = CreateWithI0(DmaMapMode::kSync);
  ASSERT_TRUE(p.ok()) << p.status();
  auto dev = EduOnI0(**p);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_NE(edu_.attached_pt, 0u) << "sync: attached in set-up";
  // The order of the cdev's ioctls is the one it always was.
  EXPECT_LT(Position("IOMMU_IOAS_MAP_FILE"), Position("VFIO_DEVICE_BIND_IOMMUFD"));
  EXPECT_LT(Position("VFIO_DEVICE_BIND_IOMMUFD"), Position("VFIO_DEVICE_ATTACH_IOMMUFD_PT"));
  EXPECT_LT(Position("VFIO_DEVICE_ATTACH_IOMMUFD_PT"), Position("VFIO_DEVICE_GET_INFO"));
}

TEST_F(BackgroundMappingTest, HotplugAfterTheMappingMapsSynchronously) {
  auto p = Passthrough::Create({}, *memory_, loop_, -1, &kernel_, DmaMapMode::kBackground);
  ASSERT_TRUE(p.ok()) << p.status();
  (*p)->StartMapping([](const absl::Status&) {});  // nothing deferred: no thread
  ASSERT_TRUE((*p)->AddObject(*ParseObjectConfig("iommufd,id=h0"), -1).ok());
  EXPECT_EQ(kernel_.map_file_calls, 1) << "object-add maps at once";
  auto dev = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}, {"iommufd", "h0"}}), irq_);
  ASSERT_TRUE(dev.ok()) << dev.status();
  (*dev)->ConfigWrite(PCI_COMMAND, 2, PCI_COMMAND_MASTER);
  EXPECT_NE(RealCommand() & PCI_COMMAND_MASTER, 0) << "a run-time space is mapped: no wait";
}

}  // namespace
}  // namespace passage
