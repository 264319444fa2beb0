// ACPI PCI hotplug and the ACPI power button, signalled through a Generic
// Event Device (ACPI 6.x, 5.6.9: _HID ACPI0013), the hardware-reduced
// replacement for GPEs. The DSDT (acpi_tables.cc, HotplugAml below) has
// \_SB.GED_ whose _EVT reads this device's status, \_SB.PCI0.Sxx for slots
// 1..31 (_ADR, _SUN, _EJ0) with a method \_SB.PCI0.PCNT that notifies them,
// and the power button \_SB.PWRB (PNP0C0C).
//
// Register block: port I/O at kBase (a SystemIO OperationRegion in the AML,
// next to the AcpiPmDevice ports, outside the PCI I/O window; port I/O needs
// no e820 hole or MMIO window space). Every register is 32 bits wide; other
// access sizes or offsets read 0 and ignore writes.
//   +0x0 kStatus   R: bit 0 kStatusPci (a slot bit is pending below, derived),
//                  bit 1 kStatusPowerButton (latched). W: write-1-to-clear
//                  of the power-button bit (bit 0 clears with the bitmaps).
//   +0x4 kDeviceCheck  R: slots with a pending "device check" (bit n = slot
//                      n). W: write-1-to-clear.
//   +0x8 kEjectRequest R: slots with a pending "eject request". W: W1C.
//   +0xc kEject    W: a slot number (1..31) from that slot's _EJ0: the
//                  guest has let go of the device; on_eject(slot) runs. R: 0.
// Interrupt: GSI kGsi, level-triggered, active high (a MADT interrupt source
// override says so, see acpi_tables.cc), asserted while any status bit is
// pending.
#ifndef PASSAGE_DEVICES_ACPI_ACPI_HOTPLUG_H_
#define PASSAGE_DEVICES_ACPI_ACPI_HOTPLUG_H_

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/io_bus.h"

namespace passage {

// Slot-level hotplug events to the guest, on bus 0 (slot 0..31).
class HotplugSignaller {
 public:
  virtual ~HotplugSignaller() = default;
  virtual void DeviceAdded(uint8_t slot) = 0;   // guest gets "device check" on the slot: it rescans, binds a driver
  virtual void EjectRequest(uint8_t slot) = 0;  // guest gets "eject request": it unbinds, then calls _EJ0
};

class AcpiHotplug : public IoHandler, public HotplugSignaller {
 public:
  static constexpr uint64_t kBase = 0x610;  // port I/O
  static constexpr uint64_t kSize = 0x10;
  static constexpr uint64_t kStatus = 0x0, kDeviceCheck = 0x4, kEjectRequest = 0x8, kEject = 0xc;
  static constexpr uint32_t kStatusPci = 1u << 0, kStatusPowerButton = 1u << 1;
  // ISA IRQ 9 / GSI 9: the ISA slot PCs gave the ACPI SCI (QEMU keeps it
  // there, level/active-high by an override), unused by passage's ISA devices
  // (PIT 0->2, COM1 4, RTC 8) and outside the PCI INTx GSIs (16..23) and the
  // MSI GSIs (24..). The IOAPIC has only 24 pins, so a dedicated line has to
  // be an ISA one.
  static constexpr uint32_t kGsi = 9;
  static constexpr uint8_t kFirstSlot = 1, kLastSlot = 31;  // slot 0: the host bridge

  // set_irq: the GED interrupt line level. on_eject(slot): called on a vCPU
  // thread when the guest's _EJ0 writes the eject register (the VMM then
  // detaches the device, asynchronously). on_eject runs without this
  // device's lock held (it may call back in); set_irq runs with it held, so
  // levels reach the line in order.
  AcpiHotplug(std::function<void(bool level)> set_irq, std::function<void(uint8_t slot)> on_eject);

  // Slots outside kFirstSlot..kLastSlot are ignored (no Sxx in the DSDT).
  void DeviceAdded(uint8_t slot) override ABSL_LOCKS_EXCLUDED(mu_);
  void EjectRequest(uint8_t slot) override ABSL_LOCKS_EXCLUDED(mu_);
  void PowerButton() ABSL_LOCKS_EXCLUDED(mu_);  // system_powerdown: Notify(\_SB.PWRB, 0x80) through the GED

  void Read(uint64_t offset, std::span<uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);
  void Write(uint64_t offset, std::span<const uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);

  // What the guest has not consumed yet (for queries and tests).
  struct Pending {
    uint32_t device_check = 0;
    uint32_t eject_request = 0;
    bool power_button = false;
    bool irq_level = false;
  };
  Pending pending() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  uint32_t StatusLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateIrqLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<void(bool)> set_irq_;
  const std::function<void(uint8_t)> on_eject_;
  mutable absl::Mutex mu_;
  uint32_t device_check_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t eject_request_ ABSL_GUARDED_BY(mu_) = 0;
  bool power_button_ ABSL_GUARDED_BY(mu_) = false;
  bool irq_level_ ABSL_GUARDED_BY(mu_) = false;
};

namespace acpi {

// Where the DSDT finds the device (AcpiConfig::hotplug).
struct HotplugInfo {
  uint16_t port = AcpiHotplug::kBase;
  uint32_t gsi = AcpiHotplug::kGsi;
};

// The AML for \_SB: Device(GED_) (its _CRS, the register block as fields
// GSTA/PCIU/PCID/PCEJ, _EVT) and Device(PWRB); and, when `pci` is true, the
// terms that go inside Device(PCI0): method PCNT and Device(S01)..(S1F).
struct HotplugAml {
  std::vector<std::vector<uint8_t>> sb_terms;    // into Scope(\_SB)
  std::vector<std::vector<uint8_t>> pci0_terms;  // into Device(PCI0)
};
absl::StatusOr<HotplugAml> BuildHotplugAml(const HotplugInfo& info, bool pci);

}  // namespace acpi

}  // namespace passage

#endif  // PASSAGE_DEVICES_ACPI_ACPI_HOTPLUG_H_
