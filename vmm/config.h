// The command line, parsed and validated into a VmConfig. QEMU's spelling
// where QEMU has the option; every error names the flag it is about.
#ifndef PASSAGE_VMM_CONFIG_H_
#define PASSAGE_VMM_CONFIG_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "vmm/device_config.h"
#include "vmm/object_config.h"
#include "vmm/passed_fds.h"

namespace passage {

struct SerialConfig {
  enum class Kind { kStdio, kNone, kFile };
  Kind kind = Kind::kStdio;
  std::string path;  // for kFile
};

// A QMP monitor: a unix socket passage listens on, from -qmp or from
// -chardev socket + -mon mode=control.
struct MonitorConfig {
  std::string path;
  std::string label;  // the flag, for messages: "-qmp unix:PATH", "-chardev socket,id=ID"
};

// How a -kernel image is entered. kAuto: a bzImage gets the Linux boot
// protocol, anything else is a flat binary entered in real mode.
enum class EntryMode { kAuto, kReal, kLong };

// -sandbox on,open=...: whether the seccomp filter allows open after set-up
// (vmm/sandbox.h; kAuto decides from the command line: SandboxAllowsOpen).
enum class SandboxOpen { kAuto, kAllow, kDeny };

// -dma-map: when guest RAM is mapped (pinned) into the DMA spaces of
// passed-through devices (vmm/passthrough.h). kBackground: on one thread
// while the guest boots, each device's bus-master enable held until its
// space is mapped; kSync: during set-up, before the first guest instruction.
enum class DmaMapMode { kBackground, kSync };

struct VmConfig {
  uint64_t ram_size = 128ull << 20;  // QEMU's default
  int cpus = 1;
  std::vector<std::string> cpu_disabled;  // -cpu host,-FEATURE,...
  std::string kernel;
  std::string initrd;
  std::string append;
  SerialConfig serial;
  EntryMode entry = EntryMode::kAuto;
  bool hugepages = false;
  std::string dump_dtb;
  bool report_timing = false;
  std::string timing_marker;  // --report-timing: serial text that marks init (see boot_report.h)
  std::vector<std::string> devices;  // raw -device arguments
  std::vector<DeviceConfig> device_configs;  // the same, parsed and checked
  std::vector<std::string> objects;  // raw -object arguments
  std::vector<ObjectConfig> object_configs;  // the same, parsed and checked
  int kvm_fd = -1;  // -accel kvm,fd=N: an open /dev/kvm (nothing opened then)
  bool report_resources = false;  // fds and locked/pinned memory at exit
  std::vector<MonitorConfig> monitors;  // -qmp, -chardev + -mon
  std::vector<std::string> chardevs;  // raw -chardev arguments (resolved into monitors)
  std::vector<std::string> mons;  // raw -mon arguments
  bool sandbox = false;  // -sandbox on: the seccomp filter after set-up (vmm/sandbox.h)
  SandboxOpen sandbox_open = SandboxOpen::kAuto;
  // sync by default, as QEMU: in the rig's one side-by-side run background
  // mapping sped the container up (17.0 -> 14.0 s to L2's init) but slowed
  // iommufd down (14.4 -> 22.7 s; README "Boot to init: where it goes").
  DmaMapMode dma_map = DmaMapMode::kSync;
};

struct CommandLine {
  enum class Action { kRun, kHelp, kVersion };
  Action action = Action::kRun;
  VmConfig config;
};

inline constexpr int kMaxCpus = 255;

// Parses argv (without argv[0]). Errors are one line, naming the flag.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<absl::string_view>& args);

std::string UsageText();

// Every fd= of a parsed command line, with the place that named it
// (-accel, then -object, then -device); ParseCommandLine has checked that no
// number is named twice.
std::vector<FdUse> PassedFdUses(const VmConfig& config);

}  // namespace passage

#endif  // PASSAGE_VMM_CONFIG_H_
