#include "vmm/pci_platform.h"

#include <atomic>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "devices/pci/pci_host_bridge.h"
#include "vmm/device_registry.h"
#include "vmm/passthrough.h"

namespace passage {
namespace {

// How long Remove waits for a vCPU access in flight to let go of a removed
// device (an access is one config or BAR read/write: microseconds).
constexpr absl::Duration kInFlightWait = absl::Seconds(1);

}  // namespace

absl::StatusOr<std::unique_ptr<PciPlatform>> PciPlatform::Create(const VmConfig& config, const Deps& deps) {
  std::unique_ptr<PciPlatform> p(new PciPlatform(DefaultPciWindows(deps.memory->ram_size()), deps));
  p->allocator_ = std::make_unique<PciBarAllocator>(p->windows_);
  p->mapper_ = std::make_unique<PciBarMapper>(p->windows_, *deps.pio, *deps.mmio, deps.device_memory);
  p->bus_ = std::make_unique<PciBus>(*p->allocator_, *p->mapper_, deps.irq);
  if (absl::Status s = p->bus_->Add({0, 0, 0}, std::make_shared<PciHostBridge>()); !s.ok()) return s;
  if (absl::Status s = deps.pio->Register(PciConfigPorts::kBase, PciConfigPorts::kSize,
                                          std::make_shared<PciConfigPorts>(*p->bus_), "PCI config ports");
      !s.ok()) {
    return s;
  }
  p->ports_registered_ = true;
  if (absl::Status s = deps.mmio->Register(kEcamStart, kEcamSize, std::make_shared<PciEcam>(*p->bus_), "PCI ECAM");
      !s.ok()) {
    return s;
  }
  p->ecam_registered_ = true;
  for (const DeviceConfig& d : config.device_configs) {
    if (!d.addr) continue;
    if (absl::Status s = p->AddDevice(d, {0, d.addr->slot, d.addr->function}); !s.ok()) return s;
  }
  for (const DeviceConfig& d : config.device_configs) {
    if (d.addr) continue;
    std::optional<PciAddress> free = p->bus_->FreeSlot();
    if (!free) return absl::ResourceExhaustedError(absl::StrCat(d.Label(), ": no free PCI slot"));
    if (absl::Status s = p->AddDevice(d, *free); !s.ok()) return s;
  }
  return p;
}

absl::Status PciPlatform::AddDevice(const DeviceConfig& config, const PciAddress& address) {
  absl::StatusOr<std::shared_ptr<PciDevice>> device =
      CreateDevice(config, {deps_.memory, deps_.irq, deps_.passthrough, deps_.fds});
  if (!device.ok()) {
    if (deps_.passthrough != nullptr) deps_.passthrough->ReleaseUnused();  // a container made for it
    return device.status();
  }
  if (absl::Status s = bus_->Add(address, std::move(*device)); !s.ok()) {
    if (deps_.passthrough != nullptr) deps_.passthrough->ReleaseUnused();
    return absl::Status(s.code(), absl::StrCat("-device ", s.message()));
  }
  absl::MutexLock lock(&records_mu_);
  records_[address.devfn()] = MakeRecord(config, false);
  return absl::OkStatus();
}

PciPlatform::Record PciPlatform::MakeRecord(const DeviceConfig& config, bool hotplugged) {
  if (!config.id.empty()) return {config.id, absl::StrCat("/machine/peripheral/", config.id), hotplugged};
  return {"", absl::StrCat("/machine/peripheral-anon/device[", anon_devices_++, "]"), hotplugged};
}

absl::StatusOr<uint8_t> PciPlatform::HotAdd(const DeviceConfig& config, PassedFds& fds) {
  PciAddress address;
  {
    absl::MutexLock lock(&records_mu_);
    if (!config.id.empty()) {
      for (const auto& [devfn, r] : records_) {
        if (r.id == config.id) {
          return absl::InvalidArgumentError(absl::StrCat("device_add: id '", config.id, "' is already in use"));
        }
      }
    }
  }
  if (config.addr) {
    // ACPI hotplug signals whole slots; slot 0 is the host bridge.
    if (config.addr->function != 0 || config.addr->slot == 0 || config.addr->slot >= PciBus::kSlots) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "device_add: addr=%x.%x: hotplug takes function 0 of a slot from 1 to 1f",
          config.addr->slot, config.addr->function));
    }
    address = {0, config.addr->slot, 0};
    for (const PciBus::Entry& e : bus_->Devices()) {
      if (e.address.slot == address.slot) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "device_add: addr=%x: slot %02x is taken by %s", config.addr->slot, address.slot, e.device->name()));
      }
    }
  } else {
    std::optional<PciAddress> free = bus_->FreeSlot();
    if (!free) return absl::ResourceExhaustedError(absl::StrCat("device_add: ", config.Label(), ": no free PCI slot"));
    address = *free;
  }
  // The device's fd= (if any) is the device's from here, closed on error.
  absl::StatusOr<std::shared_ptr<PciDevice>> device =
      CreateDevice(config, {deps_.memory, deps_.irq, deps_.passthrough, &fds});
  if (!device.ok()) {
    if (deps_.passthrough != nullptr) deps_.passthrough->ReleaseUnused();  // a container made for it
    return device.status();
  }
  // Bus::Add undoes its own steps on error; the device then goes with
  // `device` (interrupts off, VFIO closed).
  if (absl::Status s = bus_->Add(address, std::move(*device)); !s.ok()) {
    if (deps_.passthrough != nullptr) deps_.passthrough->ReleaseUnused();
    return absl::Status(s.code(), absl::StrCat("device_add: ", s.message()));
  }
  absl::MutexLock lock(&records_mu_);
  records_[address.devfn()] = MakeRecord(config, true);
  return address.slot;
}

absl::StatusOr<std::vector<PciFunctionInfo>> PciPlatform::Remove(uint8_t slot) {
  if (slot == 0 || slot >= PciBus::kSlots) {
    return absl::InvalidArgumentError(absl::StrCat("slot ", slot, " cannot be removed"));
  }
  std::vector<PciFunctionInfo> removed;
  for (PciFunctionInfo& f : Describe()) {
    if (f.address.slot == slot) removed.push_back(std::move(f));
  }
  if (removed.empty()) return absl::NotFoundError(absl::StrCat("slot ", slot, " is empty"));
  std::vector<std::weak_ptr<PciDevice>> gone;
  {
    std::vector<std::shared_ptr<PciDevice>> devices = bus_->Remove(slot);
    for (const auto& d : devices) gone.push_back(d);
  }  // the devices are destroyed here, unless a vCPU access still holds one
  {
    absl::MutexLock lock(&records_mu_);
    for (const PciFunctionInfo& f : removed) records_.erase(f.address.devfn());
  }
  // An access in flight ends within microseconds; the last holder then
  // destroys the device. Waiting here makes the teardown (and a legacy
  // container's close below) happen now, on this thread.
  const absl::Time deadline = absl::Now() + kInFlightWait;
  for (const auto& w : gone) {
    while (!w.expired() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
    if (!w.expired()) {
      std::fprintf(stderr, "passage: warning: slot %02x: a device is still in use by a vCPU after %s; it closes when that access ends\n",
                   slot, absl::FormatDuration(kInFlightWait).c_str());
    }
  }
  std::atomic_thread_fence(std::memory_order_acquire);  // pairs with the holder's release
  if (deps_.passthrough != nullptr) deps_.passthrough->ReleaseUnused();
  return removed;
}

std::optional<PciFunctionInfo> PciPlatform::Find(const std::string& name) const {
  if (name.empty()) return std::nullopt;
  for (PciFunctionInfo& f : Describe()) {
    if (f.id == name || f.qom_path == name) return std::move(f);
  }
  return std::nullopt;
}

PciPlatform::~PciPlatform() {
  if (ecam_registered_) (void)deps_.mmio->Unregister(kEcamStart);
  if (ports_registered_) (void)deps_.pio->Unregister(PciConfigPorts::kBase);
  bus_.reset();  // detaches every function (unmaps BARs) before the mapper goes
}

std::vector<PciFunctionInfo> PciPlatform::Describe() const {
  std::vector<PciFunctionInfo> out;
  for (const PciBus::Entry& e : bus_->Devices()) {
    PciFunctionInfo info;
    info.address = e.address;
    info.name = e.device->name();
    info.ids = e.device->ids();
    info.intx_gsi = e.intx_gsi;
    {
      absl::MutexLock lock(&records_mu_);
      if (auto it = records_.find(e.address.devfn()); it != records_.end()) {
        info.id = it->second.id;
        info.qom_path = it->second.qom_path;
        info.hotplugged = it->second.hotplugged;
      }
    }
    for (int i = 0; i < PciDevice::kNumBarIndices; ++i) {
      const PciBarSpec* bar = e.device->bar_spec(i);
      if (bar == nullptr) continue;
      info.bars.push_back({i, bar->kind, bar->prefetchable, e.device->BarAddress(i), bar->size,
                           e.device->BarMapped(i)});
    }
    out.push_back(std::move(info));
  }
  return out;
}

acpi::PciHostInfo PciPlatform::AcpiInfo() const {
  acpi::PciHostInfo info;
  info.ecam_base = kEcamStart;
  info.bus_start = info.bus_end = 0;
  info.config_port = PciConfigPorts::kBase;
  info.io_min = static_cast<uint16_t>(windows_.io.gpa);
  info.io_max = static_cast<uint16_t>(windows_.io.end() - 1);
  info.mmio32_min = static_cast<uint32_t>(windows_.mmio32.gpa);
  info.mmio32_max = static_cast<uint32_t>(windows_.mmio32.end() - 1);
  info.mmio64_min = windows_.mmio64.gpa;
  info.mmio64_max = windows_.mmio64.end() - 1;
  for (uint8_t slot = 0; slot < PciBus::kSlots; ++slot) {
    for (uint8_t pin = 1; pin <= 4; ++pin) {
      info.routes.push_back({slot, static_cast<uint8_t>(pin - 1), PciBus::IntxGsi(slot, pin)});
    }
  }
  return info;
}

}  // namespace passage
