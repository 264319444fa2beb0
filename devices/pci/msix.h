// The MSI-X capability of an emulated function: the capability in config
// space (enable and function-mask bits writable), the vector table and the
// pending-bit array in a BAR, and delivery through one irqfd per vector
// (MsiVectorDelivery). Semantics (PCI Local Bus 3.0 / PCIe 6.1, 6.1.4.5):
// every vector starts masked; an event on a masked vector (vector or
// function mask) sets its pending bit; unmasking a pending vector sends it
// once and clears the bit. While MSI-X is disabled the device uses INTx
// instead (Notify returns false). With a MsiVectorSource (VFIO), a
// deliverable vector's events go from the source straight into its irqfd;
// only masked or disabled vectors' events come through Notify.
// Wiring failures (no GSI, route or irqfd) stop the VM through
// InterruptController::Fatal: the guest must not lose interrupts silently.
#ifndef PASSAGE_DEVICES_PCI_MSIX_H_
#define PASSAGE_DEVICES_PCI_MSIX_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/irq.h"
#include "devices/pci/pci_device.h"

namespace passage {

class MsixCapability : public PciCapabilityHandler {
 public:
  static constexpr uint32_t kCapabilitySize = 12;
  static constexpr uint16_t kMaxVectors = 2048;

  struct Layout {
    uint16_t vectors = 1;  // 1..2048
    uint8_t table_bar = 0;
    uint32_t table_offset = 0;  // 8-byte aligned
    uint8_t pba_bar = 0;
    uint32_t pba_offset = 0;  // 8-byte aligned
  };

  MsixCapability(InterruptController& irq, std::string owner, const Layout& layout);

  // Adds the capability to `config`; returns its offset. The device then
  // registers this object as the handler for [offset, offset+kCapabilitySize).
  absl::StatusOr<uint32_t> AddTo(PciConfigSpace& config) override;
  uint32_t size() const override { return kCapabilitySize; }
  void AfterWrite(PciConfigSpace& config, uint32_t offset, uint32_t size) override
      ABSL_LOCKS_EXCLUDED(mu_);
  // Where the vectors' events come from, if that can signal an irqfd itself
  // (null: the device calls Notify). Set before the guest runs; cleared by
  // the source's owner before it goes away.
  void SetSource(MsiVectorSource* source) ABSL_LOCKS_EXCLUDED(mu_);

  // BAR side: offsets relative to the table / PBA. Only naturally aligned
  // dword and qword accesses inside them do anything; other reads see ones.
  // Malformed accesses and any PBA write (it is read-only) are guest errors
  // (devices/guest_error.h).
  void TableRead(uint64_t offset, std::span<uint8_t> data) ABSL_LOCKS_EXCLUDED(mu_);
  void TableWrite(uint64_t offset, std::span<const uint8_t> data) ABSL_LOCKS_EXCLUDED(mu_);
  void PbaRead(uint64_t offset, std::span<uint8_t> data) ABSL_LOCKS_EXCLUDED(mu_);
  void PbaWrite(uint64_t offset, std::span<const uint8_t> data);
  uint64_t table_size() const { return uint64_t{layout_.vectors} * 16; }
  uint64_t pba_size() const { return (layout_.vectors + 63u) / 64 * 8; }
  const Layout& layout() const { return layout_; }

  // Device side (any thread). Sends `vector`, or marks it pending when it
  // is masked. False when MSI-X is disabled or `vector` does not exist.
  bool Notify(uint16_t vector) ABSL_LOCKS_EXCLUDED(mu_);
  bool enabled() const ABSL_LOCKS_EXCLUDED(mu_);
  bool pending(uint16_t vector) const ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `vector`'s events currently bypass passage (source -> irqfd).
  bool direct(uint16_t vector) const ABSL_LOCKS_EXCLUDED(mu_);
  // The eventfd of `vector`'s irqfd, -1 before it was first routed.
  int irqfd(uint16_t vector) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Vector {
    MsiMessage message;
    bool masked = true;
    bool pending = false;
    MsiVectorDelivery delivery;
  };
  bool Masked(const Vector& v) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings vector `index`'s path in line with its state (sending a pending
  // event once it is deliverable); a failure stops the VM.
  void Update(uint16_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t TableDword(uint32_t index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteTableDword(uint32_t index, uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  InterruptController& irq_;
  const std::string owner_;
  const Layout layout_;
  uint32_t cap_offset_ = 0;
  mutable absl::Mutex mu_;
  bool enabled_ ABSL_GUARDED_BY(mu_) = false;
  bool function_masked_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Vector> vectors_ ABSL_GUARDED_BY(mu_);
  MsiVectorSource* source_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// Serves a BAR that holds only an MSI-X table and PBA (offsets per Layout).
class MsixBarHandler : public IoHandler {
 public:
  explicit MsixBarHandler(std::shared_ptr<MsixCapability> msix) : msix_(std::move(msix)) {}
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::shared_ptr<MsixCapability> msix_;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_MSIX_H_
