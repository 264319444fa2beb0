// The command line as a user (or a script built from untrusted names) types
// it: the input is argv without argv[0], one argument per NUL-separated
// piece, through ParseCommandLine (what main() calls; nothing is opened or
// run). Any argv gives a CommandLine or one line of error, never a crash;
// an accepted one keeps the promises the rest of passage relies on.
#include <cstdint>
#include <string>
#include <vector>

#include "memory/memory_map.h"
#include "tests/fuzz/fuzz_check.h"
#include "vmm/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<absl::string_view> args;
  for (size_t at = 0; at <= text.size();) {
    size_t end = text.find('\0', at);
    if (end == std::string::npos) end = text.size();
    args.push_back(absl::string_view(text).substr(at, end - at));
    at = end + 1;
  }
  if (!text.empty() && text.back() == '\0') args.pop_back();  // a trailing NUL ends the last one
  absl::StatusOr<passage::CommandLine> cl = passage::ParseCommandLine(args);
  if (!cl.ok()) {
    FuzzCheckOneLine(cl.status().message());
    return 0;
  }
  if (cl->action != passage::CommandLine::Action::kRun) return 0;
  const passage::VmConfig& c = cl->config;
  FUZZ_FAIL_IF(c.kernel.empty());
  FUZZ_FAIL_IF(!passage::ValidateRamSize(c.ram_size, "-m").ok());
  FUZZ_FAIL_IF(c.cpus < 1 || c.cpus > passage::kMaxCpus);
  FUZZ_FAIL_IF(c.device_configs.size() != c.devices.size() ||
               c.object_configs.size() != c.objects.size());
  FUZZ_FAIL_IF(!passage::PassedFds::CheckUnique(passage::PassedFdUses(c)).ok());
  for (const passage::MonitorConfig& m : c.monitors) {
    FUZZ_FAIL_IF(m.path.empty());
  }
  return 0;
}
