#include "iommu/iommufd.h"

#include <fcntl.h>
#include <linux/iommufd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "memory/unique_fd.h"

namespace passage {
absl::StatusOr<std::unique_ptr<Iommufd>> Iommufd::Create(const Options& options, Sys* sys) {
  SysFd fd;
  if (options.fd >= 0) {
    fd = SysFd(sys, options.fd);
  } else {
    fd = SysFd(sys, sys->Open("/dev/iommu", O_RDWR));
    if (!fd.valid()) return ErrnoError(absl::StrCat("iommufd ", options.id, ": opening /dev/iommu"));
  }
  std::unique_ptr<Iommufd> iommufd(
      new Iommufd(sys, options.id, std::move(fd), options.map_file));
  iommu_ioas_alloc alloc{};
  alloc.size = sizeof(alloc);
  if (sys->Ioctl(iommufd->fd(), IOMMU_IOAS_ALLOC, &alloc) != 0) {
    const int err = errno;
    if (options.fd >= 0 && (err == ENOTTY || err == EBADF || err == EINVAL)) {
      // passage owns every fd handed to it: this one is closed on return.
      return absl::InvalidArgumentError(absl::StrCat(
          "iommufd ", options.id, ": fd=", options.fd, " is not an open /dev/iommu (",
          std::strerror(err), ")"));
    }
    return ErrnoError(absl::StrCat("iommufd ", options.id, ": IOMMU_IOAS_ALLOC"), err);
  }
  iommufd->ioas_id_ = alloc.out_ioas_id;
  return iommufd;
}

Iommufd::~Iommufd() {
  if (!fd_.valid()) return;
  UnmapAll();
  if (ioas_id_ != 0) {
    iommu_destroy destroy{};
    destroy.size = sizeof(destroy);
    destroy.id = ioas_id_;
    sys_->Ioctl(fd_.get(), IOMMU_DESTROY, &destroy);
  }
}

absl::StatusOr<std::vector<IovaRange>> Iommufd::AllowedRanges() {
  std::vector<iommu_iova_range> ranges(8);
  for (int attempt = 0; attempt < 4; ++attempt) {
    iommu_ioas_iova_ranges q{};
    q.size = sizeof(q);
    q.ioas_id = ioas_id_;
    q.num_iovas = static_cast<uint32_t>(ranges.size());
    q.allowed_iovas = reinterpret_cast<uint64_t>(ranges.data());
    if (sys_->Ioctl(fd_.get(), IOMMU_IOAS_IOVA_RANGES, &q) == 0) {
      std::vector<IovaRange> out;
      for (uint32_t i = 0; i < q.num_iovas && i < ranges.size(); ++i) {
        out.push_back({ranges[i].start, ranges[i].last});
      }
      return out;
    }
    if (errno != EMSGSIZE) return ErrnoError(absl::StrCat(id_, ": IOMMU_IOAS_IOVA_RANGES"));
    ranges.resize(q.num_iovas);  // the kernel told us how many there are
  }
  return absl::InternalError(absl::StrCat(id_, ": IOMMU_IOAS_IOVA_RANGES keeps growing"));
}

absl::StatusOr<Iommufd::HwInfo> Iommufd::GetHwInfo(uint32_t dev_id, const std::string& who) {
  iommu_hw_info info{};
  info.size = sizeof(info);
  info.dev_id = dev_id;
  info.data_len = 0;  // only the generic fields: no driver-specific data
  if (sys_->Ioctl(fd_.get(), IOMMU_GET_HW_INFO, &info) != 0) {
    if (errno == EOPNOTSUPP || errno == ENOTTY) return HwInfo{};
    return ErrnoError(absl::StrCat(who, ": IOMMU_GET_HW_INFO on ", id_));
  }
  HwInfo out;
  out.max_pasid_log2 = info.out_max_pasid_log2;
  // The uAPI: the EXEC/PRIV bits mean nothing when the width is 0.
  if (out.max_pasid_log2 != 0) {
    out.pasid_exec = info.out_capabilities & IOMMU_HW_CAP_PCI_PASID_EXEC;
    out.pasid_priv = info.out_capabilities & IOMMU_HW_CAP_PCI_PASID_PRIV;
  }
  return out;
}

absl::StatusOr<uint32_t> Iommufd::AllocHwpt(uint32_t dev_id, uint32_t flags,
                                            const std::string& who) {
  iommu_hwpt_alloc alloc{};
  alloc.size = sizeof(alloc);
  alloc.flags = flags;
  alloc.dev_id = dev_id;
  alloc.pt_id = ioas_id_;
  alloc.data_type = IOMMU_HWPT_DATA_NONE;
  if (sys_->Ioctl(fd_.get(), IOMMU_HWPT_ALLOC, &alloc) != 0) {
    return ErrnoError(absl::StrCat(who, ": IOMMU_HWPT_ALLOC on the IOAS of ", id_));
  }
  return alloc.out_hwpt_id;
}

absl::Status Iommufd::DestroyObject(uint32_t id) {
  iommu_destroy destroy{};
  destroy.size = sizeof(destroy);
  destroy.id = id;
  if (sys_->Ioctl(fd_.get(), IOMMU_DESTROY, &destroy) != 0) {
    return ErrnoError(absl::StrCat(id_, ": IOMMU_DESTROY of object ", id));
  }
  return absl::OkStatus();
}

absl::Status Iommufd::MapIoctl(const DmaMapping& m) {
  const uint32_t flags =
      IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
  bool mapped = false;
  if (map_file_ && m.fd >= 0) {
    iommu_ioas_map_file map{};
    map.size = sizeof(map);
    map.flags = flags;
    map.ioas_id = ioas_id_;
    map.fd = m.fd;
    map.start = m.fd_offset;
    map.length = m.size;
    map.iova = m.iova;
    const int r = sys_->Ioctl(fd_.get(), IOMMU_IOAS_MAP_FILE, &map);
    if (r == 0) {
      mapped = true;
      used_map_file_ = true;
    } else if (errno != ENOTTY && errno != EOPNOTSUPP) {
      return IoctlResult(r, "IOMMU_IOAS_MAP_FILE of guest RAM at", m.iova, m.size);
    } else {
      map_file_ = false;  // older kernel: use user VA mappings from now on
    }
  }
  if (!mapped) {
    iommu_ioas_map map{};
    map.size = sizeof(map);
    map.flags = flags;
    map.ioas_id = ioas_id_;
    map.user_va = reinterpret_cast<uint64_t>(m.host);
    map.length = m.size;
    map.iova = m.iova;
    if (absl::Status s = IoctlResult(sys_->Ioctl(fd_.get(), IOMMU_IOAS_MAP, &map),
                                     "IOMMU_IOAS_MAP of guest RAM at", m.iova, m.size);
        !s.ok()) {
      return s;
    }
    used_map_file_ = false;
  }
  return absl::OkStatus();
}

absl::Status Iommufd::UnmapIoctl(uint64_t iova, uint64_t size) {
  iommu_ioas_unmap unmap{};
  unmap.size = sizeof(unmap);
  unmap.ioas_id = ioas_id_;
  unmap.iova = iova;
  unmap.length = size;
  return IoctlResult(sys_->Ioctl(fd_.get(), IOMMU_IOAS_UNMAP, &unmap), "IOMMU_IOAS_UNMAP", iova,
                     size);
}

}  // namespace passage
