// The MSI capability of an emulated function: 64-bit addresses, per-vector
// masking, 1-32 vectors (multiple message). Vector v of n enabled vectors
// sends the programmed data with its low log2(n) bits replaced by v. A masked
// vector's event sets its pending bit (visible in config space); unmasking
// sends it once. Delivery: one irqfd per vector (MsiVectorDelivery, shared
// with MSI-X), created when the vector first becomes deliverable; with a
// MsiVectorSource (VFIO) an unmasked vector's events bypass passage. Wiring
// failures stop the VM (InterruptController::Fatal).
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

  absl::StatusOr<uint32_t> AddTo(PciConfigSpace& config) override;
  uint32_t size() const override { return kCapabilitySize; }
  void BeforeRead(PciConfigSpace& config) override ABSL_LOCKS_EXCLUDED(mu_);
  void AfterWrite(PciConfigSpace& config, uint32_t offset, uint32_t size) override
      ABSL_LOCKS_EXCLUDED(mu_);
  // As MsixCapability::SetSource.
  void SetSource(MsiVectorSource* source) ABSL_LOCKS_EXCLUDED(mu_);

  // Sends `vector` or marks it pending; false when MSI is off or the vector
  // is not among the enabled ones.
  bool Notify(uint16_t vector) ABSL_LOCKS_EXCLUDED(mu_);
  bool enabled() const ABSL_LOCKS_EXCLUDED(mu_);
  uint16_t enabled_vectors() const ABSL_LOCKS_EXCLUDED(mu_);
  // As MsixCapability::direct.
  bool direct(uint16_t vector) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Vector `vector`'s message: the data's low log2(count) bits replaced.
  MsiMessage Message(uint16_t vector) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Fail(uint16_t vector, const absl::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

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
  std::vector<MsiVectorDelivery> vectors_ ABSL_GUARDED_BY(mu_);
  MsiVectorSource* source_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_MSI_H_
