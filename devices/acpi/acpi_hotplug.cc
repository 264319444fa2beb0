#include "devices/acpi/acpi_hotplug.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "devices/acpi/aml.h"

namespace passage {
namespace {

// Bits 1..31: the slots that have an Sxx in the DSDT.
constexpr uint32_t kSlotMask = ~uint32_t{1};

bool ValidSlot(uint32_t slot) {
  return slot >= AcpiHotplug::kFirstSlot && slot <= AcpiHotplug::kLastSlot;
}

}  // namespace

AcpiHotplug::AcpiHotplug(std::function<void(bool level)> set_irq,
                         std::function<void(uint8_t slot)> on_eject)
    : set_irq_(std::move(set_irq)), on_eject_(std::move(on_eject)) {}

uint32_t AcpiHotplug::StatusLocked() const {
  return ((device_check_ | eject_request_) != 0 ? kStatusPci : 0) |
         (power_button_ ? kStatusPowerButton : 0);
}

void AcpiHotplug::UpdateIrqLocked() {
  const bool level = StatusLocked() != 0;
  if (level == irq_level_) return;
  irq_level_ = level;
  set_irq_(level);
}

void AcpiHotplug::DeviceAdded(uint8_t slot) {
  if (!ValidSlot(slot)) return;
  absl::MutexLock lock(&mu_);
  device_check_ |= 1u << slot;
  UpdateIrqLocked();
}

void AcpiHotplug::EjectRequest(uint8_t slot) {
  if (!ValidSlot(slot)) return;
  absl::MutexLock lock(&mu_);
  eject_request_ |= 1u << slot;
  UpdateIrqLocked();
}

void AcpiHotplug::PowerButton() {
  absl::MutexLock lock(&mu_);
  power_button_ = true;
  UpdateIrqLocked();
}

AcpiHotplug::Pending AcpiHotplug::pending() const {
  absl::MutexLock lock(&mu_);
  return {device_check_, eject_request_, power_button_, irq_level_};
}

void AcpiHotplug::Read(uint64_t offset, std::span<uint8_t> data) {
  uint32_t value = 0;
  // Only whole, aligned registers (the AML's DWordAcc fields); anything else reads 0.
  if (data.size() == 4) {
    absl::MutexLock lock(&mu_);
    switch (offset) {
      case kStatus: value = StatusLocked(); break;
      case kDeviceCheck: value = device_check_; break;
      case kEjectRequest: value = eject_request_; break;
      default: break;  // kEject and unknown offsets
    }
  }
  std::fill(data.begin(), data.end(), 0);
  StoreAccess(value, data);
}

void AcpiHotplug::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.size() != 4) return;
  const uint32_t value = static_cast<uint32_t>(LoadAccess(data));
  std::optional<uint8_t> ejected;
  {
    absl::MutexLock lock(&mu_);
    switch (offset) {
      case kStatus:
        if (value & kStatusPowerButton) power_button_ = false;
        break;
      case kDeviceCheck: device_check_ &= ~(value & kSlotMask); break;
      case kEjectRequest: eject_request_ &= ~(value & kSlotMask); break;
      case kEject:
        if (ValidSlot(value)) {
          // The guest let go of the slot: a request it had is answered.
          eject_request_ &= ~(1u << value);
          ejected = static_cast<uint8_t>(value);
        }
        break;
      default: break;
    }
    UpdateIrqLocked();
  }
  if (ejected.has_value()) on_eject_(*ejected);
}

namespace acpi {
namespace {

constexpr char kGed[] = "\\_SB.GED_";
constexpr char kPowerButton[] = "\\_SB.PWRB";
constexpr char kPciNotify[] = "\\_SB.PCI0.PCNT";
// The fields over the register block, in \_SB.GED_.
constexpr char kFieldStatus[] = "\\_SB.GED_.GSTA", kFieldDeviceCheck[] = "\\_SB.GED_.PCIU",
               kFieldEjectRequest[] = "\\_SB.GED_.PCID", kFieldEject[] = "\\_SB.GED_.PCEJ";
constexpr uint64_t kNotifyDeviceCheck = 1, kNotifyEjectRequest = 3, kNotifyPowerButton = 0x80;

std::string SlotName(uint8_t slot) { return absl::StrFormat("S%02X", slot); }

// Collects the first error of a series of StatusOr terms.
class Terms {
 public:
  void Add(absl::StatusOr<aml::Bytes> term) {
    if (!term.ok()) {
      if (status_.ok()) status_ = term.status();
      return;
    }
    terms_.push_back(std::move(*term));
  }
  void Add(aml::Bytes term) { terms_.push_back(std::move(term)); }
  const absl::Status& status() const { return status_; }
  std::vector<aml::Bytes>& terms() { return terms_; }

 private:
  absl::Status status_;
  std::vector<aml::Bytes> terms_;
};

// A Ref that is known to be well formed (the constants above).
aml::Bytes R(absl::string_view path) {
  absl::StatusOr<aml::Bytes> r = aml::Ref(path);
  return r.ok() ? *r : aml::Bytes{};
}

}  // namespace

absl::StatusOr<HotplugAml> BuildHotplugAml(const HotplugInfo& info, bool pci) {
  HotplugAml out;

  // \_SB.GED_: the interrupt, the register block, and _EVT dispatching on
  // the status bits.
  Terms evt;
  evt.Add(aml::Store(R(kFieldStatus), aml::Local(0)));
  evt.Add(aml::If(aml::And(aml::Local(0), aml::Integer(AcpiHotplug::kStatusPowerButton)),
                  {aml::Store(aml::Integer(AcpiHotplug::kStatusPowerButton), R(kFieldStatus)),
                   aml::Notify(R(kPowerButton), aml::Integer(kNotifyPowerButton))}));
  if (pci) {
    evt.Add(aml::If(aml::And(aml::Local(0), aml::Integer(AcpiHotplug::kStatusPci)), {R(kPciNotify)}));
  }
  if (!evt.status().ok()) return evt.status();
  absl::StatusOr<aml::Bytes> hid = aml::EisaId("PNP0C0C");
  if (!hid.ok()) return hid.status();
  Terms ged;
  ged.Add(aml::Name("_HID", aml::String("ACPI0013")));
  ged.Add(aml::Name("_UID", aml::Integer(0)));
  // Level-triggered, active high: asserted while a status bit is pending.
  ged.Add(aml::Name("_CRS", aml::ResourceTemplate({aml::ExtendedInterrupt(
                                 /*edge=*/false, /*active_low=*/false, /*shared=*/false, info.gsi)})));
  ged.Add(aml::OperationRegion("GREG", aml::RegionSpace::kSystemIo, info.port, AcpiHotplug::kSize));
  ged.Add(aml::Field("GREG", aml::FieldAccess::kDWord, aml::FieldUpdate::kWriteAsZeros,
                     {{"GSTA", 32}, {"PCIU", 32}, {"PCID", 32}, {"PCEJ", 32}}));
  ged.Add(aml::Method("_EVT", 1, /*serialized=*/true, evt.terms()));
  if (!ged.status().ok()) return ged.status();
  absl::StatusOr<aml::Bytes> ged_dev = aml::Device("GED_", ged.terms());
  if (!ged_dev.ok()) return ged_dev.status();

  // \_SB.PWRB: the power button as a control-method device.
  Terms pwrb;
  pwrb.Add(aml::Name("_HID", *hid));
  pwrb.Add(aml::Name("_UID", aml::Integer(0)));
  if (!pwrb.status().ok()) return pwrb.status();
  absl::StatusOr<aml::Bytes> pwrb_dev = aml::Device("PWRB", pwrb.terms());
  if (!pwrb_dev.ok()) return pwrb_dev.status();
  out.sb_terms = {std::move(*ged_dev), std::move(*pwrb_dev)};
  if (!pci) return out;

  // In \_SB.PCI0: PCNT takes the pending bitmaps, clears what it took
  // (write-1-to-clear, so a bit set meanwhile stays for the next round) and
  // notifies each slot; one Sxx per hotpluggable slot.
  Terms pcnt;
  pcnt.Add(aml::Store(R(kFieldDeviceCheck), aml::Local(0)));
  pcnt.Add(aml::Store(R(kFieldEjectRequest), aml::Local(1)));
  pcnt.Add(aml::Store(aml::Local(0), R(kFieldDeviceCheck)));
  pcnt.Add(aml::Store(aml::Local(1), R(kFieldEjectRequest)));
  Terms slots;
  for (uint8_t slot = AcpiHotplug::kFirstSlot; slot <= AcpiHotplug::kLastSlot; ++slot) {
    const std::string name = SlotName(slot);
    absl::StatusOr<aml::Bytes> ref = aml::Ref(name);
    if (!ref.ok()) return ref.status();
    const aml::Bytes bit = aml::Integer(uint64_t{1} << slot);
    pcnt.Add(aml::If(aml::And(aml::Local(0), bit), {aml::Notify(*ref, aml::Integer(kNotifyDeviceCheck))}));
    pcnt.Add(aml::If(aml::And(aml::Local(1), bit), {aml::Notify(*ref, aml::Integer(kNotifyEjectRequest))}));
    Terms s;
    s.Add(aml::Name("_ADR", aml::Integer(uint64_t{slot} << 16)));  // all functions of the slot
    s.Add(aml::Name("_SUN", aml::Integer(slot)));
    // _EJ0(Arg0): the guest has released the device; tell passage which slot.
    s.Add(aml::Method("_EJ0", 1, /*serialized=*/false, {aml::Store(aml::Integer(slot), R(kFieldEject))}));
    if (!s.status().ok()) return s.status();
    slots.Add(aml::Device(name, s.terms()));
  }
  if (!pcnt.status().ok()) return pcnt.status();
  if (!slots.status().ok()) return slots.status();
  absl::StatusOr<aml::Bytes> pcnt_method = aml::Method("PCNT", 0, /*serialized=*/true, pcnt.terms());
  if (!pcnt_method.ok()) return pcnt_method.status();
  out.pci0_terms.push_back(std::move(*pcnt_method));
  for (aml::Bytes& s : slots.terms()) out.pci0_terms.push_back(std::move(s));
  return out;
}

}  // namespace acpi

}  // namespace passage
