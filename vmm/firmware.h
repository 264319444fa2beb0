// The little of a PC BIOS that passage provides in guest memory (there is no
// firmware: the kernel is entered directly). Today: code at the reset vector.
#ifndef PASSAGE_VMM_FIRMWARE_H_
#define PASSAGE_VMM_FIRMWARE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "memory/guest_memory.h"

namespace passage {

// F000:FFF0, where a CPU starts after reset and where an OS jumps to reboot
// "through the BIOS" (Linux does on hardware-reduced ACPI platforms:
// reboot=efi is the default there, and without EFI it falls back to
// reboot=bios). A real-mode stub there asks the i8042 to pulse the reset line,
// which ends the VM like any other guest reset.
inline constexpr uint64_t kResetVectorAddr = 0xffff0;

// The stub's bytes: mov al, 0xfe; out 0x64, al; cli; hlt; jmp short hlt.
std::vector<uint8_t> ResetVectorStub();

// Writes ResetVectorStub() at kResetVectorAddr.
absl::Status WriteResetVectorStub(GuestMemory& memory);

}  // namespace passage

#endif  // PASSAGE_VMM_FIRMWARE_H_
