#include "devices/vfio/vfio_pci.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace passage {
namespace {

constexpr uint32_t kPcieCapabilitySize = 0x3c;  // PCIe capability, version 2
constexpr uint16_t kCommandPassthrough = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;

uint64_t RoundUpPow2(uint64_t v) {
  uint64_t p = 1;
  while (p < v && p != 0) p <<= 1;
  return p;
}

uint16_t Get16(const std::vector<uint8_t>& c, uint32_t off) {
  return static_cast<uint16_t>(c[off] | c[off + 1] << 8);
}
uint32_t Get32(const std::vector<uint8_t>& c, uint32_t off) {
  return static_cast<uint32_t>(Get16(c, off)) | static_cast<uint32_t>(Get16(c, off + 2)) << 16;
}

bool Overlaps(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

// [offset, offset+size) minus `holes`, each piece page-aligned.
std::vector<VfioSparseArea> Subtract(VfioSparseArea area,
                                     const std::vector<VfioSparseArea>& holes) {
  std::vector<VfioSparseArea> pieces = {area};
  for (const VfioSparseArea& h : holes) {
    const uint64_t hs = h.offset & ~0xfffull;
    const uint64_t he = (h.offset + h.size + 0xfff) & ~0xfffull;
    std::vector<VfioSparseArea> next;
    for (const VfioSparseArea& p : pieces) {
      const uint64_t ps = p.offset, pe = p.offset + p.size;
      if (he <= ps || hs >= pe) {
        next.push_back(p);
        continue;
      }
      if (hs > ps) next.push_back({ps, hs - ps});
      if (he < pe) next.push_back({he, pe - he});
    }
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace

// Trapped accesses to a BAR: the MSI-X table and PBA go to the emulated
// capability, everything else to the device's region through the fd.
class VfioPciDevice::BarHandler : public IoHandler {
 public:
  BarHandler(std::shared_ptr<VfioDevice> device, VfioRegionInfo region,
             std::shared_ptr<MsixCapability> msix, int bar)
      : device_(std::move(device)), region_(std::move(region)), msix_(std::move(msix)) {
    if (msix_ != nullptr) {
      const auto& l = msix_->layout();
      if (l.table_bar == bar) table_ = VfioSparseArea{l.table_offset, msix_->table_size()};
      if (l.pba_bar == bar) pba_ = VfioSparseArea{l.pba_offset, msix_->pba_size()};
    }
  }

  void Read(uint64_t offset, std::span<uint8_t> data) override {
    if (table_ && Overlaps(offset, data.size(), table_->offset, table_->size)) {
      msix_->TableRead(offset - table_->offset, data);
    } else if (pba_ && Overlaps(offset, data.size(), pba_->offset, pba_->size)) {
      msix_->PbaRead(offset - pba_->offset, data);
    } else if (!device_->ReadRegion(region_, offset, data).ok()) {
      std::memset(data.data(), 0xff, data.size());
    }
  }

  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    if (table_ && Overlaps(offset, data.size(), table_->offset, table_->size)) {
      msix_->TableWrite(offset - table_->offset, data);
    } else if (pba_ && Overlaps(offset, data.size(), pba_->offset, pba_->size)) {
      msix_->PbaWrite(offset - pba_->offset, data);
    } else {
      (void)device_->WriteRegion(region_, offset, data);  // out of range: dropped
    }
  }

  std::vector<VfioSparseArea> traps() const {
    std::vector<VfioSparseArea> t;
    if (table_) t.push_back(*table_);
    if (pba_) t.push_back(*pba_);
    return t;
  }

 private:
  std::shared_ptr<VfioDevice> device_;
  const VfioRegionInfo region_;
  std::shared_ptr<MsixCapability> msix_;
  std::optional<VfioSparseArea> table_, pba_;
};

// The expansion ROM, read once at start (as firmware would shadow it):
// guest reads come from the copy, writes are dropped.
class VfioPciDevice::RomHandler : public IoHandler {
 public:
  explicit RomHandler(std::vector<uint8_t> rom) : rom_(std::move(rom)) {}

  void Read(uint64_t offset, std::span<uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) {
      data[i] = offset < rom_.size() && i < rom_.size() - offset ? rom_[offset + i] : 0xff;
    }
  }
  void Write(uint64_t, std::span<const uint8_t>) override {}

 private:
  const std::vector<uint8_t> rom_;
};

// VFIO as the source of one capability's vectors (MSI or MSI-X index).
class VfioPciDevice::VectorSource : public MsiVectorSource {
 public:
  VectorSource(VfioPciDevice* device, uint32_t index) : device_(device), index_(index) {}
  absl::StatusOr<bool> Direct(uint16_t vector, int irqfd) override {
    return device_->SetVectorTarget(index_, vector, irqfd);
  }
  absl::Status Indirect(uint16_t vector) override {
    return device_->SetVectorTarget(index_, vector, -1).status();
  }

 private:
  VfioPciDevice* const device_;
  const uint32_t index_;
};

// The MSI or MSI-X capability as registered with PciDevice: forwards to the
// emulated capability, then brings VFIO's interrupt mode in line, still
// inside the config write.
class VfioPciDevice::IrqCapability : public PciCapabilityHandler {
 public:
  IrqCapability(VfioPciDevice* device, PciCapabilityHandler* cap, uint32_t flags_offset,
                uint16_t enable_bit)
      : device_(device), cap_(cap), flags_offset_(flags_offset), enable_bit_(enable_bit) {}

  absl::StatusOr<uint32_t> AddTo(PciConfigSpace& config) override {
    absl::StatusOr<uint32_t> offset = cap_->AddTo(config);
    if (offset.ok()) offset_ = *offset;
    return offset;
  }
  uint32_t size() const override { return cap_->size(); }
  void BeforeRead(PciConfigSpace& config) override { cap_->BeforeRead(config); }
  void AfterWrite(PciConfigSpace& config, uint32_t offset, uint32_t size) override {
    cap_->AfterWrite(config, offset, size);
    device_->SyncInterrupts(config);
  }
  // The guest sees the capability disabled: its enable bit reads clear.
  void Disable(PciConfigSpace& config) {
    const uint32_t flags = offset_ + flags_offset_;
    config.Set16(flags, static_cast<uint16_t>(config.Get16(flags) & ~enable_bit_));
    cap_->AfterWrite(config, flags, 2);
  }

 private:
  VfioPciDevice* const device_;
  PciCapabilityHandler* const cap_;
  const uint32_t flags_offset_;
  const uint16_t enable_bit_;
  uint32_t offset_ = 0;
};

VfioPciDevice::VfioPciDevice(std::shared_ptr<VfioDevice> device, InterruptController& irq,
                             EventLoop& loop, std::string name, const PciIds& ids)
    : PciDevice(std::move(name), ids), device_(std::move(device)), irq_(irq), loop_(loop) {}

absl::StatusOr<std::shared_ptr<VfioPciDevice>> VfioPciDevice::Create(
    std::shared_ptr<VfioDevice> device, InterruptController& irq, EventLoop& loop,
    std::string name) {
  absl::StatusOr<VfioRegionInfo> config_region = device->RegionInfo(VFIO_PCI_CONFIG_REGION_INDEX);
  if (!config_region.ok()) return config_region.status();
  if (config_region->size < PCI_STD_HEADER_SIZEOF) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": config region too small"));
  }
  std::vector<uint8_t> config(256, 0);
  const size_t readable = std::min<uint64_t>(256, config_region->size);
  if (absl::Status s = device->ReadRegion(*config_region, 0, {config.data(), readable}); !s.ok()) {
    return s;
  }
  if (Get16(config, PCI_VENDOR_ID) == 0xffff) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": config space reads all-ones"));
  }
  if ((config[PCI_HEADER_TYPE] & 0x7f) != PCI_HEADER_TYPE_NORMAL) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": only type 0 (endpoint) functions can be passed through"));
  }
  // VFIO answers for the INTx index (count 0: none); an error is one.
  absl::StatusOr<VfioIrqInfo> intx = device->IrqInfo(VFIO_PCI_INTX_IRQ_INDEX);
  if (!intx.ok()) return intx.status();
  PciIds ids;
  ids.vendor = Get16(config, PCI_VENDOR_ID);
  ids.device = Get16(config, PCI_DEVICE_ID);
  ids.revision = config[PCI_REVISION_ID];
  ids.class_code = Get32(config, PCI_CLASS_REVISION) >> 8;
  ids.subsystem_vendor = Get16(config, PCI_SUBSYSTEM_VENDOR_ID);
  ids.subsystem = Get16(config, PCI_SUBSYSTEM_ID);
  ids.interrupt_pin = (intx.ok() && intx->count > 0 && config[PCI_INTERRUPT_PIN] <= 4)
                          ? config[PCI_INTERRUPT_PIN]
                          : 0;
  std::shared_ptr<VfioPciDevice> dev(
      new VfioPciDevice(device, irq, loop, std::move(name), ids));
  dev->config_region_ = *config_region;
  if (absl::Status s = device->Reset(); !s.ok()) return s;
  if (absl::Status s = dev->SetUpCapabilities(config); !s.ok()) return s;
  if (absl::Status s = dev->SetUpBars(config); !s.ok()) return s;
  if (absl::Status s = dev->SetUpRom(); !s.ok()) return s;
  return dev;
}

VfioPciDevice::~VfioPciDevice() {
  // The capabilities outlive us (BAR handlers share MSI-X): they must not
  // call back into this object.
  if (msix_) msix_->SetSource(nullptr);
  if (msi_) msi_->SetSource(nullptr);
  Detach();  // no BAR of ours stays visible to the guest
  std::vector<std::unique_ptr<LoopEventfd>> unused;
  {
    absl::MutexLock lock(&irq_mu_);
    DisableVectors(unused);
    DisableIntx();
  }
  unused.clear();
  (void)device_->Reset();
  for (const Mmap& m : mmaps_) device_->sys()->Munmap(m.host, m.size);
}

absl::Status VfioPciDevice::SetUpCapabilities(const std::vector<uint8_t>& config) {
  if (!(Get16(config, PCI_STATUS) & PCI_STATUS_CAP_LIST)) return absl::OkStatus();
  uint32_t pos = config[PCI_CAPABILITY_LIST] & ~3u;
  // The walk is bounded: at most 48 capabilities fit in 192 bytes.
  for (int hops = 0; pos >= 0x40 && pos + 2 <= config.size() && hops < 48; ++hops) {
    const uint8_t id = config[pos];
    const uint32_t next = config[pos + 1] & ~3u;
    if (id == PCI_CAP_ID_MSI && pos + PCI_MSI_FLAGS + 2 <= config.size() && msi_ == nullptr) {
      const uint16_t flags = Get16(config, pos + PCI_MSI_FLAGS);
      uint8_t log2 = std::min<uint8_t>((flags & PCI_MSI_FLAGS_QMASK) >> 1, 5);
      absl::StatusOr<VfioIrqInfo> info = device_->IrqInfo(VFIO_PCI_MSI_IRQ_INDEX);
      if (info.ok() && info->count > 0) {
        // No more vectors than VFIO will enable.
        while ((1u << log2) > info->count) --log2;
        msi_vectors_ = static_cast<uint16_t>(1u << log2);
        msi_ = std::make_unique<MsiCapability>(irq_, name(), log2);
        absl::StatusOr<MsiVectorSource*> source = AddInterruptCapability(
            VFIO_PCI_MSI_IRQ_INDEX, msi_.get(), PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE);
        if (!source.ok()) return source.status();
        msi_->SetSource(*source);
      }
    } else if (id == PCI_CAP_ID_MSIX && pos + 12 <= config.size() && msix_ == nullptr) {
      const uint16_t flags = Get16(config, pos + PCI_MSIX_FLAGS);
      const uint32_t table = Get32(config, pos + PCI_MSIX_TABLE);
      const uint32_t pba = Get32(config, pos + PCI_MSIX_PBA);
      MsixCapability::Layout layout;
      layout.vectors = static_cast<uint16_t>((flags & PCI_MSIX_FLAGS_QSIZE) + 1);
      layout.table_bar = table & PCI_MSIX_TABLE_BIR;
      layout.table_offset = table & PCI_MSIX_TABLE_OFFSET;
      layout.pba_bar = pba & PCI_MSIX_PBA_BIR;
      layout.pba_offset = pba & PCI_MSIX_PBA_OFFSET;
      absl::StatusOr<VfioIrqInfo> info = device_->IrqInfo(VFIO_PCI_MSIX_IRQ_INDEX);
      if (info.ok() && info->count > 0 && layout.table_bar <= 5 && layout.pba_bar <= 5) {
        // No more vectors than VFIO will enable (the table shrinks with them).
        layout.vectors = static_cast<uint16_t>(std::min<uint32_t>(layout.vectors, info->count));
        msix_vectors_ = layout.vectors;
        msix_ = std::make_shared<MsixCapability>(irq_, name(), layout);
        absl::StatusOr<MsiVectorSource*> source = AddInterruptCapability(
            VFIO_PCI_MSIX_IRQ_INDEX, msix_.get(), PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
        if (!source.ok()) return source.status();
        msix_->SetSource(*source);
      }
    } else if (id == PCI_CAP_ID_EXP && pos + kPcieCapabilitySize <= config.size()) {
      // Read-only copy: drivers look at link and device capabilities.
      absl::StatusOr<uint32_t> off = AddReadOnlyCapability(
          PCI_CAP_ID_EXP, std::span<const uint8_t>(config).subspan(pos + 2, kPcieCapabilitySize - 2));
      if (!off.ok()) return off.status();
    }
    if (next == pos) break;
    pos = next;
  }
  return SetUpPasid();
}

absl::Status VfioPciDevice::SetUpPasid() {
  const Iommufd::HwInfo info = device_->pasid_info();
  PasidSpace* space = device_->pasid_space();
  if (info.max_pasid_log2 == 0 || space == nullptr) return absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    // Extended config space exists for the guest only on a PCIe function.
    if (!config_.FindCapability(PCI_CAP_ID_EXP).has_value()) {
      std::fprintf(stderr, "passage: %s: has PASID but no PCI Express capability; no PASID capability shown\n",
                   name().c_str());
      return absl::OkStatus();
    }
  }
  pasid_ = std::make_unique<PasidCapability>([space] { return space->width(); }, info.pasid_exec,
                                             info.pasid_priv);
  return AddCapability(pasid_.get()).status();
}

absl::StatusOr<MsiVectorSource*> VfioPciDevice::AddInterruptCapability(
    uint32_t index, PciCapabilityHandler* cap, uint32_t flags_offset, uint16_t enable_bit) {
  const bool msix = index == VFIO_PCI_MSIX_IRQ_INDEX;
  std::unique_ptr<IrqCapability>& hook = msix ? msix_hook_ : msi_hook_;
  hook = std::make_unique<IrqCapability>(this, cap, flags_offset, enable_bit);
  absl::StatusOr<uint32_t> offset = AddCapability(hook.get());
  if (!offset.ok()) return offset.status();
  std::unique_ptr<VectorSource>& source = msix ? msix_source_ : msi_source_;
  source = std::make_unique<VectorSource>(this, index);
  absl::MutexLock lock(&irq_mu_);
  (msix ? msix_direct_ : msi_direct_).assign(msix ? msix_vectors_ : msi_vectors_, -1);
  return source.get();
}

absl::Status VfioPciDevice::SetUpBars(const std::vector<uint8_t>& config) {
  for (int i = 0; i < kNumBars; ++i) {
    // VFIO answers for every BAR index (size 0: none); an error is one.
    absl::StatusOr<VfioRegionInfo> region = device_->RegionInfo(static_cast<uint32_t>(i));
    if (!region.ok()) return region.status();
    if (region->size == 0) continue;
    const uint32_t raw = Get32(config, PCI_BASE_ADDRESS_0 + 4 * static_cast<uint32_t>(i));
    PciBarSpec spec;
    const bool io = raw & PCI_BASE_ADDRESS_SPACE_IO;
    if (io) {
      spec.kind = PciBarKind::kIo;
      spec.size = RoundUpPow2(std::max<uint64_t>(region->size, 4));
      if (spec.size > 256) {
        return absl::FailedPreconditionError(absl::StrCat(
            name(), ": I/O BAR ", i, " of 0x", absl::Hex(region->size), " bytes is too large"));
      }
    } else {
      const bool mem64 = (raw & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
      spec.kind = mem64 ? PciBarKind::kMem64 : PciBarKind::kMem32;
      spec.prefetchable = raw & PCI_BASE_ADDRESS_MEM_PREFETCH;
      spec.size = RoundUpPow2(std::max<uint64_t>(region->size, 4096));
    }
    auto handler = std::make_shared<BarHandler>(
        device_, *region,
        (msix_ && (msix_->layout().table_bar == i || msix_->layout().pba_bar == i)) ? msix_
                                                                                      : nullptr,
        i);
    if (!io) {
      for (const VfioSparseArea& area : region->mmap_areas) {
        if (area.offset % 4096 || area.size % 4096) continue;  // trapped instead
        for (const VfioSparseArea& piece : Subtract(area, handler->traps())) {
          void* host = device_->sys()->MmapShared(device_->fd(), piece.size,
                                                  static_cast<off_t>(region->offset + piece.offset));
          if (host == MAP_FAILED) {
            std::fprintf(stderr, "passage: %s: BAR %d: mmap of 0x%llx bytes failed (%s); trapping\n",
                         name().c_str(), i, static_cast<unsigned long long>(piece.size),
                         std::strerror(errno));
            continue;
          }
          mmaps_.push_back({host, piece.size});
          spec.mmaps.push_back({piece.offset, piece.size, host});
        }
      }
    }
    spec.handler = handler;
    const bool mem64 = spec.kind == PciBarKind::kMem64;
    if (absl::Status s = DeclareBar(i, std::move(spec)); !s.ok()) return s;
    if (mem64) ++i;
  }
  return absl::OkStatus();
}

absl::Status VfioPciDevice::SetUpRom() {
  absl::StatusOr<VfioRegionInfo> region = device_->RegionInfo(VFIO_PCI_ROM_REGION_INDEX);
  if (!region.ok()) return region.status();  // VFIO answers for the index; size 0 is none
  if (region->size == 0) return absl::OkStatus();  // no ROM
  if (region->size > kMaxRomSize) {
    std::fprintf(stderr, "passage: %s: expansion ROM of 0x%llx bytes is larger than 0x%llx; hidden\n",
                 name().c_str(), static_cast<unsigned long long>(region->size),
                 static_cast<unsigned long long>(kMaxRomSize));
    return absl::OkStatus();
  }
  std::vector<uint8_t> rom(region->size);
  if (absl::Status s = device_->ReadRegion(*region, 0, {rom.data(), rom.size()}); !s.ok()) {
    // A ROM BAR without a valid image (the host kernel checks the 0xAA55
    // signature): the guest sees no ROM, as with QEMU.
    std::fprintf(stderr, "passage: %s: expansion ROM unreadable (%s); hidden\n", name().c_str(),
                 std::string(s.message()).c_str());
    return absl::OkStatus();
  }
  PciBarSpec spec;
  spec.kind = PciBarKind::kMem32;
  spec.size = RoundUpPow2(std::max<uint64_t>(region->size, 4096));
  spec.handler = std::make_shared<RomHandler>(std::move(rom));
  return DeclareBar(kRomBar, std::move(spec));
}

void VfioPciDevice::ConfigWrite(uint32_t offset, uint32_t size, uint32_t value) {
  PciDevice::ConfigWrite(offset, size, value);
  if (Overlaps(offset, size, PCI_COMMAND, 2)) {
    // Decoding and bus mastering must be on in the real device too.
    const uint16_t guest = static_cast<uint16_t>(PciDevice::ConfigRead(PCI_COMMAND, 2));
    uint16_t forward = guest & kCommandPassthrough;
    // Bus mastering only once guest RAM is in the device's DMA space (it
    // may still be being mapped in the background, vmm/passthrough.h):
    // this vCPU waits here, holding no lock. If the mapping failed or the
    // VM stops first, the device stays without it.
    DmaSpace* space = device_->dma_space();
    if ((forward & PCI_COMMAND_MASTER) && space != nullptr && !space->AwaitMapped().ok()) {
      forward &= static_cast<uint16_t>(~PCI_COMMAND_MASTER);
    }
    uint16_t real = 0;
    if (device_->ReadRegion(config_region_, PCI_COMMAND, {reinterpret_cast<uint8_t*>(&real), 2})
            .ok()) {
      real = static_cast<uint16_t>((real & ~kCommandPassthrough) | forward);
      (void)device_->WriteRegion(config_region_, PCI_COMMAND,
                                 {reinterpret_cast<uint8_t*>(&real), 2});
    }
  }
}

absl::Status VfioPciDevice::Attach(PciBarDecoder* decoder, PciIntxRoute intx) {
  if (absl::Status s = PciDevice::Attach(decoder, intx); !s.ok()) return s;
  if (intx.irq == nullptr || intx.gsi == 0) return absl::OkStatus();
  if (absl::Status s = ConnectIntx(intx.gsi); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("INTx on GSI ", intx.gsi, ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status VfioPciDevice::ConnectIntx(uint32_t gsi) {
  absl::MutexLock lock(&irq_mu_);
  if (interrupt_pin() == 0) return absl::OkStatus();
  intx_gsi_ = gsi;
  if (mode_ == IrqMode::kNone) {
    if (absl::Status s = EnableIntx(); !s.ok()) {
      intx_gsi_.reset();
      return s;
    }
    mode_ = IrqMode::kIntx;
  }
  return absl::OkStatus();
}

VfioPciDevice::IrqMode VfioPciDevice::irq_mode() const {
  absl::MutexLock lock(&irq_mu_);
  return mode_;
}

void VfioPciDevice::SyncInterrupts(PciConfigSpace& config) {
  // Bounded: each failed round disables one capability.
  for (int round = 0; round < 3; ++round) {
    IrqMode want = IrqMode::kNone;
    uint32_t vectors = 0;
    if (msix_ && msix_->enabled()) {
      want = IrqMode::kMsix;
      vectors = msix_vectors_;
    } else if (msi_ && msi_->enabled()) {
      want = IrqMode::kMsi;
      vectors = msi_->enabled_vectors();
    }
    std::vector<std::unique_ptr<LoopEventfd>> unused;
    absl::Status s;
    {
      absl::MutexLock lock(&irq_mu_);
      s = SwitchMode(want, vectors, unused);
    }
    // Outside irq_mu_: destroying a loop eventfd waits for its running
    // callback, which may be waiting for the capability's lock, whose
    // holder may be waiting for irq_mu_ (SetVectorTarget).
    unused.clear();
    if (s.ok()) return;
    if (want == IrqMode::kMsix || want == IrqMode::kMsi) {
      const char* what = want == IrqMode::kMsix ? "MSI-X" : "MSI";
      std::fprintf(stderr, "passage: %s: %s not enabled, the guest sees it disabled: %s\n",
                   name().c_str(), what, std::string(s.message()).c_str());
      (want == IrqMode::kMsix ? msix_hook_ : msi_hook_)->Disable(config);
      continue;
    }
    irq_.Fatal(absl::Status(s.code(), absl::StrCat(name(), ": INTx: ", s.message())));
    return;
  }
}

absl::Status VfioPciDevice::SwitchMode(IrqMode want, uint32_t vectors,
                                       std::vector<std::unique_ptr<LoopEventfd>>& unused) {
  if (want == IrqMode::kNone && intx_gsi_.has_value()) want = IrqMode::kIntx;
  if (want == mode_ && vectors == mode_vectors_) return absl::OkStatus();
  switch (mode_) {
    case IrqMode::kMsi:
    case IrqMode::kMsix: DisableVectors(unused); break;
    case IrqMode::kIntx: DisableIntx(); break;
    case IrqMode::kNone: break;
  }
  mode_ = IrqMode::kNone;
  mode_vectors_ = 0;
  absl::Status s;
  switch (want) {
    case IrqMode::kMsi: s = EnableVectors(VFIO_PCI_MSI_IRQ_INDEX, vectors); break;
    case IrqMode::kMsix: s = EnableVectors(VFIO_PCI_MSIX_IRQ_INDEX, vectors); break;
    case IrqMode::kIntx: s = EnableIntx(); break;
    case IrqMode::kNone: break;
  }
  if (!s.ok()) {
    for (auto& fd : vector_fds_) unused.push_back(std::move(fd));
    vector_fds_.clear();
    return s;
  }
  mode_ = want;
  mode_vectors_ = vectors;
  return absl::OkStatus();
}

absl::Status VfioPciDevice::EnableVectors(uint32_t index, uint32_t count) {
  const bool msix = index == VFIO_PCI_MSIX_IRQ_INDEX;
  const std::vector<int>& direct = msix ? msix_direct_ : msi_direct_;
  std::vector<int32_t> fds;
  for (uint32_t v = 0; v < count; ++v) {
    const uint16_t vector = static_cast<uint16_t>(v);
    auto notify = msix ? EventLoop::Callback([msix = msix_, vector] { msix->Notify(vector); })
                       : EventLoop::Callback([msi = msi_.get(), vector] { msi->Notify(vector); });
    absl::StatusOr<std::unique_ptr<LoopEventfd>> fd = LoopEventfd::Create(loop_, notify);
    if (!fd.ok()) return fd.status();  // the caller drops vector_fds_
    // A vector the capability already made deliverable starts direct.
    fds.push_back(v < direct.size() && direct[v] >= 0 ? direct[v] : (*fd)->fd());
    vector_fds_.push_back(std::move(*fd));
  }
  return device_->SetIrqEventfds(index, 0, fds);
}

void VfioPciDevice::DisableVectors(std::vector<std::unique_ptr<LoopEventfd>>& unused) {
  if (vector_fds_.empty()) return;
  const uint32_t index =
      mode_ == IrqMode::kMsix ? VFIO_PCI_MSIX_IRQ_INDEX : VFIO_PCI_MSI_IRQ_INDEX;
  (void)device_->DisableIrqs(index);
  for (auto& fd : vector_fds_) unused.push_back(std::move(fd));
  vector_fds_.clear();
}

absl::StatusOr<bool> VfioPciDevice::SetVectorTarget(uint32_t index, uint16_t vector, int irqfd) {
  absl::MutexLock lock(&irq_mu_);
  const bool msix = index == VFIO_PCI_MSIX_IRQ_INDEX;
  std::vector<int>& direct = msix ? msix_direct_ : msi_direct_;
  if (vector >= direct.size()) {
    return absl::OutOfRangeError(absl::StrCat(name(), ": vector ", vector, " out of range"));
  }
  const bool live = mode_ == (msix ? IrqMode::kMsix : IrqMode::kMsi) && vector < vector_fds_.size();
  if (!live) {
    direct[vector] = irqfd;  // applied when VFIO enters this mode
    return false;
  }
  const int loop_fd = vector_fds_[vector]->fd();
  const int32_t target = irqfd >= 0 ? irqfd : loop_fd;
  if (absl::Status s = device_->SetIrqEventfds(index, vector, {&target, 1}); !s.ok()) return s;
  direct[vector] = irqfd;
  if (irqfd < 0) return false;
  // An event VFIO signalled before the swap and the loop has not taken yet:
  // consumed here, so it is delivered once (by the caller), not twice.
  uint64_t count = 0;
  return ::read(loop_fd, &count, sizeof(count)) == sizeof(count);
}

absl::Status VfioPciDevice::EnableIntx() {
  if (!intx_gsi_.has_value()) return absl::OkStatus();
  UniqueFd trigger(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  UniqueFd resample(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!trigger.valid() || !resample.valid()) return ErrnoError("eventfd for INTx");
  if (absl::Status s = irq_.AttachIrqfd(*intx_gsi_, trigger.get(), resample.get()); !s.ok()) {
    return s;
  }
  const int32_t fd = trigger.get();
  absl::Status s = device_->SetIrqEventfds(VFIO_PCI_INTX_IRQ_INDEX, 0, {&fd, 1});
  if (s.ok()) s = device_->SetIrqUnmaskEventfd(VFIO_PCI_INTX_IRQ_INDEX, resample.get());
  if (!s.ok()) {
    (void)device_->DisableIrqs(VFIO_PCI_INTX_IRQ_INDEX);
    (void)irq_.DetachIrqfd(*intx_gsi_, trigger.get());
    return s;
  }
  intx_fd_ = std::move(trigger);
  intx_resample_fd_ = std::move(resample);
  return absl::OkStatus();
}

void VfioPciDevice::DisableIntx() {
  if (!intx_fd_.valid()) return;
  (void)device_->DisableIrqs(VFIO_PCI_INTX_IRQ_INDEX);
  (void)irq_.DetachIrqfd(*intx_gsi_, intx_fd_.get());
  intx_fd_.reset();
  intx_resample_fd_.reset();
}

}  // namespace passage
