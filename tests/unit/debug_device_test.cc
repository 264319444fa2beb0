#include "devices/debug_device.h"

#include <gtest/gtest.h>

#include <cstring>

namespace passage {
namespace {

TEST(DebugDevice, PortWriteExitsWithTheByte) {
  int status = -1;
  DebugDevice d([&](int s) { status = s; });
  const uint8_t v = 42;
  d.port_handler()->Write(0, std::span<const uint8_t>(&v, 1));
  EXPECT_EQ(status, 42);
}

TEST(DebugDevice, MmioScratchCounterAndExit) {
  int status = -1;
  DebugDevice d([&](int s) { status = s; });
  auto mmio = d.mmio_handler();
  const uint64_t value = 0x1122334455667788;
  mmio->Write(8, {reinterpret_cast<const uint8_t*>(&value), 8});
  uint64_t back = 0;
  mmio->Read(8, {reinterpret_cast<uint8_t*>(&back), 8});
  EXPECT_EQ(back, value);
  uint32_t low = 0;
  mmio->Read(12, {reinterpret_cast<uint8_t*>(&low), 4});  // upper half
  EXPECT_EQ(low, 0x11223344u);
  uint64_t writes = 0;
  mmio->Read(0x10, {reinterpret_cast<uint8_t*>(&writes), 8});
  EXPECT_EQ(writes, 1u);
  EXPECT_EQ(status, -1);
  const uint32_t code = 0x107;  // only the low 8 bits count
  mmio->Write(0, {reinterpret_cast<const uint8_t*>(&code), 4});
  EXPECT_EQ(status, 7);
}

}  // namespace
}  // namespace passage
