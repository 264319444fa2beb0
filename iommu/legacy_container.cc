#include "iommu/legacy_container.h"

#include <fcntl.h>
#include <linux/vfio.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
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
  std::map<uint64_t, uint64_t> left = mappings();
  for (auto it = left.rbegin(); it != left.rend(); ++it) {
    if (absl::Status s = Unmap(it->first, it->second); !s.ok()) {
      std::fprintf(stderr, "passage: %s\n", std::string(s.message()).c_str());
    }
  }
  std::map<int, int> groups;
  {
    absl::MutexLock lock(&mu_);
    groups = groups_;
  }
  for (auto& [id, gfd] : groups) RemoveGroup(gfd, id);
}

absl::Status LegacyContainer::AddGroup(int group_fd, int group_id) {
  vfio_group_status status{};
  status.argsz = sizeof(status);
  if (sys_->Ioctl(group_fd, VFIO_GROUP_GET_STATUS, &status) != 0) {
    return ErrnoError(absl::StrCat("vfio group ", group_id, ": VFIO_GROUP_GET_STATUS"));
  }
  if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "vfio group ", group_id,
        " is not viable: bind every device in the group to vfio-pci (or unbind it)"));
  }
  absl::MutexLock lock(&mu_);
  if (groups_.count(group_id)) return absl::OkStatus();  // devices share groups
  int container = fd_.get();
  if (sys_->Ioctl(group_fd, VFIO_GROUP_SET_CONTAINER, &container) != 0) {
    return ErrnoError(absl::StrCat("vfio group ", group_id, ": VFIO_GROUP_SET_CONTAINER"));
  }
  if (!iommu_set_) {
    if (sys_->Ioctl(fd_.get(), VFIO_SET_IOMMU,
                    reinterpret_cast<void*>(static_cast<uintptr_t>(VFIO_TYPE1v2_IOMMU))) != 0) {
      const int err = errno;
      sys_->Ioctl(group_fd, VFIO_GROUP_UNSET_CONTAINER, nullptr);
      return ErrnoError("vfio container: VFIO_SET_IOMMU type1v2", err);
    }
    iommu_set_ = true;
  }
  groups_[group_id] = group_fd;
  return absl::OkStatus();
}

void LegacyContainer::RemoveGroup(int group_fd, int group_id) {
  absl::MutexLock lock(&mu_);
  if (groups_.erase(group_id) == 0) return;
  sys_->Ioctl(group_fd, VFIO_GROUP_UNSET_CONTAINER, nullptr);
  // The kernel drops the IOMMU (and every mapping) with the last group.
  if (groups_.empty()) {
    iommu_set_ = false;
    mappings_.clear();
  }
}

absl::StatusOr<std::vector<IovaRange>> LegacyContainer::AllowedRanges() {
  if (!iommu_set_) return absl::FailedPreconditionError("vfio container: no group attached yet");
  std::vector<uint8_t> buf(sizeof(vfio_iommu_type1_info));
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto* info = reinterpret_cast<vfio_iommu_type1_info*>(buf.data());
    info->argsz = static_cast<uint32_t>(buf.size());
    if (sys_->Ioctl(fd_.get(), VFIO_IOMMU_GET_INFO, info) != 0) {
      return ErrnoError("vfio container: VFIO_IOMMU_GET_INFO");
    }
    if (info->argsz > buf.size()) {
      buf.resize(info->argsz);
      continue;
    }
    if (!(info->flags & VFIO_IOMMU_INFO_CAPS) || info->cap_offset == 0) {
      return std::vector<IovaRange>{{0, ~0ull}};  // no restrictions reported
    }
    // Walk the capability chain for the IOVA range list; every offset comes
    // from the kernel but is still bounds-checked.
    uint32_t off = info->cap_offset;
    for (int hops = 0; off != 0 && hops < 64; ++hops) {
      if (off + sizeof(vfio_info_cap_header) > buf.size()) break;
      auto* hdr = reinterpret_cast<vfio_info_cap_header*>(buf.data() + off);
      if (hdr->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE &&
          off + sizeof(vfio_iommu_type1_info_cap_iova_range) <= buf.size()) {
        auto* cap = reinterpret_cast<vfio_iommu_type1_info_cap_iova_range*>(hdr);
        std::vector<IovaRange> out;
        const size_t room = (buf.size() - off - sizeof(*cap)) / sizeof(vfio_iova_range);
        for (uint32_t i = 0; i < cap->nr_iovas && i < room; ++i) {
          out.push_back({cap->iova_ranges[i].start, cap->iova_ranges[i].end});
        }
        return out;
      }
      off = hdr->next;
    }
    return std::vector<IovaRange>{{0, ~0ull}};
  }
  return absl::InternalError("vfio container: VFIO_IOMMU_GET_INFO keeps growing");
}

absl::Status LegacyContainer::Map(const DmaMapping& m) {
  absl::StatusOr<std::vector<IovaRange>> allowed = AllowedRanges();
  if (!allowed.ok()) return allowed.status();
  if (absl::Status s = CheckIovaAllowed(name_, m.iova, m.size, *allowed); !s.ok()) return s;
  vfio_iommu_type1_dma_map map{};
  map.argsz = sizeof(map);
  map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  map.vaddr = reinterpret_cast<uint64_t>(m.host);
  map.iova = m.iova;
  map.size = m.size;
  if (sys_->Ioctl(fd_.get(), VFIO_IOMMU_MAP_DMA, &map) != 0) {
    return ErrnoError(absl::StrCat(name_, ": VFIO_IOMMU_MAP_DMA of guest RAM at 0x",
                                 absl::Hex(m.iova), "+0x", absl::Hex(m.size)));
  }
  absl::MutexLock lock(&mu_);
  mappings_[m.iova] = m.size;
  return absl::OkStatus();
}

absl::Status LegacyContainer::Unmap(uint64_t iova, uint64_t size) {
  {
    absl::MutexLock lock(&mu_);
    if (!mappings_.count(iova)) return absl::OkStatus();  // dropped with the last group
  }
  vfio_iommu_type1_dma_unmap unmap{};
  unmap.argsz = sizeof(unmap);
  unmap.iova = iova;
  unmap.size = size;
  if (sys_->Ioctl(fd_.get(), VFIO_IOMMU_UNMAP_DMA, &unmap) != 0) {
    return ErrnoError(absl::StrCat(name_, ": VFIO_IOMMU_UNMAP_DMA 0x", absl::Hex(iova), "+0x",
                                 absl::Hex(size)));
  }
  absl::MutexLock lock(&mu_);
  mappings_.erase(iova);
  return absl::OkStatus();
}

std::map<uint64_t, uint64_t> LegacyContainer::mappings() const {
  absl::MutexLock lock(&mu_);
  return mappings_;
}

}  // namespace passage
