// Loads a 64-bit Linux bzImage the way a boot loader would (64-bit boot
// protocol, Documentation/arch/x86/boot.rst): the protected-mode kernel at
// its preferred address, boot_params (the "zero page") with the setup header,
// the e820 map, the command line, the initrd and the ACPI RSDP.
#ifndef PASSAGE_VMM_LINUX_LOADER_H_
#define PASSAGE_VMM_LINUX_LOADER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "memory/guest_memory.h"
#include "vmm/bzimage.h"
#include "vmm/e820.h"
#include "vmm/x86_boot.h"

namespace passage {

// What the platform tells the kernel besides where RAM is.
struct LinuxBootPlatform {
  uint64_t acpi_rsdp = 0;               // 0: no ACPI
  std::vector<E820Entry> e820_special;  // reserved / ACPI ranges (in or outside RAM)
};

// Where everything went.
struct LinuxBootLayout {
  BootEntry entry;
  uint64_t load_addr = 0;       // protected-mode kernel
  uint64_t runtime_start = 0;   // [runtime_start, runtime_end): the kernel's init_size window
  uint64_t runtime_end = 0;
  uint64_t cmdline_addr = 0;
  uint64_t initrd_addr = 0;     // 0 when there is no initrd
  uint64_t initrd_size = 0;
  std::vector<E820Entry> e820;
};

// Puts `kernel`, `initrd` (may be empty) and `cmdline` into `memory`, writes
// boot_params at kZeroPageAddr and passage's long-mode page tables and GDT.
// Errors name the flag they are about (-m, -append, -initrd).
absl::StatusOr<LinuxBootLayout> LoadLinux(const BzImage& kernel, std::span<const uint8_t> initrd,
                                          absl::string_view cmdline,
                                          const LinuxBootPlatform& platform, GuestMemory& memory);

}  // namespace passage

#endif  // PASSAGE_VMM_LINUX_LOADER_H_
