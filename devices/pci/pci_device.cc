#include "devices/pci/pci_device.h"

#include <linux/pci_regs.h>

#include "absl/strings/str_cat.h"
#include "devices/guest_error.h"

namespace passage {
namespace {

constexpr uint32_t kBarOffset0 = PCI_BASE_ADDRESS_0;
constexpr uint16_t kCommandWritable = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                      PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
                                      PCI_COMMAND_INTX_DISABLE;
constexpr uint16_t kStatusW1c = PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT |
                                PCI_STATUS_REC_TARGET_ABORT | PCI_STATUS_REC_MASTER_ABORT |
                                PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY;

bool Overlaps(uint32_t a, uint32_t a_size, uint32_t b, uint32_t b_size) {
  return a < b + b_size && b < a + a_size;
}

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Config offset of BAR `index`'s (low) register.
uint32_t BarRegister(int index) {
  return index == PciDevice::kRomBar ? PCI_ROM_ADDRESS
                                     : kBarOffset0 + 4 * static_cast<uint32_t>(index);
}

}  // namespace

const char* PciBarKindName(PciBarKind kind) {
  switch (kind) {
    case PciBarKind::kIo: return "io";
    case PciBarKind::kMem32: return "mem32";
    case PciBarKind::kMem64: return "mem64";
  }
  return "?";
}

PciDevice::PciDevice(std::string name, const PciIds& ids)
    : name_(std::move(name)), ids_(ids), interrupt_pin_(ids.interrupt_pin) {
  absl::MutexLock lock(&mu_);
  config_.Set16(PCI_VENDOR_ID, ids.vendor);
  config_.Set16(PCI_DEVICE_ID, ids.device);
  config_.Set8(PCI_REVISION_ID, ids.revision);
  config_.Set8(PCI_CLASS_PROG, static_cast<uint8_t>(ids.class_code));
  config_.Set16(PCI_CLASS_DEVICE, static_cast<uint16_t>(ids.class_code >> 8));
  config_.Set16(PCI_SUBSYSTEM_VENDOR_ID, ids.subsystem_vendor);
  config_.Set16(PCI_SUBSYSTEM_ID, ids.subsystem);
  config_.Set8(PCI_HEADER_TYPE, PCI_HEADER_TYPE_NORMAL);
  config_.Set8(PCI_INTERRUPT_PIN, ids.interrupt_pin);
  config_.SetWritable(PCI_COMMAND, 2, kCommandWritable);
  config_.SetWriteOneToClear(PCI_STATUS, 2, kStatusW1c);
  config_.SetWritable(PCI_CACHE_LINE_SIZE, 1, 0xff);
  config_.SetWritable(PCI_LATENCY_TIMER, 1, 0xff);
  config_.SetWritable(PCI_INTERRUPT_LINE, 1, 0xff);
}

absl::Status PciDevice::DeclareBar(int index, PciBarSpec spec) {
  const int slots = spec.kind == PciBarKind::kMem64 ? 2 : 1;
  const bool rom = index == kRomBar;
  if (index < 0 || (!rom && index + slots > kNumBars) ||
      (rom && (spec.kind != PciBarKind::kMem32 || spec.prefetchable))) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": BAR ", index, " out of range"));
  }
  for (int i = index; i < index + slots; ++i) {
    if (specs_[i].has_value() || upper_half_[i]) {
      return absl::AlreadyExistsError(absl::StrCat(name_, ": BAR ", i, " declared twice"));
    }
  }
  const uint64_t min_size = spec.kind == PciBarKind::kIo ? 4 : 4096;
  const uint64_t max_size = spec.kind == PciBarKind::kIo   ? 256
                            : spec.kind == PciBarKind::kMem32 ? (1ull << 31)
                                                              : (1ull << 63);
  if (!IsPowerOfTwo(spec.size) || spec.size < min_size || spec.size > max_size) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": BAR ", index, " size 0x",
                                                   absl::Hex(spec.size), " is not a power of two in [0x",
                                                   absl::Hex(min_size), ", 0x", absl::Hex(max_size), "]"));
  }
  for (const PciBarMmap& m : spec.mmaps) {
    if (m.size == 0 || m.offset % 4096 || m.size % 4096 || m.offset > spec.size ||
        m.size > spec.size - m.offset || m.host == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": BAR ", index, " mmap at 0x",
                                                     absl::Hex(m.offset), " is not page-aligned inside the BAR"));
    }
  }
  const uint32_t reg = BarRegister(index);
  if (rom) {
    absl::MutexLock lock(&mu_);
    config_.Set32(reg, 0);
    config_.SetWritable(reg, 4, (static_cast<uint32_t>(~(spec.size - 1)) & PCI_ROM_ADDRESS_MASK) |
                                    PCI_ROM_ADDRESS_ENABLE);
    specs_[index] = std::move(spec);
    return absl::OkStatus();
  }
  uint32_t flags = 0;
  uint32_t low_mask = 0;
  switch (spec.kind) {
    case PciBarKind::kIo:
      flags = PCI_BASE_ADDRESS_SPACE_IO;
      low_mask = static_cast<uint32_t>(~(spec.size - 1)) & ~3u;
      break;
    case PciBarKind::kMem32:
      flags = PCI_BASE_ADDRESS_MEM_TYPE_32;
      low_mask = static_cast<uint32_t>(~(spec.size - 1)) & ~0xfu;
      break;
    case PciBarKind::kMem64:
      flags = PCI_BASE_ADDRESS_MEM_TYPE_64;
      low_mask = static_cast<uint32_t>(~(spec.size - 1)) & ~0xfu;
      break;
  }
  if (spec.prefetchable && spec.kind != PciBarKind::kIo) flags |= PCI_BASE_ADDRESS_MEM_PREFETCH;
  absl::MutexLock lock(&mu_);
  config_.Set32(reg, flags);
  config_.SetWritable(reg, 4, low_mask);
  if (spec.kind == PciBarKind::kMem64) {
    config_.Set32(reg + 4, 0);
    config_.SetWritable(reg + 4, 4, static_cast<uint32_t>(~(spec.size - 1) >> 32));
    upper_half_[index + 1] = true;
  }
  specs_[index] = std::move(spec);
  return absl::OkStatus();
}

const PciBarSpec* PciDevice::bar_spec(int index) const {
  if (index < 0 || index >= kNumBarIndices || !specs_[index].has_value()) return nullptr;
  return &*specs_[index];
}

uint64_t PciDevice::BarAddressLocked(int index) const {
  const PciBarSpec* spec = bar_spec(index);
  if (spec == nullptr) return 0;
  const uint32_t reg = BarRegister(index);
  const uint32_t low = config_.Get32(reg);
  if (index == kRomBar) return low & PCI_ROM_ADDRESS_MASK;
  if (spec->kind == PciBarKind::kIo) return low & ~3u;
  uint64_t address = low & ~0xfu;
  if (spec->kind == PciBarKind::kMem64) address |= static_cast<uint64_t>(config_.Get32(reg + 4)) << 32;
  return address;
}

uint64_t PciDevice::BarAddress(int index) const {
  absl::MutexLock lock(&mu_);
  return BarAddressLocked(index);
}

void PciDevice::SetBarAddress(int index, uint64_t address) {
  const PciBarSpec* spec = bar_spec(index);
  if (spec == nullptr) return;
  absl::MutexLock lock(&mu_);
  const uint32_t reg = BarRegister(index);
  const uint32_t flags = config_.Get32(reg) & (index == kRomBar               ? PCI_ROM_ADDRESS_ENABLE
                                               : spec->kind == PciBarKind::kIo ? 3u
                                                                               : 0xfu);
  config_.Set32(reg, (static_cast<uint32_t>(address) & ~static_cast<uint32_t>(spec->size - 1)) | flags);
  if (spec->kind == PciBarKind::kMem64) config_.Set32(reg + 4, static_cast<uint32_t>(address >> 32));
  UpdateDecoding();
}

void PciDevice::EnableDecoding(bool io, bool memory) {
  absl::MutexLock lock(&mu_);
  uint16_t cmd = config_.Get16(PCI_COMMAND) & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
  if (io) cmd |= PCI_COMMAND_IO;
  if (memory) cmd |= PCI_COMMAND_MEMORY;
  config_.Set16(PCI_COMMAND, cmd);
  UpdateDecoding();
}

void PciDevice::SetMultifunction(bool on) {
  absl::MutexLock lock(&mu_);
  const uint8_t type = config_.Get8(PCI_HEADER_TYPE) & 0x7f;
  config_.Set8(PCI_HEADER_TYPE, static_cast<uint8_t>(type | (on ? 0x80 : 0)));
}

absl::Status PciDevice::Attach(PciBarDecoder* decoder, PciIntxRoute intx) {
  {
    absl::MutexLock lock(&mu_);
    decoder_ = decoder;
    UpdateDecoding();
  }
  absl::MutexLock lock(&intx_mu_);
  intx_ = intx;
  UpdateIntx();
  return absl::OkStatus();
}

void PciDevice::Detach() {
  {
    absl::MutexLock lock(&intx_mu_);
    intx_level_ = false;
    UpdateIntx();
    intx_ = {};
  }
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < kNumBarIndices; ++i) {
    if (bars_[i].mapped && decoder_ != nullptr) decoder_->Unmap(*specs_[i], bars_[i].mapped_at);
    bars_[i].mapped = false;
  }
  decoder_ = nullptr;
}

bool PciDevice::BarMapped(int index) const {
  if (index < 0 || index >= kNumBarIndices) return false;
  absl::MutexLock lock(&mu_);
  return bars_[index].mapped;
}

void PciDevice::UpdateDecoding() {
  const uint16_t cmd = config_.Get16(PCI_COMMAND);
  const bool rom_enabled = config_.Get32(PCI_ROM_ADDRESS) & PCI_ROM_ADDRESS_ENABLE;
  for (int i = 0; i < kNumBarIndices; ++i) {
    if (!specs_[i].has_value()) continue;
    const PciBarSpec& spec = *specs_[i];
    const bool enabled = decoder_ != nullptr &&
                         (cmd & (spec.kind == PciBarKind::kIo ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) &&
                         (i != kRomBar || rom_enabled);
    const uint64_t address = BarAddressLocked(i);
    BarState& bar = bars_[i];
    if (bar.mapped && (!enabled || bar.mapped_at != address)) {
      decoder_->Unmap(spec, bar.mapped_at);
      bar.mapped = false;
    }
    // An address the decoder refuses (outside the windows: over RAM or a
    // hole; overlapping another BAR or device) leaves the BAR undecoded, as
    // on a bus where nothing claims the range (RAM and the BAR already
    // there win, as in QEMU); the next write that moves it tries again.
    if (enabled && !bar.mapped && address != 0) {
      absl::Status s = decoder_->Map(spec, address, absl::StrCat(name_, " BAR", i));
      if (s.ok()) {
        bar.mapped = true;
        bar.mapped_at = address;
      } else if (absl::IsOutOfRange(s) || absl::IsAlreadyExists(s)) {
        // The guest's doing (PciBarDecoder::Map: outside the windows, or
        // overlapping). A host failure (a memslot) is not: the caller that
        // placed the BAR reports it (PciBus::Add), or the BAR stays
        // undecoded until the guest moves it again.
        ReportGuestError(name_, "bar-placement",
                         absl::StrCat(i == kRomBar ? "expansion ROM" : absl::StrCat("BAR", i),
                                      " placed at 0x", absl::Hex(address), "+0x", absl::Hex(spec.size),
                                      ", not decoded: ", s.message()));
      }
    }
  }
}

absl::StatusOr<uint32_t> PciDevice::AddCapability(PciCapabilityHandler* handler) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<uint32_t> offset = handler->AddTo(config_);
  if (!offset.ok()) return offset.status();
  cap_hooks_.push_back({*offset, handler->size(), handler});
  return offset;
}

absl::StatusOr<uint32_t> PciDevice::AddReadOnlyCapability(uint8_t id, std::span<const uint8_t> body) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<uint32_t> offset = config_.AddCapability(id, static_cast<uint32_t>(2 + body.size()));
  if (!offset.ok()) return offset.status();
  for (uint32_t i = 0; i < body.size(); ++i) config_.Set8(*offset + 2 + i, body[i]);
  return offset;
}

void PciDevice::AddCapabilityHandler(uint32_t offset, uint32_t size,
                                     PciCapabilityHandler* handler) {
  absl::MutexLock lock(&mu_);
  cap_hooks_.push_back({offset, size, handler});
}

uint32_t PciDevice::ConfigRead(uint32_t offset, uint32_t size) {
  uint32_t value;
  {
    absl::MutexLock lock(&mu_);
    for (const CapabilityHook& hook : cap_hooks_) {
      if (Overlaps(offset, size, hook.offset, hook.size)) hook.handler->BeforeRead(config_);
    }
    value = config_.Read(offset, size);
  }
  if (Overlaps(offset, size, PCI_STATUS, 1)) {
    absl::MutexLock lock(&intx_mu_);
    if (intx_level_) value |= static_cast<uint32_t>(PCI_STATUS_INTERRUPT) << (8 * (PCI_STATUS - offset));
  }
  return value;
}

void PciDevice::ConfigWrite(uint32_t offset, uint32_t size, uint32_t value) {
  absl::MutexLock lock(&mu_);
  if (config_.OutsideCapabilities(offset, size)) {
    // Nothing the guest was shown lives here (for a passed-through function:
    // maybe a capability passage hides); the write reaches no device.
    ReportGuestError(name_, "config-hidden",
                     absl::StrCat("config write of 0x", absl::Hex(value), " (", size,
                                  " bytes) at 0x", absl::Hex(offset),
                                  ", outside every capability shown; ignored"));
    return;
  }
  config_.Write(offset, size, value);
  if (Overlaps(offset, size, PCI_COMMAND, 2) ||
      Overlaps(offset, size, kBarOffset0, 4 * kNumBars) ||
      Overlaps(offset, size, PCI_ROM_ADDRESS, 4)) {
    UpdateDecoding();
  }
  if (Overlaps(offset, size, PCI_COMMAND, 2)) {
    const bool disabled = config_.Get16(PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
    absl::MutexLock intx_lock(&intx_mu_);
    intx_disabled_ = disabled;
    UpdateIntx();
  }
  for (const CapabilityHook& hook : cap_hooks_) {
    if (Overlaps(offset, size, hook.offset, hook.size)) hook.handler->AfterWrite(config_, offset, size);
  }
}

void PciDevice::SetIntx(bool asserted) {
  absl::MutexLock lock(&intx_mu_);
  intx_level_ = asserted;
  UpdateIntx();
}

void PciDevice::UpdateIntx() {
  const bool drive = intx_level_ && !intx_disabled_ && interrupt_pin_ != 0;
  if (intx_.irq == nullptr || drive == intx_driven_) return;
  if (intx_.irq->SetLevel(intx_.gsi, drive).ok()) intx_driven_ = drive;
}

}  // namespace passage
