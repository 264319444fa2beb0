// The ACPI registers a guest reaches by port I/O: the Generic Event Device
// for PCI hotplug and the power button (AcpiHotplug, 0x610) and the PM
// block (AcpiPmDevice, 0x600), on a port bus as the VM registers them,
// with host-side events (device_add's DeviceAdded, device_del's
// EjectRequest, system_powerdown's PowerButton) interleaved. Accesses of
// any size to any port around them, any value. Checked after every step:
// the interrupt line is up exactly while something is pending and changes
// only on an edge, an eject reaches the VMM only from a 32-bit write of a
// valid slot to the eject register, odd-sized reads see zeros, and power
// off / reset happen only on the documented values.
//
// Input: steps of 7 bytes: kind, size (1 << n), port (0x600 + n % 0x20),
// value (4 bytes). kind % 8: 0-4 a guest access (bit 7: write), 5
// DeviceAdded(value), 6 EjectRequest(value), 7 PowerButton.
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "devices/acpi/acpi_hotplug.h"
#include "devices/acpi/acpi_pm_device.h"
#include "devices/io_bus.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using passage::AcpiHotplug;
using passage::AcpiPmDevice;

bool Covers(uint64_t port, size_t len, uint64_t reg) { return reg >= port && reg < port + len; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<bool> levels;
  std::optional<uint8_t> ejected;
  int power_offs = 0, resets = 0;
  passage::IoBus pio("pio");
  auto ged = std::make_shared<AcpiHotplug>([&](bool level) { levels.push_back(level); },
                                           [&](uint8_t slot) { ejected = slot; });
  auto pm = std::make_shared<AcpiPmDevice>([&] { ++power_offs; }, [&] { ++resets; });
  FUZZ_FAIL_IF(!pio.Register(AcpiHotplug::kBase, AcpiHotplug::kSize, ged, "acpi-ged").ok());
  FUZZ_FAIL_IF(!pio.Register(AcpiPmDevice::kPort, AcpiPmDevice::kSize, pm, "acpi-pm").ok());

  constexpr size_t kStep = 7;
  for (size_t at = 0; at + kStep <= size; at += kStep) {
    const uint8_t kind = data[at];
    const size_t len = size_t{1} << (data[at + 1] % 4);
    const uint64_t port = AcpiPmDevice::kPort + data[at + 2] % 0x20;
    uint32_t value;
    std::memcpy(&value, data + at + 3, 4);
    const AcpiHotplug::Pending before = ged->pending();
    const int offs_before = power_offs, resets_before = resets;
    ejected.reset();
    switch (kind % 8) {
      case 5:
        ged->DeviceAdded(static_cast<uint8_t>(value));
        if ((value & 0xff) >= AcpiHotplug::kFirstSlot && (value & 0xff) <= AcpiHotplug::kLastSlot) {
          FUZZ_FAIL_IF(!(ged->pending().device_check & (1u << (value & 0xff))));
        } else {
          FUZZ_FAIL_IF(ged->pending().device_check != before.device_check);
        }
        break;
      case 6:
        ged->EjectRequest(static_cast<uint8_t>(value));
        if ((value & 0xff) < AcpiHotplug::kFirstSlot || (value & 0xff) > AcpiHotplug::kLastSlot) {
          FUZZ_FAIL_IF(ged->pending().eject_request != before.eject_request);
        }
        break;
      case 7:
        ged->PowerButton();
        FUZZ_FAIL_IF(!ged->pending().power_button);
        break;
      default: {
        uint8_t buf[8];
        std::memcpy(buf, &value, 4);
        std::memcpy(buf + 4, &value, 4);
        std::span<uint8_t> bytes(buf, len);
        if (kind & 0x80) {
          const std::vector<uint8_t> written(bytes.begin(), bytes.end());
          pio.Write(port, bytes);
          // Power off and reset only on the documented values.
          const uint64_t ctl = AcpiPmDevice::kPort + AcpiPmDevice::kSleepControl;
          const uint64_t rst = AcpiPmDevice::kPort + AcpiPmDevice::kReset;
          const bool pm_hit = port >= AcpiPmDevice::kPort &&
                              port + len <= AcpiPmDevice::kPort + AcpiPmDevice::kSize;
          const bool s5 = pm_hit && Covers(port, len, ctl) &&
                          (written[ctl - port] & AcpiPmDevice::kSleepEnable) &&
                          ((written[ctl - port] >> 2) & 7) == AcpiPmDevice::kS5SleepType;
          const bool reset =
              pm_hit && Covers(port, len, rst) && written[rst - port] == AcpiPmDevice::kResetValue;
          FUZZ_FAIL_IF(power_offs - offs_before != (s5 ? 1 : 0) ||
                       resets - resets_before != (reset ? 1 : 0));
          if (ejected.has_value()) {
            FUZZ_FAIL_IF(port != AcpiHotplug::kBase + AcpiHotplug::kEject || len != 4 ||
                         *ejected != value);
            FUZZ_FAIL_IF(*ejected < AcpiHotplug::kFirstSlot || *ejected > AcpiHotplug::kLastSlot);
            FUZZ_FAIL_IF(ged->pending().eject_request & (1u << *ejected));
          }
        } else {
          pio.Read(port, bytes);
          const bool in_ged =
              port >= AcpiHotplug::kBase && port + len <= AcpiHotplug::kBase + AcpiHotplug::kSize;
          if (in_ged && len != 4) {
            for (uint8_t b : bytes) {
              FUZZ_FAIL_IF(b != 0);
            }
          }
          if (in_ged && len == 4 && port == AcpiHotplug::kBase + AcpiHotplug::kStatus) {
            const AcpiHotplug::Pending p = ged->pending();
            const uint32_t want =
                ((p.device_check | p.eject_request) ? AcpiHotplug::kStatusPci : 0) |
                (p.power_button ? AcpiHotplug::kStatusPowerButton : 0);
            FUZZ_FAIL_IF(passage::LoadAccess(bytes) != want);
          }
        }
        break;
      }
    }
    FUZZ_FAIL_IF(ejected.has_value() &&
                 !(kind % 8 < 5 && (kind & 0x80)));  // only guest writes eject
    // The line: up exactly while something is pending, changed only on an edge.
    const AcpiHotplug::Pending p = ged->pending();
    const bool any = p.device_check != 0 || p.eject_request != 0 || p.power_button;
    FUZZ_FAIL_IF(p.irq_level != any);
    FUZZ_FAIL_IF(levels.empty() ? any : levels.back() != any);
    // It starts low: up, down, up, ...
    FUZZ_FAIL_IF(!levels.empty() && levels.back() != (levels.size() % 2 == 1));
  }
  return 0;
}
