// The legacy VFIO container (/dev/vfio/vfio, type1v2 IOMMU): one per VM,
// groups join it, guest RAM is mapped with VFIO_IOMMU_MAP_DMA. Kept beside
// iommufd so users can compare the two.
#ifndef PASSAGE_IOMMU_LEGACY_CONTAINER_H_
#define PASSAGE_IOMMU_LEGACY_CONTAINER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "iommu/dma_space.h"
#include "iommu/sys.h"

namespace passage {

class LegacyContainer : public DmaSpace {
 public:
  // Opens /dev/vfio/vfio, or adopts `fd` (>= 0); checks the API version and
  // type1v2 support.
  static absl::StatusOr<std::unique_ptr<LegacyContainer>> Create(int fd = -1,
                                                                 Sys* sys = &Sys::Real());
  ~LegacyContainer() override;

  const std::string& name() const override { return name_; }
  int fd() const { return fd_.get(); }

  // Puts a viable group into the container. The first group also selects
  // the type1v2 IOMMU (the kernel only allows that once a group is in).
  absl::Status AddGroup(int group_fd, int group_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes a group out again (VFIO_GROUP_UNSET_CONTAINER).
  void RemoveGroup(int group_fd, int group_id) ABSL_LOCKS_EXCLUDED(mu_);
  bool iommu_set() const { return iommu_set_; }

  absl::Status Map(const DmaMapping& mapping) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Unmap(uint64_t iova, uint64_t size) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<IovaRange>> AllowedRanges() override;
  std::map<uint64_t, uint64_t> mappings() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  LegacyContainer(Sys* sys, SysFd fd) : sys_(sys), fd_(std::move(fd)) {}

  Sys* const sys_;
  const std::string name_ = "vfio container";
  SysFd fd_;
  bool iommu_set_ = false;
  mutable absl::Mutex mu_;
  std::map<int, int> groups_ ABSL_GUARDED_BY(mu_);  // group id -> fd
  std::map<uint64_t, uint64_t> mappings_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage

#endif  // PASSAGE_IOMMU_LEGACY_CONTAINER_H_
