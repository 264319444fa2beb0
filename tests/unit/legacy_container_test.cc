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

  const int group = kernel.AddFd(FakeKernel::Kind::kGroup);
  ASSERT_TRUE((*container)->AddGroup(group, 7).ok());
  EXPECT_TRUE(kernel.iommu_set);
  EXPECT_EQ(kernel.group_container, (*container)->fd());
  // A second device in the same group is not a second SET_CONTAINER.
  EXPECT_TRUE((*container)->AddGroup(group, 7).ok());

  auto mem = GuestMemory::Create({4 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE((*mem)->AddListener(container->get()).ok());
  EXPECT_EQ(kernel.mapped.size(), 2u);
  (*mem)->RemoveListener(container->get());
  EXPECT_TRUE(kernel.mapped.empty());
  kernel.Close(group);
}

TEST(LegacyContainer, NonViableGroupIsRefusedWithAHint) {
  FakeKernel kernel;
  kernel.group_viable = false;
  auto container = LegacyContainer::Create(-1, &kernel);
  ASSERT_TRUE(container.ok());
  const int group = kernel.AddFd(FakeKernel::Kind::kGroup);
  absl::Status s = (*container)->AddGroup(group, 12);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("group 12"), std::string::npos) << s.message();
  EXPECT_NE(std::string(s.message()).find("vfio-pci"), std::string::npos) << s.message();
  EXPECT_FALSE(kernel.iommu_set);
  kernel.Close(group);
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
  const int group = kernel.AddFd(FakeKernel::Kind::kGroup);
  ASSERT_TRUE((*container)->AddGroup(group, 1).ok());
  auto ranges = (*container)->AllowedRanges();
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  EXPECT_EQ(*ranges, kernel.allowed);
  uint8_t page[4096];
  absl::Status s = (*container)->Map({0xfee00000, 0x1000, page, -1, 0});
  EXPECT_NE(std::string(s.message()).find("0xfee00000-0xfeefffff"), std::string::npos)
      << s.message();
  kernel.Close(group);
}

TEST(LegacyContainer, TeardownUnmapsAndLeavesTheGroup) {
  FakeKernel kernel;
  const int group = kernel.AddFd(FakeKernel::Kind::kGroup);
  {
    auto container = LegacyContainer::Create(-1, &kernel);
    ASSERT_TRUE(container.ok());
    ASSERT_TRUE((*container)->AddGroup(group, 3).ok());
    uint8_t page[4096];
    ASSERT_TRUE((*container)->Map({0x2000, 0x1000, page, -1, 0}).ok());
  }
  EXPECT_TRUE(kernel.mapped.empty());
  EXPECT_EQ(kernel.group_container, -1);
  EXPECT_EQ(kernel.open_fds(), 1u);  // only the group fd, which the test owns
  kernel.Close(group);
}

}  // namespace
}  // namespace passage
