// The vCPU line of passage's SIGUSR1 state dump.
#include <gtest/gtest.h>
#include <linux/kvm.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "vmm/vcpu.h"

namespace passage {
namespace {

void SetApicBit(kvm_lapic_state& lapic, size_t reg, uint32_t vector) {
  uint32_t word = 0;
  const size_t at = reg + 0x10 * (vector / 32);
  std::memcpy(&word, lapic.regs + at, sizeof(word));
  word |= 1u << (vector % 32);
  std::memcpy(lapic.regs + at, &word, sizeof(word));
}

TEST(VcpuStateTest, HaltedVcpuWithAnInterruptPendingInTheLapic) {
  VcpuState state;
  kvm_regs regs{};
  regs.rip = 0xffffffff81000010;
  regs.rsp = 0x8000;
  regs.rflags = 0x246;  // IF set
  state.regs = regs;
  kvm_sregs sregs{};
  sregs.cs.selector = 0x10;
  sregs.cr0 = 0x80050033;
  sregs.efer = 0xd01;
  state.sregs = sregs;
  state.mp_state = kvm_mp_state{KVM_MP_STATE_HALTED};
  kvm_vcpu_events events{};
  state.events = events;
  kvm_lapic_state lapic{};
  SetApicBit(lapic, 0x200, 0x24);  // IRR: the vector IRQ 4 might use
  SetApicBit(lapic, 0x200, 0xec);
  SetApicBit(lapic, 0x100, 0x30);  // ISR
  state.lapic = lapic;
  state.last_exit_reason = KVM_EXIT_IO;
  state.last_exit_addr = 0x3f8;
  const std::string line = FormatVcpuState(1, state);
  EXPECT_EQ(line.rfind("vCPU 1: rip=0xffffffff81000010 rsp=0x8000 rflags=0x246(IF=1) ", 0), 0u)
      << line;
  EXPECT_NE(line.find("cs=0x10 cr0=0x80050033 "), std::string::npos) << line;
  EXPECT_NE(line.find("efer=0xd01 mp_state=halted irq_injected=0(0x00) "), std::string::npos)
      << line;
  EXPECT_NE(line.find("lapic: tpr=0x0 isr=[0x30] irr=[0x24,0xec]"), std::string::npos) << line;
  EXPECT_NE(line.find("last_exit=io port 0x3f8"), std::string::npos) << line;
}

TEST(VcpuStateTest, InterruptsOffAndFailedReadsAreShown) {
  VcpuState state;
  kvm_regs regs{};
  regs.rflags = 0x2;
  state.regs = regs;
  state.last_exit_reason = KVM_EXIT_MMIO;
  state.last_exit_addr = 0xfef00000;
  const std::string line = FormatVcpuState(0, state);
  EXPECT_NE(line.find("rflags=0x2(IF=0)"), std::string::npos) << line;
  EXPECT_NE(line.find("sregs=unavailable"), std::string::npos) << line;
  EXPECT_EQ(line.find("lapic:"), std::string::npos) << line;
  EXPECT_NE(line.find("last_exit=mmio 0xfef00000"), std::string::npos) << line;
  EXPECT_EQ(line.find("stack="), std::string::npos) << line;  // not read: not shown
}

TEST(VcpuStateTest, StackWordsInTheKernelTextRangeAreKeptInOrder) {
  const std::vector<uint64_t> words = {
      0xffffffff81234567,  // text
      0x0000000000001000,  // data
      0xffff888000123000,  // direct map: data
      0xffffffff80000000,  // first text address
      0xffffffffc0001000,  // modules area: not the kernel's text
      0xffffffffbfffffff,  // last text address
      0xffffffff810abcde,
  };
  std::vector<uint8_t> bytes(words.size() * 8 + 5);  // a torn last word is ignored
  std::memcpy(bytes.data(), words.data(), words.size() * 8);
  std::memset(bytes.data() + words.size() * 8, 0xff, 5);
  EXPECT_EQ(KernelTextWords(bytes, 16),
            (std::vector<uint64_t>{0xffffffff81234567, 0xffffffff80000000, 0xffffffffbfffffff,
                                   0xffffffff810abcde}));
  EXPECT_EQ(KernelTextWords(bytes, 2), (std::vector<uint64_t>{0xffffffff81234567, 0xffffffff80000000}));
  EXPECT_TRUE(KernelTextWords({}, 16).empty());
}

TEST(VcpuStateTest, StackWordsEndTheLine) {
  VcpuState state;
  state.stack = std::vector<uint64_t>{0xffffffff81000010, 0xffffffff81abcdef};
  const std::string line = FormatVcpuState(0, state);
  const std::string tail = " stack=[0xffffffff81000010 0xffffffff81abcdef]";
  ASSERT_GE(line.size(), tail.size()) << line;
  EXPECT_EQ(line.substr(line.size() - tail.size()), tail) << line;
  state.stack = std::vector<uint64_t>{};
  EXPECT_NE(FormatVcpuState(0, state).find(" stack=[]"), std::string::npos);  // read, nothing found
}

TEST(InternalErrorTextTest, NamesTheSuberrorAndPrintsTheData) {
  decltype(kvm_run::internal) internal{};
  internal.suberror = KVM_INTERNAL_ERROR_DELIVERY_EV;
  internal.ndata = 2;
  internal.data[0] = 0x80000b0e;
  internal.data[1] = 0x400;
  EXPECT_EQ(InternalErrorText(internal), "suberror 3 (an exit during event delivery), data 0x80000b0e 0x400");
}

TEST(InternalErrorTextTest, ABogusCountIsCappedAndAnUnknownSuberrorSaidSo) {
  decltype(kvm_run::internal) internal{};
  internal.suberror = 77;
  internal.ndata = 1000;
  const std::string text = InternalErrorText(internal);
  EXPECT_TRUE(text.starts_with("suberror 77 (unknown), data 0x0")) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), 'x'), 16) << text;  // 16 words, no more
}

}  // namespace
}  // namespace passage
