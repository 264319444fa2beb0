// x86 CPU state at entry: real mode, or 64-bit long mode with identity-mapped
// page tables and a flat GDT laid out in low guest memory by passage.
#ifndef PASSAGE_VMM_X86_BOOT_H_
#define PASSAGE_VMM_X86_BOOT_H_

#include <linux/kvm.h>

#include <cstdint>

#include "absl/status/status.h"
#include "memory/guest_memory.h"

namespace passage {

// Low-memory layout used by passage's own boot structures.
inline constexpr uint64_t kGdtAddr = 0x500;
inline constexpr uint64_t kPml4Addr = 0x1000;
inline constexpr uint64_t kPdptAddr = 0x2000;
inline constexpr uint64_t kZeroPageAddr = 0x7000;   // Linux boot_params
inline constexpr uint64_t kBootStackTop = 0x8ff0;
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;
inline constexpr uint64_t kPdAddr = 0x40000;        // page directories, 4 KiB each
inline constexpr uint64_t kMaxIdentityMapGiB = 64;  // 64 PDs end at 0x80000
inline constexpr uint64_t kRealModeLoadAddr = 0x10000;
inline constexpr uint64_t kLongModeLoadAddr = 0x100000;

// Linux's boot GDT selectors (Documentation/arch/x86/boot.rst, 64-bit protocol).
inline constexpr uint16_t kBootCs = 0x10;
inline constexpr uint16_t kBootDs = 0x18;

struct BootEntry {
  enum class Mode { kReal, kLong };
  Mode mode = Mode::kReal;
  uint64_t rip = 0;
  uint64_t rsi = 0;  // 64-bit Linux: the boot_params address
};

// Writes the GDT and identity page tables (2 MiB pages) covering
// [0, max(8 GiB, end of RAM)), capped at kMaxIdentityMapGiB: the 32-bit
// device windows and a little beyond RAM stay reachable for tiny guests.
absl::Status WriteLongModeTables(GuestMemory& memory);

// Fills `sregs`/`regs` for `entry` (sregs should come from KVM_GET_SREGS).
void SetupEntryRegisters(const BootEntry& entry, kvm_sregs& sregs, kvm_regs& regs);

}  // namespace passage

#endif  // PASSAGE_VMM_X86_BOOT_H_
