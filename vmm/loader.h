// Puts the -kernel image into guest memory and says how to enter it: a Linux
// bzImage through the 64-bit boot protocol (vmm/linux_loader.h), anything
// else as a flat binary (-entry).
#ifndef PASSAGE_VMM_LOADER_H_
#define PASSAGE_VMM_LOADER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "memory/guest_memory.h"
#include "vmm/config.h"
#include "vmm/linux_loader.h"
#include "vmm/x86_boot.h"

namespace passage {

// Reads a whole file; errors name `flag` and the path.
absl::StatusOr<std::vector<uint8_t>> ReadFile(const std::string& path, absl::string_view flag);

struct LoadedKernel {
  BootEntry entry;
  std::optional<LinuxBootLayout> linux_layout;  // set for a bzImage
};

// Loads config.kernel (and initrd/cmdline for Linux) into `memory`. With
// -entry auto, an image that looks like a Linux kernel (vmm/bzimage.h) must
// be a valid 64-bit bzImage; `platform` is what it is told about ACPI and
// reserved memory. Errors are one line naming the flag.
absl::StatusOr<LoadedKernel> LoadKernel(const VmConfig& config, const LinuxBootPlatform& platform,
                                        GuestMemory& memory);

}  // namespace passage

#endif  // PASSAGE_VMM_LOADER_H_
