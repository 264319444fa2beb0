// The Linux/x86 boot protocol's setup header (Documentation/arch/x86/boot.rst):
// recognising a bzImage and validating its header before anything is loaded.
// The image is untrusted input: every field is range-checked here, so the
// loader can use a parsed BzImage without further checks on the file.
#ifndef PASSAGE_VMM_BZIMAGE_H_
#define PASSAGE_VMM_BZIMAGE_H_

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"

namespace passage {

// Offsets into the image (boot.rst, "The Real-Mode Kernel Header").
inline constexpr uint64_t kSetupHeaderOffset = 0x1f1;
inline constexpr uint64_t kBootFlagOffset = 0x1fe;   // u16 0xAA55
inline constexpr uint64_t kHdrSOffset = 0x202;       // u32 "HdrS"
inline constexpr uint64_t kSetupHeaderMaxEnd = 0x290;  // end of the hole in boot_params
inline constexpr uint16_t kMinBootProtocol = 0x020c;   // 2.12: xloadflags, 64-bit entry
inline constexpr uint64_t kLinux64EntryOffset = 0x200;  // startup_64 = load address + 0x200

struct BzImage {
  uint16_t version = 0;          // boot protocol, e.g. 0x020f
  uint64_t setup_size = 0;       // (setup_sects + 1) * 512: file offset of the kernel proper
  uint8_t loadflags = 0;
  uint16_t xloadflags = 0;
  uint32_t initrd_addr_max = 0;  // highest byte address an initrd may occupy
  uint32_t kernel_alignment = 0;
  bool relocatable = false;
  uint32_t cmdline_size = 0;     // longest command line, without the NUL
  uint64_t pref_address = 0;
  uint32_t init_size = 0;        // memory the kernel needs from its runtime start
  // The setup header as it is in the file, [0x1f1, end of header): copied
  // into boot_params.hdr.
  std::span<const uint8_t> header;
  // The protected-mode kernel (loaded at the load address).
  std::span<const uint8_t> kernel;

  // Where the kernel runs once it has relocated itself, for a kernel loaded
  // at `load` (boot.rst, init_size): the start of the init_size window.
  uint64_t RuntimeStart(uint64_t load) const;
};

// True when `image` claims to be a Linux kernel: the "HdrS" magic at 0x202,
// or the 0xAA55 boot-sector signature at 0x1fe of a file longer than one
// sector. ParseBzImage then decides whether it is a usable one.
bool LooksLikeLinuxKernel(std::span<const uint8_t> image);

// Validates the setup header of a 64-bit bzImage. Errors say what is wrong
// with the image (the caller adds the flag and path). `image` must outlive
// the result (it holds spans into it).
absl::StatusOr<BzImage> ParseBzImage(std::span<const uint8_t> image);

}  // namespace passage

#endif  // PASSAGE_VMM_BZIMAGE_H_
