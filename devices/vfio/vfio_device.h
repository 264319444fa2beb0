// A VFIO device fd and the steps of its life cycle that are not PCI-specific:
// open (cdev + iommufd, or group + legacy container), region and IRQ info,
// region access, interrupt eventfds, reset. devices/vfio/vfio_pci.* builds
// the guest-visible PCI device on top of it.
#ifndef PASSAGE_DEVICES_VFIO_VFIO_DEVICE_H_
#define PASSAGE_DEVICES_VFIO_VFIO_DEVICE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "iommu/iommufd.h"
#include "iommu/legacy_container.h"
#include "iommu/pasid_space.h"
#include "iommu/sys.h"

namespace passage {

// "00:04.0" or "0000:00:04.0" -> "0000:00:04.0".
absl::StatusOr<std::string> ParseHostBdf(absl::string_view text);

struct VfioSparseArea {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct VfioRegionInfo {
  uint32_t index = 0;
  uint32_t flags = 0;
  uint64_t size = 0;
  uint64_t offset = 0;  // of the region within the device fd
  // mmap-able parts; when the region is mmap-able without a sparse list,
  // this holds one area covering the whole region.
  std::vector<VfioSparseArea> mmap_areas;
  bool msix_mappable = false;
  bool readable() const;
  bool writable() const;
};

struct VfioIrqInfo {
  uint32_t flags = 0;
  uint32_t count = 0;
};

// KVM's VFIO pseudo device (KVM_DEV_TYPE_VFIO), made on first use: tells
// KVM which VFIO files (device cdevs, or groups on the legacy path) belong to
// this VM. A file added for several devices (a shared group) is counted and
// deleted with its last user.
class KvmVfio {
 public:
  // `vm_fd` < 0: no VM (unit tests of devices alone); Add and Remove do nothing.
  KvmVfio(int vm_fd, Sys* sys) : vm_fd_(vm_fd), sys_(sys) {}
  absl::Status Add(int file, const std::string& device) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(int file) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const int vm_fd_;
  Sys* const sys_;
  absl::Mutex mu_;
  SysFd dev_ ABSL_GUARDED_BY(mu_);
  std::map<int, int> users_ ABSL_GUARDED_BY(mu_);  // file fd -> devices using it
};

class VfioDevice : public PasidDevice {
 public:
  struct Options {
    std::string id;          // for messages
    std::string sysfs_path;  // /sys/bus/pci/devices/<BDF> (from host= or sysfsdev=)
    int fd = -1;             // an open /dev/vfio/devices/vfioN: adopted, nothing opened
    KvmVfio* kvm_vfio = nullptr;  // told about the device's file before it binds
    // cdev path: the VM's PASID space, which the device joins once attached
    // (receiving every live binding); null: no PASID space (tests).
    PasidSpace* pasid_space = nullptr;
    // cdev path: bind only; the caller attaches later with AttachDeferred()
    // (-dma-map background: on the mapping thread, once guest RAM is in
    // the IOAS, so the attach fills the domain from it; vmm/passthrough.h).
    bool defer_attach = false;
  };

  // cdev path: add to KVM-VFIO, bind to `iommufd`, attach to its IOAS, and
  // check that no RAM already mapped there falls in the device's reserved
  // IOVA ranges. A passed `fd` is owned from the call on, closed on error.
  // A device whose IOMMU_GET_HW_INFO reports a PASID width is attached to
  // a HWPT allocated over the IOAS with IOMMU_HWPT_ALLOC_PASID instead of
  // the IOAS itself: the kernel attaches PASIDs only when the whole-device
  // domain is PASID-compatible, and the IOAS's auto domain is not. If the
  // IOMMU cannot give one, the device works without PASID (width 0, one
  // line on stderr). Then it joins `pasid_space`.
  // With `defer_attach` it stops after the bind (and the device info): the
  // device's regions, interrupts and reset work (the kernel grants access
  // at bind), its DMA is blocked until AttachDeferred().
  static absl::StatusOr<std::unique_ptr<VfioDevice>> OpenWithIommufd(const Options& options,
                                                                     Iommufd& iommufd,
                                                                     Sys* sys = &Sys::Real());
  // The rest of OpenWithIommufd for a device opened with `defer_attach`:
  // the attach (PASID HWPT, reserved-range check) and the PASID space.
  // Once; on an error the device stays bound and unattached (or attached,
  // when the check after the attach refused it) and its destructor undoes
  // what was done. Any one thread at a time (the mapping thread); the
  // device's users learn it is done through its DmaSpace's FinishMapping.
  absl::Status AttachDeferred();
  // Legacy path: the device's group joins the container (and KVM-VFIO),
  // then the device fd comes from the group.
  static absl::StatusOr<std::unique_ptr<VfioDevice>> OpenWithContainer(const Options& options,
                                                                       LegacyContainer& container,
                                                                       Sys* sys = &Sys::Real());
  // Leaves the PASID space (its PASIDs detached), detaches (cdev) and
  // destroys its PASID-compatible HWPT, leaves KVM-VFIO, closes the fd
  // (which unbinds it from iommufd), releases the group (legacy).
  ~VfioDevice() override;

  const std::string& id() const override { return id_; }
  int fd() const { return fd_.get(); }
  Sys* sys() const { return sys_; }
  uint32_t num_regions() const { return num_regions_; }
  uint32_t num_irqs() const { return num_irqs_; }
  bool can_reset() const { return can_reset_; }
  bool uses_iommufd() const { return iommufd_ != nullptr; }
  // The space the device translates through: its iommufd object's IOAS, or
  // the container. Its readiness (DmaSpace::AwaitMapped) gates the device's
  // DMA, also the deferred attach to it (which ends before FinishMapping).
  DmaSpace* dma_space() const {
    return iommufd_ != nullptr ? static_cast<DmaSpace*>(iommufd_) : container_;
  }
  uint32_t iommufd_devid() const override { return devid_; }

  // PasidDevice (cdev path only; the legacy path has no PASID).
  Iommufd* iommufd() const override { return iommufd_; }
  Iommufd::HwInfo pasid_info() const override { return hw_info_; }
  // VFIO_DEVICE_ATTACH_IOMMUFD_PT / DETACH with the PASID flag.
  absl::Status AttachPasid(uint32_t pasid, uint32_t hwpt_id) override;
  absl::Status DetachPasid(uint32_t pasid) override;
  // The space the device joined (null: none, or the legacy path).
  PasidSpace* pasid_space() const { return pasid_space_; }
  // The PASID-compatible HWPT of the whole-device attachment (0: the IOAS).
  uint32_t main_hwpt() const { return main_hwpt_; }
  // The file KVM's VFIO pseudo device is told about: the cdev itself, or
  // the group on the legacy path.
  int kvm_file() const { return container_ != nullptr ? group_fd_ : fd(); }

  absl::StatusOr<VfioRegionInfo> RegionInfo(uint32_t index) const;
  absl::StatusOr<VfioIrqInfo> IrqInfo(uint32_t index) const;
  // Region access through the fd; offset/length are checked against the region.
  absl::Status ReadRegion(const VfioRegionInfo& region, uint64_t offset,
                          std::span<uint8_t> data) const;
  absl::Status WriteRegion(const VfioRegionInfo& region, uint64_t offset,
                           std::span<const uint8_t> data) const;
  // VFIO_DEVICE_SET_IRQS trigger eventfds for vectors [start, start+fds.size());
  // an fd of -1 detaches that vector.
  absl::Status SetIrqEventfds(uint32_t index, uint32_t start, std::span<const int32_t> fds) const;
  // INTx: the resample/unmask eventfd.
  absl::Status SetIrqUnmaskEventfd(uint32_t index, int32_t fd) const;
  absl::Status DisableIrqs(uint32_t index) const;
  // Resets the device: VFIO_DEVICE_RESET when it offers one, else a PCI hot
  // reset when every device it affects is ours; else says once, in one
  // line on stderr, that the device was not reset.
  absl::Status Reset() const;

 private:
  VfioDevice(Sys* sys, std::string id) : sys_(sys), id_(std::move(id)) {}
  absl::Status ReadInfo();
  // OpenWithIommufd's steps after the bind: attach to the IOAS (or a
  // PASID-compatible HWPT over it) and check its reserved ranges; join
  // the PASID space.
  absl::Status AttachToIoas();
  absl::Status JoinPasidSpace();
  absl::Status HotReset() const;
  // Pread/Pwrite of [offset, offset+size) in `region`, range-checked first.
  absl::Status RegionIo(const VfioRegionInfo& region, uint64_t offset, void* data, size_t size,
                        bool write) const;

  Sys* const sys_;
  const std::string id_;
  SysFd fd_;
  Iommufd* iommufd_ = nullptr;  // cdev path, set once bound
  std::string sysfs_path_;      // cdev path: for naming a reserved range
  // Written by AttachToIoas/JoinPasidSpace (perhaps on the mapping thread),
  // read by the destructor and PasidSpace after that thread ended or
  // finished this device's space (its mutex orders them).
  bool attached_ = false;       // the destructor detaches
  bool attach_pending_ = false;  // opened with defer_attach, not yet attached
  PasidSpace* join_pasid_space_ = nullptr;  // Options::pasid_space, until joined
  uint32_t devid_ = 0;
  Iommufd::HwInfo hw_info_;
  Iommufd* hwpt_owner_ = nullptr;  // where main_hwpt_ was allocated
  uint32_t main_hwpt_ = 0;
  PasidSpace* pasid_space_ = nullptr;
  std::unique_ptr<PasidSpace::Registration> pasid_registration_;
  LegacyContainer* container_ = nullptr;  // legacy path
  int group_id_ = -1;
  int group_fd_ = -1;  // owned by container_
  KvmVfio* kvm_vfio_ = nullptr;  // set once the file was added
  uint32_t num_regions_ = 0;
  uint32_t num_irqs_ = 0;
  bool can_reset_ = false;
  mutable bool said_not_reset_ = false;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_VFIO_VFIO_DEVICE_H_
