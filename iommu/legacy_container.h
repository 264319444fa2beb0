// The legacy VFIO container (/dev/vfio/vfio, type1v2 IOMMU): one per VM,
// groups join it, guest RAM is mapped with VFIO_IOMMU_MAP_DMA. Kept beside
// iommufd so users can compare the two. The container is the one owner of
// the VFIO groups: it opens each once and counts the devices using it.
#ifndef PASSAGE_IOMMU_LEGACY_CONTAINER_H_
#define PASSAGE_IOMMU_LEGACY_CONTAINER_H_

#include <atomic>
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
  // Unmaps what is left, then every group leaves the container and closes.
  ~LegacyContainer() override;

  const std::string& name() const override { return name_; }
  int fd() const { return fd_.get(); }

  // The fd of VFIO group `id` for `device` (named in errors). The first
  // user opens /dev/vfio/<id>, checks the group is viable and puts it into
  // the container; the first group also selects the type1v2 IOMMU (the
  // kernel allows that only once a group is in). A group that joins while
  // RAM is mapped must not reserve IOVA that RAM uses.
  absl::StatusOr<int> AcquireGroup(int id, const std::string& device)
      ABSL_LOCKS_EXCLUDED(groups_mu_);
  // One user fewer; the last takes the group out and closes it. The kernel
  // drops the IOMMU, and with it every mapping, when the last group leaves.
  void ReleaseGroup(int id) ABSL_LOCKS_EXCLUDED(groups_mu_);
  bool iommu_set() const { return iommu_set_; }
  // The fds of the groups in the container (proof of ownership for a hot reset).
  std::map<int, int> group_fds() const ABSL_LOCKS_EXCLUDED(groups_mu_);

  absl::StatusOr<std::vector<IovaRange>> AllowedRanges() override;

 protected:
  absl::Status MapIoctl(const DmaMapping& mapping) override;
  absl::Status UnmapIoctl(uint64_t iova, uint64_t size) override;

 private:
  struct Group {
    SysFd fd;
    int users = 0;
  };
  LegacyContainer(Sys* sys, SysFd fd) : sys_(sys), fd_(std::move(fd)) {}
  // Takes group `id` out of the container and closes it.
  void LeaveLocked(int id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(groups_mu_);

  Sys* const sys_;
  const std::string name_ = "vfio container";
  SysFd fd_;
  // Read by AllowedRanges() without groups_mu_ (Map runs under other locks).
  std::atomic<bool> iommu_set_ = false;
  mutable absl::Mutex groups_mu_;
  std::map<int, Group> groups_ ABSL_GUARDED_BY(groups_mu_);  // by group id
};

}  // namespace passage

#endif  // PASSAGE_IOMMU_LEGACY_CONTAINER_H_
