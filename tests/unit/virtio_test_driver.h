// The driver side of a split virtqueue, laid out in guest memory the way a
// guest would: descriptor table, avail ring, used ring.
#ifndef PASSAGE_TESTS_UNIT_VIRTIO_TEST_DRIVER_H_
#define PASSAGE_TESTS_UNIT_VIRTIO_TEST_DRIVER_H_

#include <cstdint>
#include <cstring>

#include "memory/guest_memory.h"

namespace passage::testing {

class RingDriver {
 public:
  static constexpr uint64_t kDesc = 0x10000;
  static constexpr uint64_t kAvail = 0x11000;
  static constexpr uint64_t kUsed = 0x12000;
  static constexpr uint16_t kNext = 1, kWrite = 2, kIndirect = 4;

  RingDriver(GuestMemory& memory, uint16_t size) : m_(memory), size_(size) {}

  void SetDesc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    uint8_t d[16];
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
    Put(kDesc + 16ull * i, d, 16);
  }
  // Publishes `head` in the avail ring.
  void Offer(uint16_t head) {
    Put(kAvail + 4 + 2ull * (avail_idx_ % size_), &head, 2);
    ++avail_idx_;
    Put(kAvail + 2, &avail_idx_, 2);
  }
  void SetAvailIdx(uint16_t idx) {
    avail_idx_ = idx;
    Put(kAvail + 2, &idx, 2);
  }
  void SetAvailFlags(uint16_t flags) { Put(kAvail, &flags, 2); }
  uint16_t UsedIdx() { return Get16(kUsed + 2); }
  uint32_t UsedId(uint16_t i) { return Get32(kUsed + 4 + 8ull * (i % size_)); }
  uint32_t UsedLen(uint16_t i) { return Get32(kUsed + 4 + 8ull * (i % size_) + 4); }

 private:
  void Put(uint64_t gpa, const void* p, size_t n) {
    (void)m_.Write(gpa, std::span<const uint8_t>(static_cast<const uint8_t*>(p), n));
  }
  uint16_t Get16(uint64_t gpa) {
    uint16_t v = 0;
    (void)m_.Read(gpa, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 2));
    return v;
  }
  uint32_t Get32(uint64_t gpa) {
    uint32_t v = 0;
    (void)m_.Read(gpa, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }

  GuestMemory& m_;
  const uint16_t size_;
  uint16_t avail_idx_ = 0;
};

}  // namespace passage::testing

#endif  // PASSAGE_TESTS_UNIT_VIRTIO_TEST_DRIVER_H_
