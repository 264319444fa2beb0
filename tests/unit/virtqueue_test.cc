#include "devices/virtio/virtqueue.h"

#include <gtest/gtest.h>

#include "tests/unit/virtio_test_driver.h"

namespace passage {
namespace {

using testing::RingDriver;

class VirtqueueTest : public ::testing::Test {
 protected:
  static constexpr uint16_t kSize = 8;
  VirtqueueTest() : memory_(*GuestMemory::Create({16 * kMiB, false})), driver_(*memory_, kSize) {}
  absl::StatusOr<Virtqueue> Make(VirtqueueConfig c) { return Virtqueue::Create(*memory_, c, "q"); }
  Virtqueue MakeGood() {
    auto q = Make({kSize, RingDriver::kDesc, RingDriver::kAvail, RingDriver::kUsed});
    EXPECT_TRUE(q.ok()) << q.status();
    return std::move(*q);
  }
  absl::Status PopError(Virtqueue& q) {
    auto r = q.Pop();
    return r.ok() ? absl::OkStatus() : r.status();
  }

  std::unique_ptr<GuestMemory> memory_;
  RingDriver driver_;
};

TEST_F(VirtqueueTest, CreateChecksSizeAlignmentAndPlacement) {
  EXPECT_FALSE(Make({0, RingDriver::kDesc, RingDriver::kAvail, RingDriver::kUsed}).ok());
  EXPECT_FALSE(Make({6, RingDriver::kDesc, RingDriver::kAvail, RingDriver::kUsed}).ok());
  EXPECT_FALSE(Make({kSize, RingDriver::kDesc + 8, RingDriver::kAvail, RingDriver::kUsed}).ok());
  EXPECT_FALSE(Make({kSize, RingDriver::kDesc, RingDriver::kAvail + 1, RingDriver::kUsed}).ok());
  EXPECT_FALSE(Make({kSize, RingDriver::kDesc, RingDriver::kAvail, RingDriver::kUsed + 2}).ok());
  // Rings outside RAM or running off its end.
  EXPECT_FALSE(Make({kSize, 16 * kMiB, RingDriver::kAvail, RingDriver::kUsed}).ok());
  EXPECT_FALSE(Make({kSize, RingDriver::kDesc, 16 * kMiB - 8, RingDriver::kUsed}).ok());
  EXPECT_FALSE(Make({kSize, RingDriver::kDesc, RingDriver::kAvail, 0xfffffffffffffffcull}).ok());
  auto s = Make({kSize, 0x100000000ull, RingDriver::kAvail, RingDriver::kUsed}).status();
  EXPECT_NE(s.message().find("descriptor table at 0x100000000"), absl::string_view::npos) << s;
  EXPECT_TRUE(Make({kSize, RingDriver::kDesc, RingDriver::kAvail, RingDriver::kUsed}).ok());
}

TEST_F(VirtqueueTest, PopsChainsAndPushesUsed) {
  Virtqueue q = MakeGood();
  EXPECT_FALSE(q.Pop()->has_value());
  driver_.SetDesc(3, 0x20000, 16, RingDriver::kNext, 5);
  driver_.SetDesc(5, 0x30000, 64, RingDriver::kWrite);
  driver_.Offer(3);
  auto chain = q.Pop();
  ASSERT_TRUE(chain.ok() && chain->has_value());
  EXPECT_EQ((*chain)->head, 3);
  ASSERT_EQ((*chain)->buffers.size(), 2u);
  EXPECT_FALSE((*chain)->buffers[0].device_writable);
  EXPECT_TRUE((*chain)->buffers[1].device_writable);
  EXPECT_EQ((*chain)->buffers[1].host, memory_->HostAddress(0x30000, 64));
  EXPECT_FALSE(q.Pop()->has_value());
  q.PushUsed(3, 64);
  EXPECT_EQ(driver_.UsedIdx(), 1);
  EXPECT_EQ(driver_.UsedId(0), 3u);
  EXPECT_EQ(driver_.UsedLen(0), 64u);
  EXPECT_TRUE(q.NeedsInterrupt());
  driver_.SetAvailFlags(1);
  EXPECT_FALSE(q.NeedsInterrupt());
}

TEST_F(VirtqueueTest, IndicesWrapAround) {
  Virtqueue q = MakeGood();
  driver_.SetDesc(0, 0x20000, 8, RingDriver::kWrite);
  for (int i = 0; i < 3 * kSize; ++i) {
    driver_.Offer(0);
    auto chain = q.Pop();
    ASSERT_TRUE(chain.ok() && chain->has_value()) << i;
    q.PushUsed(0, 8);
  }
  EXPECT_EQ(driver_.UsedIdx(), 3 * kSize);
}

TEST_F(VirtqueueTest, HeadOutOfRange) {
  Virtqueue q = MakeGood();
  driver_.Offer(kSize);
  EXPECT_EQ(PopError(q).code(), absl::StatusCode::kOutOfRange);
}

TEST_F(VirtqueueTest, NextOutOfRange) {
  Virtqueue q = MakeGood();
  driver_.SetDesc(0, 0x20000, 8, RingDriver::kNext, 200);
  driver_.Offer(0);
  EXPECT_EQ(PopError(q).code(), absl::StatusCode::kOutOfRange);
}

TEST_F(VirtqueueTest, LoopingChain) {
  Virtqueue q = MakeGood();
  driver_.SetDesc(0, 0x20000, 8, RingDriver::kNext, 1);
  driver_.SetDesc(1, 0x20000, 8, RingDriver::kNext, 0);
  driver_.Offer(0);
  absl::Status s = PopError(q);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("loop"), absl::string_view::npos) << s;
}

TEST_F(VirtqueueTest, BuffersOutsideRam) {
  for (auto [addr, len] : std::vector<std::pair<uint64_t, uint32_t>>{
           {16 * kMiB - 4, 8},            // runs off the end of RAM
           {16 * kMiB, 1},                // just past it
           {0xfffffffffffffff0ull, 0x20}, // wraps
           {0xfee00000, 4}}) {            // MMIO, not RAM
    Virtqueue q = MakeGood();
    RingDriver driver(*memory_, kSize);
    driver.SetDesc(0, addr, len, RingDriver::kWrite);
    driver.SetAvailIdx(0);
    driver.Offer(0);
    EXPECT_EQ(PopError(q).code(), absl::StatusCode::kOutOfRange) << std::hex << addr;
  }
}

TEST_F(VirtqueueTest, IndirectDescriptorsAreRefused) {
  Virtqueue q = MakeGood();
  driver_.SetDesc(0, 0x20000, 32, RingDriver::kIndirect);
  driver_.Offer(0);
  EXPECT_EQ(PopError(q).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(VirtqueueTest, AvailIndexTooFarAhead) {
  Virtqueue q = MakeGood();
  driver_.SetAvailIdx(kSize + 1);
  EXPECT_EQ(PopError(q).code(), absl::StatusCode::kOutOfRange);
  // Exactly a full ring is fine.
  Virtqueue q2 = MakeGood();
  driver_.SetDesc(0, 0x20000, 8, RingDriver::kWrite);
  driver_.SetAvailIdx(kSize);
  EXPECT_TRUE(q2.Pop().ok());
}

}  // namespace
}  // namespace passage
