#include "iommu/legacy_container.h"

#include <gtest/gtest.h>

#include "memory/guest_memory.h"
#include "tests/unit/fake_kernel.h"

namespace passage {
namespace {

using testing::FakeKernel;

TEST(LegacyContainer, MapsOnlyOnceAGroupSelectedTheIommu) {
  FakeKernel kernel;
  auto container = LegacyContainer::Create(-1, &kernel);
  ASSERT_TRUE(container.ok()) << container.status();
  uint8_t page[4096];
  EXPECT_FALSE((*container)->Map({0x1000, 0x1000, page, -1, 0}).ok());

  auto group = (*container)->AcquireGroup(7, "dev0");
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_TRUE(kernel.iommu_set);
  EXPECT_EQ(kernel.group_container, (*container)->fd());
  // A second device in the same group shares the fd: no second open, no
  // second SET_CONTAINER (the fake would refuse it with EBUSY).
  auto again = (*container)->AcquireGroup(7, "dev1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *group);
  EXPECT_EQ(kernel.opened_paths, (std::vector<std::string>{"/dev/vfio/vfio", "/dev/vfio/7"}));

  auto mem = GuestMemory::Create({4 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE((*mem)->AddListener(container->get()).ok());
  EXPECT_EQ(kernel.mapped.size(), 2u);
  (*mem)->RemoveListener(container->get());
  EXPECT_TRUE(kernel.mapped.empty());
  (*container)->ReleaseGroup(7);
  EXPECT_TRUE(kernel.iommu_set) << "one user left";
  (*container)->ReleaseGroup(7);
  EXPECT_FALSE(kernel.iommu_set);
  EXPECT_EQ(kernel.open_fds(), 1u) << "only the container";
}

TEST(LegacyContainer, NonViableGroupIsRefusedWithAHint) {
  FakeKernel kernel;
  kernel.group_viable = false;
  auto container = LegacyContainer::Create(-1, &kernel);
  ASSERT_TRUE(container.ok());
  auto group = (*container)->AcquireGroup(12, "dev0");
  ASSERT_FALSE(group.ok());
  const std::string msg(group.status().message());
  EXPECT_NE(msg.find("dev0: vfio group 12"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vfio-pci"), std::string::npos) << msg;
  EXPECT_FALSE(kernel.iommu_set);
  EXPECT_EQ(kernel.open_fds(), 1u) << "the group fd is closed again";
}

TEST(LegacyContainer, WrongFdKindIsRefusedAndClosed) {
  FakeKernel kernel;
  const int fd = kernel.AddFd(FakeKernel::Kind::kIommufd);
  auto container = LegacyContainer::Create(fd, &kernel);
  ASSERT_FALSE(container.ok());
  EXPECT_NE(std::string(container.status().message()).find("not a VFIO container"),
            std::string::npos);
  EXPECT_EQ(kernel.open_fds(), 0u);
}

TEST(LegacyContainer, ReservedRangesComeFromTheIovaCapability) {
  FakeKernel kernel;
  kernel.allowed = {{0, 0xfedfffff}, {0xfef00000, 0xffffffffff}};
  auto container = LegacyContainer::Create(-1, &kernel);
  ASSERT_TRUE(container.ok());
  ASSERT_TRUE((*container)->AcquireGroup(1, "dev0").ok());
  auto ranges = (*container)->AllowedRanges();
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  EXPECT_EQ(*ranges, kernel.allowed);
  uint8_t page[4096];
  absl::Status s = (*container)->Map({0xfee00000, 0x1000, page, -1, 0});
  EXPECT_NE(std::string(s.message()).find("0xfee00000-0xfeefffff"), std::string::npos)
      << s.message();
}

TEST(LegacyContainer, TeardownUnmapsAndLeavesTheGroup) {
  FakeKernel kernel;
  {
    auto container = LegacyContainer::Create(-1, &kernel);
    ASSERT_TRUE(container.ok());
    ASSERT_TRUE((*container)->AcquireGroup(3, "dev0").ok());
    uint8_t page[4096];
    ASSERT_TRUE((*container)->Map({0x2000, 0x1000, page, -1, 0}).ok());
  }
  EXPECT_TRUE(kernel.mapped.empty());
  EXPECT_EQ(kernel.group_container, -1);
  EXPECT_EQ(kernel.open_fds(), 0u);
}

}  // namespace
}  // namespace passage
