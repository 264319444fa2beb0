// A Sys that forwards every call to another (the real kernel) and adds up
// the wall time spent in each kind of call: passage-bench's per-step
// account of device set-up (which ioctl, open or sysfs read the time went
// to, and how much was passage's own work between them).
#ifndef PASSAGE_TESTS_BENCH_TIMED_SYS_H_
#define PASSAGE_TESTS_BENCH_TIMED_SYS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "iommu/sys.h"

namespace passage::bench {

class TimedSys : public Sys {
 public:
  struct Step {
    double seconds = 0;
    int calls = 0;
  };

  explicit TimedSys(Sys* inner) : inner_(inner) {}

  // Steps since the last Take(), then starts afresh. Keys: "open PATH"
  // (digits of the path as N: /dev/vfio/devices/vfioN), the ioctl's uAPI
  // name, "close", "pread", "pwrite", "mmap", "munmap", "readlink",
  // "listdir", "exists", "readfile".
  std::map<std::string, Step> Take();

  int Open(const char* path, int flags) override;
  int Close(int fd) override;
  int Ioctl(int fd, unsigned long request, void* arg) override;
  ssize_t Pread(int fd, void* buf, size_t count, off_t offset) override;
  ssize_t Pwrite(int fd, const void* buf, size_t count, off_t offset) override;
  void* MmapShared(int fd, size_t length, off_t offset) override;
  int Munmap(void* addr, size_t length) override;
  absl::StatusOr<std::string> ReadLink(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
  bool Exists(const std::string& path) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path) override;

 private:
  // Runs CALL, adding its time to step KEY.
  template <typename Call>
  auto Timed(const std::string& key, Call call) -> decltype(call());

  Sys* inner_;
  std::map<std::string, Step> steps_;
  std::set<int> containers_;  // fds of /dev/vfio/vfio: VFIO reuses ioctl numbers
};

// "open /dev/vfio/devices/vfio3" -> "open /dev/vfio/devices/vfioN".
std::string StepKeyForOpen(const std::string& path);

}  // namespace passage::bench

#endif  // PASSAGE_TESTS_BENCH_TIMED_SYS_H_
