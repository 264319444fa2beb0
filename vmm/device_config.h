// QEMU-style "-device DRIVER,key=value,..." parsing and the registry of
// device names passage knows. Parse errors are one line naming -device (and
// the device's id when it has one). The key=value splitter is shared with
// -object and, later, QMP device_add.
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
  // "-device DRIVER" or "-device DRIVER,id=ID": how messages name it.
  std::string Label() const;
};

// Parses and checks one -device argument against the registry.
absl::StatusOr<DeviceConfig> ParseDeviceConfig(absl::string_view spec);
// Checks a VM's devices together: unique ids, unique addresses, function 0
// present in every slot that uses other functions.
absl::Status ValidateDeviceConfigs(const std::vector<DeviceConfig>& devices);

// The device names passage knows, for --help and error messages.
std::vector<std::string> KnownDeviceNames();

}  // namespace passage

#endif  // PASSAGE_VMM_DEVICE_CONFIG_H_
