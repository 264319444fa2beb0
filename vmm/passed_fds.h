// File descriptors handed to passage on the command line (-accel kvm,fd=,
// -object iommufd,fd=, -device ...,fd=). passage owns every one of them from
// the moment the command line is accepted: each consumer Take()s its fd right
// before use, and whatever no consumer took (the VM failed to build first) is
// closed when the PassedFds goes. QEMU leaves passed fds to the caller; passage
// does not, so an error path can never leave one open behind it.
#ifndef PASSAGE_VMM_PASSED_FDS_H_
#define PASSAGE_VMM_PASSED_FDS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "memory/unique_fd.h"

namespace passage {

// "fd=N" as a user typed it: decimal digits only (no sign, no blanks), at most
// INT_MAX. The error names the key ("fd='+3' is not a file descriptor
// number"); callers put the flag in front.
absl::StatusOr<int> ParseFdNumber(absl::string_view value);

// One fd= on the command line and the place that named it
// ("-object iommufd,id=i0").
struct FdUse {
  int fd = -1;
  std::string where;
};

class PassedFds {
 public:
  // The same number named twice is a usage error naming both places.
  static absl::Status CheckUnique(const std::vector<FdUse>& uses);
  // Owns every fd in `uses` (which CheckUnique accepted). An fd that is not
  // open is an error naming its place; the open ones are closed then too.
  static absl::StatusOr<PassedFds> Adopt(const std::vector<FdUse>& uses);

  PassedFds() = default;
  PassedFds(PassedFds&&) = default;
  PassedFds& operator=(PassedFds&&) = default;
  ~PassedFds() = default;  // closes what no consumer took

  // Holds an fd that came by another way (QMP's getfd, SCM_RIGHTS); returns
  // its number, by which a DeviceConfig/ObjectConfig fd= names it.
  int Add(UniqueFd fd);
  // Hands `fd` to the caller, who owns it from now on. Not held (never
  // passed, or taken already): an error naming `fd`.
  absl::StatusOr<UniqueFd> Take(int fd);
  // The fds still held, in increasing order.
  std::vector<int> Held() const;

 private:
  std::map<int, UniqueFd> fds_;
};

}  // namespace passage

#endif  // PASSAGE_VMM_PASSED_FDS_H_
