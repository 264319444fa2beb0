#include "devices/vfio/vfio_device.h"

#include <fcntl.h>
#include <linux/iommufd.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "iommu/vfio_info.h"
#include "memory/unique_fd.h"

namespace passage {
namespace {

std::string Basename(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path : path.substr(slash + 1));
}

bool IsHex(absl::string_view s, size_t len) {
  if (s.size() != len) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  return true;
}

// The device must exist and be bound to vfio-pci; errors say what to do.
absl::Status CheckBoundToVfioPci(Sys* sys, const std::string& id, const std::string& sysfs) {
  if (!sys->Exists(sysfs)) {
    return absl::NotFoundError(absl::StrCat(id, ": no such PCI device (", sysfs, " is missing)"));
  }
  absl::StatusOr<std::string> driver = sys->ReadLink(sysfs + "/driver");
  if (!driver.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        id, ": ", Basename(sysfs), " is bound to no driver; bind it to vfio-pci first"));
  }
  if (Basename(*driver) != "vfio-pci") {
    return absl::FailedPreconditionError(absl::StrCat(
        id, ": ", Basename(sysfs), " is bound to ", Basename(*driver),
        ", not vfio-pci; bind it to vfio-pci first"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ParseHostBdf(absl::string_view text) {
  // [DDDD:]BB:SS.F
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  std::string domain = "0000";
  if (parts.size() == 3) {
    if (!IsHex(parts[0], 4)) parts.clear();
    else domain = absl::AsciiStrToLower(parts[0]);
    if (!parts.empty()) parts.erase(parts.begin());
  }
  if (parts.size() == 2) {
    std::vector<absl::string_view> sf = absl::StrSplit(parts[1], '.');
    if (IsHex(parts[0], 2) && sf.size() == 2 && IsHex(sf[0], 2) && sf[1].size() == 1 &&
        sf[1][0] >= '0' && sf[1][0] <= '7') {
      uint32_t slot = 0;
      (void)absl::SimpleHexAtoi(sf[0], &slot);  // two hex digits: cannot fail
      if (slot < 32) {
        return absl::StrCat(domain, ":", absl::AsciiStrToLower(parts[0]), ":",
                            absl::AsciiStrToLower(sf[0]), ".", sf[1]);
      }
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("host=", text, ": not a PCI address (expected [DDDD:]BB:SS.F)"));
}

bool VfioRegionInfo::readable() const { return flags & VFIO_REGION_INFO_FLAG_READ; }
bool VfioRegionInfo::writable() const { return flags & VFIO_REGION_INFO_FLAG_WRITE; }

// ---- KVM-VFIO ------------------------------------------------------------

absl::Status KvmVfio::Add(int file, const std::string& device) {
  if (vm_fd_ < 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (auto it = users_.find(file); it != users_.end()) {  // a group shared by two devices
    ++it->second;
    return absl::OkStatus();
  }
  if (!dev_.valid()) {
    kvm_create_device create{};
    create.type = KVM_DEV_TYPE_VFIO;
    if (sys_->Ioctl(vm_fd_, KVM_CREATE_DEVICE, &create) != 0) {
      return ErrnoError(absl::StrCat(device, ": KVM_CREATE_DEVICE (KVM-VFIO)"));
    }
    dev_ = SysFd(sys_, static_cast<int>(create.fd));
  }
  kvm_device_attr attr{};
  attr.group = KVM_DEV_VFIO_FILE;
  attr.attr = KVM_DEV_VFIO_FILE_ADD;
  int32_t f = file;
  attr.addr = reinterpret_cast<uint64_t>(&f);
  if (sys_->Ioctl(dev_.get(), KVM_SET_DEVICE_ATTR, &attr) != 0) {
    return ErrnoError(absl::StrCat(device, ": KVM_DEV_VFIO_FILE_ADD"));
  }
  users_[file] = 1;
  return absl::OkStatus();
}

void KvmVfio::Remove(int file) {
  absl::MutexLock lock(&mu_);
  auto it = users_.find(file);
  if (it == users_.end() || --it->second > 0) return;
  users_.erase(it);
  kvm_device_attr attr{};
  attr.group = KVM_DEV_VFIO_FILE;
  attr.attr = KVM_DEV_VFIO_FILE_DEL;
  int32_t f = file;
  attr.addr = reinterpret_cast<uint64_t>(&f);
  sys_->Ioctl(dev_.get(), KVM_SET_DEVICE_ATTR, &attr);
}

// ---- device ---------------------------------------------------------------

absl::StatusOr<std::unique_ptr<VfioDevice>> VfioDevice::OpenWithIommufd(const Options& o,
                                                                         Iommufd& iommufd,
                                                                         Sys* sys) {
  std::unique_ptr<VfioDevice> dev(new VfioDevice(sys, o.id));
  if (o.fd >= 0) {
    dev->fd_ = SysFd(sys, o.fd);
  } else {
    if (absl::Status s = CheckBoundToVfioPci(sys, o.id, o.sysfs_path); !s.ok()) return s;
    absl::StatusOr<std::vector<std::string>> cdevs = sys->ListDir(o.sysfs_path + "/vfio-dev");
    // Only a missing directory means no cdev; anything else (EMFILE, EACCES)
    // is said as it is.
    if (!cdevs.ok() && !absl::IsNotFound(cdevs.status())) {
      return absl::Status(cdevs.status().code(),
                          absl::StrCat(o.id, ": ", cdevs.status().message()));
    }
    if (!cdevs.ok() || cdevs->empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          o.id, ": ", Basename(o.sysfs_path),
          " has no VFIO cdev (kernel without CONFIG_VFIO_DEVICE_CDEV?); drop iommufd= to use "
          "the legacy container"));
    }
    const std::string path = absl::StrCat("/dev/vfio/devices/", (*cdevs)[0]);
    dev->fd_ = SysFd(sys, sys->Open(path.c_str(), O_RDWR));
    if (!dev->fd_.valid()) {
      if (errno == EBUSY) {
        return absl::FailedPreconditionError(
            absl::StrCat(o.id, ": ", path, " is in use (opened by another process)"));
      }
      return ErrnoError(absl::StrCat(o.id, ": opening ", path));
    }
  }
  auto not_a_cdev = [&o] {
    return absl::InvalidArgumentError(absl::StrCat(
        o.id, ": fd=", o.fd, " is not a VFIO device cdev (/dev/vfio/devices/vfioN)"));
  };
  // KVM-VFIO before bind, as QEMU does: the kernel hands the device its KVM
  // (kvm_vfio_file_set_kvm) when the file is added, and the device picks it
  // up at bind (drivers that need KVM refuse to open without it).
  if (o.kvm_vfio != nullptr) {
    if (absl::Status s = o.kvm_vfio->Add(dev->fd(), o.id); !s.ok()) {
      // KVM takes only VFIO files (EINVAL for anything else).
      if (o.fd >= 0 && s.code() == absl::StatusCode::kInvalidArgument) return not_a_cdev();
      return s;
    }
    dev->kvm_vfio_ = o.kvm_vfio;
  }
  vfio_device_bind_iommufd bind{};
  bind.argsz = sizeof(bind);
  bind.iommufd = iommufd.fd();
  if (sys->Ioctl(dev->fd(), VFIO_DEVICE_BIND_IOMMUFD, &bind) != 0) {
    const int err = errno;
    if (err == ENOTTY) return not_a_cdev();
    if (err == EINVAL || err == EBUSY || err == EEXIST) {
      // The kernel refuses a second open of a cdev with EINVAL at bind time.
      return absl::FailedPreconditionError(absl::StrCat(
          o.id, ": device is in use (already opened and bound by another user): ",
          std::strerror(err)));
    }
    return ErrnoError(absl::StrCat(o.id, ": VFIO_DEVICE_BIND_IOMMUFD to ", iommufd.name()), err);
  }
  dev->devid_ = bind.out_devid;
  dev->iommufd_ = &iommufd;
  dev->sysfs_path_ = o.sysfs_path;
  dev->join_pasid_space_ = o.pasid_space;
  if (o.defer_attach) {
    // Access is granted at bind: the caller reads regions, sets up
    // interrupts and resets meanwhile; DMA stays blocked until attached.
    dev->attach_pending_ = true;
    if (absl::Status s = dev->ReadInfo(); !s.ok()) return s;
    return dev;
  }
  if (absl::Status s = dev->AttachToIoas(); !s.ok()) return s;
  if (absl::Status s = dev->ReadInfo(); !s.ok()) return s;
  if (absl::Status s = dev->JoinPasidSpace(); !s.ok()) return s;
  return dev;
}

absl::Status VfioDevice::AttachDeferred() {
  if (!attach_pending_) {
    return absl::FailedPreconditionError(absl::StrCat(id_, ": no deferred attach"));
  }
  attach_pending_ = false;
  if (absl::Status s = AttachToIoas(); !s.ok()) return s;
  return JoinPasidSpace();
}

absl::Status VfioDevice::AttachToIoas() {
  Iommufd& iommufd = *iommufd_;
  absl::StatusOr<Iommufd::HwInfo> hw = iommufd.GetHwInfo(devid_, id_);
  if (!hw.ok()) return hw.status();
  if (hw->max_pasid_log2 != 0) {
    absl::StatusOr<uint32_t> hwpt = iommufd.AllocHwpt(devid_, IOMMU_HWPT_ALLOC_PASID, id_);
    if (hwpt.ok()) {
      hw_info_ = *hw;
      hwpt_owner_ = &iommufd;  // from here the destructor destroys it
      main_hwpt_ = *hwpt;
    } else {
      std::fprintf(stderr,
                   "passage: %s: the device has %u PASID bits but no PASID-compatible domain (%s); "
                   "it works without PASID\n",
                   id_.c_str(), hw->max_pasid_log2, std::string(hwpt.status().message()).c_str());
    }
  }
  vfio_device_attach_iommufd_pt attach{};
  attach.argsz = sizeof(attach);
  attach.pt_id = main_hwpt_ != 0 ? main_hwpt_ : iommufd.ioas_id();
  if (sys_->Ioctl(fd(), VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) != 0) {
    const int err = errno;
    if (err == EADDRINUSE) {
      // iommufd refuses a device whose reserved regions overlap a mapping.
      const std::string range = DescribeReservedOverlap(
          sys_, sysfs_path_.empty() ? "" : sysfs_path_ + "/iommu_group/reserved_regions",
          iommufd.mappings());
      return absl::FailedPreconditionError(
          absl::StrCat(id_, ": guest RAM mapped in ", iommufd.name(),
                       " overlaps the device's ", range, " (", std::strerror(err), ")"));
    }
    return ErrnoError(absl::StrCat(id_, ": VFIO_DEVICE_ATTACH_IOMMUFD_PT to the IOAS of ",
                                 iommufd.name()), err);
  }
  attached_ = true;  // from here the destructor detaches
  // The device's reserved regions show in the IOAS only now: RAM mapped
  // before must not sit in them.
  if (absl::Status s = iommufd.CheckMappingsAfterAttach(id_); !s.ok()) {
    // A refusal names the device already; a failed query names only the object.
    if (absl::StrContains(s.message(), id_)) return s;
    return absl::Status(s.code(), absl::StrCat(id_, ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status VfioDevice::JoinPasidSpace() {
  // Last: the device is complete when it takes the live PASIDs.
  if (join_pasid_space_ == nullptr) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<PasidSpace::Registration>> r = join_pasid_space_->AddDevice(this);
  if (!r.ok()) return r.status();
  pasid_space_ = join_pasid_space_;
  pasid_registration_ = std::move(*r);
  return absl::OkStatus();
}

absl::Status VfioDevice::AttachPasid(uint32_t pasid, uint32_t hwpt_id) {
  vfio_device_attach_iommufd_pt attach{};
  attach.argsz = sizeof(attach);
  attach.flags = VFIO_DEVICE_ATTACH_PASID;
  attach.pt_id = hwpt_id;
  attach.pasid = pasid;
  if (sys_->Ioctl(fd(), VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) != 0) {
    return ErrnoError(absl::StrCat(id_, ": VFIO_DEVICE_ATTACH_IOMMUFD_PT of pasid ", pasid,
                                   " to HWPT ", hwpt_id));
  }
  return absl::OkStatus();
}

absl::Status VfioDevice::DetachPasid(uint32_t pasid) {
  vfio_device_detach_iommufd_pt detach{};
  detach.argsz = sizeof(detach);
  detach.flags = VFIO_DEVICE_DETACH_PASID;
  detach.pasid = pasid;
  if (sys_->Ioctl(fd(), VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach) != 0) {
    return ErrnoError(absl::StrCat(id_, ": VFIO_DEVICE_DETACH_IOMMUFD_PT of pasid ", pasid));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<VfioDevice>> VfioDevice::OpenWithContainer(
    const Options& o, LegacyContainer& container, Sys* sys) {
  if (o.fd >= 0) {
    sys->Close(o.fd);  // passage owns passed fds, also on errors
    return absl::InvalidArgumentError(absl::StrCat(
        o.id, ": fd= needs iommufd= (a passed fd is a VFIO cdev, bound through iommufd)"));
  }
  if (absl::Status s = CheckBoundToVfioPci(sys, o.id, o.sysfs_path); !s.ok()) return s;
  absl::StatusOr<std::string> group_link = sys->ReadLink(o.sysfs_path + "/iommu_group");
  int group_id = -1;
  if (!group_link.ok() || !absl::SimpleAtoi(Basename(*group_link), &group_id)) {
    return absl::FailedPreconditionError(
        absl::StrCat(o.id, ": ", Basename(o.sysfs_path), " has no IOMMU group"));
  }
  absl::StatusOr<int> group_fd = container.AcquireGroup(group_id, o.id);
  if (!group_fd.ok()) return group_fd.status();
  std::unique_ptr<VfioDevice> dev(new VfioDevice(sys, o.id));
  dev->container_ = &container;  // from here the destructor releases the group
  dev->group_id_ = group_id;
  dev->group_fd_ = *group_fd;
  if (o.kvm_vfio != nullptr) {
    if (absl::Status s = o.kvm_vfio->Add(*group_fd, o.id); !s.ok()) return s;
    dev->kvm_vfio_ = o.kvm_vfio;
  }
  std::string bdf = Basename(o.sysfs_path);
  dev->fd_ = SysFd(sys, sys->Ioctl(*group_fd, VFIO_GROUP_GET_DEVICE_FD, bdf.data()));
  if (!dev->fd_.valid()) {
    if (errno == EBUSY) {
      return absl::FailedPreconditionError(absl::StrCat(o.id, ": ", bdf, " is in use"));
    }
    return ErrnoError(absl::StrCat(o.id, ": VFIO_GROUP_GET_DEVICE_FD ", bdf));
  }
  if (absl::Status s = dev->ReadInfo(); !s.ok()) return s;
  return dev;
}

VfioDevice::~VfioDevice() {
  // PASIDs first: they hang off the whole-device attachment.
  pasid_registration_.reset();
  if (fd_.valid() && attached_) {
    vfio_device_detach_iommufd_pt detach{};
    detach.argsz = sizeof(detach);
    sys_->Ioctl(fd_.get(), VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach);
  }
  // An attached HWPT cannot be destroyed: after the detach.
  if (hwpt_owner_ != nullptr) {
    if (absl::Status s = hwpt_owner_->DestroyObject(main_hwpt_); !s.ok()) {
      std::fprintf(stderr, "passage: %s: %s\n", id_.c_str(), std::string(s.message()).c_str());
    }
  }
  // KVM holds a reference to the file: delete it first, so closing the fd
  // drops the last reference and the cdev unbinds from iommufd now.
  if (kvm_vfio_ != nullptr) kvm_vfio_->Remove(kvm_file());
  fd_.reset();
  if (container_ != nullptr) container_->ReleaseGroup(group_id_);
}

absl::Status VfioDevice::ReadInfo() {
  vfio_device_info info{};
  info.argsz = sizeof(info);
  if (sys_->Ioctl(fd(), VFIO_DEVICE_GET_INFO, &info) != 0) {
    return ErrnoError(absl::StrCat(id_, ": VFIO_DEVICE_GET_INFO"));
  }
  if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) {
    return absl::InvalidArgumentError(absl::StrCat(id_, ": not a PCI device"));
  }
  if (info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
    return absl::FailedPreconditionError(absl::StrCat(id_, ": device reports no config region"));
  }
  num_regions_ = info.num_regions;
  num_irqs_ = info.num_irqs;
  can_reset_ = info.flags & VFIO_DEVICE_FLAGS_RESET;
  return absl::OkStatus();
}

absl::StatusOr<VfioRegionInfo> VfioDevice::RegionInfo(uint32_t index) const {
  absl::StatusOr<std::vector<uint8_t>> buf = VfioQueryInfo(
      sys_, fd(), VFIO_DEVICE_GET_REGION_INFO, sizeof(vfio_region_info),
      [index](uint8_t* b) { reinterpret_cast<vfio_region_info*>(b)->index = index; },
      absl::StrCat(id_, ": VFIO_DEVICE_GET_REGION_INFO ", index));
  if (!buf.ok()) return buf.status();
  vfio_region_info info;
  std::memcpy(&info, buf->data(), sizeof(info));
  VfioRegionInfo r;
  r.index = index;
  r.flags = info.flags;
  r.size = info.size;
  r.offset = info.offset;
  bool sparse = false;
  if (info.flags & VFIO_REGION_INFO_FLAG_CAPS) {
    for (const VfioInfoCap& cap : VfioInfoCaps(*buf, sizeof(info), info.cap_offset)) {
      if (cap.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
        const auto* areas = cap.As<vfio_region_info_cap_sparse_mmap>();
        if (areas == nullptr) continue;
        const size_t room = cap.Room<vfio_region_info_cap_sparse_mmap, vfio_region_sparse_mmap_area>();
        sparse = true;
        for (uint32_t i = 0; i < areas->nr_areas && i < room; ++i) {
          const auto& a = areas->areas[i];
          if (a.size == 0 || a.offset > r.size || a.size > r.size - a.offset) continue;
          r.mmap_areas.push_back({a.offset, a.size});
        }
      } else if (cap.id == VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
        r.msix_mappable = true;
      }
    }
  }
  if ((r.flags & VFIO_REGION_INFO_FLAG_MMAP) && !sparse && r.size > 0) {
    r.mmap_areas.push_back({0, r.size});
  }
  if (!(r.flags & VFIO_REGION_INFO_FLAG_MMAP)) r.mmap_areas.clear();
  return r;
}

absl::StatusOr<VfioIrqInfo> VfioDevice::IrqInfo(uint32_t index) const {
  vfio_irq_info info{};
  info.argsz = sizeof(info);
  info.index = index;
  if (sys_->Ioctl(fd(), VFIO_DEVICE_GET_IRQ_INFO, &info) != 0) {
    return ErrnoError(absl::StrCat(id_, ": VFIO_DEVICE_GET_IRQ_INFO ", index));
  }
  return VfioIrqInfo{info.flags, info.count};
}

absl::Status VfioDevice::RegionIo(const VfioRegionInfo& region, uint64_t offset, void* data,
                                  size_t size, bool write) const {
  const char* what = write ? ": write of region " : ": read of region ";
  if (offset > region.size || size > region.size - offset) {
    return absl::OutOfRangeError(
        absl::StrCat(id_, what, region.index, " at 0x", absl::Hex(offset), " out of range"));
  }
  const off_t at = static_cast<off_t>(region.offset + offset);
  const ssize_t n = write ? sys_->Pwrite(fd(), data, size, at) : sys_->Pread(fd(), data, size, at);
  if (n != static_cast<ssize_t>(size)) {
    return ErrnoError(absl::StrCat(id_, what, region.index, " at 0x", absl::Hex(offset)),
                      n < 0 ? errno : EIO);
  }
  return absl::OkStatus();
}

absl::Status VfioDevice::ReadRegion(const VfioRegionInfo& region, uint64_t offset,
                                    std::span<uint8_t> data) const {
  return RegionIo(region, offset, data.data(), data.size(), false);
}

absl::Status VfioDevice::WriteRegion(const VfioRegionInfo& region, uint64_t offset,
                                     std::span<const uint8_t> data) const {
  return RegionIo(region, offset, const_cast<uint8_t*>(data.data()), data.size(), true);
}

absl::Status VfioDevice::SetIrqEventfds(uint32_t index, uint32_t start,
                                        std::span<const int32_t> fds) const {
  std::vector<uint8_t> buf(sizeof(vfio_irq_set) + fds.size() * sizeof(int32_t));
  auto* set = reinterpret_cast<vfio_irq_set*>(buf.data());
  set->argsz = static_cast<uint32_t>(buf.size());
  set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  set->index = index;
  set->start = start;
  set->count = static_cast<uint32_t>(fds.size());
  std::memcpy(set->data, fds.data(), fds.size() * sizeof(int32_t));
  if (sys_->Ioctl(fd(), VFIO_DEVICE_SET_IRQS, set) != 0) {
    return ErrnoError(absl::StrCat(id_, ": VFIO_DEVICE_SET_IRQS index ", index, " vectors ", start,
                                 "..", start + fds.size()));
  }
  return absl::OkStatus();
}

absl::Status VfioDevice::SetIrqUnmaskEventfd(uint32_t index, int32_t efd) const {
  std::vector<uint8_t> buf(sizeof(vfio_irq_set) + sizeof(int32_t));
  auto* set = reinterpret_cast<vfio_irq_set*>(buf.data());
  set->argsz = static_cast<uint32_t>(buf.size());
  set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK;
  set->index = index;
  set->start = 0;
  set->count = 1;
  std::memcpy(set->data, &efd, sizeof(efd));
  if (sys_->Ioctl(fd(), VFIO_DEVICE_SET_IRQS, set) != 0) {
    return ErrnoError(absl::StrCat(id_, ": VFIO_DEVICE_SET_IRQS unmask eventfd, index ", index));
  }
  return absl::OkStatus();
}

absl::Status VfioDevice::DisableIrqs(uint32_t index) const {
  vfio_irq_set set{};
  set.argsz = sizeof(set);
  set.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
  set.index = index;
  set.start = 0;
  set.count = 0;
  if (sys_->Ioctl(fd(), VFIO_DEVICE_SET_IRQS, &set) != 0) {
    return ErrnoError(absl::StrCat(id_, ": disabling interrupts, index ", index));
  }
  return absl::OkStatus();
}

absl::Status VfioDevice::Reset() const {
  if (can_reset_) {
    if (sys_->Ioctl(fd(), VFIO_DEVICE_RESET, nullptr) != 0) {
      return ErrnoError(absl::StrCat(id_, ": VFIO_DEVICE_RESET"));
    }
    return absl::OkStatus();
  }
  absl::Status hot = HotReset();
  if (!hot.ok() && !said_not_reset_) {
    said_not_reset_ = true;
    std::fprintf(stderr, "passage: warning: %s: device not reset (no function reset; hot reset: %s)\n",
                 id_.c_str(), std::string(hot.message()).c_str());
  }
  return absl::OkStatus();
}

// A PCI hot reset (secondary bus or slot) resets every device on the bus or
// slot, so VFIO allows it only when the caller owns them all: on the cdev
// path the kernel checks that against our iommufd (the INFO flags say so and
// the reset takes no group list); on the legacy path we prove it with the
// fds of every affected group, which must all be in our container.
absl::Status VfioDevice::HotReset() const {
  std::vector<uint8_t> buf(sizeof(vfio_pci_hot_reset_info));
  for (int attempt = 0;; ++attempt) {
    auto* info = reinterpret_cast<vfio_pci_hot_reset_info*>(buf.data());
    info->argsz = static_cast<uint32_t>(buf.size());
    if (sys_->Ioctl(fd(), VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) == 0) break;
    if (errno != ENOSPC || attempt > 0 || info->count > 256) {
      return ErrnoError("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO");
    }
    buf.resize(sizeof(vfio_pci_hot_reset_info) +
               info->count * sizeof(vfio_pci_dependent_device));
  }
  const auto* info = reinterpret_cast<const vfio_pci_hot_reset_info*>(buf.data());
  const size_t room = (buf.size() - sizeof(*info)) / sizeof(vfio_pci_dependent_device);
  std::vector<int32_t> group_fds;
  if (uses_iommufd()) {
    if (!(info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED)) {
      return absl::FailedPreconditionError(
          "it would also reset devices not bound to this process's iommufd");
    }
  } else {
    const std::map<int, int> ours = container_->group_fds();
    std::set<int> seen;
    for (uint32_t i = 0; i < info->count && i < room; ++i) {
      const int group = static_cast<int>(info->devices[i].group_id);
      auto it = ours.find(group);
      if (it == ours.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("it would also reset vfio group ", group, ", which passage does not hold"));
      }
      if (seen.insert(group).second) group_fds.push_back(it->second);
    }
  }
  std::vector<uint8_t> req(sizeof(vfio_pci_hot_reset) + group_fds.size() * sizeof(int32_t));
  auto* reset = reinterpret_cast<vfio_pci_hot_reset*>(req.data());
  reset->argsz = static_cast<uint32_t>(req.size());
  reset->count = static_cast<uint32_t>(group_fds.size());  // zero on the cdev path
  if (!group_fds.empty()) {
    std::memcpy(req.data() + sizeof(*reset), group_fds.data(), group_fds.size() * sizeof(int32_t));
  }
  if (sys_->Ioctl(fd(), VFIO_DEVICE_PCI_HOT_RESET, reset) != 0) {
    return ErrnoError("VFIO_DEVICE_PCI_HOT_RESET");
  }
  return absl::OkStatus();
}

}  // namespace passage
