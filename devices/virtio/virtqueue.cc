#include "devices/virtio/virtqueue.h"

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace passage {
namespace {

// Split-ring layout (virtio 1.x 2.7): avail = flags, idx, ring[size];
// used = flags, idx, ring[size] of {id, len}.
constexpr uint64_t kDescSize = 16;
constexpr uint64_t kRingHeader = 4;
constexpr uint64_t kUsedElemSize = 8;
constexpr uint16_t kDescNext = 1;       // kDescNext
constexpr uint16_t kDescWrite = 2;      // kDescWrite
constexpr uint16_t kDescIndirect = 4;   // kDescIndirect
constexpr uint16_t kAvailNoInterrupt = 1;  // kAvailNoInterrupt

// (linux/virtio_ring.h does not compile as C++.)
struct Descriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct UsedElement {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(Descriptor) == kDescSize && sizeof(UsedElement) == kUsedElemSize);

uint16_t LoadAcquire16(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_ACQUIRE);
}

}  // namespace

absl::StatusOr<Virtqueue> Virtqueue::Create(const GuestMemory& memory, const VirtqueueConfig& c,
                                            std::string name) {
  const uint16_t n = c.size;
  if (n == 0 || n > kMaxSize || (n & (n - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": queue size ", n, " is not a power of two in [1, 32768]"));
  }
  struct Area {
    const char* what;
    uint64_t gpa;
    uint64_t len;
    uint64_t align;
  };
  const Area areas[] = {{"descriptor table", c.desc, kDescSize * n, 16},
                        {"driver area", c.avail, kRingHeader + 2ull * n + 2, 2},
                        {"device area", c.used, kRingHeader + kUsedElemSize * n + 2, 4}};
  Virtqueue q(memory, c, std::move(name));
  uint8_t** hosts[] = {&q.desc_, &q.avail_, &q.used_};
  for (int i = 0; i < 3; ++i) {
    const Area& a = areas[i];
    if (a.gpa % a.align != 0) {
      return absl::InvalidArgumentError(absl::StrCat(q.name_, ": ", a.what, " at 0x", absl::Hex(a.gpa),
                                                     " is not ", a.align, "-byte aligned"));
    }
    *hosts[i] = memory.HostAddress(a.gpa, a.len);
    if (*hosts[i] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(q.name_, ": ", a.what, " at 0x", absl::Hex(a.gpa),
                                                     "+0x", absl::Hex(a.len), " is not in guest RAM"));
    }
  }
  // A freshly enabled queue starts at index 0 on both sides (2.7.13).
  return q;
}

absl::StatusOr<std::optional<DescriptorChain>> Virtqueue::Pop() {
  const uint16_t n = config_.size;
  const uint16_t avail_idx = LoadAcquire16(avail_ + 2);
  const uint16_t ahead = static_cast<uint16_t>(avail_idx - last_avail_);
  if (ahead == 0) return std::nullopt;
  if (ahead > n) {
    return absl::OutOfRangeError(absl::StrCat(name_, ": avail index ", avail_idx, " is ", ahead,
                                              " entries ahead of ", last_avail_, " (queue size ", n, ")"));
  }
  uint16_t head;
  std::memcpy(&head, avail_ + kRingHeader + 2u * (last_avail_ % n), sizeof(head));
  if (head >= n) {
    return absl::OutOfRangeError(absl::StrCat(name_, ": avail ring head ", head, " >= queue size ", n));
  }
  DescriptorChain chain{head, {}};
  uint16_t index = head;
  for (uint32_t count = 0;; ++count) {
    if (count >= n) {
      return absl::OutOfRangeError(absl::StrCat(name_, ": descriptor chain from ", head,
                                                " is longer than the queue (a loop)"));
    }
    Descriptor d;
    std::memcpy(&d, desc_ + kDescSize * index, sizeof(d));
    if (d.flags & kDescIndirect) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": descriptor ", index,
                                                     " is indirect (feature not offered)"));
    }
    uint8_t* host = d.len == 0 ? nullptr : memory_->HostAddress(d.addr, d.len);
    if (d.len != 0 && host == nullptr) {
      return absl::OutOfRangeError(absl::StrCat(name_, ": descriptor ", index, " buffer 0x",
                                                absl::Hex(d.addr), "+0x", absl::Hex(d.len),
                                                " is not in guest RAM"));
    }
    chain.buffers.push_back({d.addr, d.len, (d.flags & kDescWrite) != 0, host});
    if (!(d.flags & kDescNext)) break;
    if (d.next >= n) {
      return absl::OutOfRangeError(absl::StrCat(name_, ": descriptor ", index, " next ", d.next,
                                                " >= queue size ", n));
    }
    index = d.next;
  }
  ++last_avail_;
  return chain;
}

void Virtqueue::PushUsed(uint16_t head, uint32_t written) {
  const uint16_t n = config_.size;
  UsedElement elem{head, written};
  std::memcpy(used_ + kRingHeader + kUsedElemSize * (used_idx_ % n), &elem, sizeof(elem));
  ++used_idx_;
  // The element must be visible before the index that publishes it.
  __atomic_store_n(reinterpret_cast<uint16_t*>(used_ + 2), used_idx_, __ATOMIC_RELEASE);
}

bool Virtqueue::NeedsInterrupt() const {
  // Order the used-index store before reading the driver's flags.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return !(LoadAcquire16(avail_) & kAvailNoInterrupt);
}

}  // namespace passage
