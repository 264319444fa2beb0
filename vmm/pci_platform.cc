#include "vmm/pci_platform.h"

#include <fcntl.h>
#include <linux/kvm.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "devices/pci/pci_host_bridge.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtio_rng.h"
#include "vmm/kvm.h"
#include "vmm/kvm_device_memory.h"
#include "vmm/kvm_irq.h"

namespace passage {
namespace {

absl::Status Named(const DeviceConfig& config, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(config.Label(), ": ", s.message()));
}

absl::StatusOr<UniqueFd> OpenRngSource(const DeviceConfig& config) {
  if (auto fd = config.props.find("fd"); fd != config.props.end()) {
    const int n = std::stoi(fd->second);  // checked by ParseDeviceConfig
    // A private copy: the passed descriptor stays the caller's.
    UniqueFd copy(::fcntl(n, F_DUPFD_CLOEXEC, 3));
    if (!copy.valid()) return ErrnoError(absl::StrCat("fd=", n));
    return copy;
  }
  std::string path = "/dev/urandom";
  if (auto f = config.props.find("filename"); f != config.props.end()) path = f->second;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return ErrnoError(absl::StrCat("filename=", absl::CEscape(path)));
  return fd;
}

}  // namespace

absl::StatusOr<std::shared_ptr<PciDevice>> CreatePciDevice(const DeviceConfig& config,
                                                           const PciPlatform::Deps& deps) {
  const std::string name = config.Label().substr(std::string("-device ").size());
  if (config.driver == "virtio-rng-pci") {
    absl::StatusOr<UniqueFd> source = OpenRngSource(config);
    if (!source.ok()) return Named(config, source.status());
    absl::StatusOr<std::unique_ptr<VirtioRng>> rng = VirtioRng::Create(std::move(*source));
    if (!rng.ok()) return Named(config, rng.status());
    absl::StatusOr<std::shared_ptr<VirtioPciDevice>> d =
        VirtioPciDevice::Create(name, std::move(*rng), *deps.memory, *deps.irq);
    if (!d.ok()) return Named(config, d.status());
    return std::shared_ptr<PciDevice>(std::move(*d));
  }
  if (deps.create_device) return deps.create_device(config, *deps.irq);
  return absl::InvalidArgumentError(absl::StrCat(config.Label(), ": no such device"));
}

absl::StatusOr<std::unique_ptr<PciPlatform>> PciPlatform::CreateForKvm(
    const VmConfig& config, int vm_fd, GuestMemory& memory, IoBus& pio, IoBus& mmio,
    PciDeviceFactory create_device) {
  const int routes = Ioctl(vm_fd, KVM_CHECK_EXTENSION, static_cast<unsigned long>(KVM_CAP_IRQ_ROUTING));
  const int slots = Ioctl(vm_fd, KVM_CHECK_EXTENSION, static_cast<unsigned long>(KVM_CAP_NR_MEMSLOTS));
  if (routes <= static_cast<int>(kIoapicPins)) {
    return absl::FailedPreconditionError("KVM has no GSI routing (KVM_CAP_IRQ_ROUTING)");
  }
  auto irq = std::make_unique<KvmIrqRouting>(vm_fd, static_cast<uint32_t>(routes));
  auto device_memory = std::make_unique<KvmDeviceMemory>(vm_fd, static_cast<uint32_t>(std::max(slots, 0)));
  Deps deps{&memory, &pio, &mmio, irq.get(), device_memory.get(), std::move(create_device)};
  return Build(config, deps, std::move(irq), std::move(device_memory));
}

absl::StatusOr<std::unique_ptr<PciPlatform>> PciPlatform::Create(const VmConfig& config, const Deps& deps) {
  return Build(config, deps, nullptr, nullptr);
}

absl::StatusOr<std::unique_ptr<PciPlatform>> PciPlatform::Build(
    const VmConfig& config, const Deps& deps, std::unique_ptr<InterruptController> owned_irq,
    std::unique_ptr<DeviceMemoryMapper> owned_device_memory) {
  std::unique_ptr<PciPlatform> p(new PciPlatform(DefaultPciWindows(deps.memory->ram_size()), deps));
  // Declared before the bus, so destroyed after it.
  p->owned_irq_ = std::move(owned_irq);
  p->owned_device_memory_ = std::move(owned_device_memory);
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
  absl::StatusOr<std::shared_ptr<PciDevice>> device = CreatePciDevice(config, deps_);
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
