#include "iommu/sys.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

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
};

}  // namespace

Sys& Sys::Real() {
  static RealSys* sys = new RealSys();
  return *sys;
}

}  // namespace passage
