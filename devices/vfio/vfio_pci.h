// A passed-through PCI function as the guest sees it: a PciDevice whose
// config space is virtualized over the real one, whose BARs are the device's
// regions (mmap'd into the guest where VFIO allows, trapped elsewhere,
// including the MSI-X table and PBA), and whose interrupts come from VFIO
// eventfds: INTx straight into a KVM irqfd with resample, MSI and MSI-X
// through the emulated capabilities (which own masking and pending bits).
//
// Config space policy (what the guest sees):
//   IDs, class, revision, subsystem, interrupt pin: copied from the device.
//   Command: virtual; I/O, memory and bus-master bits also go to the device.
//   BARs: virtual, sized from the VFIO regions (rounded up to a power of two,
//     at least one page for memory BARs); the guest places them.
//   Capabilities: MSI and MSI-X emulated (same vector counts and MSI-X
//     table/PBA location as the device), PCI Express copied read-only;
//     everything else hidden. No extended capabilities.
//   Expansion ROM: read once at start and served from that copy (trapped,
//     read-only) when the guest enables it; hidden when the device has
//     none, it is unreadable, or larger than kMaxRomSize.
#ifndef PASSAGE_DEVICES_VFIO_VFIO_PCI_H_
#define PASSAGE_DEVICES_VFIO_VFIO_PCI_H_

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/event_loop.h"
#include "devices/irq.h"
#include "devices/pci/msi.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/vfio/vfio_device.h"

namespace passage {

class VfioPciDevice : public PciDevice {
 public:
  // Reads the device's config space and regions, resets it, and builds the
  // guest view. `name` is for messages ("vfio-pci id=edu0").
  static absl::StatusOr<std::shared_ptr<VfioPciDevice>> Create(std::shared_ptr<VfioDevice> device,
                                                               InterruptController& irq,
                                                               EventLoop& loop, std::string name);
  // Interrupts off, device reset, BAR mappings undone; then the VFIO device
  // closes (detaching it from its DMA space).
  ~VfioPciDevice() override;

  void ConfigWrite(uint32_t offset, uint32_t size, uint32_t value) override;
  // Joins the bus, then wires INTx to the pin's route.
  void Attach(PciBarDecoder* decoder, PciIntxRoute intx) override;

  // Wires the device's INTx to `gsi` (level-triggered, resampled on EOI).
  // Called once the bus has routed the function's pin.
  absl::Status ConnectIntx(uint32_t gsi) ABSL_LOCKS_EXCLUDED(irq_mu_);

  const VfioDevice& vfio() const { return *device_; }
  uint16_t msi_vectors() const { return msi_vectors_; }
  uint16_t msix_vectors() const { return msix_vectors_; }
  // For tests and reports.
  enum class IrqMode { kNone, kIntx, kMsi, kMsix };
  IrqMode irq_mode() const ABSL_LOCKS_EXCLUDED(irq_mu_);
  std::shared_ptr<MsixCapability> msix() const { return msix_; }
  MsiCapability* msi() const { return msi_.get(); }

 private:
  struct Mmap {
    void* host;
    size_t size;
  };
  class BarHandler;
  class RomHandler;
  static constexpr uint64_t kMaxRomSize = 16ull << 20;

  VfioPciDevice(std::shared_ptr<VfioDevice> device, InterruptController& irq, EventLoop& loop,
                std::string name, const PciIds& ids);
  absl::Status SetUpBars(const std::vector<uint8_t>& config);
  absl::Status SetUpCapabilities(const std::vector<uint8_t>& config);
  absl::Status SetUpRom();
  // Makes VFIO's interrupt configuration follow the emulated capabilities.
  void SyncInterrupts() ABSL_LOCKS_EXCLUDED(irq_mu_);
  absl::Status EnableVectors(uint32_t index, uint32_t count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(irq_mu_);
  void DisableVectors() ABSL_EXCLUSIVE_LOCKS_REQUIRED(irq_mu_);
  absl::Status EnableIntx() ABSL_EXCLUSIVE_LOCKS_REQUIRED(irq_mu_);
  void DisableIntx() ABSL_EXCLUSIVE_LOCKS_REQUIRED(irq_mu_);

  std::shared_ptr<VfioDevice> device_;  // shared with the BAR handlers
  InterruptController& irq_;
  EventLoop& loop_;
  VfioRegionInfo config_region_;
  std::vector<Mmap> mmaps_;
  std::shared_ptr<MsixCapability> msix_;
  std::unique_ptr<MsiCapability> msi_;
  uint16_t msi_vectors_ = 0;  // what the device supports
  uint16_t msix_vectors_ = 0;

  mutable absl::Mutex irq_mu_;
  IrqMode mode_ ABSL_GUARDED_BY(irq_mu_) = IrqMode::kNone;
  uint32_t mode_vectors_ ABSL_GUARDED_BY(irq_mu_) = 0;
  // One eventfd per enabled MSI/MSI-X vector: VFIO signals it, the loop
  // thread hands it to the capability (which masks, pends or sends).
  std::vector<std::unique_ptr<LoopEventfd>> vector_fds_ ABSL_GUARDED_BY(irq_mu_);
  std::optional<uint32_t> intx_gsi_ ABSL_GUARDED_BY(irq_mu_);
  UniqueFd intx_fd_ ABSL_GUARDED_BY(irq_mu_);
  UniqueFd intx_resample_fd_ ABSL_GUARDED_BY(irq_mu_);
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_VFIO_VFIO_PCI_H_
