#include "vmm/passed_fds.h"

#include <fcntl.h>

#include <climits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace passage {

absl::StatusOr<int> ParseFdNumber(absl::string_view value) {
  // absl::SimpleAtoi alone would take " 3" and "+3".
  bool digits = !value.empty();
  for (char c : value) digits &= absl::ascii_isdigit(static_cast<unsigned char>(c));
  int fd = -1;
  if (!digits || !absl::SimpleAtoi(value, &fd)) {
    return absl::InvalidArgumentError(
        absl::StrCat("fd='", absl::CEscape(value), "' is not a file descriptor number"));
  }
  return fd;
}

absl::Status PassedFds::CheckUnique(const std::vector<FdUse>& uses) {
  for (size_t i = 0; i < uses.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (uses[i].fd == uses[j].fd) {
        return absl::InvalidArgumentError(absl::StrCat(uses[i].where, ": fd=", uses[i].fd,
                                                       " is already used by ", uses[j].where));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PassedFds> PassedFds::Adopt(const std::vector<FdUse>& uses) {
  PassedFds out;
  const FdUse* closed = nullptr;
  for (const FdUse& use : uses) {
    if (::fcntl(use.fd, F_GETFD) < 0) {
      if (closed == nullptr) closed = &use;
      continue;
    }
    out.fds_.emplace(use.fd, UniqueFd(use.fd));
  }
  if (closed != nullptr) {
    // `out` goes out of scope here: the open ones close with it.
    return absl::InvalidArgumentError(
        absl::StrCat(closed->where, ": fd=", closed->fd, " is not an open file descriptor"));
  }
  return out;
}

int PassedFds::Add(UniqueFd fd) {
  const int n = fd.get();
  fds_[n] = std::move(fd);
  return n;
}

absl::StatusOr<UniqueFd> PassedFds::Take(int fd) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("fd=", fd, " is not a descriptor passage was given (or it is in use already)"));
  }
  UniqueFd out = std::move(it->second);
  fds_.erase(it);
  return out;
}

std::vector<int> PassedFds::Held() const {
  std::vector<int> out;
  for (const auto& [fd, owned] : fds_) out.push_back(fd);
  return out;
}

}  // namespace passage
