#include "vmm/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "memory/unique_fd.h"
#include "vmm/bzimage.h"

namespace passage {

namespace {

// A regular file opened for reading, with its size at open time.
struct OpenedFile {
  UniqueFd fd;
  uint64_t size = 0;
};

absl::StatusOr<OpenedFile> OpenRegularFile(const std::string& path, absl::string_view flag) {
  OpenedFile f{UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC))};
  if (!f.fd.valid()) return ErrnoError(absl::StrCat(flag, ": cannot open '", path, "'"));
  struct stat st;
  if (fstat(f.fd.get(), &st) != 0) return ErrnoError(absl::StrCat(flag, ": stat '", path, "'"));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", path, "' is not a regular file"));
  }
  f.size = static_cast<uint64_t>(st.st_size);
  return f;
}

// Reads from `fd` into `dest` until it is full or the file ends; returns the
// bytes read.
absl::StatusOr<size_t> ReadUpTo(int fd, std::span<uint8_t> dest, const std::string& path,
                                absl::string_view flag) {
  size_t done = 0;
  while (done < dest.size()) {
    const ssize_t n = ::read(fd, dest.data() + done, dest.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrCat(flag, ": reading '", path, "'"));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

// The -initrd file, read straight into the guest RAM LoadLinux picks for it.
// Its size is the one at open time; a file that shrinks before it is read is
// an error (the kernel would be told the wrong size).
absl::StatusOr<InitrdSource> InitrdFile(const std::string& path) {
  absl::StatusOr<OpenedFile> f = OpenRegularFile(path, "-initrd");
  if (!f.ok()) return f.status();
  auto fd = std::make_shared<UniqueFd>(std::move(f->fd));
  return InitrdSource{f->size, [fd, path](std::span<uint8_t> dest) -> absl::Status {
                        absl::StatusOr<size_t> n = ReadUpTo(fd->get(), dest, path, "-initrd");
                        if (!n.ok()) return n.status();
                        if (*n != dest.size()) {
                          return absl::InvalidArgumentError(
                              absl::StrCat("-initrd: '", path, "' shrank while being read (", *n,
                                           " of ", dest.size(), " bytes)"));
                        }
                        return absl::OkStatus();
                      }};
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> ReadFile(const std::string& path, absl::string_view flag) {
  absl::StatusOr<OpenedFile> f = OpenRegularFile(path, flag);
  if (!f.ok()) return f.status();
  std::vector<uint8_t> data(static_cast<size_t>(f->size));
  absl::StatusOr<size_t> n = ReadUpTo(f->fd.get(), data, path, flag);
  if (!n.ok()) return n.status();
  data.resize(*n);
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
    InitrdSource initrd;
    if (!config.initrd.empty()) {
      absl::StatusOr<InitrdSource> file = InitrdFile(config.initrd);
      if (!file.ok()) return file.status();
      initrd = std::move(*file);
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
