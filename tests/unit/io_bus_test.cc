#include "devices/io_bus.h"

#include <gtest/gtest.h>

#include <vector>

namespace passage {
namespace {

struct Access {
  bool write;
  uint64_t offset;
  size_t size;
};

class FakeDevice : public IoHandler {
 public:
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    log.push_back({false, offset, data.size()});
    for (auto& b : data) b = 0xab;
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    log.push_back({true, offset, data.size()});
  }
  std::vector<Access> log;
};

TEST(IoBus, DispatchesByRangeWithOffsets) {
  IoBus bus("test");
  auto a = std::make_shared<FakeDevice>();
  auto b = std::make_shared<FakeDevice>();
  ASSERT_TRUE(bus.Register(0x3f8, 8, a, "a").ok());
  ASSERT_TRUE(bus.Register(0x400, 0x10, b, "b").ok());
  uint8_t buf[2] = {};
  EXPECT_TRUE(bus.Read(0x3fd, std::span<uint8_t>(buf, 1)));
  EXPECT_EQ(buf[0], 0xab);
  EXPECT_TRUE(bus.Write(0x40e, std::span<const uint8_t>(buf, 2)));
  ASSERT_EQ(a->log.size(), 1u);
  EXPECT_EQ(a->log[0].offset, 5u);
  ASSERT_EQ(b->log.size(), 1u);
  EXPECT_EQ(b->log[0].offset, 0xeu);
  EXPECT_TRUE(b->log[0].write);
  EXPECT_EQ(b->log[0].size, 2u);
}

TEST(IoBus, UnclaimedReadsAllOnesAndWritesAreDropped) {
  IoBus bus("test");
  auto a = std::make_shared<FakeDevice>();
  ASSERT_TRUE(bus.Register(0x100, 4, a, "a").ok());
  uint8_t buf[4] = {};
  EXPECT_FALSE(bus.Read(0x104, buf));
  EXPECT_EQ(buf[0], 0xff);
  EXPECT_EQ(buf[3], 0xff);
  // An access straddling the end of a range is not dispatched.
  EXPECT_FALSE(bus.Write(0x102, std::span<const uint8_t>(buf, 4)));
  EXPECT_FALSE(bus.Read(0xff, std::span<uint8_t>(buf, 2)));
  EXPECT_TRUE(a->log.empty());
}

TEST(IoBus, RejectsOverlapsAndEmptyRanges) {
  IoBus bus("test");
  auto a = std::make_shared<FakeDevice>();
  ASSERT_TRUE(bus.Register(0x100, 0x10, a, "a").ok());
  EXPECT_EQ(bus.Register(0x108, 0x10, a, "b").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(bus.Register(0xf8, 0x10, a, "c").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(bus.Register(0x100, 1, a, "d").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(bus.Register(0x200, 0, a, "e").ok());
  EXPECT_FALSE(bus.Register(~0ull - 1, 4, a, "wrap").ok());
  EXPECT_TRUE(bus.Register(0x110, 0x10, a, "adjacent").ok());
  EXPECT_TRUE(bus.Register(0xf0, 0x10, a, "adjacent-below").ok());
  absl::Status s = bus.Register(0x105, 1, a, "newcomer");
  EXPECT_NE(s.message().find("newcomer"), absl::string_view::npos);
  EXPECT_NE(s.message().find("overlaps a"), absl::string_view::npos);
}

TEST(IoBus, UnregisterFreesTheRange) {
  IoBus bus("test");
  auto a = std::make_shared<FakeDevice>();
  ASSERT_TRUE(bus.Register(0x100, 0x10, a, "a").ok());
  EXPECT_TRUE(bus.Unregister(0x100).ok());
  EXPECT_EQ(bus.Unregister(0x100).code(), absl::StatusCode::kNotFound);
  uint8_t buf[1];
  EXPECT_FALSE(bus.Read(0x100, buf));
  EXPECT_TRUE(bus.Register(0x100, 0x10, a, "again").ok());
}

}  // namespace
}  // namespace passage
