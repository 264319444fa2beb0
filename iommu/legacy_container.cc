#include "iommu/legacy_container.h"

#include <fcntl.h>
#include <linux/vfio.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "iommu/vfio_info.h"
#include "memory/unique_fd.h"

namespace passage {
absl::StatusOr<std::unique_ptr<LegacyContainer>> LegacyContainer::Create(int fd, Sys* sys) {
  SysFd owned(sys, fd >= 0 ? fd : sys->Open("/dev/vfio/vfio", O_RDWR));
  if (!owned.valid()) return ErrnoError("vfio container: opening /dev/vfio/vfio");
  const int version = sys->Ioctl(owned.get(), VFIO_GET_API_VERSION, nullptr);
  if (version != VFIO_API_VERSION) {
    return absl::FailedPreconditionError(absl::StrCat(
        "vfio container: ", fd >= 0 ? absl::StrCat("fd=", fd) : "/dev/vfio/vfio",
        " is not a VFIO container (API version ", version, ")"));
  }
  if (sys->Ioctl(owned.get(), VFIO_CHECK_EXTENSION,
                 reinterpret_cast<void*>(static_cast<uintptr_t>(VFIO_TYPE1v2_IOMMU))) <= 0) {
    return absl::FailedPreconditionError("vfio container: the kernel lacks the type1v2 IOMMU");
  }
  return std::unique_ptr<LegacyContainer>(new LegacyContainer(sys, std::move(owned)));
}

LegacyContainer::~LegacyContainer() {
  UnmapAll();
  absl::MutexLock lock(&groups_mu_);
  while (!groups_.empty()) LeaveLocked(groups_.begin()->first);
}

absl::StatusOr<int> LegacyContainer::AcquireGroup(int id, const std::string& device) {
  {
    absl::MutexLock lock(&groups_mu_);
    auto it = groups_.find(id);
    if (it != groups_.end()) {  // devices share groups
      ++it->second.users;
      return it->second.fd.get();
    }
    const std::string path = absl::StrCat("/dev/vfio/", id);
    SysFd fd(sys_, sys_->Open(path.c_str(), O_RDWR));
    if (!fd.valid()) {
      if (errno == EBUSY) {
        return absl::FailedPreconditionError(absl::StrCat(
            device, ": vfio group ", id, " is in use by another process (", path, ")"));
      }
      return ErrnoError(absl::StrCat(device, ": opening ", path));
    }
    vfio_group_status status{};
    status.argsz = sizeof(status);
    if (sys_->Ioctl(fd.get(), VFIO_GROUP_GET_STATUS, &status) != 0) {
      return ErrnoError(absl::StrCat(device, ": vfio group ", id, ": VFIO_GROUP_GET_STATUS"));
    }
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
      return absl::FailedPreconditionError(absl::StrCat(
          device, ": vfio group ", id,
          " is not viable: bind every device in the group to vfio-pci (or unbind it)"));
    }
    int container = fd_.get();
    if (sys_->Ioctl(fd.get(), VFIO_GROUP_SET_CONTAINER, &container) != 0) {
      const int err = errno;
      if (err == EINVAL && !mappings().empty()) {
        // type1 refuses a group whose reserved regions overlap live mappings.
        const std::string range = DescribeReservedOverlap(
            sys_, absl::StrCat("/sys/kernel/iommu_groups/", id, "/reserved_regions"), mappings());
        return absl::FailedPreconditionError(
            absl::StrCat(device, ": vfio group ", id, " cannot join the ", name_,
                         ": guest RAM mapped there overlaps the group's ", range, " (",
                         std::strerror(err), ")"));
      }
      return ErrnoError(absl::StrCat(device, ": vfio group ", id, ": VFIO_GROUP_SET_CONTAINER"),
                        err);
    }
    if (!iommu_set_) {
      if (sys_->Ioctl(fd_.get(), VFIO_SET_IOMMU,
                      reinterpret_cast<void*>(static_cast<uintptr_t>(VFIO_TYPE1v2_IOMMU))) != 0) {
        const int err = errno;
        sys_->Ioctl(fd.get(), VFIO_GROUP_UNSET_CONTAINER, nullptr);
        return ErrnoError(absl::StrCat(device, ": ", name_, ": VFIO_SET_IOMMU type1v2"), err);
      }
      iommu_set_ = true;
    }
    Group& g = groups_[id];
    g.fd = std::move(fd);
    g.users = 1;
  }
  // A new group may bring reserved ranges; RAM mapped before must avoid them.
  if (absl::Status s = CheckMappingsAfterAttach(device); !s.ok()) {
    ReleaseGroup(id);
    return s;
  }
  absl::MutexLock lock(&groups_mu_);
  return groups_.at(id).fd.get();
}

void LegacyContainer::ReleaseGroup(int id) {
  absl::MutexLock lock(&groups_mu_);
  auto it = groups_.find(id);
  if (it == groups_.end() || --it->second.users > 0) return;
  LeaveLocked(id);
}

void LegacyContainer::LeaveLocked(int id) {
  auto it = groups_.find(id);
  sys_->Ioctl(it->second.fd.get(), VFIO_GROUP_UNSET_CONTAINER, nullptr);
  groups_.erase(it);  // closes the group
  if (groups_.empty()) {
    iommu_set_ = false;
    ForgetAll();
  }
}

std::map<int, int> LegacyContainer::group_fds() const {
  absl::MutexLock lock(&groups_mu_);
  std::map<int, int> out;
  for (const auto& [id, g] : groups_) out[id] = g.fd.get();
  return out;
}

absl::StatusOr<std::vector<IovaRange>> LegacyContainer::AllowedRanges() {
  if (!iommu_set_) return absl::FailedPreconditionError("vfio container: no group attached yet");
  absl::StatusOr<std::vector<uint8_t>> buf =
      VfioQueryInfo(sys_, fd_.get(), VFIO_IOMMU_GET_INFO, sizeof(vfio_iommu_type1_info),
                    [](uint8_t*) {}, "vfio container: VFIO_IOMMU_GET_INFO");
  if (!buf.ok()) return buf.status();
  vfio_iommu_type1_info info;
  std::memcpy(&info, buf->data(), sizeof(info));
  if (info.flags & VFIO_IOMMU_INFO_CAPS) {
    for (const VfioInfoCap& cap : VfioInfoCaps(*buf, sizeof(info), info.cap_offset)) {
      if (cap.id != VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) continue;
      const auto* ranges = cap.As<vfio_iommu_type1_info_cap_iova_range>();
      if (ranges == nullptr) break;
      const size_t room = cap.Room<vfio_iommu_type1_info_cap_iova_range, vfio_iova_range>();
      std::vector<IovaRange> out;
      for (uint32_t i = 0; i < ranges->nr_iovas && i < room; ++i) {
        out.push_back({ranges->iova_ranges[i].start, ranges->iova_ranges[i].end});
      }
      return out;
    }
  }
  return std::vector<IovaRange>{{0, ~0ull}};  // no restrictions reported
}

absl::Status LegacyContainer::MapIoctl(const DmaMapping& m) {
  vfio_iommu_type1_dma_map map{};
  map.argsz = sizeof(map);
  map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  map.vaddr = reinterpret_cast<uint64_t>(m.host);
  map.iova = m.iova;
  map.size = m.size;
  return IoctlResult(sys_->Ioctl(fd_.get(), VFIO_IOMMU_MAP_DMA, &map),
                     "VFIO_IOMMU_MAP_DMA of guest RAM at", m.iova, m.size);
}

absl::Status LegacyContainer::UnmapIoctl(uint64_t iova, uint64_t size) {
  vfio_iommu_type1_dma_unmap unmap{};
  unmap.argsz = sizeof(unmap);
  unmap.iova = iova;
  unmap.size = size;
  return IoctlResult(sys_->Ioctl(fd_.get(), VFIO_IOMMU_UNMAP_DMA, &unmap), "VFIO_IOMMU_UNMAP_DMA",
                     iova, size);
}

}  // namespace passage
