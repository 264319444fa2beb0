#include "memory/guest_memory.h"

#include <gtest/gtest.h>

#include <vector>

namespace passage {
namespace {

class RecordingListener : public MemoryListener {
 public:
  explicit RecordingListener(int fail_at = -1) : fail_at_(fail_at) {}
  absl::Status OnRegionAdded(const MemoryRegion& r) override {
    if (static_cast<int>(added.size()) == fail_at_) return absl::InternalError("injected");
    added.push_back(r.gpa);
    live.push_back(r.gpa);
    return absl::OkStatus();
  }
  void OnRegionRemoved(const MemoryRegion& r) override {
    removed.push_back(r.gpa);
    std::erase(live, r.gpa);
  }
  std::vector<uint64_t> added, removed, live;

 private:
  int fail_at_;
};

TEST(GuestMemory, RegionsFollowLayoutAndShareOneMemfd) {
  auto mem = GuestMemory::Create({4 * kGiB, false});
  ASSERT_TRUE(mem.ok()) << mem.status();
  const auto& regions = (*mem)->regions();
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].gpa, 0u);
  EXPECT_EQ(regions[1].gpa, kHighRamStart);
  EXPECT_EQ(regions[1].fd_offset, regions[0].size);
  EXPECT_EQ(regions[0].fd, regions[1].fd);
  EXPECT_EQ(regions[0].fd, (*mem)->fd());
}

TEST(GuestMemory, ReadWriteAndBounds) {
  auto mem = GuestMemory::Create({4 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  const uint8_t data[4] = {1, 2, 3, 4};
  ASSERT_TRUE((*mem)->Write(kHighRamStart + 8, data).ok());
  uint8_t back[4] = {};
  ASSERT_TRUE((*mem)->Read(kHighRamStart + 8, back).ok());
  EXPECT_EQ(std::vector<uint8_t>(back, back + 4), std::vector<uint8_t>(data, data + 4));
  // The PCI hole is not RAM, and an access may not straddle a region end.
  EXPECT_FALSE((*mem)->Write(kPciHoleStart, data).ok());
  EXPECT_FALSE((*mem)->Write(kLowRamEnd - 2, data).ok());
  EXPECT_EQ((*mem)->HostAddress(kHighRamStart + kGiB, 1), nullptr);
  EXPECT_EQ((*mem)->HostAddress(~0ull - 1, 4), nullptr);
}

TEST(GuestMemory, RejectsBadSize) {
  EXPECT_FALSE(GuestMemory::Create({4096, false}).ok());
}

TEST(GuestMemory, ListenerSeesExistingRegionsAndRemoval) {
  auto mem = GuestMemory::Create({4 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  RecordingListener l;
  ASSERT_TRUE((*mem)->AddListener(&l).ok());
  EXPECT_EQ(l.added, (std::vector<uint64_t>{0, kHighRamStart}));
  (*mem)->RemoveListener(&l);
  EXPECT_EQ(l.removed, (std::vector<uint64_t>{kHighRamStart, 0}));  // reverse order
  EXPECT_TRUE(l.live.empty());
}

TEST(GuestMemory, FailedReplayIsRolledBack) {
  auto mem = GuestMemory::Create({4 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  RecordingListener l(/*fail_at=*/1);
  EXPECT_FALSE((*mem)->AddListener(&l).ok());
  EXPECT_TRUE(l.live.empty());
  // Not registered: removal tells it nothing.
  (*mem)->RemoveListener(&l);
  EXPECT_EQ(l.removed, (std::vector<uint64_t>{0}));
}

}  // namespace
}  // namespace passage
