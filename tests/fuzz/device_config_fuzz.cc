// -device and key=value parsing (also QMP device_add's later): any text gives
// a DeviceConfig or one-line error, never a crash.
#include <cstdint>
#include <string>

#include "tests/fuzz/fuzz_check.h"
#include "vmm/device_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto d = passage::ParseDeviceConfig(text);
  if (!d.ok()) FuzzCheckOneLine(d.status().message());
  (void)passage::ParseKeyValues(text, "qom-type");
  (void)passage::ParsePciSlot(text);
  if (d.ok()) (void)passage::ValidateDeviceConfigs({*d, *d});
  return 0;
}
