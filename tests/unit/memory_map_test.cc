#include "memory/memory_map.h"

#include <gtest/gtest.h>

namespace passage {
namespace {

TEST(ParseMemorySize, AcceptsQemuSpellings) {
  EXPECT_EQ(*ParseMemorySize("512M"), 512 * kMiB);
  EXPECT_EQ(*ParseMemorySize("2G"), 2 * kGiB);
  EXPECT_EQ(*ParseMemorySize("2g"), 2 * kGiB);
  EXPECT_EQ(*ParseMemorySize("1.5G"), 1536 * kMiB);
  EXPECT_EQ(*ParseMemorySize("64K"), 64 * kKiB);
  EXPECT_EQ(*ParseMemorySize("256"), 256 * kMiB);  // bare number: MiB
  EXPECT_EQ(*ParseMemorySize("1T"), 1024 * kGiB);
}

TEST(ParseMemorySize, RejectsBadInput) {
  for (const char* bad : {"", "1X", "G", "-1G", "0", "0M", "1e3M", "0x10M", "1..5G", "1 G",
                          "4097K", "3K", "nan", "inf"}) {
    absl::StatusOr<uint64_t> r = ParseMemorySize(bad);
    EXPECT_FALSE(r.ok()) << "accepted '" << bad << "' as " << r.value_or(0);
  }
  EXPECT_NE(ParseMemorySize("1X").status().message().find("1X"), absl::string_view::npos);
}

TEST(RamLayout, SmallRamIsOneLowRange) {
  std::vector<GuestRange> r = RamLayout(512 * kMiB);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0], (GuestRange{0, 512 * kMiB}));
}

TEST(RamLayout, ExactlyLowRamEndStaysLow) {
  std::vector<GuestRange> r = RamLayout(kLowRamEnd);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].end(), kLowRamEnd);
}

TEST(RamLayout, LargeRamSplitsAroundPciHole) {
  std::vector<GuestRange> r = RamLayout(16 * kGiB);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], (GuestRange{0, kLowRamEnd}));
  EXPECT_EQ(r[1], (GuestRange{kHighRamStart, 16 * kGiB - kLowRamEnd}));
  // Nothing overlaps the PCI hole, the ECAM window or the APICs.
  for (const GuestRange& g : r) {
    EXPECT_TRUE(g.end() <= kPciHoleStart || g.gpa >= kHighRamStart);
  }
  uint64_t total = 0;
  for (const GuestRange& g : r) total += g.size;
  EXPECT_EQ(total, 16 * kGiB);
}

TEST(RamLayout, DeviceWindowsLieInTheHole) {
  EXPECT_GE(kPciMmio32Start, kPciHoleStart);
  EXPECT_LE(kPciMmio32Start + kPciMmio32Size, kEcamStart);
  EXPECT_LE(kEcamStart + kEcamSize, kIoapicStart);
  EXPECT_LT(kIoapicStart, kDebugMmioStart);
  EXPECT_LT(kDebugMmioStart, kHighRamStart);
}

TEST(ValidateRamSize, Limits) {
  EXPECT_TRUE(ValidateRamSize(16 * kMiB, "-m").ok());
  EXPECT_FALSE(ValidateRamSize(16 * kMiB - 4096, "-m").ok());
  EXPECT_FALSE(ValidateRamSize(kMaxRamSize + 4096, "-m").ok());
  absl::Status s = ValidateRamSize(1, "-m");
  EXPECT_NE(s.message().find("-m"), absl::string_view::npos);
}

}  // namespace
}  // namespace passage
