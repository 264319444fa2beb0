#include "vmm/x86_boot.h"

#include <gtest/gtest.h>

#include <vector>

namespace passage {
namespace {

uint64_t Load64(GuestMemory& m, uint64_t gpa) {
  uint64_t v = 0;
  EXPECT_TRUE(m.Read(gpa, {reinterpret_cast<uint8_t*>(&v), 8}).ok());
  return v;
}

// Walks passage's identity tables for `va` the way the MMU would.
uint64_t Translate(GuestMemory& m, uint64_t va) {
  const uint64_t pml4e = Load64(m, kPml4Addr + ((va >> 39) & 511) * 8);
  if (!(pml4e & 1)) return ~0ull;
  const uint64_t pdpte = Load64(m, (pml4e & ~0xfffull) + ((va >> 30) & 511) * 8);
  if (!(pdpte & 1)) return ~0ull;
  const uint64_t pde = Load64(m, (pdpte & ~0xfffull) + ((va >> 21) & 511) * 8);
  if (!(pde & 1) || !(pde & 0x80)) return ~0ull;
  return (pde & ~0x1fffffull) + (va & 0x1fffff);
}

TEST(LongModeTables, IdentityMapCoversLowAndHighRam) {
  auto mem = GuestMemory::Create({6 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE(WriteLongModeTables(**mem).ok());
  for (uint64_t va : std::vector<uint64_t>{0, 0x100000, 0x12345678, kPciHoleStart + 0x1000, kIoapicStart,
                      kHighRamStart + 0x1000, 7 * kGiB - 1}) {
    EXPECT_EQ(Translate(**mem, va), va) << std::hex << va;
  }
  // RAM ends at 7 GiB; the map covers at least 8 GiB and no more here.
  EXPECT_EQ(Translate(**mem, 8 * kGiB - 4096), 8 * kGiB - 4096);
  EXPECT_EQ(Translate(**mem, 8 * kGiB), ~0ull);
  // The tables themselves stay below the legacy hole.
  EXPECT_LE(kPdAddr + kMaxIdentityMapGiB * 4096, kLegacyHoleStart);
}

TEST(LongModeTables, LargeRamIsMappedToItsEnd) {
  auto mem = GuestMemory::Create({20 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE(WriteLongModeTables(**mem).ok());
  const uint64_t end = kHighRamStart + 20 * kGiB - kLowRamEnd;  // 21 GiB
  EXPECT_EQ(Translate(**mem, end - 8), end - 8);
  EXPECT_EQ(Translate(**mem, end), ~0ull);
}

TEST(LongModeTables, GdtHasLinuxBootSelectors) {
  auto mem = GuestMemory::Create({64 * kMiB, false});
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE(WriteLongModeTables(**mem).ok());
  const uint64_t cs = Load64(**mem, kGdtAddr + kBootCs);
  const uint64_t ds = Load64(**mem, kGdtAddr + kBootDs);
  EXPECT_TRUE(cs & (1ull << 53)) << "code segment must be 64-bit (L bit)";
  EXPECT_TRUE(cs & (1ull << 47)) << "present";
  EXPECT_EQ((cs >> 40) & 0x8, 0x8u) << "executable";
  EXPECT_EQ((ds >> 40) & 0x8, 0u) << "data segment";
}

TEST(EntryRegisters, LongModeState) {
  kvm_sregs sregs{};
  kvm_regs regs{};
  SetupEntryRegisters({BootEntry::Mode::kLong, 0x1000200, 0x7000}, sregs, regs);
  EXPECT_EQ(regs.rip, 0x1000200u);
  EXPECT_EQ(regs.rsi, 0x7000u);
  EXPECT_EQ(sregs.efer & 0x500, 0x500u);
  EXPECT_TRUE(sregs.cr0 & 0x80000000);
  EXPECT_TRUE(sregs.cr4 & 0x20);
  EXPECT_EQ(sregs.cr3, kPml4Addr);
  EXPECT_EQ(sregs.cs.selector, kBootCs);
  EXPECT_EQ(sregs.cs.l, 1);
  EXPECT_EQ(sregs.ds.selector, kBootDs);
}

TEST(EntryRegisters, RealModeState) {
  kvm_sregs sregs{};
  kvm_regs regs{};
  SetupEntryRegisters({BootEntry::Mode::kReal, kRealModeLoadAddr, 0}, sregs, regs);
  EXPECT_EQ(sregs.cs.base, kRealModeLoadAddr);
  EXPECT_EQ(sregs.cs.selector, kRealModeLoadAddr >> 4);
  EXPECT_EQ(regs.rip, 0u);
}

}  // namespace
}  // namespace passage
