// The /proc/self files passage reads about itself at exit
// (--report-timing's memory figures, --report-resources' open fds). They are
// opened once and kept: with -sandbox on, before the filter (which forbids
// open afterwards), otherwise on first use. Main thread.
#ifndef PASSAGE_VMM_PROC_SELF_H_
#define PASSAGE_VMM_PROC_SELF_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace passage {

// Opens /proc/self/status and /proc/self/fd now (idempotent).
absl::Status OpenProcSelf();

// /proc/self/status as it reads now.
absl::StatusOr<std::string> ReadProcSelfStatus();

// passage's open fds now, each with what it refers to (readlink), without
// the ones kept here.
struct OwnFd {
  int fd;
  std::string target;
};
absl::StatusOr<std::vector<OwnFd>> ListOwnFds();

// The kept /proc/self/fd directory fd (-1 before OpenProcSelf): the
// sandbox allows readlinkat relative to it.
int ProcSelfFdDir();

}  // namespace passage

#endif  // PASSAGE_VMM_PROC_SELF_H_
