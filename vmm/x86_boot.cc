#include "vmm/x86_boot.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace passage {
namespace {

constexpr uint64_t kPresent = 1, kWritable = 2, kPageSize = 0x80;

kvm_segment Segment(uint16_t selector, uint8_t type, bool code64) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.db = code64 ? 0 : 1;
  s.s = 1;
  s.l = code64 ? 1 : 0;
  s.g = 1;
  return s;
}

template <typename T>
absl::Status Put(GuestMemory& memory, uint64_t gpa, const T& value) {
  return memory.Write(gpa, {reinterpret_cast<const uint8_t*>(&value), sizeof(value)});
}

}  // namespace

absl::Status WriteLongModeTables(GuestMemory& memory) {
  // GDT: null, null, code64 (0x10), data (0x18).
  const uint64_t gdt[4] = {0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
  if (absl::Status s = Put(memory, kGdtAddr, gdt); !s.ok()) return s;

  uint64_t ram_end = 0;
  for (const MemoryRegion& r : memory.regions()) ram_end = std::max(ram_end, r.end());
  const uint64_t gib = std::min<uint64_t>(kMaxIdentityMapGiB,
                                          std::max<uint64_t>(8, (ram_end + kGiB - 1) / kGiB));
  std::vector<uint64_t> pdpt(512, 0);
  for (uint64_t g = 0; g < gib; ++g) {
    std::vector<uint64_t> pd(512);
    for (uint64_t i = 0; i < 512; ++i) {
      pd[i] = (g * kGiB + i * 2 * kMiB) | kPresent | kWritable | kPageSize;
    }
    const uint64_t pd_gpa = kPdAddr + g * 4096;
    if (absl::Status s = memory.Write(pd_gpa, {reinterpret_cast<uint8_t*>(pd.data()), 4096});
        !s.ok()) {
      return s;
    }
    pdpt[g] = pd_gpa | kPresent | kWritable;
  }
  if (absl::Status s = memory.Write(kPdptAddr, {reinterpret_cast<uint8_t*>(pdpt.data()), 4096});
      !s.ok()) {
    return s;
  }
  std::vector<uint64_t> pml4(512, 0);
  pml4[0] = kPdptAddr | kPresent | kWritable;
  return memory.Write(kPml4Addr, {reinterpret_cast<uint8_t*>(pml4.data()), 4096});
}

void SetupEntryRegisters(const BootEntry& entry, kvm_sregs& sregs, kvm_regs& regs) {
  std::memset(&regs, 0, sizeof(regs));
  regs.rflags = 0x2;
  if (entry.mode == BootEntry::Mode::kReal) {
    // CS:IP = load segment:0; data and stack segments the same.
    const uint16_t seg = static_cast<uint16_t>(kRealModeLoadAddr >> 4);
    for (kvm_segment* s : {&sregs.cs, &sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss}) {
      s->selector = seg;
      s->base = kRealModeLoadAddr;
    }
    regs.rip = entry.rip - kRealModeLoadAddr;
    regs.rsp = 0xfff0;
    return;
  }
  sregs.gdt.base = kGdtAddr;
  sregs.gdt.limit = 4 * 8 - 1;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  sregs.cs = Segment(kBootCs, 0xb, /*code64=*/true);
  const kvm_segment data = Segment(kBootDs, 0x3, false);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.cr3 = kPml4Addr;
  sregs.cr4 = 0x20;                      // PAE
  sregs.cr0 = 0x80000011 | 0x20;         // PG | ET | PE | NE
  sregs.efer = 0x500;                    // LME | LMA
  regs.rip = entry.rip;
  regs.rsi = entry.rsi;
  regs.rsp = kBootStackTop;
}

}  // namespace passage
