#include "vmm/linux_loader.h"

#include <asm/bootparam.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"

namespace passage {
namespace {

constexpr uint64_t kDefaultLoadAddr = 1 * kMiB;  // boot.rst: bzImage at 0x100000
constexpr uint64_t kPage = 4096;
constexpr uint8_t kUndefinedLoader = 0xff;       // type_of_loader: no assigned ID
constexpr uint16_t kVidModeNormal = 0xffff;

std::string Hex(uint64_t v) { return absl::StrCat("0x", absl::Hex(v)); }

std::string MiBUp(uint64_t bytes) { return absl::StrCat((bytes + kMiB - 1) / kMiB, "M"); }

// End of the RAM region that starts at guest-physical 0 (the low RAM the
// kernel, initrd and boot structures must live in).
uint64_t LowRamEnd(const GuestMemory& memory) {
  for (const MemoryRegion& r : memory.regions()) {
    if (r.gpa == 0) return r.end();
  }
  return 0;
}

}  // namespace

InitrdSource InitrdBytes(std::span<const uint8_t> bytes) {
  return {bytes.size(), [bytes](std::span<uint8_t> dest) {
            std::memcpy(dest.data(), bytes.data(), std::min(bytes.size(), dest.size()));
            return absl::OkStatus();
          }};
}

absl::StatusOr<LinuxBootLayout> LoadLinux(const BzImage& kernel, const InitrdSource& initrd,
                                          absl::string_view cmdline,
                                          const LinuxBootPlatform& platform, GuestMemory& memory) {
  LinuxBootLayout layout;
  const uint64_t low_end = LowRamEnd(memory);

  // The kernel: at pref_address when it names one above 1 MiB (a relocatable
  // kernel would move itself there anyway), else at 1 MiB.
  layout.load_addr = kernel.pref_address >= kDefaultLoadAddr ? kernel.pref_address
                                                              : kDefaultLoadAddr;
  layout.runtime_start = kernel.RuntimeStart(layout.load_addr);
  if (layout.runtime_start < kDefaultLoadAddr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "-kernel: the kernel wants to run at ", Hex(layout.runtime_start), ", below 1 MiB"));
  }
  layout.runtime_end = layout.runtime_start + kernel.init_size;
  const uint64_t loaded_end = layout.load_addr + kernel.kernel.size();
  const uint64_t needed = std::max(layout.runtime_end, loaded_end);
  if (needed > low_end) {
    return absl::InvalidArgumentError(absl::StrCat(
        "-m: this kernel needs RAM up to ", Hex(needed), " to unpack (init_size ",
        kernel.init_size, " from ", Hex(layout.runtime_start), "); the VM has ", Hex(low_end),
        " below the PCI hole (use at least -m ", MiBUp(needed + initrd.size), ")"));
  }
  if (absl::Status s = memory.Write(layout.load_addr, kernel.kernel); !s.ok()) return s;

  // The command line.
  const uint64_t cmdline_max = std::min<uint64_t>(kernel.cmdline_size, kCmdlineMax - 1);
  if (cmdline.size() > cmdline_max) {
    return absl::InvalidArgumentError(absl::StrCat("-append: the command line is ",
                                                   cmdline.size(), " bytes; this kernel takes at most ",
                                                   cmdline_max));
  }
  if (cmdline.find('\0') != cmdline.npos) {
    return absl::InvalidArgumentError("-append: the command line contains a NUL byte");
  }
  std::vector<uint8_t> cmdline_bytes(cmdline.begin(), cmdline.end());
  cmdline_bytes.push_back(0);
  layout.cmdline_addr = kCmdlineAddr;
  if (absl::Status s = memory.Write(kCmdlineAddr, cmdline_bytes); !s.ok()) return s;

  // The initrd: as high as the kernel allows, below the end of low RAM, above
  // the kernel's init_size window.
  if (initrd.size > 0) {
    const uint64_t limit = std::min<uint64_t>(uint64_t{kernel.initrd_addr_max} + 1, low_end);
    const uint64_t floor = (needed + kPage - 1) / kPage * kPage;
    if (initrd.size > limit || (limit - initrd.size) / kPage * kPage < floor) {
      return absl::InvalidArgumentError(absl::StrCat(
          "-initrd: ", initrd.size, " bytes do not fit between the kernel (up to ", Hex(floor),
          ") and ", Hex(limit), " (the kernel's initrd_addr_max or the end of low RAM); use a "
          "larger -m"));
    }
    layout.initrd_addr = (limit - initrd.size) / kPage * kPage;
    layout.initrd_size = initrd.size;
    uint8_t* dest = memory.HostAddress(layout.initrd_addr, initrd.size);
    if (dest == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("-initrd: guest range ",
                                                     Hex(layout.initrd_addr), "+",
                                                     Hex(initrd.size), " is not RAM"));
    }
    if (absl::Status s = initrd.fill({dest, initrd.size}); !s.ok()) return s;
  }

  // The memory map.
  std::vector<GuestRange> ram;
  for (const MemoryRegion& r : memory.regions()) ram.push_back({r.gpa, r.size});
  absl::StatusOr<std::vector<E820Entry>> e820 = BuildE820(ram, platform.e820_special);
  if (!e820.ok()) return e820.status();
  layout.e820 = std::move(*e820);

  // boot_params: zeroed, the image's setup header copied in, then the fields
  // a boot loader writes.
  auto params = std::make_unique<boot_params>();
  std::memset(params.get(), 0, sizeof(boot_params));
  std::memcpy(&params->hdr, kernel.header.data(),
              std::min<size_t>(kernel.header.size(), kSetupHeaderMaxEnd - kSetupHeaderOffset));
  params->hdr.type_of_loader = kUndefinedLoader;
  params->hdr.vid_mode = kVidModeNormal;
  params->hdr.code32_start = static_cast<uint32_t>(layout.load_addr);
  params->hdr.cmd_line_ptr = static_cast<uint32_t>(kCmdlineAddr);
  params->hdr.ramdisk_image = static_cast<uint32_t>(layout.initrd_addr);
  params->hdr.ramdisk_size = static_cast<uint32_t>(layout.initrd_size);
  params->acpi_rsdp_addr = platform.acpi_rsdp;
  params->e820_entries = static_cast<uint8_t>(layout.e820.size());
  for (size_t i = 0; i < layout.e820.size(); ++i) {
    params->e820_table[i].addr = layout.e820[i].addr;
    params->e820_table[i].size = layout.e820[i].size;
    params->e820_table[i].type = static_cast<uint32_t>(layout.e820[i].type);
  }
  if (absl::Status s = memory.Write(
          kZeroPageAddr, {reinterpret_cast<const uint8_t*>(params.get()), sizeof(boot_params)});
      !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteLongModeTables(memory); !s.ok()) return s;

  layout.entry.mode = BootEntry::Mode::kLong;
  layout.entry.rip = layout.load_addr + kLinux64EntryOffset;
  layout.entry.rsi = kZeroPageAddr;
  return layout;
}

}  // namespace passage
