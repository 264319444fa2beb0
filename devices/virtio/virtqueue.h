// A split virtqueue (virtio 1.x, 2.7) read from and written to guest RAM.
// Everything the driver controls is checked before use: ring addresses and
// alignment at creation; per chain the head and next indices, the chain
// length (no loops), each buffer's address and length (inside guest RAM),
// and the avail index (never more than `size` ahead). Descriptors are copied
// out of guest memory once, then validated, so a racing driver cannot change
// them between check and use. Not thread-safe: one user at a time (the
// device back end while the device runs).
#ifndef PASSAGE_DEVICES_VIRTIO_VIRTQUEUE_H_
#define PASSAGE_DEVICES_VIRTIO_VIRTQUEUE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "memory/guest_memory.h"

namespace passage {

struct VirtqueueConfig {
  uint16_t size = 0;   // power of two, 1..32768
  uint64_t desc = 0;   // descriptor table, 16-byte aligned
  uint64_t avail = 0;  // driver area, 2-byte aligned
  uint64_t used = 0;   // device area, 4-byte aligned
};

struct VirtqueueBuffer {
  uint64_t gpa = 0;
  uint32_t len = 0;
  bool device_writable = false;
  uint8_t* host = nullptr;  // [host, host+len) is guest RAM
};

struct DescriptorChain {
  uint16_t head = 0;
  std::vector<VirtqueueBuffer> buffers;
};

class Virtqueue {
 public:
  static constexpr uint16_t kMaxSize = 32768;

  // Checks the config against `memory`; errors name `name`.
  static absl::StatusOr<Virtqueue> Create(const GuestMemory& memory, const VirtqueueConfig& config,
                                          std::string name);

  // The next chain the driver made available, nullopt when there is none.
  // An error means the ring is malformed; the queue should not be used again.
  absl::StatusOr<std::optional<DescriptorChain>> Pop();
  // Gives chain `head` back to the driver, `written` bytes filled in.
  void PushUsed(uint16_t head, uint32_t written);
  // Whether the driver asked for an interrupt after used buffers (the
  // avail ring's NO_INTERRUPT flag is clear). Call after PushUsed.
  bool NeedsInterrupt() const;

  uint16_t size() const { return config_.size; }
  const std::string& name() const { return name_; }

 private:
  Virtqueue(const GuestMemory& memory, const VirtqueueConfig& config, std::string name)
      : memory_(&memory), config_(config), name_(std::move(name)) {}

  const GuestMemory* memory_;
  VirtqueueConfig config_;
  std::string name_;
  uint8_t* desc_ = nullptr;
  uint8_t* avail_ = nullptr;
  uint8_t* used_ = nullptr;
  uint16_t last_avail_ = 0;
  uint16_t used_idx_ = 0;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_VIRTIO_VIRTQUEUE_H_
