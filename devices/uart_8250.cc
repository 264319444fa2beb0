#include "devices/uart_8250.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace passage {
namespace {

// Register offsets and bits (see the 16550A data sheet; Linux serial_reg.h).
constexpr uint64_t kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                   kScr = 7;
constexpr uint8_t kIerRdi = 0x01, kIerThri = 0x02;
constexpr uint8_t kFcrClearTx = 0x04;
constexpr uint8_t kIirNone = 0x01, kIirThri = 0x02, kIirRdi = 0x04, kIirFifo = 0xc0;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kLsrDataReady = 0x01, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr size_t kRxFifoSize = 4096;

}  // namespace

void Uart8250::Read(uint64_t offset, std::span<uint8_t> data) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < data.size(); ++i) data[i] = ReadRegister(offset + i);
}

void Uart8250::Write(uint64_t offset, std::span<const uint8_t> data) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < data.size(); ++i) WriteRegister(offset + i, data[i]);
}

void Uart8250::PushInput(std::span<const uint8_t> bytes) {
  absl::MutexLock lock(&mu_);
  for (uint8_t b : bytes) {
    if (rx_.size() < kRxFifoSize) rx_.push_back(b);
  }
  UpdateIrq();
}

uint8_t Uart8250::ReadRegister(uint64_t reg) {
  if (reg >= kSize) return 0xff;
  if ((lcr_ & kLcrDlab) && (reg == kRbrThr || reg == kIer)) return reg == kRbrThr ? dll_ : dlm_;
  switch (reg) {
    case kRbrThr: {
      uint8_t v = 0;
      if (!rx_.empty()) {
        v = rx_.front();
        rx_.pop_front();
      }
      UpdateIrq();
      return v;
    }
    case kIer:
      return ier_;
    case kIirFcr: {
      uint8_t iir = PendingInterrupt();
      if (iir == kIirThri) thr_interrupt_ = false;  // reading IIR acknowledges THRE
      UpdateIrq();
      return iir | ((fcr_ & 1) ? kIirFifo : 0);
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return Lsr();
    case kMsr:
      if (mcr_ & kMcrLoop) {
        // Loopback: CTS<-RTS, DSR<-DTR, RI<-OUT1, DCD<-OUT2.
        return static_cast<uint8_t>(((mcr_ & 0x02) << 3) | ((mcr_ & 0x01) << 5) |
                                    ((mcr_ & 0x04) << 4) | ((mcr_ & 0x08) << 4));
      }
      return 0xb0;  // DCD, DSR, CTS: a cable is connected
    case kScr:
      return scr_;
  }
  return 0xff;
}

void Uart8250::WriteRegister(uint64_t reg, uint8_t value) {
  if (reg >= kSize) return;
  if ((lcr_ & kLcrDlab) && (reg == kRbrThr || reg == kIer)) {
    (reg == kRbrThr ? dll_ : dlm_) = value;
    return;
  }
  switch (reg) {
    case kRbrThr:
      // Writing THR clears THRE; the byte leaves at once and THR is empty
      // again, which raises it anew: the line drops and rises (a new edge).
      thr_interrupt_ = false;
      UpdateIrq();
      if (mcr_ & kMcrLoop) {
        if (rx_.size() < kRxFifoSize) rx_.push_back(value);
      } else {
        Transmit(value);
      }
      thr_interrupt_ = true;
      break;
    case kIer:
      // Enabling THRI with an empty THR raises the interrupt at once.
      if ((value & kIerThri) && !(ier_ & kIerThri)) thr_interrupt_ = true;
      ier_ = value & 0x0f;
      break;
    case kIirFcr:
      fcr_ = value & 0xc9;
      if (value & 0x02) rx_.clear();  // clear receive FIFO
      if (value & kFcrClearTx) thr_interrupt_ = true;  // an emptied TX FIFO is THR empty
      break;
    case kLcr:
      lcr_ = value;
      break;
    case kMcr:
      mcr_ = value & 0x1f;
      break;
    case kScr:
      scr_ = value;
      break;
    default:
      break;  // LSR and MSR are read-only
  }
  UpdateIrq();
}

void Uart8250::Transmit(uint8_t byte) {
  ++tx_bytes_;
  if (out_fd_ < 0) return;
  while (::write(out_fd_, &byte, 1) < 0 && errno == EINTR) {
  }
}

uint8_t Uart8250::PendingInterrupt() const {
  if ((ier_ & kIerRdi) && !rx_.empty()) return kIirRdi;
  if ((ier_ & kIerThri) && thr_interrupt_) return kIirThri;
  return kIirNone;
}

uint8_t Uart8250::Lsr() const {
  return kLsrThre | kLsrTemt | (rx_.empty() ? 0 : kLsrDataReady);
}

std::optional<Uart8250::Snapshot> Uart8250::Inspect(absl::Duration timeout) {
  // TryLock: a lock held for good (a vCPU blocked in write()) must not hang
  // the caller; LockWhenWithTimeout would still wait for the lock.
  const absl::Time deadline = absl::Now() + timeout;
  while (!mu_.TryLock()) {
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
  const Snapshot snapshot{ier_,
          static_cast<uint8_t>(PendingInterrupt() | ((fcr_ & 1) ? kIirFifo : 0)),
          Lsr(),
          lcr_,
          mcr_,
          fcr_,
          thr_interrupt_,
          irq_level_,
          rx_.size(),
          0,
          tx_bytes_,
          irq_raises_};
  mu_.Unlock();
  return snapshot;
}

std::string Uart8250::Describe(const Snapshot& s) {
  return absl::StrFormat(
      "ier=0x%02x iir=0x%02x lsr=0x%02x lcr=0x%02x mcr=0x%02x fcr=0x%02x thre_pending=%d "
      "irq4=%d rx_fifo=%u tx_fifo=%u tx_bytes=%u irq_raises=%u",
      s.ier, s.iir, s.lsr, s.lcr, s.mcr, s.fcr, s.thre_pending ? 1 : 0, s.irq_line ? 1 : 0,
      s.rx_fifo, s.tx_fifo, s.tx_bytes, s.irq_raises);
}

void Uart8250::UpdateIrq() {
  // OUT2 gates the interrupt onto the ISA bus on PC-compatible boards.
  const bool level = PendingInterrupt() != kIirNone && (mcr_ & 0x08);
  if (level != irq_level_) {
    irq_level_ = level;
    if (level) ++irq_raises_;
    if (set_irq_) set_irq_(level);
  }
}

}  // namespace passage
