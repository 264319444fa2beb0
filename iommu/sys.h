// The system calls iommu/ and devices/vfio/ make on device files, behind an
// interface so unit tests can put a fake kernel behind them.
#ifndef PASSAGE_IOMMU_SYS_H_
#define PASSAGE_IOMMU_SYS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace passage {

class Sys {
 public:
  virtual ~Sys() = default;
  // Each returns what the libc call returns and sets errno the same way.
  virtual int Open(const char* path, int flags) = 0;
  virtual int Close(int fd) = 0;
  virtual int Ioctl(int fd, unsigned long request, void* arg) = 0;
  virtual ssize_t Pread(int fd, void* buf, size_t count, off_t offset) = 0;
  virtual ssize_t Pwrite(int fd, const void* buf, size_t count, off_t offset) = 0;
  // mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_SHARED, fd, offset).
  virtual void* MmapShared(int fd, size_t length, off_t offset) = 0;
  virtual int Munmap(void* addr, size_t length) = 0;
  // sysfs helpers: a symlink's target, a directory's entries (no . and ..).
  virtual absl::StatusOr<std::string> ReadLink(const std::string& path) = 0;
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
  // A small sysfs file's contents.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;

  // The real kernel.
  static Sys& Real();
};

// Owns an fd opened through a Sys; closes it through the same Sys.
class SysFd {
 public:
  SysFd() = default;
  SysFd(Sys* sys, int fd) : sys_(sys), fd_(fd) {}
  SysFd(SysFd&& o) noexcept : sys_(o.sys_), fd_(o.release()) {}
  SysFd& operator=(SysFd&& o) noexcept {
    if (this != &o) {
      reset();
      sys_ = o.sys_;
      fd_ = o.release();
    }
    return *this;
  }
  SysFd(const SysFd&) = delete;
  SysFd& operator=(const SysFd&) = delete;
  ~SysFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0 && sys_ != nullptr) sys_->Close(fd_);
    fd_ = -1;
  }

 private:
  Sys* sys_ = nullptr;
  int fd_ = -1;
};

}  // namespace passage

#endif  // PASSAGE_IOMMU_SYS_H_
