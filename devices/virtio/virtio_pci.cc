#include "devices/virtio/virtio_pci.h"

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace passage {
namespace {

constexpr uint8_t kCapLen = 16;          // struct virtio_pci_cap
constexpr uint8_t kNotifyCapLen = 20;    // + notify_off_multiplier
constexpr uint8_t kCfgCapLen = 20;       // + pci_cfg_data
constexpr uint64_t kVersion1 = 1ull << VIRTIO_F_VERSION_1;
constexpr uint8_t kIsrQueue = 1;  // ISR bit 0: a queue has used buffers


// The BAR handler: forwards to the device, which outlives the mapping (the
// bus unmaps every BAR before it drops a device).
class VirtioBar : public IoHandler {
 public:
  explicit VirtioBar(VirtioPciDevice* device) : device_(device) {}
  void Read(uint64_t offset, std::span<uint8_t> data) override { device_->BarRead(offset, data); }
  void Write(uint64_t offset, std::span<const uint8_t> data) override { device_->BarWrite(offset, data); }

 private:
  VirtioPciDevice* device_;
};

}  // namespace

VirtioPciDevice::VirtioPciDevice(std::string name, std::unique_ptr<VirtioBackend> backend,
                                 const GuestMemory& memory, InterruptController& irq)
    : PciDevice(name, {.vendor = kVendor,
                       .device = static_cast<uint16_t>(kDeviceBase + backend->device_type()),
                       .class_code = backend->pci_class(),
                       .revision = 1,
                       .subsystem_vendor = kVendor,
                       .subsystem = kSubsystem,
                       .interrupt_pin = 1}),
      backend_(std::move(backend)),
      memory_(memory),
      num_queues_(backend_->num_queues()),
      offered_features_(backend_->device_features() | kVersion1) {
  msix_ = std::make_shared<MsixCapability>(
      irq, name, MsixCapability::Layout{.vectors = static_cast<uint16_t>(num_queues_ + 1),
                                        .table_bar = kMsixBar,
                                        .table_offset = 0,
                                        .pba_bar = kMsixBar,
                                        .pba_offset = kMsixPbaOffset});
  queue_vectors_ = std::make_unique<std::atomic<uint16_t>[]>(num_queues_);
  absl::MutexLock lock(&state_mu_);
  queues_.resize(num_queues_);
  Reset();
}

absl::StatusOr<std::shared_ptr<VirtioPciDevice>> VirtioPciDevice::Create(
    std::string name, std::unique_ptr<VirtioBackend> backend, const GuestMemory& memory,
    InterruptController& irq) {
  if (backend->num_queues() == 0 || backend->num_queues() > 1024 ||
      backend->config_size() > kRegionSize) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": unsupported virtio back end layout"));
  }
  std::shared_ptr<VirtioPciDevice> d(new VirtioPciDevice(std::move(name), std::move(backend), memory, irq));
  if (absl::Status s = d->Init(); !s.ok()) return s;
  return d;
}

absl::Status VirtioPciDevice::Init() {
  PciBarSpec msix_bar;
  msix_bar.kind = PciBarKind::kMem32;
  msix_bar.size = kMsixBarSize;
  msix_bar.handler = std::make_shared<MsixBarHandler>(msix_);
  if (absl::Status s = DeclareBar(kMsixBar, std::move(msix_bar)); !s.ok()) return s;
  // 64-bit, not prefetchable: reading the ISR has a side effect.
  PciBarSpec virtio_bar;
  virtio_bar.kind = PciBarKind::kMem64;
  virtio_bar.size = kVirtioBarSize;
  virtio_bar.handler = std::make_shared<VirtioBar>(this);
  if (absl::Status s = DeclareBar(kVirtioBar, std::move(virtio_bar)); !s.ok()) return s;
  if (msix_->table_size() > kMsixPbaOffset || kMsixPbaOffset + msix_->pba_size() > kMsixBarSize) {
    return absl::InvalidArgumentError(absl::StrCat(name(), ": too many queues for the MSI-X BAR"));
  }
  absl::StatusOr<uint32_t> msix_cap = AddCapabilities();
  if (!msix_cap.ok()) {
    return absl::Status(msix_cap.status().code(), absl::StrCat(name(), ": ", msix_cap.status().message()));
  }
  AddCapabilityHandler(*msix_cap, MsixCapability::kCapabilitySize, msix_.get());
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> VirtioPciDevice::AddCapabilities() {
  absl::MutexLock lock(&mu_);
  auto add_cap = [this](uint8_t type, uint8_t len, uint64_t offset, uint64_t length)
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<uint32_t> {
    absl::StatusOr<uint32_t> at = config_.AddCapability(PCI_CAP_ID_VNDR, len);
    if (!at.ok()) return at.status();
    config_.Set8(*at + VIRTIO_PCI_CAP_LEN, len);
    config_.Set8(*at + VIRTIO_PCI_CAP_CFG_TYPE, type);
    config_.Set8(*at + VIRTIO_PCI_CAP_BAR, kVirtioBar);
    config_.Set32(*at + VIRTIO_PCI_CAP_OFFSET, static_cast<uint32_t>(offset));
    config_.Set32(*at + VIRTIO_PCI_CAP_LENGTH, static_cast<uint32_t>(length));
    return at;
  };
  absl::StatusOr<uint32_t> cap = add_cap(VIRTIO_PCI_CAP_COMMON_CFG, kCapLen, kCommonOffset, kRegionSize);
  if (cap.ok()) cap = add_cap(VIRTIO_PCI_CAP_ISR_CFG, kCapLen, kIsrOffset, kRegionSize);
  if (cap.ok()) {
    cap = add_cap(VIRTIO_PCI_CAP_NOTIFY_CFG, kNotifyCapLen, kNotifyOffset, kRegionSize);
    if (cap.ok()) config_.Set32(*cap + kCapLen, kNotifyMultiplier);
  }
  if (cap.ok() && backend_->config_size() > 0) {
    cap = add_cap(VIRTIO_PCI_CAP_DEVICE_CFG, kCapLen, kDeviceConfigOffset, backend_->config_size());
  }
  if (cap.ok()) {
    cap = add_cap(VIRTIO_PCI_CAP_PCI_CFG, kCfgCapLen, 0, 0);
    if (cap.ok()) {
      cfg_cap_ = *cap;
      config_.Set8(cfg_cap_ + VIRTIO_PCI_CAP_BAR, 0);
      config_.SetWritable(cfg_cap_ + VIRTIO_PCI_CAP_BAR, 1, 0xff);
      config_.SetWritable(cfg_cap_ + VIRTIO_PCI_CAP_OFFSET, 4, 0xffffffff);
      config_.SetWritable(cfg_cap_ + VIRTIO_PCI_CAP_LENGTH, 4, 0xffffffff);
    }
  }
  if (!cap.ok()) return cap;
  return msix_->AddTo(config_);
}

VirtioPciDevice::~VirtioPciDevice() {
  absl::MutexLock lock(&state_mu_);
  Reset();
}

uint16_t VirtioPciDevice::ValidVector(uint16_t vector) const {
  // 4.1.4.3: a vector the device cannot use reads back as NO_VECTOR.
  return vector < num_queues_ + 1u ? vector : kNoVector;
}

VirtioPciDevice::Queue* VirtioPciDevice::SelectedQueue() {
  return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

void VirtioPciDevice::Reset() {
  if (started_) backend_->Stop();
  started_ = false;
  for (Queue& q : queues_) {
    q.live.reset();
    q.enabled = false;
    q.desc = q.avail = q.used = 0;
    q.size = backend_->max_queue_size();
  }
  for (uint16_t i = 0; i < num_queues_; ++i) queue_vectors_[i] = kNoVector;
  status_ = 0;
  device_feature_select_ = driver_feature_select_ = 0;
  driver_features_ = 0;
  queue_select_ = 0;
  config_vector_ = kNoVector;
  needs_reset_ = false;
  isr_ = 0;
  SetIntx(false);
}

void VirtioPciDevice::SetStatus(uint8_t status) {
  if (status == 0) {
    Reset();
    return;
  }
  if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && !(status_ & VIRTIO_CONFIG_S_FEATURES_OK)) {
    // 3.1.1: accept the features only if we offered them all, VERSION_1 included.
    if ((driver_features_ & ~offered_features_) != 0 || !(driver_features_ & kVersion1)) {
      status &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
  }
  const bool driver_ok = (status & VIRTIO_CONFIG_S_DRIVER_OK) && (status & VIRTIO_CONFIG_S_FEATURES_OK);
  status_ = status;
  if (driver_ok && !started_) {
    std::vector<Virtqueue*> live;
    for (Queue& q : queues_) live.push_back(q.live ? &*q.live : nullptr);
    started_ = true;
    backend_->Start(std::move(live), this);
  }
}

void VirtioPciDevice::EnableQueue(uint16_t index) {
  Queue& q = queues_[index];
  if (q.enabled || started_) return;  // enabling after DRIVER_OK needs RING_RESET
  absl::StatusOr<Virtqueue> live =
      Virtqueue::Create(memory_, {q.size, q.desc, q.avail, q.used}, absl::StrCat(name(), " queue ", index));
  if (!live.ok()) {
    // A queue we cannot use: tell the driver to reset us (2.1.1).
    needs_reset_ = true;
    Interrupt(config_vector_, VIRTIO_PCI_ISR_CONFIG);
    return;
  }
  q.live.emplace(std::move(*live));
  q.enabled = true;
}

uint32_t VirtioPciDevice::CommonRead(uint64_t offset, size_t size) {
  Queue* q = SelectedQueue();
  auto field = [&](uint64_t at, size_t width) { return offset == at && size == width; };
  if (field(VIRTIO_PCI_COMMON_DFSELECT, 4)) return device_feature_select_;
  if (field(VIRTIO_PCI_COMMON_DF, 4)) {
    return device_feature_select_ < 2 ? static_cast<uint32_t>(offered_features_ >> (32 * device_feature_select_)) : 0;
  }
  if (field(VIRTIO_PCI_COMMON_GFSELECT, 4)) return driver_feature_select_;
  if (field(VIRTIO_PCI_COMMON_GF, 4)) {
    return driver_feature_select_ < 2 ? static_cast<uint32_t>(driver_features_ >> (32 * driver_feature_select_)) : 0;
  }
  if (field(VIRTIO_PCI_COMMON_MSIX, 2)) return config_vector_;
  if (field(VIRTIO_PCI_COMMON_NUMQ, 2)) return num_queues_;
  if (field(VIRTIO_PCI_COMMON_STATUS, 1)) return status_ | (needs_reset_ ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
  if (field(VIRTIO_PCI_COMMON_CFGGENERATION, 1)) return 0;
  if (field(VIRTIO_PCI_COMMON_Q_SELECT, 2)) return queue_select_;
  if (q == nullptr) return 0;  // 4.1.4.3.1: a queue that does not exist has size 0
  if (field(VIRTIO_PCI_COMMON_Q_SIZE, 2)) return q->size;
  if (field(VIRTIO_PCI_COMMON_Q_MSIX, 2)) return queue_vectors_[queue_select_];
  if (field(VIRTIO_PCI_COMMON_Q_ENABLE, 2)) return q->enabled;
  if (field(VIRTIO_PCI_COMMON_Q_NOFF, 2)) return queue_select_;
  if (field(VIRTIO_PCI_COMMON_Q_NDATA, 2)) return queue_select_;
  const std::pair<uint64_t, uint64_t*> addrs[] = {{VIRTIO_PCI_COMMON_Q_DESCLO, &q->desc},
                                                  {VIRTIO_PCI_COMMON_Q_AVAILLO, &q->avail},
                                                  {VIRTIO_PCI_COMMON_Q_USEDLO, &q->used}};
  for (const auto& [lo, value] : addrs) {
    if (field(lo, 4) || field(lo, 8)) return static_cast<uint32_t>(*value);
    if (field(lo + 4, 4)) return static_cast<uint32_t>(*value >> 32);
  }
  return 0;
}

void VirtioPciDevice::CommonWrite(uint64_t offset, size_t size, uint64_t value) {
  auto field = [&](uint64_t at, size_t width) { return offset == at && size == width; };
  const uint32_t v32 = static_cast<uint32_t>(value);
  const uint16_t v16 = static_cast<uint16_t>(value);
  if (field(VIRTIO_PCI_COMMON_DFSELECT, 4)) {
    device_feature_select_ = v32;
  } else if (field(VIRTIO_PCI_COMMON_GFSELECT, 4)) {
    driver_feature_select_ = v32;
  } else if (field(VIRTIO_PCI_COMMON_GF, 4)) {
    if (driver_feature_select_ < 2 && !(status_ & VIRTIO_CONFIG_S_FEATURES_OK)) {
      const int shift = 32 * static_cast<int>(driver_feature_select_);
      driver_features_ = (driver_features_ & ~(0xffffffffull << shift)) | (uint64_t{v32} << shift);
    }
  } else if (field(VIRTIO_PCI_COMMON_MSIX, 2)) {
    config_vector_ = ValidVector(v16);
  } else if (field(VIRTIO_PCI_COMMON_STATUS, 1)) {
    SetStatus(static_cast<uint8_t>(value));
  } else if (field(VIRTIO_PCI_COMMON_Q_SELECT, 2)) {
    queue_select_ = v16;
  } else if (Queue* q = SelectedQueue(); q != nullptr) {
    if (field(VIRTIO_PCI_COMMON_Q_MSIX, 2)) {
      queue_vectors_[queue_select_] = ValidVector(v16);
    } else if (field(VIRTIO_PCI_COMMON_Q_ENABLE, 2)) {
      if (v16 == 1) EnableQueue(queue_select_);
    } else if (q->enabled) {
      return;  // size and ring addresses are fixed once the queue is enabled
    } else if (field(VIRTIO_PCI_COMMON_Q_SIZE, 2)) {
      q->size = v16;  // checked when the queue is enabled
    } else {
      const std::pair<uint64_t, uint64_t*> addrs[] = {{VIRTIO_PCI_COMMON_Q_DESCLO, &q->desc},
                                                      {VIRTIO_PCI_COMMON_Q_AVAILLO, &q->avail},
                                                      {VIRTIO_PCI_COMMON_Q_USEDLO, &q->used}};
      for (const auto& [lo, addr] : addrs) {
        if (field(lo, 8)) *addr = value;
        if (field(lo, 4)) *addr = (*addr & ~0xffffffffull) | v32;
        if (field(lo + 4, 4)) *addr = (*addr & 0xffffffffull) | (uint64_t{v32} << 32);
      }
    }
  }
}

void VirtioPciDevice::BarRead(uint64_t offset, std::span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  if (offset >= kVirtioBarSize || data.size() > kVirtioBarSize - offset) return;
  if (offset < kCommonOffset + kRegionSize) {
    absl::MutexLock lock(&state_mu_);
    StoreAccess(CommonRead(offset - kCommonOffset, data.size()), data);
  } else if (offset == kIsrOffset && data.size() == 1) {
    // Reading the ISR clears it and deasserts INTx (4.1.4.5).
    data[0] = isr_.exchange(0);
    SetIntx(false);
  } else if (offset >= kDeviceConfigOffset && offset < kDeviceConfigOffset + kRegionSize) {
    const uint64_t at = offset - kDeviceConfigOffset;
    absl::MutexLock lock(&state_mu_);
    if (at < backend_->config_size() && data.size() <= backend_->config_size() - at) {
      backend_->ReadConfig(static_cast<uint32_t>(at), data);
    }
  }
}

void VirtioPciDevice::BarWrite(uint64_t offset, std::span<const uint8_t> data) {
  if (offset >= kVirtioBarSize || data.size() > kVirtioBarSize - offset) return;
  if (offset < kCommonOffset + kRegionSize) {
    absl::MutexLock lock(&state_mu_);
    CommonWrite(offset - kCommonOffset, data.size(), LoadAccess(data));
  } else if (offset >= kDeviceConfigOffset && offset < kDeviceConfigOffset + kRegionSize) {
    const uint64_t at = offset - kDeviceConfigOffset;
    absl::MutexLock lock(&state_mu_);
    if (at < backend_->config_size() && data.size() <= backend_->config_size() - at) {
      backend_->WriteConfig(static_cast<uint32_t>(at), data);
    }
  } else if (offset >= kNotifyOffset && offset < kNotifyOffset + kRegionSize) {
    const uint64_t queue = (offset - kNotifyOffset) / kNotifyMultiplier;
    absl::MutexLock lock(&state_mu_);
    if (started_ && queue < num_queues_ && queues_[queue].enabled) {
      backend_->Kick(static_cast<uint16_t>(queue));
    }
  }
}

void VirtioPciDevice::Interrupt(uint16_t vector, uint8_t isr_bit) {
  if (msix_->enabled()) {
    if (vector != kNoVector) msix_->Notify(vector);
    return;
  }
  isr_.fetch_or(isr_bit);
  SetIntx(true);
}

void VirtioPciDevice::QueueUsed(uint16_t queue) {
  if (queue < num_queues_) Interrupt(queue_vectors_[queue], kIsrQueue);
}

void VirtioPciDevice::QueueBroken(uint16_t, const absl::Status&) {
  needs_reset_ = true;
  Interrupt(config_vector_, VIRTIO_PCI_ISR_CONFIG);
}

uint8_t VirtioPciDevice::device_status() const {
  absl::MutexLock lock(&state_mu_);
  return status_ | (needs_reset_ ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
}

uint64_t VirtioPciDevice::driver_features() const {
  absl::MutexLock lock(&state_mu_);
  return driver_features_;
}

bool VirtioPciDevice::CfgWindow(uint32_t* bar_offset, uint32_t* length) {
  const uint8_t bar = static_cast<uint8_t>(PciDevice::ConfigRead(cfg_cap_ + VIRTIO_PCI_CAP_BAR, 1));
  *bar_offset = PciDevice::ConfigRead(cfg_cap_ + VIRTIO_PCI_CAP_OFFSET, 4);
  *length = PciDevice::ConfigRead(cfg_cap_ + VIRTIO_PCI_CAP_LENGTH, 4);
  return bar == kVirtioBar && (*length == 1 || *length == 2 || *length == 4) &&
         *bar_offset % *length == 0 && *bar_offset < kVirtioBarSize &&
         *length <= kVirtioBarSize - *bar_offset;
}

uint32_t VirtioPciDevice::ConfigRead(uint32_t offset, uint32_t size) {
  const uint32_t data_at = cfg_cap_ + 16;  // pci_cfg_data
  if (cfg_cap_ == 0 || offset + size <= data_at || offset >= data_at + 4) {
    return PciDevice::ConfigRead(offset, size);
  }
  // 4.1.4.9: a read of pci_cfg_data reads cap.length bytes of the BAR.
  uint32_t bar_offset, length;
  uint8_t bytes[4] = {};
  if (CfgWindow(&bar_offset, &length)) BarRead(bar_offset, std::span<uint8_t>(bytes, length));
  uint32_t window;
  std::memcpy(&window, bytes, 4);
  // Capabilities are dword-aligned, so an aligned access overlapping the
  // data dword lies inside it.
  window >>= 8 * (offset - data_at);
  return size == 4 ? window : window & ((1u << (8 * size)) - 1);
}

void VirtioPciDevice::ConfigWrite(uint32_t offset, uint32_t size, uint32_t value) {
  const uint32_t data_at = cfg_cap_ + 16;
  if (cfg_cap_ == 0 || offset != data_at) {
    PciDevice::ConfigWrite(offset, size, value);
    return;
  }
  // A write of pci_cfg_data writes cap.length bytes of it to the BAR.
  uint32_t bar_offset, length;
  if (!CfgWindow(&bar_offset, &length) || size < length) return;
  uint8_t bytes[4];
  std::memcpy(bytes, &value, 4);
  BarWrite(bar_offset, std::span<const uint8_t>(bytes, length));
}

}  // namespace passage
