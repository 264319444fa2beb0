#include "devices/cmos_rtc.h"

namespace passage {

CmosRtc::CmosRtc(std::function<std::time_t()> now)
    : now_(now ? std::move(now) : [] { return std::time(nullptr); }) {
  absl::MutexLock lock(&mu_);
  cmos_[kRegA] = 0x26;         // 32.768 kHz time base, 1024 Hz rate; UIP clear
  cmos_[kRegB] = kRegB24Hour;  // BCD, 24-hour, no interrupts
  cmos_[kRegD] = 0x80;         // valid RAM and time
}

uint8_t CmosRtc::Encode(int value) const {
  if (cmos_[kRegB] & kRegBBinary) return static_cast<uint8_t>(value);
  return static_cast<uint8_t>(((value / 10) << 4) | (value % 10));
}

uint8_t CmosRtc::ReadRegister(uint8_t reg) {
  if (reg <= kYear || reg == kCentury) {
    const std::time_t t = now_();
    std::tm tm{};
    gmtime_r(&t, &tm);
    switch (reg) {
      case kSeconds: return Encode(tm.tm_sec % 60);
      case kMinutes: return Encode(tm.tm_min);
      case kHours: return Encode(tm.tm_hour);
      case kWeekday: return Encode(tm.tm_wday + 1);
      case kDay: return Encode(tm.tm_mday);
      case kMonth: return Encode(tm.tm_mon + 1);
      case kYear: return Encode((tm.tm_year + 1900) % 100);
      case kCentury: return Encode((tm.tm_year + 1900) / 100);
      default: return 0;  // alarm registers 1, 3, 5
    }
  }
  if (reg == kRegC) return 0;  // no interrupt flags ever set
  return cmos_[reg];
}

void CmosRtc::Read(uint64_t offset, std::span<uint8_t> data) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t port = offset + i;
    data[i] = port == 1 ? ReadRegister(index_) : 0xff;  // the index port is write-only
  }
}

void CmosRtc::Write(uint64_t offset, std::span<const uint8_t> data) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t port = offset + i;
    if (port == 0) {
      index_ = data[i] & 0x7f;
    } else if (port == 1) {
      if (index_ <= kYear || index_ == kCentury || index_ == kRegC || index_ == kRegD) {
        continue;  // the clock is not settable; C and D are read-only
      }
      if (index_ == kRegA) {
        cmos_[kRegA] = (data[i] & 0x7f);  // UIP is read-only (and always clear)
      } else if (index_ == kRegB) {
        cmos_[kRegB] = (data[i] & (kRegBBinary | 0x80)) | kRegB24Hour;  // 24-hour only
      } else {
        cmos_[index_] = data[i];
      }
    }
  }
}

}  // namespace passage
