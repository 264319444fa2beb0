// A -kernel image and its placement: the input's tail is the image file,
// loaded through LoadKernel (what Vm::Create calls: bzImage detection, the
// setup header checks, LoadLinux's placement of kernel, command line and
// initrd, boot_params and the e820 map; or the flat-binary path) into guest
// RAM of a fuzzed size, with an initrd of a fuzzed size and a command line
// of a fuzzed length. Any image gives a layout or one line of error; an
// accepted layout stays inside low RAM and keeps its pieces apart.
//
// Input (8 bytes, then the image):
//   0-1  RAM: 16 MiB + n * 1 MiB (n < 8192: up to ~8 GiB, both sides of the PCI hole)
//   2-5  initrd size, shifted right by byte 6 bits 0-4 (log-uniform sizes),
//        at most 64 MiB; 0: no -initrd
//   6    bits 5-6: -entry auto / real / long
//   7    -append length: n * 61 bytes (over the kernel's cmdline_size at the top)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "memory/guest_memory.h"
#include "memory/memory_map.h"
#include "memory/unique_fd.h"
#include "tests/fuzz/fuzz_check.h"
#include "vmm/bzimage.h"
#include "vmm/loader.h"
#include "vmm/x86_boot.h"

namespace {

constexpr uint64_t kMaxInitrd = 64 * passage::kMiB;

// A file with `data`, or `size` zero bytes, named through /proc/self/fd.
passage::UniqueFd MemFile(const uint8_t* data, size_t size) {
  passage::UniqueFd fd(memfd_create("fuzz", MFD_CLOEXEC));
  FUZZ_FAIL_IF(!fd.valid());
  if (data != nullptr) {
    FUZZ_FAIL_IF(write(fd.get(), data, size) != static_cast<ssize_t>(size));
  } else {
    FUZZ_FAIL_IF(ftruncate(fd.get(), static_cast<off_t>(size)) != 0);
  }
  return fd;
}

std::string Path(const passage::UniqueFd& fd) {
  return "/proc/self/fd/" + std::to_string(fd.get());
}

bool Within(uint64_t start, uint64_t size, uint64_t limit) {
  return start <= limit && size <= limit - start;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace passage;
  if (size < 8) return 0;
  uint16_t ram_steps;
  uint32_t initrd_raw;
  std::memcpy(&ram_steps, data, 2);
  std::memcpy(&initrd_raw, data + 2, 4);
  const uint64_t ram = kMinRamSize + (ram_steps % 8192) * kMiB;
  const uint64_t initrd_size = (initrd_raw % (kMaxInitrd + 1)) >> (data[6] & 31);

  VmConfig config;
  config.ram_size = ram;
  config.entry = static_cast<EntryMode>((data[6] >> 5) % 3);
  config.append = std::string(data[7] * 61u, 'c');
  UniqueFd kernel = MemFile(data + 8, size - 8), initrd;
  config.kernel = Path(kernel);
  if (initrd_size > 0) {
    initrd = MemFile(nullptr, initrd_size);
    config.initrd = Path(initrd);
  }
  absl::StatusOr<std::unique_ptr<GuestMemory>> memory = GuestMemory::Create({ram, false});
  FUZZ_FAIL_IF(!memory.ok());
  LinuxBootPlatform platform;
  platform.acpi_rsdp = 0xe0000;
  platform.e820_special = {
      {kLegacyHoleStart, kLegacyHoleEnd - kLegacyHoleStart, E820Type::kReserved},
      {kEcamStart, 1 * kMiB, E820Type::kReserved}};
  absl::StatusOr<LoadedKernel> loaded = LoadKernel(config, platform, **memory);
  if (!loaded.ok()) {
    FuzzCheckOneLine(loaded.status().message());
    return 0;
  }
  if (!loaded->linux_layout.has_value()) return 0;
  const LinuxBootLayout& l = *loaded->linux_layout;
  const uint64_t low_end = std::min(ram, kLowRamEnd);
  FUZZ_FAIL_IF(l.load_addr < 1 * kMiB || l.runtime_start < 1 * kMiB);
  FUZZ_FAIL_IF(l.runtime_end < l.runtime_start || l.runtime_end > low_end);
  FUZZ_FAIL_IF(l.initrd_size != initrd_size);
  // The header LoadKernel accepted, parsed again for the checks.
  absl::StatusOr<BzImage> bz = ParseBzImage({data + 8, size - 8});
  FUZZ_FAIL_IF(!bz.ok());
  FUZZ_FAIL_IF(!Within(l.load_addr, bz->kernel.size(), low_end));
  if (initrd_size > 0) {
    // Page-aligned, in low RAM and below initrd_addr_max, above everything
    // the kernel occupies.
    FUZZ_FAIL_IF(l.initrd_addr % 4096 != 0 || !Within(l.initrd_addr, l.initrd_size, low_end));
    FUZZ_FAIL_IF(l.initrd_addr + l.initrd_size - 1 > bz->initrd_addr_max);
    FUZZ_FAIL_IF(l.initrd_addr < l.runtime_end || l.initrd_addr < l.load_addr + bz->kernel.size());
  }
  FUZZ_FAIL_IF(l.e820.empty());
  return 0;
}
