// -object iommufd / -device vfio-pci parsing, and the VM's passthrough side
// over the fake kernel: every iommufd object maps all RAM, devices choose
// theirs, the legacy container appears on first use, and teardown leaves no
// fd, mapping or binding behind.
#include "vmm/passthrough.h"

#include <gtest/gtest.h>
#include <linux/vfio.h>

#include <algorithm>

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
  if (auto it = d.props.find("fd"); it != d.props.end()) d.fd = std::stoi(it->second);
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
    kernel_.AddVfioPciSysfs("0000:00:03.0", "vfio0", "3", &edu_);
    kernel_.AddVfioPciSysfs("0000:00:04.0", "vfio1", "4", &nvme_);
    auto mem = GuestMemory::Create({512 * kMiB, false});
    ASSERT_TRUE(mem.ok());
    memory_ = std::move(*mem);
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
  EventLoop loop_;
};

TEST_F(PassthroughTest, TwoIommufdObjectsOneDeviceEach) {
  {
    auto p = Passthrough::Create(Objects({"iommufd,id=a", "iommufd,id=b"}), *memory_, loop_, -1, &kernel_);
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
  auto p = Passthrough::Create(Objects({"iommufd,id=a"}), *memory_, loop_, -1, &kernel_);
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
        Objects({absl::StrCat("iommufd,id=a,fd=", iommu).c_str()}), *memory_, loop_, -1, &kernel_);
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
    auto p = Passthrough::Create({}, *memory_, loop_, -1, &kernel_);
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
  auto p = Passthrough::Create(Objects({"iommufd,id=a"}), *memory_, loop_, -1, &kernel_);
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

// ---- one IOAS shared by two devices ----------------------------------------

TEST_F(PassthroughTest, TwoDevicesShareOneIoasAndOneSetOfMappings) {
  {
    auto p = Passthrough::Create(Objects({"iommufd,id=a"}), *memory_, loop_, -1, &kernel_);
    ASSERT_TRUE(p.ok()) << p.status();
    const auto mapped = kernel_.mapped;
    ASSERT_EQ(mapped.size(), 1u) << "512 MiB of RAM is one mapping";
    auto edu = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}, {"iommufd", "a"}}), irq_);
    ASSERT_TRUE(edu.ok()) << edu.status();
    auto nvme = (*p)->CreateVfioPci(Vfio({{"host", "00:04.0"}, {"iommufd", "a"}}), irq_);
    ASSERT_TRUE(nvme.ok()) << nvme.status();
    const uint32_t ioas = (*p)->DescribeObjects().at(0).ioas_id;
    EXPECT_EQ(edu_.attached_pt, ioas);
    EXPECT_EQ(nvme_.attached_pt, ioas);
    EXPECT_EQ(edu_.bound_iommufd, nvme_.bound_iommufd) << "one /dev/iommu";
    EXPECT_EQ(kernel_.map_file_calls + kernel_.map_calls, 1) << "RAM mapped once, not per device";
    EXPECT_EQ(kernel_.mapped, mapped);
    EXPECT_EQ(std::count_if(kernel_.opened_paths.begin(), kernel_.opened_paths.end(),
                            [](const std::string& p) { return p == "/dev/iommu"; }),
              1);
  }
  EXPECT_EQ(kernel_.unmap_calls, 1) << "teardown unmaps the one set once";
  EXPECT_EQ(kernel_.destroy_calls, 1) << "one IOAS";
  EXPECT_EQ(std::count_if(kernel_.events.begin(), kernel_.events.end(),
                          [](const std::string& e) { return e.rfind("detach ", 0) == 0; }),
            2)
      << "both devices detached";
  EXPECT_EQ(edu_.attached_pt, 0u);
  EXPECT_EQ(nvme_.attached_pt, 0u);
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

TEST_F(PassthroughTest, SharedIoasWithAReservedWindowBelowRamWorks) {
  // Both devices reserve the MSI window; 512 MiB of RAM sits far below it.
  edu_.reserved = nvme_.reserved = {{0xfee00000, 0xfeefffff}};
  auto p = Passthrough::Create(Objects({"iommufd,id=a"}), *memory_, loop_, -1, &kernel_);
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE((*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}, {"iommufd", "a"}}), irq_).ok());
  ASSERT_TRUE((*p)->CreateVfioPci(Vfio({{"host", "00:04.0"}, {"iommufd", "a"}}), irq_).ok());
}

// ---- KVM-VFIO: the file is added before the device binds --------------------

TEST_F(PassthroughTest, KvmVfioAddComesBeforeBindAndDelAtTeardown) {
  const int vm = kernel_.AddFd(FakeKernel::Kind::kKvmVm);
  {
    auto p = Passthrough::Create(Objects({"iommufd,id=a"}), *memory_, loop_, vm, &kernel_);
    ASSERT_TRUE(p.ok());
    auto edu = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}, {"iommufd", "a"}}), irq_);
    ASSERT_TRUE(edu.ok()) << edu.status();
    auto nvme = (*p)->CreateVfioPci(Vfio({{"host", "00:04.0"}, {"iommufd", "a"}}), irq_);
    ASSERT_TRUE(nvme.ok()) << nvme.status();
    EXPECT_EQ(kernel_.kvm_vfio_devices, 1) << "one KVM-VFIO device for the VM";
    EXPECT_EQ(kernel_.kvm_vfio_files.size(), 2u);
    // For each device: add, then bind, then attach, on the same fd.
    std::vector<std::string> kinds;
    for (const std::string& e : kernel_.events) kinds.push_back(e.substr(0, e.rfind(' ')));
    EXPECT_EQ(kinds, (std::vector<std::string>{"kvm-vfio add", "bind", "attach", "kvm-vfio add",
                                               "bind", "attach"}));
    EXPECT_EQ(kernel_.events[0].substr(13), kernel_.events[1].substr(5)) << "the same file";
  }
  EXPECT_TRUE(kernel_.kvm_vfio_files.empty()) << "FILE_DEL for every file at teardown";
  std::vector<std::string> dels;
  for (const std::string& e : kernel_.events) {
    if (e.rfind("kvm-vfio del", 0) == 0) dels.push_back(e);
  }
  EXPECT_EQ(dels.size(), 2u);
  kernel_.Close(vm);
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

TEST_F(PassthroughTest, KvmVfioKnowsALegacyGroupOnceForItsDevices) {
  // Both devices in group 3: one FILE_ADD of the group, FILE_DEL with the last.
  kernel_.links["/sys/bus/pci/devices/0000:00:04.0/iommu_group"] =
      "../../../kernel/iommu_groups/3";
  const int vm = kernel_.AddFd(FakeKernel::Kind::kKvmVm);
  {
    auto p = Passthrough::Create({}, *memory_, loop_, vm, &kernel_);
    ASSERT_TRUE(p.ok());
    auto edu = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}}), irq_);
    ASSERT_TRUE(edu.ok()) << edu.status();
    auto nvme = (*p)->CreateVfioPci(Vfio({{"host", "00:04.0"}}), irq_);
    ASSERT_TRUE(nvme.ok()) << nvme.status();
    ASSERT_EQ(kernel_.events.size(), 1u);
    EXPECT_EQ(kernel_.events[0].rfind("kvm-vfio add", 0), 0u);
    edu->reset();
    EXPECT_EQ(kernel_.kvm_vfio_files.size(), 1u) << "nvme still uses the group";
  }
  EXPECT_TRUE(kernel_.kvm_vfio_files.empty());
  kernel_.Close(vm);
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

// ---- passage owns every passed fd ------------------------------------------

TEST_F(PassthroughTest, AFailingObjectClosesTheFdsOfEveryObject) {
  const int good = kernel_.AddFd(FakeKernel::Kind::kIommufd);
  const int bad = kernel_.AddFd(FakeKernel::Kind::kOther);
  const int after = kernel_.AddFd(FakeKernel::Kind::kIommufd);
  auto p = Passthrough::Create(
      Objects({absl::StrCat("iommufd,id=a,fd=", good).c_str(),
               absl::StrCat("iommufd,id=b,fd=", bad).c_str(),
               absl::StrCat("iommufd,id=c,fd=", after).c_str()}),
      *memory_, loop_, -1, &kernel_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(std::string(p.status().message()).rfind("-object iommufd,id=b", 0), 0u) << p.status();
  EXPECT_FALSE(kernel_.is_open(good));
  EXPECT_FALSE(kernel_.is_open(bad));
  EXPECT_FALSE(kernel_.is_open(after)) << "the object after the failing one";
  EXPECT_EQ(kernel_.open_fds(), 0u);
  EXPECT_TRUE(kernel_.mapped.empty());
}

TEST_F(PassthroughTest, EveryFailingDeviceClosesItsPassedFd) {
  const int vm = kernel_.AddFd(FakeKernel::Kind::kKvmVm);
  auto p = Passthrough::Create(Objects({"iommufd,id=a"}), *memory_, loop_, vm, &kernel_);
  ASSERT_TRUE(p.ok());
  const size_t baseline = kernel_.open_fds();
  // Four devices, four ways to fail, all fds given at once.
  const int unknown_object = kernel_.Open("/dev/vfio/devices/vfio0", 0);
  const int wrong_kind = kernel_.AddFd(FakeKernel::Kind::kOther);
  const int no_iommufd = kernel_.Open("/dev/vfio/devices/vfio1", 0);
  const int not_pci = kernel_.Open("/dev/vfio/devices/vfio1", 0);
  auto d1 = (*p)->CreateVfioPci(
      Vfio({{"fd", std::to_string(unknown_object)}, {"iommufd", "nope"}}), irq_);
  auto d2 = (*p)->CreateVfioPci(Vfio({{"fd", std::to_string(wrong_kind)}, {"iommufd", "a"}}), irq_);
  auto d3 = (*p)->CreateVfioPci(Vfio({{"fd", std::to_string(no_iommufd)}}), irq_);
  nvme_.regions.resize(VFIO_PCI_CONFIG_REGION_INDEX);  // no config region: fails after attach
  auto d4 = (*p)->CreateVfioPci(Vfio({{"fd", std::to_string(not_pci)}, {"iommufd", "a"}}), irq_);
  EXPECT_NE(std::string(d1.status().message()).find("iommufd=nope"), std::string::npos) << d1.status();
  EXPECT_NE(std::string(d2.status().message()).find("not a VFIO device cdev"), std::string::npos)
      << d2.status();
  EXPECT_NE(std::string(d3.status().message()).find("fd= without iommufd="), std::string::npos)
      << d3.status();
  EXPECT_FALSE(d4.ok());
  for (int fd : {unknown_object, wrong_kind, no_iommufd, not_pci}) {
    EXPECT_FALSE(kernel_.is_open(fd)) << "fd " << fd;
  }
  // Besides the VM's KVM-VFIO device (made on first use, kept), nothing.
  EXPECT_EQ(kernel_.kvm_vfio_devices, 1);
  EXPECT_EQ(kernel_.open_fds(), baseline + 1);
  EXPECT_TRUE(kernel_.kvm_vfio_files.empty()) << "no file left with KVM";
  EXPECT_EQ(nvme_.bound_iommufd, -1);
  p->reset();
  kernel_.Close(vm);
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

// ---- run time: object-add / object-del, the container's life --------------

TEST_F(PassthroughTest, AddObjectAdoptsItsFdAndClosesItOnEveryError) {
  auto p = Passthrough::Create({}, *memory_, loop_, -1, &kernel_);
  ASSERT_TRUE(p.ok());
  const int good = kernel_.AddFd(FakeKernel::Kind::kIommufd);
  kernel_.opened_paths.clear();
  ASSERT_TRUE((*p)->AddObject(*ParseObjectConfig("iommufd,id=a"), good).ok());
  EXPECT_TRUE(kernel_.opened_paths.empty()) << "a passed fd: nothing opened";
  EXPECT_EQ(kernel_.mapped.size(), 1u) << "all RAM mapped";
  ASSERT_TRUE((*p)->DescribeObjects().at(0).passed_fd);
  const int dup = kernel_.AddFd(FakeKernel::Kind::kIommufd);
  absl::Status s = (*p)->AddObject(*ParseObjectConfig("iommufd,id=a"), dup);
  EXPECT_EQ(s.message(), "object-add: id 'a' is already in use");
  EXPECT_FALSE(kernel_.is_open(dup));
  const int wrong = kernel_.AddFd(FakeKernel::Kind::kOther);
  s = (*p)->AddObject(*ParseObjectConfig("iommufd,id=b"), wrong);
  EXPECT_NE(s.message().find("is not an open /dev/iommu"), absl::string_view::npos) << s;
  EXPECT_FALSE(kernel_.is_open(wrong));
  EXPECT_EQ((*p)->DescribeObjects().size(), 1u);
  ASSERT_TRUE((*p)->RemoveObject("a").ok());
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_FALSE(kernel_.is_open(good));
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

TEST_F(PassthroughTest, RemoveObjectIsRefusedWhileADeviceUsesIt) {
  auto p = Passthrough::Create(Objects({"iommufd,id=a", "iommufd,id=b"}), *memory_, loop_, -1, &kernel_);
  ASSERT_TRUE(p.ok());
  auto edu = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}, {"iommufd", "a"}}), irq_);
  ASSERT_TRUE(edu.ok()) << edu.status();
  absl::Status s = (*p)->RemoveObject("a");
  EXPECT_EQ(s.message(), "object-del: iommufd 'a' is in use by device dev0; device_del it first");
  EXPECT_EQ((*p)->DescribeObjects().at(0).devices, std::vector<std::string>{"dev0"});
  ASSERT_TRUE((*p)->RemoveObject("b").ok()) << "b has no device";
  edu->reset();  // the device closes
  ASSERT_TRUE((*p)->RemoveObject("a").ok());
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

TEST_F(PassthroughTest, AContainerThatLostItsIommuMapsRamAgainForTheNextDevice) {
  auto p = Passthrough::Create({}, *memory_, loop_, -1, &kernel_);
  ASSERT_TRUE(p.ok());
  auto a = (*p)->CreateVfioPci(Vfio({{"host", "00:03.0"}}), irq_);
  ASSERT_TRUE(a.ok()) << a.status();
  a->reset();  // closed without ReleaseUnused (a late close): the group left, the kernel dropped RAM
  EXPECT_TRUE(kernel_.mapped.empty());
  ASSERT_TRUE((*p)->DescribeContainer().has_value());
  auto b = (*p)->CreateVfioPci(Vfio({{"host", "00:04.0"}}), irq_);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(kernel_.mapped.size(), 1u) << "guest RAM mapped again";
  b->reset();
  (*p)->ReleaseUnused();
  EXPECT_FALSE((*p)->DescribeContainer().has_value());
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

}  // namespace
}  // namespace passage
