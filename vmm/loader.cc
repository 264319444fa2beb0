#include "vmm/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "memory/unique_fd.h"
#include "vmm/bzimage.h"

namespace passage {

absl::StatusOr<std::vector<uint8_t>> ReadFile(const std::string& path, absl::string_view flag) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrCat(flag, ": cannot open '", path, "'"));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError(absl::StrCat(flag, ": stat '", path, "'"));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", path, "' is not a regular file"));
  }
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::read(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrCat(flag, ": reading '", path, "'"));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  data.resize(done);
  return data;
}

absl::StatusOr<LoadedKernel> LoadKernel(const VmConfig& config, const LinuxBootPlatform& platform,
                                        GuestMemory& memory) {
  absl::StatusOr<std::vector<uint8_t>> image = ReadFile(config.kernel, "-kernel");
  if (!image.ok()) return image.status();
  if (image->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("-kernel: '", config.kernel, "' is empty"));
  }
  if (config.entry == EntryMode::kAuto && LooksLikeLinuxKernel(*image)) {
    absl::StatusOr<BzImage> bz = ParseBzImage(*image);
    if (!bz.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("-kernel: '", config.kernel, "': ", bz.status().message()));
    }
    std::vector<uint8_t> initrd;
    if (!config.initrd.empty()) {
      absl::StatusOr<std::vector<uint8_t>> data = ReadFile(config.initrd, "-initrd");
      if (!data.ok()) return data.status();
      initrd = std::move(*data);
    }
    absl::StatusOr<LinuxBootLayout> layout =
        LoadLinux(*bz, initrd, config.append, platform, memory);
    if (!layout.ok()) return layout.status();
    LoadedKernel loaded{layout->entry, std::move(*layout)};
    return loaded;
  }
  if (!config.initrd.empty() || !config.append.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        config.initrd.empty() ? "-append" : "-initrd", ": '", config.kernel,
        "' is not a Linux bzImage (a flat binary takes no initrd or command line)"));
  }
  const bool long_mode = config.entry == EntryMode::kLong;
  BootEntry entry;
  entry.mode = long_mode ? BootEntry::Mode::kLong : BootEntry::Mode::kReal;
  const uint64_t load = long_mode ? kLongModeLoadAddr : kRealModeLoadAddr;
  const uint64_t limit = long_mode ? kLowRamEnd : 0xA0000;  // real mode: below the legacy hole
  if (image->size() > limit - load) {
    return absl::InvalidArgumentError(absl::StrCat(
        "-kernel: flat binary '", config.kernel, "' is ", image->size(), " bytes; at most ",
        limit - load, " fit at 0x", absl::Hex(load)));
  }
  if (absl::Status s = memory.Write(load, *image); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("-kernel: ", s.message(), " (is -m too small?)"));
  }
  if (long_mode) {
    if (absl::Status s = WriteLongModeTables(memory); !s.ok()) return s;
  }
  entry.rip = load;
  return LoadedKernel{entry, std::nullopt};
}

}  // namespace passage
