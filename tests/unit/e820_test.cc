#include "vmm/e820.h"

#include <gtest/gtest.h>

#include <vector>

namespace passage {
namespace {

using T = E820Type;

TEST(E820, RamOnly) {
  const std::vector<GuestRange> ram = {{0, 512 * kMiB}};
  auto map = BuildE820(ram, {});
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(*map, (std::vector<E820Entry>{{0, 512 * kMiB, T::kRam}}));
}

TEST(E820, SpecialRangesCarveRamAndMerge) {
  const std::vector<GuestRange> ram = {{0, 3 * kGiB}, {4 * kGiB, 2 * kGiB}};
  const std::vector<E820Entry> special = {
      {0xfeffc000, 0x4000, T::kReserved},  // outside RAM: listed as is
      {0xe0000, 0x1000, T::kAcpi},
      {0xa0000, 0x40000, T::kReserved},
      {0xe1000, 0x1f000, T::kReserved},
  };
  auto map = BuildE820(ram, special);
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(*map, (std::vector<E820Entry>{
                      {0, 0xa0000, T::kRam},
                      {0xa0000, 0x40000, T::kReserved},
                      {0xe0000, 0x1000, T::kAcpi},
                      {0xe1000, 0x1f000, T::kReserved},
                      {0x100000, 3 * kGiB - 0x100000, T::kRam},
                      {0xfeffc000, 0x4000, T::kReserved},
                      {4 * kGiB, 2 * kGiB, T::kRam},
                  }));
}

TEST(E820, AdjacentRangesOfOneTypeMerge) {
  const std::vector<GuestRange> ram = {{0, kGiB}};
  const std::vector<E820Entry> special = {{0xa0000, 0x20000, T::kReserved},
                                          {0xc0000, 0x40000, T::kReserved}};
  auto map = BuildE820(ram, special);
  ASSERT_TRUE(map.ok()) << map.status();
  ASSERT_EQ(map->size(), 3u);
  EXPECT_EQ((*map)[1], (E820Entry{0xa0000, 0x60000, T::kReserved}));
}

TEST(E820, SpecialRangeAtRamEdges) {
  const std::vector<GuestRange> ram = {{0, kGiB}};
  auto map = BuildE820(ram, std::vector<E820Entry>{{0, 0x1000, T::kReserved},
                                                   {kGiB - 0x1000, 0x2000, T::kReserved}});
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(*map, (std::vector<E820Entry>{{0, 0x1000, T::kReserved},
                                          {0x1000, kGiB - 0x2000, T::kRam},
                                          {kGiB - 0x1000, 0x2000, T::kReserved}}));
}

TEST(E820, RejectsOverlapsAndBadRanges) {
  const std::vector<GuestRange> ram = {{0, kGiB}};
  auto overlap = BuildE820(ram, std::vector<E820Entry>{{0xa0000, 0x10000, T::kReserved},
                                                       {0xa8000, 0x10000, T::kAcpi}});
  ASSERT_FALSE(overlap.ok());
  EXPECT_NE(overlap.status().message().find("overlaps"), std::string::npos);
  EXPECT_FALSE(BuildE820(ram, std::vector<E820Entry>{{0x1000, 0, T::kReserved}}).ok());
  EXPECT_FALSE(BuildE820(ram, std::vector<E820Entry>{{~0ull - 10, 100, T::kReserved}}).ok());
  EXPECT_FALSE(BuildE820(std::vector<GuestRange>{{0, kGiB}, {kGiB / 2, kGiB}}, {}).ok());
  EXPECT_FALSE(BuildE820(std::vector<GuestRange>{{0, 0}}, {}).ok());
}

TEST(E820, RejectsMoreEntriesThanBootParamsHolds) {
  const std::vector<GuestRange> ram = {{0, kGiB}};
  std::vector<E820Entry> special;
  for (uint64_t i = 0; i < 70; ++i) special.push_back({0x200000 + i * 0x2000, 0x1000, T::kReserved});
  auto map = BuildE820(ram, special);  // 70 reserved + 71 RAM pieces
  ASSERT_FALSE(map.ok());
  EXPECT_NE(map.status().message().find("at most 128"), std::string::npos) << map.status();
}

}  // namespace
}  // namespace passage
