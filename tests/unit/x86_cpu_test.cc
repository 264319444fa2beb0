// The guest CPUID table (-cpu host with -smp topology) and the boot MSRs.
#include "vmm/x86_cpu.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace passage {
namespace {

kvm_cpuid_entry2 Entry(uint32_t fn, uint32_t index, uint32_t a, uint32_t b, uint32_t c,
                       uint32_t d) {
  kvm_cpuid_entry2 e{};
  e.function = fn;
  e.index = index;
  e.eax = a;
  e.ebx = b;
  e.ecx = c;
  e.edx = d;
  return e;
}

// Roughly what KVM reports on an Intel host with XSAVE/AVX (values trimmed).
std::vector<kvm_cpuid_entry2> Supported() {
  return {
      Entry(0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),
      Entry(1, 0, 0x000806c1, 0x00100800, 0xf7fa3223 & ~(1u << 24), 0x178bfbff),
      Entry(4, 0, 0x1c004121, 0x02c0003f, 0x3f, 0),   // L1d
      Entry(4, 3, 0x1c03c163, 0x03c0003f, 0x2fff, 4),  // L3, shared by 16
      Entry(7, 0, 0, 0xf3bfa7ab, 0x18c05fce, 0xfc100010),
      Entry(0xb, 0, 1, 2, 0x100, 7),
      Entry(0xb, 1, 4, 8, 0x201, 7),
      Entry(0xb, 2, 0, 0, 2, 7),
      Entry(0xd, 0, 0x207, 0x340, 0xa88, 0),
      Entry(0xd, 1, 0xf, 0x340, 0, 0),
      Entry(0x80000008, 0, 0x3030, 0, 0x0000700f, 0),
      Entry(0x80000026, 0, 1, 2, 0x100, 0),
  };
}

CpuidOptions Opts(int index, int cpus, bool tsc_deadline = false,
                  std::vector<std::string> disabled = {}) {
  CpuidOptions o;
  o.index = index;
  o.cpus = cpus;
  o.tsc_deadline = tsc_deadline;
  o.disabled = std::move(disabled);
  return o;
}

const kvm_cpuid_entry2* Find(const std::vector<kvm_cpuid_entry2>& t, uint32_t fn,
                             uint32_t index = 0) {
  for (const auto& e : t) {
    if (e.function == fn && e.index == index) return &e;
  }
  return nullptr;
}

TEST(GuestCpuid, TopologyFollowsSmp) {
  const auto t = GuestCpuid(Supported(), Opts(2, 3, true));
  const auto* l1 = Find(t, 1);
  ASSERT_NE(l1, nullptr);
  EXPECT_EQ(l1->ebx >> 24, 2u);             // APIC ID
  EXPECT_EQ((l1->ebx >> 16) & 0xff, 4u);    // addressable IDs: 2 bits for 3 CPUs
  EXPECT_TRUE(l1->edx & (1u << 28));        // HTT
  EXPECT_TRUE(l1->ecx & (1u << 24));        // TSC deadline
  // Leaf 0xB: one thread per core, three cores, this CPU's x2APIC ID.
  const auto* smt = Find(t, 0xb, 0);
  const auto* core = Find(t, 0xb, 1);
  const auto* end = Find(t, 0xb, 2);
  ASSERT_TRUE(smt && core && end);
  EXPECT_EQ(smt->eax, 0u);
  EXPECT_EQ(smt->ebx, 1u);
  EXPECT_EQ(smt->ecx, 0x100u);
  EXPECT_EQ(core->eax, 2u);
  EXPECT_EQ(core->ebx, 3u);
  EXPECT_EQ(core->ecx, 0x201u);
  EXPECT_EQ(end->ecx >> 8, 0u);  // invalid level ends the list
  for (const auto* e : {smt, core, end}) EXPECT_EQ(e->edx, 2u);
  // Leaf 4: cores per package; L1 private, L3 shared by all.
  EXPECT_EQ(Find(t, 4, 0)->eax >> 26, 3u);
  EXPECT_EQ((Find(t, 4, 0)->eax >> 14) & 0xfff, 0u);
  EXPECT_EQ((Find(t, 4, 3)->eax >> 14) & 0xfff, 3u);
  EXPECT_EQ(Find(t, 4, 3)->eax & 0x3fff, 0x0163u);  // cache type/level bits kept
  // AMD leaves.
  EXPECT_EQ(Find(t, 0x80000008)->ecx, 2u | (2u << 12));
  EXPECT_EQ(Find(t, 0x80000008)->eax, 0x3030u);  // address sizes untouched
  EXPECT_EQ(Find(t, 0x80000026), nullptr);
}

TEST(GuestCpuid, SingleCpuHasNoHtt) {
  const auto t = GuestCpuid(Supported(), Opts(0, 1));
  EXPECT_FALSE(Find(t, 1)->edx & (1u << 28));
  EXPECT_FALSE(Find(t, 1)->ecx & (1u << 24));  // no TSC deadline unless KVM has it
  EXPECT_EQ(Find(t, 0xb, 1)->ebx, 1u);
  EXPECT_EQ(Find(t, 0xb, 1)->eax, 0u);
}

TEST(GuestCpuid, DisabledFeaturesAreCleared) {
  const auto base = GuestCpuid(Supported(), Opts(0, 2, true));
  ASSERT_TRUE(Find(base, 1)->ecx & (1u << 26));  // XSAVE present to begin with
  ASSERT_TRUE(Find(base, 7)->ebx & (1u << 5));   // AVX2
  const auto t = GuestCpuid(Supported(), Opts(0, 2, true, {"xsave", "x2apic", "tsc-deadline"}));
  const auto* l1 = Find(t, 1);
  EXPECT_FALSE(l1->ecx & (1u << 26)) << "XSAVE";
  EXPECT_FALSE(l1->ecx & (1u << 27)) << "OSXSAVE";
  EXPECT_FALSE(l1->ecx & (1u << 28)) << "AVX";
  EXPECT_FALSE(l1->ecx & (1u << 21)) << "x2APIC";
  EXPECT_FALSE(l1->ecx & (1u << 24)) << "TSC deadline";
  EXPECT_TRUE(l1->ecx & (1u << 0)) << "SSE3 untouched";
  EXPECT_FALSE(Find(t, 7)->ebx & (1u << 5)) << "AVX2";
  EXPECT_FALSE(Find(t, 7)->ebx & (1u << 16)) << "AVX-512F";
  EXPECT_FALSE(Find(t, 7)->ecx & (1u << 9)) << "VAES";
  EXPECT_EQ(Find(t, 0xd, 0), nullptr);
  EXPECT_EQ(Find(t, 0xd, 1), nullptr);
  EXPECT_EQ(Find(t, 7)->ebx & 0xff00u, Find(base, 7)->ebx & 0xff00u);  // others kept
}

TEST(GuestCpuid, EnqcmdOnlyWhenKvmReportsIt) {
  // This host's KVM (like upstream's) does not report ENQCMD: the guest has none.
  std::vector<kvm_cpuid_entry2> supported = Supported();
  EXPECT_FALSE(EnqcmdSupported(supported));
  for (bool tsc : {false, true}) {
    const auto t = GuestCpuid(supported, Opts(1, 4, tsc));
    ASSERT_NE(Find(t, 7), nullptr);
    EXPECT_EQ(Find(t, 7)->ecx & kLeaf7EcxEnqcmd, 0u);
  }
  EXPECT_NE(std::string(kEnqcmdOffReason).find("KVM_GET_SUPPORTED_CPUID"), std::string::npos);
  // A KVM that reports it: the guest sees it, and the rest of ECX unchanged.
  for (auto& e : supported) {
    if (e.function == 7 && e.index == 0) e.ecx |= kLeaf7EcxEnqcmd;
  }
  EXPECT_TRUE(EnqcmdSupported(supported));
  const auto t = GuestCpuid(supported, Opts(0, 1));
  EXPECT_EQ(Find(t, 7)->ecx, 0x18c05fceu | kLeaf7EcxEnqcmd);
  // No leaf 7 at all: no ENQCMD.
  EXPECT_FALSE(EnqcmdSupported({Entry(1, 0, 0, 0, 0, 0)}));
}

TEST(GuestCpuid, FeatureNames) {
  EXPECT_TRUE(IsCpuFeature("xsave"));
  EXPECT_TRUE(IsCpuFeature("x2apic"));
  EXPECT_FALSE(IsCpuFeature("sse2"));
  EXPECT_FALSE(IsCpuFeature(""));
  EXPECT_GE(CpuFeatureNames().size(), 5u);
}

TEST(BootMsrs, MtrrsCoverThePciHoleUncached) {
  EXPECT_EQ(GuestPhysAddrBits(Supported()), 0x30);
  EXPECT_EQ(GuestPhysAddrBits({}), 36);
  const std::vector<MsrValue> msrs = BootMsrs(48);
  auto value = [&](uint32_t index) -> uint64_t {
    for (const MsrValue& m : msrs) {
      if (m.index == index) return m.value;
    }
    return ~0ull;
  };
  EXPECT_EQ(value(0x2ff), (1u << 11) | 6u);        // MTRRs on, default write-back
  EXPECT_EQ(value(0x200), 0xc0000000u);            // [3 GiB, 4 GiB) uncached
  EXPECT_EQ(value(0x201), 0xffffc0000000ull | (1u << 11));
  EXPECT_EQ(value(0x1a0) & 1, 1u);                 // fast strings
}

}  // namespace
}  // namespace passage
