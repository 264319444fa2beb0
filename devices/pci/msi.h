// The MSI capability of an emulated function: 64-bit addresses, per-vector
// masking, 1-32 vectors (multiple message). Vector v of n enabled vectors
// sends the programmed data with its low log2(n) bits replaced by v. A masked
// vector's event sets its pending bit (visible in config space); unmasking
// sends it. Delivery: one MsiIrqfd per vector, created on first use.
#ifndef PASSAGE_DEVICES_PCI_MSI_H_
#define PASSAGE_DEVICES_PCI_MSI_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/irq.h"
#include "devices/pci/pci_device.h"

namespace passage {

class MsiCapability : public PciCapabilityHandler {
 public:
  static constexpr uint32_t kCapabilitySize = 0x18;

  // `log2_vectors`: 0..5 (1..32 vectors).
  MsiCapability(InterruptController& irq, std::string owner, uint8_t log2_vectors);

  absl::StatusOr<uint32_t> AddTo(PciConfigSpace& config);
  void BeforeRead(PciConfigSpace& config) override ABSL_LOCKS_EXCLUDED(mu_);
  void AfterWrite(PciConfigSpace& config, uint32_t offset, uint32_t size) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // Sends `vector` or marks it pending; false when MSI is off or the vector
  // is not among the enabled ones.
  bool Notify(uint16_t vector) ABSL_LOCKS_EXCLUDED(mu_);
  bool enabled() const ABSL_LOCKS_EXCLUDED(mu_);
  uint16_t enabled_vectors() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Send(uint16_t vector) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The vector's irqfd, routed to its current message; null on failure.
  MsiIrqfd* Route(uint16_t vector) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  InterruptController& irq_;
  const std::string owner_;
  const uint8_t log2_vectors_;
  uint32_t cap_offset_ = 0;
  mutable absl::Mutex mu_;
  bool enabled_ ABSL_GUARDED_BY(mu_) = false;
  uint16_t count_ ABSL_GUARDED_BY(mu_) = 1;  // enabled vectors (power of two)
  MsiMessage message_ ABSL_GUARDED_BY(mu_);
  uint32_t mask_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<MsiIrqfd>> routes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_MSI_H_
