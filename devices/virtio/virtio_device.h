// A virtio device type (rng, later others) as the virtio-pci transport
// drives it. The transport owns feature negotiation, status, queue set-up
// and interrupts; the back end only moves data through live queues.
#ifndef PASSAGE_DEVICES_VIRTIO_VIRTIO_DEVICE_H_
#define PASSAGE_DEVICES_VIRTIO_VIRTIO_DEVICE_H_

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "devices/virtio/virtqueue.h"

namespace passage {

// How a back end tells the driver about progress. Thread-safe; never blocks
// on the transport's state lock, so a back end may call it from a worker
// thread at any time, including while the transport waits in Stop().
class VirtioNotifier {
 public:
  virtual ~VirtioNotifier() = default;
  // Used buffers were added to `queue` and the driver wants an interrupt.
  virtual void QueueUsed(uint16_t queue) = 0;
  // `queue` turned out malformed: the device needs a reset.
  virtual void QueueBroken(uint16_t queue, const absl::Status& why) = 0;
};

class VirtioBackend {
 public:
  virtual ~VirtioBackend() = default;
  virtual uint16_t device_type() const = 0;      // virtio device ID (4: entropy)
  virtual uint32_t pci_class() const = 0;        // 24-bit PCI class code
  virtual uint64_t device_features() const { return 0; }  // type-specific bits
  virtual uint16_t num_queues() const = 0;
  virtual uint16_t max_queue_size() const { return 256; }
  virtual uint32_t config_size() const { return 0; }
  virtual void ReadConfig(uint32_t offset, std::span<uint8_t> data) {
    (void)offset;
    std::memset(data.data(), 0, data.size());
  }
  virtual void WriteConfig(uint32_t offset, std::span<const uint8_t> data) {
    (void)offset;
    (void)data;
  }
  // The driver set DRIVER_OK. queues[i] is null for a queue it did not
  // enable; the pointers stay valid until Stop() returns.
  virtual void Start(std::vector<Virtqueue*> queues, VirtioNotifier* notifier) = 0;
  // The driver notified `queue` (only between Start and Stop). Must not block.
  virtual void Kick(uint16_t queue) = 0;
  // Device reset: when Stop returns the back end no longer touches the queues.
  virtual void Stop() = 0;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_VIRTIO_VIRTIO_DEVICE_H_
