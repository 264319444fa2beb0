// The hardware-reduced ACPI power-management registers the FADT points at
// (ACPI 6.0, 4.8.3.7 and 4.8.3.6), as one small port-I/O block:
//   +0  SLEEP_CONTROL_REG  W: SLP_EN (bit 5) with SLP_TYP (bits 4:2) = 5 (S5,
//                          the value \_S5 gives) powers the VM off
//   +1  SLEEP_STATUS_REG   R: 0 (never woken); W: write-1-to-clear, ignored
//   +2  RESET_REG          W: kResetValue resets (ends) the VM
// Other values and other sleep states are ignored: the DSDT offers only S5.
#ifndef PASSAGE_DEVICES_ACPI_ACPI_PM_DEVICE_H_
#define PASSAGE_DEVICES_ACPI_ACPI_PM_DEVICE_H_

#include <cstdint>
#include <functional>

#include "devices/io_bus.h"

namespace passage {

class AcpiPmDevice : public IoHandler {
 public:
  static constexpr uint64_t kPort = 0x600;
  static constexpr uint64_t kSize = 4;
  static constexpr uint64_t kSleepControl = 0, kSleepStatus = 1, kReset = 2;
  static constexpr uint8_t kResetValue = 0x01;
  static constexpr uint8_t kS5SleepType = 5;
  static constexpr uint8_t kSleepEnable = 0x20;

  AcpiPmDevice(std::function<void()> power_off, std::function<void()> reset)
      : power_off_(std::move(power_off)), reset_(std::move(reset)) {}

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  const std::function<void()> power_off_;
  const std::function<void()> reset_;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_ACPI_ACPI_PM_DEVICE_H_
