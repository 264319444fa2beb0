#include "devices/debug_device.h"

#include <cstring>

namespace passage {
namespace {

uint64_t Load(std::span<const uint8_t> data) {
  uint64_t v = 0;
  std::memcpy(&v, data.data(), std::min(data.size(), sizeof(v)));
  return v;
}

void Store(uint64_t v, uint64_t byte_offset, std::span<uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t b = byte_offset + i;
    data[i] = b < 8 ? static_cast<uint8_t>(v >> (8 * b)) : 0;
  }
}

}  // namespace

class DebugDevice::Port : public IoHandler {
 public:
  explicit Port(DebugDevice* d) : d_(d) {}
  void Read(uint64_t, std::span<uint8_t> data) override { std::memset(data.data(), 0, data.size()); }
  void Write(uint64_t, std::span<const uint8_t> data) override {
    d_->on_exit_(static_cast<int>(data[0]));
  }

 private:
  DebugDevice* d_;
};

class DebugDevice::Mmio : public IoHandler {
 public:
  explicit Mmio(DebugDevice* d) : d_(d) {}
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    if (offset >= 0x08 && offset < 0x10) {
      Store(d_->scratch_.load(), offset - 0x08, data);
    } else if (offset >= 0x10 && offset < 0x18) {
      Store(d_->writes_.load(), offset - 0x10, data);
    } else {
      std::memset(data.data(), 0, data.size());
    }
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    d_->writes_.fetch_add(1);
    if (offset == 0x00) {
      d_->on_exit_(static_cast<int>(Load(data) & 0xff));
    } else if (offset == 0x08 && data.size() == 8) {
      d_->scratch_.store(Load(data));
    }
  }

 private:
  DebugDevice* d_;
};

std::shared_ptr<IoHandler> DebugDevice::port_handler() { return std::make_shared<Port>(this); }
std::shared_ptr<IoHandler> DebugDevice::mmio_handler() { return std::make_shared<Mmio>(this); }

}  // namespace passage
