// 16550A-compatible UART (COM1 at 0x3f8, IRQ 4): what Linux's 8250 driver and
// tiny guests need. Transmit is instantaneous; receive has a small FIFO.
//
// The THRE (transmitter holding register empty) interrupt follows the 16550:
// it is raised when IER.ETBEI goes 0->1 with THR empty and whenever a THR
// write has drained (here: at once), and cleared by reading IIR while THRE is
// the reported source or by writing THR. IRQ 4 is edge-triggered, so every
// THR write drops the line and raises it again: each write is a fresh edge,
// as on QEMU's 16550 and real hardware. A guest whose interrupt handler stops
// early (Linux's 8250 gives up after 512 passes) is then interrupted again;
// with the line simply held high it would never be, and a console writer
// would block forever.
#ifndef PASSAGE_DEVICES_UART_8250_H_
#define PASSAGE_DEVICES_UART_8250_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
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

  // The registers and interrupt state as the guest would see them, read
  // without side effects (reading IIR would acknowledge THRE): for the
  // SIGUSR1 state dump.
  struct Snapshot {
    uint8_t ier, iir, lsr, lcr, mcr, fcr;
    bool thre_pending;  // THRE interrupt latched (shown in IIR when ETBEI is set)
    bool irq_line;      // level driven onto IRQ 4
    size_t rx_fifo;     // bytes waiting for the guest
    size_t tx_fifo;     // always 0: transmit is instantaneous
    uint64_t tx_bytes;  // transmitted since reset
    uint64_t irq_raises;  // 0->1 transitions of the IRQ line
  };
  // Nothing when the device stays busy for `timeout` (a vCPU inside it,
  // e.g. blocked writing to the output): the dump must not hang on it.
  std::optional<Snapshot> Inspect(absl::Duration timeout = absl::Seconds(1))
      ABSL_LOCKS_EXCLUDED(mu_);
  // One line: "ier=0x02 iir=0xc2 lsr=0x60 ... ".
  static std::string Describe(const Snapshot& s);

 private:
  uint8_t ReadRegister(uint64_t reg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRegister(uint64_t reg, uint8_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Transmit(uint8_t byte) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint8_t PendingInterrupt() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint8_t Lsr() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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
  uint64_t tx_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t irq_raises_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<uint8_t> rx_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_UART_8250_H_
