// 16550A-compatible UART (COM1 at 0x3f8, IRQ 4): what Linux's 8250 driver and
// tiny guests need. Transmit is instantaneous; receive has a small FIFO.
#ifndef PASSAGE_DEVICES_UART_8250_H_
#define PASSAGE_DEVICES_UART_8250_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "devices/io_bus.h"

namespace passage {

class Uart8250 : public IoHandler {
 public:
  static constexpr uint64_t kCom1Base = 0x3f8;
  static constexpr uint64_t kSize = 8;
  static constexpr uint32_t kCom1Irq = 4;

  // `out_fd` receives transmitted bytes (-1 discards them); `set_irq` drives
  // the interrupt line (may be empty).
  Uart8250(int out_fd, std::function<void(bool)> set_irq)
      : out_fd_(out_fd), set_irq_(std::move(set_irq)) {}

  void Read(uint64_t offset, std::span<uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);
  void Write(uint64_t offset, std::span<const uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);

  // Bytes typed at the console, queued for the guest to read.
  void PushInput(std::span<const uint8_t> bytes) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  uint8_t ReadRegister(uint64_t reg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRegister(uint64_t reg, uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Transmit(uint8_t byte) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint8_t PendingInterrupt() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateIrq() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int out_fd_;
  const std::function<void(bool)> set_irq_;
  absl::Mutex mu_;
  uint8_t ier_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t lcr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t mcr_ ABSL_GUARDED_BY(mu_) = 0x08;  // OUT2
  uint8_t scr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t fcr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t dll_ ABSL_GUARDED_BY(mu_) = 0x0c;  // 9600 baud
  uint8_t dlm_ ABSL_GUARDED_BY(mu_) = 0;
  bool thr_interrupt_ ABSL_GUARDED_BY(mu_) = false;
  bool irq_level_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<uint8_t> rx_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_UART_8250_H_
