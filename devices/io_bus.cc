#include "devices/io_bus.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace passage {

absl::Status IoBus::Register(uint64_t base, uint64_t size, std::shared_ptr<IoHandler> handler,
                             std::string owner) {
  if (size == 0 || base + size < base) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": ", owner, ": bad range 0x",
                                                   absl::Hex(base), "+0x", absl::Hex(size)));
  }
  absl::MutexLock lock(&mu_);
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first < base + size) {
    return absl::AlreadyExistsError(absl::StrCat(
        name_, ": ", owner, " at 0x", absl::Hex(base), "+0x", absl::Hex(size),
        " overlaps ", next->second.owner, " at 0x", absl::Hex(next->first)));
  }
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.size > base) {
      return absl::AlreadyExistsError(absl::StrCat(
          name_, ": ", owner, " at 0x", absl::Hex(base), "+0x", absl::Hex(size),
          " overlaps ", prev->second.owner, " at 0x", absl::Hex(prev->first)));
    }
  }
  ranges_.emplace(base, Range{size, std::move(handler), std::move(owner)});
  return absl::OkStatus();
}

absl::Status IoBus::Unregister(uint64_t base) {
  absl::MutexLock lock(&mu_);
  if (ranges_.erase(base) == 0) {
    return absl::NotFoundError(absl::StrCat(name_, ": nothing registered at 0x", absl::Hex(base)));
  }
  return absl::OkStatus();
}

std::shared_ptr<IoHandler> IoBus::Find(uint64_t addr, uint64_t len, uint64_t* offset) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  --it;
  const uint64_t off = addr - it->first;
  if (off >= it->second.size || len > it->second.size - off) return nullptr;
  *offset = off;
  return it->second.handler;
}

bool IoBus::Read(uint64_t addr, std::span<uint8_t> data) const {
  uint64_t offset = 0;
  std::shared_ptr<IoHandler> h = Find(addr, data.size(), &offset);
  if (h == nullptr) {
    std::memset(data.data(), 0xff, data.size());
    return false;
  }
  h->Read(offset, data);
  return true;
}

bool IoBus::Write(uint64_t addr, std::span<const uint8_t> data) const {
  uint64_t offset = 0;
  std::shared_ptr<IoHandler> h = Find(addr, data.size(), &offset);
  if (h == nullptr) return false;
  h->Write(offset, data);
  return true;
}

}  // namespace passage
