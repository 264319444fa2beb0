// The one table of -device kinds passage knows: for each its name, its keys
// (each with a line for --help), the check that runs when the command line
// is parsed, and the function that builds it in a VM. The command line (and
// later the control socket's device_add) goes through this table only.
#ifndef PASSAGE_VMM_DEVICE_REGISTRY_H_
#define PASSAGE_VMM_DEVICE_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "vmm/device_config.h"

namespace passage {

class GuestMemory;
class InterruptController;
class Passthrough;
class PassedFds;
class PciDevice;

// What a create function may use. `passthrough` is null in a VM without
// -object or vfio-pci; `fds` is null when nothing was passed by fd.
struct DeviceEnv {
  GuestMemory* memory = nullptr;
  InterruptController* irq = nullptr;
  Passthrough* passthrough = nullptr;
  PassedFds* fds = nullptr;
};

struct DeviceKind {
  const char* name;
  const char* help;  // one line
  std::vector<KeySpec> keys;  // besides id= and addr=, which every kind has
  // Checks the kind's keys together (the parser has checked each key is
  // known, and fd= is a number). Unprefixed message; the caller names -device.
  absl::Status (*check)(const DeviceConfig& config);
  // Builds the device; errors are prefixed with config.Label().
  absl::StatusOr<std::shared_ptr<PciDevice>> (*create)(const DeviceConfig& config, const DeviceEnv& env);
};

const std::vector<DeviceKind>& DeviceKinds();
// nullptr when passage has no such device.
const DeviceKind* FindDeviceKind(absl::string_view name);
std::vector<std::string> KnownDeviceNames();

// The --help text for -device: every kind with its keys.
std::string DeviceKindsHelp();

// Builds a parsed -device through its kind's create function.
absl::StatusOr<std::shared_ptr<PciDevice>> CreateDevice(const DeviceConfig& config, const DeviceEnv& env);

}  // namespace passage

#endif  // PASSAGE_VMM_DEVICE_REGISTRY_H_
