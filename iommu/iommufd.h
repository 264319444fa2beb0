// One iommufd object (`-object iommufd,id=X[,fd=N]`): the /dev/iommu fd and
// one IOAS into which all guest RAM is mapped, shared by every device bound
// to this object.
#ifndef PASSAGE_IOMMU_IOMMUFD_H_
#define PASSAGE_IOMMU_IOMMUFD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "iommu/dma_space.h"
#include "iommu/sys.h"

namespace passage {

class Iommufd : public DmaSpace {
 public:
  struct Options {
    std::string id;         // the object's id, used in messages
    int fd = -1;            // an already-open /dev/iommu: adopted, nothing opened
    bool map_file = true;   // prefer IOMMU_IOAS_MAP_FILE when the kernel has it
  };

  static absl::StatusOr<std::unique_ptr<Iommufd>> Create(const Options& options,
                                                         Sys* sys = &Sys::Real());
  // Unmaps everything still mapped (newest first), destroys the IOAS, closes.
  ~Iommufd() override;

  const std::string& name() const override { return id_; }
  int fd() const { return fd_.get(); }
  uint32_t ioas_id() const { return ioas_id_; }

  absl::StatusOr<std::vector<IovaRange>> AllowedRanges() override;

  // What IOMMU_GET_HW_INFO says about a device bound to this object.
  struct HwInfo {
    uint8_t max_pasid_log2 = 0;  // PASID width; 0: no PASID
    bool pasid_exec = false;     // IOMMU_HW_CAP_PCI_PASID_EXEC
    bool pasid_priv = false;     // IOMMU_HW_CAP_PCI_PASID_PRIV
  };
  // A kernel or IOMMU driver without GET_HW_INFO (EOPNOTSUPP/ENOTTY) reads
  // as no PASID; other errors are errors. `who` names the device.
  absl::StatusOr<HwInfo> GetHwInfo(uint32_t dev_id, const std::string& who);
  // IOMMU_HWPT_ALLOC of a paging HWPT over this object's IOAS for device
  // `dev_id` with `flags` (e.g. IOMMU_HWPT_ALLOC_PASID); returns its id.
  absl::StatusOr<uint32_t> AllocHwpt(uint32_t dev_id, uint32_t flags, const std::string& who);
  // IOMMU_DESTROY of an object allocated here (a HWPT); errors are logged
  // by the caller's choice, so this only reports them.
  absl::Status DestroyObject(uint32_t id);

  // How the last mapping was made (for reports and tests).
  bool used_map_file() const { return used_map_file_.load(); }

 protected:
  absl::Status MapIoctl(const DmaMapping& mapping) override;
  absl::Status UnmapIoctl(uint64_t iova, uint64_t size) override;

 private:
  Iommufd(Sys* sys, std::string id, SysFd fd, bool map_file)
      : sys_(sys), id_(std::move(id)), fd_(std::move(fd)), map_file_(map_file) {}

  Sys* const sys_;
  const std::string id_;
  SysFd fd_;
  uint32_t ioas_id_ = 0;
  bool map_file_;  // MapIoctl's: one mapping at a time
  // Written by the mapping thread, read by query-iommufd.
  std::atomic<bool> used_map_file_ = false;
};

}  // namespace passage

#endif  // PASSAGE_IOMMU_IOMMUFD_H_
