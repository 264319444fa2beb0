// passage's debug device: lets a test guest end the VM with a status and
// exercise MMIO exits. Port 0x501 (byte write = exit status, the port QEMU's
// isa-debug-exit uses) and one MMIO page at kDebugMmioStart:
//   +0x00  u32 W  exit with status (low 8 bits)
//   +0x08  u64 RW scratch register
//   +0x10  u64 R  number of MMIO writes so far
#ifndef PASSAGE_DEVICES_DEBUG_DEVICE_H_
#define PASSAGE_DEVICES_DEBUG_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>

#include "devices/io_bus.h"

namespace passage {

class DebugDevice {
 public:
  static constexpr uint64_t kPort = 0x501;
  static constexpr uint64_t kMmioSize = 0x1000;

  explicit DebugDevice(std::function<void(int)> on_exit) : on_exit_(std::move(on_exit)) {}

  // Handlers to register on the port bus and the MMIO bus.
  std::shared_ptr<IoHandler> port_handler();
  std::shared_ptr<IoHandler> mmio_handler();

 private:
  class Port;
  class Mmio;
  friend class Port;
  friend class Mmio;

  const std::function<void(int)> on_exit_;
  std::atomic<uint64_t> scratch_{0};
  std::atomic<uint64_t> writes_{0};
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_DEBUG_DEVICE_H_
