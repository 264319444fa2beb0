// Puts the -kernel image into guest memory and says how to enter it.
#ifndef PASSAGE_VMM_LOADER_H_
#define PASSAGE_VMM_LOADER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "memory/guest_memory.h"
#include "vmm/config.h"
#include "vmm/x86_boot.h"

namespace passage {

// Reads a whole file; errors name `flag` and the path.
absl::StatusOr<std::vector<uint8_t>> ReadFile(const std::string& path, absl::string_view flag);

// Loads config.kernel (and initrd/cmdline for Linux) into `memory`.
absl::StatusOr<BootEntry> LoadKernel(const VmConfig& config, GuestMemory& memory);

}  // namespace passage

#endif  // PASSAGE_VMM_LOADER_H_
