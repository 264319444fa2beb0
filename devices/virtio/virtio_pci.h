// The virtio-pci modern transport (virtio 1.2, 4.1), no legacy interface.
// PCI IDs: 1af4:(1040 + device type), revision 1, subsystem 1af4:1100.
// BAR layout:
//   BAR 1 (32-bit memory, 4 KiB): MSI-X table at 0, PBA at 0x800; one vector
//         per queue plus one for configuration changes.
//   BAR 4 (64-bit memory, 16 KiB):
//     0x0000 common configuration   0x1000 ISR status (read clears, INTx)
//     0x2000 device configuration   0x3000 notifications: queue q at 0x3000+4q
// Capabilities: the five virtio vendor capabilities (common, notify, ISR,
// device config when the type has one, PCI config access) and MSI-X.
// Notifications are trapped MMIO writes; the back end decides where the
// work runs. Features offered: VERSION_1 plus the back end's own.
#ifndef PASSAGE_DEVICES_VIRTIO_VIRTIO_PCI_H_
#define PASSAGE_DEVICES_VIRTIO_VIRTIO_PCI_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/irq.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"

namespace passage {

class VirtioPciDevice : public PciDevice, private VirtioNotifier {
 public:
  static constexpr uint16_t kVendor = 0x1af4;
  static constexpr uint16_t kDeviceBase = 0x1040;
  static constexpr uint16_t kSubsystem = 0x1100;
  static constexpr int kMsixBar = 1;
  static constexpr int kVirtioBar = 4;
  static constexpr uint64_t kMsixBarSize = 0x1000;
  static constexpr uint32_t kMsixPbaOffset = 0x800;
  static constexpr uint64_t kCommonOffset = 0x0000;
  static constexpr uint64_t kIsrOffset = 0x1000;
  static constexpr uint64_t kDeviceConfigOffset = 0x2000;
  static constexpr uint64_t kNotifyOffset = 0x3000;
  static constexpr uint64_t kRegionSize = 0x1000;
  static constexpr uint64_t kVirtioBarSize = 0x4000;
  static constexpr uint32_t kNotifyMultiplier = 4;
  static constexpr uint16_t kNoVector = 0xffff;

  static absl::StatusOr<std::shared_ptr<VirtioPciDevice>> Create(
      std::string name, std::unique_ptr<VirtioBackend> backend, const GuestMemory& memory,
      InterruptController& irq);
  ~VirtioPciDevice() override;

  uint32_t ConfigRead(uint32_t offset, uint32_t size) override;
  void ConfigWrite(uint32_t offset, uint32_t size, uint32_t value) override;

  // BAR 4 (also reached through the PCI configuration access capability).
  void BarRead(uint64_t offset, std::span<uint8_t> data) ABSL_LOCKS_EXCLUDED(state_mu_);
  void BarWrite(uint64_t offset, std::span<const uint8_t> data) ABSL_LOCKS_EXCLUDED(state_mu_);

  MsixCapability& msix() { return *msix_; }
  uint8_t device_status() const ABSL_LOCKS_EXCLUDED(state_mu_);
  uint64_t driver_features() const ABSL_LOCKS_EXCLUDED(state_mu_);

 private:
  struct Queue {
    uint16_t size = 0;
    bool enabled = false;
    uint64_t desc = 0;
    uint64_t avail = 0;
    uint64_t used = 0;
    std::optional<Virtqueue> live;
  };

  VirtioPciDevice(std::string name, std::unique_ptr<VirtioBackend> backend,
                  const GuestMemory& memory, InterruptController& irq);
  absl::Status Init();
  // Adds the virtio and MSI-X capabilities; returns the MSI-X one's offset.
  absl::StatusOr<uint32_t> AddCapabilities() ABSL_LOCKS_EXCLUDED(mu_);

  // VirtioNotifier (any thread; no state_mu_).
  void QueueUsed(uint16_t queue) override;
  void QueueBroken(uint16_t queue, const absl::Status& why) override;
  void Interrupt(uint16_t vector, uint8_t isr_bit);

  uint32_t CommonRead(uint64_t offset, size_t size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_);
  void CommonWrite(uint64_t offset, size_t size, uint64_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_);
  void SetStatus(uint8_t status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_);
  void EnableQueue(uint16_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_);
  void Reset() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_);
  Queue* SelectedQueue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_);
  uint16_t ValidVector(uint16_t vector) const;
  // The PCI configuration access capability's BAR access, if well formed.
  bool CfgWindow(uint32_t* bar_offset, uint32_t* length);

  const std::unique_ptr<VirtioBackend> backend_;
  const GuestMemory& memory_;
  const uint16_t num_queues_;
  const uint64_t offered_features_;
  std::shared_ptr<MsixCapability> msix_;
  uint32_t cfg_cap_ = 0;  // offset of the PCI configuration access capability

  mutable absl::Mutex state_mu_ ABSL_ACQUIRED_AFTER(mu_);
  uint8_t status_ ABSL_GUARDED_BY(state_mu_) = 0;
  uint32_t device_feature_select_ ABSL_GUARDED_BY(state_mu_) = 0;
  uint32_t driver_feature_select_ ABSL_GUARDED_BY(state_mu_) = 0;
  uint64_t driver_features_ ABSL_GUARDED_BY(state_mu_) = 0;
  uint16_t queue_select_ ABSL_GUARDED_BY(state_mu_) = 0;
  std::vector<Queue> queues_ ABSL_GUARDED_BY(state_mu_);
  bool started_ ABSL_GUARDED_BY(state_mu_) = false;

  // Read by the notifier without state_mu_.
  std::atomic<uint8_t> isr_{0};
  std::atomic<bool> needs_reset_{false};
  std::atomic<uint16_t> config_vector_{kNoVector};
  std::unique_ptr<std::atomic<uint16_t>[]> queue_vectors_;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_VIRTIO_VIRTIO_PCI_H_
