#include "devices/pci/pci_bus.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace passage {

std::string PciAddress::ToString() const {
  return absl::StrFormat("%02x:%02x.%x", bus, slot, function);
}

uint32_t PciBus::IntxGsi(uint8_t slot, uint8_t pin) {
  if (pin < 1 || pin > 4) return 0;
  return kFirstIntxGsi + (slot + pin - 1u) % kIntxGsiCount;
}

PciBus::~PciBus() {
  for (auto& f : functions_) {
    if (f != nullptr) f->Detach();
  }
}

absl::Status PciBus::Add(const PciAddress& address, std::shared_ptr<PciDevice> device) {
  const std::string where = absl::StrCat(device->name(), " at ", address.ToString());
  if (address.bus != 0 || address.slot >= kSlots || address.function >= kFunctions) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": only bus 0, slots 0-31, functions 0-7"));
  }
  absl::MutexLock lock(&mu_);
  if (functions_[address.devfn()] != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat(where, ": ", address.ToString(), " is taken by ",
                                                 functions_[address.devfn()]->name()));
  }
  // Firmware's job: give every BAR an address and turn decoding on (the
  // expansion ROM gets an address too, but stays disabled).
  // What the functions already here use now: where the guest left their
  // BARs, which need not be where Add placed them.
  std::vector<GuestRange> in_use;
  for (const auto& f : functions_) {
    if (f == nullptr) continue;
    for (int i = 0; i < PciDevice::kNumBarIndices; ++i) {
      const PciBarSpec* bar = f->bar_spec(i);
      if (bar != nullptr && f->BarMapped(i)) in_use.push_back({f->BarAddress(i), bar->size});
    }
  }
  std::vector<uint64_t> placed;
  bool io = false;
  bool memory = false;
  for (int i = 0; i < PciDevice::kNumBarIndices; ++i) {
    const PciBarSpec* bar = device->bar_spec(i);
    if (bar == nullptr) continue;
    absl::StatusOr<uint64_t> at = allocator_.Allocate(bar->kind, bar->size, in_use);
    if (!at.ok()) {
      for (uint64_t p : placed) allocator_.Free(p);
      return absl::Status(at.status().code(),
                          absl::StrCat(where, ": ", i == PciDevice::kRomBar ? "expansion ROM" : absl::StrCat("BAR ", i),
                                       ": ", at.status().message()));
    }
    placed.push_back(*at);
    device->SetBarAddress(i, *at);
    (bar->kind == PciBarKind::kIo ? io : memory) = true;
  }
  device->EnableDecoding(io, memory);
  const uint32_t gsi = IntxGsi(address.slot, device->interrupt_pin());
  if (gsi != 0) device->ConfigWrite(0x3c, 1, gsi);  // interrupt line, as firmware leaves it
  if (absl::Status s = device->Attach(&decoder_, {gsi != 0 ? irq_ : nullptr, gsi}); !s.ok()) {
    device->Detach();
    for (uint64_t p : placed) allocator_.Free(p);
    return absl::Status(s.code(), absl::StrCat(where, ": ", s.message()));
  }
  for (int i = 0; i < PciDevice::kNumBars; ++i) {  // not the ROM: disabled
    if (device->bar_spec(i) != nullptr && !device->BarMapped(i)) {
      device->Detach();
      for (uint64_t p : placed) allocator_.Free(p);
      return absl::InternalError(absl::StrCat(where, ": BAR ", i, " at 0x",
                                              absl::Hex(device->BarAddress(i)), " could not be mapped"));
    }
  }
  // Functions other than 0 are only scanned when function 0 says multifunction.
  const uint8_t slot_base = static_cast<uint8_t>(address.slot << 3);
  bool others = false;
  for (int f = 1; f < kFunctions; ++f) others |= functions_[slot_base + f] != nullptr;
  if (address.function != 0 && functions_[slot_base] != nullptr) functions_[slot_base]->SetMultifunction(true);
  if (address.function == 0 && others) device->SetMultifunction(true);
  functions_[address.devfn()] = std::move(device);
  placed_[address.devfn()] = std::move(placed);
  return absl::OkStatus();
}

std::vector<std::shared_ptr<PciDevice>> PciBus::Remove(uint8_t slot) {
  std::vector<std::shared_ptr<PciDevice>> out;
  if (slot >= kSlots) return out;
  {
    absl::MutexLock lock(&mu_);
    for (int f = 0; f < kFunctions; ++f) {
      const int devfn = slot * kFunctions + f;
      if (functions_[devfn] == nullptr) continue;
      out.push_back(std::move(functions_[devfn]));
      functions_[devfn] = nullptr;
      for (uint64_t p : placed_[devfn]) allocator_.Free(p);
      placed_[devfn].clear();
    }
  }
  // Outside mu_: unmapping takes the decoder's and the buses' locks.
  for (const auto& d : out) d->Detach();
  return out;
}

std::optional<PciAddress> PciBus::FreeSlot() const {
  absl::MutexLock lock(&mu_);
  for (int s = 1; s < kSlots; ++s) {
    bool used = false;
    for (int f = 0; f < kFunctions; ++f) used |= functions_[s * kFunctions + f] != nullptr;
    if (!used) return PciAddress{0, static_cast<uint8_t>(s), 0};
  }
  return std::nullopt;
}

std::shared_ptr<PciDevice> PciBus::Find(uint8_t bus, uint8_t devfn) const {
  if (bus != 0) return nullptr;
  absl::MutexLock lock(&mu_);
  return functions_[devfn];
}

uint32_t PciBus::ConfigRead(uint8_t bus, uint8_t devfn, uint32_t offset, uint32_t size) const {
  std::shared_ptr<PciDevice> d = Find(bus, devfn);
  if (d == nullptr || !PciConfigSpace::ValidAccess(offset, size)) {
    return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  }
  return d->ConfigRead(offset, size);
}

void PciBus::ConfigWrite(uint8_t bus, uint8_t devfn, uint32_t offset, uint32_t size,
                         uint32_t value) {
  std::shared_ptr<PciDevice> d = Find(bus, devfn);
  if (d == nullptr || !PciConfigSpace::ValidAccess(offset, size)) return;
  d->ConfigWrite(offset, size, value);
}

std::vector<PciBus::Entry> PciBus::Devices() const {
  absl::MutexLock lock(&mu_);
  std::vector<Entry> out;
  for (int i = 0; i < kSlots * kFunctions; ++i) {
    if (functions_[i] == nullptr) continue;
    const PciAddress a{0, static_cast<uint8_t>(i >> 3), static_cast<uint8_t>(i & 7)};
    out.push_back({a, functions_[i], IntxGsi(a.slot, functions_[i]->interrupt_pin())});
  }
  return out;
}

}  // namespace passage
