#include "vmm/passthrough.h"

#include <fcntl.h>
#include <linux/kvm.h>

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "devices/vfio/vfio_pci.h"
#include "vmm/kvm.h"

namespace passage {

absl::StatusOr<std::unique_ptr<Passthrough>> Passthrough::Create(
    const std::vector<ObjectConfig>& objects, GuestMemory& memory, int vm_fd, Sys* sys) {
  std::unique_ptr<Passthrough> p(new Passthrough(memory, vm_fd, sys));
  for (const ObjectConfig& o : objects) {
    if (o.type != "iommufd") continue;
    absl::StatusOr<std::unique_ptr<Iommufd>> iommufd = Iommufd::Create({o.id, o.fd}, sys);
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
  if (kvm_vfio_.valid()) {
    for (const UniqueFd& fd : kvm_vfio_files_) {
      kvm_device_attr attr{};
      attr.group = KVM_DEV_VFIO_FILE;
      attr.attr = KVM_DEV_VFIO_FILE_DEL;
      int32_t f = fd.get();
      attr.addr = reinterpret_cast<uint64_t>(&f);
      Ioctl(kvm_vfio_.get(), KVM_SET_DEVICE_ATTR, &attr);
    }
  }
  kvm_vfio_files_.clear();  // the last references: VFIO devices release now
  // Devices are gone by now (the PCI bus went first); unmap in reverse.
  if (container_listening_) memory_.RemoveListener(container_.get());
  groups_.reset();
  container_.reset();
  for (auto it = iommufds_.rbegin(); it != iommufds_.rend(); ++it) memory_.RemoveListener(it->get());
  iommufds_.clear();
}

absl::StatusOr<std::shared_ptr<VfioDevice>> Passthrough::Open(const DeviceConfig& config,
                                                              const std::string& label) {
  VfioDevice::Options options;
  options.id = label;
  if (auto it = config.props.find("host"); it != config.props.end()) {
    absl::StatusOr<std::string> bdf = ParseHostBdf(it->second);
    if (!bdf.ok()) return bdf.status();
    options.sysfs_path = absl::StrCat("/sys/bus/pci/devices/", *bdf);
  } else if (auto it = config.props.find("sysfsdev"); it != config.props.end()) {
    options.sysfs_path = it->second;
    while (options.sysfs_path.size() > 1 && options.sysfs_path.back() == '/') {
      options.sysfs_path.pop_back();
    }
  } else if (auto it = config.props.find("fd"); it != config.props.end()) {
    (void)absl::SimpleAtoi(it->second, &options.fd);  // checked by CheckVfioPciConfig
  }
  if (auto it = config.props.find("iommufd"); it != config.props.end()) {
    Iommufd* iommufd = nullptr;
    for (auto& o : iommufds_) {
      if (o->name() == it->second) iommufd = o.get();
    }
    if (iommufd == nullptr) {
      if (options.fd >= 0) sys_->Close(options.fd);  // passage owns passed fds
      return absl::InvalidArgumentError(absl::StrCat(
          label, ": iommufd=", it->second, ": no -object iommufd with that id"));
    }
    absl::StatusOr<std::unique_ptr<VfioDevice>> dev =
        VfioDevice::OpenWithIommufd(options, *iommufd, sys_);
    if (!dev.ok()) return dev.status();
    return std::shared_ptr<VfioDevice>(std::move(*dev));
  }
  // Legacy path: one container per VM, made on first use.
  if (container_ == nullptr) {
    absl::StatusOr<std::unique_ptr<LegacyContainer>> c = LegacyContainer::Create(-1, sys_);
    if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat(label, ": ", c.status().message()));
    container_ = std::move(*c);
    groups_ = std::make_unique<VfioGroups>(container_.get(), sys_);
  }
  absl::StatusOr<std::unique_ptr<VfioDevice>> dev =
      VfioDevice::OpenWithContainer(options, *groups_, sys_);
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

absl::Status Passthrough::AddKvmVfioFile(int fd, const std::string& label) {
  if (vm_fd_ < 0) return absl::OkStatus();
  if (!kvm_vfio_.valid()) {
    kvm_create_device create{};
    create.type = KVM_DEV_TYPE_VFIO;
    if (Ioctl(vm_fd_, KVM_CREATE_DEVICE, &create) != 0) {
      return ErrnoError(absl::StrCat(label, ": KVM_CREATE_DEVICE (KVM-VFIO)"));
    }
    kvm_vfio_.reset(static_cast<int>(create.fd));
  }
  UniqueFd ref(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!ref.valid()) return ErrnoError(absl::StrCat(label, ": dup of the VFIO file"));
  kvm_device_attr attr{};
  attr.group = KVM_DEV_VFIO_FILE;
  attr.attr = KVM_DEV_VFIO_FILE_ADD;
  int32_t f = ref.get();
  attr.addr = reinterpret_cast<uint64_t>(&f);
  if (Ioctl(kvm_vfio_.get(), KVM_SET_DEVICE_ATTR, &attr) != 0) {
    if (errno == EEXIST) return absl::OkStatus();  // a group shared by two devices
    return ErrnoError(absl::StrCat(label, ": KVM_DEV_VFIO_FILE_ADD"));
  }
  kvm_vfio_files_.push_back(std::move(ref));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<PciDevice>> Passthrough::CreateVfioPci(const DeviceConfig& config,
                                                                      InterruptController& irq) {
  const std::string label = config.Label().substr(std::string("-device ").size());
  absl::StatusOr<std::shared_ptr<VfioDevice>> vfio = Open(config, label);
  if (!vfio.ok()) return vfio.status();
  if (absl::Status s = AddKvmVfioFile((*vfio)->kvm_file(), label); !s.ok()) return s;
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
