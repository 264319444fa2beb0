#include "vmm/pci_platform.h"

#include "absl/strings/str_cat.h"
#include "devices/pci/pci_host_bridge.h"
#include "vmm/device_registry.h"

namespace passage {

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
  if (!device.ok()) return device.status();
  if (absl::Status s = bus_->Add(address, std::move(*device)); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("-device ", s.message()));
  }
  return absl::OkStatus();
}

PciPlatform::~PciPlatform() {
  if (ecam_registered_) (void)deps_.mmio->Unregister(kEcamStart);
  if (ports_registered_) (void)deps_.pio->Unregister(PciConfigPorts::kBase);
  bus_.reset();  // detaches every function (unmaps BARs) before the mapper goes
}

std::vector<PciFunctionInfo> PciPlatform::Describe() const {
  std::vector<PciFunctionInfo> out;
  for (const PciBus::Entry& e : bus_->Devices()) {
    PciFunctionInfo info{e.address, e.device->name(), e.device->ids(), e.intx_gsi, {}};
    for (int i = 0; i < PciDevice::kNumBarIndices; ++i) {
      const PciBarSpec* bar = e.device->bar_spec(i);
      if (bar == nullptr) continue;
      info.bars.push_back({i, bar->kind, bar->prefetchable, e.device->BarAddress(i), bar->size});
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
