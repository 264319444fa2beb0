// Owning file descriptor and errno helpers shared by every module.
#ifndef PASSAGE_MEMORY_UNIQUE_FD_H_
#define PASSAGE_MEMORY_UNIQUE_FD_H_

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include "absl/strings/string_view.h"
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace passage {

// Closes the descriptor it holds. Move-only; -1 means empty.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// "what: strerror(errno)" as an absl::Status whose code follows errno
// (absl::ErrnoToStatus appends the errno text).
inline absl::Status ErrnoError(absl::string_view what, int err = errno) {
  return absl::ErrnoToStatus(err, what);
}

}  // namespace passage

#endif  // PASSAGE_MEMORY_UNIQUE_FD_H_
