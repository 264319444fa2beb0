// A minimal MC146818-style CMOS/RTC at ports 0x70 (index; bit 7 is the NMI
// mask and is ignored) and 0x71 (data): the time and date read from the host
// clock (UTC) in the format register B selects (BCD or binary, 24-hour
// only), an update never in progress, 114 bytes of NVRAM. No alarms, no
// periodic or update interrupts, setting the clock is ignored. Linux reads it
// for the wall clock when kvmclock is absent and its rtc-cmos driver binds it.
#ifndef PASSAGE_DEVICES_CMOS_RTC_H_
#define PASSAGE_DEVICES_CMOS_RTC_H_

#include <array>
#include <cstdint>
#include <ctime>
#include <functional>

#include "absl/synchronization/mutex.h"
#include "devices/io_bus.h"

namespace passage {

class CmosRtc : public IoHandler {
 public:
  static constexpr uint64_t kBase = 0x70;
  static constexpr uint64_t kSize = 2;
  static constexpr uint8_t kIrq = 8;  // ISA IRQ (never raised: no alarms or periodic interrupts)
  // Register numbers.
  static constexpr uint8_t kSeconds = 0x00, kMinutes = 0x02, kHours = 0x04, kWeekday = 0x06,
                           kDay = 0x07, kMonth = 0x08, kYear = 0x09, kRegA = 0x0a, kRegB = 0x0b,
                           kRegC = 0x0c, kRegD = 0x0d, kCentury = 0x32;
  static constexpr uint8_t kRegBBinary = 0x04, kRegB24Hour = 0x02;

  // `now` gives the time to report (default: the host's clock).
  explicit CmosRtc(std::function<std::time_t()> now = nullptr);

  void Read(uint64_t offset, std::span<uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);
  void Write(uint64_t offset, std::span<const uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  uint8_t ReadRegister(uint8_t reg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint8_t Encode(int value) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<std::time_t()> now_;
  absl::Mutex mu_;
  uint8_t index_ ABSL_GUARDED_BY(mu_) = 0;
  std::array<uint8_t, 128> cmos_ ABSL_GUARDED_BY(mu_) = {};
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_CMOS_RTC_H_
