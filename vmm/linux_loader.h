// Loads a 64-bit Linux bzImage the way a boot loader would (64-bit boot
// protocol, Documentation/arch/x86/boot.rst): the protected-mode kernel at
// its preferred address, boot_params (the "zero page") with the setup header,
// the e820 map, the command line, the initrd and the ACPI RSDP.
#ifndef PASSAGE_VMM_LINUX_LOADER_H_
#define PASSAGE_VMM_LINUX_LOADER_H_

#include <cstdint>
#include <functional>
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

// The initrd: its size, known before it is placed, and how its bytes get
// into the guest RAM chosen for it. A file is read straight into place
// (vmm/loader.h), with no buffer the size of the initrd.
struct InitrdSource {
  uint64_t size = 0;  // 0: no initrd
  // Fills `dest`: exactly `size` bytes of guest RAM at the initrd's address.
  // Its errors are returned by LoadLinux as they are (name -initrd in them).
  std::function<absl::Status(std::span<uint8_t> dest)> fill;
};

// An initrd already in memory (copied into place; `bytes` must outlive the
// LoadLinux call).
InitrdSource InitrdBytes(std::span<const uint8_t> bytes);

// Puts `kernel`, `initrd` (size 0: none) and `cmdline` into `memory`, writes
// boot_params at kZeroPageAddr and passage's long-mode page tables and GDT.
// Errors name the flag they are about (-m, -append, -initrd).
absl::StatusOr<LinuxBootLayout> LoadLinux(const BzImage& kernel, const InitrdSource& initrd,
                                          absl::string_view cmdline,
                                          const LinuxBootPlatform& platform, GuestMemory& memory);

}  // namespace passage

#endif  // PASSAGE_VMM_LINUX_LOADER_H_
