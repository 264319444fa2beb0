#include "devices/acpi/acpi_pm_device.h"

#include <cstring>

namespace passage {

void AcpiPmDevice::Read(uint64_t, std::span<uint8_t> data) {
  // Nothing to report: the sleep status never shows a wake, the control and
  // reset registers read as zero.
  std::memset(data.data(), 0, data.size());
}

void AcpiPmDevice::Write(uint64_t offset, std::span<const uint8_t> data) {
  // A wider access covers several registers; each byte goes to its own.
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t reg = offset + i;
    const uint8_t value = data[i];
    if (reg == kSleepControl) {
      const uint8_t type = (value >> 2) & 0x7;
      if ((value & kSleepEnable) && type == kS5SleepType) power_off_();
    } else if (reg == kReset && value == kResetValue) {
      reset_();
    }
  }
}

}  // namespace passage
