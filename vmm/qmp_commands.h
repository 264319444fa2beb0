// One QMP conversation, without the socket: a framed message (and the fds
// that arrived with it) in, one reply out. The commands, their argument
// checks and reply shapes follow QEMU's schema (qapi/control.json,
// misc.json, run-state.json, qdev.json, qom.json, pci.json); each calls the
// ControlTarget (vmm/control.h). device_add and object-add arguments become
// the "-device"/"-object" text the command line takes and go through the same
// parser and registry (vmm/device_config.h, vmm/object_config.h).
#ifndef PASSAGE_VMM_QMP_COMMANDS_H_
#define PASSAGE_VMM_QMP_COMMANDS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "memory/unique_fd.h"
#include "nlohmann/json.hpp"
#include "vmm/control.h"
#include "vmm/qmp_framing.h"

namespace passage {

// add-fd's fd sets, shared by every monitor of a server (as in QEMU). An fd
// in a set is named by its number (device_add fd=N) and leaves the set when
// a command takes it.
class QmpFdSets {
 public:
  static constexpr size_t kMaxFds = 64;  // held across all sets

  // Adds `fd` to set `set_id` (a new set when absent: the lowest free id).
  // Returns {"fdset-id", "fd"}.
  absl::StatusOr<nlohmann::json> Add(std::optional<int64_t> set_id, std::optional<std::string> opaque,
                                     UniqueFd fd);
  // Closes one fd of a set, or the whole set.
  absl::Status Remove(int64_t set_id, std::optional<int64_t> fd);
  // Takes fd number `fd` out of whichever set holds it.
  absl::StatusOr<UniqueFd> Take(int64_t fd);
  bool Holds(int64_t fd) const;
  nlohmann::json Query() const;
  size_t size() const;
  void Clear() { sets_.clear(); }

 private:
  struct Entry {
    UniqueFd fd;
    std::optional<std::string> opaque;
  };
  std::map<int64_t, std::map<int, Entry>> sets_;
};

// Reply shapes: {"return": ...} or {"error": {"class", "desc"}}, "id" echoed.
nlohmann::json QmpError(const std::string& error_class, const std::string& desc);
// A ControlTarget status as a QMP error (kNotFound: DeviceNotFound).
nlohmann::json QmpErrorFromStatus(const absl::Status& status);
// {"event", "data", "timestamp": {"seconds", "microseconds"}} (data left out when null).
nlohmann::json QmpEvent(std::string_view event, nlohmann::json data);
// One line of the wire format (invalid UTF-8 replaced, never throws).
std::string QmpLine(const nlohmann::json& message);

class QmpSession {
 public:
  static constexpr size_t kMaxNamedFds = 64;  // getfd names per monitor

  // `version` is passage's ("0.1.0"): query-version and the greeting report it.
  QmpSession(ControlTarget& target, QmpFdSets& fdsets, std::string version)
      : target_(target), fdsets_(fdsets), version_(std::move(version)) {}

  nlohmann::json Greeting() const;
  // The reply to one message. `fds` (from SCM_RIGHTS, sent with it) are
  // used by getfd/add-fd or closed.
  nlohmann::json Handle(const QmpFramer::Frame& frame, std::vector<UniqueFd> fds);
  bool negotiated() const { return negotiated_; }
  // The names getfd holds, for tests.
  size_t named_fds() const { return named_fds_.size(); }

  // The commands this server knows, for query-commands.
  static std::vector<std::string> CommandNames();

 private:
  friend struct QmpCommandTable;
  nlohmann::json Execute(const nlohmann::json& message, std::vector<UniqueFd>& fds);
  // An fd= value: a getfd name or the number of an fd in an fd set; the fd
  // stays held until TakeFd.
  absl::StatusOr<int> ResolveFd(const std::string& command, const nlohmann::json& value);
  UniqueFd TakeFd(int fd);

  // One device_add/object-add argument onto the -device/-object text
  // `spec` (an fd= resolved to the monitor's fd, remembered in `fd`); an
  // error reply when the argument is bad.
  std::optional<nlohmann::json> AppendProperty(const std::string& command, const std::string& key,
                                               const nlohmann::json& value, std::string& spec,
                                               std::optional<int>& fd);
  nlohmann::json DeviceAdd(const nlohmann::json& args);
  nlohmann::json ObjectAdd(const nlohmann::json& args);
  nlohmann::json GetFd(const nlohmann::json& args, std::vector<UniqueFd>& fds);
  nlohmann::json CloseFd(const nlohmann::json& args);
  nlohmann::json AddFd(const nlohmann::json& args, std::vector<UniqueFd>& fds);
  nlohmann::json RemoveFd(const nlohmann::json& args);
  nlohmann::json QueryVersion() const;

  ControlTarget& target_;
  QmpFdSets& fdsets_;
  const std::string version_;
  bool negotiated_ = false;
  std::map<std::string, UniqueFd> named_fds_;
};

}  // namespace passage

#endif  // PASSAGE_VMM_QMP_COMMANDS_H_
