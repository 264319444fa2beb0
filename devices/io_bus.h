// Port-I/O and MMIO dispatch: address ranges -> handlers.
#ifndef PASSAGE_DEVICES_IO_BUS_H_
#define PASSAGE_DEVICES_IO_BUS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace passage {

// A device's view of an access: `offset` is relative to the start of the
// range the handler was registered for; data.size() is 1, 2, 4 or 8.
// Handlers are called from vCPU threads, possibly concurrently.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  virtual void Read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void Write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

// An access's bytes (at most 8, little-endian as on x86) as a number, and
// a number into an access's bytes (its low data.size() bytes).
inline uint64_t LoadAccess(std::span<const uint8_t> data) {
  uint64_t v = 0;
  std::memcpy(&v, data.data(), std::min<size_t>(data.size(), sizeof(v)));
  return v;
}
inline void StoreAccess(uint64_t v, std::span<uint8_t> data) {
  std::memcpy(data.data(), &v, std::min<size_t>(data.size(), sizeof(v)));
}

class IoBus {
 public:
  explicit IoBus(std::string name) : name_(std::move(name)) {}

  // Claims [base, base+size) for `handler`. Fails on overlap or empty range.
  absl::Status Register(uint64_t base, uint64_t size, std::shared_ptr<IoHandler> handler,
                        std::string owner) ABSL_LOCKS_EXCLUDED(mu_);
  // Releases the range starting at `base`.
  absl::Status Unregister(uint64_t base) ABSL_LOCKS_EXCLUDED(mu_);

  // Dispatch. Return false when nothing claims the whole access; reads of
  // unclaimed addresses then see all-ones, as on real buses.
  bool Read(uint64_t addr, std::span<uint8_t> data) const ABSL_LOCKS_EXCLUDED(mu_);
  bool Write(uint64_t addr, std::span<const uint8_t> data) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Range {
    uint64_t size;
    std::shared_ptr<IoHandler> handler;
    std::string owner;
  };
  // The handler covering [addr, addr+len) and the offset into it.
  std::shared_ptr<IoHandler> Find(uint64_t addr, uint64_t len, uint64_t* offset) const
      ABSL_LOCKS_EXCLUDED(mu_);

  const std::string name_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, Range> ranges_ ABSL_GUARDED_BY(mu_);  // keyed by base
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_IO_BUS_H_
