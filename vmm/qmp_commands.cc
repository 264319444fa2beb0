#include "vmm/qmp_commands.h"

#include <sys/time.h>

#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "vmm/device_config.h"
#include "vmm/object_config.h"

namespace passage {
namespace {

using json = nlohmann::json;

json Ok(json value = json::object()) { return {{"return", std::move(value)}}; }
json Generic(const std::string& desc) { return QmpError("GenericError", desc); }

enum class ArgType { kString, kInt, kBool, kStringList, kAny };

struct Arg {
  const char* name;
  ArgType type;
  bool required;
};

const char* TypeName(ArgType t) {
  switch (t) {
    case ArgType::kString:
      return "string";
    case ArgType::kInt:
      return "integer";
    case ArgType::kBool:
      return "boolean";
    case ArgType::kStringList:
      return "array";
    case ArgType::kAny:
      return "any";
  }
  return "any";
}

bool HasType(const json& v, ArgType t) {
  switch (t) {
    case ArgType::kString:
      return v.is_string();
    case ArgType::kInt:
      return v.is_number_integer();
    case ArgType::kBool:
      return v.is_boolean();
    case ArgType::kStringList:
      if (!v.is_array()) return false;
      for (const json& e : v) {
        if (!e.is_string()) return false;
      }
      return true;
    case ArgType::kAny:
      return true;
  }
  return false;
}

// QEMU's messages for arguments that do not fit the schema. `open`: keys
// beyond `args` are the device's or object's own (checked by its parser).
std::optional<json> CheckArgs(const json& args, const std::vector<Arg>& spec, bool open) {
  for (const Arg& a : spec) {
    auto it = args.find(a.name);
    if (it == args.end()) {
      if (a.required) return Generic(absl::StrCat("Parameter '", a.name, "' is missing"));
      continue;
    }
    if (!HasType(*it, a.type)) {
      return Generic(absl::StrCat("Invalid parameter type for '", a.name, "', expected: ", TypeName(a.type)));
    }
  }
  if (!open) {
    for (const auto& [key, value] : args.items()) {
      bool known = false;
      for (const Arg& a : spec) known |= key == a.name;
      if (!known) return Generic(absl::StrCat("Parameter '", key, "' is unexpected"));
    }
  }
  return std::nullopt;
}

std::string Str(const json& args, const char* key) {
  auto it = args.find(key);
  return it != args.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// One element of a "-device"/"-object" spec; ',' doubled as the parser wants.
std::string Escape(absl::string_view text) { return absl::StrReplaceAll(text, {{",", ",,"}}); }

// A property name that cannot change how the spec splits.
bool PlainKey(absl::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// A property value as the command line spells it: strings as they are,
// integers in decimal, booleans on/off.
std::optional<std::string> PropertyText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return v.dump();
  if (v.is_boolean()) return v.get<bool>() ? "on" : "off";
  return std::nullopt;
}

// The parser's messages name the command line flag; QMP names the command.
std::string Rename(absl::string_view message, absl::string_view flag, absl::string_view command) {
  if (absl::ConsumePrefix(&message, flag)) return absl::StrCat(command, message);
  return absl::StrCat(command, ": ", message);
}

// A decimal fd number, as device_add's fd= or an integer.
std::optional<int64_t> FdNumber(const json& v) {
  if (v.is_number_integer()) {
    // Within int: a larger number must not wrap onto a real fd.
    if (v.is_number_unsigned() ? v.get<uint64_t>() > INT32_MAX : (v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)) {
      return std::nullopt;
    }
    return v.get<int64_t>();
  }
  if (!v.is_string()) return std::nullopt;
  const std::string s = v.get<std::string>();
  if (s.empty() || s.size() > 9) return std::nullopt;
  for (char c : s) {
    if (!absl::ascii_isdigit(c)) return std::nullopt;
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(s, &n)) return std::nullopt;
  return n;
}

// The 'pasid' argument: PCIe PASIDs are 20 bits.
std::optional<uint32_t> Pasid(const json& args) {
  const json& v = args["pasid"];
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() >= (1u << 20)) return std::nullopt;
    return static_cast<uint32_t>(v.get<uint64_t>());
  }
  const int64_t n = v.get<int64_t>();
  if (n < 0 || n >= (1 << 20)) return std::nullopt;
  return static_cast<uint32_t>(n);
}

json BadPasid(const char* command, const json& args) {
  return Generic(absl::StrCat(command, ": 'pasid' ", args["pasid"].dump(),
                              " is not a PASID (0..1048575, 20 bits)"));
}

}  // namespace

json QmpError(const std::string& error_class, const std::string& desc) {
  return {{"error", {{"class", error_class}, {"desc", desc}}}};
}

json QmpErrorFromStatus(const absl::Status& status) {
  return QmpError(status.code() == absl::StatusCode::kNotFound ? "DeviceNotFound" : "GenericError",
                  std::string(status.message()));
}

json QmpEvent(std::string_view event, json data) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  json e = {{"event", std::string(event)}};
  if (!data.is_null()) e["data"] = std::move(data);
  e["timestamp"] = {{"seconds", static_cast<int64_t>(tv.tv_sec)},
                    {"microseconds", static_cast<int64_t>(tv.tv_usec)}};
  return e;
}

std::string QmpLine(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace) + "\r\n";
}

// --- fd sets ---------------------------------------------------------------

size_t QmpFdSets::size() const {
  size_t n = 0;
  for (const auto& [id, set] : sets_) n += set.size();
  return n;
}

absl::StatusOr<json> QmpFdSets::Add(std::optional<int64_t> set_id, std::optional<std::string> opaque,
                                    UniqueFd fd) {
  if (size() >= kMaxFds) {
    return absl::ResourceExhaustedError(absl::StrCat("add-fd: at most ", kMaxFds, " fds may be held in fd sets"));
  }
  int64_t id = 0;
  if (set_id.has_value()) {
    if (*set_id < 0) return absl::InvalidArgumentError("add-fd: 'fdset-id' must not be negative");
    id = *set_id;
  } else {
    while (sets_.count(id)) ++id;
  }
  const int n = fd.get();
  sets_[id][n] = Entry{std::move(fd), std::move(opaque)};
  return json{{"fdset-id", id}, {"fd", n}};
}

absl::Status QmpFdSets::Remove(int64_t set_id, std::optional<int64_t> fd) {
  auto set = sets_.find(set_id);
  if (set != sets_.end()) {
    if (!fd.has_value()) {
      sets_.erase(set);
      return absl::OkStatus();
    }
    if (set->second.erase(static_cast<int>(*fd)) == 1) {
      if (set->second.empty()) sets_.erase(set);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(fd.has_value()
                                 ? absl::StrCat("remove-fd: no fd ", *fd, " in fd set ", set_id, " ('fd')")
                                 : absl::StrCat("remove-fd: no fd set ", set_id, " ('fdset-id')"));
}

bool QmpFdSets::Holds(int64_t fd) const {
  for (const auto& [id, set] : sets_) {
    if (set.count(static_cast<int>(fd))) return true;
  }
  return false;
}

absl::StatusOr<UniqueFd> QmpFdSets::Take(int64_t fd) {
  for (auto it = sets_.begin(); it != sets_.end(); ++it) {
    auto e = it->second.find(static_cast<int>(fd));
    if (e == it->second.end()) continue;
    UniqueFd out = std::move(e->second.fd);
    it->second.erase(e);
    if (it->second.empty()) sets_.erase(it);
    return out;
  }
  return absl::NotFoundError(absl::StrCat("fd ", fd, " is in no fd set"));
}

json QmpFdSets::Query() const {
  json out = json::array();
  for (const auto& [id, set] : sets_) {
    json fds = json::array();
    for (const auto& [n, e] : set) {
      json f = {{"fd", n}};
      if (e.opaque.has_value()) f["opaque"] = *e.opaque;
      fds.push_back(std::move(f));
    }
    out.push_back({{"fdset-id", id}, {"fds", std::move(fds)}});
  }
  return out;
}

// --- the session -------------------------------------------------------------

struct QmpCommandTable {
  struct Command {
    const char* name;
    std::vector<Arg> args;
    bool open;  // device_add, object-add: the driver's own keys too
    std::function<json(QmpSession&, const json& args, std::vector<UniqueFd>& fds)> run;
  };
  static const std::vector<Command>& Get();
};

const std::vector<QmpCommandTable::Command>& QmpCommandTable::Get() {
  using S = QmpSession;
  using Fds = std::vector<UniqueFd>;
  auto status_reply = [](const absl::Status& s) { return s.ok() ? Ok() : QmpErrorFromStatus(s); };
  static const auto* commands = new std::vector<Command>{
      {"qmp_capabilities", {{"enable", ArgType::kStringList, false}}, false,
       [](S&, const json&, Fds&) { return Ok(); }},  // handled before the table
      {"query-version", {}, false, [](S& s, const json&, Fds&) { return s.QueryVersion(); }},
      {"query-commands", {}, false,
       [](S&, const json&, Fds&) {
         json out = json::array();
         for (const std::string& n : QmpSession::CommandNames()) out.push_back({{"name", n}});
         return Ok(std::move(out));
       }},
      {"query-status", {}, false,
       [](S& s, const json&, Fds&) {
         const std::string state = s.target_.RunState();
         return Ok({{"status", state}, {"running", state == "running"}});
       }},
      {"stop", {}, false, [status_reply](S& s, const json&, Fds&) { return status_reply(s.target_.Stop()); }},
      {"cont", {}, false, [status_reply](S& s, const json&, Fds&) { return status_reply(s.target_.Cont()); }},
      {"system_reset", {}, false,
       [](S& s, const json&, Fds&) {
         s.target_.SystemReset();
         return Ok();
       }},
      {"system_powerdown", {}, false,
       [status_reply](S& s, const json&, Fds&) { return status_reply(s.target_.SystemPowerdown()); }},
      {"quit", {}, false,
       [](S& s, const json&, Fds&) {
         s.target_.Quit();
         return Ok();
       }},
      {"getfd", {{"fdname", ArgType::kString, true}}, false,
       [](S& s, const json& a, Fds& fds) { return s.GetFd(a, fds); }},
      {"closefd", {{"fdname", ArgType::kString, true}}, false,
       [](S& s, const json& a, Fds&) { return s.CloseFd(a); }},
      {"add-fd", {{"fdset-id", ArgType::kInt, false}, {"opaque", ArgType::kString, false}}, false,
       [](S& s, const json& a, Fds& fds) { return s.AddFd(a, fds); }},
      {"remove-fd", {{"fdset-id", ArgType::kInt, true}, {"fd", ArgType::kInt, false}}, false,
       [](S& s, const json& a, Fds&) { return s.RemoveFd(a); }},
      {"query-fdsets", {}, false, [](S& s, const json&, Fds&) { return Ok(s.fdsets_.Query()); }},
      {"device_add",
       {{"driver", ArgType::kString, true}, {"id", ArgType::kString, false}, {"bus", ArgType::kString, false},
        {"addr", ArgType::kString, false}},
       true, [](S& s, const json& a, Fds&) { return s.DeviceAdd(a); }},
      {"device_del", {{"id", ArgType::kString, true}}, false,
       [status_reply](S& s, const json& a, Fds&) { return status_reply(s.target_.DeviceDel(Str(a, "id"))); }},
      {"object-add", {{"qom-type", ArgType::kString, true}, {"id", ArgType::kString, true}}, true,
       [](S& s, const json& a, Fds&) { return s.ObjectAdd(a); }},
      {"object-del", {{"id", ArgType::kString, true}}, false,
       [status_reply](S& s, const json& a, Fds&) { return status_reply(s.target_.ObjectDel(Str(a, "id"))); }},
      {"query-pci", {}, false, [](S& s, const json&, Fds&) { return Ok(s.target_.QueryPci()); }},
      {"x-passage-query-iommufd", {}, false,
       [](S& s, const json&, Fds&) { return Ok(s.target_.QueryIommufd()); }},
      {"x-passage-query-pasid", {}, false, [](S& s, const json&, Fds&) { return Ok(s.target_.QueryPasid()); }},
      {"x-passage-pasid-bind", {{"pasid", ArgType::kInt, true}, {"object", ArgType::kString, true}}, false,
       [status_reply](S& s, const json& a, Fds&) {
         std::optional<uint32_t> pasid = Pasid(a);
         if (!pasid) return BadPasid("x-passage-pasid-bind", a);
         return status_reply(s.target_.PasidBind(*pasid, Str(a, "object")));
       }},
      {"x-passage-pasid-unbind", {{"pasid", ArgType::kInt, true}, {"object", ArgType::kString, true}}, false,
       [status_reply](S& s, const json& a, Fds&) {
         std::optional<uint32_t> pasid = Pasid(a);
         if (!pasid) return BadPasid("x-passage-pasid-unbind", a);
         return status_reply(s.target_.PasidUnbind(*pasid, Str(a, "object")));
       }},
  };
  return *commands;
}

std::vector<std::string> QmpSession::CommandNames() {
  std::vector<std::string> names;
  for (const auto& c : QmpCommandTable::Get()) names.push_back(c.name);
  return names;
}

json QmpSession::QueryVersion() const {
  int64_t parts[3] = {0, 0, 0};
  int i = 0;
  for (absl::string_view p : absl::StrSplit(version_, '.')) {
    if (i < 3) (void)absl::SimpleAtoi(p, &parts[i++]);
  }
  return Ok({{"qemu", {{"major", parts[0]}, {"minor", parts[1]}, {"micro", parts[2]}}},
             {"package", absl::StrCat("passage ", version_)}});
}

json QmpSession::Greeting() const {
  return {{"QMP", {{"version", QueryVersion()["return"]}, {"capabilities", json::array()}}}};
}

json QmpSession::Handle(const QmpFramer::Frame& frame, std::vector<UniqueFd> fds) {
  // `fds` is closed on every path that does not hand it to getfd/add-fd.
  if (frame.too_deep) {
    return Generic(absl::StrCat("JSON parse error, nesting deeper than ", QmpFramer::kMaxDepth, " levels"));
  }
  json msg;
  try {
    msg = json::parse(frame.text);
  } catch (const json::exception& e) {
    absl::string_view what = e.what();
    if (size_t end = what.find("] "); absl::StartsWith(what, "[json.exception") && end != what.npos) {
      what.remove_prefix(end + 2);
    }
    return Generic(absl::StrCat("JSON parse error, ", what));
  }
  if (!msg.is_object()) return Generic("QMP input must be a JSON object");
  json reply = Execute(msg, fds);
  if (auto id = msg.find("id"); id != msg.end()) reply["id"] = *id;
  return reply;
}

json QmpSession::Execute(const json& msg, std::vector<UniqueFd>& fds) {
  for (const auto& [key, value] : msg.items()) {
    if (key != "execute" && key != "arguments" && key != "id") {
      return Generic(absl::StrCat("QMP input member '", key, "' is unexpected"));
    }
  }
  auto exec = msg.find("execute");
  if (exec == msg.end()) return Generic("QMP input lacks member 'execute'");
  if (!exec->is_string()) return Generic("QMP input member 'execute' must be a string");
  const std::string name = exec->get<std::string>();
  json args = json::object();
  if (auto a = msg.find("arguments"); a != msg.end()) {
    if (!a->is_object()) return Generic("QMP input member 'arguments' must be an object");
    args = *a;
  }
  if (!negotiated_ && name != "qmp_capabilities") {
    return QmpError("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'");
  }
  const QmpCommandTable::Command* command = nullptr;
  for (const auto& c : QmpCommandTable::Get()) {
    if (name == c.name) command = &c;
  }
  if (command == nullptr) return QmpError("CommandNotFound", absl::StrCat("The command ", name, " has not been found"));
  if (std::optional<json> bad = CheckArgs(args, command->args, command->open)) return *bad;
  if (name == "qmp_capabilities") {
    if (negotiated_) {
      return QmpError("CommandNotFound", "Capabilities negotiation is already complete, command ignored");
    }
    if (auto enable = args.find("enable"); enable != args.end() && !enable->empty()) {
      return Generic(absl::StrCat("Capability '", (*enable)[0].get<std::string>(), "' not available"));
    }
    negotiated_ = true;
    return Ok();
  }
  return command->run(*this, args, fds);
}

absl::StatusOr<int> QmpSession::ResolveFd(const std::string& command, const json& value) {
  // Errors are GenericError (InvalidArgument): DeviceNotFound is for devices.
  std::optional<int64_t> n = FdNumber(value);
  if (n.has_value() || value.is_number()) {
    if (!n.has_value() || !fdsets_.Holds(*n)) {
      return absl::InvalidArgumentError(absl::StrCat(
          command, ": fd ", value.dump(), " is not in any fd set (pass it with add-fd, or name a getfd fd)"));
    }
    return static_cast<int>(*n);
  }
  if (!value.is_string()) {
    return absl::InvalidArgumentError("Invalid parameter type for 'fd', expected: string");
  }
  auto it = named_fds_.find(value.get<std::string>());
  if (it == named_fds_.end()) {
    return absl::InvalidArgumentError(absl::StrCat(command, ": fd '", value.get<std::string>(),
                                                   "': no file descriptor of that name (pass it with getfd)"));
  }
  return it->second.get();
}

UniqueFd QmpSession::TakeFd(int fd) {
  for (auto it = named_fds_.begin(); it != named_fds_.end(); ++it) {
    if (it->second.get() == fd) {
      UniqueFd out = std::move(it->second);
      named_fds_.erase(it);
      return out;
    }
  }
  absl::StatusOr<UniqueFd> out = fdsets_.Take(fd);
  return out.ok() ? std::move(*out) : UniqueFd();
}

std::optional<json> QmpSession::AppendProperty(const std::string& command, const std::string& key,
                                               const json& value, std::string& spec,
                                               std::optional<int>& fd) {
  if (!PlainKey(key)) return Generic(absl::StrCat(command, ": invalid property name '", key, "'"));
  if (key == "fd") {
    absl::StatusOr<int> n = ResolveFd(command, value);
    if (!n.ok()) return QmpErrorFromStatus(n.status());
    fd = *n;
    absl::StrAppend(&spec, ",fd=", *n);
    return std::nullopt;
  }
  std::optional<std::string> text = PropertyText(value);
  if (!text) return Generic(absl::StrCat("Invalid parameter type for '", key, "', expected: string"));
  absl::StrAppend(&spec, ",", key, "=", Escape(*text));
  return std::nullopt;
}

json QmpSession::DeviceAdd(const json& args) {
  std::string spec = absl::StrCat("driver=", Escape(Str(args, "driver")));
  std::optional<int> fd;
  for (const auto& [key, value] : args.items()) {
    if (key == "driver") continue;
    if (key == "bus") {
      // One PCI bus; QEMU's q35 names it pcie.0.
      const std::string bus = value.get<std::string>();
      if (bus != "pcie.0" && bus != "pci.0") return Generic(absl::StrCat("Bus '", bus, "' not found"));
      continue;
    }
    if (std::optional<json> error = AppendProperty("device_add", key, value, spec, fd)) return *error;
  }
  absl::StatusOr<DeviceConfig> config = ParseDeviceConfig(spec);
  if (!config.ok()) return Generic(Rename(config.status().message(), "-device", "device_add"));
  // The fd leaves the monitor now: the device owns it, or it is closed when
  // the command fails (as QEMU's monitor_fd_param consumes a getfd fd).
  PassedFds passed;
  if (fd.has_value()) passed.Add(TakeFd(*fd));
  absl::Status s = target_.DeviceAdd(*config, passed);
  return s.ok() ? Ok() : QmpErrorFromStatus(s);
}

json QmpSession::ObjectAdd(const json& args) {
  if (args.contains("props")) {
    return Generic("object-add: 'props' is not supported; give the object's keys beside 'qom-type' and 'id'");
  }
  std::string spec = absl::StrCat("qom-type=", Escape(Str(args, "qom-type")), ",id=", Escape(Str(args, "id")));
  std::optional<int> fd;
  for (const auto& [key, value] : args.items()) {
    if (key == "qom-type" || key == "id") continue;
    if (std::optional<json> error = AppendProperty("object-add", key, value, spec, fd)) return *error;
  }
  absl::StatusOr<ObjectConfig> config = ParseObjectConfig(spec);
  if (!config.ok()) return Generic(Rename(config.status().message(), "-object", "object-add"));
  PassedFds passed;
  if (fd.has_value()) passed.Add(TakeFd(*fd));
  absl::Status s = target_.ObjectAdd(*config, passed);
  return s.ok() ? Ok() : QmpErrorFromStatus(s);
}

json QmpSession::GetFd(const json& args, std::vector<UniqueFd>& fds) {
  const std::string name = Str(args, "fdname");
  if (fds.empty()) return Generic("No file descriptor supplied via SCM_RIGHTS");
  if (name.empty() || absl::ascii_isdigit(name[0])) {
    return Generic("Parameter 'fdname' expects a name not starting with a digit");
  }
  auto it = named_fds_.find(name);
  if (it == named_fds_.end() && named_fds_.size() >= kMaxNamedFds) {
    return Generic(absl::StrCat("getfd: at most ", kMaxNamedFds, " named fds per monitor ('fdname')"));
  }
  // The first fd of the message; any others are closed with `fds`.
  named_fds_[name] = std::move(fds.front());
  return Ok();
}

json QmpSession::CloseFd(const json& args) {
  const std::string name = Str(args, "fdname");
  if (named_fds_.erase(name) == 0) return Generic(absl::StrCat("File descriptor named '", name, "' not found"));
  return Ok();
}

json QmpSession::AddFd(const json& args, std::vector<UniqueFd>& fds) {
  if (fds.empty()) return Generic("No file descriptor supplied via SCM_RIGHTS");
  std::optional<int64_t> set_id;
  if (auto it = args.find("fdset-id"); it != args.end()) set_id = it->get<int64_t>();
  std::optional<std::string> opaque;
  if (auto it = args.find("opaque"); it != args.end()) opaque = it->get<std::string>();
  absl::StatusOr<json> added = fdsets_.Add(set_id, std::move(opaque), std::move(fds.front()));
  if (!added.ok()) return QmpErrorFromStatus(added.status());
  return Ok(std::move(*added));
}

json QmpSession::RemoveFd(const json& args) {
  std::optional<int64_t> fd;
  if (auto it = args.find("fd"); it != args.end()) fd = it->get<int64_t>();
  absl::Status s = fdsets_.Remove(args["fdset-id"].get<int64_t>(), fd);
  // Not found is GenericError here: DeviceNotFound is for devices.
  return s.ok() ? Ok() : Generic(std::string(s.message()));
}

}  // namespace passage
