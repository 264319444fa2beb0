// The guest-visible half of hotplug, as the VM's hotplug code uses it.
// A stand-in until devices/acpi/acpi_hotplug.h (AcpiHotplug implements this
// interface there) is on main; the two declarations are the same, and this
// file goes when that header arrives.
#ifndef PASSAGE_VMM_HOTPLUG_SIGNALLER_H_
#define PASSAGE_VMM_HOTPLUG_SIGNALLER_H_

#include <cstdint>

namespace passage {

class HotplugSignaller {  // slot-level hotplug events to the guest, bus 0, slot 0..31
 public:
  virtual ~HotplugSignaller() = default;
  virtual void DeviceAdded(uint8_t slot) = 0;   // guest rescans the slot, binds a driver
  virtual void EjectRequest(uint8_t slot) = 0;  // guest unbinds the driver, then calls _EJ0
};

}  // namespace passage

#endif  // PASSAGE_VMM_HOTPLUG_SIGNALLER_H_
