#include "devices/pci/pci_bar_mapper.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace passage {
namespace {

// A BAR nobody traps: reads float high, writes vanish.
class Unclaimed : public IoHandler {
 public:
  void Read(uint64_t, std::span<uint8_t> data) override { std::memset(data.data(), 0xff, data.size()); }
  void Write(uint64_t, std::span<const uint8_t>) override {}
};

}  // namespace

absl::Status PciBarMapper::Map(const PciBarSpec& bar, uint64_t address, const std::string& owner) {
  if (!windows_.Contains(bar.kind, address, bar.size)) {
    return absl::OutOfRangeError(absl::StrCat(owner, ": 0x", absl::Hex(address), "+0x",
                                              absl::Hex(bar.size), " is outside the PCI windows"));
  }
  absl::MutexLock lock(&mu_);
  if (!bar.mmaps.empty() && memory_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(owner, ": no memory mapper for mmap'd BARs"));
  }
  IoBus& bus = bar.kind == PciBarKind::kIo ? pio_ : mmio_;
  std::shared_ptr<IoHandler> handler = bar.handler;
  if (handler == nullptr) handler = std::make_shared<Unclaimed>();
  if (absl::Status s = bus.Register(address, bar.size, std::move(handler), owner); !s.ok()) return s;
  std::vector<uint32_t> handles;
  for (const PciBarMmap& m : bar.mmaps) {
    absl::StatusOr<uint32_t> h = memory_->Map(address + m.offset, m.size, m.host);
    if (!h.ok()) {
      for (uint32_t done : handles) memory_->Unmap(done);
      (void)bus.Unregister(address);
      return h.status();
    }
    handles.push_back(*h);
  }
  if (!handles.empty()) mmap_handles_[address] = std::move(handles);
  return absl::OkStatus();
}

void PciBarMapper::Unmap(const PciBarSpec& bar, uint64_t address) {
  absl::MutexLock lock(&mu_);
  if (auto it = mmap_handles_.find(address); it != mmap_handles_.end()) {
    for (uint32_t h : it->second) memory_->Unmap(h);
    mmap_handles_.erase(it);
  }
  (void)(bar.kind == PciBarKind::kIo ? pio_ : mmio_).Unregister(address);
}

}  // namespace passage
