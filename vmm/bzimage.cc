#include "vmm/bzimage.h"

#include <asm/bootparam.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace passage {
namespace {

// Setup header field offsets in the image (boot.rst).
constexpr uint64_t kSetupSects = 0x1f1;
constexpr uint64_t kSyssize = 0x1f4;
constexpr uint64_t kJump = 0x200;
constexpr uint64_t kVersion = 0x206;
constexpr uint64_t kLoadflags = 0x211;
constexpr uint64_t kInitrdAddrMax = 0x22c;
constexpr uint64_t kKernelAlignment = 0x230;
constexpr uint64_t kRelocatable = 0x234;
constexpr uint64_t kXloadflags = 0x236;
constexpr uint64_t kCmdlineSize = 0x238;
constexpr uint64_t kPrefAddress = 0x258;
constexpr uint64_t kInitSize = 0x260;
constexpr uint64_t kInitSizeEnd = 0x264;  // every field passage reads ends here
constexpr uint32_t kHdrS = 0x53726448;    // "HdrS"
constexpr uint16_t kBootFlag = 0xaa55;

static_assert(offsetof(boot_params, hdr) == kSetupHeaderOffset);
static_assert(offsetof(boot_params, hdr) + offsetof(setup_header, init_size) == kInitSize);
static_assert(offsetof(boot_params, hdr) + offsetof(setup_header, pref_address) == kPrefAddress);

template <typename T>
T Get(std::span<const uint8_t> image, uint64_t offset) {
  T v;
  std::memcpy(&v, image.data() + offset, sizeof(T));  // callers checked the size
  return v;
}

std::string Version(uint16_t v) {
  return absl::StrCat(v >> 8, ".", absl::Dec(v & 0xff, absl::kZeroPad2));
}

absl::Status Bad(absl::string_view why) { return absl::InvalidArgumentError(why); }

}  // namespace

uint64_t BzImage::RuntimeStart(uint64_t load) const {
  if (!relocatable) return pref_address;
  const uint64_t start = load < pref_address ? pref_address : load;
  const uint64_t align = kernel_alignment == 0 ? 1 : kernel_alignment;
  return (start + align - 1) / align * align;
}

bool LooksLikeLinuxKernel(std::span<const uint8_t> image) {
  if (image.size() >= kHdrSOffset + 4 && Get<uint32_t>(image, kHdrSOffset) == kHdrS) return true;
  return image.size() > 512 && Get<uint16_t>(image, kBootFlagOffset) == kBootFlag;
}

absl::StatusOr<BzImage> ParseBzImage(std::span<const uint8_t> image) {
  const uint64_t size = image.size();
  // Up to the version field: everything read before the header's own length
  // (the jump at 0x200) is known.
  if (size < kVersion + 2) {
    return Bad(absl::StrCat("truncated: ", size, " bytes, too short for a Linux setup header"));
  }
  if (Get<uint32_t>(image, kHdrSOffset) != kHdrS) {
    return Bad(
        "not a bzImage: boot sector signature present but no 'HdrS' setup header magic at "
        "0x202 (corrupt, or a pre-2.00 zImage)");
  }
  if (Get<uint16_t>(image, kBootFlagOffset) != kBootFlag) {
    return Bad(absl::StrCat("corrupt setup header: boot_flag at 0x1fe is 0x",
                            absl::Hex(Get<uint16_t>(image, kBootFlagOffset)), ", expected 0xaa55"));
  }
  BzImage bz;
  bz.version = Get<uint16_t>(image, kVersion);
  if (bz.version < kMinBootProtocol) {
    return Bad(absl::StrCat("boot protocol ", Version(bz.version),
                            " is too old: passage needs 2.12 or later (64-bit entry point)"));
  }
  // The jump at 0x200 (EB xx) doubles as the header's length.
  const uint64_t header_end = kHdrSOffset + image[kJump + 1];
  if (image[kJump] != 0xeb || header_end < kInitSizeEnd || header_end > kSetupHeaderMaxEnd) {
    return Bad(absl::StrCat("corrupt setup header: its jump at 0x200 puts the header end at 0x",
                            absl::Hex(header_end), ", outside [0x", absl::Hex(kInitSizeEnd),
                            ", 0x", absl::Hex(kSetupHeaderMaxEnd), "]"));
  }
  if (size < header_end) {
    return Bad(absl::StrCat("truncated: ", size, " bytes, the setup header ends at 0x",
                            absl::Hex(header_end)));
  }
  bz.header = image.subspan(kSetupHeaderOffset, header_end - kSetupHeaderOffset);

  bz.loadflags = image[kLoadflags];
  if (!(bz.loadflags & LOADED_HIGH)) {
    return Bad("a zImage (LOADED_HIGH clear): only bzImage kernels are supported");
  }
  bz.xloadflags = Get<uint16_t>(image, kXloadflags);
  if (!(bz.xloadflags & XLF_KERNEL_64)) {
    return Bad("no 64-bit entry point (XLF_KERNEL_64 clear): passage boots 64-bit kernels only");
  }
  const uint64_t setup_sects = image[kSetupSects] == 0 ? 4 : image[kSetupSects];
  bz.setup_size = (setup_sects + 1) * 512;
  const uint64_t syssize = Get<uint32_t>(image, kSyssize);
  if (syssize == 0) return Bad("corrupt setup header: syssize is 0 (no protected-mode kernel)");
  if (bz.setup_size + syssize * 16 > size) {
    return Bad(absl::StrCat("truncated: the header says ", bz.setup_size + syssize * 16,
                            " bytes (setup ", bz.setup_size, " + kernel ", syssize * 16,
                            "), the file has ", size));
  }
  bz.kernel = image.subspan(bz.setup_size);

  bz.initrd_addr_max = Get<uint32_t>(image, kInitrdAddrMax);
  bz.kernel_alignment = Get<uint32_t>(image, kKernelAlignment);
  bz.relocatable = image[kRelocatable] != 0;
  bz.cmdline_size = Get<uint32_t>(image, kCmdlineSize);
  bz.pref_address = Get<uint64_t>(image, kPrefAddress);
  bz.init_size = Get<uint32_t>(image, kInitSize);
  if (bz.relocatable &&
      (bz.kernel_alignment < 4096 || (bz.kernel_alignment & (bz.kernel_alignment - 1)) != 0)) {
    return Bad(absl::StrCat("corrupt setup header: kernel_alignment 0x",
                            absl::Hex(bz.kernel_alignment), " is not a power of two >= 4 KiB"));
  }
  if (bz.pref_address % 4096 != 0 || bz.pref_address >= (1ull << 46)) {
    return Bad(absl::StrCat("corrupt setup header: pref_address 0x", absl::Hex(bz.pref_address),
                            " is not a page-aligned physical address"));
  }
  if (bz.init_size < bz.kernel.size()) {
    return Bad(absl::StrCat("corrupt setup header: init_size ", bz.init_size,
                            " is smaller than the kernel itself (", bz.kernel.size(), " bytes)"));
  }
  return bz;
}

}  // namespace passage
