#include "iommu/iommufd.h"

#include <gtest/gtest.h>

#include "memory/guest_memory.h"
#include "tests/unit/fake_kernel.h"

namespace passage {
namespace {

using testing::FakeKernel;

class IommufdTest : public ::testing::Test {
 protected:
  FakeKernel kernel_;
};

TEST_F(IommufdTest, OpensDevIommuAllocatesIoasAndCleansUp) {
  {
    auto iommufd = Iommufd::Create({"iommufd0"}, &kernel_);
    ASSERT_TRUE(iommufd.ok()) << iommufd.status();
    EXPECT_EQ(kernel_.opened_paths, std::vector<std::string>{"/dev/iommu"});
    EXPECT_NE((*iommufd)->ioas_id(), 0u);
    EXPECT_EQ(kernel_.open_fds(), 1u);
  }
  EXPECT_EQ(kernel_.destroy_calls, 1);
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

TEST_F(IommufdTest, PassedFdIsUsedAndNothingIsOpened) {
  const int fd = kernel_.AddFd(FakeKernel::Kind::kIommufd);
  {
    auto iommufd = Iommufd::Create({"iommufd0", fd}, &kernel_);
    ASSERT_TRUE(iommufd.ok()) << iommufd.status();
    EXPECT_EQ((*iommufd)->fd(), fd);
  }
  EXPECT_TRUE(kernel_.opened_paths.empty());
  EXPECT_FALSE(kernel_.is_open(fd)) << "passage owns passed fds and closes them";
}

TEST_F(IommufdTest, PassedFdOfTheWrongKindIsAClearError) {
  const int fd = kernel_.AddFd(FakeKernel::Kind::kOther);
  auto iommufd = Iommufd::Create({"iommufd0", fd}, &kernel_);
  ASSERT_FALSE(iommufd.ok());
  EXPECT_EQ(iommufd.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(iommufd.status().message());
  EXPECT_NE(msg.find("iommufd0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not an open /dev/iommu"), std::string::npos) << msg;
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

TEST_F(IommufdTest, GuestRamIsMappedByFileAndUnmappedOnRemoval) {
  auto mem = GuestMemory::Create({4 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  auto iommufd = Iommufd::Create({"iommufd0"}, &kernel_);
  ASSERT_TRUE(iommufd.ok());
  ASSERT_TRUE((*mem)->AddListener(iommufd->get()).ok());
  EXPECT_EQ(kernel_.map_file_calls, 2);
  EXPECT_EQ(kernel_.map_calls, 0);
  EXPECT_TRUE((*iommufd)->used_map_file());
  EXPECT_EQ(kernel_.mapped, (std::map<uint64_t, uint64_t>{{0, kLowRamEnd},
                                                          {kHighRamStart, kGiB}}));
  (*mem)->RemoveListener(iommufd->get());
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_TRUE((*iommufd)->mappings().empty());
}

TEST_F(IommufdTest, FallsBackToUserVaMappingWithoutMapFile) {
  kernel_.map_file_supported = false;
  auto mem = GuestMemory::Create({256 * kMiB, false});
  ASSERT_TRUE(mem.ok());
  auto iommufd = Iommufd::Create({"iommufd0"}, &kernel_);
  ASSERT_TRUE(iommufd.ok());
  ASSERT_TRUE((*mem)->AddListener(iommufd->get()).ok());
  EXPECT_EQ(kernel_.map_calls, 1);
  EXPECT_FALSE((*iommufd)->used_map_file());
  EXPECT_EQ(kernel_.mapped.size(), 1u);
  (*mem)->RemoveListener(iommufd->get());
}

TEST_F(IommufdTest, RamInAReservedRangeNamesTheRange) {
  // Allowed: everything but the x86 MSI window.
  kernel_.allowed = {{0, 0xfedfffff}, {0xfef00000, ~0ull}};
  auto iommufd = Iommufd::Create({"iommufd0"}, &kernel_);
  ASSERT_TRUE(iommufd.ok());
  uint8_t page[4096];
  absl::Status s = (*iommufd)->Map({0xfed00000, 0x200000, page, -1, 0});
  ASSERT_FALSE(s.ok());
  const std::string msg(s.message());
  EXPECT_NE(msg.find("0xfee00000-0xfeefffff"), std::string::npos) << msg;
  EXPECT_NE(msg.find("iommufd0"), std::string::npos) << msg;
  EXPECT_EQ(kernel_.map_calls + kernel_.map_file_calls, 0);
  // Below the window is fine.
  EXPECT_TRUE((*iommufd)->Map({0x100000, 0x1000, page, -1, 0}).ok());
}

TEST_F(IommufdTest, FailedMapDuringReplayLeavesNothingMapped) {
  kernel_.faults.FailNth("IOMMU_IOAS_MAP_FILE", 1, ENOMEM);  // the high RAM region fails
  auto mem = GuestMemory::Create({4 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  auto iommufd = Iommufd::Create({"iommufd0"}, &kernel_);
  ASSERT_TRUE(iommufd.ok());
  absl::Status s = (*mem)->AddListener(iommufd->get());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("IOMMU_IOAS_MAP_FILE"), std::string::npos);
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_TRUE((*iommufd)->mappings().empty());
}

TEST_F(IommufdTest, DestructorUnmapsWhatIsLeft) {
  uint8_t page[4096];
  {
    auto iommufd = Iommufd::Create({"iommufd0"}, &kernel_);
    ASSERT_TRUE(iommufd.ok());
    ASSERT_TRUE((*iommufd)->Map({0x1000, 0x1000, page, -1, 0}).ok());
    ASSERT_TRUE((*iommufd)->Map({0x8000, 0x1000, page, -1, 0}).ok());
    EXPECT_EQ(kernel_.mapped.size(), 2u);
  }
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_EQ(kernel_.open_fds(), 0u);
}

TEST(CheckIovaAllowed, EdgeCases) {
  const std::vector<IovaRange> allowed = {{0, 0xfedfffff}, {0xfef00000, 0xffffffffffff}};
  EXPECT_TRUE(CheckIovaAllowed("s", 0, 0xfee00000, allowed).ok());
  EXPECT_FALSE(CheckIovaAllowed("s", 0, 0xfee00001, allowed).ok());
  EXPECT_TRUE(CheckIovaAllowed("s", 0xfef00000, 0x1000, allowed).ok());
  EXPECT_FALSE(CheckIovaAllowed("s", 0, 0, allowed).ok());
  EXPECT_FALSE(CheckIovaAllowed("s", ~0ull - 0xfff, 0x2000, allowed).ok());  // wraps
  absl::Status top = CheckIovaAllowed("s", 0xfffffffff000, 0x2000, allowed);
  EXPECT_NE(std::string(top.message()).find("0x1000000000000-0xffffffffffffffff"),
            std::string::npos)
      << top.message();
}

}  // namespace
}  // namespace passage
