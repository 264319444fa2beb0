// A fake kernel behind passage::Sys: just enough of iommufd (/dev/iommu) and
// the legacy VFIO container/group uAPI to test iommu/ without privileges.
// It checks arguments the way the kernel does and keeps track of open fds,
// so tests can assert nothing leaked.
#ifndef PASSAGE_TESTS_UNIT_FAKE_KERNEL_H_
#define PASSAGE_TESTS_UNIT_FAKE_KERNEL_H_

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "iommu/dma_space.h"
#include "iommu/sys.h"

namespace passage::testing {

class FakeKernel : public Sys {
 public:
  enum class Kind { kIommufd, kContainer, kGroup, kOther };

  // Knobs.
  bool map_file_supported = true;
  std::vector<IovaRange> allowed = {{0, ~0ull}};
  bool group_viable = true;
  int fail_map_at = -1;  // fail the Nth map ioctl (0-based) with ENOMEM

  // Observations.
  std::vector<std::string> opened_paths;
  int map_calls = 0, map_file_calls = 0, unmap_calls = 0, destroy_calls = 0;
  std::map<uint64_t, uint64_t> mapped;  // iova -> length, across all spaces
  bool iommu_set = false;
  int group_container = -1;

  int AddFd(Kind kind) {
    const int fd = next_fd_++;
    fds_[fd] = kind;
    return fd;
  }
  size_t open_fds() const { return fds_.size(); }
  bool is_open(int fd) const { return fds_.count(fd) != 0; }

  int Open(const char* path, int) override {
    opened_paths.emplace_back(path);
    const std::string p(path);
    if (p == "/dev/iommu") return AddFd(Kind::kIommufd);
    if (p == "/dev/vfio/vfio") return AddFd(Kind::kContainer);
    if (p.rfind("/dev/vfio/", 0) == 0) return AddFd(Kind::kGroup);
    errno = ENOENT;
    return -1;
  }
  int Close(int fd) override {
    if (fds_.erase(fd) == 0) {
      errno = EBADF;
      return -1;
    }
    return 0;
  }
  ssize_t Pread(int, void*, size_t, off_t) override { return Fail(EINVAL); }
  ssize_t Pwrite(int, const void*, size_t, off_t) override { return Fail(EINVAL); }

  int Ioctl(int fd, unsigned long request, void* arg) override {
    auto it = fds_.find(fd);
    if (it == fds_.end()) return Fail(EBADF);
    switch (it->second) {
      case Kind::kIommufd: return IommufdIoctl(request, arg);
      case Kind::kContainer: return ContainerIoctl(request, arg);
      case Kind::kGroup: return GroupIoctl(request, arg);
      case Kind::kOther: return Fail(ENOTTY);
    }
    return Fail(ENOTTY);
  }

 private:
  static int Fail(int err) {
    errno = err;
    return -1;
  }
  bool Allowed(uint64_t iova, uint64_t len) const {
    for (auto& r : allowed) {
      if (iova >= r.start && iova + len - 1 <= r.last) return true;
    }
    return false;
  }
  int AddMapping(uint64_t iova, uint64_t len) {
    if (len == 0 || iova % 4096 || len % 4096) return Fail(EINVAL);
    if (!Allowed(iova, len)) return Fail(EINVAL);
    if (fail_map_at >= 0 && map_calls + map_file_calls == fail_map_at + 1) return Fail(ENOMEM);
    for (auto& [a, l] : mapped) {
      if (iova < a + l && a < iova + len) return Fail(EEXIST);
    }
    mapped[iova] = len;
    return 0;
  }
  int RemoveMapping(uint64_t iova, uint64_t len) {
    auto m = mapped.find(iova);
    if (m == mapped.end() || m->second != len) return Fail(ENOENT);
    mapped.erase(m);
    return 0;
  }

  int IommufdIoctl(unsigned long request, void* arg) {
    switch (request) {
      case IOMMU_IOAS_ALLOC: {
        auto* a = static_cast<iommu_ioas_alloc*>(arg);
        if (a->size < sizeof(*a) || a->flags) return Fail(EINVAL);
        a->out_ioas_id = next_id_++;
        ioas_.insert(a->out_ioas_id);
        return 0;
      }
      case IOMMU_DESTROY: {
        auto* d = static_cast<iommu_destroy*>(arg);
        ++destroy_calls;
        return ioas_.erase(d->id) ? 0 : Fail(ENOENT);
      }
      case IOMMU_IOAS_IOVA_RANGES: {
        auto* q = static_cast<iommu_ioas_iova_ranges*>(arg);
        if (!ioas_.count(q->ioas_id)) return Fail(ENOENT);
        const uint32_t room = q->num_iovas;
        q->num_iovas = static_cast<uint32_t>(allowed.size());
        if (room < allowed.size()) return Fail(EMSGSIZE);
        auto* out = reinterpret_cast<iommu_iova_range*>(q->allowed_iovas);
        for (size_t i = 0; i < allowed.size(); ++i) out[i] = {allowed[i].start, allowed[i].last};
        q->out_iova_alignment = 4096;
        return 0;
      }
      case IOMMU_IOAS_MAP: {
        auto* m = static_cast<iommu_ioas_map*>(arg);
        ++map_calls;
        if (!ioas_.count(m->ioas_id) || !(m->flags & IOMMU_IOAS_MAP_FIXED_IOVA) || !m->user_va) {
          return Fail(EINVAL);
        }
        return AddMapping(m->iova, m->length);
      }
      case IOMMU_IOAS_MAP_FILE: {
        if (!map_file_supported) return Fail(ENOTTY);
        auto* m = static_cast<iommu_ioas_map_file*>(arg);
        ++map_file_calls;
        if (!ioas_.count(m->ioas_id) || m->fd < 0) return Fail(EINVAL);
        return AddMapping(m->iova, m->length);
      }
      case IOMMU_IOAS_UNMAP: {
        auto* u = static_cast<iommu_ioas_unmap*>(arg);
        ++unmap_calls;
        if (!ioas_.count(u->ioas_id)) return Fail(ENOENT);
        return RemoveMapping(u->iova, u->length);
      }
    }
    return Fail(ENOTTY);
  }

  int ContainerIoctl(unsigned long request, void* arg) {
    switch (request) {
      case VFIO_GET_API_VERSION: return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION:
        return reinterpret_cast<uintptr_t>(arg) == VFIO_TYPE1v2_IOMMU ? 1 : 0;
      case VFIO_SET_IOMMU:
        if (group_container < 0 || iommu_set) return Fail(EINVAL);
        iommu_set = true;
        return 0;
      case VFIO_IOMMU_GET_INFO: {
        auto* info = static_cast<vfio_iommu_type1_info*>(arg);
        if (!iommu_set) return Fail(EINVAL);
        const size_t need = sizeof(vfio_iommu_type1_info) +
                            sizeof(vfio_iommu_type1_info_cap_iova_range) +
                            allowed.size() * sizeof(vfio_iova_range);
        info->flags = VFIO_IOMMU_INFO_CAPS;
        if (info->argsz < need) {
          info->argsz = static_cast<uint32_t>(need);
          info->cap_offset = 0;
          return 0;
        }
        info->cap_offset = sizeof(vfio_iommu_type1_info);
        auto* cap = reinterpret_cast<vfio_iommu_type1_info_cap_iova_range*>(
            reinterpret_cast<uint8_t*>(info) + info->cap_offset);
        cap->header.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE;
        cap->header.version = 1;
        cap->header.next = 0;
        cap->nr_iovas = static_cast<uint32_t>(allowed.size());
        for (size_t i = 0; i < allowed.size(); ++i) {
          cap->iova_ranges[i] = {allowed[i].start, allowed[i].last};
        }
        return 0;
      }
      case VFIO_IOMMU_MAP_DMA: {
        auto* m = static_cast<vfio_iommu_type1_dma_map*>(arg);
        ++map_calls;
        if (!iommu_set || !m->vaddr) return Fail(EINVAL);
        return AddMapping(m->iova, m->size);
      }
      case VFIO_IOMMU_UNMAP_DMA: {
        auto* u = static_cast<vfio_iommu_type1_dma_unmap*>(arg);
        ++unmap_calls;
        return RemoveMapping(u->iova, u->size);
      }
    }
    return Fail(ENOTTY);
  }

  int GroupIoctl(unsigned long request, void* arg) {
    switch (request) {
      case VFIO_GROUP_GET_STATUS: {
        auto* s = static_cast<vfio_group_status*>(arg);
        s->flags = (group_viable ? VFIO_GROUP_FLAGS_VIABLE : 0) |
                   (group_container >= 0 ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
        return 0;
      }
      case VFIO_GROUP_SET_CONTAINER: {
        const int c = *static_cast<int*>(arg);
        auto it = fds_.find(c);
        if (it == fds_.end() || it->second != Kind::kContainer) return Fail(EBADF);
        if (group_container >= 0) return Fail(EBUSY);
        group_container = c;
        return 0;
      }
      case VFIO_GROUP_UNSET_CONTAINER:
        if (group_container < 0) return Fail(EINVAL);
        group_container = -1;
        iommu_set = false;
        mapped.clear();
        return 0;
    }
    return Fail(ENOTTY);
  }

  int next_fd_ = 100;
  uint32_t next_id_ = 1;
  std::map<int, Kind> fds_;
  std::set<uint32_t> ioas_;
};

}  // namespace passage::testing

#endif  // PASSAGE_TESTS_UNIT_FAKE_KERNEL_H_
