#include "tests/bench/timed_sys.h"

#include <time.h>

#include <cctype>

#include "iommu/ioctl_names.h"

namespace passage::bench {
namespace {

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

}  // namespace

std::string StepKeyForOpen(const std::string& path) {
  std::string key = "open ";
  for (size_t i = 0; i < path.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(path[i]))) {
      key += 'N';
      while (i + 1 < path.size() && std::isdigit(static_cast<unsigned char>(path[i + 1]))) ++i;
    } else {
      key += path[i];
    }
  }
  return key;
}

template <typename Call>
auto TimedSys::Timed(const std::string& key, Call call) -> decltype(call()) {
  const double t0 = Now();
  auto result = call();
  Step& s = steps_[key];
  s.seconds += Now() - t0;
  ++s.calls;
  return result;
}

std::map<std::string, TimedSys::Step> TimedSys::Take() {
  std::map<std::string, Step> out;
  out.swap(steps_);
  return out;
}

int TimedSys::Open(const char* path, int flags) {
  const int fd = Timed(StepKeyForOpen(path), [&] { return inner_->Open(path, flags); });
  if (fd >= 0 && std::string(path) == "/dev/vfio/vfio") containers_.insert(fd);
  return fd;
}

int TimedSys::Close(int fd) {
  containers_.erase(fd);
  return Timed("close", [&] { return inner_->Close(fd); });
}

int TimedSys::Ioctl(int fd, unsigned long request, void* arg) {
  return Timed(IoctlName(request, containers_.count(fd) != 0),
               [&] { return inner_->Ioctl(fd, request, arg); });
}

ssize_t TimedSys::Pread(int fd, void* buf, size_t count, off_t offset) {
  return Timed("pread", [&] { return inner_->Pread(fd, buf, count, offset); });
}

ssize_t TimedSys::Pwrite(int fd, const void* buf, size_t count, off_t offset) {
  return Timed("pwrite", [&] { return inner_->Pwrite(fd, buf, count, offset); });
}

void* TimedSys::MmapShared(int fd, size_t length, off_t offset) {
  return Timed("mmap", [&] { return inner_->MmapShared(fd, length, offset); });
}

int TimedSys::Munmap(void* addr, size_t length) {
  return Timed("munmap", [&] { return inner_->Munmap(addr, length); });
}

absl::StatusOr<std::string> TimedSys::ReadLink(const std::string& path) {
  return Timed("readlink", [&] { return inner_->ReadLink(path); });
}

absl::StatusOr<std::vector<std::string>> TimedSys::ListDir(const std::string& path) {
  return Timed("listdir", [&] { return inner_->ListDir(path); });
}

bool TimedSys::Exists(const std::string& path) {
  return Timed("exists", [&] { return inner_->Exists(path); });
}

absl::StatusOr<std::string> TimedSys::ReadFile(const std::string& path) {
  return Timed("readfile", [&] { return inner_->ReadFile(path); });
}

}  // namespace passage::bench
