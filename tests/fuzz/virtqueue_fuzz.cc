// A split virtqueue whose rings the input fills: the queue size and the
// avail index come from the input too. Pop/PushUsed must never touch memory
// outside guest RAM, loop forever, or crash, whatever the driver wrote.
#include <cstdint>
#include <cstring>

#include "devices/virtio/virtqueue.h"

namespace {

passage::GuestMemory& Memory() {
  static auto* memory = passage::GuestMemory::Create({16 * passage::kMiB, false})->release();
  return *memory;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using passage::kMiB;
  if (size < 4) return 0;
  passage::GuestMemory& m = Memory();
  const uint16_t queue_size = static_cast<uint16_t>(1u << (data[0] % 9));  // 1..256
  uint64_t ring = 0x10000;
  // The descriptor table, avail ring and used ring, back to back.
  const uint64_t desc = ring, avail = ring + 16ull * queue_size,
                 used = (avail + 6 + 2ull * queue_size + 3) & ~3ull;
  std::memset(m.HostAddress(ring, 0x10000), 0, 0x10000);
  const size_t n = std::min<size_t>(size - 1, 0x8000);
  std::memcpy(m.HostAddress(ring, n), data + 1, n);
  auto q = passage::Virtqueue::Create(m, {queue_size, desc, avail, used}, "fuzz");
  if (!q.ok()) return 0;
  for (int i = 0; i < 2 * queue_size + 2; ++i) {
    auto chain = q->Pop();
    if (!chain.ok() || !chain->has_value()) break;
    uint32_t written = 0;
    for (const auto& b : (*chain)->buffers) {
      if (b.device_writable && b.len > 0) {
        b.host[0] = 0xaa;  // the buffer must really be ours to write
        b.host[b.len - 1] = 0x55;
        written += b.len;
      }
    }
    q->PushUsed((*chain)->head, written);
    (void)q->NeedsInterrupt();
  }
  return 0;
}
