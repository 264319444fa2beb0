#include "devices/vfio/vfio_device.h"

#include <gtest/gtest.h>
#include <linux/vfio.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <set>

#include "iommu/vfio_info.h"
#include "tests/bench/timed_sys.h"
#include "tests/unit/fake_kernel.h"

namespace passage {
namespace {

using testing::FakeKernel;
using testing::FakeVfioPci;

constexpr char kSysfs[] = "/sys/bus/pci/devices/0000:00:04.0";

class VfioDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dev_.regions[VFIO_PCI_CONFIG_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 4096, {}, false};
    dev_.regions[VFIO_PCI_BAR0_REGION_INDEX] = {
        VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
        0x4000,
        {{0, 0x2000}, {0x3000, 0x1000}},  // hole where an MSI-X table would be
        true};
    dev_.irq_counts[VFIO_PCI_MSIX_IRQ_INDEX] = 8;
    dev_.irq_counts[VFIO_PCI_INTX_IRQ_INDEX] = 1;
    dev_.config[0] = 0x34;
    dev_.config[1] = 0x12;
    kernel_.paths.insert(kSysfs);
    kernel_.links[std::string(kSysfs) + "/driver"] = "../../../bus/pci/drivers/vfio-pci";
    kernel_.links[std::string(kSysfs) + "/iommu_group"] = "../../../kernel/iommu_groups/5";
    kernel_.dirs[std::string(kSysfs) + "/vfio-dev"] = {"vfio0"};
    kernel_.cdevs["/dev/vfio/devices/vfio0"] = &dev_;
    kernel_.group_devices["0000:00:04.0"] = &dev_;
    auto iommufd = Iommufd::Create({"iommufd0"}, &kernel_);
    ASSERT_TRUE(iommufd.ok());
    iommufd_ = std::move(*iommufd);
  }

  VfioDevice::Options Opts(int fd = -1) { return {"dev0", kSysfs, fd}; }

  FakeKernel kernel_;
  FakeVfioPci dev_;
  std::unique_ptr<Iommufd> iommufd_;
};

TEST(ParseHostBdf, Forms) {
  EXPECT_EQ(*ParseHostBdf("00:04.0"), "0000:00:04.0");
  EXPECT_EQ(*ParseHostBdf("0000:3A:1f.7"), "0000:3a:1f.7");
  for (const char* bad : {"", "4", "00:04", "00:04.8", "00:20.0", "0:04.0", "zz:04.0",
                          "00000:00:04.0", "0000:00:04.0.1", "../../x"}) {
    EXPECT_FALSE(ParseHostBdf(bad).ok()) << bad;
  }
  EXPECT_NE(std::string(ParseHostBdf("x").status().message()).find("host="), std::string::npos);
}

TEST_F(VfioDeviceTest, CdevIsFoundThroughSysfsBoundAndAttached) {
  {
    auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
    ASSERT_TRUE(dev.ok()) << dev.status();
    EXPECT_EQ(dev_.bound_iommufd, iommufd_->fd());
    EXPECT_EQ(dev_.attached_pt, iommufd_->ioas_id());
    EXPECT_EQ((*dev)->iommufd_devid(), 42u);
    EXPECT_TRUE((*dev)->can_reset());
    EXPECT_EQ((*dev)->num_regions(), static_cast<uint32_t>(VFIO_PCI_NUM_REGIONS));
  }
  EXPECT_EQ(dev_.bound_iommufd, -1);
  EXPECT_EQ(dev_.attached_pt, 0u);
  EXPECT_EQ(kernel_.open_fds(), 1u);  // just the iommufd
}

// passage-bench's per-step account (tests/bench/timed_sys.h): every call a
// cdev set-up makes lands on its step, by the ioctl's uAPI name, and Take()
// starts afresh.
TEST_F(VfioDeviceTest, TimedSysNamesEachStepOfACdevSetUp) {
  bench::TimedSys timed(&kernel_);
  {
    auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &timed);
    ASSERT_TRUE(dev.ok()) << dev.status();
    std::map<std::string, bench::TimedSys::Step> steps = timed.Take();
    for (const char* want : {"open /dev/vfio/devices/vfioN", "VFIO_DEVICE_BIND_IOMMUFD",
                             "VFIO_DEVICE_ATTACH_IOMMUFD_PT", "VFIO_DEVICE_GET_INFO"}) {
      ASSERT_TRUE(steps.count(want)) << want;
      EXPECT_EQ(steps[want].calls, 1) << want;
      EXPECT_GE(steps[want].seconds, 0) << want;
    }
    EXPECT_EQ(steps.count("close"), 0u);
    EXPECT_TRUE(timed.Take().empty());
  }
  std::map<std::string, bench::TimedSys::Step> teardown = timed.Take();
  EXPECT_EQ(teardown["VFIO_DEVICE_DETACH_IOMMUFD_PT"].calls, 1);
  EXPECT_EQ(teardown["close"].calls, 1);
}

TEST(TimedSys, OpenKeysFoldDigits) {
  EXPECT_EQ(bench::StepKeyForOpen("/dev/vfio/devices/vfio12"), "open /dev/vfio/devices/vfioN");
  EXPECT_EQ(bench::StepKeyForOpen("/dev/vfio/7"), "open /dev/vfio/N");
  EXPECT_EQ(bench::StepKeyForOpen("/dev/iommu"), "open /dev/iommu");
}

TEST_F(VfioDeviceTest, PassedCdevFdOpensNothing) {
  const int fd = kernel_.Open("/dev/vfio/devices/vfio0", 0);
  kernel_.opened_paths.clear();
  auto dev = VfioDevice::OpenWithIommufd(Opts(fd), *iommufd_, &kernel_);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_TRUE(kernel_.opened_paths.empty());
  EXPECT_EQ((*dev)->fd(), fd);
}

TEST_F(VfioDeviceTest, PassedFdOfTheWrongKind) {
  const int fd = kernel_.AddFd(FakeKernel::Kind::kOther);
  auto dev = VfioDevice::OpenWithIommufd(Opts(fd), *iommufd_, &kernel_);
  ASSERT_FALSE(dev.ok());
  EXPECT_NE(std::string(dev.status().message()).find("not a VFIO device cdev"), std::string::npos)
      << dev.status();
  EXPECT_FALSE(kernel_.is_open(fd));
}

TEST_F(VfioDeviceTest, NonexistentDevice) {
  auto dev = VfioDevice::OpenWithIommufd({"dev0", "/sys/bus/pci/devices/0000:00:09.0", -1},
                                         *iommufd_, &kernel_);
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(dev.status().message()).find("no such PCI device"), std::string::npos);
}

TEST_F(VfioDeviceTest, DeviceBoundToAnotherDriver) {
  kernel_.links[std::string(kSysfs) + "/driver"] = "../../../bus/pci/drivers/nvme";
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_FALSE(dev.ok());
  const std::string msg(dev.status().message());
  EXPECT_NE(msg.find("bound to nvme, not vfio-pci"), std::string::npos) << msg;
  EXPECT_EQ(kernel_.open_fds(), 1u);
}

// Found in the rig (faults-real.sh, RLIMIT_NOFILE sweep): an opendir of
// vfio-dev/ that failed with EMFILE was reported as "no VFIO cdev".
TEST_F(VfioDeviceTest, CdevLookupFailureIsNotCalledAMissingCdev) {
  kernel_.faults.FailNth("listdir", 0, EMFILE);
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_FALSE(dev.ok());
  const std::string msg(dev.status().message());
  EXPECT_EQ(msg.find("no VFIO cdev"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vfio-dev"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::strerror(EMFILE)), std::string::npos) << msg;
  EXPECT_EQ(kernel_.open_fds(), 1u);
}

TEST_F(VfioDeviceTest, DeviceInUse) {
  kernel_.busy.insert("/dev/vfio/devices/vfio0");
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_FALSE(dev.ok());
  EXPECT_NE(std::string(dev.status().message()).find("in use"), std::string::npos);
  EXPECT_EQ(kernel_.open_fds(), 1u);
}

TEST_F(VfioDeviceTest, AlreadyBoundCdevIsInUse) {
  auto first = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_TRUE(first.ok());
  const int fd = kernel_.Open("/dev/vfio/devices/vfio0", 0);
  dev_.bound_iommufd = iommufd_->fd();  // the fake shares state across fds
  auto second = VfioDevice::OpenWithIommufd(Opts(fd), *iommufd_, &kernel_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(std::string(second.status().message()).find("in use"), std::string::npos)
      << second.status();
  EXPECT_FALSE(kernel_.is_open(fd));
}

TEST_F(VfioDeviceTest, RegionInfoWithSparseAreasAndMsixCap) {
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_TRUE(dev.ok());
  auto bar0 = (*dev)->RegionInfo(VFIO_PCI_BAR0_REGION_INDEX);
  ASSERT_TRUE(bar0.ok()) << bar0.status();
  EXPECT_EQ(bar0->size, 0x4000u);
  ASSERT_EQ(bar0->mmap_areas.size(), 2u);
  EXPECT_EQ(bar0->mmap_areas[1].offset, 0x3000u);
  EXPECT_TRUE(bar0->msix_mappable);
  auto config = (*dev)->RegionInfo(VFIO_PCI_CONFIG_REGION_INDEX);
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(config->mmap_areas.empty());
  uint8_t id[2];
  ASSERT_TRUE((*dev)->ReadRegion(*config, 0, id).ok());
  EXPECT_EQ(id[0], 0x34);
  EXPECT_EQ(id[1], 0x12);
  // Out of range accesses never reach the kernel.
  uint8_t big[8];
  EXPECT_FALSE((*dev)->ReadRegion(*config, 4092, big).ok());
  EXPECT_FALSE((*dev)->WriteRegion(*config, ~0ull - 2, big).ok());
  EXPECT_TRUE(dev_.writes.empty());
}

TEST_F(VfioDeviceTest, InterruptEventfdsAndReset) {
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_TRUE(dev.ok());
  const int32_t fds[3] = {7, -1, 9};
  ASSERT_TRUE((*dev)->SetIrqEventfds(VFIO_PCI_MSIX_IRQ_INDEX, 2, fds).ok());
  EXPECT_EQ(dev_.irq_eventfds.size(), 2u);
  EXPECT_EQ((dev_.irq_eventfds[{VFIO_PCI_MSIX_IRQ_INDEX, 4}]), 9);
  EXPECT_FALSE((*dev)->SetIrqEventfds(VFIO_PCI_MSIX_IRQ_INDEX, 7, fds).ok());  // past count
  ASSERT_TRUE((*dev)->DisableIrqs(VFIO_PCI_MSIX_IRQ_INDEX).ok());
  EXPECT_TRUE(dev_.irq_eventfds.empty());
  ASSERT_TRUE((*dev)->SetIrqUnmaskEventfd(VFIO_PCI_INTX_IRQ_INDEX, 11).ok());
  EXPECT_EQ(dev_.unmask_eventfds[VFIO_PCI_INTX_IRQ_INDEX], 11);
  ASSERT_TRUE((*dev)->Reset().ok());
  EXPECT_EQ(dev_.resets, 1);
}

TEST_F(VfioDeviceTest, LegacyPathThroughGroupAndContainer) {
  auto container = LegacyContainer::Create(-1, &kernel_);
  ASSERT_TRUE(container.ok());
  {
    {
      auto dev = VfioDevice::OpenWithContainer(Opts(), **container, &kernel_);
      ASSERT_TRUE(dev.ok()) << dev.status();
      EXPECT_FALSE((*dev)->uses_iommufd());
      EXPECT_EQ(kernel_.group_container, (*container)->fd());
      EXPECT_TRUE(kernel_.iommu_set);
      EXPECT_NE(std::find(kernel_.opened_paths.begin(), kernel_.opened_paths.end(),
                          "/dev/vfio/5"),
                kernel_.opened_paths.end());
    }
    // Last device gone: the group left the container.
    EXPECT_EQ(kernel_.group_container, -1);
  }
  EXPECT_EQ(kernel_.open_fds(), 2u);  // iommufd + container
}

TEST_F(VfioDeviceTest, LegacyPathRefusesPassedFd) {
  auto container = LegacyContainer::Create(-1, &kernel_);
  ASSERT_TRUE(container.ok());
  const int fd = kernel_.Open("/dev/vfio/devices/vfio0", 0);
  auto dev = VfioDevice::OpenWithContainer(Opts(fd), **container, &kernel_);
  ASSERT_FALSE(dev.ok());
  EXPECT_NE(std::string(dev.status().message()).find("iommufd="), std::string::npos);
  EXPECT_FALSE(kernel_.is_open(fd)) << "passage owns passed fds, also on errors";
}

// ---- the capability-chain walk ----------------------------------------------

TEST(VfioInfoCaps, BoundedAndBoundsChecked) {
  std::vector<uint8_t> buf(64, 0);
  auto put = [&](uint32_t off, uint16_t id, uint32_t next) {
    vfio_info_cap_header h{id, 1, next};
    std::memcpy(buf.data() + off, &h, sizeof(h));
  };
  put(16, 7, 32);
  put(32, 8, 0);
  auto caps = VfioInfoCaps(buf, 16, 16);
  ASSERT_EQ(caps.size(), 2u);
  EXPECT_EQ(caps[0].id, 7);
  EXPECT_EQ(caps[1].id, 8);
  EXPECT_EQ(caps[1].bytes.size(), 32u) << "a capability cannot reach past the buffer";
  EXPECT_EQ((caps[1].As<std::array<uint8_t, 33>>()), nullptr);
  // A chain that loops stops after 64 hops; one that points into the fixed
  // struct or past the end stops there.
  put(32, 8, 16);
  EXPECT_EQ(VfioInfoCaps(buf, 16, 16).size(), 64u);
  put(32, 8, 8);
  EXPECT_EQ(VfioInfoCaps(buf, 16, 16).size(), 2u);
  put(32, 8, 60);
  EXPECT_EQ(VfioInfoCaps(buf, 16, 16).size(), 2u) << "header would cross the end";
  EXPECT_TRUE(VfioInfoCaps(buf, 16, 0).empty());
  EXPECT_TRUE(VfioInfoCaps(buf, 16, 4).empty());
}

// ---- reserved IOVA ranges appear with the attach ---------------------------

constexpr IovaRange kMsiWindow = {0xfee00000, 0xfeefffff};

TEST_F(VfioDeviceTest, ReservedWindowShowsInTheIoasOnlyOnceAttached) {
  dev_.reserved = {kMsiWindow};
  auto before = iommufd_->AllowedRanges();
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(*before, (std::vector<IovaRange>{{0, ~0ull}}));
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_TRUE(dev.ok()) << dev.status();
  auto after = iommufd_->AllowedRanges();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, (std::vector<IovaRange>{{0, 0xfedfffff}, {0xfef00000, ~0ull}}));
}

// RAM is mapped when the object is created, before any device attaches; the
// kernel then refuses the attach (EADDRINUSE) and passage says why.
TEST_F(VfioDeviceTest, RamInTheReservedWindowKernelRefusesAttach) {
  dev_.reserved = {kMsiWindow};
  kernel_.files[std::string(kSysfs) + "/iommu_group/reserved_regions"] =
      "0x00000000fee00000 0x00000000feefffff msi\n";
  uint8_t page[4096];
  ASSERT_TRUE(iommufd_->Map({0xfee00000, 0x1000, page, -1, 0}).ok());
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_FALSE(dev.ok());
  const std::string msg(dev.status().message());
  EXPECT_EQ(msg, "dev0: guest RAM mapped in iommufd0 overlaps the device's reserved IOVA range "
                 "0xfee00000-0xfeefffff (msi) (Address already in use)");
  EXPECT_EQ(dev_.attached_pt, 0u);
  EXPECT_EQ(dev_.bound_iommufd, -1) << "closed, so unbound";
  EXPECT_EQ(kernel_.open_fds(), 1u) << "only the iommufd";
}

// With a passed fd there is no sysfs path to read the regions from: the
// message still names the device and the object, and the open is undone.
TEST_F(VfioDeviceTest, KernelRefusalWithoutSysfsStillNamesDeviceAndObject) {
  dev_.reserved = {kMsiWindow};
  uint8_t page[4096];
  ASSERT_TRUE(iommufd_->Map({0xfee00000, 0x1000, page, -1, 0}).ok());
  const int fd = kernel_.Open("/dev/vfio/devices/vfio0", 0);
  auto dev = VfioDevice::OpenWithIommufd({"dev0", "", fd}, *iommufd_, &kernel_);
  ASSERT_FALSE(dev.ok());
  const std::string msg(dev.status().message());
  EXPECT_EQ(msg.rfind("dev0: guest RAM mapped in iommufd0 overlaps the device's reserved IOVA "
                      "ranges", 0),
            0u)
      << msg;
  EXPECT_FALSE(kernel_.is_open(fd));
}

// A kernel that lets the attach through: passage's own check after attach
// finds the conflict, names the range and the device, and undoes the attach.
TEST_F(VfioDeviceTest, RamInTheReservedWindowIsFoundAfterAttach) {
  kernel_.attach_checks_reserved = false;
  dev_.reserved = {kMsiWindow};
  uint8_t page[4096];
  ASSERT_TRUE(iommufd_->Map({0xfee00000, 0x2000, page, -1, 0}).ok());
  ASSERT_TRUE(iommufd_->Map({0x100000, 0x1000, page, -1, 0}).ok());
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_FALSE(dev.ok());
  const std::string msg(dev.status().message());
  EXPECT_EQ(msg.rfind("dev0: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("reserved IOVA range 0xfee00000-0xfeefffff"), std::string::npos) << msg;
  ASSERT_GE(kernel_.events.size(), 2u);
  EXPECT_EQ(kernel_.events[kernel_.events.size() - 2].rfind("attach ", 0), 0u);
  EXPECT_EQ(kernel_.events.back().rfind("detach ", 0), 0u) << "nothing left attached";
  EXPECT_EQ(dev_.attached_pt, 0u);
  EXPECT_EQ(dev_.bound_iommufd, -1);
  EXPECT_EQ(kernel_.open_fds(), 1u);
}

TEST_F(VfioDeviceTest, RamBesideTheReservedWindowIsFine) {
  kernel_.attach_checks_reserved = false;
  dev_.reserved = {kMsiWindow};
  uint8_t page[4096];
  ASSERT_TRUE(iommufd_->Map({0xfed00000, 0x100000, page, -1, 0}).ok());
  ASSERT_TRUE(iommufd_->Map({0xfef00000, 0x1000, page, -1, 0}).ok());
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_TRUE(dev.ok()) << dev.status();
  // And from now on a new mapping there is refused up front.
  absl::Status s = iommufd_->Map({0xfee00000, 0x1000, page, -1, 0});
  EXPECT_NE(std::string(s.message()).find("0xfee00000-0xfeefffff"), std::string::npos) << s;
}

TEST_F(VfioDeviceTest, LegacyGroupJoiningOverMappedRamIsRefused) {
  // Group 5 (no reserved regions) joins first and RAM is mapped where
  // group 6's device reserves IOVA; group 6 then cannot join.
  FakeVfioPci other = dev_;
  other.group_id = 6;
  other.reserved = {kMsiWindow};
  dev_.group_id = 5;
  const std::string sysfs2 = "/sys/bus/pci/devices/0000:00:05.0";
  kernel_.paths.insert(sysfs2);
  kernel_.links[sysfs2 + "/driver"] = "../../../bus/pci/drivers/vfio-pci";
  kernel_.links[sysfs2 + "/iommu_group"] = "../../../kernel/iommu_groups/6";
  kernel_.group_devices["0000:00:05.0"] = &other;
  auto container = LegacyContainer::Create(-1, &kernel_);
  ASSERT_TRUE(container.ok());
  auto first = VfioDevice::OpenWithContainer(Opts(), **container, &kernel_);
  ASSERT_TRUE(first.ok()) << first.status();
  uint8_t page[4096];
  ASSERT_TRUE((*container)->Map({0xfee00000, 0x1000, page, -1, 0}).ok());
  kernel_.files["/sys/kernel/iommu_groups/6/reserved_regions"] =
      "0x00000000fee00000 0x00000000feefffff msi\n";
  const size_t fds = kernel_.open_fds();
  auto second = VfioDevice::OpenWithContainer({"dev1", sysfs2, -1}, **container, &kernel_);
  ASSERT_FALSE(second.ok());
  const std::string msg(second.status().message());
  EXPECT_EQ(msg.rfind("dev1: vfio group 6", 0), 0u) << msg;
  EXPECT_NE(msg.find("reserved IOVA range 0xfee00000-0xfeefffff (msi)"), std::string::npos) << msg;
  EXPECT_EQ(kernel_.open_fds(), fds);
  EXPECT_EQ(kernel_.groups_in_container, (std::set<int>{5}));
}

// ---- reset ----------------------------------------------------------------

TEST_F(VfioDeviceTest, WithoutFunctionResetACdevTakesAHotReset) {
  dev_.resettable = false;
  dev_.hot_reset_supported = true;
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_TRUE(dev.ok());
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE((*dev)->Reset().ok());
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(dev_.hot_resets, 1);
  EXPECT_EQ(dev_.resets, 0);
}

TEST_F(VfioDeviceTest, HotResetThatWouldHitOthersIsSkippedWithOneLine) {
  dev_.resettable = false;
  dev_.hot_reset_supported = true;
  dev_.hot_reset_owned = false;
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_TRUE(dev.ok());
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE((*dev)->Reset().ok());
  ASSERT_TRUE((*dev)->Reset().ok());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(dev_.hot_resets, 0);
  EXPECT_EQ(err.find("passage: warning: dev0: device not reset"), 0u) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "said once: " << err;
}

TEST_F(VfioDeviceTest, NoResetAtAllSaysSo) {
  dev_.resettable = false;
  auto dev = VfioDevice::OpenWithIommufd(Opts(), *iommufd_, &kernel_);
  ASSERT_TRUE(dev.ok());
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE((*dev)->Reset().ok());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("device not reset"), std::string::npos) << err;
  EXPECT_NE(err.find("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO"), std::string::npos) << err;
}

TEST_F(VfioDeviceTest, LegacyHotResetProvesOwnershipWithTheGroupFds) {
  dev_.resettable = false;
  dev_.hot_reset_supported = true;
  dev_.hot_reset_groups = {5};
  auto container = LegacyContainer::Create(-1, &kernel_);
  ASSERT_TRUE(container.ok());
  auto dev = VfioDevice::OpenWithContainer(Opts(), **container, &kernel_);
  ASSERT_TRUE(dev.ok()) << dev.status();
  ASSERT_TRUE((*dev)->Reset().ok());
  EXPECT_EQ(dev_.hot_resets, 1);
  // A group on the same bus that passage does not hold: no reset.
  dev_.hot_reset_groups = {5, 9};
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE((*dev)->Reset().ok());
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(dev_.hot_resets, 1);
  EXPECT_NE(err.find("vfio group 9"), std::string::npos) << err;
}

}  // namespace
}  // namespace passage
