// -object iommufd / -device vfio-pci parsing, and the VM's passthrough side
// over the fake kernel: every iommufd object maps all RAM, devices choose
// theirs, the legacy container appears on first use, and teardown leaves no
// fd, mapping or binding behind.
#include "vmm/passthrough.h"

#include <gtest/gtest.h>
#include <linux/vfio.h>

#include "tests/unit/fake_interrupt_controller.h"
#include "tests/unit/fake_kernel.h"

namespace passage {
namespace {

using testing::FakeInterruptController;
using testing::FakeKernel;
using testing::FakeVfioPci;

DeviceConfig Vfio(std::map<std::string, std::string, std::less<>> props) {
  DeviceConfig d;
  d.driver = "vfio-pci";
  d.id = "dev0";
  d.props = std::move(props);
  return d;
}

class PassthroughTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto* d : {&edu_, &nvme_}) {
      d->regions[VFIO_PCI_CONFIG_REGION_INDEX] = {
          VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 256, {}, false};
      d->regions[VFIO_PCI_BAR0_REGION_INDEX] = {
          VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
          0x100000, {}, false};
      d->config[0] = 0x34;
      d->config[1] = 0x12;
    }
    AddSysfs("0000:00:03.0", "vfio0", "3", &edu_);
    AddSysfs("0000:00:04.0", "vfio1", "4", &nvme_);
    auto mem = GuestMemory::Create({512 * kMiB, false});
    ASSERT_TRUE(mem.ok());
    memory_ = std::move(*mem);
  }
  void AddSysfs(const std::string& bdf, const std::string& cdev, const std::string& group,
                FakeVfioPci* dev) {
    const std::string sysfs = "/sys/bus/pci/devices/" + bdf;
    kernel_.paths.insert(sysfs);
    kernel_.links[sysfs + "/driver"] = "../../../bus/pci/drivers/vfio-pci";
    kernel_.links[sysfs + "/iommu_group"] = "../../../kernel/iommu_groups/" + group;
    kernel_.dirs[sysfs + "/vfio-dev"] = {cdev};
    kernel_.cdevs["/dev/vfio/devices/" + cdev] = dev;
    kernel_.group_devices[bdf] = dev;
  }
  std::vector<ObjectConfig> Objects(std::vector<const char*> specs) {
    std::vector<ObjectConfig> out;
    for (const char* s : specs) out.push_back(*ParseObjectConfig(s));
    return out;
  }

  FakeKernel kernel_;
  FakeVfioPci edu_, nvme_;
  FakeInterruptController irq_;
  std::unique_ptr<GuestMemory> memory_;
};

TEST_F(PassthroughTest, TwoIommufdObjectsOneDeviceEach) {
  {
    auto p = Passthrough::Create(Objects({"iommufd,id=a", "iommufd,id=b"}), *memory_, -1, &kernel_);
    ASSERT_TRUE(p.ok()) << p.status();
    // Each object maps all of RAM into its own IOAS.
    EXPECT_EQ(kernel_.map_file_calls, 2);
    auto edu = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}, {"iommufd", "a"}}), irq_);
    ASSERT_TRUE(edu.ok()) << edu.status();
    auto nvme = (*p)->CreateVfioPci(Vfio({{"host", "00:04.0"}, {"iommufd", "b"}}), irq_);
    ASSERT_TRUE(nvme.ok()) << nvme.status();
    EXPECT_NE(edu_.attached_pt, nvme_.attached_pt) << "each device on its own object's IOAS";
    EXPECT_NE(edu_.bound_iommufd, nvme_.bound_iommufd);
    auto objects = (*p)->DescribeObjects();
    ASSERT_EQ(objects.size(), 2u);
    EXPECT_EQ(objects[1].id, "b");
  }
  EXPECT_EQ(kernel_.open_fds(), 0u);
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_EQ(edu_.bound_iommufd, -1);
}

TEST_F(PassthroughTest, UnknownIommufdIdIsAnErrorAndClosesThePassedFd) {
  auto p = Passthrough::Create(Objects({"iommufd,id=a"}), *memory_, -1, &kernel_);
  ASSERT_TRUE(p.ok());
  const int fd = kernel_.Open("/dev/vfio/devices/vfio0", 0);
  auto dev = (*p)->CreateVfioPci(Vfio({{"fd", std::to_string(fd)}, {"iommufd", "nope"}}), irq_);
  ASSERT_FALSE(dev.ok());
  EXPECT_NE(std::string(dev.status().message()).find("iommufd=nope"), std::string::npos)
      << dev.status();
  EXPECT_FALSE(kernel_.is_open(fd));
}

TEST_F(PassthroughTest, PassedFdsOpenNoPath) {
  const int iommu = kernel_.AddFd(FakeKernel::Kind::kIommufd);
  const int dev_fd = kernel_.Open("/dev/vfio/devices/vfio1", 0);
  kernel_.opened_paths.clear();
  {
    auto p = Passthrough::Create(
        Objects({absl::StrCat("iommufd,id=a,fd=", iommu).c_str()}), *memory_, -1, &kernel_);
    ASSERT_TRUE(p.ok()) << p.status();
    auto dev = (*p)->CreateVfioPci(Vfio({{"fd", std::to_string(dev_fd)}, {"iommufd", "a"}}), irq_);
    ASSERT_TRUE(dev.ok()) << dev.status();
    EXPECT_EQ(nvme_.bound_iommufd, iommu);
  }
  EXPECT_TRUE(kernel_.opened_paths.empty());
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

TEST_F(PassthroughTest, LegacyContainerAppearsOnFirstUseAndMapsRam) {
  {
    auto p = Passthrough::Create({}, *memory_, -1, &kernel_);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(kernel_.open_fds(), 0u) << "no container before a legacy device";
    auto dev = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}}), irq_);
    ASSERT_TRUE(dev.ok()) << dev.status();
    EXPECT_TRUE(kernel_.iommu_set);
    EXPECT_EQ(kernel_.mapped.size(), 1u) << "guest RAM mapped through type1";
    EXPECT_EQ(kernel_.map_calls, 1);
  }
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

TEST_F(PassthroughTest, DeviceErrorsLeaveTheVmUntouched) {
  kernel_.links["/sys/bus/pci/devices/0000:00:04.0/driver"] = "../../../bus/pci/drivers/nvme";
  auto p = Passthrough::Create(Objects({"iommufd,id=a"}), *memory_, -1, &kernel_);
  ASSERT_TRUE(p.ok());
  const size_t fds = kernel_.open_fds();
  auto dev = (*p)->CreateVfioPci(Vfio({{"host", "00:04.0"}, {"iommufd", "a"}}), irq_);
  ASSERT_FALSE(dev.ok());
  EXPECT_NE(std::string(dev.status().message()).find("bound to nvme"), std::string::npos);
  EXPECT_EQ(kernel_.open_fds(), fds);
  auto missing = (*p)->CreateVfioPci(Vfio({{"host", "00:1f.7"}, {"iommufd", "a"}}), irq_);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("no such PCI device"), std::string::npos);
  EXPECT_EQ(kernel_.open_fds(), fds);
}

}  // namespace
}  // namespace passage
