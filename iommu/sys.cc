#include "iommu/sys.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "absl/strings/str_cat.h"

namespace passage {
namespace {

class RealSys : public Sys {
 public:
  int Open(const char* path, int flags) override { return ::open(path, flags | O_CLOEXEC); }
  int Close(int fd) override { return ::close(fd); }
  int Ioctl(int fd, unsigned long request, void* arg) override {
    int r;
    do {
      r = ::ioctl(fd, request, arg);
    } while (r < 0 && errno == EINTR);
    return r;
  }
  ssize_t Pread(int fd, void* buf, size_t count, off_t offset) override {
    ssize_t r;
    do {
      r = ::pread(fd, buf, count, offset);
    } while (r < 0 && errno == EINTR);
    return r;
  }
  ssize_t Pwrite(int fd, const void* buf, size_t count, off_t offset) override {
    ssize_t r;
    do {
      r = ::pwrite(fd, buf, count, offset);
    } while (r < 0 && errno == EINTR);
    return r;
  }
  void* MmapShared(int fd, size_t length, off_t offset) override {
    return ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
  }
  int Munmap(void* addr, size_t length) override { return ::munmap(addr, length); }
  absl::StatusOr<std::string> ReadLink(const std::string& path) override {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf) - 1);
    if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat("readlink ", path));
    return std::string(buf, static_cast<size_t>(n));
  }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("opendir ", path));
    std::vector<std::string> out;
    while (dirent* e = ::readdir(dir)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") out.push_back(name);
    }
    ::closedir(dir);
    return out;
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0 && out.size() < (1 << 20)) out.append(buf, n);
    const int err = errno;
    ::close(fd);
    if (n < 0) return absl::ErrnoToStatus(err, absl::StrCat("read ", path));
    return out;
  }
  bool Exists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }
};

}  // namespace

Sys& Sys::Real() {
  static RealSys* sys = new RealSys();
  return *sys;
}

}  // namespace passage
