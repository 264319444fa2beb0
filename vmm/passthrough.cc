#include "vmm/passthrough.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "devices/vfio/vfio_pci.h"
#include "vmm/boot_report.h"

namespace passage {

absl::StatusOr<std::unique_ptr<Passthrough>> Passthrough::Create(
    const std::vector<ObjectConfig>& objects, GuestMemory& memory, EventLoop& loop, int vm_fd,
    Sys* sys, DmaMapMode mode) {
  // Own every passed fd before anything can fail, so an error at one object
  // still closes the fds of the objects after it.
  std::vector<SysFd> passed;
  for (const ObjectConfig& o : objects) passed.emplace_back(sys, o.fd);
  std::unique_ptr<Passthrough> p(new Passthrough(memory, loop, vm_fd, sys, mode));
  for (size_t i = 0; i < objects.size(); ++i) {
    const ObjectConfig& o = objects[i];
    if (o.type != "iommufd") continue;
    if (absl::Status s = p->AddObjectOwned(o, std::move(passed[i])); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(o.Label(), ": ", s.message()));
    }
  }
  return p;
}

absl::Status Passthrough::AddObjectOwned(const ObjectConfig& o, SysFd fd) {
  const bool passed = fd.valid();
  absl::StatusOr<std::unique_ptr<Iommufd>> iommufd = Iommufd::Create({o.id, fd.release()}, sys_);
  if (!iommufd.ok()) return iommufd.status();
  // On an error AddListener unmaps what it mapped; the object then closes.
  if (absl::Status s = MapOrDefer(iommufd->get(), o.Label()); !s.ok()) return s;
  iommufds_.push_back(std::move(*iommufd));
  passed_fd_.push_back(passed);
  return absl::OkStatus();
}

absl::Status Passthrough::AddObject(const ObjectConfig& config, int fd) {
  SysFd owned;
  if (fd >= 0) owned = SysFd(sys_, fd);  // closed on every early return
  if (absl::Status s = AwaitMappingThread("object-add"); !s.ok()) return s;
  const std::string where = absl::StrCat("object-add: id '", config.id, "'");
  if (config.type != "iommufd") {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": qom-type '", config.type, "' is not supported (only iommufd)"));
  }
  if (config.id.empty()) return absl::InvalidArgumentError("object-add: id is empty");
  for (const auto& o : iommufds_) {
    if (o->name() == config.id) return absl::InvalidArgumentError(absl::StrCat(where, " is already in use"));
  }
  if (absl::Status s = AddObjectOwned(config, std::move(owned)); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("object-add: ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status Passthrough::RemoveObject(const std::string& id) {
  if (absl::Status s = AwaitMappingThread("object-del"); !s.ok()) return s;
  auto it = std::find_if(iommufds_.begin(), iommufds_.end(),
                         [&id](const std::unique_ptr<Iommufd>& o) { return o->name() == id; });
  if (it == iommufds_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("object-del: id '", id, "': no such object"));
  }
  if (std::vector<std::string> users = Users(id); !users.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "object-del: iommufd '", id, "' is in use by device ", absl::StrJoin(users, ", "),
        "; device_del it first"));
  }
  if (absl::Status s = pasid_->CheckObjectRemovable(id); !s.ok()) return s;
  memory_.RemoveListener(it->get());  // unmaps (and unpins) guest RAM
  passed_fd_.erase(passed_fd_.begin() + (it - iommufds_.begin()));
  iommufds_.erase(it);  // destroys the IOAS, closes the fd
  return absl::OkStatus();
}

std::vector<std::string> Passthrough::Users(const std::string& object) const {
  std::vector<std::string> out;
  for (const User& u : users_) {
    if (u.object == object && !u.vfio.expired()) out.push_back(u.device);
  }
  return out;
}

void Passthrough::ReleaseUnused() {
  // The container may be on the mapping thread's list: not while it runs.
  (void)AwaitMappingThread("");
  std::erase_if(users_, [](const User& u) { return u.vfio.expired(); });
  // Pairs with the release of the last reference to each expired device:
  // its teardown (group released) happened before what follows.
  std::atomic_thread_fence(std::memory_order_acquire);
  if (container_ == nullptr || !Users("").empty()) return;
  // Unmap while the IOMMU is still there (the last group left already, in
  // which case the kernel dropped the mappings and this only forgets).
  if (container_listening_) memory_.RemoveListener(container_.get());
  container_listening_ = false;
  {
    // A failed start's container, deferred and never mapped.
    absl::MutexLock lock(&map_mu_);
    std::erase_if(deferred_, [this](const Deferred& d) { return d.space == container_.get(); });
  }
  container_.reset();
}

Passthrough::~Passthrough() {
  StopMapping();
  // Devices are gone by now (the PCI bus went first); unmap in reverse.
  if (container_listening_) memory_.RemoveListener(container_.get());
  container_.reset();
  pasid_.reset();
  for (auto it = iommufds_.rbegin(); it != iommufds_.rend(); ++it) memory_.RemoveListener(it->get());
  iommufds_.clear();
}

absl::StatusOr<std::shared_ptr<VfioDevice>> Passthrough::Open(const DeviceConfig& config,
                                                              const std::string& label) {
  // A passed fd is ours from here: every early return closes it.
  SysFd passed;
  if (config.fd >= 0) passed = SysFd(sys_, config.fd);  // parsed by ParseFdNumber
  VfioDevice::Options options;
  options.id = label;
  options.kvm_vfio = &kvm_vfio_;
  options.pasid_space = pasid_.get();
  if (auto it = config.props.find("host"); it != config.props.end()) {
    absl::StatusOr<std::string> bdf = ParseHostBdf(it->second);
    if (!bdf.ok()) return absl::Status(bdf.status().code(), absl::StrCat(label, ": ", bdf.status().message()));
    options.sysfs_path = absl::StrCat("/sys/bus/pci/devices/", *bdf);
  } else if (auto it = config.props.find("sysfsdev"); it != config.props.end()) {
    options.sysfs_path = it->second;
    while (options.sysfs_path.size() > 1 && options.sysfs_path.back() == '/') {
      options.sysfs_path.pop_back();
    }
  }
  if (auto it = config.props.find("iommufd"); it != config.props.end()) {
    Iommufd* iommufd = nullptr;
    for (auto& o : iommufds_) {
      if (o->name() == it->second) iommufd = o.get();
    }
    if (iommufd == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          label, ": iommufd=", it->second, ": no -object iommufd with that id"));
    }
    options.fd = passed.release();  // OpenWithIommufd owns it on every path
    // A space still to be mapped by the thread: the thread attaches too.
    options.defer_attach = mode_ == DmaMapMode::kBackground && setting_up_;
    absl::StatusOr<std::unique_ptr<VfioDevice>> dev =
        VfioDevice::OpenWithIommufd(options, *iommufd, sys_);
    if (!dev.ok()) return dev.status();
    std::shared_ptr<VfioDevice> shared(std::move(*dev));
    if (options.defer_attach) {
      absl::MutexLock lock(&map_mu_);
      auto d = std::find_if(deferred_.begin(), deferred_.end(),
                            [iommufd](const Deferred& d) { return d.space == iommufd; });
      if (d == deferred_.end()) {
        return absl::InternalError(absl::StrCat(label, ": ", iommufd->name(),
                                                " is not waiting for the mapping thread"));
      }
      d->attach.push_back(shared);
    }
    return shared;
  }
  if (passed.valid()) {  // `passed` closes it
    return absl::InternalError(
        absl::StrCat(label, ": fd= without iommufd= (the device registry's check refuses it)"));
  }
  // Legacy path: one container per VM, made on first use.
  if (container_ == nullptr) {
    absl::StatusOr<std::unique_ptr<LegacyContainer>> c = LegacyContainer::Create(-1, sys_);
    if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat(label, ": ", c.status().message()));
    container_ = std::move(*c);
  }
  absl::StatusOr<std::unique_ptr<VfioDevice>> dev =
      VfioDevice::OpenWithContainer(options, *container_, sys_);
  if (!dev.ok()) return dev.status();
  // A container whose groups all left (a device closed late, after
  // ReleaseUnused looked) lost its IOMMU and with it every mapping: map
  // guest RAM again. (One whose mapping is deferred has none yet.)
  if (container_listening_ && container_->MappedStatus().ok() && container_->mappings().empty()) {
    memory_.RemoveListener(container_.get());
    container_listening_ = false;
  }
  // The container has an IOMMU now; from here it follows guest memory
  // (or will, once the mapping thread maps it).
  if (!container_listening_) {
    if (absl::Status s = MapOrDefer(container_.get(), ""); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(label, ": ", s.message()));
    }
    container_listening_ = true;
  }
  return std::shared_ptr<VfioDevice>(std::move(*dev));
}

absl::StatusOr<std::shared_ptr<PciDevice>> Passthrough::CreateVfioPci(const DeviceConfig& config,
                                                                      InterruptController& irq) {
  const std::string label = config.Label().substr(std::string("-device ").size());
  if (!setting_up_) {
    if (absl::Status s = AwaitMappingThread(label); !s.ok()) {
      if (config.fd >= 0) sys_->Close(config.fd);  // ours from the call on
      return s;
    }
  }
  absl::StatusOr<std::shared_ptr<VfioDevice>> vfio = Open(config, label);
  if (!vfio.ok()) return vfio.status();
  std::weak_ptr<VfioDevice> weak = *vfio;
  absl::StatusOr<std::shared_ptr<VfioPciDevice>> pci =
      VfioPciDevice::Create(std::move(*vfio), irq, loop_, label);
  if (!pci.ok()) return pci.status();
  auto object = config.props.find("iommufd");
  users_.push_back({config.id.empty() ? label : config.id, label,
                    object == config.props.end() ? "" : object->second, std::move(weak)});
  return std::shared_ptr<PciDevice>(std::move(*pci));
}

absl::Status Passthrough::PasidBind(uint32_t pasid, const std::string& object) {
  // A PASID bound now would translate through a space still filling up.
  if (absl::Status s = AwaitMappingThread("x-passage-pasid-bind"); !s.ok()) return s;
  for (auto& o : iommufds_) {
    if (o->name() == object) return pasid_->Bind(pasid, o.get());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("x-passage-pasid-bind: 'object' '", object, "': no such iommufd object"));
}

absl::Status Passthrough::PasidUnbind(uint32_t pasid, const std::string& object) {
  return pasid_->Unbind(pasid, object);
}

PasidSpace::Info Passthrough::DescribePasid() const {
  PasidSpace::Info info = pasid_->Describe();
  auto name = [this](std::string& device) {
    for (const User& u : users_) {
      if (u.label == device) device = u.device;
    }
  };
  for (PasidSpace::DeviceInfo& d : info.devices) name(d.id);
  for (PasidSpace::BindingInfo& b : info.bindings) {
    for (PasidSpace::AttachmentInfo& a : b.attachments) name(a.device);
  }
  return info;
}

absl::Status Passthrough::MapOrDefer(DmaSpace* space, const std::string& label) {
  if (mode_ == DmaMapMode::kSync || !setting_up_) return memory_.AddListener(space);
  std::map<uint64_t, uint64_t> planned;
  for (const MemoryRegion& r : memory_.regions()) planned[r.gpa] = r.size;
  space->DeferMapping(std::move(planned));
  absl::MutexLock lock(&map_mu_);
  deferred_.push_back({space, label, {}});
  return absl::OkStatus();
}

void Passthrough::StopMapping() {
  CancelMapping();
  if (mapper_.joinable()) mapper_.join();
}

void Passthrough::StartMapping(std::function<void(const absl::Status&)> on_failure) {
  setting_up_ = false;
  absl::MutexLock lock(&map_mu_);
  if (deferred_.empty()) {
    MarkBootPhase("dma_mapped");  // sync: all mapped during set-up
    return;
  }
  mapper_running_ = true;
  mapper_ = std::thread([this, on_failure = std::move(on_failure)] { MapDeferred(on_failure); });
}

void Passthrough::MapDeferred(std::function<void(const absl::Status&)> on_failure) {
  pthread_setname_np(pthread_self(), "passage-dmamap");
  absl::Status failed;
  for (;;) {
    Deferred next;
    bool cancelled;
    {
      absl::MutexLock lock(&map_mu_);
      if (deferred_.empty()) break;
      next = deferred_.front();
      deferred_.erase(deferred_.begin());
      cancelled = map_cancelled_;
      mapping_now_ = next.space;
    }
    absl::Status s;
    if (cancelled) {
      s = absl::CancelledError(absl::StrCat(next.space->name(), ": not mapped: the VM is stopping"));
    } else if (!failed.ok()) {
      s = absl::AbortedError(absl::StrCat(next.space->name(), ": not mapped: ", failed.message()));
    } else {
      // On an error AddListener unmaps what it mapped of this space.
      s = memory_.AddListener(next.space);
      if (!s.ok()) {
        failed = next.label.empty()
                     ? s
                     : absl::Status(s.code(), absl::StrCat(next.label, ": ", s.message()));
      } else {
        // RAM is in the IOAS: each attach now fills its domain from it.
        // The error names the device; the devices after it stay unattached.
        s = AttachDeferred(next.attach);
        if (!s.ok() && !absl::IsCancelled(s)) failed = s;
      }
    }
    absl::MutexLock lock(&map_mu_);
    next.space->FinishMapping(s);
    mapping_now_ = nullptr;
  }
  bool cancelled;
  {
    absl::MutexLock lock(&map_mu_);
    cancelled = map_cancelled_;
    map_outcome_ = !failed.ok() ? failed
                   : cancelled  ? absl::CancelledError("guest RAM mapping: the VM is stopping")
                                : absl::OkStatus();
  }
  if (!failed.ok()) {
    on_failure(failed);
  } else if (!cancelled) {
    MarkBootPhase("dma_mapped");
  }
  absl::MutexLock lock(&map_mu_);
  mapper_running_ = false;
}

absl::Status Passthrough::AttachDeferred(const std::vector<std::weak_ptr<VfioDevice>>& devices) {
  for (const std::weak_ptr<VfioDevice>& weak : devices) {
    {
      absl::MutexLock lock(&map_mu_);
      if (map_cancelled_) {
        return absl::CancelledError("guest RAM mapping: the VM is stopping");
      }
    }
    // Held while attaching: a device_del meanwhile closes it after this.
    std::shared_ptr<VfioDevice> device = weak.lock();
    if (device == nullptr) continue;  // went before it was attached
    if (absl::Status s = device->AttachDeferred(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void Passthrough::CancelMapping() {
  absl::MutexLock lock(&map_mu_);
  map_cancelled_ = true;
  for (const Deferred& d : deferred_) d.space->CancelWaits();
  if (mapping_now_ != nullptr) mapping_now_->CancelWaits();
}

absl::Status Passthrough::AwaitMappingThread(const std::string& what) {
  absl::MutexLock lock(&map_mu_);
  map_mu_.Await(absl::Condition(
      +[](bool* running) { return !*running; }, &mapper_running_));
  if (map_outcome_.ok() || what.empty()) return absl::OkStatus();
  return absl::Status(map_outcome_.code(),
                      absl::StrCat(what, ": guest RAM was not mapped (", map_outcome_.message(), ")"));
}

std::vector<Passthrough::ObjectInfo> Passthrough::DescribeObjects() const {
  std::vector<ObjectInfo> out;
  for (size_t i = 0; i < iommufds_.size(); ++i) {
    out.push_back({iommufds_[i]->name(), iommufds_[i]->ioas_id(), passed_fd_[i],
                   iommufds_[i]->used_map_file(), iommufds_[i]->mappings(),
                   Users(iommufds_[i]->name())});
  }
  return out;
}

std::optional<Passthrough::ContainerInfo> Passthrough::DescribeContainer() const {
  if (container_ == nullptr) return std::nullopt;
  return ContainerInfo{container_->mappings(), Users("")};
}

}  // namespace passage
