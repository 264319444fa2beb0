// QEMU-style "-device DRIVER,key=value,..." parsing, checked against the
// device registry (vmm/device_registry.h). Parse errors are one line naming
// -device (and the device's id when it has one). The key=value splitter is
// shared with -object, -accel and, later, QMP device_add.
#ifndef PASSAGE_VMM_DEVICE_CONFIG_H_
#define PASSAGE_VMM_DEVICE_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace passage {

// "head,key=value,key2=value2": `head` is the value of `implied_key` when
// the first element has no '='; ",," is a literal comma inside an element.
// Keys are unique. Errors are unprefixed; callers name the flag.
struct KeyValues {
  std::vector<std::pair<std::string, std::string>> pairs;  // in order, implied key first
  const std::string* Find(absl::string_view key) const;
};
absl::StatusOr<KeyValues> ParseKeyValues(absl::string_view text, absl::string_view implied_key);

// A key that a -device kind or -object type takes, for its checks and --help.
struct KeySpec {
  const char* name;   // "host"
  const char* value;  // what it takes, for --help: "BDF"
  const char* help;   // one line
};
// Whether `key` is one of `keys`.
bool HasKey(const std::vector<KeySpec>& keys, absl::string_view key);
// "unknown key 'K' (known: common..., keys...)", K escaped.
std::string UnknownKeyMessage(absl::string_view key, std::vector<std::string> common,
                              const std::vector<KeySpec>& keys);
// The --help lines of one kind: its name and help, then a line per key.
std::string KindHelp(absl::string_view name, absl::string_view help, const std::vector<KeySpec>& keys);

// An id= of a -device or -object (QEMU's rule): a letter, then letters,
// digits, '-', '_' and '.'. Messages quote ids, so they stay one line.
bool ValidId(absl::string_view id);
inline constexpr char kIdRule[] = "must start with a letter and use only letters, digits, '-', '_', '.'";

// A PCI slot/function on bus 0 as QEMU spells it: "SLOT[.FN]", hex.
struct PciSlot {
  uint8_t slot = 0;
  uint8_t function = 0;
  bool operator==(const PciSlot&) const = default;
};
absl::StatusOr<PciSlot> ParsePciSlot(absl::string_view text);

struct DeviceConfig {
  std::string driver;          // e.g. "virtio-rng-pci"
  std::string id;              // empty if not given
  std::optional<PciSlot> addr; // empty: the first free slot
  std::map<std::string, std::string, std::less<>> props;  // driver-specific keys
  int fd = -1;                 // fd=N (also in props), parsed by ParseFdNumber
  // "-device DRIVER" or "-device DRIVER,id=ID": how messages name it.
  std::string Label() const;
};

// Parses and checks one -device argument against the registry.
absl::StatusOr<DeviceConfig> ParseDeviceConfig(absl::string_view spec);
// Checks a VM's devices together: unique ids, unique addresses, function 0
// present in every slot that uses other functions.
absl::Status ValidateDeviceConfigs(const std::vector<DeviceConfig>& devices);

}  // namespace passage

#endif  // PASSAGE_VMM_DEVICE_CONFIG_H_
