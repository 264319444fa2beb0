#include "vmm/proc_self.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "memory/unique_fd.h"

namespace passage {
namespace {

struct Kept {
  absl::Mutex mu;
  UniqueFd status ABSL_GUARDED_BY(mu);
  DIR* fds ABSL_GUARDED_BY(mu) = nullptr;  // owns its fd; kept for the process's life
};

Kept& State() {
  static auto* kept = new Kept;
  return *kept;
}

absl::Status OpenLocked(Kept& k) ABSL_EXCLUSIVE_LOCKS_REQUIRED(k.mu) {
  if (!k.status.valid()) {
    k.status.reset(open("/proc/self/status", O_RDONLY | O_CLOEXEC));
    if (!k.status.valid()) return ErrnoError("cannot open /proc/self/status");
  }
  if (k.fds == nullptr) {
    k.fds = opendir("/proc/self/fd");
    if (k.fds == nullptr) return ErrnoError("cannot open /proc/self/fd");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status OpenProcSelf() {
  Kept& k = State();
  absl::MutexLock lock(&k.mu);
  return OpenLocked(k);
}

absl::StatusOr<std::string> ReadProcSelfStatus() {
  Kept& k = State();
  absl::MutexLock lock(&k.mu);
  if (absl::Status s = OpenLocked(k); !s.ok()) return s;
  // A proc file read from offset 0 is generated afresh.
  std::string out;
  char buf[4096];
  for (off_t off = 0;;) {
    const ssize_t n = pread(k.status.get(), buf, sizeof(buf), off);
    if (n < 0) return ErrnoError("cannot read /proc/self/status");
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

absl::StatusOr<std::vector<OwnFd>> ListOwnFds() {
  Kept& k = State();
  absl::MutexLock lock(&k.mu);
  if (absl::Status s = OpenLocked(k); !s.ok()) return s;
  const int dir = dirfd(k.fds);
  std::vector<OwnFd> out;
  rewinddir(k.fds);
  while (dirent* e = readdir(k.fds)) {
    if (e->d_name[0] == '.') continue;
    const int fd = atoi(e->d_name);
    if (fd == dir || fd == k.status.get()) continue;
    char target[256] = {0};
    const ssize_t n = readlinkat(dir, e->d_name, target, sizeof(target) - 1);
    out.push_back({fd, n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string()});
  }
  return out;
}

int ProcSelfFdDir() {
  Kept& k = State();
  absl::MutexLock lock(&k.mu);
  return k.fds == nullptr ? -1 : dirfd(k.fds);
}

}  // namespace passage
