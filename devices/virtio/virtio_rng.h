// virtio-rng (virtio 1.2, 5.4): one request queue; the device fills each
// device-writable buffer with bytes read from its source (an fd: opened from
// filename=, default /dev/urandom, or passed as fd=). Work runs on a small
// worker thread so a slow source never stalls a vCPU (started at the
// driver's first DRIVER_OK, then kept until the device goes); a device reset
// interrupts a blocked read.
#ifndef PASSAGE_DEVICES_VIRTIO_VIRTIO_RNG_H_
#define PASSAGE_DEVICES_VIRTIO_VIRTIO_RNG_H_

#include <cstdint>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/virtio/virtio_device.h"
#include "memory/unique_fd.h"

namespace passage {

class VirtioRng : public VirtioBackend {
 public:
  static constexpr uint16_t kDeviceType = 4;    // VIRTIO_ID_RNG
  static constexpr uint32_t kMaxRequest = 64 * 1024;  // bytes filled per request, at most

  static absl::StatusOr<std::unique_ptr<VirtioRng>> Create(UniqueFd source);
  ~VirtioRng() override;

  uint16_t device_type() const override { return kDeviceType; }
  uint32_t pci_class() const override { return 0x00ff00; }  // unclassified, as QEMU's
  uint16_t num_queues() const override { return 1; }
  void Start(std::vector<Virtqueue*> queues, VirtioNotifier* notifier) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void Kick(uint16_t queue) override ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() override ABSL_LOCKS_EXCLUDED(mu_);

  // Bytes handed to the guest so far.
  uint64_t bytes_served() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  VirtioRng(UniqueFd source, UniqueFd cancel) : source_(std::move(source)), cancel_(std::move(cancel)) {}
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Serves every available request; false if cancelled.
  bool Drain(Virtqueue& queue, VirtioNotifier& notifier);
  // Reads up to `len` bytes from the source; 0 at EOF; -1 when cancelled.
  ssize_t ReadSource(uint8_t* dst, size_t len);

  const UniqueFd source_;
  const UniqueFd cancel_;  // eventfd: Stop() wakes a blocked read
  std::thread worker_ ABSL_GUARDED_BY(mu_);  // from the first Start on

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  Virtqueue* queue_ ABSL_GUARDED_BY(mu_) = nullptr;
  VirtioNotifier* notifier_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool exiting_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t bytes_served_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_VIRTIO_VIRTIO_RNG_H_
