// A passed-through PCI function as the guest sees it: a PciDevice whose
// config space is virtualized over the real one, whose BARs are the device's
// regions (mmap'd into the guest where VFIO allows, trapped elsewhere,
// including the MSI-X table and PBA), and whose interrupts come from VFIO
// eventfds: INTx straight into a KVM irqfd with resample; MSI and MSI-X
// through the emulated capabilities, which own masking and pending bits.
//
// MSI/MSI-X delivery: while a vector is enabled and unmasked, VFIO's trigger
// eventfd for it IS the vector's KVM irqfd (VFIO_DEVICE_SET_IRQS with
// start=vector, count=1), so an interrupt reaches the guest without waking
// passage. When the guest masks the vector (or the whole function, or
// disables MSI-X), passage points VFIO at one of its event-loop eventfds
// instead; an event there sets the pending bit. On unmask passage swaps the
// irqfd back in and, if the vector was pending (or an event was still
// queued on the loop eventfd), injects it once.
//
// The interrupt mode VFIO is in follows the capabilities, decided inside
// the config write that changed them (under PciDevice's config lock, so two
// vCPUs' writes cannot interleave). If VFIO refuses MSI or MSI-X, the guest
// sees the capability's enable bit clear again (and INTx stays wired); a
// failure to wire INTx fails Attach, and a vector that cannot be routed
// stops the VM (InterruptController::Fatal). Vector counts are the smaller
// of the capability's and VFIO_DEVICE_GET_IRQ_INFO's.
//
// Config space policy (what the guest sees):
//   IDs, class, revision, subsystem, interrupt pin: copied from the device.
//   Command: virtual; I/O, memory and bus-master bits also go to the device.
//   BARs: virtual, sized from the VFIO regions (rounded up to a power of two,
//     at least one page for memory BARs); the guest places them.
//   Capabilities: MSI and MSI-X emulated (same vector counts and MSI-X
//     table/PBA location as the device), PCI Express copied read-only;
//     everything else hidden. Extended capabilities: the physical ones are
//     hidden; a PCIe function whose host function has PASID (its VFIO device
//     in the VM's PASID space with a nonzero width) gets a synthesized PASID
//     capability (devices/pci/pasid_capability.h) with the VM's negotiated
//     width and the function's Execute/Privileged Mode bits.
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
#include "devices/pci/pasid_capability.h"
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
  // Joins the bus, then wires INTx to the pin's route (an error if that fails).
  absl::Status Attach(PciBarDecoder* decoder, PciIntxRoute intx) override;

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
  // Null when the guest sees no PASID capability.
  const PasidCapability* pasid() const { return pasid_.get(); }

 private:
  struct Mmap {
    void* host;
    size_t size;
  };
  class BarHandler;
  class RomHandler;
  class VectorSource;
  class IrqCapability;
  static constexpr uint64_t kMaxRomSize = 16ull << 20;

  VfioPciDevice(std::shared_ptr<VfioDevice> device, InterruptController& irq, EventLoop& loop,
                std::string name, const PciIds& ids);
  absl::Status SetUpBars(const std::vector<uint8_t>& config);
  absl::Status SetUpCapabilities(const std::vector<uint8_t>& config);
  // The synthesized PASID capability, when the device has PASID.
  absl::Status SetUpPasid();
  absl::Status SetUpRom();
  // Adds MSI or MSI-X (`cap`, VFIO IRQ `index`) to the guest's list, with
  // VFIO as its vectors' source (returned).
  absl::StatusOr<MsiVectorSource*> AddInterruptCapability(uint32_t index, PciCapabilityHandler* cap,
                                                          uint32_t flags_offset, uint16_t enable_bit);
  // Makes VFIO's interrupt mode follow the emulated capabilities. Runs
  // inside a capability's config write (PciDevice's config lock held).
  void SyncInterrupts(PciConfigSpace& config) ABSL_LOCKS_EXCLUDED(irq_mu_);
  // Leaves the current mode and enters `want`; the loop eventfds no longer
  // used are moved to `unused` (destroyed by the caller without irq_mu_).
  absl::Status SwitchMode(IrqMode want, uint32_t vectors,
                          std::vector<std::unique_ptr<LoopEventfd>>& unused)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(irq_mu_);
  absl::Status EnableVectors(uint32_t index, uint32_t count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(irq_mu_);
  void DisableVectors(std::vector<std::unique_ptr<LoopEventfd>>& unused)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(irq_mu_);
  // Points VFIO's trigger for one vector at `irqfd` (-1: passage's loop
  // eventfd); see MsiVectorSource::Direct.
  absl::StatusOr<bool> SetVectorTarget(uint32_t index, uint16_t vector, int irqfd)
      ABSL_LOCKS_EXCLUDED(irq_mu_);
  absl::Status EnableIntx() ABSL_EXCLUSIVE_LOCKS_REQUIRED(irq_mu_);
  void DisableIntx() ABSL_EXCLUSIVE_LOCKS_REQUIRED(irq_mu_);

  std::shared_ptr<VfioDevice> device_;  // shared with the BAR handlers
  InterruptController& irq_;
  EventLoop& loop_;
  VfioRegionInfo config_region_;
  std::vector<Mmap> mmaps_;
  std::shared_ptr<MsixCapability> msix_;
  std::unique_ptr<MsiCapability> msi_;
  std::unique_ptr<PasidCapability> pasid_;
  std::unique_ptr<IrqCapability> msix_hook_, msi_hook_;
  std::unique_ptr<VectorSource> msix_source_, msi_source_;
  uint16_t msi_vectors_ = 0;  // what the device and VFIO support
  uint16_t msix_vectors_ = 0;

  mutable absl::Mutex irq_mu_;
  IrqMode mode_ ABSL_GUARDED_BY(irq_mu_) = IrqMode::kNone;
  uint32_t mode_vectors_ ABSL_GUARDED_BY(irq_mu_) = 0;
  // One loop eventfd per enabled MSI/MSI-X vector: VFIO signals it while
  // the vector is masked, and the loop thread hands the event to the
  // capability (which sets the pending bit).
  std::vector<std::unique_ptr<LoopEventfd>> vector_fds_ ABSL_GUARDED_BY(irq_mu_);
  // Per vector, the irqfd VFIO should signal directly, or -1 (the loop
  // eventfd). Kept while VFIO is in another mode, applied when it enters
  // this one.
  std::vector<int> msix_direct_ ABSL_GUARDED_BY(irq_mu_);
  std::vector<int> msi_direct_ ABSL_GUARDED_BY(irq_mu_);
  std::optional<uint32_t> intx_gsi_ ABSL_GUARDED_BY(irq_mu_);
  UniqueFd intx_fd_ ABSL_GUARDED_BY(irq_mu_);
  UniqueFd intx_resample_fd_ ABSL_GUARDED_BY(irq_mu_);
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_VFIO_VFIO_PCI_H_
