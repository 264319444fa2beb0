#include "vmm/passthrough.h"

#include "absl/strings/str_cat.h"
#include "devices/vfio/vfio_pci.h"

namespace passage {

absl::StatusOr<std::unique_ptr<Passthrough>> Passthrough::Create(
    const std::vector<ObjectConfig>& objects, GuestMemory& memory, EventLoop& loop, int vm_fd,
    Sys* sys) {
  // Own every passed fd before anything can fail, so an error at one object
  // still closes the fds of the objects after it.
  std::vector<SysFd> passed;
  for (const ObjectConfig& o : objects) passed.emplace_back(sys, o.fd);
  std::unique_ptr<Passthrough> p(new Passthrough(memory, loop, vm_fd, sys));
  for (size_t i = 0; i < objects.size(); ++i) {
    const ObjectConfig& o = objects[i];
    if (o.type != "iommufd") continue;
    absl::StatusOr<std::unique_ptr<Iommufd>> iommufd =
        Iommufd::Create({o.id, passed[i].release()}, sys);
    if (!iommufd.ok()) {
      return absl::Status(iommufd.status().code(),
                          absl::StrCat(o.Label(), ": ", iommufd.status().message()));
    }
    if (absl::Status s = memory.AddListener(iommufd->get()); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(o.Label(), ": ", s.message()));
    }
    p->iommufds_.push_back(std::move(*iommufd));
    p->passed_fd_.push_back(o.fd >= 0);
  }
  return p;
}

Passthrough::~Passthrough() {
  // Devices are gone by now (the PCI bus went first); unmap in reverse.
  if (container_listening_) memory_.RemoveListener(container_.get());
  container_.reset();
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
    absl::StatusOr<std::unique_ptr<VfioDevice>> dev =
        VfioDevice::OpenWithIommufd(options, *iommufd, sys_);
    if (!dev.ok()) return dev.status();
    return std::shared_ptr<VfioDevice>(std::move(*dev));
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
  // The container has an IOMMU now; from here it follows guest memory.
  if (!container_listening_) {
    if (absl::Status s = memory_.AddListener(container_.get()); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(label, ": ", s.message()));
    }
    container_listening_ = true;
  }
  return std::shared_ptr<VfioDevice>(std::move(*dev));
}

absl::StatusOr<std::shared_ptr<PciDevice>> Passthrough::CreateVfioPci(const DeviceConfig& config,
                                                                      InterruptController& irq) {
  const std::string label = config.Label().substr(std::string("-device ").size());
  absl::StatusOr<std::shared_ptr<VfioDevice>> vfio = Open(config, label);
  if (!vfio.ok()) return vfio.status();
  absl::StatusOr<std::shared_ptr<VfioPciDevice>> pci =
      VfioPciDevice::Create(*vfio, irq, loop_, label);
  if (!pci.ok()) return pci.status();
  return std::shared_ptr<PciDevice>(std::move(*pci));
}

std::vector<Passthrough::ObjectInfo> Passthrough::DescribeObjects() const {
  std::vector<ObjectInfo> out;
  for (size_t i = 0; i < iommufds_.size(); ++i) {
    out.push_back({iommufds_[i]->name(), iommufds_[i]->ioas_id(), passed_fd_[i],
                   iommufds_[i]->used_map_file()});
  }
  return out;
}

}  // namespace passage
