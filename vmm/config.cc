#include "vmm/config.h"

#include <functional>
#include <map>
#include <optional>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_join.h"
#include "memory/memory_map.h"
#include "vmm/device_registry.h"
#include "vmm/x86_cpu.h"

namespace passage {
namespace {

using Setter = std::function<absl::Status(absl::string_view value, VmConfig& config)>;

struct Option {
  bool takes_value;
  Setter set;
  const char* help;
};

absl::Status Bad(absl::string_view flag, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", why));
}

absl::Status SetMemory(absl::string_view value, VmConfig& c) {
  // QEMU also takes "-m size=2G".
  absl::string_view v = value;
  if (absl::ConsumePrefix(&v, "size=") && v.empty()) return Bad("-m", "empty size");
  absl::StatusOr<uint64_t> size = ParseMemorySize(v);
  if (!size.ok()) return Bad("-m", size.status().message());
  if (absl::Status s = ValidateRamSize(*size, "-m"); !s.ok()) return s;
  c.ram_size = *size;
  return absl::OkStatus();
}

absl::Status SetSmp(absl::string_view value, VmConfig& c) {
  // "-smp 2" or "-smp cpus=2"; topology keys are accepted only if consistent.
  int cpus = -1;
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    absl::string_view v = part;
    if (absl::ConsumePrefix(&v, "cpus=") || part == value || part.find('=') == part.npos) {
      // Digits only: absl::SimpleAtoi alone would take " 2", "+2" and "2\n".
      const bool digits = !v.empty() && absl::c_all_of(v, [](char ch) {
        return absl::ascii_isdigit(static_cast<unsigned char>(ch));
      });
      if (!digits || !absl::SimpleAtoi(v, &cpus)) {
        return Bad("-smp", absl::StrCat("invalid CPU count '", absl::CEscape(v), "'"));
      }
    } else {
      return Bad("-smp", absl::StrCat("unsupported option '", absl::CEscape(part), "' (only cpus=N)"));
    }
  }
  if (cpus < 1 || cpus > kMaxCpus) {
    return Bad("-smp", absl::StrCat("CPU count must be between 1 and ", kMaxCpus, ", got ", cpus));
  }
  c.cpus = cpus;
  return absl::OkStatus();
}

absl::Status SetCpu(absl::string_view value, VmConfig& c) {
  // "host" (KVM's supported CPUID, the only model) with features taken away:
  // "host,-xsave,-x2apic".
  std::vector<absl::string_view> parts = absl::StrSplit(value, ',');
  if (parts[0] != "host") {
    return Bad("-cpu", absl::StrCat("unsupported model '", absl::CEscape(parts[0]), "' (only host)"));
  }
  c.cpu_disabled.clear();
  for (size_t i = 1; i < parts.size(); ++i) {
    absl::string_view feature = parts[i];
    if (!absl::ConsumePrefix(&feature, "-")) {
      return Bad("-cpu", absl::StrCat("'", absl::CEscape(parts[i]), "': features can only be removed (-NAME)"));
    }
    if (!IsCpuFeature(feature)) {
      return Bad("-cpu", absl::StrCat("unknown feature '", absl::CEscape(feature), "' (known: ",
                                      absl::StrJoin(CpuFeatureNames(), ", "), ")"));
    }
    c.cpu_disabled.emplace_back(feature);
  }
  return absl::OkStatus();
}

absl::Status SetSerial(absl::string_view value, VmConfig& c) {
  if (value == "stdio" || value == "mon:stdio") {
    c.serial = {SerialConfig::Kind::kStdio, ""};
  } else if (value == "none" || value == "null") {
    c.serial = {SerialConfig::Kind::kNone, ""};
  } else if (absl::StartsWith(value, "file:") && value.size() > 5) {
    c.serial = {SerialConfig::Kind::kFile, std::string(value.substr(5))};
  } else {
    return Bad("-serial", absl::StrCat("unsupported backend '", absl::CEscape(value),
                                       "' (use stdio, none or file:PATH)"));
  }
  return absl::OkStatus();
}

absl::Status SetEntry(absl::string_view value, VmConfig& c) {
  if (value == "auto") c.entry = EntryMode::kAuto;
  else if (value == "real") c.entry = EntryMode::kReal;
  else if (value == "long") c.entry = EntryMode::kLong;
  else return Bad("-entry", absl::StrCat("unknown mode '", absl::CEscape(value), "' (use auto, real or long)"));
  return absl::OkStatus();
}

absl::Status NonEmpty(absl::string_view flag, absl::string_view value, std::string& out) {
  if (value.empty()) return Bad(flag, "empty value");
  out = std::string(value);
  return absl::OkStatus();
}

absl::Status SetAccel(absl::string_view value, VmConfig& c) {
  absl::StatusOr<KeyValues> kv = ParseKeyValues(value, "accel");
  if (!kv.ok()) return Bad("-accel", kv.status().message());
  for (const auto& [key, v] : kv->pairs) {
    if (key == "accel") {
      if (v != "kvm") return Bad("-accel", absl::StrCat("only kvm is supported, not '", absl::CEscape(v), "'"));
    } else if (key == "fd") {
      absl::StatusOr<int> fd = ParseFdNumber(v);
      if (!fd.ok()) return Bad("-accel kvm", fd.status().message());
      c.kvm_fd = *fd;
    } else {
      return Bad("-accel", absl::StrCat("unknown key '", absl::CEscape(key), "' (known: fd)"));
    }
  }
  return absl::OkStatus();
}

// QEMU's boolean option values.
std::optional<bool> OnOff(absl::string_view v) {
  if (v == "on" || v == "yes" || v == "true") return true;
  if (v == "off" || v == "no" || v == "false") return false;
  return std::nullopt;
}

// -sandbox on|off[,open=auto|allow|deny] (QEMU's -sandbox takes on|off and
// sub-options; open= is passage's).
absl::Status SetSandbox(absl::string_view value, VmConfig& c) {
  absl::StatusOr<KeyValues> kv = ParseKeyValues(value, "sandbox");
  if (!kv.ok()) return Bad("-sandbox", kv.status().message());
  bool open_given = false;
  for (const auto& [key, v] : kv->pairs) {
    if (key == "sandbox") {
      std::optional<bool> on = OnOff(v);
      if (!on) return Bad("-sandbox", absl::StrCat("'", absl::CEscape(v), "' is not on or off"));
      c.sandbox = *on;
    } else if (key == "open") {
      open_given = true;
      if (v == "auto") c.sandbox_open = SandboxOpen::kAuto;
      else if (v == "allow") c.sandbox_open = SandboxOpen::kAllow;
      else if (v == "deny") c.sandbox_open = SandboxOpen::kDeny;
      else return Bad("-sandbox", absl::StrCat("open='", absl::CEscape(v), "': use auto, allow or deny"));
    } else {
      return Bad("-sandbox", absl::StrCat("unknown key '", absl::CEscape(key), "' (known: open)"));
    }
  }
  if (open_given && !c.sandbox) return Bad("-sandbox", "open= needs on");
  return absl::OkStatus();
}

// server= and wait= of a QMP socket: passage listens (server=on, required)
// and never waits for a client before it runs (wait=off, the default here,
// unlike QEMU's). Other keys are the caller's.
absl::Status CheckSocketKey(absl::string_view label, absl::string_view key, absl::string_view value,
                            bool& server) {
  if (key == "server") {
    if (OnOff(value) != true) return Bad(label, "server=on is required (passage listens on the socket)");
    server = true;
  } else if (key == "wait") {
    std::optional<bool> wait = OnOff(value);
    if (!wait.has_value()) return Bad(label, absl::StrCat("wait='", absl::CEscape(value), "': use on or off"));
    if (*wait) return Bad(label, "wait=on is not supported (passage never waits for a client; use wait=off)");
  }
  return absl::OkStatus();
}

// -qmp unix:PATH,server=on[,wait=off]
absl::Status SetQmp(absl::string_view value, VmConfig& c) {
  absl::string_view rest = value;
  if (!absl::ConsumePrefix(&rest, "unix:")) {
    return Bad("-qmp", "only unix sockets: unix:PATH,server=on,wait=off");
  }
  // As a key=value list whose first key is the path (",," is a comma in it).
  absl::StatusOr<KeyValues> kv = ParseKeyValues(absl::StrCat("path=", rest), "path");
  if (!kv.ok()) return Bad("-qmp", kv.status().message());
  const std::string path = *kv->Find("path");
  if (path.empty()) return Bad("-qmp", "unix: needs a socket path");
  const std::string label = absl::StrCat("-qmp unix:", absl::CEscape(path));
  bool server = false;
  for (const auto& [key, v] : kv->pairs) {
    if (key == "path") continue;
    if (key != "server" && key != "wait") {
      return Bad(label, absl::StrCat("unknown key '", absl::CEscape(key), "' (known: server, wait)"));
    }
    if (absl::Status s = CheckSocketKey(label, key, v, server); !s.ok()) return s;
  }
  if (!server) return Bad(label, "server=on is required (passage listens on the socket)");
  c.monitors.push_back({path, label});
  return absl::OkStatus();
}

// -chardev socket,id=ID,path=PATH,server=on[,wait=off] and -mon
// chardev=ID,mode=control (libvirt's spelling of -qmp), resolved once every
// flag is read.
absl::Status ResolveMonitors(VmConfig& c) {
  struct Chardev {
    MonitorConfig monitor;
    bool used = false;
  };
  std::map<std::string, Chardev> chardevs;
  std::vector<std::string> order;
  for (const std::string& spec : c.chardevs) {
    absl::StatusOr<KeyValues> kv = ParseKeyValues(spec, "backend");
    if (!kv.ok()) return Bad("-chardev", kv.status().message());
    const std::string* backend = kv->Find("backend");
    if (backend == nullptr || *backend != "socket") {
      return Bad("-chardev", absl::StrCat("only socket chardevs (for -mon), not '",
                                          absl::CEscape(backend ? *backend : ""), "'"));
    }
    const std::string* id = kv->Find("id");
    if (id == nullptr || id->empty()) return Bad("-chardev socket", "id= is required");
    const std::string label = absl::StrCat("-chardev socket,id=", absl::CEscape(*id));
    bool server = false;
    std::string path;
    for (const auto& [key, v] : kv->pairs) {
      if (key == "backend" || key == "id") continue;
      if (key == "path") {
        path = v;
      } else if (key == "server" || key == "wait") {
        if (absl::Status s = CheckSocketKey(label, key, v, server); !s.ok()) return s;
      } else if (key == "host" || key == "port") {
        return Bad(label, "only unix sockets (path=PATH), not TCP");
      } else {
        return Bad(label, absl::StrCat("unknown key '", absl::CEscape(key), "' (known: id, path, server, wait)"));
      }
    }
    if (path.empty()) return Bad(label, "path= is required");
    if (!server) return Bad(label, "server=on is required (passage listens on the socket)");
    if (chardevs.count(*id)) return Bad(label, absl::StrCat("duplicate id '", absl::CEscape(*id), "'"));
    chardevs[*id] = {{path, label}, false};
    order.push_back(*id);
  }
  for (const std::string& spec : c.mons) {
    absl::StatusOr<KeyValues> kv = ParseKeyValues(spec, "chardev");
    if (!kv.ok()) return Bad("-mon", kv.status().message());
    const std::string* chardev = kv->Find("chardev");
    if (chardev == nullptr || chardev->empty()) return Bad("-mon", "chardev= is required");
    const std::string label = absl::StrCat("-mon chardev=", absl::CEscape(*chardev));
    const std::string* mode = kv->Find("mode");
    if (mode == nullptr || *mode != "control") {
      return Bad(label, "mode=control is required (passage has QMP monitors only)");
    }
    for (const auto& [key, v] : kv->pairs) {
      if (key != "chardev" && key != "mode" && key != "id") {
        return Bad(label, absl::StrCat("unknown key '", absl::CEscape(key), "' (known: chardev, mode, id)"));
      }
    }
    auto it = chardevs.find(*chardev);
    if (it == chardevs.end()) return Bad(label, absl::StrCat("no -chardev with id '", absl::CEscape(*chardev), "'"));
    if (it->second.used) return Bad(label, "that chardev already has a monitor");
    it->second.used = true;
    c.monitors.push_back(it->second.monitor);
  }
  for (const std::string& id : order) {
    if (!chardevs[id].used) {
      return Bad(chardevs[id].monitor.label, "not used by any -mon (passage's chardevs serve QMP monitors only)");
    }
  }
  for (size_t i = 0; i < c.monitors.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (c.monitors[i].path == c.monitors[j].path) {
        return Bad(c.monitors[i].label, absl::StrCat("socket path is already used by ", c.monitors[j].label));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status SetDmaMap(absl::string_view v, VmConfig& c) {
  if (v == "background") {
    c.dma_map = DmaMapMode::kBackground;
  } else if (v == "sync") {
    c.dma_map = DmaMapMode::kSync;
  } else {
    return Bad("-dma-map", absl::StrCat("'", absl::CEscape(v), "': use background or sync"));
  }
  return absl::OkStatus();
}

const std::map<std::string, Option, std::less<>>& Options() {
  static const auto* options = new std::map<std::string, Option, std::less<>>{
      {"m", {true, SetMemory, "SIZE      guest RAM, e.g. 512M, 2G (default 128M)"}},
      {"smp", {true, SetSmp, "N         number of vCPUs (default 1)"}},
      {"cpu", {true, SetCpu, "host[,-FEATURE...]  KVM's supported CPU features, minus some (default host)"}},
      {"kernel", {true, [](auto v, VmConfig& c) { return NonEmpty("-kernel", v, c.kernel); },
                  "FILE   bzImage, or a flat binary (see -entry)"}},
      {"initrd", {true, [](auto v, VmConfig& c) { return NonEmpty("-initrd", v, c.initrd); },
                  "FILE   initial ramdisk"}},
      {"append", {true, [](auto v, VmConfig& c) { c.append = std::string(v); return absl::OkStatus(); },
                  "CMDLINE kernel command line"}},
      {"serial", {true, SetSerial, "DEV    stdio (default), none, file:PATH"}},
      {"entry", {true, SetEntry, "MODE    flat binaries: real (default) or long (64-bit, paging on)"}},
      {"dump-dtb", {true, [](auto v, VmConfig& c) { return NonEmpty("-dump-dtb", v, c.dump_dtb); },
                    "FILE write the VM's platform description as a flattened device tree, then exit"}},
      {"device", {true, [](auto v, VmConfig& c) { c.devices.emplace_back(v); return absl::OkStatus(); },
                  "SPEC   add a device: DRIVER[,id=ID][,addr=SLOT[.FN]][,key=value...]"}},
      {"object", {true, [](auto v, VmConfig& c) { c.objects.emplace_back(v); return absl::OkStatus(); },
                  "SPEC   add an object: TYPE,id=ID[,key=value...]"}},
      {"mem-hugepages", {false, [](auto, VmConfig& c) { c.hugepages = true; return absl::OkStatus(); },
                         "    back guest RAM with 2 MiB hugetlb pages"}},
      {"qmp", {true, SetQmp, "unix:PATH,server=on[,wait=off]  a QMP monitor on a unix socket (mode 0600;\n"
                             "                       repeatable; a stale socket file is replaced)"}},
      {"chardev", {true, [](auto v, VmConfig& c) { c.chardevs.emplace_back(v); return absl::OkStatus(); },
                   "socket,id=ID,path=PATH,server=on[,wait=off]  a socket for -mon"}},
      {"mon", {true, [](auto v, VmConfig& c) { c.mons.emplace_back(v); return absl::OkStatus(); },
               "chardev=ID,mode=control  a QMP monitor on that -chardev (libvirt's -qmp)"}},
      {"accel", {true, SetAccel, "kvm[,fd=N] always KVM; fd=N: an already-open /dev/kvm"}},
      {"sandbox", {true, SetSandbox,
                   "on|off[,open=auto|allow|deny]  seccomp filter after set-up (default off); open=: may\n"
                   "                       passage open files after set-up (auto: only with a QMP monitor\n"
                   "                       and a path on the command line)"}},
      {"dma-map", {true, SetDmaMap,
                   "sync|background  when guest RAM is pinned for passthrough: during set-up (default),\n"
                   "                       or while the guest boots, bus mastering held until done"}},
      {"report-resources", {false, [](auto, VmConfig& c) { c.report_resources = true; return absl::OkStatus(); },
                            "  print open fds and locked/pinned memory at exit (stderr)"}},
      {"report-timing", {false, [](auto, VmConfig& c) { c.report_timing = true; return absl::OkStatus(); },
                         "    print boot timing and RSS on exit (stderr, one JSON line)"}},
      {"timing-marker", {true, [](auto v, VmConfig& c) { return NonEmpty("-timing-marker", v, c.timing_marker); },
                         "TEXT with --report-timing: the serial line containing TEXT marks init\n"
                         "                       (default: the first line after the kernel log that is not\n"
                         "                       a '[' timestamped kernel line)"}},
      // Accepted for QEMU compatibility; passage has no display and always
      // uses KVM, and a guest reset always ends passage.
      {"nographic", {false, [](auto, VmConfig&) { return absl::OkStatus(); }, "        accepted (no display anyway)"}},
      {"enable-kvm", {false, [](auto, VmConfig&) { return absl::OkStatus(); }, "       accepted (always KVM)"}},
      {"no-reboot", {false, [](auto, VmConfig&) { return absl::OkStatus(); }, "        accepted (reset ends passage)"}},
  };
  return *options;
}

}  // namespace

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<absl::string_view>& args) {
  CommandLine cl;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      cl.action = CommandLine::Action::kHelp;
      return cl;
    }
    if (arg == "--version" || arg == "-version") {
      cl.action = CommandLine::Action::kVersion;
      return cl;
    }
    absl::string_view name = arg;
    if (!absl::ConsumePrefix(&name, "--") && !absl::ConsumePrefix(&name, "-")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", absl::CEscape(arg), "' (options start with -)"));
    }
    std::optional<absl::string_view> inline_value;
    if (size_t eq = name.find('='); eq != name.npos && absl::StartsWith(arg, "--")) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto it = Options().find(name);
    if (it == Options().end() || name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(absl::CEscape(arg), ": unknown option (see --help)"));
    }
    const std::string flag = absl::StrCat("-", name);
    absl::string_view value;
    if (it->second.takes_value) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": missing value"));
      }
    } else if (inline_value) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": takes no value"));
    }
    if (absl::Status s = it->second.set(value, cl.config); !s.ok()) return s;
  }
  for (const std::string& spec : cl.config.devices) {
    absl::StatusOr<DeviceConfig> device = ParseDeviceConfig(spec);
    if (!device.ok()) return device.status();
    cl.config.device_configs.push_back(std::move(*device));
  }
  if (absl::Status s = ValidateDeviceConfigs(cl.config.device_configs); !s.ok()) return s;
  for (const std::string& spec : cl.config.objects) {
    absl::StatusOr<ObjectConfig> object = ParseObjectConfig(spec);
    if (!object.ok()) return object.status();
    cl.config.object_configs.push_back(std::move(*object));
  }
  if (absl::Status s = ValidateObjectConfigs(cl.config.object_configs); !s.ok()) return s;
  if (absl::Status s = PassedFds::CheckUnique(PassedFdUses(cl.config)); !s.ok()) return s;
  if (absl::Status s = ResolveMonitors(cl.config); !s.ok()) return s;
  if (!cl.config.timing_marker.empty() && !cl.config.report_timing) {
    return absl::InvalidArgumentError("-timing-marker: only with --report-timing");
  }
  if (!cl.config.initrd.empty() && cl.config.entry != EntryMode::kAuto) {
    return absl::InvalidArgumentError("-initrd: only for a Linux kernel (not with -entry)");
  }
  // Last, so that `passage -device foo` hears about foo first.
  if (cl.config.kernel.empty()) {
    return absl::InvalidArgumentError("-kernel: required (the image to boot)");
  }
  return cl;
}

std::vector<FdUse> PassedFdUses(const VmConfig& config) {
  std::vector<FdUse> uses;
  if (config.kvm_fd >= 0) uses.push_back({config.kvm_fd, "-accel kvm"});
  for (const ObjectConfig& o : config.object_configs) {
    if (o.fd >= 0) uses.push_back({o.fd, o.Label()});
  }
  for (const DeviceConfig& d : config.device_configs) {
    if (d.fd >= 0) uses.push_back({d.fd, d.Label()});
  }
  return uses;
}

std::string UsageText() {
  std::string out =
      "Usage: passage -kernel FILE [options]\n"
      "A small KVM virtual machine monitor for PCI passthrough.\n\nOptions:\n";
  for (const auto& [name, option] : Options()) {
    absl::StrAppend(&out, "  -", name, " ", option.help, "\n");
    if (name == "device") absl::StrAppend(&out, DeviceKindsHelp());
    if (name == "object") absl::StrAppend(&out, ObjectTypesHelp());
  }
  absl::StrAppend(&out,
                  "  -h, --help           this text\n"
                  "  --version            print the version\n"
                  "Options may be spelled -name or --name; --name=value also works.\n"
                  "Exit status: the guest's debug-exit status, 0 on guest power-off or reset,\n"
                  "1 on a runtime error, 2 on a usage error.\n");
  return out;
}

}  // namespace passage
