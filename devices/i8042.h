// Just enough of the PC keyboard controller (i8042) for a guest to reset the
// machine the traditional way: writing command 0xFE (pulse the reset line) to
// port 0x64. There is no keyboard: the status register reads 0 (both buffers
// empty, so a guest waiting for the input buffer does not spin), the data
// port reads 0, other commands are ignored. The FADT does not announce an
// 8042, so Linux does not probe it; its reboot path still uses 0x64.
// Registered on [kBase, kBase + kSize): data at +0, command/status at +4.
#ifndef PASSAGE_DEVICES_I8042_H_
#define PASSAGE_DEVICES_I8042_H_

#include <cstdint>
#include <functional>

#include "devices/io_bus.h"

namespace passage {

class I8042 : public IoHandler {
 public:
  static constexpr uint64_t kBase = 0x60;
  static constexpr uint64_t kSize = 5;
  static constexpr uint64_t kData = 0, kCommand = 4;
  static constexpr uint8_t kCmdPulseReset = 0xfe;

  explicit I8042(std::function<void()> reset) : reset_(std::move(reset)) {}

  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  const std::function<void()> reset_;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_I8042_H_
