// Config-space reads the way a guest makes them through ports 0xCF8/0xCFC
// (configuration mechanism #1), for tests that drive a PciPlatform's bus.
#ifndef PASSAGE_TESTS_UNIT_PCI_PORTS_H_
#define PASSAGE_TESTS_UNIT_PCI_PORTS_H_

#include <cstdint>
#include <cstring>

#include "devices/io_bus.h"

namespace passage {

// The dword at `reg` (4-aligned) of bus 0, `slot`, function 0.
inline uint32_t PortConfigRead(IoBus& pio, uint8_t slot, uint8_t reg) {
  const uint32_t address = 0x80000000u | slot << 11 | reg;
  uint8_t b[4];
  std::memcpy(b, &address, 4);
  pio.Write(0xcf8, b);
  pio.Read(0xcfc, b);
  uint32_t v;
  std::memcpy(&v, b, 4);
  return v;
}

}  // namespace passage

#endif  // PASSAGE_TESTS_UNIT_PCI_PORTS_H_
