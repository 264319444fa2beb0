#include "devices/i8042.h"

#include <cstring>

namespace passage {

void I8042::Read(uint64_t offset, std::span<uint8_t> data) {
  // Data and status read 0; the ports in between (0x61-0x63) are not ours
  // (KVM's PIT handles 0x61 in the kernel) and read as open bus.
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t reg = offset + i;
    data[i] = (reg == kData || reg == kCommand) ? 0x00 : 0xff;
  }
}

void I8042::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == kCommand && data.size() == 1 && data[0] == kCmdPulseReset) reset_();
}

}  // namespace passage
